/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Vector kernels of the CXL-PNM device model, written once over a 16-lane
 * fp32 vector type and compiled for each instruction set.
 *
 * The including file defines, for its target (PNM_SIMD_FN, always inlined,
 * and PNM_SIMD_ENTRY carry the function attribute target(...)):
 *   vf              16 fp32 lanes; vm: a mask of 16 lanes
 *   vf_zero, vf_set1, vf_load, vf_store, vf_add, vf_mul, vf_sub
 *   vf_fma(a, b, c)        a * b + c, one rounding
 *   vf_max_ref(a, b)       a > b ? a : b per lane (x86 maxps)
 *   vf_min_ref(a, b)       a < b ? a : b per lane (x86 minps)
 *   vf_abs(a)
 *   vf_load_bf16, vf_load_fp16, vf_store_bf16, vf_store_fp16
 *   vf_not_le(a, b)        mask of lanes where !(a <= b), NaN included
 *   vm_none, vm_or, vm_any
 *   vf_keep(a, m)          lanes of @m, zero elsewhere
 *   vf_first(n)            mask of lanes 0 .. n - 1
 *   vf_gt(a, b)            mask of lanes where a > b
 *   vf_blend(m, a, b)      lanes of @a where @m is set, else of @b
 *   vf_reduce_add, vf_reduce_max   horizontal, in a fixed tree order
 *   vf_sum16(v)            lane j = sum of the lanes of v[j]
 *   vf_exp2i(n)            2^n for whole n in [-126, 127] held as floats
 *   vf_round(a)            round to nearest integer
 *   PNM_SIMD_NAME          "avx2" or "avx512"
 *
 * Every loop over elements is branch-free; the only branches are per page
 * or per chunk of 16 tokens.
 */
#ifndef PNM_KERNELS_SIMD_H
#define PNM_KERNELS_SIMD_H

#include <float.h>
#include <math.h>
#include <string.h>

#include "cxl_pnm_hw.h"
#include "pnm_kernels.h"

#define PNM_LANES	16
#define PNM_MAX_BLOCKS	(256 / PNM_LANES)	/* max_head_dim 256 */

/* Pages ahead whose digests or rows are prefetched. */
#define PNM_PREFETCH_PAGES	4

/* Element @i (a multiple of 16) of a @dtype row, widened to fp32. */
PNM_SIMD_FN vf pnm_vload(const unsigned int dtype, const uint8_t *row,
			 unsigned int i)
{
	switch (dtype) {
	case PNM_DTYPE_BF16:
		return vf_load_bf16(row + 2 * i);
	case PNM_DTYPE_FP16:
		return vf_load_fp16(row + 2 * i);
	default:
		return vf_load((const float *)row + i);
	}
}

/* Store lanes that hold exact @dtype values (digest bounds). */
PNM_SIMD_FN void pnm_vstore(const unsigned int dtype, uint8_t *row,
			    unsigned int i, vf v)
{
	switch (dtype) {
	case PNM_DTYPE_BF16:
		vf_store_bf16(row + 2 * i, v);
		break;
	case PNM_DTYPE_FP16:
		vf_store_fp16(row + 2 * i, v);
		break;
	default:
		vf_store((float *)row + i, v);
		break;
	}
}

PNM_SIMD_FN void pnm_prefetch(const uint8_t *p, uint64_t bytes)
{
	uint64_t off;

	for (off = 0; off < bytes; off += 64)
		__builtin_prefetch(p + off, 0, 0);
}

/* ---- DIGEST ------------------------------------------------------------ */

/*
 * Min and max with the scalar path's comparisons (row < lo, row > hi), so
 * a NaN key never replaces a bound and the digest is bit-identical.
 */
PNM_SIMD_FN void pnm_simd_digest_t(const unsigned int dtype,
				   const struct pnm_kernel_args *a,
				   const uint8_t *keys, unsigned int valid,
				   uint8_t *digest)
{
	unsigned int d = a->head_dim, esize = pnm_hw_dtype_size(dtype);
	size_t row_bytes = (size_t)d * esize;
	unsigned int b, t;

	for (b = 0; b < d; b += PNM_LANES) {
		vf lo = vf_set1(INFINITY), hi = vf_set1(-INFINITY);

		for (t = 0; t < valid; t++) {
			vf x = pnm_vload(dtype, keys + t * row_bytes, b);

			lo = vf_min_ref(x, lo);
			hi = vf_max_ref(x, hi);
		}
		pnm_vstore(dtype, digest, b, lo);
		pnm_vstore(dtype, digest + row_bytes, b, hi);
	}
}

