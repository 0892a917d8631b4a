// SPDX-License-Identifier: GPL-2.0-only
/*
 * Command executor of the CXL-PNM device model.
 *
 * A command runs in two phases.  Validation follows the status table of
 * Documentation/device-interface.rst in its order, so a command with several
 * faults reports the first one in that table.  It copies every index the
 * kernels will follow (page table and page list) into scratch memory and
 * checks the copy.  The host can rewrite shared memory at any moment, so the
 * kernels use only those copies and never re-read an index from device
 * memory.  Execution then runs scalar kernels with fp32 accumulation.
 * Nothing is written to device memory before validation has passed.
 *
 * Keys, values and digests are read in place; a host that changes them
 * during a command gets meaningless numbers but never an access outside the
 * operands it named.
 */
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pnm_exec.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the device model reads fp32, fp16 and bf16 data in place: little-endian hosts only"
#endif

/* An operand as the command names it: @len bytes at DPA @dpa. */
struct pnm_range {
	uint64_t dpa;
	uint64_t len;
};

/* A command decoded to host byte order. */
struct pnm_exec_cmd {
	unsigned int opcode;
	unsigned int dtype;
	unsigned int page_shift;
	unsigned int group;
	unsigned int head_dim;
	unsigned int flags;
	unsigned int rsvd;
	uint32_t n_tokens;
	unsigned int k;
	unsigned int n_list;
	struct pnm_range pool;
	struct pnm_range table;
	struct pnm_range in;
	struct pnm_range out;
};

/*
 * One command in flight: the decoded fields, the stream geometry derived
 * from them, and scratch copies of what validation checked.
 */
struct pnm_job {
	const struct pnm_exec_dev *dev;
	struct pnm_exec_cmd cmd;
	struct pnm_exec_result *res;

	unsigned int esize;		/* bytes per key, value or digest element */
	uint32_t page_tokens;		/* P */
	uint64_t n_pages;		/* N = ceil(n_tokens / P) */
	uint64_t slot_bytes;
	uint64_t digest_bytes;
	uint64_t n_slots;		/* S, slots in the pool */
	uint64_t query_floats;		/* group * head_dim */
	unsigned int list_len;		/* pages listed after the query */
	unsigned int n_selected;	/* SELECT result: min(k, N - n_list) */
	unsigned int n_kept;		/* sink and recent pages, not excluded */
	bool keep_sink;
	bool keep_recent;

	uint8_t *pool;			/* page pool in device memory */
	uint32_t *table;		/* validated copy of the page table */
	uint32_t *list;			/* validated copy of the page list */
	float *query;			/* copy of the query, [group][head_dim] */
};

static bool pnm_opcode_uses_query(unsigned int opcode)
{
	return opcode == PNM_OP_SELECT || opcode == PNM_OP_ATTEND ||
	       opcode == PNM_OP_SELECT_ATTEND;
}

static bool pnm_opcode_selects(unsigned int opcode)
{
	return opcode == PNM_OP_SELECT || opcode == PNM_OP_SELECT_ATTEND;
}

/* ---- fp16 and bf16 ---------------------------------------------------- */

static inline uint32_t pnm_f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float pnm_bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * Exact for every input.  Below infinity, the half's exponent and mantissa
 * moved to the float's fields give the value times 2^-112 (a float
 * subnormal for a half subnormal); multiplying by 2^112 is exact.
 */
static inline float pnm_fp16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t mag = h & 0x7fff;

	if (mag >= 0x7c00)	/* infinity or NaN, payload kept */
		return pnm_bits_f32(sign | 0x7f800000 | (mag & 0x3ff) << 13);
	return pnm_bits_f32(sign |
			    pnm_f32_bits(pnm_bits_f32(mag << 13) * 0x1p112f));
}

