// SPDX-License-Identifier: GPL-2.0-only
/*
 * AVX2 kernels of the CXL-PNM device model, with FMA and F16C: the 16 fp32
 * lanes of pnm_kernels_simd.h are two ymm registers.  fp16 widens with
 * vcvtph2ps, bf16 with a zero-extension and a 16-bit shift.  Only called
 * when pnm_kernels_supported(PNM_ISA_AVX2) says the CPU runs it.
 */
#include <immintrin.h>
#include <stdint.h>

#define PNM_SIMD_TARGET "avx2,fma,f16c"
#define PNM_SIMD_FN static inline __attribute__((always_inline, target(PNM_SIMD_TARGET)))
#define PNM_SIMD_ENTRY static __attribute__((target(PNM_SIMD_TARGET)))

/* Lanes 0-7 in @l, 8-15 in @h. */
typedef struct {
	__m256 l, h;
} vf;
typedef unsigned int vm;

PNM_SIMD_FN vf vf_pair(__m256 l, __m256 h)
{
	vf v = { l, h };

	return v;
}

PNM_SIMD_FN vf vf_zero(void) { return vf_pair(_mm256_setzero_ps(), _mm256_setzero_ps()); }
PNM_SIMD_FN vf vf_set1(float x) { return vf_pair(_mm256_set1_ps(x), _mm256_set1_ps(x)); }
PNM_SIMD_FN vf vf_load(const float *p)
{
	return vf_pair(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8));
}

PNM_SIMD_FN void vf_store(float *p, vf v)
{
	_mm256_storeu_ps(p, v.l);
	_mm256_storeu_ps(p + 8, v.h);
}

#define PNM_VF_BINARY(name, op)						\
	PNM_SIMD_FN vf name(vf a, vf b)					\
	{								\
		return vf_pair(op(a.l, b.l), op(a.h, b.h));		\
	}
PNM_VF_BINARY(vf_add, _mm256_add_ps)
PNM_VF_BINARY(vf_sub, _mm256_sub_ps)
PNM_VF_BINARY(vf_mul, _mm256_mul_ps)
/* vmaxps/vminps return the second operand unless the comparison holds. */
PNM_VF_BINARY(vf_max_ref, _mm256_max_ps)
PNM_VF_BINARY(vf_min_ref, _mm256_min_ps)

PNM_SIMD_FN vf vf_fma(vf a, vf b, vf c)
{
	return vf_pair(_mm256_fmadd_ps(a.l, b.l, c.l), _mm256_fmadd_ps(a.h, b.h, c.h));
}

PNM_SIMD_FN vf vf_abs(vf a)
{
	__m256 m = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));

	return vf_pair(_mm256_and_ps(a.l, m), _mm256_and_ps(a.h, m));
}

/* The rounding mode and the predicates below are immediates: macros. */
#define PNM_ROUND_NEAREST	(_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)

PNM_SIMD_FN vf vf_round(vf a)
{
	return vf_pair(_mm256_round_ps(a.l, PNM_ROUND_NEAREST),
		       _mm256_round_ps(a.h, PNM_ROUND_NEAREST));
}

PNM_SIMD_FN __m256 pnm_exp2i8(__m256 n)
{
	__m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));

	return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}

PNM_SIMD_FN vf vf_exp2i(vf n) { return vf_pair(pnm_exp2i8(n.l), pnm_exp2i8(n.h)); }

PNM_SIMD_FN __m256 pnm_bf16x8(const uint8_t *p)
{
	__m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));

	return _mm256_castsi256_ps(_mm256_slli_epi32(x, 16));
}

PNM_SIMD_FN vf vf_load_bf16(const uint8_t *p)
{
	return vf_pair(pnm_bf16x8(p), pnm_bf16x8(p + 16));
}

PNM_SIMD_FN vf vf_load_fp16(const uint8_t *p)
{
	return vf_pair(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)),
		       _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16))));
}

/* The lanes hold bf16 values exactly: keeping the top halves is exact. */
PNM_SIMD_FN void vf_store_bf16(uint8_t *p, vf v)
{
	__m256i l = _mm256_srli_epi32(_mm256_castps_si256(v.l), 16);
	__m256i h = _mm256_srli_epi32(_mm256_castps_si256(v.h), 16);
	/* packus works per 128-bit lane: fix the quadword order after it. */
	__m256i x = _mm256_permute4x64_epi64(_mm256_packus_epi32(l, h), 0xd8);

	_mm256_storeu_si256((__m256i *)p, x);
}

PNM_SIMD_FN void vf_store_fp16(uint8_t *p, vf v)
{
	_mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v.l, _MM_FROUND_TO_NEAREST_INT));
	_mm_storeu_si128((__m128i *)(p + 16),
			 _mm256_cvtps_ph(v.h, _MM_FROUND_TO_NEAREST_INT));
}