PNM_SIMD_ENTRY void pnm_simd_digest(const struct pnm_kernel_args *a,
			    const uint8_t *keys, unsigned int valid,
			    uint8_t *digest)
{
	switch (a->dtype) {
	case PNM_DTYPE_BF16:
		pnm_simd_digest_t(PNM_DTYPE_BF16, a, keys, valid, digest);
		break;
	case PNM_DTYPE_FP16:
		pnm_simd_digest_t(PNM_DTYPE_FP16, a, keys, valid, digest);
		break;
	default:
		pnm_simd_digest_t(PNM_DTYPE_FP32, a, keys, valid, digest);
		break;
	}
}

/* ---- SELECT scores ----------------------------------------------------- */

/*
 * Fast Quest score.  For a digest with min <= max in every channel,
 * max(q * min, q * max) is q * max for q >= 0 and q * min for q < 0, so
 *
 *   score = sum_c (max_c * qpos_c + min_c * qneg_c)
 *
 * with qpos and qneg the group's sums of positive and negative query
 * parts: 2 FMAs per channel instead of 4 operations per channel and head.
 * The same sum over absolute values, A, bounds the rounding: the scalar
 * order and this one both stay within a few hundred ulps of A of the exact
 * score, and a->bound_factor * A covers both (pnm_exec.c derives it).  A
 * digest with min > max or NaN in some channel, or a result that is not
 * finite, gets bound +inf: the selection rescores it in the scalar order.
 */
PNM_SIMD_FN void pnm_simd_score_t(const unsigned int dtype,
				  const struct pnm_kernel_args *a,
				  const uint32_t *pages, unsigned int n,
				  float *score, float *bound)
{
	unsigned int d = a->head_dim, nb = d / PNM_LANES;
	size_t half = (size_t)d * pnm_hw_dtype_size(dtype);
	vf qpos[PNM_MAX_BLOCKS], qneg[PNM_MAX_BLOCKS], qabs[PNM_MAX_BLOCKS];
	unsigned int i, b;

	for (b = 0; b < nb; b++) {
		qpos[b] = vf_load(a->qpos + b * PNM_LANES);
		qneg[b] = vf_load(a->qneg + b * PNM_LANES);
		qabs[b] = vf_abs(qneg[b]);
	}
	for (i = 0; i < n; i++) {
		const uint8_t *dg = a->digests + a->table[pages[i]] * a->digest_bytes;
		vf s_hi = vf_zero(), s_lo = vf_zero();
		vf e_hi = vf_zero(), e_lo = vf_zero();
		vm bad = vm_none();
		float f, e;

		if (i + PNM_PREFETCH_PAGES < n)
			pnm_prefetch(a->digests + a->table[pages[i + PNM_PREFETCH_PAGES]] *
				     a->digest_bytes, a->digest_bytes);
		for (b = 0; b < nb; b++) {
			vf lo = pnm_vload(dtype, dg, b * PNM_LANES);
			vf hi = pnm_vload(dtype, dg + half, b * PNM_LANES);

			s_hi = vf_fma(hi, qpos[b], s_hi);
			s_lo = vf_fma(lo, qneg[b], s_lo);
			e_hi = vf_fma(vf_abs(hi), qpos[b], e_hi);
			e_lo = vf_fma(vf_abs(lo), qabs[b], e_lo);
			bad = vm_or(bad, vf_not_le(lo, hi));
		}
		f = vf_reduce_add(vf_add(s_hi, s_lo));
		e = vf_reduce_add(vf_add(e_hi, e_lo));
		/* Finite and far from overflow in both orders, or unknown. */
		score[i] = f;
		bound[i] = vm_any(bad) || !(e <= FLT_MAX / 4) || !(fabsf(f) <= FLT_MAX) ?
			   INFINITY : e * a->bound_factor + PNM_SCORE_BOUND_ABS;
	}
}

