// SPDX-License-Identifier: GPL-2.0-only
/*
 * kselftests of io_uring passthrough on the cxl_pnm character device:
 * IORING_OP_URING_CMD with CXL_PNM_URING_CMD_SUBMIT, checked against the
 * contract in uapi/linux/cxl_pnm.h and Documentation/io_uring.rst.
 *
 * Runs inside the VM with the driver bound; the fixtures fail, never skip,
 * when /dev/cxl/pnm0 (or $PNM_DEVICE_NODE) is missing.  Uses liburing and
 * nothing of libpnm, so the driver is tested on its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"

#define PNM_DEV_DEFAULT		"/dev/cxl/pnm0"
#define SQE_CMD_BYTES_SMALL	16	/* command area of a 64-byte SQE */

static const char *pnm_dev_path(void)
{
	const char *path = getenv("PNM_DEVICE_NODE");

	return path && *path ? path : PNM_DEV_DEFAULT;
}

/* "pnm0" of "/dev/cxl/pnm0", for sysfs. */
static const char *pnm_dev_name(void)
{
	const char *slash = strrchr(pnm_dev_path(), '/');

	return slash ? slash + 1 : pnm_dev_path();
}

static uint64_t sysfs_u64(const char *attr)
{
	char path[256];
	unsigned long long value = UINT64_MAX;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/cxl_pnm/%s/%s",
		 pnm_dev_name(), attr);
	f = fopen(path, "r");
	if (!f)
		return UINT64_MAX;
	if (fscanf(f, "%llu", &value) != 1)
		value = UINT64_MAX;
	fclose(f);
	return value;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Wait until the device completed every command the driver gave it,
 * abandoned (cancelled) ones included: only then are their regions free.
 */
static bool wait_quiescent(double timeout_s)
{
	double end = now_s() + timeout_s;
	char state[16] = "";
	char path[256];
	FILE *f;

	while (now_s() < end) {
		/* A dead device never completes its abandoned commands. */
		snprintf(path, sizeof(path), "/sys/class/cxl_pnm/%s/state",
			 pnm_dev_name());
		f = fopen(path, "r");
		if (f && fscanf(f, "%15s", state) == 1 && strcmp(state, "live")) {
			fclose(f);
			return false;
		}
		if (f)
			fclose(f);
		if (sysfs_u64("cmds_submitted") == sysfs_u64("cmds_completed"))
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * Prepare IORING_OP_URING_CMD: liburing 2.3 has no helper for it.  Copies
 * @cmd_bytes of @cmd into the SQE's command area (80 bytes on an SQE128
 * ring, 16 on a plain one).
 */
static void prep_pnm_cmd(struct io_uring_sqe *sqe, int fd, uint32_t cmd_op,
			 const struct cxl_pnm_cmd *cmd, size_t cmd_bytes,
			 uint64_t user_data)
{
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = cmd_op;
	memcpy(sqe->cmd, cmd, cmd_bytes);
	io_uring_sqe_set_data64(sqe, user_data);
}

/* Submit one command and wait for its CQE; return res, fill *res2. */
static int run_one(struct io_uring *ring, int fd, uint32_t cmd_op,
		   const struct cxl_pnm_cmd *cmd, size_t cmd_bytes,
		   uint64_t *res2)
{
	struct io_uring_cqe *cqe;
	int ret;

	prep_pnm_cmd(io_uring_get_sqe(ring), fd, cmd_op, cmd, cmd_bytes, 42);
	ret = io_uring_submit(ring);
	if (ret != 1)
		return ret < 0 ? ret : -EPROTO;
	ret = io_uring_wait_cqe(ring, &cqe);
	if (ret)
		return ret;
	if (cqe->user_data != 42)
		ret = -EPROTO;
	else
		ret = cqe->res;
	if (res2)
		*res2 = (ring->flags & IORING_SETUP_CQE32) ? cqe->big_cqe[0] :
			UINT64_MAX;
	io_uring_cqe_seen(ring, cqe);
	return ret;
}

/* Kernel log lines after @marker that name the driver or a kernel bug. */
static int klog_problems(const char *marker, char *first, size_t size)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf, *line, *save, *start;
	int problems = 0;

	if (len <= 0)
		return -1;
	buf = calloc(1, len + 1);
	if (!buf)
		return -1;
	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	if (len < 0) {
		free(buf);
		return -1;
	}
	start = strstr(buf, marker);
	start = start ? start + strlen(marker) : buf;
	for (line = strtok_r(start, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "WARNING") || strstr(line, "BUG") ||
		    strstr(line, "Oops") || strstr(line, "cxl_pnm") ||
		    strstr(line, "io_uring")) {
			if (!problems++)
				snprintf(first, size, "%s", line);
		}
	}
	free(buf);
	return problems;
}

