// SPDX-License-Identifier: GPL-2.0-only
/*
 * Faults of the device model (--fault and the run-time PATH.fault file),
 * seen from the host through the direct transport, and the device's
 * promise not to lose data: a rejected command changes no byte of device
 * memory, an accepted one only its output, and the KV area survives a
 * reset.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "pnm_unit.h"

/* Commands that must not complete fail after this long. */
#define SHORT_TIMEOUT_MS	300

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static int submit_nops(struct pnm_dev *dev, unsigned int n, unsigned int timeout_ms)
{
	struct cxl_pnm_result res[4];
	struct cxl_pnm_cmd cmds[4];
	unsigned int i;
	int ret;

	memset(cmds, 0, sizeof(cmds));
	ret = pnm_submit(dev, cmds, res, n, timeout_ms);
	for (i = 0; !ret && i < n; i++)
		if (res[i].status != CXL_PNM_STATUS_OK)
			return -EPROTO;
	return ret;
}

static uint64_t heartbeat(struct pnm_dev *dev)
{
	struct pnm_direct_state st;

	if (pnm_direct_get_state(dev, &st))
		return 0;
	return st.heartbeat;
}

/* Whether the heartbeat moves over 50 ms: at least 50 idle polls of 1 ms. */
static bool heart_beats(struct pnm_dev *dev)
{
	uint64_t before = heartbeat(dev);

	sleep_ms(50);
	return heartbeat(dev) != before;
}

static void write_fault_file(const struct pnm_unit_device *ud, const char *fault)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s.fault", ud->path);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%s\n", fault);
		fclose(f);
	}
}

static void remove_fault_file(const struct pnm_unit_device *ud)
{
	char path[128];

	snprintf(path, sizeof(path), "%s.fault", ud->path);
	unlink(path);
}

