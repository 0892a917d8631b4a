/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * io_uring passthrough to the cxl_pnm driver (runtime/uring.c), used by the
 * kernel transport (runtime/kernel.c).  The prep helper is inline so that
 * tools and tests driving their own rings use the same SQE layout.
 */
#ifndef PNM_URING_H
#define PNM_URING_H

#include <string.h>
#include <liburing.h>

#include "pnm.h"

/* Rings that carry CXL_PNM_URING_CMD_SUBMIT need both big entry sizes. */
#define PNM_URING_SETUP	(IORING_SETUP_SQE128 | IORING_SETUP_CQE32)

/*
 * Prepare IORING_OP_URING_CMD with one command (liburing 2.3 has no
 * io_uring_prep_uring_cmd).  The SQE must come from a PNM_URING_SETUP ring:
 * the command fills the 80-byte command area of a 128-byte entry.
 */
static inline void pnm_prep_uring_cmd(struct io_uring_sqe *sqe, int fd,
				      const struct cxl_pnm_cmd *cmd,
				      uint64_t user_data)
{
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = CXL_PNM_URING_CMD_SUBMIT;
	memcpy(sqe->cmd, cmd, sizeof(*cmd));
	io_uring_sqe_set_data64(sqe, user_data);
}

/* Unpack the big CQE word of a completed command (uapi packing). */
static inline void pnm_uring_result(uint64_t res2,
				    struct cxl_pnm_result *result)
{
	result->status = CXL_PNM_URING_RESULT_STATUS(res2);
	result->rsvd = 0;
	result->count = CXL_PNM_URING_RESULT_COUNT(res2);
	result->device_ns = CXL_PNM_URING_RESULT_NS(res2);
}

struct pnm_uring;

int pnm_uring_create(int fd, const char *devnode, unsigned int entries,
		     unsigned int setup_flags, struct pnm_uring **ringp);
void pnm_uring_destroy(struct pnm_uring *u);
int pnm_uring_probe(struct pnm_uring *u);
int pnm_uring_run(struct pnm_uring *u, const struct cxl_pnm_cmd *cmds,
		  struct cxl_pnm_result *results, unsigned int nr,
		  unsigned int timeout_ms);
int pnm_uring_submit(struct pnm_uring *u, const struct cxl_pnm_cmd *cmds,
		     const uint64_t *user_data, unsigned int nr);
int pnm_uring_reap(struct pnm_uring *u, struct pnm_completion *comps,
		   unsigned int min, unsigned int max, int timeout_ms);

#endif /* PNM_URING_H */