/* Round to nearest even; overflow gives infinity, NaN stays a quiet NaN. */
static inline uint16_t pnm_f32_to_fp16(float f)
{
	uint32_t x = pnm_f32_bits(f);
	uint16_t sign = (x >> 16) & 0x8000;
	uint32_t mag = x & 0x7fffffff;

	if (mag > 0x7f800000)
		return sign | 0x7e00 | ((mag >> 13) & 0x3ff);
	/* 0x477ff000 is 65520, halfway between 65504 and 2^16. */
	if (mag >= 0x477ff000)
		return sign | 0x7c00;
	if (mag < 0x38800000) {
		/*
		 * Below 2^-14 the half is subnormal, in units of 2^-24.  Adding
		 * 0.5 (whose ulp is 2^-24) rounds to a whole unit, to even.
		 */
		float sum = pnm_bits_f32(mag) + 0.5f;

		return sign | (uint16_t)(pnm_f32_bits(sum) - 0x3f000000);
	}
	/* Rebias 127 -> 15, then round the 13 dropped bits to even. */
	mag += 0xfff + ((mag >> 13) & 1) - (112U << 23);
	return sign | (uint16_t)(mag >> 13);
}

static inline float pnm_bf16_to_f32(uint16_t b)
{
	return pnm_bits_f32((uint32_t)b << 16);
}

/* Round to nearest even; NaN stays a quiet NaN. */
static inline uint16_t pnm_f32_to_bf16(float f)
{
	uint32_t x = pnm_f32_bits(f);

	if ((x & 0x7fffffff) > 0x7f800000)
		return (x >> 16) | 0x40;
	x += 0x7fff + ((x >> 16) & 1);
	return x >> 16;
}

/* Convert @n elements of @dtype at @src to fp32. */
static void pnm_load_row(unsigned int dtype, const uint8_t *src, float *dst,
			 unsigned int n)
{
	unsigned int i;
	uint16_t h;

	switch (dtype) {
	case PNM_DTYPE_FP16:
		for (i = 0; i < n; i++) {
			memcpy(&h, src + 2 * i, sizeof(h));
			dst[i] = pnm_fp16_to_f32(h);
		}
		break;
	case PNM_DTYPE_BF16:
		for (i = 0; i < n; i++) {
			memcpy(&h, src + 2 * i, sizeof(h));
			dst[i] = pnm_bf16_to_f32(h);
		}
		break;
	default:
		memcpy(dst, src, (size_t)n * sizeof(*dst));
		break;
	}
}

/* Store @n fp32 values to @dst as @dtype. */
static void pnm_store_row(unsigned int dtype, uint8_t *dst, const float *src,
			  unsigned int n)
{
	unsigned int i;
	uint16_t h;

	switch (dtype) {
	case PNM_DTYPE_FP16:
		for (i = 0; i < n; i++) {
			h = pnm_f32_to_fp16(src[i]);
			memcpy(dst + 2 * i, &h, sizeof(h));
		}
		break;
	case PNM_DTYPE_BF16:
		for (i = 0; i < n; i++) {
			h = pnm_f32_to_bf16(src[i]);
			memcpy(dst + 2 * i, &h, sizeof(h));
		}
		break;
	default:
		memcpy(dst, src, (size_t)n * sizeof(*src));
		break;
	}
}

/* ---- decoding and validation ------------------------------------------ */

/*
 * Fields are decoded from the caller's private copy of the SQ entry, so
 * each is read exactly once from the host's point of view.
 */
static void pnm_decode(const struct pnm_hw_cmd *hw, struct pnm_exec_cmd *cmd)
{
	cmd->opcode = hw->opcode;
	cmd->dtype = hw->dtype;
	cmd->page_shift = hw->page_shift;
	cmd->group = hw->group;
	cmd->head_dim = le16toh(hw->head_dim);
	cmd->flags = hw->flags;
	cmd->rsvd = hw->rsvd;
	cmd->n_tokens = le32toh(hw->n_tokens);
	cmd->k = le16toh(hw->k);
	cmd->n_list = le16toh(hw->n_list);
	cmd->pool.dpa = le64toh(hw->pool_dpa);
	cmd->pool.len = le32toh(hw->pool_len);
	cmd->table.dpa = le64toh(hw->table_dpa);
	cmd->table.len = le32toh(hw->table_len);
	cmd->in.dpa = le64toh(hw->in_dpa);
	cmd->in.len = le32toh(hw->in_len);
	cmd->out.dpa = le64toh(hw->out_dpa);
	cmd->out.len = le32toh(hw->out_len);
}