#define pnm_cmp_bits(a, b, pred)					\
	((vm)((unsigned int)_mm256_movemask_ps(_mm256_cmp_ps((a).l, (b).l, pred)) | \
	      (unsigned int)_mm256_movemask_ps(_mm256_cmp_ps((a).h, (b).h, pred)) << 8))

PNM_SIMD_FN vm vf_not_le(vf a, vf b) { return pnm_cmp_bits(a, b, _CMP_NLE_UQ); }
PNM_SIMD_FN vm vf_gt(vf a, vf b) { return pnm_cmp_bits(a, b, _CMP_GT_OQ); }
PNM_SIMD_FN vm vm_none(void) { return 0; }
PNM_SIMD_FN vm vm_or(vm a, vm b) { return a | b; }
PNM_SIMD_FN int vm_any(vm a) { return a != 0; }
PNM_SIMD_FN vm vf_first(unsigned int n) { return (1U << n) - 1; }

/* Lane i of the result is all ones where bit i of @m is set. */
PNM_SIMD_FN vf pnm_mask_lanes(vm m)
{
	const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
	__m256i l = _mm256_set1_epi32(m & 0xff), h = _mm256_set1_epi32(m >> 8);

	l = _mm256_cmpeq_epi32(_mm256_and_si256(l, bit), bit);
	h = _mm256_cmpeq_epi32(_mm256_and_si256(h, bit), bit);
	return vf_pair(_mm256_castsi256_ps(l), _mm256_castsi256_ps(h));
}

PNM_SIMD_FN vf vf_keep(vf a, vm m)
{
	vf k = pnm_mask_lanes(m);

	return vf_pair(_mm256_and_ps(a.l, k.l), _mm256_and_ps(a.h, k.h));
}

PNM_SIMD_FN vf vf_blend(vm m, vf a, vf b)
{
	vf k = pnm_mask_lanes(m);

	return vf_pair(_mm256_blendv_ps(b.l, a.l, k.l), _mm256_blendv_ps(b.h, a.h, k.h));
}

/* The two halves, then quarters, then pairs: a fixed tree. */
PNM_SIMD_FN float vf_reduce_add(vf v)
{
	__m256 s = _mm256_add_ps(v.l, v.h);
	__m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));

	x = _mm_add_ps(x, _mm_movehl_ps(x, x));
	x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 0x55));
	return _mm_cvtss_f32(x);
}

PNM_SIMD_FN float vf_reduce_max(vf v)
{
	__m256 s = _mm256_max_ps(v.l, v.h);
	__m128 x = _mm_max_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));

	x = _mm_max_ps(x, _mm_movehl_ps(x, x));
	x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 0x55));
	return _mm_cvtss_f32(x);
}

/* Lane j of the result is the sum of the 8 lanes of h[j], j < 8. */
PNM_SIMD_FN __m256 pnm_sum8(const __m256 h[8])
{
	__m256 w[4], x[2];
	int i;

	for (i = 0; i < 4; i++)
		w[i] = _mm256_add_ps(_mm256_unpacklo_ps(h[2 * i], h[2 * i + 1]),
				     _mm256_unpackhi_ps(h[2 * i], h[2 * i + 1]));
	for (i = 0; i < 2; i++)
		x[i] = _mm256_add_ps(_mm256_shuffle_ps(w[2 * i], w[2 * i + 1], 0x44),
				     _mm256_shuffle_ps(w[2 * i], w[2 * i + 1], 0xee));
	return _mm256_add_ps(_mm256_permute2f128_ps(x[0], x[1], 0x20),
			     _mm256_permute2f128_ps(x[0], x[1], 0x31));
}

/* Sixteen horizontal sums at once: lane j is the sum of v[j]'s lanes. */
PNM_SIMD_FN vf vf_sum16(const vf v[16])
{
	__m256 lo[8], hi[8];
	int i;

	for (i = 0; i < 8; i++) {
		lo[i] = _mm256_add_ps(v[i].l, v[i].h);
		hi[i] = _mm256_add_ps(v[i + 8].l, v[i + 8].h);
	}
	return vf_pair(pnm_sum8(lo), pnm_sum8(hi));
}

/* Value blocks a pass holds: 4 heads x 2 ymm accumulators. */
#define PNM_SIMD_VBLOCK 1
#define PNM_SIMD_NAME "avx2"
#include "pnm_kernels_simd.h"

const struct pnm_kernels pnm_kernels_avx2 = {
	.name = PNM_SIMD_NAME,
	.exact_scores = 0,
	.digest = pnm_simd_digest,
	.score = pnm_simd_score,
	.attend = pnm_simd_attend,
};
