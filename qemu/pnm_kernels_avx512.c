// SPDX-License-Identifier: GPL-2.0-only
/*
 * AVX-512 (F, BW, VL) kernels of the CXL-PNM device model: one zmm holds
 * the 16 fp32 lanes of pnm_kernels_simd.h.  fp16 widens with vcvtph2ps,
 * bf16 with a zero-extension and a 16-bit shift.  Only called when
 * pnm_kernels_supported(PNM_ISA_AVX512) says the CPU runs it.
 *
 * NOTE: avx512_bf16's vdpbf16ps would take bf16 products two at a time,
 * but the query and the softmax weights would have to be rounded to bf16
 * first (8 significant bits), far outside the tolerance; the bf16 inputs
 * themselves need no instruction to widen.  So it is not used.
 */
#include <immintrin.h>
#include <stdint.h>

#define PNM_SIMD_TARGET "avx512f,avx512bw,avx512vl,fma,f16c"
#define PNM_SIMD_FN static inline __attribute__((always_inline, target(PNM_SIMD_TARGET)))
#define PNM_SIMD_ENTRY static __attribute__((target(PNM_SIMD_TARGET)))

typedef __m512 vf;
typedef __mmask16 vm;

PNM_SIMD_FN vf vf_zero(void) { return _mm512_setzero_ps(); }
PNM_SIMD_FN vf vf_set1(float x) { return _mm512_set1_ps(x); }
PNM_SIMD_FN vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
PNM_SIMD_FN void vf_store(float *p, vf v) { _mm512_storeu_ps(p, v); }
PNM_SIMD_FN vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
PNM_SIMD_FN vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
PNM_SIMD_FN vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
PNM_SIMD_FN vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* vmaxps/vminps return the second operand unless the comparison holds. */
PNM_SIMD_FN vf vf_max_ref(vf a, vf b) { return _mm512_max_ps(a, b); }
PNM_SIMD_FN vf vf_min_ref(vf a, vf b) { return _mm512_min_ps(a, b); }
PNM_SIMD_FN vf vf_abs(vf a) { return _mm512_abs_ps(a); }
PNM_SIMD_FN vf vf_round(vf a)
{
	return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

PNM_SIMD_FN vf vf_exp2i(vf n)
{
	__m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));

	return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}

PNM_SIMD_FN vf vf_load_bf16(const uint8_t *p)
{
	__m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));

	return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
}

PNM_SIMD_FN vf vf_load_fp16(const uint8_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* The lanes hold bf16 values exactly: keeping the top halves is exact. */
PNM_SIMD_FN void vf_store_bf16(uint8_t *p, vf v)
{
	__m512i x = _mm512_srli_epi32(_mm512_castps_si512(v), 16);

	_mm256_storeu_si256((__m256i *)p, _mm512_cvtepi32_epi16(x));
}

PNM_SIMD_FN void vf_store_fp16(uint8_t *p, vf v)
{
	_mm256_storeu_si256((__m256i *)p,
			    _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}

PNM_SIMD_FN vm vf_not_le(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLE_UQ); }
PNM_SIMD_FN vm vf_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
PNM_SIMD_FN vm vm_none(void) { return 0; }
PNM_SIMD_FN vm vm_or(vm a, vm b) { return a | b; }
PNM_SIMD_FN int vm_any(vm a) { return a != 0; }
PNM_SIMD_FN vm vf_first(unsigned int n) { return (vm)((1U << n) - 1); }
PNM_SIMD_FN vf vf_keep(vf a, vm m) { return _mm512_maskz_mov_ps(m, a); }
PNM_SIMD_FN vf vf_blend(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, b, a); }

/* Halves, then quarters, then pairs: a fixed tree. */
PNM_SIMD_FN float vf_reduce_add(vf v)
{
	__m256 h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
	__m256 s = _mm256_add_ps(_mm512_castps512_ps256(v), h);
	__m128 x = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));

	x = _mm_add_ps(x, _mm_movehl_ps(x, x));
	x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 0x55));
	return _mm_cvtss_f32(x);
}

PNM_SIMD_FN float vf_reduce_max(vf v)
{
	__m256 h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
	__m256 s = _mm256_max_ps(_mm512_castps512_ps256(v), h);
	__m128 x = _mm_max_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));

	x = _mm_max_ps(x, _mm_movehl_ps(x, x));
	x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 0x55));
	return _mm_cvtss_f32(x);
}

/*
 * Sixteen horizontal sums at once: lane j of the result is the sum of
 * v[j]'s lanes.  Pairs, then quads within each 128-bit lane, then across
 * the four 128-bit lanes: 45 instructions instead of 16 reductions.
 */
PNM_SIMD_FN vf vf_sum16(const vf v[16])
{
	vf w[8], x[4], z[2];
	int i;

	for (i = 0; i < 8; i++)
		w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
				     _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
	for (i = 0; i < 4; i++)
		x[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0x44),
				     _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0xee));
	for (i = 0; i < 2; i++)
		z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x88),
				     _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xdd));
	return _mm512_add_ps(_mm512_shuffle_f32x4(z[0], z[1], 0x88),
			     _mm512_shuffle_f32x4(z[0], z[1], 0xdd));
}

/* Value blocks a pass holds: 4 heads x 4 zmm accumulators. */
#define PNM_SIMD_VBLOCK 4
#define PNM_SIMD_NAME "avx512"
#include "pnm_kernels_simd.h"

const struct pnm_kernels pnm_kernels_avx512 = {
	.name = PNM_SIMD_NAME,
	.exact_scores = 0,
	.digest = pnm_simd_digest,
	.score = pnm_simd_score,
	.attend = pnm_simd_attend,
};