static void klog_mark(const char *marker)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, marker, strlen(marker)) < 0)
		perror("/dev/kmsg");
	close(fd);
}

/*
 * A small fp32 stream in one region: 4 pages of 16 tokens, head_dim 16.
 * Page p's digest has max p in every channel, so with a query of ones
 * SELECT with budget k picks the k highest pages.
 */
#define ST_D		16
#define ST_PAGES	4
#define ST_TABLE	16384
#define ST_IN		16448
#define ST_OUT		16640
#define ST_REGION	65536

struct stream {
	unsigned int page_shift;
	uint64_t slot_bytes, digest_bytes;
	uint32_t handle;
	uint8_t *map;
};

static unsigned int pick_page_shift(uint32_t page_shifts)
{
	return (page_shifts & (1U << 4)) ? 4 : __builtin_ctz(page_shifts);
}

static struct cxl_pnm_buf buf_at(uint32_t handle, uint64_t offset,
				 uint32_t length)
{
	struct cxl_pnm_buf buf = {
		.handle = handle, .length = length, .offset = offset,
	};

	return buf;
}

static struct cxl_pnm_cmd nop_cmd(void)
{
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_NOP;
	return cmd;
}

static struct cxl_pnm_cmd select_cmd(const struct stream *st, unsigned int k)
{
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_SELECT;
	cmd.dtype = CXL_PNM_DTYPE_FP32;
	cmd.page_shift = st->page_shift;
	cmd.group = 1;
	cmd.head_dim = ST_D;
	cmd.n_tokens = ST_PAGES << st->page_shift;
	cmd.k = k;
	cmd.pool = buf_at(st->handle, 0,
			  ST_PAGES * (st->slot_bytes + st->digest_bytes));
	cmd.table = buf_at(st->handle, ST_TABLE, 4 * ST_PAGES);
	cmd.in = buf_at(st->handle, ST_IN, 4 * ST_D);
	cmd.out = buf_at(st->handle, ST_OUT, 4 * ST_PAGES);
	return cmd;
}

static int stream_setup(int fd, const struct cxl_pnm_info *info,
			struct stream *st)
{
	struct cxl_pnm_region_alloc ra = { .size = ST_REGION };
	float *digest, *q;
	uint32_t *table;
	unsigned int p, c;

	st->page_shift = pick_page_shift(info->page_shifts);
	st->slot_bytes = (2ULL * ST_D * 4) << st->page_shift;
	st->digest_bytes = 2ULL * ST_D * 4;
	if (ST_PAGES * (st->slot_bytes + st->digest_bytes) > ST_TABLE)
		return -E2BIG;
	if (ioctl(fd, CXL_PNM_IOC_REGION_ALLOC, &ra))
		return -errno;
	st->handle = ra.handle;
	st->map = mmap(NULL, ST_REGION, PROT_READ | PROT_WRITE, MAP_SHARED,
		       fd, ra.mmap_offset);
	if (st->map == MAP_FAILED)
		return -errno;
	memset(st->map, 0, ST_REGION);
	for (p = 0; p < ST_PAGES; p++) {
		digest = (float *)(st->map + ST_PAGES * st->slot_bytes +
				   p * st->digest_bytes);
		for (c = 0; c < ST_D; c++) {
			digest[c] = 0.0f;		/* min */
			digest[ST_D + c] = (float)p;	/* max */
		}
	}
	table = (uint32_t *)(st->map + ST_TABLE);
	for (p = 0; p < ST_PAGES; p++)
		table[p] = p;
	q = (float *)(st->map + ST_IN);
	for (c = 0; c < ST_D; c++)
		q[c] = 1.0f;
	return 0;
}

/*
 * A slow command for the cancellation tests: ATTEND over 1024 listed pages
 * of 16 tokens at head_dim 128, every page mapped to slot 0, so the device
 * reads 16 MiB for it while the guest writes only 8 KiB.
 */
#define SLOW_D		128
#define SLOW_PAGES	1024
#define SLOW_TABLE	32768
#define SLOW_IN		(SLOW_TABLE + 4 * SLOW_PAGES)
#define SLOW_OUT	(SLOW_IN + 4 * SLOW_D + 4 * SLOW_PAGES)
#define SLOW_REGION	(128 * 1024)

