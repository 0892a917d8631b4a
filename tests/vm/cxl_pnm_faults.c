// SPDX-License-Identifier: GPL-2.0-only
/*
 * How cxl_pnm copes with a failing device, in the VM.  Each test sets a
 * fault on the device model of the last device through the launcher's
 * fault channel (qemu/pnm-vm --help), checks what the driver does and
 * clears the fault again:
 *   slow: commands complete late; one that outlives its timeout fails with
 *     ETIMEDOUT, the queues are reset and later commands work;
 *   hang: the device serves no queue but beats: ETIMEDOUT, reset, every
 *     other command in flight fails with EIO, its regions are released;
 *   corrupt-cid, corrupt-phase: the bad completion is ignored and logged,
 *     the command it was meant for times out, the reset recovers;
 *   no-heartbeat: a device that completes commands stays live;
 *   exit: the device dies; in-flight and new commands fail with EIO within
 *     the heartbeat timeout, unbind zaps mappings, rmmod unloads the driver.
 * The tests run in order and the last one kills the device and unloads
 * cxl_pnm, so the runner starts this program after every other guest test.
 */
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include "pnm_vm_test.h"
#include "kselftest_harness.h"

#define PNM_PAGE		4096
/* Driver constant: a heartbeat unchanged this long with work is a hang. */
#define PNM_HEARTBEAT_TIMEOUT_S	2.0

/* The device under test: the last one, so earlier devices stay usable. */
static int dut(void)
{
	int n = pnm_count_devices();

	return n > 0 ? n - 1 : 0;
}

static int set_fault(struct __test_metadata *_metadata, const char *spec)
{
	char reply[128];
	int tty, rc;

	tty = pnm_fault_open();
	if (tty < 0)
		return tty;
	rc = pnm_fault_set(tty, dut(), spec, reply, sizeof(reply));
	close(tty);
	if (rc)
		TH_LOG("fault %s on device %d: %s (reply '%s')", spec, dut(),
		       pnm_errname(rc), reply);
	return rc;
}

/* Submit a NOP naming a page of region @handle through @ring. */
static void prep_nop_with_region(struct io_uring *ring, int fd,
				 uint32_t handle, uint64_t data)
{
	struct cxl_pnm_cmd cmd = {
		.opcode = CXL_PNM_OP_NOP,
		.in = { .handle = handle, .length = PNM_PAGE },
	};

	pnm_ring_prep(ring, fd, &cmd, data);
}

TEST(fault_channel)
{
	int fd = pnm_open_id(dut());

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_nop(fd, 0));
	EXPECT_TRUE(pnm_state_is(dut(), "live"));
	close(fd);
}

TEST(slow_device)
{
	uint64_t resets = pnm_sysfs_u64(dut(), "resets");
	int fd = pnm_open_id(dut());
	double t0;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_fault(_metadata, "slow:300"));
	t0 = pnm_now_s();
	EXPECT_EQ(0, pnm_nop(fd, 0));
	EXPECT_LE(0.25, pnm_now_s() - t0);
	/* Outlives its timeout: ETIMEDOUT once the queues are reset. */
	EXPECT_EQ(-ETIMEDOUT, pnm_nop(fd, 50));
	EXPECT_EQ(resets + 1, pnm_sysfs_u64(dut(), "resets"));
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_nop(fd, 0));
	EXPECT_TRUE(pnm_state_is(dut(), "live"));
	close(fd);
}