TEST(hang_stops_completions_but_not_the_heartbeat)
{
	const char *const args[] = { "--fault", "hang:2", NULL };
	struct pnm_direct_state st;
	struct pnm_unit_device ud;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	EXPECT_EQ(0, submit_nops(dev, 2, 0));
	EXPECT_EQ(-ETIMEDOUT, submit_nops(dev, 1, SHORT_TIMEOUT_MS));
	EXPECT_TRUE(heart_beats(dev));
	ASSERT_EQ(0, pnm_direct_get_state(dev, &st));
	EXPECT_EQ(2, st.cmds_completed);
	/* The control word is still served: the transport's reset works. */
	EXPECT_EQ(-ETIMEDOUT, submit_nops(dev, 1, SHORT_TIMEOUT_MS));
	ASSERT_EQ(0, pnm_direct_get_state(dev, &st));
	EXPECT_EQ(PNM_HW_STATUS_READY | PNM_HW_STATUS_ENABLED, st.status);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(slow_delays_each_completion)
{
	const char *const args[] = { "--fault", "slow:200", NULL };
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	uint64_t start, beat;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	start = now_ms();
	beat = heartbeat(dev);
	EXPECT_EQ(0, submit_nops(dev, 2, 0));
	EXPECT_LE(400, now_ms() - start);
	/* A slow device is alive: it beats while it holds a completion. */
	EXPECT_LT(beat + 100, heartbeat(dev));
	EXPECT_EQ(-ETIMEDOUT, submit_nops(dev, 1, 50));
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(exit_kills_the_device_after_n_commands)
{
	const char *const args[] = { "--fault", "exit:2", NULL };
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	int ret, status;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	EXPECT_EQ(0, submit_nops(dev, 2, 0));
	/* A dead device clears nothing: the host only sees no answer. */
	ret = submit_nops(dev, 1, SHORT_TIMEOUT_MS);
	EXPECT_TRUE(ret == -ETIMEDOUT || ret == -EIO) {
		TH_LOG("submit to a dead device: %d (%s)", ret, pnm_last_error());
	}
	EXPECT_FALSE(heart_beats(dev));
	pnm_close(dev);
	status = pnm_unit_device_stop(&ud);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(3, WEXITSTATUS(status));
}

TEST(corrupt_cid_names_a_wrong_slot_once)
{
	const char *const args[] = { "--fault", "corrupt-cid:1", NULL };
	struct pnm_unit_device ud;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	EXPECT_EQ(0, submit_nops(dev, 1, 0));
	EXPECT_EQ(-EIO, submit_nops(dev, 1, SHORT_TIMEOUT_MS));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "slot")) {
		TH_LOG("%s", pnm_last_error());
	}
	/* One-shot: after the transport's reset the device answers again. */
	EXPECT_EQ(0, submit_nops(dev, 2, 0));
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(corrupt_phase_hides_a_completion_once)
{
	const char *const args[] = { "--fault", "corrupt-phase:1", NULL };
	struct pnm_direct_state st;
	struct pnm_unit_device ud;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	EXPECT_EQ(0, submit_nops(dev, 1, 0));
	EXPECT_EQ(-ETIMEDOUT, submit_nops(dev, 1, SHORT_TIMEOUT_MS));
	/* The device did complete it: only its phase was wrong. */
	ASSERT_EQ(0, pnm_direct_get_state(dev, &st));
	EXPECT_EQ(2, st.cmds_completed);
	EXPECT_EQ(0, submit_nops(dev, 2, 0));
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(no_heartbeat_still_serves_commands)
{
	const char *const args[] = { "--fault", "no-heartbeat:1", NULL };
	struct pnm_unit_device ud;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	EXPECT_TRUE(heart_beats(dev));
	EXPECT_EQ(0, submit_nops(dev, 1, 0));
	EXPECT_FALSE(heart_beats(dev));
	EXPECT_EQ(0, submit_nops(dev, 3, 0));
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/* PATH.fault sets and clears a fault while the device runs. */
TEST(fault_file_injects_at_run_time)
{
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	unsigned int tries;
	int ret = 0;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	EXPECT_EQ(0, submit_nops(dev, 1, 0));

	/* An invalid fault is logged and ignored. */
	write_fault_file(&ud, "bogus");
	sleep_ms(250);
	EXPECT_EQ(0, submit_nops(dev, 1, 0));

	/* The device looks at the file every 100 ms. */
	write_fault_file(&ud, "hang");
	for (tries = 0; tries < 20; tries++) {
		ret = submit_nops(dev, 1, 100);
		if (ret)
			break;
		sleep_ms(50);
	}
	EXPECT_EQ(-ETIMEDOUT, ret);
	EXPECT_TRUE(heart_beats(dev));

	write_fault_file(&ud, "none");
	EXPECT_EQ(0, submit_nops(dev, 2, 0)) {
		TH_LOG("after clearing the fault: %s", pnm_last_error());
	}
	remove_fault_file(&ud);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/* ---- no data loss ------------------------------------------------------ */

/* Map the whole device memory of @ud through the device's own descriptor. */
static uint8_t *map_device(const struct pnm_unit_device *ud, uint64_t size)
{
	char link[128], target[160];
	void *mem = MAP_FAILED;
	int fd;

	for (fd = 3; fd < 64 && mem == MAP_FAILED; fd++) {
		ssize_t n;
		int mfd;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)ud->pid, fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, ud->path, strlen(ud->path)))
			continue;
		mfd = open(link, O_RDWR);
		if (mfd < 0)
			continue;
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
		close(mfd);
	}
	return mem == MAP_FAILED ? NULL : mem;
}

FIXTURE(memory) {
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	struct pnm_unit_stream s;
	struct pnm_direct_state st;
	uint8_t *mem;
	uint8_t *snapshot;
};

/* 80 MiB: room for the 64 MiB page table of a BAD_LENGTH command. */
FIXTURE_SETUP(memory)
{
	const char *const args[] = { "--size", "80M", NULL };
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;

	ASSERT_EQ(0, pnm_unit_open(&self->ud, args, &self->dev));
	ASSERT_EQ(0, pnm_direct_get_state(self->dev, &self->st));
	self->mem = map_device(&self->ud, self->st.dev_size);
	ASSERT_NE(NULL, self->mem);
	self->snapshot = malloc(self->st.dev_size);
	ASSERT_NE(NULL, self->snapshot);
	ASSERT_EQ(0, pnm_unit_stream_init(&self->s, self->dev, CXL_PNM_DTYPE_BF16,
					  64, 4, 4, 100, 0));
	pnm_unit_stream_fill(&self->s, 7);
	cmd = pnm_unit_cmd(&self->s, CXL_PNM_OP_DIGEST, 0, 0, 0, 0, 0);
	ASSERT_EQ(0, pnm_submit(self->dev, &cmd, &res, 1, 0));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
}

FIXTURE_TEARDOWN(memory)
{
	if (self->s.region)
		pnm_unit_stream_free(&self->s);
	free(self->snapshot);
	if (self->mem)
		munmap(self->mem, self->st.dev_size);
	pnm_close(self->dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&self->ud));
}