static enum pnm_hw_status pnm_check_shape(const struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;
	const struct pnm_exec_dev *dev = job->dev;

	if (!cmd->head_dim || cmd->head_dim % 16 ||
	    cmd->head_dim > dev->max_head_dim)
		return PNM_STATUS_BAD_SHAPE;
	if (!cmd->group || cmd->group > dev->max_group)
		return PNM_STATUS_BAD_SHAPE;
	if (cmd->page_shift >= 32 || !(dev->page_shifts >> cmd->page_shift & 1))
		return PNM_STATUS_BAD_SHAPE;
	return PNM_STATUS_OK;
}

static enum pnm_hw_status pnm_check_reserved(const struct pnm_exec_cmd *cmd)
{
	if (cmd->rsvd || cmd->flags & ~PNM_CMD_FLAGS_ALL)
		return PNM_STATUS_BAD_RESERVED;
	return PNM_STATUS_OK;
}

/* Derive the stream geometry; every product fits in 64 bits. */
static void pnm_job_geometry(struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;

	job->esize = pnm_hw_dtype_size(cmd->dtype);
	job->page_tokens = 1U << cmd->page_shift;
	job->n_pages = ((uint64_t)cmd->n_tokens + job->page_tokens - 1) >>
		       cmd->page_shift;
	job->slot_bytes = pnm_hw_slot_bytes(cmd->dtype, cmd->page_shift,
					    cmd->head_dim);
	job->digest_bytes = pnm_hw_digest_bytes(cmd->dtype, cmd->head_dim);
	job->n_slots = cmd->pool.len / (job->slot_bytes + job->digest_bytes);
	job->query_floats = (uint64_t)cmd->group * cmd->head_dim;

	if (cmd->opcode == PNM_OP_ATTEND)
		job->list_len = cmd->k;
	else if (pnm_opcode_selects(cmd->opcode))
		job->list_len = cmd->n_list;
	else
		job->list_len = 0;

	/*
	 * A valid list holds distinct pages below N, so n_list <= N; a list
	 * that breaks this fails with BAD_LIST later, and the clamp only
	 * keeps the size checks before that well defined.
	 */
	if (pnm_opcode_selects(cmd->opcode)) {
		uint64_t left = job->n_pages -
				(cmd->n_list < job->n_pages ? cmd->n_list :
							       job->n_pages);

		job->n_selected = cmd->k < left ? cmd->k : (unsigned int)left;
	}
}

/*
 * A zero-length operand reads nothing and lies nowhere, so it is never out
 * of range and never overlaps; this lets an empty stream name no table.
 */
static bool pnm_range_in_kv(const struct pnm_exec_dev *dev,
			    const struct pnm_range *r)
{
	uint64_t start;

	if (!r->len)
		return true;
	if (r->dpa < dev->kv_offset)
		return false;
	start = r->dpa - dev->kv_offset;
	return start <= dev->kv_size && r->len <= dev->kv_size - start;
}

/* Both ranges lie in the KV area, so their ends do not overflow. */
static bool pnm_ranges_overlap(const struct pnm_range *a,
			       const struct pnm_range *b)
{
	if (!a->len || !b->len)
		return false;
	return a->dpa < b->dpa + b->len && b->dpa < a->dpa + a->len;
}

static enum pnm_hw_status pnm_check_ranges(const struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;
	const struct pnm_exec_dev *dev = job->dev;

	if (!pnm_range_in_kv(dev, &cmd->pool) ||
	    !pnm_range_in_kv(dev, &cmd->table))
		return PNM_STATUS_BAD_RANGE;
	if (pnm_opcode_uses_query(cmd->opcode) &&
	    (!pnm_range_in_kv(dev, &cmd->in) ||
	     !pnm_range_in_kv(dev, &cmd->out)))
		return PNM_STATUS_BAD_RANGE;
	return PNM_STATUS_OK;
}

/* Bytes of the output: out and lse for ATTEND, page numbers for SELECT. */
static uint64_t pnm_out_bytes(const struct pnm_job *job)
{
	uint64_t attend = 4 * (job->query_floats + job->cmd.group);
	uint64_t pages = 4ULL * job->n_selected;

	switch (job->cmd.opcode) {
	case PNM_OP_SELECT:
		return pages;
	case PNM_OP_ATTEND:
		return attend;
	case PNM_OP_SELECT_ATTEND:
		return attend + pages;
	default:
		return 0;
	}
}

