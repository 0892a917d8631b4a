// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * CPU reference of the device's math, Documentation/device-interface.rst:
 * page digests, Quest scores and top-k selection, attention over pages and
 * the log-sum-exp (LSE) merge.  Plain scalar C; every sum is accumulated in
 * fp32 in the order the specification writes it (channel by channel, token
 * by token).  fp16 and bf16 conversions are done here, bit by bit, so that
 * the result does not depend on compiler flags or a soft-float library.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <linux/cxl_pnm.h>

#include "pnm_ref.h"

static uint32_t float_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

static float bits_float(uint32_t u)
{
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* IEEE binary16 to binary32; exact for every input. */
static float fp16_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	float sub;

	if (exp == 0x1f)	/* infinity or NaN, payload kept */
		return bits_float(sign | 0x7f800000 | mant << 13);
	if (exp)
		return bits_float(sign | (exp + 127 - 15) << 23 | mant << 13);
	/* Zero or subnormal: mant * 2^-24, exact in binary32. */
	sub = (float)mant * 0x1p-24f;
	return sign ? -sub : sub;
}

/* Shift @mant right by @shift bits, rounding to nearest, ties to even. */
static uint32_t shift_round_even(uint32_t mant, unsigned int shift)
{
	uint32_t result, rem, half;

	if (shift == 0)
		return mant;
	if (shift > 31)
		return 0;
	result = mant >> shift;
	rem = mant & ((1U << shift) - 1);
	half = 1U << (shift - 1);
	if (rem > half || (rem == half && (result & 1)))
		result++;
	return result;
}

/* binary32 to binary16, round to nearest even; NaN stays a quiet NaN. */
static uint16_t float_to_fp16(float f)
{
	uint32_t bits = float_bits(f);
	uint16_t sign = (bits >> 16) & 0x8000;
	uint32_t abs = bits & 0x7fffffff;
	uint32_t exp = abs >> 23;

	if (abs > 0x7f800000)
		return sign | 0x7e00 | ((abs >> 13) & 0x3ff);
	/* 65520 is halfway between 65504 (odd mantissa) and 2^16: infinity. */
	if (abs >= 0x477ff000)
		return sign | 0x7c00;
	if (exp < 127 - 14) {
		/* Subnormal result: units of 2^-24; may round up to 2^-14. */
		uint32_t mant = (abs & 0x7fffff) | 0x800000;

		if (!exp)	/* binary32 subnormals are far below 2^-25 */
			return sign;
		return sign | shift_round_even(mant, 126 - exp);
	}
	/* Rebias the exponent; a mantissa carry moves into it correctly. */
	return sign | shift_round_even(abs - ((127 - 15) << 23), 13);
}

static float bf16_to_float(uint16_t b)
{
	return bits_float((uint32_t)b << 16);
}

/* binary32 to bfloat16, round to nearest even; NaN stays a quiet NaN. */
static uint16_t float_to_bf16(float f)
{
	uint32_t bits = float_bits(f);

	if ((bits & 0x7fffffff) > 0x7f800000)
		return (bits >> 16) | 0x40;
	return shift_round_even(bits, 16);
}

float pnm_ref_load(unsigned int dtype, const void *base, size_t index)
{
	uint16_t h;
	float f;

	switch (dtype) {
	case CXL_PNM_DTYPE_FP16:
		memcpy(&h, (const uint16_t *)base + index, sizeof(h));
		return fp16_to_float(h);
	case CXL_PNM_DTYPE_BF16:
		memcpy(&h, (const uint16_t *)base + index, sizeof(h));
		return bf16_to_float(h);
	default:
		memcpy(&f, (const float *)base + index, sizeof(f));
		return f;
	}
}

