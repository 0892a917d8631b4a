// SPDX-License-Identifier: GPL-2.0-only
/*
 * The pnm-device process: counters, heartbeat, timing model, protocol
 * violations and recovery, command-line errors, idle CPU use and a clean
 * stop on SIGTERM.
 */
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

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct cxl_pnm_cmd nop_cmd(void)
{
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_NOP;
	return cmd;
}

TEST(counters_advance)
{
	struct pnm_direct_state before, after;
	struct cxl_pnm_result res[3];
	struct cxl_pnm_cmd cmds[3];
	struct pnm_unit_device ud;
	struct pnm_unit_stream s;
	struct pnm_dev *dev;
	uint64_t sum_ns = 0;
	unsigned int i;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	ASSERT_EQ(0, pnm_unit_stream_init(&s, dev, CXL_PNM_DTYPE_BF16, 64, 4, 2,
					  100, 0));
	pnm_unit_stream_fill(&s, 1);
	ASSERT_EQ(0, pnm_direct_get_state(dev, &before));

	cmds[0] = pnm_unit_cmd(&s, CXL_PNM_OP_DIGEST, 0, 0, 0, 0, 0);
	cmds[1] = pnm_unit_cmd(&s, CXL_PNM_OP_SELECT, 0, 0, 0, 0, 64);	/* k 0 */
	cmds[2] = nop_cmd();
	ASSERT_EQ(0, pnm_submit(dev, cmds, res, 3, 0));
	EXPECT_EQ(CXL_PNM_STATUS_OK, res[0].status);
	EXPECT_EQ(CXL_PNM_STATUS_BAD_K, res[1].status);
	EXPECT_EQ(CXL_PNM_STATUS_OK, res[2].status);
	for (i = 0; i < 3; i++) {
		EXPECT_LE(200, res[i].device_ns);	/* the default overhead */
		sum_ns += res[i].device_ns;
	}

	ASSERT_EQ(0, pnm_direct_get_state(dev, &after));
	EXPECT_EQ(before.cmds_completed + 3, after.cmds_completed);
	EXPECT_EQ(before.cmds_failed + 1, after.cmds_failed);
	EXPECT_EQ(before.device_ns + sum_ns, after.device_ns);
	/* DIGEST read at least every valid key row: 100 tokens x 64 x 2 bytes. */
	EXPECT_LE(before.bytes_read + 100 * 64 * 2, after.bytes_read);

	pnm_unit_stream_free(&s);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(heartbeat_advances_when_idle)
{
	struct pnm_direct_state a, b;
	struct pnm_unit_device ud;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	ASSERT_EQ(0, pnm_direct_get_state(dev, &a));
	sleep_ms(50);	/* at least one poll_max_us of 1 ms, many times over */
	ASSERT_EQ(0, pnm_direct_get_state(dev, &b));
	EXPECT_LT(a.heartbeat, b.heartbeat);
	EXPECT_EQ(PNM_HW_STATUS_READY | PNM_HW_STATUS_ENABLED, b.status);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/*
 * With 1 GB/s and a compute rate too high to matter, device_ns is the
 * overhead plus one ns per byte read.  ATTEND over pages 1 and 3 of a
 * 4-page fp16 stream (head_dim 32, group 4, last page 2 tokens) reads the
 * table (16 bytes), the query (512) and list (8), and K and V rows of 16 + 2
 * tokens (18 * 2 * 64 = 2304): 2840 bytes.
 */
TEST(timing_model_uses_bytes_read)
{
	const char *const args[] = {
		"--bandwidth", "1", "--compute", "1000000", "--overhead-ns", "1000", NULL,
	};
	struct pnm_unit_device ud;
	struct pnm_unit_stream s;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;
	struct pnm_hw_cmd hw;
	struct pnm_hw_cqe cqe;
	struct pnm_dev *dev;

	ASSERT_EQ(0, pnm_unit_open(&ud, args, &dev));
	ASSERT_EQ(0, pnm_unit_stream_init(&s, dev, CXL_PNM_DTYPE_FP16, 32, 4, 4,
					  50, 0));
	pnm_unit_stream_fill(&s, 2);
	s.list[0] = 1;
	s.list[1] = 3;
	cmd = pnm_unit_cmd(&s, CXL_PNM_OP_ATTEND, 2, 0, 0, 2,
			   pnm_unit_out_bytes(&s, CXL_PNM_OP_ATTEND, 0));

	hw = pnm_unit_hw_cmd(&cmd, &s);
	ASSERT_EQ(0, pnm_direct_submit_raw(dev, &hw, &cqe, 1, 0));
	EXPECT_EQ(CXL_PNM_STATUS_OK, le16toh(cqe.status));
	EXPECT_EQ(2, le32toh(cqe.result));
	EXPECT_EQ(2840, le64toh(cqe.bytes_read));
	EXPECT_EQ(1000 + 2840, le64toh(cqe.device_ns));

	ASSERT_EQ(0, pnm_submit(dev, &cmd, &res, 1, 0));
	EXPECT_EQ(1000 + 2840, res.device_ns);

	pnm_unit_stream_free(&s);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/* Wait up to 3 s for (status & @mask) == @want. */
static int wait_status(struct pnm_dev *dev, uint32_t mask, uint32_t want)
{
	struct pnm_direct_state st;
	unsigned int i;

	for (i = 0; i < 300; i++) {
		if (pnm_direct_get_state(dev, &st))
			return -1;
		if ((st.status & mask) == want)
			return 0;
		sleep_ms(10);
	}
	return -1;
}

/* Open the backing file of @ud through the device's own descriptor. */
static int open_device_file(const struct pnm_unit_device *ud)
{
	char link[128], target[160];
	int fd;

	for (fd = 3; fd < 64; fd++) {
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int)ud->pid, fd);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (!strncmp(target, ud->path, strlen(ud->path)))
			return open(link, O_RDWR);
	}
	return -1;
}

TEST(bad_doorbell_is_fatal_until_reset)
{
	struct pnm_unit_device ud;
	struct cxl_pnm_info info;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd = nop_cmd();
	struct pnm_hw_doorbell *db;
	struct pnm_hw_ctrl *ctrl;
	struct pnm_dev *dev;
	void *mem;
	int fd;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	ASSERT_EQ(0, pnm_get_info(dev, &info));
	ASSERT_LE(2, info.nr_queues);

	/*
	 * Another host view of the device, to ring queue 1 out of protocol;
	 * the file has no name any more, but the device still has it open.
	 */
	fd = open_device_file(&ud);
	ASSERT_LE(0, fd);
	mem = mmap(NULL, PNM_HW_CTRL_SIZE * 2, PROT_READ | PROT_WRITE,
		   MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ctrl = mem;
	db = (struct pnm_hw_doorbell *)((uint8_t *)mem + le64toh(ctrl->doorbell_offset));
	__atomic_store_n(&db[1].sq_tail, htole32(info.queue_depth + 5), __ATOMIC_RELEASE);

	ASSERT_EQ(0, wait_status(dev, PNM_HW_STATUS_FATAL | PNM_HW_STATUS_ENABLED,
				 PNM_HW_STATUS_FATAL));
	EXPECT_EQ(-EIO, pnm_submit(dev, &cmd, &res, 1, 0));

	/* The transport resets the device before its next batch. */
	EXPECT_EQ(0, pnm_submit(dev, &cmd, &res, 1, 0)) {
		TH_LOG("pnm_submit after reset: %s", pnm_last_error());
	}
	EXPECT_EQ(0, le32toh(db[1].sq_tail));
	EXPECT_EQ(CXL_PNM_STATUS_OK, res.status);

	munmap(mem, PNM_HW_CTRL_SIZE * 2);
	close(fd);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

TEST(sigterm_stops_cleanly)
{
	struct pnm_direct_state st;
	struct pnm_unit_device ud;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd = nop_cmd();
	struct pnm_dev *dev;
	int status;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	ASSERT_EQ(0, pnm_submit(dev, &cmd, &res, 1, 0));

	status = pnm_unit_device_stop(&ud);
	ASSERT_TRUE(WIFEXITED(status)) {
		TH_LOG("wait status %#x", status);
	}
	EXPECT_EQ(0, WEXITSTATUS(status));

	/* Our mapping outlives the file: the device left status 0 behind. */
	ASSERT_EQ(0, pnm_direct_get_state(dev, &st));
	EXPECT_EQ(0, st.status);
	EXPECT_EQ(-EIO, pnm_submit(dev, &cmd, &res, 1, 0));
	pnm_close(dev);
}

/* Per cent of one core that @pid used over @ms milliseconds. */
static double cpu_percent(pid_t pid, unsigned int ms)
{
	unsigned long long t0, t1;
	char path[64];
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (i = 0; i < 2; i++) {
		unsigned long utime, stime;
		FILE *f = fopen(path, "r");
		int n;

		if (!f)
			return -1;
		/* Fields 14 and 15: utime and stime, in clock ticks. */
		n = fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			   &utime, &stime);
		fclose(f);
		if (n != 2)
			return -1;
		if (i == 0) {
			t0 = utime + stime;
			sleep_ms(ms);
		} else {
			t1 = utime + stime;
		}
	}
	return 100.0 * (t1 - t0) / sysconf(_SC_CLK_TCK) / (ms / 1000.0);
}

TEST(idle_device_uses_little_cpu)
{
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	double percent;

	ASSERT_EQ(0, pnm_unit_open(&ud, NULL, &dev));
	sleep_ms(200);	/* past the spin after enable */
	percent = cpu_percent(ud.pid, 2000);
	ASSERT_LE(0, percent);
	ksft_print_msg("idle pnm-device used %.1f%% of a core over 2 s\n", percent);
	EXPECT_GT(5.0, percent);
	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/* Run pnm-device with @argv[1..]; returns its exit status, output in @log. */
static int run_device(const char *const *args, char *log, size_t log_size)
{
	const char *argv[16];
	unsigned int argc = 0;
	int pipefd[2], status;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	argv[argc++] = pnm_unit_device_binary();
	while (*args && argc < 15)
		argv[argc++] = *args++;
	argv[argc] = NULL;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		dup2(pipefd[1], STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	while (len + 1 < log_size &&
	       (n = read(pipefd[0], log + len, log_size - 1 - len)) > 0)
		len += n;
	log[len] = '\0';
	close(pipefd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST(rejects_bad_options)
{
	static const struct {
		const char *args[6];
		int exit_code;
		const char *message;
	} cases[] = {
		{ { "--size", "1M", NULL }, 2, "missing --mem" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--depth", "3", NULL }, 2,
		  "invalid --depth '3'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--queues", "0", NULL }, 2,
		  "invalid --queues '0'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "1000", NULL }, 2,
		  "invalid --size '1000'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "12X", NULL }, 2,
		  "invalid --size '12X'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--bandwidth", "0", NULL }, 2,
		  "invalid --bandwidth '0'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "8K", NULL }, 1,
		  "too small" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--bogus", NULL }, 2,
		  "usage:" },
		{ { "--help", NULL }, 0, "usage: pnm-device" },
	};
	char log[4096];
	unsigned int i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int code = run_device(cases[i].args, log, sizeof(log));

		EXPECT_EQ(cases[i].exit_code, code) {
			TH_LOG("case %u: %s", i, log);
		}
		EXPECT_NE(NULL, strstr(log, cases[i].message)) {
			TH_LOG("case %u: expected '%s' in: %s", i, cases[i].message, log);
		}
	}
	unlink("/dev/shm/pnm-unit-never");
}

TEST_HARNESS_MAIN