static enum pnm_hw_status pnm_check_sizes(const struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;

	if (cmd->table.len < 4 * job->n_pages)
		return PNM_STATUS_SHORT_BUFFER;
	if (!pnm_opcode_uses_query(cmd->opcode))
		return PNM_STATUS_OK;
	if (cmd->in.len < 4 * (job->query_floats + job->list_len))
		return PNM_STATUS_SHORT_BUFFER;
	if (cmd->out.len < pnm_out_bytes(job))
		return PNM_STATUS_SHORT_BUFFER;
	return PNM_STATUS_OK;
}

static uint32_t pnm_read_le32(const uint8_t *p)
{
	/*
	 * One relaxed atomic load per entry: the value checked is the value
	 * kept, whatever the host writes at the same time.
	 */
	return le32toh(__atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED));
}

/*
 * Check every page table entry against the pool and keep a copy for the
 * kernels.  A table of more than PNM_EXEC_MAX_PAGES entries is checked in
 * place without a copy: that command fails with BAD_LENGTH at the latest.
 */
static int pnm_load_table(struct pnm_job *job, enum pnm_hw_status *status)
{
	bool copy = job->n_pages <= PNM_EXEC_MAX_PAGES;
	const uint8_t *src;
	uint64_t i;

	*status = PNM_STATUS_OK;
	if (!job->n_pages)
		return 0;	/* the table may be empty and then lies nowhere */
	src = job->dev->mem + job->cmd.table.dpa;
	job->res->bytes_read += 4 * job->n_pages;
	if (copy) {
		job->table = malloc(job->n_pages * sizeof(*job->table));
		if (!job->table)
			return -ENOMEM;
	}
	for (i = 0; i < job->n_pages; i++) {
		uint32_t slot = pnm_read_le32(src + 4 * i);

		if (slot >= job->n_slots) {
			*status = PNM_STATUS_BAD_PAGE;
			return 0;
		}
		if (copy)
			job->table[i] = slot;
	}
	return 0;
}

/* The page list follows the query in the input operand. */
static int pnm_load_list(struct pnm_job *job, enum pnm_hw_status *status)
{
	const uint8_t *src;
	unsigned int i;

	*status = PNM_STATUS_OK;
	if (!job->list_len)
		return 0;
	/* Only now is the input known to be in range. */
	src = job->dev->mem + job->cmd.in.dpa + 4 * job->query_floats;
	job->res->bytes_read += 4ULL * job->list_len;
	job->list = malloc((size_t)job->list_len * sizeof(*job->list));
	if (!job->list)
		return -ENOMEM;
	for (i = 0; i < job->list_len; i++) {
		uint32_t page = pnm_read_le32(src + 4 * i);

		if (page >= job->n_pages || (i && page <= job->list[i - 1])) {
			*status = PNM_STATUS_BAD_LIST;
			return 0;
		}
		job->list[i] = page;
	}
	return 0;
}

static bool pnm_page_excluded(const struct pnm_job *job, uint32_t page)
{
	unsigned int lo = 0, hi = job->list_len;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (job->list[mid] == page)
			return true;
		if (job->list[mid] < page)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Kept pages: page 0 with KEEP_SINK, page N - 1 with KEEP_RECENT. */
static void pnm_find_kept(struct pnm_job *job)
{
	uint32_t last = (uint32_t)job->n_pages - 1;

	job->keep_sink = false;
	job->keep_recent = false;
	job->n_kept = 0;
	if (!job->n_pages)
		return;
	if (job->cmd.flags & PNM_CMD_KEEP_SINK && !pnm_page_excluded(job, 0)) {
		job->keep_sink = true;
		job->n_kept++;
	}
	if (job->cmd.flags & PNM_CMD_KEEP_RECENT &&
	    !pnm_page_excluded(job, last) && !(job->keep_sink && last == 0)) {
		job->keep_recent = true;
		job->n_kept++;
	}
}

static enum pnm_hw_status pnm_check_k(struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;

	if (!pnm_opcode_selects(cmd->opcode))
		return PNM_STATUS_OK;
	pnm_find_kept(job);
	if (!cmd->k || cmd->k > job->dev->max_k || cmd->k < job->n_kept)
		return PNM_STATUS_BAD_K;
	return PNM_STATUS_OK;
}

/*
 * DIGEST writes the digest area of the pool and reads the slots before it
 * and the table; the other opcodes write @out and read everything else.
 */
static enum pnm_hw_status pnm_check_overlap(const struct pnm_job *job)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;

	if (cmd->opcode == PNM_OP_DIGEST) {
		struct pnm_range digests = {
			.dpa = cmd->pool.dpa + job->n_slots * job->slot_bytes,
			.len = job->n_slots * job->digest_bytes,
		};

		if (pnm_ranges_overlap(&digests, &cmd->table))
			return PNM_STATUS_OVERLAP;
		return PNM_STATUS_OK;
	}
	if (pnm_ranges_overlap(&cmd->out, &cmd->pool) ||
	    pnm_ranges_overlap(&cmd->out, &cmd->table) ||
	    pnm_ranges_overlap(&cmd->out, &cmd->in))
		return PNM_STATUS_OVERLAP;
	return PNM_STATUS_OK;
}