static int slow_setup(int fd, uint32_t *handle, struct cxl_pnm_cmd *cmd)
{
	struct cxl_pnm_region_alloc ra = { .size = SLOW_REGION };
	uint64_t slot = 2ULL * SLOW_D * 4 * 16, digest = 2ULL * SLOW_D * 4;
	uint32_t *list;
	uint8_t *map;
	unsigned int p;

	if (ioctl(fd, CXL_PNM_IOC_REGION_ALLOC, &ra))
		return -errno;
	map = mmap(NULL, SLOW_REGION, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   ra.mmap_offset);
	if (map == MAP_FAILED)
		return -errno;
	memset(map, 0, SLOW_REGION);		/* K = V = 0, table all 0 */
	list = (uint32_t *)(map + SLOW_IN + 4 * SLOW_D);
	for (p = 0; p < SLOW_PAGES; p++)
		list[p] = p;
	munmap(map, SLOW_REGION);

	memset(cmd, 0, sizeof(*cmd));
	cmd->opcode = CXL_PNM_OP_ATTEND;
	cmd->dtype = CXL_PNM_DTYPE_FP32;
	cmd->page_shift = 4;
	cmd->group = 1;
	cmd->head_dim = SLOW_D;
	cmd->n_tokens = SLOW_PAGES * 16;
	cmd->k = SLOW_PAGES;
	cmd->pool = buf_at(ra.handle, 0, slot + digest);
	cmd->table = buf_at(ra.handle, SLOW_TABLE, 4 * SLOW_PAGES);
	cmd->in = buf_at(ra.handle, SLOW_IN, 4 * SLOW_D + 4 * SLOW_PAGES);
	cmd->out = buf_at(ra.handle, SLOW_OUT, 4 * SLOW_D + 4);
	*handle = ra.handle;
	return 0;
}

/* Queue @nr copies of @cmd, user_data 0 .. nr - 1, in one submission. */
static int submit_copies(struct io_uring *ring, int fd,
			 const struct cxl_pnm_cmd *cmd, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

		if (!sqe)
			return -EBUSY;
		prep_pnm_cmd(sqe, fd, CXL_PNM_URING_CMD_SUBMIT, cmd,
			     sizeof(*cmd), i);
	}
	return io_uring_submit(ring);
}

#define BIG_RING	(IORING_SETUP_SQE128 | IORING_SETUP_CQE32)

TEST(abi)
{
	uint64_t res2 = CXL_PNM_URING_RESULT(CXL_PNM_STATUS_BAD_K, 65535,
					     0xfedcba98ULL);

	EXPECT_EQ(80, sizeof(struct cxl_pnm_cmd));
	EXPECT_EQ(16, sizeof(struct cxl_pnm_result));
	/* 48 bytes of SQE before the command area, 80 in it: 128. */
	EXPECT_EQ(128, offsetof(struct io_uring_sqe, cmd) +
		  sizeof(struct cxl_pnm_cmd));
	EXPECT_EQ(0xCE, _IOC_TYPE(CXL_PNM_URING_CMD_SUBMIT));
	EXPECT_LE(0x40, _IOC_NR(CXL_PNM_URING_CMD_SUBMIT));
	EXPECT_GE(0x4f, _IOC_NR(CXL_PNM_URING_CMD_SUBMIT));
	EXPECT_EQ(sizeof(struct cxl_pnm_cmd),
		  _IOC_SIZE(CXL_PNM_URING_CMD_SUBMIT));
	EXPECT_NE(CXL_PNM_IOC_SUBMIT, CXL_PNM_URING_CMD_SUBMIT);
	EXPECT_EQ(CXL_PNM_STATUS_BAD_K, CXL_PNM_URING_RESULT_STATUS(res2));
	EXPECT_EQ(65535, CXL_PNM_URING_RESULT_COUNT(res2));
	EXPECT_EQ(0xfedcba98ULL, CXL_PNM_URING_RESULT_NS(res2));
}

FIXTURE(uring) {
	int fd;
	struct cxl_pnm_info info;
	struct stream st;
	struct io_uring ring;
	char marker[96];
};

