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
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

/*
 * Run pnm-device with @argv[1..]; returns its exit status, output in @log.
 * A non-zero @fsize_limit caps the files it may write (RLIMIT_FSIZE), so
 * that resizing its file fails.
 */
static int run_device_limited(const char *const *args, char *log,
			      size_t log_size, rlim_t fsize_limit)
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
		if (fsize_limit) {
			struct rlimit rl = { fsize_limit, fsize_limit };

			/* EFBIG rather than death by SIGXFSZ. */
			signal(SIGXFSZ, SIG_IGN);
			setrlimit(RLIMIT_FSIZE, &rl);
		}
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

static int run_device(const char *const *args, char *log, size_t log_size)
{
	return run_device_limited(args, log, log_size, 0);
}

TEST(rejects_bad_options)
{
	static const struct {
		const char *args[8];
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
		  "pnm-device: unknown option '--bogus'\ntry 'pnm-device --help'\n" },
		{ { "--mem", NULL }, 2,
		  "pnm-device: option '--mem' needs a value\ntry 'pnm-device --help'\n" },
		{ { "--mem", "", NULL }, 2, "invalid --mem ''" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--force=yes", NULL }, 2,
		  "option '--force=yes' takes no value" },
		/* Numbers are decimal: no octal, no hex, no sign, no space. */
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "0100000", NULL }, 2,
		  "invalid --size '0100000'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "0x100000", NULL }, 2,
		  "invalid --size '0x100000'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", " 8M", NULL }, 2,
		  "invalid --size ' 8M'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--queues", "0x4", NULL }, 2,
		  "invalid --queues '0x4'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--depth", "+64", NULL }, 2,
		  "invalid --depth '+64'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--units", "-1", NULL }, 2,
		  "invalid --units '-1'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--bandwidth", "0x1p4", NULL }, 2,
		  "invalid --bandwidth '0x1p4'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--compute", "1e3", NULL }, 2,
		  "invalid --compute '1e3'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--compute", "inf", NULL }, 2,
		  "invalid --compute 'inf'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--overhead-ns", "0200", "--size",
		    "040960", NULL }, 1, "size 40960 is too small" },
		/* Sizes are bounded: no 16 PiB sparse file. */
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "16777216G", NULL }, 2,
		  "invalid --size '16777216G': above the largest device memory" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--size", "99999999999999999999",
		    NULL }, 2, "above the largest device memory" },
		{ { "--mem", "/dev/null", NULL }, 1,
		  "/dev/null: not a regular file" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--fault", "slow", NULL }, 2,
		  "invalid --fault 'slow'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--fault", "hang:x", NULL }, 2,
		  "invalid --fault 'hang:x'" },
		{ { "--mem", "/dev/shm/pnm-unit-never", "--fault", "none:3", NULL }, 2,
		  "invalid --fault 'none:3'" },
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
		/* One line and a hint, never the usage text, never a full path. */
		if (cases[i].exit_code == 2) {
			EXPECT_EQ(NULL, strstr(log, "usage:"));
			EXPECT_EQ(NULL, strstr(log, "/pnm-device:"));
		}
	}
	EXPECT_NE(0, access("/dev/shm/pnm-unit-never", F_OK)) {
		TH_LOG("a failed start left /dev/shm/pnm-unit-never behind");
	}
	unlink("/dev/shm/pnm-unit-never");
}

/* A path for a test's own file, unique per process and call. */
static void test_path(char *path, size_t size, const char *what)
{
	static unsigned int counter;

	snprintf(path, size, "/dev/shm/pnm-unit-%d-%s-%u", (int)getpid(), what,
		 counter++);
	unlink(path);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : st.st_size;
}

/* A FIFO is not device memory either, and opening it must not block. */
TEST(rejects_fifo)
{
	const char *args[] = { "--mem", NULL, NULL };
	char path[96], log[1024];

	test_path(path, sizeof(path), "fifo");
	ASSERT_EQ(0, mkfifo(path, 0600));
	args[1] = path;
	EXPECT_EQ(1, run_device(args, log, sizeof(log)));
	EXPECT_NE(NULL, strstr(log, "not a regular file")) {
		TH_LOG("%s", log);
	}
	unlink(path);
}

/*
 * A second device model on the same file is refused before it touches
 * the file; the first keeps its size, its status and its commands.
 */
