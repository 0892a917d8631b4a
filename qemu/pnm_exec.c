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

#include "pnm_dtype.h"
#include "pnm_exec.h"
#include "pnm_kernels.h"
#include "pnm_units.h"

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
	float *qpos;			/* [head_dim] sum of positive query parts */
	float *qneg;			/* [head_dim] sum of negative query parts */

	const struct pnm_kernels *kern;	/* the kernel path */
	struct pnm_kernel_args args;	/* what the kernels read */
	unsigned int n_tasks;		/* tasks of the current parallel step */
	unsigned int rescored;		/* pages SELECT rescored exactly */
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

	/* ATTEND's k counts its list: above max_k is BAD_K there too. */
	if (cmd->opcode == PNM_OP_ATTEND && cmd->k > job->dev->max_k)
		return PNM_STATUS_BAD_K;
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

/* ---- execution ---------------------------------------------------------- */

/*
 * Below these sizes a command runs on one unit: waking the other units
 * costs more than they would save.
 */
#define PNM_SPLIT_MIN_PAGES	512	/* DIGEST pages or SELECT candidates */
#define PNM_SPLIT_MIN_TOKENS	2048	/* ATTEND tokens */

static uint32_t pnm_valid_tokens(const struct pnm_job *job, uint32_t page)
{
	return pnm_kernel_valid(&job->args, page);
}

/* Tasks for @work items with at least @min_per_task items per task. */
static unsigned int pnm_split(const struct pnm_job *job, uint64_t work,
			      uint64_t min_per_task)
{
	uint64_t n = pnm_units_count(job->dev->units);
	uint64_t most = work / min_per_task;

	if (most < 1)
		return 1;
	return (unsigned int)(n < most ? n : most);
}

/* Task @i of @n_tasks over @n items: [*start, *end). */
static void pnm_task_range(uint64_t n, unsigned int n_tasks, unsigned int i,
			   uint64_t *start, uint64_t *end)
{
	*start = n * i / n_tasks;
	*end = n * (i + 1) / n_tasks;
}

/*
 * Factor of a fast score's error bound (pnm_kernels_simd.h).  With
 * u = 2^-24 and gamma(n) = n u / (1 - n u), a sum of n rounded products
 * is within gamma(n) * A of the exact sum, A the sum of absolute terms:
 * the scalar order rounds g * d times; the fast order g - 1 times for qpos
 * and qneg, d / 16 + 1 times per lane and 4 times across lanes.  Its A is
 * itself computed the fast way.  The factor doubles the sum of both for
 * the rounding of the bound itself and of score +- bound.
 */
static float pnm_bound_factor(unsigned int group, unsigned int head_dim)
{
	double u = 0x1p-24;
	double n_ref = (double)group * head_dim;
	double n_fast = group + head_dim / 16 + 5;
	double g_ref = n_ref * u / (1 - n_ref * u);
	double g_fast = n_fast * u / (1 - n_fast * u);

	return (float)(2 * (g_ref + g_fast) / (1 - g_fast));
}

static int pnm_prepare(struct pnm_job *job)
{
	struct pnm_kernel_args *a = &job->args;
	unsigned int d = job->cmd.head_dim, g, c;

	a->dtype = job->cmd.dtype;
	a->head_dim = d;
	a->group = job->cmd.group;
	a->page_shift = job->cmd.page_shift;
	a->n_pages = job->n_pages;
	a->last_valid = job->n_pages ?
		job->cmd.n_tokens - (uint32_t)((job->n_pages - 1) << job->cmd.page_shift) : 0;
	a->pool = job->pool;
	a->slot_bytes = job->slot_bytes;
	a->digests = job->pool ? job->pool + job->n_slots * job->slot_bytes : NULL;
	a->digest_bytes = job->digest_bytes;
	a->table = job->table;
	a->scale = 1.0f / sqrtf((float)d);
	a->bound_factor = pnm_bound_factor(a->group, d);
	if (!pnm_opcode_uses_query(job->cmd.opcode))
		return 0;

	job->query = malloc((job->query_floats + 2 * d) * sizeof(*job->query));
	if (!job->query)
		return -ENOMEM;
	memcpy(job->query, job->dev->mem + job->cmd.in.dpa,
	       job->query_floats * sizeof(*job->query));
	job->res->bytes_read += 4 * job->query_floats;

	/* The group's positive and negative query parts, for fast scores. */
	job->qpos = job->query + job->query_floats;
	job->qneg = job->qpos + d;
	for (c = 0; c < d; c++) {
		float pos = 0.0f, neg = 0.0f;

		for (g = 0; g < a->group; g++) {
			float q = job->query[(size_t)g * d + c];

			pos += q > 0 ? q : 0.0f;
			neg += q < 0 ? q : 0.0f;
		}
		job->qpos[c] = pos;
		job->qneg[c] = neg;
	}
	a->query = job->query;
	a->qpos = job->qpos;
	a->qneg = job->qneg;
	return 0;
}