FIXTURE_SETUP(uring)
{
	self->fd = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd)
		TH_LOG("open %s: %s (is cxl_pnm bound?)", pnm_dev_path(),
		       strerror(errno));
	ASSERT_EQ(0, ioctl(self->fd, CXL_PNM_IOC_GET_INFO, &self->info));
	ASSERT_EQ(0, stream_setup(self->fd, &self->info, &self->st));
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, BIG_RING));
	snprintf(self->marker, sizeof(self->marker),
		 "cxl_pnm_uring_test: begin %d %.6f\n", getpid(), now_s());
	klog_mark(self->marker);
}

FIXTURE_TEARDOWN(uring)
{
	io_uring_queue_exit(&self->ring);
	close(self->fd);
}

/* Rings without both big entries are refused, as NVMe passthrough does. */
TEST_F(uring, ring_without_big_entries)
{
	static const unsigned int setups[] = {
		0, IORING_SETUP_SQE128, IORING_SETUP_CQE32,
	};
	struct cxl_pnm_cmd cmd = nop_cmd();
	unsigned int i;

	for (i = 0; i < sizeof(setups) / sizeof(setups[0]); i++) {
		struct io_uring ring;
		size_t bytes = (setups[i] & IORING_SETUP_SQE128) ?
			       sizeof(cmd) : SQE_CMD_BYTES_SMALL;

		ASSERT_EQ(0, io_uring_queue_init(8, &ring, setups[i]));
		EXPECT_EQ(-EOPNOTSUPP,
			  run_one(&ring, self->fd, CXL_PNM_URING_CMD_SUBMIT,
				  &cmd, bytes, NULL))
			TH_LOG("ring setup flags %#x", setups[i]);
		io_uring_queue_exit(&ring);
	}
}

