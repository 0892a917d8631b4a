// SPDX-License-Identifier: GPL-2.0-only
/*
 * Scalar kernels of the CXL-PNM device model, the choice of a kernel path
 * at run time, and the softmax state helpers every path shares.
 *
 * The scalar kernels are the reference path: plain C in the order the
 * interface document writes each sum, with fp32 accumulation.  The vector
 * paths (pnm_kernels_avx2.c, pnm_kernels_avx512.c) are checked against
 * them by tests/unit/kernel_paths.c.
 */
#include <errno.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnm_dtype.h"
#include "pnm_kernels.h"

static const uint8_t *pnm_page_keys(const struct pnm_kernel_args *a,
				    uint32_t page)
{
	return a->pool + a->table[page] * a->slot_bytes;
}

static const uint8_t *pnm_page_digest(const struct pnm_kernel_args *a,
				      uint32_t page)
{
	return a->digests + a->table[page] * a->digest_bytes;
}

/*
 * DIGEST: per-channel min and max of the valid key rows.  Min and max of
 * dtype values are dtype values, so storing them back is exact.  A NaN key
 * never replaces a bound (the comparisons are false).
 */
static void pnm_scalar_digest(const struct pnm_kernel_args *a,
			      const uint8_t *keys, unsigned int valid,
			      uint8_t *digest)
{
	unsigned int d = a->head_dim, esize = pnm_hw_dtype_size(a->dtype);
	float row[256], lo[256], hi[256];
	unsigned int t, c;

	for (c = 0; c < d; c++) {
		lo[c] = INFINITY;
		hi[c] = -INFINITY;
	}
	for (t = 0; t < valid; t++) {
		pnm_load_row(a->dtype, keys + (size_t)t * d * esize, row, d);
		for (c = 0; c < d; c++) {
			if (row[c] < lo[c])
				lo[c] = row[c];
			if (row[c] > hi[c])
				hi[c] = row[c];
		}
	}
	pnm_store_row(a->dtype, digest, lo, d);
	pnm_store_row(a->dtype, digest + (size_t)d * esize, hi, d);
}

/*
 * Quest upper bound of page @page summed over the group: for each channel
 * the larger of q * min and q * max, accumulated in fp32, query head by
 * query head and channel by channel, the order the specification writes.
 */
float pnm_score_exact(const struct pnm_kernel_args *a, uint32_t page)
{
	unsigned int d = a->head_dim, g, c;
	const uint8_t *digest = pnm_page_digest(a, page);
	float lo[256], hi[256], score = 0.0f;

	pnm_load_row(a->dtype, digest, lo, d);
	pnm_load_row(a->dtype, digest + (size_t)d * pnm_hw_dtype_size(a->dtype),
		     hi, d);
	for (g = 0; g < a->group; g++) {
		const float *q = a->query + (size_t)g * d;

		for (c = 0; c < d; c++) {
			float x = q[c] * lo[c], y = q[c] * hi[c];

			score += x > y ? x : y;
		}
	}
	return score;
}

static void pnm_scalar_score(const struct pnm_kernel_args *a,
			     const uint32_t *pages, unsigned int n,
			     float *score, float *bound)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		score[i] = pnm_score_exact(a, pages[i]);
		bound[i] = 0.0f;
	}
}

/*
 * Online softmax step for one token with logit @l and values @v: weights
 * stay relative to the running maximum, so no exp() overflows.  A token
 * with logit -inf has weight 0 and is skipped, which also avoids -inf minus
 * -inf while no token has been seen.
 */
static void pnm_softmax_add(float *max, float *sum, float *acc, float l,
			    const float *v, unsigned int d)
{
	unsigned int c;

	if (l == -INFINITY)
		return;
	if (l > *max) {
		float rescale = expf(*max - l);

		*sum = *sum * rescale + 1.0f;
		for (c = 0; c < d; c++)
			acc[c] = acc[c] * rescale + v[c];
		*max = l;
	} else {
		float w = expf(l - *max);

		*sum += w;
		for (c = 0; c < d; c++)
			acc[c] += w * v[c];
	}
}

/*
 * ATTEND, token by token: each key and value row is converted once and
 * used by every head of the group.
 */
static void pnm_scalar_attend(const struct pnm_kernel_args *a,
			      const uint32_t *pages, unsigned int n,
			      struct pnm_attend_state *st)
{
	unsigned int d = a->head_dim, esize = pnm_hw_dtype_size(a->dtype);
	size_t row_bytes = (size_t)d * esize;
	float krow[256], vrow[256];
	unsigned int p, g, c;

	for (p = 0; p < n; p++) {
		uint32_t valid = pnm_kernel_valid(a, pages[p]);
		const uint8_t *keys = pnm_page_keys(a, pages[p]);
		const uint8_t *values = keys + a->slot_bytes / 2;
		uint32_t t;

		for (t = 0; t < valid; t++) {
			pnm_load_row(a->dtype, keys + t * row_bytes, krow, d);
			pnm_load_row(a->dtype, values + t * row_bytes, vrow, d);
			for (g = 0; g < a->group; g++) {
				const float *q = a->query + (size_t)g * d;
				float dot = 0.0f;

				for (c = 0; c < d; c++)
					dot += q[c] * krow[c];
				pnm_softmax_add(&st->max[g], &st->sum[g],
						st->acc + (size_t)g * d,
						a->scale * dot, vrow, d);
			}
		}
	}
}