/*
 * Run the checks of the status table in its order.  Returns 0 with the
 * verdict in @status, or -ENOMEM.
 */
static int pnm_validate(struct pnm_job *job, enum pnm_hw_status *status)
{
	const struct pnm_exec_cmd *cmd = &job->cmd;
	int ret;

	if (cmd->opcode >= PNM_OP_COUNT) {
		*status = PNM_STATUS_BAD_OPCODE;
		return 0;
	}
	if (cmd->opcode == PNM_OP_NOP) {
		*status = pnm_check_reserved(cmd);
		return 0;
	}
	if (cmd->dtype >= PNM_DTYPE_COUNT || !(job->dev->dtypes >> cmd->dtype & 1)) {
		*status = PNM_STATUS_BAD_DTYPE;
		return 0;
	}
	*status = pnm_check_shape(job);
	if (*status)
		return 0;
	*status = pnm_check_reserved(cmd);
	if (*status)
		return 0;

	pnm_job_geometry(job);
	*status = pnm_check_ranges(job);
	if (*status)
		return 0;
	*status = pnm_check_sizes(job);
	if (*status)
		return 0;
	ret = pnm_load_table(job, status);
	if (ret || *status)
		return ret;
	ret = pnm_load_list(job, status);
	if (ret || *status)
		return ret;
	*status = pnm_check_k(job);
	if (*status)
		return 0;
	if (job->n_pages > PNM_EXEC_MAX_PAGES) {
		*status = PNM_STATUS_BAD_LENGTH;
		return 0;
	}
	*status = pnm_check_overlap(job);
	return 0;
}

/* ---- kernels ---------------------------------------------------------- */

static uint32_t pnm_valid_tokens(const struct pnm_job *job, uint32_t page)
{
	if (page + 1ULL < job->n_pages)
		return job->page_tokens;
	return job->cmd.n_tokens - (uint32_t)((uint64_t)page << job->cmd.page_shift);
}

static const uint8_t *pnm_slot_keys(const struct pnm_job *job, uint32_t slot)
{
	return job->pool + slot * job->slot_bytes;
}

static uint8_t *pnm_slot_digest(const struct pnm_job *job, uint32_t slot)
{
	return job->pool + job->n_slots * job->slot_bytes +
	       slot * job->digest_bytes;
}

static int pnm_load_query(struct pnm_job *job)
{
	job->query = malloc(job->query_floats * sizeof(*job->query));
	if (!job->query)
		return -ENOMEM;
	memcpy(job->query, job->dev->mem + job->cmd.in.dpa,
	       job->query_floats * sizeof(*job->query));
	job->res->bytes_read += 4 * job->query_floats;
	return 0;
}

/*
 * DIGEST: per-channel min and max of each page's valid key rows.  Min and
 * max of dtype values are dtype values, so storing them back is exact.
 */
