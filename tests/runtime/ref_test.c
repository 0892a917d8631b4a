// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of the CPU reference, runtime/pnm_ref.c: conversions, digests,
 * scores, selection, attention and the LSE merge, on cases small enough to
 * work out by hand.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"
#include "pnm_ref.h"

#define D	16	/* head_dim of the hand-made streams */
#define P	4	/* tokens per page */
#define SHIFT	2

static uint16_t bits16(unsigned int dtype, float value)
{
	uint16_t h;

	pnm_ref_store(dtype, &h, 0, value);
	return h;
}

TEST(bf16_rounds_to_nearest_even)
{
	/* bf16 keeps 7 fraction bits: the spacing at 1.0 is 2^-7. */
	EXPECT_EQ(0x3f80, bits16(CXL_PNM_DTYPE_BF16, 1.0f + 0x1p-8f));
	EXPECT_EQ(0x3f82, bits16(CXL_PNM_DTYPE_BF16, 1.0f + 3 * 0x1p-8f));
	EXPECT_EQ(0x3f81, bits16(CXL_PNM_DTYPE_BF16, 1.0f + 0x1p-8f + 0x1p-20f));
	EXPECT_EQ(0xbf80, bits16(CXL_PNM_DTYPE_BF16, -1.0f - 0x1p-8f));
	EXPECT_EQ(0x7f80, bits16(CXL_PNM_DTYPE_BF16, 3.4028235e38f));
	EXPECT_EQ(0x8000, bits16(CXL_PNM_DTYPE_BF16, -0.0f));
	EXPECT_TRUE(isnan(pnm_ref_load(CXL_PNM_DTYPE_BF16, (uint16_t[]){
		bits16(CXL_PNM_DTYPE_BF16, NAN) }, 0)));
}

TEST(fp16_rounds_to_nearest_even)
{
	EXPECT_EQ(0x7bff, bits16(CXL_PNM_DTYPE_FP16, 65504.0f));
	EXPECT_EQ(0x7bff, bits16(CXL_PNM_DTYPE_FP16, 65519.0f));
	EXPECT_EQ(0x7c00, bits16(CXL_PNM_DTYPE_FP16, 65520.0f));
	EXPECT_EQ(0x3c00, bits16(CXL_PNM_DTYPE_FP16, 1.0f + 0x1p-11f));
	EXPECT_EQ(0x3c02, bits16(CXL_PNM_DTYPE_FP16, 1.0f + 3 * 0x1p-11f));
	/* Subnormals: units of 2^-24, ties to even. */
	EXPECT_EQ(0x0001, bits16(CXL_PNM_DTYPE_FP16, 0x1p-24f));
	EXPECT_EQ(0x0000, bits16(CXL_PNM_DTYPE_FP16, 0x1p-25f));
	EXPECT_EQ(0x0002, bits16(CXL_PNM_DTYPE_FP16, 3 * 0x1p-25f));
	EXPECT_EQ(0x0400, bits16(CXL_PNM_DTYPE_FP16, 0x1p-14f - 0x1p-26f));
	EXPECT_EQ(0x8000, bits16(CXL_PNM_DTYPE_FP16, -0x1p-30f));
	EXPECT_EQ(0x7e00, bits16(CXL_PNM_DTYPE_FP16, NAN) & 0x7e00);
}

TEST(fp16_round_trip_every_value)
{
	unsigned int bits, bad = 0;

	for (bits = 0; bits < 0x10000; bits++) {
		uint16_t h = bits;
		float f = pnm_ref_load(CXL_PNM_DTYPE_FP16, &h, 0);

		if (isnan(f))
			continue;
		bad += bits16(CXL_PNM_DTYPE_FP16, f) != h;
	}
	EXPECT_EQ(0, bad);
}

/*
 * A stream of fp32 pages in @pool with an identity page table; each test
 * writes the keys, values and digests it needs.
 */
struct small_stream {
	float pool[8 * (2 * P * D + 2 * D)];
	uint32_t table[8];
	struct pnm_ref_stream s;
};

static void small_stream_init(struct small_stream *st, unsigned int n_pages,
			      uint32_t n_tokens, unsigned int group)
{
	unsigned int i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < 8; i++)
		st->table[i] = i;
	st->s = (struct pnm_ref_stream){
		.dtype = CXL_PNM_DTYPE_FP32, .head_dim = D, .page_shift = SHIFT,
		.group = group, .n_tokens = n_tokens, .pool = st->pool,
		.pool_len = n_pages * (2 * P * D + 2 * D) * sizeof(float),
		.table = st->table,
	};
}

