// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest test of libpnm's asynchronous API and transport selection over the
 * kernel transport: io_uring queues (plain and IOPOLL), the synchronous
 * pnm_submit() over the shared ring, the ioctl fallback chosen by name or
 * by PNM_TRANSPORT, and the core's generic queue over the ioctl.  Runs in
 * the VM with cxl_pnm bound; PNM_DEVICE_NODE overrides /dev/cxl/pnm0.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "pnm.h"

/* fp32 stream: 4 pages of 16 tokens, head_dim 16; page p's keys max p. */
#define D		16
#define PAGES		4
#define P_SHIFT		4
#define SLOT		(2 * D * 4 * 16)
#define DIGEST		(2 * D * 4)
#define TABLE_OFF	16384
#define IN_OFF		16448
#define OUT_OFF		16640
#define REGION		65536

static const char *device_node(void)
{
	const char *node = getenv("PNM_DEVICE_NODE");

	return node ? node : "/dev/cxl/pnm0";
}

/* "ioctl:" + the node, for the prefix tests. */
static const char *prefixed(const char *prefix)
{
	static char name[256];

	snprintf(name, sizeof(name), "%s%s", prefix, device_node());
	return name;
}

static void stream_fill(struct pnm_region *r)
{
	uint8_t *base = r->addr;
	uint32_t *table = (uint32_t *)(base + TABLE_OFF);
	float *q = (float *)(base + IN_OFF);
	unsigned int p, c;

	memset(base, 0, REGION);
	for (p = 0; p < PAGES; p++) {
		float *digest = (float *)(base + PAGES * SLOT + p * DIGEST);

		for (c = 0; c < D; c++)
			digest[D + c] = (float)p;
		table[p] = p;
	}
	for (c = 0; c < D; c++)
		q[c] = 1.0f;
}

/* SELECT of the k best pages; k 0 gives a NOP instead. */
static struct cxl_pnm_cmd make_cmd(const struct pnm_region *r, unsigned int k)
{
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	if (!k)
		return cmd;
	cmd.opcode = CXL_PNM_OP_SELECT;
	cmd.dtype = CXL_PNM_DTYPE_FP32;
	cmd.page_shift = P_SHIFT;
	cmd.group = 1;
	cmd.head_dim = D;
	cmd.n_tokens = PAGES << P_SHIFT;
	cmd.k = k;
	cmd.pool = pnm_buf(r, 0, PAGES * (SLOT + DIGEST));
	cmd.table = pnm_buf(r, TABLE_OFF, 4 * PAGES);
	cmd.in = pnm_buf(r, IN_OFF, 4 * D);
	cmd.out = pnm_buf(r, OUT_OFF, 4 * PAGES);
	return cmd;
}

static unsigned int pattern_k(uint64_t i)
{
	return i % 5 == 0 ? 0 : 1 + i % 4;
}

FIXTURE(async) {
	struct pnm_dev *dev;
	struct pnm_region *r;
};

static void open_stream(struct __test_metadata *_metadata,
			FIXTURE_DATA(async) *self, const char *name)
{
	ASSERT_EQ(0, pnm_open(name, &self->dev)) TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, pnm_region_alloc(self->dev, REGION, &self->r))
		TH_LOG("%s", pnm_last_error());
	stream_fill(self->r);
}

FIXTURE_SETUP(async)
{
	self->dev = NULL;
	self->r = NULL;
	unsetenv("PNM_TRANSPORT");
	ASSERT_EQ(0, access(device_node(), F_OK))
		TH_LOG("%s does not exist: cxl_pnm is not bound", device_node());
}

FIXTURE_TEARDOWN(async)
{
	pnm_region_free(self->r);
	pnm_close(self->dev);
}

/*
 * Submit @total commands of the pattern in batches of @batch, keeping up
 * to @depth in flight, and check that each user_data completes once with
 * its result.
 */