TEST(hang_timeout_reset)
{
	struct cxl_pnm_cmd nop = { .opcode = CXL_PNM_OP_NOP };
	uint64_t resets = pnm_sysfs_u64(dut(), "resets");
	uint64_t timed_out = pnm_sysfs_u64(dut(), "cmds_timed_out");
	struct cxl_pnm_region_alloc ra;
	struct cxl_pnm_info info;
	struct io_uring ring;
	uint64_t data = 0;
	int fd = pnm_open_id(dut());
	double t0;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pnm_ring_init(&ring, 8));
	ASSERT_EQ(0, pnm_get_info(fd, &info));
	ASSERT_EQ(0, pnm_alloc(fd, PNM_PAGE, &ra));
	ASSERT_EQ(0, set_fault(_metadata, "hang"));

	/* An io_uring command in flight, holding its region... */
	prep_nop_with_region(&ring, fd, ra.handle, 7);
	ASSERT_EQ(1, io_uring_submit(&ring));
	EXPECT_EQ(-ETIME, pnm_ring_wait(&ring, 0.2, NULL));
	/* ...whose handle goes away: the command keeps the region. */
	EXPECT_EQ(0, pnm_free(fd, ra.handle));

	t0 = pnm_now_s();
	EXPECT_EQ(-ETIMEDOUT, pnm_nop(fd, 200));
	/* The reset (RESET, ENABLE) of a live device takes milliseconds. */
	EXPECT_GT(2.0, pnm_now_s() - t0);
	EXPECT_EQ(resets + 1, pnm_sysfs_u64(dut(), "resets"));
	EXPECT_LE(timed_out + 1, pnm_sysfs_u64(dut(), "cmds_timed_out"));
	/* The reset failed the io_uring command and released its region. */
	EXPECT_EQ(-EIO, pnm_ring_wait(&ring, 5, &data));
	EXPECT_EQ(7, data);
	EXPECT_EQ(info.kv_free, pnm_sysfs_u64(dut(), "kv_free"));

	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_nop(fd, 0));
	pnm_ring_prep(&ring, fd, &nop, 9);
	ASSERT_EQ(1, io_uring_submit(&ring));
	EXPECT_EQ(0, pnm_ring_wait(&ring, 5, &data));
	EXPECT_EQ(9, data);
	EXPECT_TRUE(pnm_state_is(dut(), "live"));
	io_uring_queue_exit(&ring);
	close(fd);
}

TEST(hang_waiters_bounded)
{
	uint64_t resets = pnm_sysfs_u64(dut(), "resets");
	int fd = pnm_open_id(dut());
	pid_t pids[4];
	int i, status;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_fault(_metadata, "hang"));
	/* Several waiters time out together; each returns, none hangs. */
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i]) {
			int rc = pnm_nop(fd, 300);

			_exit(rc == -ETIMEDOUT || rc == -EIO ? 0 : 1);
		}
	}
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	EXPECT_LE(resets + 1, pnm_sysfs_u64(dut(), "resets"));
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_nop(fd, 0));
	close(fd);
}

TEST(corrupt_cid)
{
	uint64_t resets = pnm_sysfs_u64(dut(), "resets");
	int fd = pnm_open_id(dut());

	ASSERT_LE(0, fd);
	pnm_klog_mark("cxl_pnm_faults: corrupt_cid\n");
	ASSERT_EQ(0, set_fault(_metadata, "corrupt-cid"));
	/* The completion names the next, idle slot: dropped, so timeout. */
	EXPECT_EQ(-ETIMEDOUT, pnm_nop(fd, 300));
	EXPECT_TRUE(pnm_klog_has("cxl_pnm_faults: corrupt_cid",
				 "completion for idle slot"));
	EXPECT_EQ(resets + 1, pnm_sysfs_u64(dut(), "resets"));
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_nop(fd, 0));
	close(fd);
}

TEST(corrupt_phase)
{
	uint64_t resets = pnm_sysfs_u64(dut(), "resets");
	struct cxl_pnm_cmd cmds[2] = {
		{ .opcode = CXL_PNM_OP_NOP }, { .opcode = CXL_PNM_OP_NOP },
	};
	struct cxl_pnm_result results[2];
	int fd = pnm_open_id(dut());

	ASSERT_LE(0, fd);
	pnm_klog_mark("cxl_pnm_faults: corrupt_phase\n");
	ASSERT_EQ(0, set_fault(_metadata, "corrupt-phase"));
	/*
	 * The first completion carries the wrong phase; the second one, valid,
	 * shows that the device moved past it, so the driver skips it.
	 */
	EXPECT_EQ(-ETIMEDOUT, pnm_submit(fd, cmds, results, 2, 500));
	EXPECT_TRUE(pnm_klog_has("cxl_pnm_faults: corrupt_phase",
				 "has the wrong phase"));
	EXPECT_EQ(resets + 1, pnm_sysfs_u64(dut(), "resets"));
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	EXPECT_EQ(0, pnm_submit(fd, cmds, results, 2, 0));
	close(fd);
}