static float *key_row(struct small_stream *st, uint32_t page, unsigned int t)
{
	return (float *)pnm_ref_slot(&st->s, page) + t * D;
}

static float *value_row(struct small_stream *st, uint32_t page, unsigned int t)
{
	return (float *)pnm_ref_slot(&st->s, page) + (P + t) * D;
}

static float *digest(struct small_stream *st, uint32_t page)
{
	return (float *)pnm_ref_digest_of(&st->s, page);
}

TEST(geometry_of_pool)
{
	struct small_stream st;

	small_stream_init(&st, 5, 17, 1);
	EXPECT_EQ(5, pnm_ref_n_pages(&st.s));
	EXPECT_EQ(5, pnm_ref_n_slots(&st.s));
	EXPECT_EQ((char *)st.pool + 2 * (2 * P * D) * 4,
		  (char *)pnm_ref_slot(&st.s, 2));
	EXPECT_EQ((char *)st.pool + 5 * (2 * P * D) * 4 + 3 * (2 * D) * 4,
		  (char *)pnm_ref_digest_of(&st.s, 3));
}

TEST(digest_is_min_and_max)
{
	float keys[3 * D], out[2 * D];
	unsigned int c;

	for (c = 0; c < D; c++) {
		keys[c] = c;
		keys[D + c] = -(float)c;
		keys[2 * D + c] = 0.5f;
	}
	/* The third row lies past n_valid = 2 and must not count. */
	pnm_ref_digest(CXL_PNM_DTYPE_FP32, D, keys, 2, out);
	for (c = 0; c < D; c++) {
		EXPECT_EQ(-(float)c, out[c]);
		EXPECT_EQ((float)c, out[D + c]);
	}
	pnm_ref_digest(CXL_PNM_DTYPE_FP32, D, keys, 3, out);
	EXPECT_EQ(0.0f, out[0]);
	EXPECT_EQ(0.5f, out[D + 0]);
	EXPECT_EQ(-1.0f, out[1]);
	EXPECT_EQ(1.0f, out[D + 1]);
}

TEST(score_sums_group_bound)
{
	struct small_stream st;
	float q[2 * D] = { 0 };
	float *dg;

	small_stream_init(&st, 2, 2 * P, 2);
	dg = digest(&st, 1);
	/* channel 0: min -1, max 2; channel 1: min 3, max 5 */
	dg[0] = -1.0f; dg[D + 0] = 2.0f;
	dg[1] = 3.0f; dg[D + 1] = 5.0f;
	q[0] = 1.0f;		/* head 0: max(-1, 2) = 2 */
	q[1] = -2.0f;		/* head 0: max(-6, -10) = -6 */
	q[D + 0] = -3.0f;	/* head 1: max(3, -6) = 3 */
	q[D + 1] = 0.5f;	/* head 1: max(1.5, 2.5) = 2.5 */
	EXPECT_EQ(2.0f - 6.0f + 3.0f + 2.5f, pnm_ref_score(&st.s, q, 1));
}

/* Six pages whose digests give page p the score @scores[p] for q = e0. */
static void scored_stream(struct small_stream *st, const float *scores)
{
	unsigned int p;

	small_stream_init(st, 6, 6 * P, 1);
	for (p = 0; p < 6; p++) {
		digest(st, p)[0] = scores[p];
		digest(st, p)[D] = scores[p];
	}
}

TEST(select_breaks_ties_to_lower_page)
{
	static const float scores[6] = { 1, 1, 1, 1, 1, 1 };
	uint32_t pages[6], excl[1] = { 1 };
	struct small_stream st;
	float q[D] = { 1.0f };
	int n;

	scored_stream(&st, scores);
	n = pnm_ref_select(&st.s, q, 3, CXL_PNM_CMD_KEEP_SINK |
			   CXL_PNM_CMD_KEEP_RECENT, NULL, 0, pages);
	ASSERT_EQ(3, n);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(1, pages[1]);
	EXPECT_EQ(5, pages[2]);

	n = pnm_ref_select(&st.s, q, 3, CXL_PNM_CMD_KEEP_SINK |
			   CXL_PNM_CMD_KEEP_RECENT, excl, 1, pages);
	ASSERT_EQ(3, n);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(2, pages[1]);
	EXPECT_EQ(5, pages[2]);
}