static int pnm_run_digest(struct pnm_job *job)
{
	unsigned int d = job->cmd.head_dim, dtype = job->cmd.dtype;
	float *row, *lo, *hi;
	uint64_t page;

	row = malloc(3 * (size_t)d * sizeof(*row));
	if (!row)
		return -ENOMEM;
	lo = row + d;
	hi = lo + d;

	for (page = 0; page < job->n_pages; page++) {
		uint32_t slot = job->table[page];
		uint32_t valid = pnm_valid_tokens(job, page);
		const uint8_t *keys = pnm_slot_keys(job, slot);
		uint8_t *digest = pnm_slot_digest(job, slot);
		unsigned int t, c;

		for (c = 0; c < d; c++) {
			lo[c] = INFINITY;
			hi[c] = -INFINITY;
		}
		for (t = 0; t < valid; t++) {
			pnm_load_row(dtype, keys + (size_t)t * d * job->esize,
				     row, d);
			for (c = 0; c < d; c++) {
				if (row[c] < lo[c])
					lo[c] = row[c];
				if (row[c] > hi[c])
					hi[c] = row[c];
			}
		}
		pnm_store_row(dtype, digest, lo, d);
		pnm_store_row(dtype, digest + (size_t)d * job->esize, hi, d);

		job->res->bytes_read += (uint64_t)valid * d * job->esize;
		job->res->flops += 2ULL * valid * d;
	}
	free(row);
	return 0;
}

/*
 * Quest upper bound of page @page summed over the group: for each channel
 * the larger of q * min and q * max, accumulated in fp32, query head by
 * query head and channel by channel, the order the specification writes.
 */
static float pnm_score_page(const struct pnm_job *job, uint32_t page,
			    float *lo, float *hi)
{
	unsigned int d = job->cmd.head_dim, g, c;
	const uint8_t *digest = pnm_slot_digest(job, job->table[page]);
	float score = 0.0f;

	pnm_load_row(job->cmd.dtype, digest, lo, d);
	pnm_load_row(job->cmd.dtype, digest + (size_t)d * job->esize, hi, d);
	for (g = 0; g < job->cmd.group; g++) {
		const float *q = job->query + (size_t)g * d;

		for (c = 0; c < d; c++) {
			float a = q[c] * lo[c], b = q[c] * hi[c];

			score += a > b ? a : b;
		}
	}
	return score;
}

struct pnm_candidate {
	float score;
	uint32_t page;
};

/* Rank order: higher score first, NaN below every number, then lower page. */
static bool pnm_outranks(const struct pnm_candidate *a,
			 const struct pnm_candidate *b)
{
	bool a_nan = isnan(a->score), b_nan = isnan(b->score);

	if (a_nan != b_nan)
		return b_nan;
	if (!a_nan && a->score != b->score)
		return a->score > b->score;
	return a->page < b->page;
}

/*
 * A heap of the best candidates so far with the weakest at the root, so
 * each new page costs O(log k) and the whole selection O(N log k).
 */
struct pnm_heap {
	struct pnm_candidate *item;
	unsigned int len;
	unsigned int cap;
};

static void pnm_heap_sift_down(struct pnm_heap *h, unsigned int i)
{
	for (;;) {
		unsigned int weakest = i, l = 2 * i + 1, r = l + 1;
		struct pnm_candidate tmp;

		if (l < h->len && pnm_outranks(&h->item[weakest], &h->item[l]))
			weakest = l;
		if (r < h->len && pnm_outranks(&h->item[weakest], &h->item[r]))
			weakest = r;
		if (weakest == i)
			return;
		tmp = h->item[i];
		h->item[i] = h->item[weakest];
		h->item[weakest] = tmp;
		i = weakest;
	}
}

static void pnm_heap_sift_up(struct pnm_heap *h, unsigned int i)
{
	while (i) {
		unsigned int parent = (i - 1) / 2;
		struct pnm_candidate tmp;

		if (!pnm_outranks(&h->item[parent], &h->item[i]))
			return;
		tmp = h->item[i];
		h->item[i] = h->item[parent];
		h->item[parent] = tmp;
		i = parent;
	}
}

static void pnm_heap_offer(struct pnm_heap *h, const struct pnm_candidate *c)
{
	if (h->len < h->cap) {
		h->item[h->len] = *c;
		pnm_heap_sift_up(h, h->len++);
	} else if (h->cap && pnm_outranks(c, &h->item[0])) {
		h->item[0] = *c;
		pnm_heap_sift_down(h, 0);
	}
}

