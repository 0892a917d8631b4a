/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Compute kernels of the CXL-PNM device model: page digests, page scores
 * and attention over pages, in three implementations chosen at run time.
 *
 *   scalar  portable C, the reference path: every sum in the order the
 *           interface document writes it
 *   avx2    AVX2 + FMA + F16C, 8 fp32 lanes
 *   avx512  AVX-512 F/BW/VL, 16 fp32 lanes
 *
 * fp16 and bf16 are widened to fp32 in registers (F16C vcvtph2ps; a 16-bit
 * shift for bf16) and every sum is accumulated in fp32.  Digests are exact
 * on every path.  Scores of the vector paths come with an error bound that
 * the selection uses to stay bit-identical to the scalar order (see
 * pnm_exec.c).  Attention agrees with the scalar path within
 * Documentation/device-model.rst's tolerance.
 */
#ifndef PNM_KERNELS_H
#define PNM_KERNELS_H

#include <stdint.h>

/* Largest shapes the kernels' stack buffers hold; the device's limits. */
#define PNM_KERNEL_MAX_HEAD_DIM	256
#define PNM_KERNEL_MAX_GROUP	32

/*
 * Absolute slack of a fast score's bound: rounding below the normal range
 * loses at most 2^-150 per operation, and a score takes fewer than 2^14
 * operations in either order, so 2^-130 (about 7e-40) covers it.
 */
#define PNM_SCORE_BOUND_ABS	0x1p-130f

enum pnm_kernel_isa {
	PNM_ISA_SCALAR,
	PNM_ISA_AVX2,
	PNM_ISA_AVX512,
	PNM_ISA_COUNT
};

/**
 * struct pnm_kernel_args - one command's operands as the kernels use them
 * @dtype: enum pnm_hw_dtype of keys, values and digests
 * @head_dim: channels per head, a multiple of 16
 * @group: query heads sharing the KV head
 * @page_shift: log2 of tokens per page
 * @n_pages: pages in the stream
 * @last_valid: valid tokens of the last page
 * @pool: page slots in device memory
 * @slot_bytes: bytes of one page slot (keys, then values)
 * @digests: digest area of the pool
 * @digest_bytes: bytes of one digest
 * @table: validated copy of the page table, slot of each page
 * @query: fp32 query [group][head_dim], a private copy
 * @scale: 1 / sqrt(head_dim), the logit scale
 * @qpos: [head_dim] sum over the group of max(q, 0), for fast scores
 * @qneg: [head_dim] sum over the group of min(q, 0), for fast scores
 * @bound_factor: a fast score's bound is this times its sum of absolute
 *	terms, plus PNM_SCORE_BOUND_ABS
 */
struct pnm_kernel_args {
	unsigned int dtype;
	unsigned int head_dim;
	unsigned int group;
	unsigned int page_shift;
	uint64_t n_pages;
	uint32_t last_valid;
	const uint8_t *pool;
	uint64_t slot_bytes;
	const uint8_t *digests;
	uint64_t digest_bytes;
	const uint32_t *table;
	const float *query;
	float scale;
	const float *qpos;
	const float *qneg;
	float bound_factor;
};

/**
 * struct pnm_attend_state - running softmax of every query head of a group
 * @max: [group] largest logit so far, -inf before any token
 * @sum: [group] sum of exp(logit - max)
 * @acc: [group][head_dim] sum of exp(logit - max) * V
 *
 * Two states over disjoint tokens merge by log-sum-exp (pnm_attend_merge).
 */
struct pnm_attend_state {
	float *max;
	float *sum;
	float *acc;
};

/**
 * struct pnm_kernels - one implementation of the kernels
 * @name: "scalar", "avx2" or "avx512"
 * @exact_scores: @score returns the scalar order's scores with bound 0
 * @digest: per-channel min and max of @valid key rows at @keys, stored in
 *	the dtype at @digest (min[head_dim] then max[head_dim]); exact
 * @score: for the pages @pages[0..n), the Quest score summed over the
 *	group into @score and a bound on its distance from the scalar order's
 *	score into @bound; a bound of +inf means "unknown, rescore"
 * @attend: add the valid tokens of @pages[0..n) to @st
 */
struct pnm_kernels {
	const char *name;
	int exact_scores;
	void (*digest)(const struct pnm_kernel_args *a, const uint8_t *keys,
		       unsigned int valid, uint8_t *digest);
	void (*score)(const struct pnm_kernel_args *a, const uint32_t *pages,
		      unsigned int n, float *score, float *bound);
	void (*attend)(const struct pnm_kernel_args *a, const uint32_t *pages,
		       unsigned int n, struct pnm_attend_state *st);
};

extern const struct pnm_kernels pnm_kernels_scalar;
extern const struct pnm_kernels pnm_kernels_avx2;
extern const struct pnm_kernels pnm_kernels_avx512;

/* Whether this CPU runs @isa. */
int pnm_kernels_supported(enum pnm_kernel_isa isa);

/*
 * The kernels for @isa, or NULL if the CPU lacks it.  The best supported
 * one for PNM_ISA_COUNT.
 */
const struct pnm_kernels *pnm_kernels_get(enum pnm_kernel_isa isa);

/*
 * Parse "scalar", "avx2", "avx512" or "auto" (the best supported).
 * Returns 0 and sets *@isa (PNM_ISA_COUNT for auto), or -EINVAL.
 */
int pnm_kernels_parse(const char *name, enum pnm_kernel_isa *isa);

/*
 * The kernels a device model uses: @name if not NULL, else $PNM_KERNELS,
 * else the best supported.  NULL if the name is invalid or the CPU lacks
 * the path it names; *@why then says which.
 */
const struct pnm_kernels *pnm_kernels_choose(const char *name,
					     const char **why);

/* Valid tokens of page @page of the stream. */
static inline uint32_t pnm_kernel_valid(const struct pnm_kernel_args *a,
					uint64_t page)
{
	return page + 1 < a->n_pages ? 1U << a->page_shift : a->last_valid;
}

/* Scalar Quest score of @page in the interface document's order. */
float pnm_score_exact(const struct pnm_kernel_args *a, uint32_t page);

/* Initialize @st for @group heads: no token yet. */
void pnm_attend_init(struct pnm_attend_state *st, unsigned int group,
		     unsigned int head_dim);

/* Fold @b (disjoint tokens) into @a by log-sum-exp. */
void pnm_attend_merge(struct pnm_attend_state *a,
		      const struct pnm_attend_state *b, unsigned int group,
		      unsigned int head_dim);

/*
 * Final out[group][head_dim] = acc / sum and lse[group] = max + log(sum);
 * a head with no token gives 0 and -inf.
 */
void pnm_attend_finish(const struct pnm_attend_state *st, unsigned int group,
		       unsigned int head_dim, float *out, float *lse);

#endif /* PNM_KERNELS_H */