TEST_F(uring, unknown_cmd_op)
{
	struct cxl_pnm_cmd cmd = nop_cmd();
	uint64_t res2;

	EXPECT_EQ(-ENOTTY, run_one(&self->ring, self->fd, 0, &cmd,
				   sizeof(cmd), &res2));
	EXPECT_EQ(-ENOTTY, run_one(&self->ring, self->fd, CXL_PNM_IOC_SUBMIT,
				   &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(-ENOTTY, run_one(&self->ring, self->fd,
				   CXL_PNM_URING_CMD_SUBMIT + 1, &cmd,
				   sizeof(cmd), &res2));
	EXPECT_EQ(0, res2);
}

/* Each rejection has the errno of the SUBMIT ioctl contract. */
TEST_F(uring, bad_operands)
{
	struct cxl_pnm_region_alloc other = { .size = 4096 };
	struct cxl_pnm_cmd cmd;
	uint64_t res2;
	int fd2;

#define EXPECT_REJECTED(err, what)					\
	do {								\
		res2 = 1;						\
		EXPECT_EQ(-(err), run_one(&self->ring, self->fd,	\
					  CXL_PNM_URING_CMD_SUBMIT,	\
					  &cmd, sizeof(cmd), &res2))	\
			TH_LOG("%s", what);				\
		EXPECT_EQ(0, res2) TH_LOG("%s: big CQE", what);		\
	} while (0)

	cmd = select_cmd(&self->st, 2);
	cmd.opcode = CXL_PNM_OP_SELECT_ATTEND + 1;
	EXPECT_REJECTED(EINVAL, "opcode past SELECT_ATTEND");
	cmd = select_cmd(&self->st, 2);
	cmd.flags = 0x80;
	EXPECT_REJECTED(EINVAL, "unknown flag");
	cmd = select_cmd(&self->st, 2);
	cmd.rsvd = 1;
	EXPECT_REJECTED(EINVAL, "reserved byte");
	cmd = select_cmd(&self->st, 2);
	cmd.out.handle = 0;
	EXPECT_REJECTED(EINVAL, "no region, non-zero length");
	cmd = select_cmd(&self->st, 2);
	cmd.table = buf_at(0, 64, 0);
	EXPECT_REJECTED(EINVAL, "no region, non-zero offset");
	cmd = select_cmd(&self->st, 2);
	cmd.in.handle = 0x7777;
	EXPECT_REJECTED(ENOENT, "unknown handle");
	cmd = select_cmd(&self->st, 2);
	cmd.out = buf_at(self->st.handle, ST_REGION - 8, 16);
	EXPECT_REJECTED(EINVAL, "buffer past the region");
	cmd = select_cmd(&self->st, 2);
	cmd.out = buf_at(self->st.handle, UINT64_MAX - 4, 16);
	EXPECT_REJECTED(EINVAL, "offset + length overflows");

	fd2 = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd2);
	ASSERT_EQ(0, ioctl(fd2, CXL_PNM_IOC_REGION_ALLOC, &other));
	cmd = select_cmd(&self->st, 2);
	cmd.out = buf_at(other.handle + 100, 0, 16);
	EXPECT_REJECTED(ENOENT, "handle of no region");
	close(fd2);
#undef EXPECT_REJECTED
}

/* A region of another open file is unknown to this one: ENOENT. */
TEST_F(uring, region_of_other_file)
{
	struct cxl_pnm_region_alloc theirs = { .size = 4096 };
	struct cxl_pnm_cmd cmd = nop_cmd();
	uint64_t res2 = 1;
	int mine, other;

	/* A fresh file of our own, with no region at all. */
	mine = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, mine);
	other = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, other);
	ASSERT_EQ(0, ioctl(other, CXL_PNM_IOC_REGION_ALLOC, &theirs));
	cmd.in = buf_at(theirs.handle, 0, 64);
	EXPECT_EQ(-ENOENT, run_one(&self->ring, mine,
				   CXL_PNM_URING_CMD_SUBMIT, &cmd,
				   sizeof(cmd), &res2));
	EXPECT_EQ(0, res2);
	/* The owner's ring may use it. */
	EXPECT_EQ(0, run_one(&self->ring, other, CXL_PNM_URING_CMD_SUBMIT,
			     &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(CXL_PNM_STATUS_OK, CXL_PNM_URING_RESULT_STATUS(res2));
	close(other);
	close(mine);
}

TEST_F(uring, nop)
{
	struct cxl_pnm_cmd cmd = nop_cmd();
	uint64_t res2 = UINT64_MAX;

	ASSERT_EQ(0, run_one(&self->ring, self->fd, CXL_PNM_URING_CMD_SUBMIT,
			     &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(CXL_PNM_STATUS_OK, CXL_PNM_URING_RESULT_STATUS(res2));
	EXPECT_EQ(0, CXL_PNM_URING_RESULT_COUNT(res2));
}

/* A real command: the big CQE matches what the SUBMIT ioctl reports. */
TEST_F(uring, select_result)
{
	struct cxl_pnm_cmd cmd = select_cmd(&self->st, 2);
	struct cxl_pnm_result ioctl_res;
	struct cxl_pnm_submit submit = {
		.cmds = (uintptr_t)&cmd, .results = (uintptr_t)&ioctl_res,
		.nr = 1,
	};
	uint32_t *pages = (uint32_t *)(self->st.map + ST_OUT);
	uint64_t res2 = UINT64_MAX;

	ASSERT_EQ(0, ioctl(self->fd, CXL_PNM_IOC_SUBMIT, &submit));
	ASSERT_EQ(CXL_PNM_STATUS_OK, ioctl_res.status);
	memset(pages, 0xff, 4 * ST_PAGES);

	ASSERT_EQ(0, run_one(&self->ring, self->fd, CXL_PNM_URING_CMD_SUBMIT,
			     &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(CXL_PNM_STATUS_OK, CXL_PNM_URING_RESULT_STATUS(res2));
	EXPECT_EQ(2, CXL_PNM_URING_RESULT_COUNT(res2));
	EXPECT_EQ(ioctl_res.count, CXL_PNM_URING_RESULT_COUNT(res2));
	EXPECT_EQ(ioctl_res.device_ns, CXL_PNM_URING_RESULT_NS(res2));
	EXPECT_LT(0, CXL_PNM_URING_RESULT_NS(res2));
	/* The two highest pages, ascending. */
	EXPECT_EQ(2, pages[0]);
	EXPECT_EQ(3, pages[1]);
}

/* A command the device rejects completes with res 0 and its status. */
TEST_F(uring, device_status)
{
	struct cxl_pnm_cmd cmd = select_cmd(&self->st, 2);
	uint64_t res2 = UINT64_MAX;

	cmd.dtype = 7;
	ASSERT_EQ(0, run_one(&self->ring, self->fd, CXL_PNM_URING_CMD_SUBMIT,
			     &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(CXL_PNM_STATUS_BAD_DTYPE, CXL_PNM_URING_RESULT_STATUS(res2));
	cmd = select_cmd(&self->st, 0);
	ASSERT_EQ(0, run_one(&self->ring, self->fd, CXL_PNM_URING_CMD_SUBMIT,
			     &cmd, sizeof(cmd), &res2));
	EXPECT_EQ(CXL_PNM_STATUS_BAD_K, CXL_PNM_URING_RESULT_STATUS(res2));
}

/*
 * Check the completions of commands user_data 0 .. @nr - 1 of
 * submit_pattern(): each exactly once, with its expected result.  Return
 * the first problem or NULL.
 */
static unsigned int pattern_k(uint64_t i)
{
	return i % 5 == 0 ? 0 : 1 + i % 4;	/* 0: a NOP */
}

static struct cxl_pnm_cmd pattern_cmd(const struct stream *st, uint64_t i)
{
	return pattern_k(i) ? select_cmd(st, pattern_k(i)) : nop_cmd();
}

struct flood {
	int fd;
	const struct stream *st;
	unsigned int id, nr, depth;
	unsigned int ring_flags;
	char error[160];
};

/* Keep @depth commands in flight on a private ring until @nr completed. */
static void *flood_thread(void *arg)
{
	struct flood *f = arg;
	unsigned int queued = 0, done = 0, ring_entries = f->depth;
	uint8_t *seen = calloc(f->nr, 1);
	struct io_uring ring;
	int ret;

	ret = io_uring_queue_init(ring_entries, &ring, f->ring_flags);
	if (ret || !seen) {
		snprintf(f->error, sizeof(f->error), "thread %u: ring: %s",
			 f->id, strerror(-ret));
		free(seen);
		return NULL;
	}
	while (done < f->nr && !f->error[0]) {
		struct io_uring_cqe *cqe;
		unsigned int batch = 0;

		while (queued < f->nr && queued - done < f->depth) {
			struct cxl_pnm_cmd cmd = pattern_cmd(f->st, queued);

			prep_pnm_cmd(io_uring_get_sqe(&ring), f->fd,
				     CXL_PNM_URING_CMD_SUBMIT, &cmd,
				     sizeof(cmd),
				     (uint64_t)f->id << 32 | queued);
			queued++;
			batch++;
		}
		ret = batch ? io_uring_submit_and_wait(&ring, 1) :
			      io_uring_wait_cqe(&ring, &cqe);
		if (ret < 0) {
			snprintf(f->error, sizeof(f->error),
				 "thread %u: submit/wait: %s", f->id,
				 strerror(-ret));
			break;
		}
		while (!io_uring_peek_cqe(&ring, &cqe)) {
			uint64_t i = cqe->user_data & 0xffffffff;
			unsigned int k;

			if (cqe->user_data >> 32 != f->id || i >= f->nr ||
			    seen[i]++) {
				snprintf(f->error, sizeof(f->error),
					 "thread %u: unexpected or repeated user_data %#llx",
					 f->id, (unsigned long long)cqe->user_data);
				break;
			}
			k = pattern_k(i);
			if (cqe->res ||
			    CXL_PNM_URING_RESULT_STATUS(cqe->big_cqe[0]) ||
			    CXL_PNM_URING_RESULT_COUNT(cqe->big_cqe[0]) !=
			    (k > ST_PAGES ? ST_PAGES : k)) {
				snprintf(f->error, sizeof(f->error),
					 "thread %u: command %llu (k %u): res %d, big CQE %#llx",
					 f->id, (unsigned long long)i, k,
					 cqe->res,
					 (unsigned long long)cqe->big_cqe[0]);
				break;
			}
			done++;
			io_uring_cqe_seen(&ring, cqe);
		}
	}
	io_uring_queue_exit(&ring);
	free(seen);
	return NULL;
}

static void run_flood(struct __test_metadata *_metadata, int fd,
		      const struct stream *st, unsigned int threads,
		      unsigned int per_thread, unsigned int depth,
		      unsigned int ring_flags)
{
	struct flood f[8];
	pthread_t tid[8];
	uint64_t before = sysfs_u64("cmds_completed");
	unsigned int i;

	ASSERT_GE(8, threads);
	for (i = 0; i < threads; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		f[i].fd = fd;
		f[i].st = st;
		f[i].id = i + 1;
		f[i].nr = per_thread;
		f[i].depth = depth;
		f[i].ring_flags = ring_flags;
		ASSERT_EQ(0, pthread_create(&tid[i], NULL, flood_thread, &f[i]));
	}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < threads; i++) {
		EXPECT_EQ(0, f[i].error[0]) TH_LOG("%s", f[i].error);
	}
	/* Each command reached the device: none was completed in software. */
	EXPECT_LE(before + threads * per_thread, sysfs_u64("cmds_completed"));
}

/*
 * 10,000 commands from 4 threads, each on its own ring with 256 in flight:
 * more than the hardware queues hold, so the software queue is used too.
 */
TEST_F(uring, ten_thousand_in_flight)
{
	run_flood(_metadata, self->fd, &self->st, 4, 2500, 256, BIG_RING);
}

/* The default: no IOPOLL, the poller thread posts every completion. */
TEST_F(uring, poller_completion)
{
	run_flood(_metadata, self->fd, &self->st, 1, 500, 64, BIG_RING);
}

TEST_F(uring, iopoll)
{
	run_flood(_metadata, self->fd, &self->st, 2, 500, 64,
		  BIG_RING | IORING_SETUP_IOPOLL);
}

/* After the cancellation tests: no leaked slot, region or kernel warning. */
static void check_no_leak(struct __test_metadata *_metadata,
			  const char *marker)
{
	struct cxl_pnm_info info;
	char line[256] = "";
	double end;
	int fd;

	ASSERT_TRUE(wait_quiescent(20))
		TH_LOG("device dead or still busy: %llu submitted, %llu completed",
		       (unsigned long long)sysfs_u64("cmds_submitted"),
		       (unsigned long long)sysfs_u64("cmds_completed"));
	/*
	 * The ring exits asynchronously: the old file, and with it the
	 * region, goes once io_uring has freed the last request.
	 */
	fd = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (end = now_s() + 20; now_s() < end; usleep(10000)) {
		ASSERT_EQ(0, ioctl(fd, CXL_PNM_IOC_GET_INFO, &info));
		if (info.kv_free == info.kv_size)
			break;
	}
	EXPECT_EQ(info.kv_size, info.kv_free);
	close(fd);
	EXPECT_EQ(0, klog_problems(marker, line, sizeof(line)))
		TH_LOG("kernel log: %s", line);
}

FIXTURE(cancel) {
	int fd;
	uint32_t handle;
	struct cxl_pnm_cmd slow;
	struct io_uring ring;
	char marker[96];
	uint64_t submitted0;
};

/*
 * @reaps_first: io_uring reaps an exiting IOPOLL ring by polling before it
 * cancels anything (6.12 io_uring_try_cancel_requests() calls
 * io_iopoll_try_reap_events() first), so there any number of the commands
 * may run to completion instead of being cancelled.
 */
FIXTURE_VARIANT(cancel) {
	unsigned int ring_flags;
	bool reaps_first;
};

FIXTURE_VARIANT_ADD(cancel, interrupt_free) {
	.ring_flags = BIG_RING,
};

FIXTURE_VARIANT_ADD(cancel, iopoll) {
	.ring_flags = BIG_RING | IORING_SETUP_IOPOLL,
	.reaps_first = true,
};

#define CANCEL_NR	512

FIXTURE_SETUP(cancel)
{
	self->fd = open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd)
		TH_LOG("open %s: %s", pnm_dev_path(), strerror(errno));
	ASSERT_TRUE(wait_quiescent(20));
	ASSERT_EQ(0, slow_setup(self->fd, &self->handle, &self->slow));
	ASSERT_EQ(0, io_uring_queue_init(CANCEL_NR, &self->ring,
					 variant->ring_flags));
	snprintf(self->marker, sizeof(self->marker),
		 "cxl_pnm_uring_test: cancel %d %.6f\n", getpid(), now_s());
	klog_mark(self->marker);
	self->submitted0 = sysfs_u64("cmds_submitted");
}

FIXTURE_TEARDOWN(cancel)
{
}

/*
 * The hardware queues hold far fewer than CANCEL_NR commands, so commands
 * that were cancelled from the software queue never reach the device:
 * fewer than CANCEL_NR submitted proves the cancellation.
 */
static void check_cancelled(struct __test_metadata *_metadata,
			    const FIXTURE_VARIANT(cancel) *variant,
			    uint64_t submitted0)
{
	uint64_t submitted;

	ASSERT_TRUE(wait_quiescent(20));
	submitted = sysfs_u64("cmds_submitted") - submitted0;
	EXPECT_GE(CANCEL_NR, submitted);
	if (variant->reaps_first) {
		TH_LOG("%llu of %u commands ran, the others were cancelled",
		       (unsigned long long)submitted, CANCEL_NR);
		return;
	}
	EXPECT_GT(CANCEL_NR, submitted)
		TH_LOG("all %llu commands ran: none was cancelled",
		       (unsigned long long)submitted);
}

TEST_F(cancel, ring_exit)
{
	ASSERT_EQ(CANCEL_NR, submit_copies(&self->ring, self->fd, &self->slow,
					   CANCEL_NR));
	io_uring_queue_exit(&self->ring);
	close(self->fd);
	check_cancelled(_metadata, variant, self->submitted0);
	check_no_leak(_metadata, self->marker);
}

/*
 * Closing the device file does not cancel: the ring keeps the file until
 * its commands complete.  The ring exit that follows does.
 */
TEST_F(cancel, close_then_ring_exit)
{
	ASSERT_EQ(CANCEL_NR, submit_copies(&self->ring, self->fd, &self->slow,
					   CANCEL_NR));
	close(self->fd);
	usleep(20000);
	io_uring_queue_exit(&self->ring);
	check_cancelled(_metadata, variant, self->submitted0);
	check_no_leak(_metadata, self->marker);
}

/*
 * A process that exits with commands in flight: closing its files exits
 * the ring, which cancels them.
 */
TEST_F(cancel, process_exit)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid)
		_exit(submit_copies(&self->ring, self->fd, &self->slow,
				    CANCEL_NR) == CANCEL_NR ? 0 : 1);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The child's commands are still in flight here, or cancelled. */
	io_uring_queue_exit(&self->ring);
	close(self->fd);
	check_cancelled(_metadata, variant, self->submitted0);
	check_no_leak(_metadata, self->marker);
}

/*
 * Wait for a CQE until @timeout_s passed.  liburing 2.3 returns -ETIME
 * early when the kernel returns before the timeout, as IOPOLL does when
 * the task should reschedule, so retry until the deadline.
 */
static int wait_cqe_deadline(struct io_uring *ring, struct io_uring_cqe **cqe,
			     double timeout_s)
{
	double end = now_s() + timeout_s;
	int ret;

	do {
		struct __kernel_timespec ts = { .tv_nsec = 100000000 };

		ret = io_uring_wait_cqe_timeout(ring, cqe, &ts);
	} while ((ret == -ETIME || ret == -EINTR) && now_s() < end);
	return ret;
}

struct exit_arg {
	struct io_uring *ring;
	int fd;
	const struct cxl_pnm_cmd *cmd;
	int ret;
};

static void *submit_and_exit(void *p)
{
	struct exit_arg *a = p;

	a->ret = submit_copies(a->ring, a->fd, a->cmd, CANCEL_NR);
	return NULL;
}

/*
 * A thread that exits does not cancel what it submitted (io_uring cancels
 * only tracked requests at thread exit, 6.12 io_uring_cancel_generic()):
 * the ring stays, and every command posts exactly one CQE, through
 * io_uring's fallback for a dead task, with its result.
 */
TEST_F(cancel, thread_exit_completes)
{
	struct exit_arg a = {
		.ring = &self->ring, .fd = self->fd, .cmd = &self->slow,
	};
	unsigned int done = 0;
	uint8_t seen[CANCEL_NR] = { 0 };
	struct io_uring_cqe *cqe;
	pthread_t tid;

	ASSERT_EQ(0, pthread_create(&tid, NULL, submit_and_exit, &a));
	pthread_join(tid, NULL);
	ASSERT_EQ(CANCEL_NR, a.ret);
	while (done < CANCEL_NR) {
		ASSERT_EQ(0, wait_cqe_deadline(&self->ring, &cqe, 20))
			TH_LOG("%u of %u CQEs", done, CANCEL_NR);
		ASSERT_GT(CANCEL_NR, cqe->user_data);
		EXPECT_EQ(0, seen[cqe->user_data]++)
			TH_LOG("user_data %llu twice",
			       (unsigned long long)cqe->user_data);
		EXPECT_EQ(0, cqe->res);
		EXPECT_EQ(CXL_PNM_STATUS_OK,
			  CXL_PNM_URING_RESULT_STATUS(cqe->big_cqe[0]));
		EXPECT_EQ(SLOW_PAGES,
			  CXL_PNM_URING_RESULT_COUNT(cqe->big_cqe[0]));
		io_uring_cqe_seen(&self->ring, cqe);
		done++;
	}
	io_uring_queue_exit(&self->ring);
	close(self->fd);
	ASSERT_TRUE(wait_quiescent(20));
	EXPECT_EQ(CANCEL_NR, sysfs_u64("cmds_submitted") - self->submitted0);
	check_no_leak(_metadata, self->marker);
}

TEST_HARNESS_MAIN
