// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * io_uring passthrough for the kernel transport: each command is one
 * IORING_OP_URING_CMD (CXL_PNM_URING_CMD_SUBMIT) on a ring set up with
 * 128-byte SQEs and 32-byte CQEs.  A batch of any size costs one
 * io_uring_enter() to submit; completions come back in 32-byte CQEs whose
 * first extra word packs the struct cxl_pnm_result (uapi/linux/cxl_pnm.h).
 *
 * Two users: the synchronous pnm_submit() runs a batch on the device's
 * shared ring (pnm_uring_run()), and each pnm_queue owns a ring of its own
 * (pnm_uring_submit(), pnm_uring_reap()).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pnm_internal.h"
#include "pnm_uring.h"

#define PNM_URING_DEFAULT_TIMEOUT_MS	10000	/* as the SUBMIT ioctl */

/**
 * struct pnm_uring - a ring submitting to one open /dev/cxl/pnmN
 * @ring: the io_uring
 * @fd: the device file
 * @devnode: its name, for messages
 * @generation: tags the CQEs of one pnm_uring_run() in the user_data's
 *	upper 32 bits, so that late CQEs of a run that timed out are dropped
 * @stale: CQEs still to come from runs that timed out
 */
struct pnm_uring {
	struct io_uring ring;
	int fd;
	char devnode[128];
	uint32_t generation;
	unsigned int stale;
};

int pnm_uring_create(int fd, const char *devnode, unsigned int entries,
		     unsigned int setup_flags, struct pnm_uring **ringp)
{
	struct pnm_uring *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return pnm_error(-ENOMEM, "%s: out of memory for a ring", devnode);
	ret = io_uring_queue_init(entries, &u->ring, PNM_URING_SETUP | setup_flags);
	if (ret) {
		free(u);
		return pnm_error(ret, "%s: io_uring setup of %u entries (flags %#x) failed: %s",
				 devnode, entries, PNM_URING_SETUP | setup_flags,
				 strerror(-ret));
	}
	u->fd = fd;
	snprintf(u->devnode, sizeof(u->devnode), "%s", devnode);
	*ringp = u;
	return 0;
}

/*
 * Exiting the ring cancels the commands still in flight; the driver keeps
 * their slots and regions until the device is done with them.
 */
void pnm_uring_destroy(struct pnm_uring *u)
{
	if (!u)
		return;
	io_uring_queue_exit(&u->ring);
	free(u);
}

/* Write the SQEs of @nr commands and submit them with one system call. */
static int pnm_uring_queue(struct pnm_uring *u, const struct cxl_pnm_cmd *cmds,
			   const uint64_t *user_data, uint64_t tag,
			   unsigned int nr)
{
	unsigned int i, done = 0;
	int ret;

	if (io_uring_sq_space_left(&u->ring) < nr)
		return pnm_error(-EBUSY, "%s: %u commands do not fit the ring's %u free entries",
				 u->devnode, nr, io_uring_sq_space_left(&u->ring));
	for (i = 0; i < nr; i++)
		pnm_prep_uring_cmd(io_uring_get_sqe(&u->ring), u->fd, &cmds[i],
				   user_data ? user_data[i] : tag | i);
	/* The kernel takes every SQE unless it runs out of memory. */
	while (done < nr) {
		ret = io_uring_submit(&u->ring);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
			return pnm_error(ret, "%s: io_uring submission of %u commands failed after %u: %s",
					 u->devnode, nr, done, strerror(-ret));
		if (ret > 0)
			done += ret;
	}
	return nr;
}

static int64_t pnm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int pnm_uring_reject(struct pnm_uring *u, int res, unsigned int index,
			    unsigned int nr)
{
	switch (res) {
	case -EINVAL:
		return pnm_error(res, "%s: the driver rejected command %u of %u (a field or a buffer range is invalid)",
				 u->devnode, index, nr);
	case -ENOENT:
		return pnm_error(res, "%s: command %u of %u names a region this file does not own",
				 u->devnode, index, nr);
	default:
		return pnm_error(res, "%s: command %u of %u failed: %s",
				 u->devnode, index, nr, strerror(-res));
	}
}

/**
 * pnm_uring_run() - run a batch to completion, as CXL_PNM_IOC_SUBMIT does
 * @u: the ring
 * @cmds: commands
 * @results: one result per command
 * @nr: at most the ring's entries
 * @timeout_ms: budget for the whole batch, 0 for the default 10 s
 *
 * Unlike the ioctl, the driver validates each command on its own, so the
 * valid commands of a batch run even when another is rejected.
 *
 * Return: 0, the errno of the first rejected command, or -ETIMEDOUT.
 */