static void run_pattern(struct __test_metadata *_metadata,
			FIXTURE_DATA(async) *self, unsigned int flags,
			unsigned int depth, unsigned int batch,
			unsigned int total)
{
	struct pnm_completion comps[64];
	struct cxl_pnm_cmd cmds[64];
	uint64_t user_data[64];
	uint8_t *seen = calloc(total, 1);
	unsigned int queued = 0, done = 0, i;
	struct pnm_queue *q;
	int n;

	ASSERT_NE(NULL, seen);
	ASSERT_GE(64, batch);
	ASSERT_EQ(0, pnm_queue_create(self->dev, depth, flags, &q))
		TH_LOG("%s", pnm_last_error());
	while (done < total) {
		unsigned int nr = 0;

		while (queued + nr < total && nr < batch &&
		       pnm_queue_inflight(q) + nr < depth) {
			cmds[nr] = make_cmd(self->r, pattern_k(queued + nr));
			user_data[nr] = 1000000 + queued + nr;
			nr++;
		}
		if (nr) {
			ASSERT_EQ((int)nr, pnm_submit_async(q, cmds, user_data, nr))
				TH_LOG("%s", pnm_last_error());
			queued += nr;
		}
		n = pnm_wait(q, comps, 1, 64, 10000);
		ASSERT_LT(0, n) TH_LOG("%s", pnm_last_error());
		for (i = 0; i < (unsigned int)n; i++) {
			uint64_t id = comps[i].user_data - 1000000;
			unsigned int k;

			ASSERT_GT(total, id);
			EXPECT_EQ(0, seen[id]++) TH_LOG("user_data %llu twice",
						       (unsigned long long)id);
			k = pattern_k(id);
			EXPECT_EQ(0, comps[i].res);
			EXPECT_EQ(CXL_PNM_STATUS_OK, comps[i].result.status);
			EXPECT_EQ(k, comps[i].result.count);
		}
		done += n;
	}
	EXPECT_EQ(0, pnm_queue_inflight(q));
	EXPECT_EQ(0, pnm_reap(q, comps, 64));
	pnm_queue_destroy(q);
	free(seen);
}

TEST_F(async, default_is_io_uring)
{
	open_stream(_metadata, self, device_node());
	EXPECT_STREQ("io_uring", pnm_transport_name(self->dev));
}

TEST_F(async, ioctl_by_name)
{
	open_stream(_metadata, self, prefixed("ioctl:"));
	EXPECT_STREQ("ioctl", pnm_transport_name(self->dev));
}

TEST_F(async, ioctl_by_environment)
{
	setenv("PNM_TRANSPORT", "ioctl", 1);
	open_stream(_metadata, self, device_node());
	EXPECT_STREQ("ioctl", pnm_transport_name(self->dev));
}

TEST_F(async, uring_by_environment)
{
	setenv("PNM_TRANSPORT", "uring", 1);
	open_stream(_metadata, self, device_node());
	EXPECT_STREQ("io_uring", pnm_transport_name(self->dev));
}

TEST_F(async, bad_environment)
{
	struct pnm_dev *dev = NULL;

	setenv("PNM_TRANSPORT", "carrier-pigeon", 1);
	EXPECT_EQ(-EINVAL, pnm_open(device_node(), &dev));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "carrier-pigeon"));
	EXPECT_EQ(NULL, dev);
}

TEST_F(async, uring_queue)
{
	open_stream(_metadata, self, device_node());
	run_pattern(_metadata, self, 0, 256, 64, 3000);
}

TEST_F(async, uring_queue_iopoll)
{
	open_stream(_metadata, self, device_node());
	run_pattern(_metadata, self, PNM_QUEUE_IOPOLL, 64, 16, 1000);
}

/* The ioctl transport has no native queue: the core's fallback serves. */
TEST_F(async, generic_queue_over_ioctl)
{
	open_stream(_metadata, self, prefixed("ioctl:"));
	run_pattern(_metadata, self, 0, 128, 64, 1000);
}