/* ---- DIGEST ---- */

#define PNM_PAGE_SKIP	UINT32_MAX	/* a page whose digest a later page writes */

static void pnm_digest_task(void *arg, unsigned int i)
{
	struct pnm_job *job = arg;
	uint64_t page, start, end;

	pnm_task_range(job->n_pages, job->n_tasks, i, &start, &end);
	for (page = start; page < end; page++) {
		uint32_t slot = job->table[page];

		if (slot == PNM_PAGE_SKIP)
			continue;
		job->kern->digest(&job->args, job->pool + slot * job->slot_bytes,
				  pnm_valid_tokens(job, (uint32_t)page),
				  (uint8_t *)job->args.digests + slot * job->digest_bytes);
	}
}

/*
 * Two pages of a table may name the same slot.  Run one by one, the last
 * of them writes that slot's digest last; the units run pages at the same
 * time, so only that last page keeps the slot and the others are marked
 * PNM_PAGE_SKIP in the private copy of the table.  Slot numbers are below
 * S, which is below 2^32 / 320 (the smallest slot and digest), so the
 * mark is never a slot.
 */
static int pnm_digest_last_writers(struct pnm_job *job)
{
	uint64_t *seen, page;

	if (!job->n_pages)
		return 0;
	seen = calloc((job->n_slots + 63) / 64, sizeof(*seen));
	if (!seen)
		return -ENOMEM;
	for (page = job->n_pages; page-- > 0;) {
		uint32_t slot = job->table[page];

		if (seen[slot / 64] >> (slot % 64) & 1)
			job->table[page] = PNM_PAGE_SKIP;
		else
			seen[slot / 64] |= 1ULL << (slot % 64);
	}
	free(seen);
	return 0;
}

/* DIGEST: per-channel min and max of each page's valid key rows. */
static int pnm_run_digest(struct pnm_job *job)
{
	uint64_t elements = (uint64_t)job->cmd.n_tokens * job->cmd.head_dim;
	int ret;

	ret = pnm_digest_last_writers(job);
	if (ret)
		return ret;

	job->n_tasks = pnm_split(job, job->n_pages, PNM_SPLIT_MIN_PAGES);
	pnm_units_run(job->dev->units, pnm_digest_task, job, job->n_tasks);
	job->res->bytes_read += elements * job->esize;
	job->res->flops += 2 * elements;
	return 0;
}

/* ---- SELECT ---- */

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

static void pnm_heap_offer(struct pnm_heap *h, float score, uint32_t page)
{
	struct pnm_candidate c = { .score = score, .page = page };

	if (h->len < h->cap) {
		h->item[h->len] = c;
		pnm_heap_sift_up(h, h->len++);
	} else if (h->cap && pnm_outranks(&c, &h->item[0])) {
		h->item[0] = c;
		pnm_heap_sift_down(h, 0);
	}
}

/*
 * The @cap largest of a stream of numbers, smallest at the root: after
 * every number is offered, the root is the cap-th largest.
 */
struct pnm_top {
	double *v;
	unsigned int len;
	unsigned int cap;
};

static void pnm_top_offer(struct pnm_top *t, double x)
{
	unsigned int i;

	if (t->len < t->cap) {
		i = t->len++;
		while (i && t->v[(i - 1) / 2] > x) {
			t->v[i] = t->v[(i - 1) / 2];
			i = (i - 1) / 2;
		}
		t->v[i] = x;
		return;
	}
	if (!(x > t->v[0]))
		return;
	i = 0;
	for (;;) {
		unsigned int l = 2 * i + 1, m = l;

		if (l >= t->len)
			break;
		if (l + 1 < t->len && t->v[l + 1] < t->v[l])
			m = l + 1;
		if (!(t->v[m] < x))
			break;
		t->v[i] = t->v[m];
		i = m;
	}
	t->v[i] = x;
}

/* The scores of a SELECT's candidate pages, split over the units. */
struct pnm_scores {
	struct pnm_job *job;
	const uint32_t *cand;
	uint64_t n_cand;
	float *score;
	float *bound;
};

static void pnm_score_task(void *arg, unsigned int i)
{
	struct pnm_scores *s = arg;
	uint64_t start, end;

	pnm_task_range(s->n_cand, s->job->n_tasks, i, &start, &end);
	s->job->kern->score(&s->job->args, s->cand + start,
			    (unsigned int)(end - start), s->score + start,
			    s->bound + start);
}

