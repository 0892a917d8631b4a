/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Device model processes for host tests: start pnm-device on a /dev/shm
 * file of this test's own, wait for its ready line, stop it and remove the
 * file.  PNM_DEVICE_BIN names the binary (the build passes the one it
 * built); the environment variable PNM_DEVICE overrides it.
 */
#ifndef DEVICE_MODEL_H
#define DEVICE_MODEL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PNM_DEVICE_BIN
#define PNM_DEVICE_BIN "pnm-device"
#endif

#define READY_TIMEOUT_MS	10000

/* A running device model on its own backing file. */
struct model {
	pid_t pid;
	char mem[96];
	char log[112];
	char name[104];		/* "direct:" mem, for pnm_open() */
};

static inline bool model_ready(const char *log)
{
	char buf[4096];
	ssize_t n;
	int fd = open(log, O_RDONLY);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "pnm-device: ready") != NULL;
}

/*
 * Start pnm-device with stderr to a log file and wait for its ready line.
 * A pipe would fill up and block the model, because the test stops
 * reading once the model is ready.
 */
static inline int model_start(struct model *m, const char *size)
{
	static unsigned int counter;
	const char *bin = getenv("PNM_DEVICE") ? getenv("PNM_DEVICE") : PNM_DEVICE_BIN;
	char mem[sizeof(m->mem)];
	int waited, fd;

	/* Format from a local copy: gcc cannot tell m->mem from m->log. */
	snprintf(mem, sizeof(mem), "/dev/shm/pnm-runtime-test-%d-%u",
		 (int)getpid(), counter++);
	memcpy(m->mem, mem, sizeof(mem));
	snprintf(m->log, sizeof(m->log), "%s.log", mem);
	snprintf(m->name, sizeof(m->name), "direct:%s", mem);

	m->pid = fork();
	if (m->pid < 0)
		return -errno;
	if (m->pid == 0) {
		/* The model must not outlive a test that is killed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		execl(bin, bin, "--mem", m->mem, "--size", size, (char *)NULL);
		fprintf(stderr, "exec %s failed: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (waited = 0; waited < READY_TIMEOUT_MS; waited += 10) {
		int status;

		if (model_ready(m->log))
			return 0;
		if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
			m->pid = 0;
			return -ECHILD;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static inline void model_stop(struct model *m)
{
	int status;

	if (m->pid > 0) {
		kill(m->pid, SIGTERM);
		waitpid(m->pid, &status, 0);
		m->pid = 0;
	}
	unlink(m->mem);
	unlink(m->log);
}

#endif /* DEVICE_MODEL_H */
