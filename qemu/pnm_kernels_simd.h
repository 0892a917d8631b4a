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

/*
 * Digests stream in order and are read once: non-temporal prefetches keep
 * them out of the caches the other data uses.
 */
PNM_SIMD_FN void pnm_prefetch(const uint8_t *p, uint64_t bytes)
{
	uint64_t off;

	for (off = 0; off < bytes; off += 64)
		__builtin_prefetch(p + off, 0, 0);
}

/*
 * Key and value rows of scattered pages go to L2 (prefetcht1).  On the Zen 4
 * host of Documentation/accelerator-performance.rst, ATTEND from memory took
 * 15 to 25 % less time than with prefetchnta or prefetcht0.
 */
PNM_SIMD_FN void pnm_prefetch_l2(const uint8_t *p, uint64_t bytes)
{
	uint64_t off;

	for (off = 0; off < bytes; off += 64)
		__builtin_prefetch(p + off, 0, 2);
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
 * Up to 16 token rows, possibly from several pages, attended together.
 * The group's heads go in passes of up to PNM_ATTEND_HEADS: each key row
 * and each value row is widened once per pass and used by every head of
 * the pass, whose accumulators stay in registers.
 */
struct pnm_chunk {
	const uint8_t *k[PNM_LANES];
	const uint8_t *v[PNM_LANES];
	const uint8_t *ahead[PNM_LANES];	/* key row to prefetch, or NULL */
	unsigned int n;
};

/* Heads of one pass over a chunk. */
#define PNM_ATTEND_HEADS	4

/*
 * Loops over the heads and value blocks of a pass are unrolled, so their
 * vectors live in registers and not in stack arrays.
 */
#define PNM_UNROLL	_Pragma("GCC unroll 16")

/*
 * Bytes of key and value rows prefetched ahead of the page being attended.
 * A 16-token page of bf16 head_dim 128 takes about 0.5 us to attend and its
 * 8 KiB about 0.3 us to read, so two pages ahead cover the latency.  8 to
 * 48 KiB measured the same.
 */
#define PNM_ATTEND_AHEAD_BYTES	(16 * 1024)

/*
 * Compute the logits of the chunk's tokens for heads @g0 .. @g0 + @H - 1:
 * lane t of @l[h] is scale * q_h . k_t, and -inf past the chunk.  Each head
 * has two FMA chains, so a pass of 4 heads keeps 8 chains in flight.  One
 * transposing sum adds up the 16 per-token vectors of a head.
 */
PNM_SIMD_FN void pnm_chunk_logits(const unsigned int dtype,
				  const struct pnm_kernel_args *a,
				  const struct pnm_chunk *ch, unsigned int g0,
				  const unsigned int H, vf *l)
{
	unsigned int d = a->head_dim, nb = d / PNM_LANES, b, h, t;
	size_t row_bytes = (size_t)d * pnm_hw_dtype_size(dtype);
	uint64_t half = a->slot_bytes / 2;
	const float *q = a->query + (size_t)g0 * d;
	vf dots[PNM_ATTEND_HEADS][PNM_LANES];

	for (t = 0; t < ch->n; t++) {
		const uint8_t *k = ch->k[t];
		vf s0[PNM_ATTEND_HEADS], s1[PNM_ATTEND_HEADS];

		/* A row of a page ahead each token keeps misses in flight. */
		if (g0 == 0 && ch->ahead[t]) {
			pnm_prefetch_l2(ch->ahead[t], row_bytes);
			pnm_prefetch_l2(ch->ahead[t] + half, row_bytes);
		}

		PNM_UNROLL
		for (h = 0; h < H; h++) {
			s0[h] = vf_zero();
			s1[h] = vf_zero();
		}
		for (b = 0; b + 1 < nb; b += 2) {
			vf k0 = pnm_vload(dtype, k, b * PNM_LANES);
			vf k1 = pnm_vload(dtype, k, (b + 1) * PNM_LANES);

			PNM_UNROLL
			for (h = 0; h < H; h++) {
				const float *qh = q + (size_t)h * d + b * PNM_LANES;

				s0[h] = vf_fma(vf_load(qh), k0, s0[h]);
				s1[h] = vf_fma(vf_load(qh + PNM_LANES), k1, s1[h]);
			}
		}
		if (b < nb) {
			vf k0 = pnm_vload(dtype, k, b * PNM_LANES);

			PNM_UNROLL
			for (h = 0; h < H; h++)
				s0[h] = vf_fma(vf_load(q + (size_t)h * d + b * PNM_LANES),
					       k0, s0[h]);
		}
		PNM_UNROLL
		for (h = 0; h < H; h++)
			dots[h][t] = vf_add(s0[h], s1[h]);
	}
	/*
	 * NOTE: not unrolled.  With "GCC unroll" here, gcc 12.2 at -O1 and
	 * above produced wrong logits for the first head of a pass (avx512;
	 * tests/unit/kernel_paths.c caught it).  Cause not found.
	 */
	for (h = 0; h < H; h++) {
		for (t = ch->n; t < PNM_LANES; t++)
			dots[h][t] = vf_zero();
		l[h] = vf_blend(vf_first(ch->n),
				vf_mul(vf_sum16(dots[h]), vf_set1(a->scale)),
				vf_set1(-INFINITY));
	}
}

/*
 * Online softmax step of head @g for the chunk's logits @l: the weights
 * exp(l - max) into @w, the factor that brings the head's accumulator to
 * the new maximum into *@rescale.  A chunk without weight (every logit
 * -inf) leaves the state alone: weights 0, factor 1.
 */
PNM_SIMD_FN void pnm_chunk_weights(struct pnm_attend_state *st, unsigned int g,
				   vf l, float *w, float *rescale)
{
	float cmax = vf_reduce_max(l), m;
	vf wv;

	if (!(cmax > -INFINITY)) {
		vf_store(w, vf_zero());
		*rescale = 1.0f;
		return;
	}
	m = st->max[g] > cmax ? st->max[g] : cmax;
	*rescale = expf(st->max[g] - m);
	wv = vf_keep(pnm_vexp(vf_sub(l, vf_set1(m))), vf_gt(l, vf_set1(-INFINITY)));
	vf_store(w, wv);
	st->sum[g] = st->sum[g] * *rescale + vf_reduce_add(wv);
	st->max[g] = m;
}

/*
 * Channels [@b, @b + @VB) blocks of the accumulators of heads @g0 ..
 * @g0 + @H - 1: rescaled once, then every token's value block, loaded
 * once, is added with each head's weight.  H * VB independent chains.
 */
PNM_SIMD_FN void pnm_chunk_values_block(const unsigned int dtype,
					const struct pnm_kernel_args *a,
					const struct pnm_chunk *ch, float *acc,
					const unsigned int H, const unsigned int VB,
					unsigned int b,
					const float w[][PNM_LANES],
					const float *rescale)
{
	unsigned int d = a->head_dim, h, j, t;
	vf x[PNM_ATTEND_HEADS][PNM_SIMD_VBLOCK];

	PNM_UNROLL
	for (h = 0; h < H; h++)
		PNM_UNROLL
		for (j = 0; j < VB; j++)
			x[h][j] = vf_mul(vf_load(acc + (size_t)h * d + (b + j) * PNM_LANES),
					 vf_set1(rescale[h]));
	for (t = 0; t < ch->n; t++) {
		vf v[PNM_SIMD_VBLOCK];

		PNM_UNROLL
		for (j = 0; j < VB; j++)
			v[j] = pnm_vload(dtype, ch->v[t], (b + j) * PNM_LANES);
		PNM_UNROLL
		for (h = 0; h < H; h++) {
			vf wt = vf_set1(w[h][t]);

			PNM_UNROLL
			for (j = 0; j < VB; j++)
				x[h][j] = vf_fma(wt, v[j], x[h][j]);
		}
	}
	PNM_UNROLL
	for (h = 0; h < H; h++)
		PNM_UNROLL
		for (j = 0; j < VB; j++)
			vf_store(acc + (size_t)h * d + (b + j) * PNM_LANES, x[h][j]);
}

/* One pass: heads @g0 .. @g0 + @H - 1 over the chunk. */
PNM_SIMD_FN void pnm_chunk_heads(const unsigned int dtype,
				 const struct pnm_kernel_args *a,
				 const struct pnm_chunk *ch,
				 struct pnm_attend_state *st, unsigned int g0,
				 const unsigned int H)
{
	unsigned int nb = a->head_dim / PNM_LANES, b, h;
	float w[PNM_ATTEND_HEADS][PNM_LANES] __attribute__((aligned(64)));
	float rescale[PNM_ATTEND_HEADS];
	float *acc = st->acc + (size_t)g0 * a->head_dim;
	vf l[PNM_ATTEND_HEADS];

	pnm_chunk_logits(dtype, a, ch, g0, H, l);
	for (h = 0; h < H; h++)
		pnm_chunk_weights(st, g0 + h, l[h], w[h], &rescale[h]);
	for (b = 0; b + PNM_SIMD_VBLOCK <= nb; b += PNM_SIMD_VBLOCK)
		pnm_chunk_values_block(dtype, a, ch, acc, H, PNM_SIMD_VBLOCK, b,
				       w, rescale);
	for (; b < nb; b++)
		pnm_chunk_values_block(dtype, a, ch, acc, H, 1, b, w, rescale);
}

PNM_SIMD_FN void pnm_simd_chunk_t(const unsigned int dtype,
				  const struct pnm_kernel_args *a,
				  const struct pnm_chunk *ch,
				  struct pnm_attend_state *st)
{
	unsigned int g;

	for (g = 0; g + PNM_ATTEND_HEADS <= a->group; g += PNM_ATTEND_HEADS)
		pnm_chunk_heads(dtype, a, ch, st, g, PNM_ATTEND_HEADS);
	switch (a->group - g) {
	case 3:
		pnm_chunk_heads(dtype, a, ch, st, g, 3);
		break;
	case 2:
		pnm_chunk_heads(dtype, a, ch, st, g, 2);
		break;
	case 1:
		pnm_chunk_heads(dtype, a, ch, st, g, 1);
		break;
	}
}

/*
 * Pages are attended in list order.  While a page's rows are attended,
 * the same rows of the page @ahead places later are prefetched, a row pair
 * per token (pnm_chunk_logits), so misses stay in flight all along instead
 * of in one burst per page; the first @ahead pages are prefetched at once.
 */
PNM_SIMD_FN void pnm_simd_attend_t(const unsigned int dtype,
				   const struct pnm_kernel_args *a,
				   const uint32_t *pages, unsigned int n,
				   struct pnm_attend_state *st)
{
	size_t row_bytes = (size_t)a->head_dim * pnm_hw_dtype_size(dtype);
	uint64_t half = a->slot_bytes / 2;
	unsigned int ahead = PNM_ATTEND_AHEAD_BYTES / a->slot_bytes, p, t;
	struct pnm_chunk ch;

	if (ahead < 1)
		ahead = 1;
	for (p = 0; p < ahead && p < n; p++) {
		const uint8_t *keys = a->pool + a->table[pages[p]] * a->slot_bytes;
		uint64_t bytes = pnm_kernel_valid(a, pages[p]) * row_bytes;

		pnm_prefetch_l2(keys, bytes);
		pnm_prefetch_l2(keys + half, bytes);
	}
	ch.n = 0;
	for (p = 0; p < n; p++) {
		const uint8_t *keys = a->pool + a->table[pages[p]] * a->slot_bytes;
		uint32_t valid = pnm_kernel_valid(a, pages[p]);
		const uint8_t *next = NULL;
		uint32_t next_valid = 0;

		if (p + ahead < n) {
			next = a->pool + a->table[pages[p + ahead]] * a->slot_bytes;
			next_valid = pnm_kernel_valid(a, pages[p + ahead]);
		}
		for (t = 0; t < valid; t++) {
			ch.k[ch.n] = keys + t * row_bytes;
			ch.v[ch.n] = keys + half + t * row_bytes;
			ch.ahead[ch.n] = t < next_valid ? next + t * row_bytes : NULL;
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
