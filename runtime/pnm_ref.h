/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * CPU reference for the device's math: page digests, Quest selection,
 * attention over pages, and the log-sum-exp merge of partial results.
 *
 * It reads the same layout the device reads (a page pool and a page table,
 * Documentation/device-interface.rst), in plain scalar C with fp32
 * accumulation, so tests and --verify compare like with like.
 */
#ifndef PNM_REF_H
#define PNM_REF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A stream as the device sees it. */
struct pnm_ref_stream {
	unsigned int dtype;		/* CXL_PNM_DTYPE_* */
	unsigned int head_dim;
	unsigned int page_shift;
	unsigned int group;		/* query heads per KV head */
	uint32_t n_tokens;
	const void *pool;		/* page slots, then digests */
	uint64_t pool_len;		/* bytes */
	const uint32_t *table;		/* slot of each page */
};

/* Element @index of an array of @dtype, as float. */
float pnm_ref_load(unsigned int dtype, const void *base, size_t index);
/* Store @value into element @index, rounding to nearest even. */
void pnm_ref_store(unsigned int dtype, void *base, size_t index, float value);

/* Pages in the stream, ceil(n_tokens / page size). */
uint32_t pnm_ref_n_pages(const struct pnm_ref_stream *s);
/* Slots in the stream's pool. */
uint64_t pnm_ref_n_slots(const struct pnm_ref_stream *s);
/* Keys of slot @slot; values follow at head_dim << page_shift elements. */
const void *pnm_ref_slot(const struct pnm_ref_stream *s, uint32_t slot);
/* Digest of slot @slot: min[head_dim] then max[head_dim]. */
const void *pnm_ref_digest_of(const struct pnm_ref_stream *s, uint32_t slot);

/* Compute the digest of @n_valid key rows of one page into @digest. */
void pnm_ref_digest(unsigned int dtype, unsigned int head_dim,
		    const void *keys, unsigned int n_valid, void *digest);

/* Quest score of page @page, summed over the group's query heads. */
float pnm_ref_score(const struct pnm_ref_stream *s, const float *q,
		    uint32_t page);

/*
 * Select pages as SELECT does: kept pages (CXL_PNM_CMD_KEEP_* in @flags),
 * then the highest scores, ties to the lower page; @exclude is ascending.
 * Writes the ascending page list to @pages and returns its length, or -1
 * when @k is below the kept pages.
 */
int pnm_ref_select(const struct pnm_ref_stream *s, const float *q,
		   unsigned int k, unsigned int flags,
		   const uint32_t *exclude, unsigned int n_exclude,
		   uint32_t *pages);

/*
 * Attention of each query head over the valid tokens of @pages (any order,
 * no duplicates): out[group][head_dim] and natural-log lse[group].  No
 * tokens gives out 0 and lse -INFINITY.
 */
void pnm_ref_attend(const struct pnm_ref_stream *s, const float *q,
		    const uint32_t *pages, unsigned int n_pages,
		    float *out, float *lse);

/* Attention over every token of the stream (dense attention). */
void pnm_ref_attend_dense(const struct pnm_ref_stream *s, const float *q,
			  float *out, float *lse);

/*
 * Merge partial attention (out_b, lse_b) into (out_a, lse_a), both over
 * disjoint token sets, for @head_dim channels of one head.  A side with
 * lse -INFINITY contributes nothing.
 */
void pnm_ref_merge(float *out_a, float *lse_a, const float *out_b,
		   float lse_b, unsigned int head_dim);

#ifdef __cplusplus
}
#endif

#endif /* PNM_REF_H */