void pnm_ref_store(unsigned int dtype, void *base, size_t index, float value)
{
	uint16_t h;

	switch (dtype) {
	case CXL_PNM_DTYPE_FP16:
		h = float_to_fp16(value);
		memcpy((uint16_t *)base + index, &h, sizeof(h));
		break;
	case CXL_PNM_DTYPE_BF16:
		h = float_to_bf16(value);
		memcpy((uint16_t *)base + index, &h, sizeof(h));
		break;
	default:
		memcpy((float *)base + index, &value, sizeof(value));
		break;
	}
}

static size_t dtype_size(unsigned int dtype)
{
	return dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2;
}

static uint32_t page_tokens(const struct pnm_ref_stream *s)
{
	return 1U << s->page_shift;
}

static uint64_t slot_bytes(const struct pnm_ref_stream *s)
{
	return 2ULL * s->head_dim * dtype_size(s->dtype) << s->page_shift;
}

static uint64_t digest_bytes(const struct pnm_ref_stream *s)
{
	return 2ULL * s->head_dim * dtype_size(s->dtype);
}

uint32_t pnm_ref_n_pages(const struct pnm_ref_stream *s)
{
	return (uint32_t)(((uint64_t)s->n_tokens + page_tokens(s) - 1) >>
			  s->page_shift);
}

uint64_t pnm_ref_n_slots(const struct pnm_ref_stream *s)
{
	return s->pool_len / (slot_bytes(s) + digest_bytes(s));
}

const void *pnm_ref_slot(const struct pnm_ref_stream *s, uint32_t slot)
{
	return (const char *)s->pool + slot * slot_bytes(s);
}

const void *pnm_ref_digest_of(const struct pnm_ref_stream *s, uint32_t slot)
{
	return (const char *)s->pool + pnm_ref_n_slots(s) * slot_bytes(s) +
	       slot * digest_bytes(s);
}

/* Valid tokens of page @page: P, or fewer in a partial last page. */
static uint32_t page_valid_tokens(const struct pnm_ref_stream *s,
				  uint32_t page)
{
	uint64_t first = (uint64_t)page << s->page_shift;
	uint64_t left = s->n_tokens > first ? s->n_tokens - first : 0;

	return left < page_tokens(s) ? (uint32_t)left : page_tokens(s);
}

/*
 * Min and max are exact in any dtype, so the digest is stored without
 * rounding.  A page without valid rows gets min +inf and max -inf, the
 * identities of the two reductions.
 */
void pnm_ref_digest(unsigned int dtype, unsigned int head_dim,
		    const void *keys, unsigned int n_valid, void *digest)
{
	unsigned int c, t;

	for (c = 0; c < head_dim; c++) {
		float lo = INFINITY, hi = -INFINITY;

		for (t = 0; t < n_valid; t++) {
			float v = pnm_ref_load(dtype, keys,
					       (size_t)t * head_dim + c);

			if (v < lo)
				lo = v;
			if (v > hi)
				hi = v;
		}
		pnm_ref_store(dtype, digest, c, lo);
		pnm_ref_store(dtype, digest, head_dim + c, hi);
	}
}

float pnm_ref_score(const struct pnm_ref_stream *s, const float *q,
		    uint32_t page)
{
	const void *digest = pnm_ref_digest_of(s, s->table[page]);
	unsigned int d = s->head_dim;
	float score = 0.0f;
	unsigned int g, c;

	for (g = 0; g < s->group; g++) {
		for (c = 0; c < d; c++) {
			float qc = q[(size_t)g * d + c];
			float lo = qc * pnm_ref_load(s->dtype, digest, c);
			float hi = qc * pnm_ref_load(s->dtype, digest, d + c);

			score += lo > hi ? lo : hi;
		}
	}
	return score;
}

struct ref_candidate {
	float score;
	uint32_t page;
};

