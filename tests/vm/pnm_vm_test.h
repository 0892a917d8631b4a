/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers of the VM reliability tests (tests/vm/): device nodes and their
 * dax devices, the driver's sysfs counters, commands through the SUBMIT
 * ioctl and io_uring, the kernel log and the launcher's fault channel.
 * Each test program includes this header once; everything is static.
 */
#ifndef PNM_VM_TEST_H
#define PNM_VM_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <liburing.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/cxl_pnm.h>

#define PNM_SYSFS_CLASS		"/sys/class/cxl_pnm"
#define PNM_DAX_DRIVER		"/sys/bus/dax/drivers/cxl_pnm"
/* The launcher's fault channel (qemu/pnm-vm --help). */
#define PNM_FAULT_TTY		"/dev/ttyS1"
#define PNM_FAULT_REPLY_S	15

static inline double pnm_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Number of /dev/cxl/pnmN nodes. */
static inline int pnm_count_devices(void)
{
	glob_t g;
	int n = 0;

	if (!glob("/dev/cxl/pnm[0-9]*", 0, NULL, &g))
		n = (int)g.gl_pathc;
	globfree(&g);
	return n;
}

static inline void pnm_node_path(char *buf, size_t size, int id)
{
	snprintf(buf, size, "/dev/cxl/pnm%d", id);
}

static inline int pnm_open_id(int id)
{
	char path[64];

	pnm_node_path(path, sizeof(path), id);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Read sysfs attribute @attr of pnm@id as a string; false if absent. */
static inline bool pnm_sysfs_str(int id, const char *attr, char *buf,
				 size_t size)
{
	char path[128];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), PNM_SYSFS_CLASS "/pnm%d/%s", id, attr);
	f = fopen(path, "r");
	if (!f)
		return false;
	ok = fgets(buf, (int)size, f) != NULL;
	fclose(f);
	if (ok)
		buf[strcspn(buf, "\n")] = '\0';
	return ok;
}

static inline uint64_t pnm_sysfs_u64(int id, const char *attr)
{
	char buf[32];

	if (!pnm_sysfs_str(id, attr, buf, sizeof(buf)))
		return UINT64_MAX;
	return strtoull(buf, NULL, 10);
}

static inline bool pnm_state_is(int id, const char *state)
{
	char buf[16];

	return pnm_sysfs_str(id, "state", buf, sizeof(buf)) &&
	       !strcmp(buf, state);
}

/* The dax device pnm@id is bound to, e.g. "dax1.0". */
static inline bool pnm_dax_name(int id, char *buf, size_t size)
{
	char path[128], target[PATH_MAX];
	ssize_t n;
	char *base;

	snprintf(path, sizeof(path), PNM_SYSFS_CLASS "/pnm%d/device", id);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= size)
		return false;
	memcpy(buf, base, strlen(base) + 1);
	return true;
}

static inline int pnm_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/* Unbind dax device @dax from cxl_pnm. */
static inline int pnm_unbind(const char *dax)
{
	return pnm_write_file(PNM_DAX_DRIVER "/unbind", dax);
}

/* Bind @dax to cxl_pnm again and wait up to 10 s for node pnm@id. */
static inline int pnm_bind(const char *dax, int id)
{
	char path[64];
	double end;
	int rc;

	rc = pnm_write_file(PNM_DAX_DRIVER "/bind", dax);
	if (rc)
		return rc;
	pnm_node_path(path, sizeof(path), id);
	for (end = pnm_now_s() + 10; pnm_now_s() < end; usleep(20000))
		if (!access(path, F_OK))
			return 0;
	return -ETIMEDOUT;
}

static inline int pnm_delete_module(void)
{
	return syscall(SYS_delete_module, "cxl_pnm", O_NONBLOCK) ? -errno : 0;
}

static inline int pnm_get_info(int fd, struct cxl_pnm_info *info)
{
	memset(info, 0, sizeof(*info));
	return ioctl(fd, CXL_PNM_IOC_GET_INFO, info) ? -errno : 0;
}

static inline int pnm_alloc(int fd, uint64_t size,
			    struct cxl_pnm_region_alloc *ra)
{
	memset(ra, 0, sizeof(*ra));
	ra->size = size;
	return ioctl(fd, CXL_PNM_IOC_REGION_ALLOC, ra) ? -errno : 0;
}

static inline int pnm_free(int fd, uint32_t handle)
{
	struct cxl_pnm_region_free rf = { .handle = handle };

	return ioctl(fd, CXL_PNM_IOC_REGION_FREE, &rf) ? -errno : 0;
}

/* SUBMIT @nr commands; 0 or -errno. */
static inline int pnm_submit(int fd, const struct cxl_pnm_cmd *cmds,
			     struct cxl_pnm_result *results, uint32_t nr,
			     uint32_t timeout_ms)
{
	struct cxl_pnm_submit s = {
		.cmds = (uintptr_t)cmds,
		.results = (uintptr_t)results,
		.nr = nr,
		.timeout_ms = timeout_ms,
	};

	return ioctl(fd, CXL_PNM_IOC_SUBMIT, &s) ? -errno : 0;
}