TEST(no_heartbeat)
{
	uint64_t beat;
	int fd = pnm_open_id(dut());
	double end;
	int fails = 0;

	ASSERT_LE(0, fd);
	ASSERT_EQ(0, set_fault(_metadata, "no-heartbeat"));
	beat = pnm_sysfs_u64(dut(), "heartbeat");
	/* Completions prove the device alive, past the heartbeat timeout. */
	for (end = pnm_now_s() + PNM_HEARTBEAT_TIMEOUT_S + 0.5;
	     pnm_now_s() < end; usleep(100000))
		fails += pnm_nop(fd, 0) != 0;
	EXPECT_EQ(0, fails);
	EXPECT_EQ(beat, pnm_sysfs_u64(dut(), "heartbeat"));
	EXPECT_TRUE(pnm_state_is(dut(), "live"));
	ASSERT_EQ(0, set_fault(_metadata, "none"));
	usleep(100000);
	EXPECT_NE(beat, pnm_sysfs_u64(dut(), "heartbeat"));
	close(fd);
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	siglongjmp(bus_jmp, sig);
}

/* Read one byte of @p; return the signal it raised, or 0. */
static int touch(volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old_bus, old_segv;
	int sig;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	sig = sigsetjmp(bus_jmp, 1);
	if (!sig)
		(void)*p;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return sig;
}

TEST(dead_device)
{
	struct cxl_pnm_cmd nop = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_region_alloc ra;
	struct io_uring ring;
	char dax[32], path[64];
	uint64_t data = 0;
	uint8_t *map;
	double t0, took;
	int id = dut(), fd, rc;

	fd = pnm_open_id(id);
	ASSERT_LE(0, fd);
	ASSERT_TRUE(pnm_dax_name(id, dax, sizeof(dax)));
	ASSERT_EQ(0, pnm_ring_init(&ring, 8));
	ASSERT_EQ(0, pnm_alloc(fd, PNM_PAGE, &ra));
	map = mmap(NULL, PNM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   ra.mmap_offset);
	ASSERT_NE(MAP_FAILED, map);
	map[0] = 0x5a;
	EXPECT_EQ(0, touch(map));

	ASSERT_EQ(0, set_fault(_metadata, "exit"));
	/* In flight on a dead device: EIO once the heartbeat is overdue. */
	pnm_ring_prep(&ring, fd, &nop, 11);
	ASSERT_EQ(1, io_uring_submit(&ring));
	t0 = pnm_now_s();
	EXPECT_EQ(-EIO, pnm_nop(fd, 0));
	took = pnm_now_s() - t0;
	EXPECT_GT(PNM_HEARTBEAT_TIMEOUT_S + 3, took);
	TH_LOG("SUBMIT failed after %.2f s", took);
	EXPECT_EQ(-EIO, pnm_ring_wait(&ring, 5, &data));
	EXPECT_EQ(11, data);
	EXPECT_TRUE(pnm_state_is(id, "dead"));

	/* New commands fail at once. */
	t0 = pnm_now_s();
	EXPECT_EQ(-EIO, pnm_nop(fd, 0));
	pnm_ring_prep(&ring, fd, &nop, 12);
	ASSERT_EQ(1, io_uring_submit(&ring));
	EXPECT_EQ(-EIO, pnm_ring_wait(&ring, 5, &data));
	EXPECT_GT(1.0, pnm_now_s() - t0);

	/* Unbind with the file open and the region mapped. */
	t0 = pnm_now_s();
	EXPECT_EQ(0, pnm_unbind(dax));
	took = pnm_now_s() - t0;
	EXPECT_GT(10.0, took);
	TH_LOG("unbind of the dead device took %.2f s", took);
	EXPECT_EQ(SIGBUS, touch(map));
	EXPECT_EQ(-ENODEV, pnm_nop(fd, 0));
	EXPECT_EQ(-ENODEV, pnm_alloc(fd, PNM_PAGE, &ra));
	pnm_ring_prep(&ring, fd, &nop, 13);
	ASSERT_EQ(1, io_uring_submit(&ring));
	EXPECT_EQ(-ENODEV, pnm_ring_wait(&ring, 5, &data));
	pnm_node_path(path, sizeof(path), id);
	EXPECT_NE(0, access(path, F_OK));

	/* The mapping and the file still pin the module: EWOULDBLOCK. */
	EXPECT_EQ(-EAGAIN, pnm_delete_module());
	io_uring_queue_exit(&ring);
	munmap(map, PNM_PAGE);
	close(fd);
	rc = pnm_delete_module();
	EXPECT_EQ(0, rc);
	EXPECT_NE(0, access("/sys/module/cxl_pnm", F_OK));
}

TEST_HARNESS_MAIN