static int pnm_cmp_page(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * SELECT: the kept pages, then the best scores among the other pages that
 * are not excluded, until n_selected pages; written to @pages ascending.
 */
static int pnm_select(struct pnm_job *job, uint32_t *pages)
{
	unsigned int d = job->cmd.head_dim, next_excluded = 0, n = 0, i;
	struct pnm_heap heap = { .cap = job->n_selected - job->n_kept };
	uint32_t last = (uint32_t)job->n_pages - 1;
	float *lo, *hi;
	uint32_t page;

	lo = malloc(2 * (size_t)d * sizeof(*lo));
	heap.item = malloc(((size_t)heap.cap + 1) * sizeof(*heap.item));
	if (!lo || !heap.item) {
		free(lo);
		free(heap.item);
		return -ENOMEM;
	}
	hi = lo + d;

	for (page = 0; page < job->n_pages; page++) {
		struct pnm_candidate c;

		if (next_excluded < job->list_len &&
		    job->list[next_excluded] == page) {
			next_excluded++;
			continue;
		}
		if ((job->keep_sink && page == 0) ||
		    (job->keep_recent && page == last))
			continue;
		c.score = pnm_score_page(job, page, lo, hi);
		c.page = page;
		pnm_heap_offer(&heap, &c);
		job->res->bytes_read += job->digest_bytes;
		job->res->flops += 4 * job->query_floats;
	}

	if (job->keep_sink)
		pages[n++] = 0;
	if (job->keep_recent)
		pages[n++] = last;
	for (i = 0; i < heap.len; i++)
		pages[n++] = heap.item[i].page;
	qsort(pages, n, sizeof(*pages), pnm_cmp_page);
	job->res->result = n;

	free(lo);
	free(heap.item);
	return 0;
}

/* Running state of one query head: max logit, sum of weights, output. */
struct pnm_softmax {
	float max;
	float sum;
	float *acc;	/* head_dim values, sum of weight * V */
};

/*
 * Online softmax step for one token with logit @l and values @v: weights
 * stay relative to the running maximum, so no exp() overflows.  A token
 * with logit -inf has weight 0 and is skipped, which also avoids -inf minus
 * -inf while no token has been seen.
 */
static void pnm_softmax_add(struct pnm_softmax *sm, float l, const float *v,
			    unsigned int d)
{
	unsigned int c;

	if (l == -INFINITY)
		return;
	if (l > sm->max) {
		float rescale = expf(sm->max - l);

		sm->sum = sm->sum * rescale + 1.0f;
		for (c = 0; c < d; c++)
			sm->acc[c] = sm->acc[c] * rescale + v[c];
		sm->max = l;
	} else {
		float w = expf(l - sm->max);

		sm->sum += w;
		for (c = 0; c < d; c++)
			sm->acc[c] += w * v[c];
	}
}

/*
 * ATTEND over the valid tokens of @pages, head by head; results go to
 * @out ([group][head_dim] then lse[group]) in local memory.  Each key and
 * value row is converted once and used by every head of the group.
 */
static int pnm_attend(struct pnm_job *job, const uint32_t *pages,
		      unsigned int n_pages, float *out)
{
	unsigned int d = job->cmd.head_dim, group = job->cmd.group;
	float scale = 1.0f / sqrtf((float)d);
	struct pnm_softmax *sm;
	float *krow, *vrow, *lse = out + job->query_floats;
	unsigned int p, g, c;

	sm = malloc(group * sizeof(*sm));
	krow = malloc(2 * (size_t)d * sizeof(*krow));
	if (!sm || !krow) {
		free(sm);
		free(krow);
		return -ENOMEM;
	}
	vrow = krow + d;
	for (g = 0; g < group; g++) {
		sm[g].max = -INFINITY;
		sm[g].sum = 0.0f;
		sm[g].acc = out + (size_t)g * d;
		memset(sm[g].acc, 0, d * sizeof(float));
	}

	for (p = 0; p < n_pages; p++) {
		uint32_t valid = pnm_valid_tokens(job, pages[p]);
		const uint8_t *keys = pnm_slot_keys(job, job->table[pages[p]]);
		const uint8_t *values = keys + job->slot_bytes / 2;
		size_t row_bytes = (size_t)d * job->esize;
		uint32_t t;

		for (t = 0; t < valid; t++) {
			pnm_load_row(job->cmd.dtype, keys + t * row_bytes, krow, d);
			pnm_load_row(job->cmd.dtype, values + t * row_bytes, vrow, d);
			for (g = 0; g < group; g++) {
				const float *q = job->query + (size_t)g * d;
				float dot = 0.0f;

				for (c = 0; c < d; c++)
					dot += q[c] * krow[c];
				pnm_softmax_add(&sm[g], scale * dot, vrow, d);
			}
		}
		job->res->bytes_read += 2ULL * valid * row_bytes;
		job->res->flops += 4ULL * valid * job->query_floats;
	}

	/* out = acc / sum and lse = max + log(sum); no token: 0 and -inf. */
	for (g = 0; g < group; g++) {
		if (sm[g].max == -INFINITY) {
			memset(sm[g].acc, 0, d * sizeof(float));
			lse[g] = -INFINITY;
			continue;
		}
		for (c = 0; c < d; c++)
			sm[g].acc[c] /= sm[g].sum;
		lse[g] = sm[g].max + logf(sm[g].sum);
	}
	free(sm);
	free(krow);
	return 0;
}

static void pnm_write_out(struct pnm_job *job, uint64_t offset,
			  const void *src, uint64_t len)
{
	memcpy(job->dev->mem + job->cmd.out.dpa + offset, src, len);
}

static void pnm_write_pages(struct pnm_job *job, uint64_t offset,
			    const uint32_t *pages, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint32_t le = htole32(pages[i]);

		pnm_write_out(job, offset + 4ULL * i, &le, sizeof(le));
	}
}