/* The KV area, from kv_offset to the end of device memory. */
static void snapshot_kv(FIXTURE_DATA(memory) *self)
{
	memcpy(self->snapshot, self->mem + self->st.kv_offset, self->st.kv_size);
}

/* The first byte of the KV area outside [lo, hi) that changed, or -1. */
static int64_t kv_changed(FIXTURE_DATA(memory) *self, uint64_t lo, uint64_t hi)
{
	const uint8_t *now = self->mem + self->st.kv_offset;
	uint64_t i;

	if (!memcmp(self->snapshot, now, self->st.kv_size))
		return -1;
	for (i = 0; i < self->st.kv_size; i++) {
		uint64_t dpa = self->st.kv_offset + i;

		if (self->snapshot[i] != now[i] && (dpa < lo || dpa >= hi))
			return (int64_t)dpa;
	}
	return -1;
}

/* A valid raw command of @opcode over the fixture's stream. */
static struct pnm_hw_cmd good_hw(FIXTURE_DATA(memory) *self, unsigned int opcode)
{
	struct pnm_unit_stream *s = &self->s;
	struct cxl_pnm_cmd cmd;
	unsigned int k = opcode == CXL_PNM_OP_ATTEND ? 2 : 3;

	s->list[0] = 1;
	s->list[1] = 3;
	cmd = pnm_unit_cmd(s, opcode, opcode == CXL_PNM_OP_DIGEST ? 0 : k, 0, 0,
			   opcode == CXL_PNM_OP_ATTEND ? 2 : 0,
			   pnm_unit_out_bytes(s, opcode, k));
	return pnm_unit_hw_cmd(&cmd, s);
}

/*
 * One command for each status of the validation table: each changes no
 * byte of the KV area, the whole 80 MiB of it; each accepted opcode
 * changes nothing outside its output.
 */
