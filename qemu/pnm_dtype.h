/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * fp16 and bf16 in the device model's scalar code: exact widening to fp32
 * and narrowing with round-to-nearest-even, without library calls.
 */
#ifndef PNM_DTYPE_H
#define PNM_DTYPE_H

#include <stdint.h>
#include <string.h>

#include "cxl_pnm_hw.h"

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
static inline void pnm_load_row(unsigned int dtype, const uint8_t *src, float *dst,
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
static inline void pnm_store_row(unsigned int dtype, uint8_t *dst, const float *src,
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

#endif /* PNM_DTYPE_H */
