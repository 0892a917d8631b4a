/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Command executor of the CXL-PNM device model: decoding, validation and
 * the scalar kernels of DIGEST, SELECT, ATTEND and SELECT_ATTEND.
 *
 * It has no notion of queues, doorbells or the process around it.  It
 * takes device memory as a plain buffer and one command already copied out
 * of its SQ slot, so tests and fuzzers can call it directly.
 */
#ifndef PNM_EXEC_H
#define PNM_EXEC_H

#include <stdint.h>

#include "cxl_pnm_hw.h"

struct pnm_kernels;
struct pnm_units;

/**
 * struct pnm_exec_dev - device memory and capabilities, as the device uses
 *	them (never re-read from the control block, which the host can write)
 * @mem: device memory, DPA 0 at @mem[0]
 * @kv_offset: DPA of the KV area; every operand must lie inside it
 * @kv_size: bytes of the KV area; @kv_offset + @kv_size fits in @mem
 * @dtypes: bitmap of supported enum pnm_hw_dtype values
 * @max_head_dim: largest head_dim
 * @max_group: largest GQA group
 * @page_shifts: bitmap of supported page_shift values
 * @max_k: largest page budget
 * @kernels: kernel path (pnm_kernels.h); NULL means the scalar path
 * @units: compute units that split one command's pages; NULL: the caller
 */
struct pnm_exec_dev {
	uint8_t *mem;
	uint64_t kv_offset;
	uint64_t kv_size;
	uint32_t dtypes;
	uint32_t max_head_dim;
	uint32_t max_group;
	uint32_t page_shifts;
	uint32_t max_k;
	const struct pnm_kernels *kernels;
	struct pnm_units *units;
};

/**
 * struct pnm_exec_result - outcome of one command
 * @status: enum pnm_hw_status
 * @result: pages selected (SELECT, SELECT_ATTEND) or attended (ATTEND)
 * @bytes_read: bytes of device memory the command read, validation included
 * @flops: arithmetic operations of the kernels, for the timing model
 * @rescored: SELECT candidates whose fast score was too close to the cut
 *	and were rescored in the scalar order (pnm_exec.c)
 */
struct pnm_exec_result {
	uint16_t status;
	uint32_t result;
	uint64_t bytes_read;
	uint64_t flops;
	uint32_t rescored;
};

/*
 * Largest number of pages in one stream: N above it is BAD_LENGTH.  It
 * bounds the device's scratch memory (a copy of the page table).
 */
#define PNM_EXEC_MAX_PAGES	(1U << 24)

/*
 * Validate @cmd and, if it is valid, execute it on @dev's memory.  A
 * rejected command writes nothing to device memory.  Returns 0 with the
 * outcome in @res (@res->status may be an error status), or -ENOMEM when
 * the device model could not allocate its scratch memory; then nothing was
 * written either.
 */
int pnm_exec(const struct pnm_exec_dev *dev, const struct pnm_hw_cmd *cmd,
	     struct pnm_exec_result *res);

#endif /* PNM_EXEC_H */