TEST_F(memory, no_command_writes_outside_its_output)
{
	uint64_t table_dpa = pnm_direct_region_dpa(self->s.region) + self->s.table_off;
	uint32_t saved_entry = self->s.table[0];
	unsigned int status, op;

	for (status = CXL_PNM_STATUS_BAD_OPCODE; status <= CXL_PNM_STATUS_OVERLAP; status++) {
		struct pnm_hw_cmd hw = good_hw(self, CXL_PNM_OP_SELECT_ATTEND);
		struct pnm_hw_cqe cqe;
		int64_t at;

		switch (status) {
		case CXL_PNM_STATUS_BAD_OPCODE:
			hw.opcode = PNM_OP_COUNT;
			break;
		case CXL_PNM_STATUS_BAD_DTYPE:
			hw.dtype = PNM_DTYPE_COUNT;
			break;
		case CXL_PNM_STATUS_BAD_SHAPE:
			hw.head_dim = htole16(24);
			break;
		case CXL_PNM_STATUS_BAD_RESERVED:
			hw.rsvd = 1;
			break;
		case CXL_PNM_STATUS_BAD_RANGE:
			hw.out_dpa = htole64(self->st.dev_size - 4);
			break;
		case CXL_PNM_STATUS_SHORT_BUFFER:
			hw.out_len = htole32(4);
			break;
		case CXL_PNM_STATUS_BAD_PAGE:
			self->s.table[0] = self->s.n_slots;
			break;
		case CXL_PNM_STATUS_BAD_LIST:
			hw = good_hw(self, CXL_PNM_OP_ATTEND);
			self->s.list[1] = 1;
			break;
		case CXL_PNM_STATUS_BAD_K:
			hw.k = 0;
			break;
		case CXL_PNM_STATUS_BAD_LENGTH:
			/* 2^24 + 1 pages of 4 tokens, a table at the end of memory. */
			hw.opcode = PNM_OP_DIGEST;
			hw.page_shift = 2;
			hw.n_tokens = htole32((1U << 26) + 1);
			hw.table_len = htole32(4 * ((1U << 24) + 1));
			/* Its entries read 0, a slot of the stream's pool. */
			hw.table_dpa = htole64(self->st.dev_size - 4 * ((1ULL << 24) + 1));
			break;
		case CXL_PNM_STATUS_OVERLAP:
			hw.out_dpa = htole64(table_dpa);
			break;
		}
		snapshot_kv(self);
		ASSERT_EQ(0, pnm_direct_submit_raw(self->dev, &hw, &cqe, 1, 0));
		EXPECT_EQ(status, le16toh(cqe.status)) {
			TH_LOG("expected %s, got %s", pnm_status_name(status),
			       pnm_status_name(le16toh(cqe.status)));
		}
		at = kv_changed(self, 0, 0);
		EXPECT_EQ(-1, at) {
			TH_LOG("%s command changed DPA %#llx", pnm_status_name(status),
			       (long long)at);
		}
		self->s.table[0] = saved_entry;
		self->s.list[1] = 3;
	}

	for (op = CXL_PNM_OP_DIGEST; op <= CXL_PNM_OP_SELECT_ATTEND; op++) {
		struct pnm_hw_cmd hw = good_hw(self, op);
		struct pnm_hw_cqe cqe;
		uint64_t lo = le64toh(hw.out_dpa), hi = lo + le32toh(hw.out_len);
		int64_t at;

		if (op == CXL_PNM_OP_DIGEST) {
			lo = le64toh(hw.pool_dpa) + self->s.n_slots *
			     pnm_hw_slot_bytes(hw.dtype, hw.page_shift, 64);
			hi = le64toh(hw.pool_dpa) + le32toh(hw.pool_len);
		}
		snapshot_kv(self);
		ASSERT_EQ(0, pnm_direct_submit_raw(self->dev, &hw, &cqe, 1, 0));
		EXPECT_EQ(CXL_PNM_STATUS_OK, le16toh(cqe.status));
		at = kv_changed(self, lo, hi);
		EXPECT_EQ(-1, at) {
			TH_LOG("opcode %u changed DPA %#llx outside [%#llx, %#llx)", op,
			       (long long)at, (unsigned long long)lo,
			       (unsigned long long)hi);
		}
	}
}

/*
 * RESET and ENABLE leave the KV area alone: fill, reset from outside,
 * let the transport re-enable, compare every byte, then recompute the
 * digests and find the same bytes.
 */
TEST_F(memory, kv_area_survives_reset)
{
	struct pnm_hw_ctrl *ctrl = (struct pnm_hw_ctrl *)self->mem;
	struct pnm_direct_state st;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;
	unsigned int i;
	int64_t at;

	snapshot_kv(self);
	__atomic_store_n(&ctrl->control, htole32(PNM_HW_CONTROL_RESET), __ATOMIC_RELEASE);
	for (i = 0; i < 300; i++) {
		ASSERT_EQ(0, pnm_direct_get_state(self->dev, &st));
		if (!(st.status & PNM_HW_STATUS_ENABLED))
			break;
		sleep_ms(10);
	}
	ASSERT_EQ(PNM_HW_STATUS_READY, st.status);
	EXPECT_EQ(-EIO, submit_nops(self->dev, 1, 0));
	/* The transport resets and re-enables before its next batch. */
	EXPECT_EQ(0, submit_nops(self->dev, 1, 0)) {
		TH_LOG("%s", pnm_last_error());
	}
	at = kv_changed(self, 0, 0);
	EXPECT_EQ(-1, at) {
		TH_LOG("reset and enable changed DPA %#llx", (long long)at);
	}
	cmd = pnm_unit_cmd(&self->s, CXL_PNM_OP_DIGEST, 0, 0, 0, 0, 0);
	ASSERT_EQ(0, pnm_submit(self->dev, &cmd, &res, 1, 0));
	EXPECT_EQ(CXL_PNM_STATUS_OK, res.status);
	EXPECT_EQ(-1, kv_changed(self, 0, 0));
}

TEST_HARNESS_MAIN