PNM_SIMD_ENTRY void pnm_simd_score(const struct pnm_kernel_args *a,
			   const uint32_t *pages, unsigned int n, float *score,
			   float *bound)
{
	switch (a->dtype) {
	case PNM_DTYPE_BF16:
		pnm_simd_score_t(PNM_DTYPE_BF16, a, pages, n, score, bound);
		break;
	case PNM_DTYPE_FP16:
		pnm_simd_score_t(PNM_DTYPE_FP16, a, pages, n, score, bound);
		break;
	default:
		pnm_simd_score_t(PNM_DTYPE_FP32, a, pages, n, score, bound);
		break;
	}
}

/* ---- ATTEND ------------------------------------------------------------ */

/*
 * exp(x) for x <= 0 lanes: x = n ln2 + r with |r| <= ln2 / 2, e^r by its
 * Taylor polynomial to degree 7 (truncation below 6e-9 relative), times
 * 2^n.  Inputs below -87 are clamped (the result is then below 2^-125, not
 * 0); callers zero the lanes that must be 0.
 */
PNM_SIMD_FN vf pnm_vexp(vf x)
{
	const float ln2_hi = 0.693145751953125f;	/* 12 significant bits */
	const float ln2_lo = 1.428606765330187e-6f;
	vf n, r, p;

	x = vf_max_ref(x, vf_set1(-87.0f));
	n = vf_round(vf_mul(x, vf_set1(1.4426950408889634f)));
	r = vf_fma(n, vf_set1(-ln2_hi), x);
	r = vf_fma(n, vf_set1(-ln2_lo), r);
	p = vf_set1(1.0f / 5040);
	p = vf_fma(p, r, vf_set1(1.0f / 720));
	p = vf_fma(p, r, vf_set1(1.0f / 120));
	p = vf_fma(p, r, vf_set1(1.0f / 24));
	p = vf_fma(p, r, vf_set1(1.0f / 6));
	p = vf_fma(p, r, vf_set1(0.5f));
	p = vf_fma(p, r, vf_set1(1.0f));
	p = vf_fma(p, r, vf_set1(1.0f));
	return vf_mul(p, vf_exp2i(n));
}

/*
 * Up to 16 token rows, possibly from several pages, attended together:
 * logits of the chunk for each head, one rescale of the running state per
 * chunk and head, then the weighted value rows.
 */
struct pnm_chunk {
	const uint8_t *k[PNM_LANES];
	const uint8_t *v[PNM_LANES];
	unsigned int n;
};

PNM_SIMD_FN void pnm_simd_chunk_t(const unsigned int dtype,
				  const struct pnm_kernel_args *a,
				  const struct pnm_chunk *ch,
				  struct pnm_attend_state *st)
{
	unsigned int d = a->head_dim, nb = d / PNM_LANES, G = a->group;
	float vrow[PNM_LANES][256] __attribute__((aligned(64)));
	float w[PNM_LANES] __attribute__((aligned(64)));
	vf dots[PNM_KERNEL_MAX_GROUP][PNM_LANES], krow[PNM_MAX_BLOCKS];
	vm valid = vf_first(ch->n);
	unsigned int g, b, t;

	/* Each key row is widened once and used by every head. */
	for (t = 0; t < ch->n; t++) {
		for (b = 0; b < nb; b++)
			krow[b] = pnm_vload(dtype, ch->k[t], b * PNM_LANES);
		for (g = 0; g < G; g++) {
			const float *q = a->query + (size_t)g * d;
			vf s0 = vf_zero(), s1 = vf_zero();

			for (b = 0; b + 1 < nb; b += 2) {
				s0 = vf_fma(vf_load(q + b * PNM_LANES), krow[b], s0);
				s1 = vf_fma(vf_load(q + (b + 1) * PNM_LANES),
					    krow[b + 1], s1);
			}
			if (b < nb)
				s0 = vf_fma(vf_load(q + b * PNM_LANES), krow[b], s0);
			dots[g][t] = vf_add(s0, s1);
		}
		for (b = 0; b < nb; b++)
			vf_store(vrow[t] + b * PNM_LANES,
				 pnm_vload(dtype, ch->v[t], b * PNM_LANES));
	}