static int pnm_run_select(struct pnm_job *job)
{
	uint32_t *pages;
	int ret;

	pages = malloc(((size_t)job->n_selected + 1) * sizeof(*pages));
	if (!pages)
		return -ENOMEM;
	ret = pnm_select(job, pages);
	if (!ret)
		pnm_write_pages(job, 0, pages, job->res->result);
	free(pages);
	return ret;
}

static int pnm_run_attend(struct pnm_job *job)
{
	uint64_t out_bytes = pnm_out_bytes(job);
	float *out;
	int ret;

	out = malloc(out_bytes);
	if (!out)
		return -ENOMEM;
	ret = pnm_attend(job, job->list, job->list_len, out);
	if (!ret) {
		pnm_write_out(job, 0, out, out_bytes);
		job->res->result = job->list_len;
	}
	free(out);
	return ret;
}

static int pnm_run_select_attend(struct pnm_job *job)
{
	uint64_t attend_bytes = 4 * (job->query_floats + job->cmd.group);
	uint32_t *pages;
	float *out;
	int ret;

	pages = malloc(((size_t)job->n_selected + 1) * sizeof(*pages));
	out = malloc(attend_bytes);
	if (!pages || !out) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = pnm_select(job, pages);
	if (ret)
		goto out_free;
	ret = pnm_attend(job, pages, job->res->result, out);
	if (ret)
		goto out_free;
	pnm_write_out(job, 0, out, attend_bytes);
	pnm_write_pages(job, attend_bytes, pages, job->res->result);
out_free:
	free(pages);
	free(out);
	return ret;
}

static int pnm_run(struct pnm_job *job)
{
	int ret;

	if (job->cmd.opcode == PNM_OP_NOP)
		return 0;
	/* Validation has checked the pool's range, or it is empty and unused. */
	if (job->cmd.pool.len)
		job->pool = job->dev->mem + job->cmd.pool.dpa;

	if (pnm_opcode_uses_query(job->cmd.opcode)) {
		ret = pnm_load_query(job);
		if (ret)
			return ret;
	}
	switch (job->cmd.opcode) {
	case PNM_OP_DIGEST:
		return pnm_run_digest(job);
	case PNM_OP_SELECT:
		return pnm_run_select(job);
	case PNM_OP_ATTEND:
		return pnm_run_attend(job);
	default:
		return pnm_run_select_attend(job);
	}
}

int pnm_exec(const struct pnm_exec_dev *dev, const struct pnm_hw_cmd *cmd,
	     struct pnm_exec_result *res)
{
	struct pnm_job job = { .dev = dev, .res = res };
	enum pnm_hw_status status;
	int ret;

	memset(res, 0, sizeof(*res));
	pnm_decode(cmd, &job.cmd);

	ret = pnm_validate(&job, &status);
	if (!ret && status == PNM_STATUS_OK)
		ret = pnm_run(&job);
	if (!ret)
		res->status = status;

	free(job.table);
	free(job.list);
	free(job.query);
	return ret;
}