/* Exact scores: the best @cap candidates by rank, appended to @pages. */
static unsigned int pnm_pick_exact(const struct pnm_scores *s,
				   unsigned int cap, struct pnm_candidate *buf,
				   uint32_t *pages)
{
	struct pnm_heap heap = { .item = buf, .cap = cap };
	uint64_t i;

	for (i = 0; i < s->n_cand; i++)
		pnm_heap_offer(&heap, s->score[i], s->cand[i]);
	for (i = 0; i < heap.len; i++)
		pages[i] = heap.item[i].page;
	return heap.len;
}

/*
 * Fast scores with bounds: the exact score of candidate i lies in
 * [lo_i, hi_i] = score_i -+ bound_i.  With L the cap-th largest lo and U
 * the (cap + 1)-th largest hi:
 *   - lo_i > U: at most cap - 1 other pages can outrank i: selected;
 *   - hi_i < L: at least cap pages outrank i: not selected;
 *   - otherwise i is rescored exactly (the scalar order), and the rest of
 *     the budget goes to the best of those by the exact rank.
 * The result is the scalar path's selection, bit for bit.  Usually a few
 * pages per command are rescored; a digest the fast path cannot bound
 * (bound +inf) is always rescored.
 */
/* Where the exact score of candidate @i may lie: [*lo, *hi]. */
static void pnm_interval(const struct pnm_scores *s, uint64_t i, double *lo,
			 double *hi)
{
	double b = s->bound[i];

	*lo = b < INFINITY ? s->score[i] - b : -INFINITY;
	*hi = b < INFINITY ? s->score[i] + b : INFINITY;
}

static unsigned int pnm_pick_bounded(struct pnm_job *job,
				     const struct pnm_scores *s,
				     unsigned int cap, double *tops,
				     struct pnm_candidate *buf, uint32_t *pages)
{
	struct pnm_top lows = { .v = tops, .cap = cap };
	struct pnm_top highs = { .v = tops + cap, .cap = cap + 1 };
	struct pnm_heap heap = { .item = buf };
	unsigned int n = 0;
	double lo, hi, L, U;
	uint64_t i;

	for (i = 0; i < s->n_cand; i++) {
		pnm_interval(s, i, &lo, &hi);
		pnm_top_offer(&lows, lo);
		pnm_top_offer(&highs, hi);
	}
	L = lows.v[0];
	U = highs.v[0];
	for (i = 0; i < s->n_cand; i++) {
		pnm_interval(s, i, &lo, &hi);
		if (lo > U)
			pages[n++] = s->cand[i];
	}
	heap.cap = cap - n;
	for (i = 0; i < s->n_cand; i++) {
		pnm_interval(s, i, &lo, &hi);
		if (lo > U || hi < L)
			continue;
		pnm_heap_offer(&heap, pnm_score_exact(&job->args, s->cand[i]),
			       s->cand[i]);
		job->rescored++;
	}
	for (i = 0; i < heap.len; i++)
		pages[n++] = heap.item[i].page;
	return n;
}