	for (g = 0; g < G; g++) {
		float *acc = st->acc + (size_t)g * d;
		float cmax, m, rescale;
		vf l, wv;

		for (t = ch->n; t < PNM_LANES; t++)
			dots[g][t] = vf_zero();
		/* Lanes past the chunk get -inf; so does a -inf logit. */
		l = vf_mul(vf_sum16(dots[g]), vf_set1(a->scale));
		l = vf_blend(valid, l, vf_set1(-INFINITY));
		cmax = vf_reduce_max(l);
		if (!(cmax > -INFINITY))
			continue;	/* no weight in this chunk */
		m = st->max[g] > cmax ? st->max[g] : cmax;
		rescale = expf(st->max[g] - m);
		wv = vf_keep(pnm_vexp(vf_sub(l, vf_set1(m))),
			     vf_gt(l, vf_set1(-INFINITY)));
		vf_store(w, wv);
		st->sum[g] = st->sum[g] * rescale + vf_reduce_add(wv);
		st->max[g] = m;

		/*
		 * Four blocks at a time: four independent FMA chains keep
		 * the FMA units busy where one chain would wait on latency.
		 */
		for (b = 0; b + 4 <= nb; b += 4) {
			float *o = acc + b * PNM_LANES;
			vf x0 = vf_mul(vf_load(o), vf_set1(rescale));
			vf x1 = vf_mul(vf_load(o + PNM_LANES), vf_set1(rescale));
			vf x2 = vf_mul(vf_load(o + 2 * PNM_LANES), vf_set1(rescale));
			vf x3 = vf_mul(vf_load(o + 3 * PNM_LANES), vf_set1(rescale));

			for (t = 0; t < ch->n; t++) {
				const float *v = vrow[t] + b * PNM_LANES;
				vf wt = vf_set1(w[t]);

				x0 = vf_fma(wt, vf_load(v), x0);
				x1 = vf_fma(wt, vf_load(v + PNM_LANES), x1);
				x2 = vf_fma(wt, vf_load(v + 2 * PNM_LANES), x2);
				x3 = vf_fma(wt, vf_load(v + 3 * PNM_LANES), x3);
			}
			vf_store(o, x0);
			vf_store(o + PNM_LANES, x1);
			vf_store(o + 2 * PNM_LANES, x2);
			vf_store(o + 3 * PNM_LANES, x3);
		}
		for (; b < nb; b++) {
			vf x = vf_mul(vf_load(acc + b * PNM_LANES), vf_set1(rescale));

			for (t = 0; t < ch->n; t++)
				x = vf_fma(vf_set1(w[t]),
					   vf_load(vrow[t] + b * PNM_LANES), x);
			vf_store(acc + b * PNM_LANES, x);
		}
	}
}

PNM_SIMD_FN void pnm_simd_attend_t(const unsigned int dtype,
				   const struct pnm_kernel_args *a,
				   const uint32_t *pages, unsigned int n,
				   struct pnm_attend_state *st)
{
	size_t row_bytes = (size_t)a->head_dim * pnm_hw_dtype_size(dtype);
	uint64_t half = a->slot_bytes / 2;
	struct pnm_chunk ch;
	unsigned int p, t;

	ch.n = 0;
	for (p = 0; p < n; p++) {
		const uint8_t *keys = a->pool + a->table[pages[p]] * a->slot_bytes;
		uint32_t valid = pnm_kernel_valid(a, pages[p]);

		if (p + PNM_PREFETCH_PAGES / 2 < n) {
			const uint8_t *next = a->pool +
				a->table[pages[p + PNM_PREFETCH_PAGES / 2]] * a->slot_bytes;

			pnm_prefetch(next, a->slot_bytes);
		}
		for (t = 0; t < valid; t++) {
			ch.k[ch.n] = keys + t * row_bytes;
			ch.v[ch.n] = keys + half + t * row_bytes;
			if (++ch.n == PNM_LANES) {
				pnm_simd_chunk_t(dtype, a, &ch, st);
				ch.n = 0;
			}
		}
	}
	if (ch.n)
		pnm_simd_chunk_t(dtype, a, &ch, st);
}

PNM_SIMD_ENTRY void pnm_simd_attend(const struct pnm_kernel_args *a,
			    const uint32_t *pages, unsigned int n,
			    struct pnm_attend_state *st)
{
	switch (a->dtype) {
	case PNM_DTYPE_BF16:
		pnm_simd_attend_t(PNM_DTYPE_BF16, a, pages, n, st);
		break;
	case PNM_DTYPE_FP16:
		pnm_simd_attend_t(PNM_DTYPE_FP16, a, pages, n, st);
		break;
	default:
		pnm_simd_attend_t(PNM_DTYPE_FP32, a, pages, n, st);
		break;
	}
}

#endif /* PNM_KERNELS_SIMD_H */