TEST(select_takes_highest_scores)
{
	static const float scores[6] = { -5, 4, 9, NAN, 7, -1 };
	struct small_stream st;
	float q[D] = { 1.0f };
	uint32_t pages[6];
	int n;

	scored_stream(&st, scores);
	n = pnm_ref_select(&st.s, q, 2, 0, NULL, 0, pages);
	ASSERT_EQ(2, n);
	EXPECT_EQ(2, pages[0]);
	EXPECT_EQ(4, pages[1]);

	/* KEEP_SINK keeps page 0 despite its low score. */
	n = pnm_ref_select(&st.s, q, 2, CXL_PNM_CMD_KEEP_SINK, NULL, 0, pages);
	ASSERT_EQ(2, n);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(2, pages[1]);

	/* A NaN score ranks below every number, so page 3 comes last. */
	n = pnm_ref_select(&st.s, q, 5, 0, NULL, 0, pages);
	ASSERT_EQ(5, n);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(1, pages[1]);
	EXPECT_EQ(2, pages[2]);
	EXPECT_EQ(4, pages[3]);
	EXPECT_EQ(5, pages[4]);
}

TEST(select_k_limits)
{
	static const float scores[6] = { 0, 1, 2, 3, 4, 5 };
	uint32_t pages[6], excl[2] = { 2, 5 };
	struct small_stream st;
	float q[D] = { 1.0f };

	scored_stream(&st, scores);
	EXPECT_EQ(-1, pnm_ref_select(&st.s, q, 0, 0, NULL, 0, pages));
	EXPECT_EQ(-1, pnm_ref_select(&st.s, q, 1, CXL_PNM_CMD_KEEP_SINK |
				     CXL_PNM_CMD_KEEP_RECENT, NULL, 0, pages));
	/* k above the page count selects every page that is not excluded. */
	EXPECT_EQ(6, pnm_ref_select(&st.s, q, 100, 0, NULL, 0, pages));
	EXPECT_EQ(4, pnm_ref_select(&st.s, q, 100, 0, excl, 2, pages));
	/* An excluded last page is not kept, so k = 1 is enough. */
	EXPECT_EQ(1, pnm_ref_select(&st.s, q, 1, CXL_PNM_CMD_KEEP_SINK |
				    CXL_PNM_CMD_KEEP_RECENT, excl + 1, 1, pages));
	EXPECT_EQ(0, pages[0]);
}

TEST(attend_one_token_returns_its_value)
{
	struct small_stream st;
	float q[D], out[D], lse;
	uint32_t page = 0;
	unsigned int c;

	small_stream_init(&st, 1, 1, 1);
	for (c = 0; c < D; c++) {
		q[c] = 1.0f;
		key_row(&st, 0, 0)[c] = 0.25f;
		value_row(&st, 0, 0)[c] = (float)c - 3.0f;
		/* Rows past n_tokens may hold anything, NaN included. */
		key_row(&st, 0, 1)[c] = NAN;
		value_row(&st, 0, 1)[c] = NAN;
	}
	pnm_ref_attend(&st.s, q, &page, 1, out, &lse);
	for (c = 0; c < D; c++)
		EXPECT_EQ((float)c - 3.0f, out[c]);
	/* l = (1 / sqrt(16)) * 16 * 0.25 = 1, the only term of the LSE. */
	EXPECT_EQ(1.0f, lse);
}

TEST(attend_equal_logits)
{
	struct small_stream st;
	float q[D] = { 0 }, out[D], lse;
	uint32_t pages[2] = { 0, 1 };
	unsigned int t, c;

	small_stream_init(&st, 2, 2 * P, 1);
	for (t = 0; t < 2 * P; t++)
		for (c = 0; c < D; c++)
			value_row(&st, t / P, t % P)[c] = t < P ? 1.0f : 3.0f;
	/* q = 0: every logit is 0, lse = log(8), out is the mean value. */
	pnm_ref_attend(&st.s, q, pages, 2, out, &lse);
	EXPECT_LT(fabsf(lse - logf(8.0f)), 1e-6f);
	for (c = 0; c < D; c++)
		EXPECT_LT(fabsf(out[c] - 2.0f), 1e-6f);
}