TEST_F(async, queue_arguments)
{
	struct cxl_pnm_cmd cmds[9];
	struct pnm_completion comps[9];
	struct pnm_queue *q;
	unsigned int i;

	open_stream(_metadata, self, device_node());
	EXPECT_EQ(-EINVAL, pnm_queue_create(self->dev, 0, 0, &q));
	EXPECT_EQ(-EINVAL, pnm_queue_create(self->dev, PNM_QUEUE_MAX_DEPTH + 1,
					    0, &q));
	EXPECT_EQ(-EINVAL, pnm_queue_create(self->dev, 8, 0x80, &q));
	ASSERT_EQ(0, pnm_queue_create(self->dev, 8, 0, &q));
	for (i = 0; i < 9; i++)
		cmds[i] = make_cmd(self->r, 0);
	EXPECT_EQ(-EBUSY, pnm_submit_async(q, cmds, NULL, 9));
	EXPECT_EQ(-EINVAL, pnm_wait(q, comps, 1, 9, 0));
	cmds[0].out = pnm_buf(self->r, REGION, 4);	/* marked invalid */
	EXPECT_EQ(-EINVAL, pnm_submit_async(q, cmds, NULL, 1));
	EXPECT_EQ(0, pnm_queue_inflight(q));
	/* No user_data: each command is tagged with its index. */
	ASSERT_EQ(8, pnm_submit_async(q, cmds + 1, NULL, 8));
	EXPECT_EQ(-EINVAL, pnm_wait(q, comps, 9, 9, 0));
	ASSERT_EQ(8, pnm_wait(q, comps, 8, 9, 10000));
	for (i = 0; i < 8; i++)
		EXPECT_GT(8, comps[i].user_data);
	pnm_queue_destroy(q);
}

/* A command the driver rejects fails alone; the others of its batch run. */
static void check_rejection(struct __test_metadata *_metadata,
			    FIXTURE_DATA(async) *self)
{
	struct pnm_completion comps[4];
	struct cxl_pnm_cmd cmds[4];
	struct pnm_queue *q;
	unsigned int i;
	int n, got = 0;

	for (i = 0; i < 4; i++)
		cmds[i] = make_cmd(self->r, 2);
	cmds[2].table.handle = 999;
	ASSERT_EQ(0, pnm_queue_create(self->dev, 4, 0, &q));
	ASSERT_EQ(4, pnm_submit_async(q, cmds, NULL, 4));
	while (got < 4) {
		n = pnm_wait(q, comps + got, 1, 4 - got, 10000);
		ASSERT_LT(0, n) TH_LOG("%s", pnm_last_error());
		got += n;
	}
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(comps[i].user_data == 2 ? -ENOENT : 0, comps[i].res)
			TH_LOG("command %llu",
			       (unsigned long long)comps[i].user_data);
		if (comps[i].user_data != 2) {
			EXPECT_EQ(2, comps[i].result.count);
		}
	}
	pnm_queue_destroy(q);
}

TEST_F(async, rejection_uring)
{
	open_stream(_metadata, self, device_node());
	check_rejection(_metadata, self);
}

TEST_F(async, rejection_generic)
{
	open_stream(_metadata, self, prefixed("ioctl:"));
	check_rejection(_metadata, self);
}

/*
 * A slow command: ATTEND over 4096 listed pages of 16 tokens at head_dim
 * 128, every page in slot 0 of a zeroed pool, so the device reads 64 MiB.
 */
#define SLOW_PAGES	4096
#define SLOW_D		128
#define SLOW_TABLE	32768
#define SLOW_IN		(SLOW_TABLE + 4 * SLOW_PAGES)
#define SLOW_OUT	(SLOW_IN + 4 * SLOW_D + 4 * SLOW_PAGES)
#define SLOW_REGION	(128 * 1024)

static struct cxl_pnm_cmd make_slow_cmd(const struct pnm_region *r)
{
	uint32_t *list = (uint32_t *)((uint8_t *)r->addr + SLOW_IN +
				      4 * SLOW_D);
	struct cxl_pnm_cmd cmd;
	unsigned int p;

