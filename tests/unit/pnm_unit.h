/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared helpers of the host unit tests: start and stop a pnm-device
 * process on a fresh /dev/shm file, lay a KV stream out in a region, fill
 * it with reproducible random data and build commands for it.
 */
#ifndef PNM_UNIT_H
#define PNM_UNIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cxl_pnm_hw.h"
#include "direct.h"
#include "pnm.h"
#include "pnm_ref.h"

/*
 * Device memory of the test devices.  The file is sparse, so only what a
 * test touches costs memory; the BAD_LENGTH test needs a 64 MiB table.
 */
#define PNM_UNIT_DEV_SIZE	"192M"

/**
 * struct pnm_unit_device - a pnm-device process and its backing file
 * @pid: the process, 0 once reaped
 * @stderr_fd: read end of its standard error
 * @path: backing file under /dev/shm, unique per test
 */
struct pnm_unit_device {
	pid_t pid;
	int stderr_fd;
	char path[96];
};

/* Path of the pnm-device binary: $PNM_DEVICE, else the one built with us. */
const char *pnm_unit_device_binary(void);

/*
 * Start pnm-device on a new file with @extra_args (NULL-terminated, may be
 * NULL) after --mem and --size, and wait for its "ready" line.  Returns 0,
 * or -1 after printing why.
 */
int pnm_unit_device_start(struct pnm_unit_device *ud,
			  const char *const *extra_args);

/*
 * Stop the device with SIGTERM, reap it and remove its file.  Returns its
 * wait status, or -1 if it was not running.
 */
int pnm_unit_device_stop(struct pnm_unit_device *ud);

/*
 * Start a device and open it with pnm_open("direct:PATH"), then remove the
 * file's name (both sides keep their mappings).
 */
int pnm_unit_open(struct pnm_unit_device *ud, const char *const *extra_args,
		  struct pnm_dev **devp);

/**
 * struct pnm_unit_stream - one stream and its command buffers in a region
 * @dtype: enum pnm_hw_dtype of keys, values and digests
 * @head_dim: channels per head
 * @page_shift: log2 of tokens per page
 * @group: query heads per KV head
 * @n_tokens: tokens in the stream
 * @n_pages: pages in the stream
 * @n_slots: page slots in the pool, at least @n_pages
 * @list_cap: room for page numbers after the query
 * @out_cap: bytes of the output buffer
 * @region: the region holding everything below
 * @pool_off: pool, then table, input and output, each 64-byte aligned
 * @pool_len: bytes of the pool
 * @table_off: offset of the page table
 * @in_off: offset of the input (query, then page list)
 * @out_off: offset of the output
 * @table: the page table in the region
 * @query: the query in the region, [group][head_dim]
 * @list: the page list in the region
 * @out: the output in the region
 * @ref: the same stream for the CPU reference
 */
struct pnm_unit_stream {
	unsigned int dtype;
	unsigned int head_dim;
	unsigned int page_shift;
	unsigned int group;
	uint32_t n_tokens;
	uint32_t n_pages;
	uint32_t n_slots;
	unsigned int list_cap;
	uint64_t out_cap;

	struct pnm_region *region;
	uint64_t pool_off;
	uint64_t pool_len;
	uint64_t table_off;
	uint64_t in_off;
	uint64_t out_off;
	uint32_t *table;
	float *query;
	uint32_t *list;
	uint8_t *out;
	struct pnm_ref_stream ref;
};

/*
 * Allocate a region for a stream of the given shape with @n_slots slots
 * (0: as many as pages, plus 3 unused) and lay it out.  Returns 0 or a
 * negative errno.
 */
int pnm_unit_stream_init(struct pnm_unit_stream *s, struct pnm_dev *dev,
			 unsigned int dtype, unsigned int head_dim,
			 unsigned int page_shift, unsigned int group,
			 uint32_t n_tokens, uint32_t n_slots);
void pnm_unit_stream_free(struct pnm_unit_stream *s);

/*
 * Fill keys and values of the valid tokens with values in [-1, 1] stored
 * in the stream's dtype, the rows past n_tokens in the last page with NaN,
 * the page table with a shuffled choice of slots and the query with values
 * in [-1, 1].  The same @seed gives the same stream.
 */
void pnm_unit_stream_fill(struct pnm_unit_stream *s, uint32_t seed);

/* Keys (@values false) or values of token row @row in slot @slot. */
void *pnm_unit_slot_row(const struct pnm_unit_stream *s, uint32_t slot,
			unsigned int row, bool values);

/* Output bytes of @opcode for @n_pages result pages. */
uint64_t pnm_unit_out_bytes(const struct pnm_unit_stream *s,
			    unsigned int opcode, unsigned int n_pages);

/*
 * A command over the stream with exact buffer lengths: @list_len page
 * numbers follow the query, the output takes @out_len bytes.
 */
struct cxl_pnm_cmd pnm_unit_cmd(const struct pnm_unit_stream *s,
				unsigned int opcode, unsigned int k,
				unsigned int n_list, unsigned int flags,
				unsigned int list_len, uint64_t out_len);

/* The same command as the device sees it, for pnm_direct_submit_raw(). */
struct pnm_hw_cmd pnm_unit_hw_cmd(const struct cxl_pnm_cmd *cmd,
				  const struct pnm_unit_stream *s);

/* A deterministic xorshift generator: a float in [-1, 1]. */
float pnm_unit_rand(uint32_t *state);

/*
 * Tolerance of device results against the CPU reference.  Both compute in
 * fp32 from the same inputs (fp16 and bf16 widen to fp32 exactly) with the
 * same dot products; they differ only in how the softmax is arranged (the
 * device rescales an online running sum, the reference makes two passes).
 * Each output is a weighted mean of value rows in [-1, 1] whose weights sum
 * to 1; a few hundred tokens of fp32 rounding (2^-24 each) stay below
 * 1e-5, and the LSE, a log of a sum near ln(tokens), below 1e-5 relative.
 * Measured: below 2e-7 (relative) over 3207 tokens, head_dim 64 and 128,
 * groups 1 to 8, all three dtypes.
 */
#define PNM_UNIT_TOLERANCE	1e-5f

static inline bool pnm_unit_close(float seen, float expected)
{
	float diff = seen - expected;

	if (diff < 0)
		diff = -diff;
	return diff <= PNM_UNIT_TOLERANCE * (1.0f + (expected < 0 ? -expected : expected));
}

#endif /* PNM_UNIT_H */