TEST(attend_no_tokens)
{
	struct small_stream st;
	float q[D] = { 1.0f }, out[D], lse = 0.0f;
	unsigned int c;

	small_stream_init(&st, 1, P, 1);
	for (c = 0; c < D; c++)
		out[c] = 42.0f;
	pnm_ref_attend(&st.s, q, NULL, 0, out, &lse);
	EXPECT_EQ(-INFINITY, lse);
	for (c = 0; c < D; c++)
		EXPECT_EQ(0.0f, out[c]);
}

TEST(merge_of_halves_equals_whole)
{
	struct small_stream st;
	float q[D], whole[D], lse_whole, a[D], lse_a, b[D], lse_b;
	uint32_t all[3] = { 0, 1, 2 }, first[1] = { 0 }, rest[2] = { 1, 2 };
	unsigned int t, c;

	small_stream_init(&st, 3, 3 * P - 1, 1);
	for (c = 0; c < D; c++)
		q[c] = 0.1f * (float)c - 0.5f;
	for (t = 0; t < 3 * P - 1; t++)
		for (c = 0; c < D; c++) {
			key_row(&st, t / P, t % P)[c] = sinf(t + 0.3f * c);
			value_row(&st, t / P, t % P)[c] = cosf(t * 0.7f - c);
		}
	pnm_ref_attend(&st.s, q, all, 3, whole, &lse_whole);
	pnm_ref_attend(&st.s, q, first, 1, a, &lse_a);
	pnm_ref_attend(&st.s, q, rest, 2, b, &lse_b);
	pnm_ref_merge(a, &lse_a, b, lse_b, D);
	EXPECT_LT(fabsf(lse_a - lse_whole), 1e-5f);
	for (c = 0; c < D; c++)
		EXPECT_LT(fabsf(a[c] - whole[c]), 1e-5f);
}

TEST(merge_side_minus_infinity)
{
	float a[2] = { 1.0f, 2.0f }, b[2] = { 5.0f, 6.0f };
	float lse_a = 0.5f;

	pnm_ref_merge(a, &lse_a, b, -INFINITY, 2);
	EXPECT_EQ(0.5f, lse_a);
	EXPECT_EQ(1.0f, a[0]);
	EXPECT_EQ(2.0f, a[1]);

	lse_a = -INFINITY;
	pnm_ref_merge(a, &lse_a, b, 3.0f, 2);
	EXPECT_EQ(3.0f, lse_a);
	EXPECT_EQ(5.0f, a[0]);
	EXPECT_EQ(6.0f, a[1]);

	lse_a = -INFINITY;
	a[0] = 0.0f;
	pnm_ref_merge(a, &lse_a, b, -INFINITY, 2);
	EXPECT_EQ(-INFINITY, lse_a);
	EXPECT_EQ(0.0f, a[0]);
}

TEST(merge_equal_lse)
{
	float a[2] = { 1.0f, -4.0f }, b[2] = { 3.0f, 0.0f };
	float lse_a = 2.0f;

	pnm_ref_merge(a, &lse_a, b, 2.0f, 2);
	EXPECT_LT(fabsf(lse_a - (2.0f + logf(2.0f))), 1e-6f);
	EXPECT_EQ(2.0f, a[0]);
	EXPECT_EQ(-2.0f, a[1]);
}

TEST(merge_large_difference)
{
	float a[2] = { 1.0f, 2.0f }, b[2] = { 1e30f, -1e30f };
	float lse_a = 100.0f;

	/* exp(-200) underflows: the small side changes nothing, no NaN. */
	pnm_ref_merge(a, &lse_a, b, -100.0f, 2);
	EXPECT_EQ(100.0f, lse_a);
	EXPECT_EQ(1.0f, a[0]);
	EXPECT_EQ(2.0f, a[1]);

	/* And the other way round: the large side replaces the small. */
	lse_a = -100.0f;
	b[0] = 7.0f;
	b[1] = 8.0f;
	pnm_ref_merge(a, &lse_a, b, 100.0f, 2);
	EXPECT_EQ(100.0f, lse_a);
	EXPECT_EQ(7.0f, a[0]);
	EXPECT_EQ(8.0f, a[1]);
}

TEST_HARNESS_MAIN