TEST(second_device_on_same_file_is_refused)
{
	const char *args[] = { "--mem", NULL, "--size", "16M", NULL };
	struct pnm_direct_state st;
	struct pnm_unit_device ud;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd = nop_cmd();
	struct pnm_dev *dev;
	char name[128], log[1024];
	off_t size;

	ASSERT_EQ(0, pnm_unit_device_start(&ud, NULL));
	snprintf(name, sizeof(name), "direct:%s", ud.path);
	ASSERT_EQ(0, pnm_open(name, &dev));
	size = file_size(ud.path);

	args[1] = ud.path;
	EXPECT_EQ(1, run_device(args, log, sizeof(log)));
	EXPECT_NE(NULL, strstr(log, "in use by another pnm-device")) {
		TH_LOG("%s", log);
	}
	EXPECT_EQ(size, file_size(ud.path));
	ASSERT_EQ(0, pnm_direct_get_state(dev, &st));
	EXPECT_EQ(PNM_HW_STATUS_READY | PNM_HW_STATUS_ENABLED, st.status);
	EXPECT_EQ(0, pnm_submit(dev, &cmd, &res, 1, 0));
	EXPECT_EQ(CXL_PNM_STATUS_OK, res.status);

	pnm_close(dev);
	EXPECT_EQ(0, pnm_unit_device_stop(&ud));
}

/*
 * An existing file that is not device memory is kept unless --force.
 * --fault exit:0 makes the forced device stop on its own once ready.
 */
TEST(foreign_file_needs_force)
{
	const char *args[] = { "--mem", NULL, "--size", "1M", "--units", "1", NULL,
			       NULL, NULL };
	static const char text[] = "not device memory\n";
	char path[96], log[2048], buf[sizeof(text)];
	uint64_t magic = 0;
	int fd;

	test_path(path, sizeof(path), "foreign");
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(text) - 1, write(fd, text, sizeof(text) - 1));
	args[1] = path;

	EXPECT_EQ(1, run_device(args, log, sizeof(log)));
	EXPECT_NE(NULL, strstr(log, "does not hold CXL-PNM device memory")) {
		TH_LOG("%s", log);
	}
	EXPECT_NE(NULL, strstr(log, path));
	EXPECT_NE(NULL, strstr(log, "--force"));
	EXPECT_EQ((off_t)sizeof(text) - 1, file_size(path));
	ASSERT_EQ((ssize_t)sizeof(text) - 1, pread(fd, buf, sizeof(text) - 1, 0));
	EXPECT_EQ(0, memcmp(buf, text, sizeof(text) - 1));

	args[6] = "--force";
	args[7] = "--fault=exit:0";
	EXPECT_EQ(3, run_device(args, log, sizeof(log))) {
		TH_LOG("%s", log);
	}
	EXPECT_EQ(1 << 20, file_size(path));
	ASSERT_EQ(8, pread(fd, &magic, 8, 0));
	EXPECT_EQ(PNM_HW_MAGIC, le64toh(magic));

	/* Device memory of an earlier run is taken without --force. */
	args[6] = "--fault=exit:0";
	args[7] = NULL;
	EXPECT_EQ(3, run_device(args, log, sizeof(log))) {
		TH_LOG("%s", log);
	}
	close(fd);
	unlink(path);
}

/* Leading zeros are decimal, not octal. */
TEST(numbers_are_decimal)
{
	const char *args[] = { "--mem", NULL, "--size", "01024K", "--queues", "010",
			       "--depth", "0064", "--fault=exit:0", NULL };
	struct pnm_hw_ctrl ctrl;
	char path[96], log[2048];
	int fd;

	test_path(path, sizeof(path), "decimal");
	args[1] = path;
	EXPECT_EQ(3, run_device(args, log, sizeof(log))) {
		TH_LOG("%s", log);
	}
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(ctrl), pread(fd, &ctrl, sizeof(ctrl), 0));
	close(fd);
	EXPECT_EQ(10, le32toh(ctrl.nr_queues));
	EXPECT_EQ(64, le32toh(ctrl.queue_depth));
	EXPECT_EQ(1 << 20, le64toh(ctrl.dev_size));
	unlink(path);
}

/* A start that fails after creating the file removes it again. */
TEST(failed_start_leaves_no_file)
{
	const char *args[] = { "--mem", NULL, "--size", "8M", NULL };
	char path[96], log[1024];

	test_path(path, sizeof(path), "efbig");
	args[1] = path;
	EXPECT_EQ(1, run_device_limited(args, log, sizeof(log), 1 << 20));
	EXPECT_NE(NULL, strstr(log, "failed to resize to 8388608 bytes")) {
		TH_LOG("%s", log);
	}
	EXPECT_NE(0, access(path, F_OK)) {
		TH_LOG("%s was left behind", path);
	}
	unlink(path);
}

TEST_HARNESS_MAIN
