/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpnm: user-space runtime for CXL Processing-Near-Memory devices.
 *
 * A device is opened through one of two transports:
 *   - kernel: /dev/cxl/pnmN, driven through the cxl_pnm driver: io_uring
 *     passthrough by default, the SUBMIT ioctl as a fallback;
 *   - direct: a device model's backing file, mapped and driven from user
 *     space, for host tests and benchmarks without a VM.
 * Both expose the same regions and commands (struct cxl_pnm_cmd names
 * memory as region handle, offset and length).
 *
 * Functions return 0 or a negative errno.  On failure, pnm_last_error()
 * returns a message naming the value that was wrong.
 */
#ifndef PNM_H
#define PNM_H

#include <stddef.h>
#include <stdint.h>
#include <linux/cxl_pnm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pnm_dev;

/** A region of device memory, mapped into the caller. */
struct pnm_region {
	struct pnm_dev *dev;
	uint32_t handle;	/* names the region in struct cxl_pnm_buf */
	uint64_t size;		/* bytes */
	void *addr;		/* the mapping, @size bytes */
};

enum pnm_transport {
	PNM_TRANSPORT_KERNEL,	/* /dev/cxl/pnmN: io_uring or ioctls */
	PNM_TRANSPORT_DIRECT,	/* a device model's backing file */
};

/* Open /dev/cxl/pnmN (kernel transport). */
int pnm_open_kernel(const char *devnode, struct pnm_dev **devp);
/* Open a device model's backing file (direct transport). */
int pnm_open_direct(const char *backing_file, struct pnm_dev **devp);
/*
 * Open by name: "direct:PATH" selects the direct transport, anything else is
 * a device node.  A device node submits through io_uring unless it is
 * written "ioctl:/dev/cxl/pnmN" or the environment has PNM_TRANSPORT=ioctl;
 * "uring:/dev/cxl/pnmN" (or PNM_TRANSPORT=uring) insists on io_uring and
 * fails where it is unavailable.  Documentation/io_uring.rst has details.
 */
int pnm_open(const char *name, struct pnm_dev **devp);
void pnm_close(struct pnm_dev *dev);

enum pnm_transport pnm_transport(const struct pnm_dev *dev);
/* How commands reach the device: "io_uring", "ioctl" or "direct". */
const char *pnm_transport_name(const struct pnm_dev *dev);
int pnm_get_info(struct pnm_dev *dev, struct cxl_pnm_info *info);

/* Allocate @size bytes (rounded up to info.region_align) and map them. */
int pnm_region_alloc(struct pnm_dev *dev, uint64_t size,
		     struct pnm_region **regionp);
/* Unmap and free a region; NULL is allowed. */
void pnm_region_free(struct pnm_region *region);
/* A buffer descriptor for @length bytes at @offset of @region. */
struct cxl_pnm_buf pnm_buf(const struct pnm_region *region, uint64_t offset,
			   uint64_t length);

/*
 * Submit @nr commands and wait until all complete or @timeout_ms passes
 * (0: the default).  Returns 0 when every command completed; each result
 * then carries the device status.  A command the driver rejects fails the
 * whole call before anything is submitted.
 */
int pnm_submit(struct pnm_dev *dev, const struct cxl_pnm_cmd *cmds,
	       struct cxl_pnm_result *results, unsigned int nr,
	       unsigned int timeout_ms);

/*
 * Asynchronous submission, shaped like liburing: a queue holds up to @depth
 * commands in flight; pnm_submit_async() hands it a batch with one system
 * call, each command tagged with a caller's user_data; pnm_reap() and
 * pnm_wait() return completions in the order they finish.  A queue belongs
 * to one thread at a time.  Transports without native queues run each
 * batch synchronously at submission (Documentation/io_uring.rst).
 */
struct pnm_queue;

/** One finished command. */
struct pnm_completion {
	uint64_t user_data;		/* as passed to pnm_submit_async() */
	int32_t res;			/* 0: @result is valid; or -errno */
	uint32_t rsvd;			/* zero */
	struct cxl_pnm_result result;	/* the device's status and counts */
};

/* Kernel transport: reap by polling the device (IORING_SETUP_IOPOLL). */
#define PNM_QUEUE_IOPOLL	(1U << 0)
#define PNM_QUEUE_MAX_DEPTH	4096

/* Create a queue for up to @depth (1 to PNM_QUEUE_MAX_DEPTH) commands. */
int pnm_queue_create(struct pnm_dev *dev, unsigned int depth,
		     unsigned int flags, struct pnm_queue **queuep);
/*
 * Destroy a queue.  Commands still in flight are cancelled or run to
 * completion first; their completions are lost.  NULL is allowed.
 */
void pnm_queue_destroy(struct pnm_queue *queue);
/*
 * Submit @nr commands, command i tagged with @user_data[i] (or i when
 * @user_data is NULL).  Returns @nr, or a negative errno with nothing
 * submitted: -EINVAL for a buffer pnm_buf() marked invalid, -EBUSY when
 * more than the queue's depth would be in flight.  A command the driver
 * rejects completes with res -EINVAL or -ENOENT.
 */
int pnm_submit_async(struct pnm_queue *queue, const struct cxl_pnm_cmd *cmds,
		     const uint64_t *user_data, unsigned int nr);
/* Store up to @max finished commands in @comps without waiting; count. */
int pnm_reap(struct pnm_queue *queue, struct pnm_completion *comps,
	     unsigned int max);
/*
 * Wait until at least @min commands finished, then store up to @max.
 * @timeout_ms < 0 waits without limit.  Returns the count, or -ETIMEDOUT
 * (completions that arrived stay for the next call), or -EINVAL if @min
 * exceeds the commands in flight.
 */
int pnm_wait(struct pnm_queue *queue, struct pnm_completion *comps,
	     unsigned int min, unsigned int max, int timeout_ms);
/* Commands submitted and not yet returned by pnm_reap() or pnm_wait(). */
unsigned int pnm_queue_inflight(const struct pnm_queue *queue);

/* Name of a CXL_PNM_STATUS_* value, e.g. "bad page". */
const char *pnm_status_name(unsigned int status);
/* Name of a CXL_PNM_DTYPE_* value: "fp32", "fp16" or "bf16". */
const char *pnm_dtype_name(unsigned int dtype);

/* The message of the calling thread's last failure. */
const char *pnm_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* PNM_H */