static int pnm_cmp_page(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Pages that are neither excluded nor kept, ascending. */
static uint64_t pnm_candidates(const struct pnm_job *job, uint32_t *cand)
{
	uint32_t last = (uint32_t)job->n_pages - 1, page;
	unsigned int next_excluded = 0;
	uint64_t n = 0;

	for (page = 0; page < job->n_pages; page++) {
		if (next_excluded < job->list_len &&
		    job->list[next_excluded] == page) {
			next_excluded++;
			continue;
		}
		if ((job->keep_sink && page == 0) ||
		    (job->keep_recent && page == last))
			continue;
		cand[n++] = page;
	}
	return n;
}

/*
 * SELECT: the kept pages, then the best scores among the other pages that
 * are not excluded, until n_selected pages; written to @pages ascending.
 */
static int pnm_select(struct pnm_job *job, uint32_t *pages)
{
	unsigned int cap = job->n_selected - job->n_kept, n = 0;
	struct pnm_scores s = { .job = job };
	struct pnm_candidate *buf;
	uint32_t *cand;
	double *tops;

	cand = malloc((job->n_pages + 1) * sizeof(*cand));
	s.score = malloc((job->n_pages + 1) * 2 * sizeof(*s.score));
	buf = malloc(((size_t)cap + 1) * sizeof(*buf));
	tops = malloc(((size_t)cap + 1) * 2 * sizeof(*tops));
	if (!cand || !s.score || !buf || !tops) {
		free(cand);
		free(s.score);
		free(buf);
		free(tops);
		return -ENOMEM;
	}
	s.bound = s.score + job->n_pages + 1;
	s.cand = cand;
	s.n_cand = pnm_candidates(job, cand);

	job->n_tasks = pnm_split(job, s.n_cand, PNM_SPLIT_MIN_PAGES);
	pnm_units_run(job->dev->units, pnm_score_task, &s, job->n_tasks);
	job->res->bytes_read += s.n_cand * job->digest_bytes;
	/*
	 * Hardware scores as the vector paths do: the group's positive and
	 * negative query parts are summed once per channel, then each page
	 * costs two multiply-adds per channel, whatever the group size.
	 */
	job->res->flops += 2 * job->query_floats +
			   4ULL * job->cmd.head_dim * s.n_cand;

	if (job->keep_sink)
		pages[n++] = 0;
	if (job->keep_recent)
		pages[n++] = (uint32_t)job->n_pages - 1;
	if (cap >= s.n_cand) {
		memcpy(pages + n, cand, s.n_cand * sizeof(*cand));
		n += s.n_cand;
	} else if (job->kern->exact_scores) {
		n += pnm_pick_exact(&s, cap, buf, pages + n);
	} else {
		n += pnm_pick_bounded(job, &s, cap, tops, buf, pages + n);
	}
	qsort(pages, n, sizeof(*pages), pnm_cmp_page);
	job->res->result = n;

	free(cand);
	free(s.score);
	free(buf);
	free(tops);
	return 0;
}

/* ---- ATTEND ---- */

/* Attention over a page list, split over the units by page ranges. */
struct pnm_attention {
	struct pnm_job *job;
	const uint32_t *pages;
	unsigned int n_pages;
	struct pnm_attend_state *st;	/* one per task */
};

static void pnm_attend_task(void *arg, unsigned int i)
{
	struct pnm_attention *at = arg;
	uint64_t start, end;

	pnm_task_range(at->n_pages, at->job->n_tasks, i, &start, &end);
	/* An empty list may have no array at all: no offset from NULL. */
	at->job->kern->attend(&at->job->args, at->n_pages ? at->pages + start : NULL,
			      (unsigned int)(end - start), &at->st[i]);
}

/*
 * ATTEND over the valid tokens of @pages; results go to @out
 * ([group][head_dim] then lse[group]) in local memory.  Each task keeps
 * its own softmax state; the states merge by log-sum-exp in task order,
 * so the result does not depend on which unit ran which task.
 */
static int pnm_attend(struct pnm_job *job, const uint32_t *pages,
		      unsigned int n_pages, float *out)
{
	unsigned int d = job->cmd.head_dim, group = job->cmd.group, i;
	size_t per_task = 2 * (size_t)group + (size_t)group * d;
	struct pnm_attention at = { .job = job, .pages = pages, .n_pages = n_pages };
	uint64_t tokens = 0;
	float *mem;

	for (i = 0; i < n_pages; i++)
		tokens += pnm_valid_tokens(job, pages[i]);
	job->n_tasks = pnm_split(job, tokens, PNM_SPLIT_MIN_TOKENS);
	if (job->n_tasks > n_pages)
		job->n_tasks = n_pages ? n_pages : 1;

	at.st = malloc(job->n_tasks * sizeof(*at.st));
	mem = malloc(job->n_tasks * per_task * sizeof(*mem));
	if (!at.st || !mem) {
		free(at.st);
		free(mem);
		return -ENOMEM;
	}
	for (i = 0; i < job->n_tasks; i++) {
		at.st[i].max = mem + i * per_task;
		at.st[i].sum = at.st[i].max + group;
		at.st[i].acc = at.st[i].sum + group;
		pnm_attend_init(&at.st[i], group, d);
	}
	pnm_units_run(job->dev->units, pnm_attend_task, &at, job->n_tasks);
	for (i = 1; i < job->n_tasks; i++)
		pnm_attend_merge(&at.st[0], &at.st[i], group, d);
	pnm_attend_finish(&at.st[0], group, d, out, out + job->query_floats);

	job->res->bytes_read += 2 * tokens * d * job->esize;
	job->res->flops += 4 * tokens * job->query_floats;
	free(at.st);
	free(mem);
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

	ret = pnm_prepare(job);
	if (ret)
		return ret;
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
	struct pnm_job job = {
		.dev = dev,
		.res = res,
		.kern = dev->kernels ? dev->kernels : &pnm_kernels_scalar,
	};
	enum pnm_hw_status status;
	int ret;

	memset(res, 0, sizeof(*res));
	pnm_decode(cmd, &job.cmd);

	ret = pnm_validate(&job, &status);
	if (!ret && status == PNM_STATUS_OK)
		ret = pnm_run(&job);
	if (!ret)
		res->status = status;
	res->rescored = job.rescored;

	free(job.table);
	free(job.list);
	free(job.query);
	return ret;
}