const struct pnm_kernels pnm_kernels_scalar = {
	.name = "scalar",
	.exact_scores = 1,
	.digest = pnm_scalar_digest,
	.score = pnm_scalar_score,
	.attend = pnm_scalar_attend,
};

/* ---- softmax state ----------------------------------------------------- */

void pnm_attend_init(struct pnm_attend_state *st, unsigned int group,
		     unsigned int head_dim)
{
	unsigned int g;

	for (g = 0; g < group; g++) {
		st->max[g] = -INFINITY;
		st->sum[g] = 0.0f;
	}
	memset(st->acc, 0, (size_t)group * head_dim * sizeof(float));
}

/*
 * Both sides are relative to their own maximum; rescale each to the larger
 * one.  A side without tokens (max -inf) contributes nothing.
 */
void pnm_attend_merge(struct pnm_attend_state *a,
		      const struct pnm_attend_state *b, unsigned int group,
		      unsigned int head_dim)
{
	unsigned int g, c;

	for (g = 0; g < group; g++) {
		float *acc = a->acc + (size_t)g * head_dim;
		const float *bacc = b->acc + (size_t)g * head_dim;
		float m, wa, wb;

		if (b->max[g] == -INFINITY)
			continue;
		if (a->max[g] == -INFINITY) {
			a->max[g] = b->max[g];
			a->sum[g] = b->sum[g];
			memcpy(acc, bacc, head_dim * sizeof(float));
			continue;
		}
		m = a->max[g] > b->max[g] ? a->max[g] : b->max[g];
		wa = expf(a->max[g] - m);
		wb = expf(b->max[g] - m);
		a->sum[g] = a->sum[g] * wa + b->sum[g] * wb;
		for (c = 0; c < head_dim; c++)
			acc[c] = acc[c] * wa + bacc[c] * wb;
		a->max[g] = m;
	}
}

void pnm_attend_finish(const struct pnm_attend_state *st, unsigned int group,
		       unsigned int head_dim, float *out, float *lse)
{
	unsigned int g, c;

	for (g = 0; g < group; g++) {
		const float *acc = st->acc + (size_t)g * head_dim;
		float *o = out + (size_t)g * head_dim;

		if (st->max[g] == -INFINITY) {
			memset(o, 0, head_dim * sizeof(float));
			lse[g] = -INFINITY;
			continue;
		}
		for (c = 0; c < head_dim; c++)
			o[c] = acc[c] / st->sum[g];
		lse[g] = st->max[g] + logf(st->sum[g]);
	}
}

/* ---- choosing a path --------------------------------------------------- */

#if defined(__x86_64__)
/* CPUID leaf 1, ECX bit 29; clang's __builtin_cpu_supports lacks "f16c". */
static int pnm_cpu_has_f16c(void)
{
	unsigned int eax, ebx, ecx, edx;

	return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
}
#endif

int pnm_kernels_supported(enum pnm_kernel_isa isa)
{
	switch (isa) {
	case PNM_ISA_SCALAR:
		return 1;
#if defined(__x86_64__)
	case PNM_ISA_AVX2:
		return __builtin_cpu_supports("avx2") &&
		       __builtin_cpu_supports("fma") &&
		       pnm_cpu_has_f16c();
	case PNM_ISA_AVX512:
		return __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl");
#endif
	default:
		return 0;
	}
}

static const struct pnm_kernels *const pnm_kernel_table[PNM_ISA_COUNT] = {
	[PNM_ISA_SCALAR] = &pnm_kernels_scalar,
#if defined(__x86_64__)
	[PNM_ISA_AVX2] = &pnm_kernels_avx2,
	[PNM_ISA_AVX512] = &pnm_kernels_avx512,
#endif
};

const struct pnm_kernels *pnm_kernels_get(enum pnm_kernel_isa isa)
{
	int i;

	if (isa < PNM_ISA_COUNT)
		return pnm_kernels_supported(isa) ? pnm_kernel_table[isa] : NULL;
	for (i = PNM_ISA_COUNT - 1; i > PNM_ISA_SCALAR; i--)
		if (pnm_kernels_supported(i))
			return pnm_kernel_table[i];
	return &pnm_kernels_scalar;
}

int pnm_kernels_parse(const char *name, enum pnm_kernel_isa *isa)
{
	static const char *const names[PNM_ISA_COUNT] = {
		[PNM_ISA_SCALAR] = "scalar",
		[PNM_ISA_AVX2] = "avx2",
		[PNM_ISA_AVX512] = "avx512",
	};
	int i;

	if (!strcmp(name, "auto")) {
		*isa = PNM_ISA_COUNT;
		return 0;
	}
	for (i = 0; i < PNM_ISA_COUNT; i++) {
		if (!strcmp(name, names[i])) {
			*isa = i;
			return 0;
		}
	}
	return -EINVAL;
}

const struct pnm_kernels *pnm_kernels_choose(const char *name,
					     const char **why)
{
	enum pnm_kernel_isa isa;
	const struct pnm_kernels *k;

	if (!name)
		name = getenv("PNM_KERNELS");
	if (!name || !*name)
		name = "auto";
	if (pnm_kernels_parse(name, &isa)) {
		*why = "unknown kernel path: expected scalar, avx2, avx512 or auto";
		return NULL;
	}
	k = pnm_kernels_get(isa);
	if (!k)
		*why = "this CPU does not run that kernel path";
	return k;
}
