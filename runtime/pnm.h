/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpnm: user-space runtime for CXL Processing-Near-Memory devices.
 *
 * A device is opened through one of two transports:
 *   - kernel: /dev/cxl/pnmN, driven through the cxl_pnm driver's ioctls;
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
	PNM_TRANSPORT_KERNEL,	/* /dev/cxl/pnmN ioctls */
	PNM_TRANSPORT_DIRECT,	/* a device model's backing file */
};

/* Open /dev/cxl/pnmN (kernel transport). */
int pnm_open_kernel(const char *devnode, struct pnm_dev **devp);
/* Open a device model's backing file (direct transport). */
int pnm_open_direct(const char *backing_file, struct pnm_dev **devp);
/*
 * Open by name: "direct:PATH" selects the direct transport, anything else is
 * a device node.
 */
int pnm_open(const char *name, struct pnm_dev **devp);
void pnm_close(struct pnm_dev *dev);

enum pnm_transport pnm_transport(const struct pnm_dev *dev);
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