/* One NOP through SUBMIT. */
static inline int pnm_nop(int fd, uint32_t timeout_ms)
{
	struct cxl_pnm_cmd cmd = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_result res;

	return pnm_submit(fd, &cmd, &res, 1, timeout_ms);
}

/* A ring for CXL_PNM_URING_CMD_SUBMIT: 128-byte SQEs, 32-byte CQEs. */
static inline int pnm_ring_init(struct io_uring *ring, unsigned int entries)
{
	return io_uring_queue_init(entries, ring, IORING_SETUP_SQE128 |
				   IORING_SETUP_CQE32);
}

/* Queue one command on @ring (not submitted); false if the SQ is full. */
static inline bool pnm_ring_prep(struct io_uring *ring, int fd,
				 const struct cxl_pnm_cmd *cmd, uint64_t data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe)
		return false;
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = CXL_PNM_URING_CMD_SUBMIT;
	/* cmd is a zero-length array in liburing 2.3: address it by offset. */
	memcpy((char *)sqe + offsetof(struct io_uring_sqe, cmd), cmd,
	       sizeof(*cmd));
	io_uring_sqe_set_data64(sqe, data);
	return true;
}

/*
 * Wait up to @timeout_s for one CQE; return its res, or -ETIME (liburing's
 * timeout) if none came.  *@data gets its user data.
 */
static inline int pnm_ring_wait(struct io_uring *ring, double timeout_s,
				uint64_t *data)
{
	struct __kernel_timespec ts = {
		.tv_sec = (long long)timeout_s,
		.tv_nsec = (long long)((timeout_s - (long long)timeout_s) * 1e9),
	};
	struct io_uring_cqe *cqe;
	int rc;

	rc = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
	if (rc)
		return rc;
	rc = cqe->res;
	if (data)
		*data = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return rc;
}

/* Whether the kernel log holds @needle after the last line with @marker. */
static inline bool pnm_klog_has(const char *marker, const char *needle)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf, *start, *p;
	bool found = false;

	if (len <= 0)
		return false;
	buf = calloc(1, len + 1);
	if (!buf)
		return false;
	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	if (len > 0) {
		start = buf;
		while ((p = strstr(start, marker)))
			start = p + strlen(marker);
		found = strstr(start, needle) != NULL;
	}
	free(buf);
	return found;
}

/* Write @text to the kernel log, to mark where a test starts. */
static inline void pnm_klog_mark(const char *text)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, text, strlen(text)) < 0)
		perror("/dev/kmsg");
	close(fd);
}

/*
 * The launcher's fault channel.  The guest keeps the serial port open
 * from request to reply: bytes arriving while it is closed are lost.
 */
static inline int pnm_fault_open(void)
{
	struct termios t;
	int fd;

	fd = open(PNM_FAULT_TTY, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t)) {
		close(fd);
		return -ENOTTY;
	}
	cfmakeraw(&t);
	if (tcsetattr(fd, TCSANOW, &t)) {
		close(fd);
		return -ENOTTY;
	}
	tcflush(fd, TCIOFLUSH);
	return fd;
}

/*
 * Set fault @spec (a pnm-device --fault value, or "none") on launcher
 * device @dev.  Return 0 once the device model took it, -ETIMEDOUT without
 * a reply, -EINVAL if the launcher refused; @reply gets its line.
 */
static inline int pnm_fault_set(int tty, int dev, const char *spec,
				char *reply, size_t size)
{
	char req[96];
	size_t used = 0;
	double end = pnm_now_s() + PNM_FAULT_REPLY_S;
	int len;

	len = snprintf(req, sizeof(req), "fault %d %s\n", dev, spec);
	if (write(tty, req, len) != len)
		return -EIO;
	reply[0] = '\0';
	while (pnm_now_s() < end) {
		struct pollfd pfd = { .fd = tty, .events = POLLIN };
		char c;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(tty, &c, 1) != 1)
			continue;
		if (c == '\n' || c == '\r') {
			if (!used)
				continue;
			reply[used] = '\0';
			return strncmp(reply, "ok ", 3) ? -EINVAL : 0;
		}
		if (used + 1 < size)
			reply[used++] = c;
	}
	reply[used] = '\0';
	return -ETIMEDOUT;
}

/* Errno name for TAP comments. */
static inline const char *pnm_errname(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return "0";
	case EINVAL: return "EINVAL";
	case ENOENT: return "ENOENT";
	case ENXIO: return "ENXIO";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case ENOTTY: return "ENOTTY";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ENOSPC: return "ENOSPC";
	case EIO: return "EIO";
	case ENODEV: return "ENODEV";
	case EBUSY: return "EBUSY";
	case ECANCELED: return "ECANCELED";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EAGAIN: return "EAGAIN";
	case EOVERFLOW: return "EOVERFLOW";
	default: return "other";
	}
}

#endif /* PNM_VM_TEST_H */