int pnm_uring_run(struct pnm_uring *u, const struct cxl_pnm_cmd *cmds,
		  struct cxl_pnm_result *results, unsigned int nr,
		  unsigned int timeout_ms)
{
	int64_t deadline = pnm_now_ns() + 1000000LL *
			   (timeout_ms ? timeout_ms : PNM_URING_DEFAULT_TIMEOUT_MS);
	uint32_t gen = ++u->generation;
	unsigned int left = nr, first_bad = 0;
	struct io_uring_cqe *cqe;
	int ret, first_err = 0;

	memset(results, 0, nr * sizeof(*results));
	ret = pnm_uring_queue(u, cmds, NULL, (uint64_t)gen << 32, nr);
	if (ret < 0)
		return ret;

	while (left) {
		int64_t wait_ns = deadline - pnm_now_ns();
		struct __kernel_timespec ts = {
			.tv_sec = wait_ns / 1000000000LL,
			.tv_nsec = wait_ns % 1000000000LL,
		};
		uint64_t user_data;
		uint32_t index;

		if (wait_ns <= 0)
			break;
		/*
		 * Wait for the whole rest of the batch in one system call: the
		 * kernel wakes the task once, not once per completion.
		 */
		if (!io_uring_cq_ready(&u->ring)) {
			ret = io_uring_wait_cqes(&u->ring, &cqe, left, &ts, NULL);
			/* The loop checks the deadline itself, see pnm_uring_wait(). */
			if (ret == -EINTR || ret == -ETIME)
				continue;
			if (ret < 0)
				return pnm_error(ret, "%s: waiting for completions failed: %s",
						 u->devnode, strerror(-ret));
		}
		if (io_uring_peek_cqe(&u->ring, &cqe))
			continue;
		user_data = cqe->user_data;
		index = (uint32_t)user_data;
		if (user_data >> 32 != gen || index >= nr) {
			/* A late CQE of a run that timed out. */
			if (u->stale)
				u->stale--;
			io_uring_cqe_seen(&u->ring, cqe);
			continue;
		}
		if (cqe->res < 0 && !first_err) {
			first_err = cqe->res;
			first_bad = index;
		} else if (!cqe->res) {
			pnm_uring_result(cqe->big_cqe[0], &results[index]);
		}
		io_uring_cqe_seen(&u->ring, cqe);
		left--;
	}
	if (left) {
		u->stale += left;
		return pnm_error(-ETIMEDOUT, "%s: %u of %u commands not completed after %u ms",
				 u->devnode, left, nr,
				 timeout_ms ? timeout_ms : PNM_URING_DEFAULT_TIMEOUT_MS);
	}
	if (first_err)
		return pnm_uring_reject(u, first_err, first_bad, nr);
	return 0;
}

/*
 * Check at open that the driver supports io_uring passthrough: a NOP
 * completes with 0, and a driver without ->uring_cmd returns -EOPNOTSUPP.
 */
int pnm_uring_probe(struct pnm_uring *u)
{
	struct cxl_pnm_cmd nop = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_result result;

	return pnm_uring_run(u, &nop, &result, 1, 0);
}

int pnm_uring_submit(struct pnm_uring *u, const struct cxl_pnm_cmd *cmds,
		     const uint64_t *user_data, unsigned int nr)
{
	return pnm_uring_queue(u, cmds, user_data, 0, nr);
}

static void pnm_uring_completion(const struct io_uring_cqe *cqe,
				 struct pnm_completion *c)
{
	memset(c, 0, sizeof(*c));
	c->user_data = cqe->user_data;
	c->res = cqe->res;
	if (!cqe->res)
		pnm_uring_result(cqe->big_cqe[0], &c->result);
}

/*
 * Wait until @min CQEs are ready: 0, -ETIMEDOUT or another -errno.
 *
 * io_uring_wait_cqes() of liburing 2.3 with a timeout enters the kernel
 * once and returns success as soon as one CQE is ready, or -ETIME when the
 * kernel returns early, as IOPOLL does when the task should reschedule.  So
 * the count and the deadline are checked here, and the kernel is entered
 * at least once, which an IOPOLL ring needs to find any completion.
 */
static int pnm_uring_wait(struct pnm_uring *u, unsigned int min,
			  int timeout_ms)
{
	int64_t deadline = pnm_now_ns() + 1000000LL * timeout_ms;
	struct io_uring_cqe *cqe;
	bool entered = false;
	int ret;

	while (io_uring_cq_ready(&u->ring) < min) {
		int64_t left = deadline - pnm_now_ns();
		struct __kernel_timespec ts = {
			.tv_sec = left > 0 ? left / 1000000000LL : 0,
			.tv_nsec = left > 0 ? left % 1000000000LL : 0,
		};

		if (timeout_ms >= 0 && entered && left <= 0)
			return pnm_error(-ETIMEDOUT, "%s: fewer than %u completions after %d ms",
					 u->devnode, min, timeout_ms);
		ret = io_uring_wait_cqes(&u->ring, &cqe, min,
					 timeout_ms < 0 ? NULL : &ts, NULL);
		entered = true;
		if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EAGAIN)
			return pnm_error(ret, "%s: waiting for completions failed: %s",
					 u->devnode, strerror(-ret));
	}
	return 0;
}

int pnm_uring_reap(struct pnm_uring *u, struct pnm_completion *comps,
		   unsigned int min, unsigned int max, int timeout_ms)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;
	int ret;

	if (min) {
		ret = pnm_uring_wait(u, min, timeout_ms);
		if (ret)
			return ret;
	} else if (u->ring.flags & IORING_SETUP_IOPOLL &&
		   !io_uring_cq_ready(&u->ring)) {
		/* Polled completions are only found inside the kernel. */
		io_uring_get_events(&u->ring);
	}
	while (n < max && !io_uring_peek_cqe(&u->ring, &cqe)) {
		pnm_uring_completion(cqe, &comps[n++]);
		io_uring_cqe_seen(&u->ring, cqe);
	}
	return n;
}