/* Descending score, a NaN below every number, ties to the lower page. */
static int ref_candidate_cmp(const void *a, const void *b)
{
	const struct ref_candidate *x = a, *y = b;
	int x_nan = isnan(x->score), y_nan = isnan(y->score);

	if (x_nan != y_nan)
		return x_nan - y_nan;
	if (!x_nan && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

/*
 * Pages are marked in @mark, one byte per page: EXCLUDED or SELECTED.
 * The device rejects k = 0 as it rejects k below the kept pages, so both
 * return -1 here.  Exclusions at or past the last page are ignored, where
 * the device would return BAD_LIST.
 */
int pnm_ref_select(const struct pnm_ref_stream *s, const float *q,
		   unsigned int k, unsigned int flags,
		   const uint32_t *exclude, unsigned int n_exclude,
		   uint32_t *pages)
{
	enum { EXCLUDED = 1, SELECTED = 2 };
	uint32_t n = pnm_ref_n_pages(s), i, n_cand = 0, n_out = 0;
	unsigned int kept = 0, want, taken = 0;
	struct ref_candidate *cand;
	unsigned char *mark;

	mark = calloc(n ? n : 1, 1);
	cand = malloc((n ? n : 1) * sizeof(*cand));
	if (!mark || !cand) {
		free(mark);
		free(cand);
		return -1;
	}

	for (i = 0; i < n_exclude; i++)
		if (exclude[i] < n)
			mark[exclude[i]] = EXCLUDED;
	if (n && (flags & CXL_PNM_CMD_KEEP_SINK) && !mark[0]) {
		mark[0] = SELECTED;
		kept++;
	}
	if (n && (flags & CXL_PNM_CMD_KEEP_RECENT) && !mark[n - 1]) {
		mark[n - 1] = SELECTED;
		kept++;
	}
	if (k == 0 || k < kept) {
		free(mark);
		free(cand);
		return -1;
	}

	for (i = 0; i < n; i++) {
		if (mark[i])
			continue;
		cand[n_cand].score = pnm_ref_score(s, q, i);
		cand[n_cand].page = i;
		n_cand++;
	}
	qsort(cand, n_cand, sizeof(*cand), ref_candidate_cmp);

	want = k - kept;
	for (i = 0; i < n_cand && taken < want; i++, taken++)
		mark[cand[i].page] = SELECTED;

	for (i = 0; i < n; i++)
		if (mark[i] == SELECTED)
			pages[n_out++] = i;
	free(mark);
	free(cand);
	return (int)n_out;
}

static float ref_dot(const struct pnm_ref_stream *s, const float *q,
		     const void *keys, uint32_t token)
{
	unsigned int d = s->head_dim, c;
	float sum = 0.0f;

	for (c = 0; c < d; c++)
		sum += q[c] * pnm_ref_load(s->dtype, keys, (size_t)token * d + c);
	return sum;
}

/* Logit of token @t of page @page for one query head, before scaling. */
static float ref_page_dot(const struct pnm_ref_stream *s, const float *q,
			  uint32_t page, uint32_t t)
{
	return ref_dot(s, q, pnm_ref_slot(s, s->table[page]), t);
}

/* Value row of token @t of page @page: V follows K in the slot. */
static const void *ref_page_values(const struct pnm_ref_stream *s,
				   uint32_t page)
{
	return (const char *)pnm_ref_slot(s, s->table[page]) +
	       slot_bytes(s) / 2;
}

/*
 * Three passes over the listed tokens, as the specification writes the
 * math: the max logit m, then lse, then the output weighted by
 * exp(l_t - lse).  Logits are recomputed in each pass, bit-identically,
 * so no buffer of unknown size is needed.  Pages at or past the stream's
 * end are skipped, where the device would answer BAD_LIST.
 */
static void ref_attend_head(const struct pnm_ref_stream *s, const float *q,
			    const uint32_t *pages, unsigned int n_pages,
			    float *out, float *lse)
{
	float scale = 1.0f / sqrtf((float)s->head_dim);
	uint32_t n = pnm_ref_n_pages(s), t, valid;
	unsigned int d = s->head_dim, p, c;
	float m = -INFINITY, sum = 0.0f;

	memset(out, 0, d * sizeof(*out));

	for (p = 0; p < n_pages; p++) {
		if (pages[p] >= n)
			continue;
		valid = page_valid_tokens(s, pages[p]);
		for (t = 0; t < valid; t++) {
			float l = scale * ref_page_dot(s, q, pages[p], t);

			if (l > m)
				m = l;
		}
	}
	if (m == -INFINITY) {
		*lse = -INFINITY;
		return;
	}

	for (p = 0; p < n_pages; p++) {
		if (pages[p] >= n)
			continue;
		valid = page_valid_tokens(s, pages[p]);
		for (t = 0; t < valid; t++)
			sum += expf(scale * ref_page_dot(s, q, pages[p], t) - m);
	}
	*lse = m + logf(sum);

	for (p = 0; p < n_pages; p++) {
		const void *values;

		if (pages[p] >= n)
			continue;
		values = ref_page_values(s, pages[p]);
		valid = page_valid_tokens(s, pages[p]);
		for (t = 0; t < valid; t++) {
			float w = expf(scale * ref_page_dot(s, q, pages[p], t) -
				       *lse);

			for (c = 0; c < d; c++)
				out[c] += w * pnm_ref_load(s->dtype, values,
							   (size_t)t * d + c);
		}
	}
}

void pnm_ref_attend(const struct pnm_ref_stream *s, const float *q,
		    const uint32_t *pages, unsigned int n_pages,
		    float *out, float *lse)
{
	unsigned int g;

	for (g = 0; g < s->group; g++)
		ref_attend_head(s, q + (size_t)g * s->head_dim, pages,
				n_pages, out + (size_t)g * s->head_dim,
				&lse[g]);
}

void pnm_ref_attend_dense(const struct pnm_ref_stream *s, const float *q,
			  float *out, float *lse)
{
	uint32_t n = pnm_ref_n_pages(s), i;
	uint32_t *pages = malloc((n ? n : 1) * sizeof(*pages));
	unsigned int g;

	if (!pages) {
		/* Keep the output defined: no tokens attended. */
		for (g = 0; g < s->group; g++) {
			memset(out + (size_t)g * s->head_dim, 0,
			       s->head_dim * sizeof(*out));
			lse[g] = -INFINITY;
		}
		return;
	}
	for (i = 0; i < n; i++)
		pages[i] = i;
	pnm_ref_attend(s, q, pages, n, out, lse);
	free(pages);
}

/*
 * With M = max(lse_a, lse_b) and w = exp(min - M) <= 1, the merged LSE is
 * M + log1p(w) and each output is the LSE-weighted mean of the two sides.
 * Subtracting M first keeps exp() from overflowing; a side far below the
 * other gets w = 0 and changes nothing.
 */
void pnm_ref_merge(float *out_a, float *lse_a, const float *out_b,
		   float lse_b, unsigned int head_dim)
{
	float wa, wb, sum;
	unsigned int c;

	if (lse_b == -INFINITY)
		return;
	if (*lse_a == -INFINITY) {
		memcpy(out_a, out_b, head_dim * sizeof(*out_a));
		*lse_a = lse_b;
		return;
	}
	if (*lse_a >= lse_b) {
		wa = 1.0f;
		wb = expf(lse_b - *lse_a);
		*lse_a += log1pf(wb);
	} else {
		wa = expf(*lse_a - lse_b);
		wb = 1.0f;
		*lse_a = lse_b + log1pf(wa);
	}
	/*
	 * Normalize the weights before scaling, so outputs near FLT_MAX do not
	 * overflow in the weighted sum.
	 */
	sum = wa + wb;
	wa /= sum;
	wb /= sum;
	for (c = 0; c < head_dim; c++)
		out_a[c] = wa * out_a[c] + wb * out_b[c];
}