	memset(r->addr, 0, SLOW_REGION);
	for (p = 0; p < SLOW_PAGES; p++)
		list[p] = p;
	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_ATTEND;
	cmd.dtype = CXL_PNM_DTYPE_FP32;
	cmd.page_shift = 4;
	cmd.group = 1;
	cmd.head_dim = SLOW_D;
	cmd.n_tokens = SLOW_PAGES * 16;
	cmd.k = SLOW_PAGES;
	cmd.pool = pnm_buf(r, 0, 2 * SLOW_D * 4 * 16 + 2 * SLOW_D * 4);
	cmd.table = pnm_buf(r, SLOW_TABLE, 4 * SLOW_PAGES);
	cmd.in = pnm_buf(r, SLOW_IN, 4 * SLOW_D + 4 * SLOW_PAGES);
	cmd.out = pnm_buf(r, SLOW_OUT, 4 * SLOW_D + 4);
	return cmd;
}

/* pnm_wait() with no time left reports -ETIMEDOUT and loses nothing. */
TEST_F(async, wait_timeout)
{
	struct pnm_completion comps[64];
	struct cxl_pnm_cmd cmds[64];
	struct pnm_region *slow;
	struct pnm_queue *q;
	unsigned int i, got = 0;
	int n;

	open_stream(_metadata, self, device_node());
	ASSERT_EQ(0, pnm_region_alloc(self->dev, SLOW_REGION, &slow));
	cmds[0] = make_slow_cmd(slow);
	for (i = 1; i < 64; i++)
		cmds[i] = cmds[0];
	ASSERT_EQ(0, pnm_queue_create(self->dev, 64, 0, &q));
	ASSERT_EQ(64, pnm_submit_async(q, cmds, NULL, 64));
	/* 64 commands reading 64 MiB each take far longer than no time. */
	EXPECT_EQ(-ETIMEDOUT, pnm_wait(q, comps, 64, 64, 0));
	while (got < 64) {
		n = pnm_wait(q, comps, 1, 64, -1);
		ASSERT_LT(0, n) TH_LOG("%s", pnm_last_error());
		for (i = 0; i < (unsigned int)n; i++) {
			EXPECT_EQ(0, comps[i].res);
			EXPECT_EQ(SLOW_PAGES, comps[i].result.count);
		}
		got += n;
	}
	EXPECT_EQ(0, pnm_queue_inflight(q));
	pnm_queue_destroy(q);
	pnm_region_free(slow);
}

/* pnm_submit() gives the same results over io_uring and the ioctl. */
TEST_F(async, sync_submit_matches_ioctl)
{
	struct cxl_pnm_result by_uring[64], by_ioctl[64];
	struct cxl_pnm_cmd cmds[64];
	struct pnm_dev *ioctl_dev;
	struct pnm_region *r2;
	unsigned int i;

	open_stream(_metadata, self, device_node());
	ASSERT_EQ(0, pnm_open(prefixed("ioctl:"), &ioctl_dev));
	ASSERT_EQ(0, pnm_region_alloc(ioctl_dev, REGION, &r2));
	stream_fill(r2);
	for (i = 0; i < 64; i++)
		cmds[i] = make_cmd(self->r, pattern_k(i));
	ASSERT_EQ(0, pnm_submit(self->dev, cmds, by_uring, 64, 0))
		TH_LOG("%s", pnm_last_error());
	for (i = 0; i < 64; i++)
		cmds[i] = make_cmd(r2, pattern_k(i));
	ASSERT_EQ(0, pnm_submit(ioctl_dev, cmds, by_ioctl, 64, 0))
		TH_LOG("%s", pnm_last_error());
	for (i = 0; i < 64; i++) {
		EXPECT_EQ(by_ioctl[i].status, by_uring[i].status);
		EXPECT_EQ(by_ioctl[i].count, by_uring[i].count);
		EXPECT_EQ(by_ioctl[i].device_ns, by_uring[i].device_ns);
	}
	/* A bad handle: the uring path names the command. */
	cmds[0] = make_cmd(self->r, 2);
	cmds[0].in.handle = 999;
	EXPECT_EQ(-ENOENT, pnm_submit(self->dev, cmds, by_uring, 1, 0));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "command 0"));
	pnm_region_free(r2);
	pnm_close(ioctl_dev);
}

TEST_HARNESS_MAIN
