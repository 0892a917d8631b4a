// SPDX-License-Identifier: GPL-2.0-only
/*
 * The messages and clean-up of pnm-demo and pnm-accuracy, run as a user
 * runs them.  Every mistake gets one line on stderr, before any work and
 * any banner, naming the bad value and what to do.  An interrupted
 * pnm-accuracy removes the device model it started.  PNM_BIN_DIR is the
 * folder of the programs under test.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "device_model.h"

#ifndef PNM_BIN_DIR
#define PNM_BIN_DIR "build/bin"
#endif

#define OUT_MAX		8192

/* What a finished program printed, and how it ended. */
struct run {
	char out[OUT_MAX];
	char err[OUT_MAX];
	int status;		/* exit status, or 128 + signal */
};

static void read_all(int fd, char *buf)
{
	size_t len = 0;
	ssize_t n;

	while (len < OUT_MAX - 1 && (n = read(fd, buf + len, OUT_MAX - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
}

/*
 * Run PNM_BIN_DIR/@prog with @argv (NULL-terminated, argv[0] included),
 * stdout and stderr into files, so neither pipe can fill up.
 */
static int run_tool(const char *prog, char *const argv[], struct run *r)
{
	char path[256], out[64], err[64];
	int status, fo, fe;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", PNM_BIN_DIR, prog);
	snprintf(out, sizeof(out), "/tmp/pnm-tools-test-%d.out", (int)getpid());
	snprintf(err, sizeof(err), "/tmp/pnm-tools-test-%d.err", (int)getpid());
	fo = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fe = open(err, O_RDWR | O_CREAT | O_TRUNC, 0600);
	unlink(out);
	unlink(err);
	if (fo < 0 || fe < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		dup2(fo, STDOUT_FILENO);
		dup2(fe, STDERR_FILENO);
		execv(path, argv);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -ECHILD;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	lseek(fo, 0, SEEK_SET);
	lseek(fe, 0, SEEK_SET);
	read_all(fo, r->out);
	read_all(fe, r->err);
	close(fo);
	close(fe);
	return 0;
}

static unsigned int lines(const char *s)
{
	unsigned int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static unsigned int count(const char *s, const char *what)
{
	unsigned int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s += strlen(what);
	}
	return n;
}

/* One line on stderr containing @want, nothing on stdout, status @status. */
#define EXPECT_ONE_LINE(r, want_status, want) do {				\
	EXPECT_EQ(want_status, (r).status) TH_LOG("stderr: %s", (r).err);	\
	EXPECT_EQ(1, lines((r).err)) TH_LOG("stderr: %s", (r).err);		\
	EXPECT_NE(NULL, strstr((r).err, want))					\
		TH_LOG("expected '%s' in: %s", want, (r).err);			\
	EXPECT_STREQ("", (r).out);						\
} while (0)

FIXTURE(demo) {
	struct run r;
};

FIXTURE_SETUP(demo)
{
	memset(&self->r, 0, sizeof(self->r));
}

FIXTURE_TEARDOWN(demo)
{
}

TEST_F(demo, bad_option_is_one_line_with_short_name)
{
	char *argv[] = { PNM_BIN_DIR "/pnm-demo", "--bogus", NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2,
			"pnm-demo: unknown option '--bogus'; try 'pnm-demo --help'\n");
	EXPECT_EQ(NULL, strstr(self->r.err, PNM_BIN_DIR));
}

TEST_F(demo, missing_value_named)
{
	char *argv[] = { "pnm-demo", "--context", NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2, "option '--context' needs a value");
}

TEST_F(demo, budget_must_fill_whole_pages)
{
	char *argv[] = { "pnm-demo", "--budget", "33", NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2,
			"--budget 33 is not a multiple of the 16-token page size (e.g. 32 or 48)");
}

TEST_F(demo, device_and_devices_conflict)
{
	char *argv[] = { "pnm-demo", "--device", "direct:/dev/shm/x",
			 "--devices", "2", NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2, "--device and --devices both choose the devices");
}

TEST_F(demo, duplicate_devices_rejected)
{
	char *argv[] = { "pnm-demo", "--devices", "direct:/dev/shm/x,/dev/shm/x",
			 NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2, "names one device twice");
}

TEST_F(demo, regular_file_needs_direct_prefix)
{
	char path[64], want[256];
	char *argv[] = { "pnm-demo", "--device", path, NULL };
	int fd;

	snprintf(path, sizeof(path), "/tmp/pnm-tools-test-%d.mem", (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_LE(0, fd);
	close(fd);
	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	unlink(path);
	snprintf(want, sizeof(want), "%s is a regular file, not a device node: use direct:%s",
		 path, path);
	EXPECT_ONE_LINE(self->r, 1, want);
}

TEST_F(demo, open_error_names_the_device_once)
{
	char *argv[] = { "pnm-demo", "--devices", "abc", NULL };

	ASSERT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 1, "pnm-demo: abc: ");
	EXPECT_EQ(1, count(self->r.err, "abc"));
}

/* Sizes are checked in the demo's own terms, before any banner. */
TEST_F(demo, oversized_context_in_demo_terms)
{
	struct model m;
	char *argv[] = { "pnm-demo", "--device", m.name, "--context", "16777216",
			 NULL };
	char *argv_dev[] = { "pnm-demo", "--device", m.name, "--context", "65536",
			     NULL };
	int ret = model_start(&m, "64M");

	if (ret == -ECHILD)
		SKIP(return, "device model %s did not start", PNM_DEVICE_BIN);
	ASSERT_EQ(0, ret);
	EXPECT_EQ(0, run_tool("pnm-demo", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 1, "lower --context (at most ");
	EXPECT_NE(NULL, strstr(self->r.err, "--context 16777216"));
	EXPECT_EQ(0, run_tool("pnm-demo", argv_dev, &self->r));
	EXPECT_ONE_LINE(self->r, 1, "MiB free: lower --context, --sequences or --layers");
	model_stop(&m);
}

FIXTURE(accuracy) {
	struct run r;
};

FIXTURE_SETUP(accuracy)
{
	memset(&self->r, 0, sizeof(self->r));
}

FIXTURE_TEARDOWN(accuracy)
{
}

TEST_F(accuracy, outputs_checked_before_the_run)
{
	char *csv[] = { "pnm-accuracy", "--spawn-device", "--csv",
			"/nonexistent-pnm-dir/x.csv", NULL };
	char *plot[] = { "pnm-accuracy", "--spawn-device", "--plot",
			 "/nonexistent-pnm-dir/x.png", NULL };

	ASSERT_EQ(0, run_tool("pnm-accuracy", csv, &self->r));
	EXPECT_ONE_LINE(self->r, 2,
			"--csv /nonexistent-pnm-dir/x.csv: folder /nonexistent-pnm-dir does not exist");
	ASSERT_EQ(0, run_tool("pnm-accuracy", plot, &self->r));
	EXPECT_ONE_LINE(self->r, 2,
			"--plot /nonexistent-pnm-dir/x.png: folder /nonexistent-pnm-dir does not exist");
}

TEST_F(accuracy, bad_option_is_one_line)
{
	char *argv[] = { "pnm-accuracy", "--bogus", NULL };

	ASSERT_EQ(0, run_tool("pnm-accuracy", argv, &self->r));
	EXPECT_ONE_LINE(self->r, 2,
			"pnm-accuracy: unknown option '--bogus'; try 'pnm-accuracy --help'\n");
}

static bool exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

/*
 * Send @sig in the middle of a run.  The spawned pnm-device must stop,
 * its backing file and log must go, and the program must die of @sig.
 */
static void interrupt_run(struct __test_metadata *_metadata, int sig)
{
	char path[256], mem[64], log[80];
	pid_t pid;
	int status, waited;

	snprintf(path, sizeof(path), "%s/pnm-accuracy", PNM_BIN_DIR);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, STDOUT_FILENO);
		execl(path, "pnm-accuracy", "--spawn-device", (char *)NULL);
		_exit(127);
	}
	snprintf(mem, sizeof(mem), "/dev/shm/pnm-accuracy-%d", (int)pid);
	snprintf(log, sizeof(log), "%s.log", mem);
	/* Wait for the model's ready line: the run has started. */
	for (waited = 0; waited < 10000 && !model_ready(log); waited += 10)
		usleep(10000);
	ASSERT_TRUE(model_ready(log)) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	ASSERT_EQ(0, kill(pid, sig));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
	EXPECT_EQ(sig, WTERMSIG(status));
	EXPECT_FALSE(exists(mem)) TH_LOG("%s left behind", mem);
	EXPECT_FALSE(exists(log)) TH_LOG("%s left behind", log);
}

TEST_F(accuracy, sigterm_removes_the_spawned_model)
{
	interrupt_run(_metadata, SIGTERM);
}

TEST_F(accuracy, sigint_removes_the_spawned_model)
{
	interrupt_run(_metadata, SIGINT);
}

TEST_HARNESS_MAIN
