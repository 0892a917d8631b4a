// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of the log-sum-exp merge as multi-device and PnG-KV decode
 * use it: partitions of one stream's pages merged in any order equal
 * attention over their union, and no edge case (an empty partition, one
 * side only, equal LSEs, LSEs far apart, large outputs) yields NaN or inf.
 */
#include <math.h>
#include <string.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"
#include "pnm_ref.h"

#define D	16

/* Within a few ulp of @want, for values computed through expf/log1pf. */
#define EXPECT_CLOSE(want, got) \
	EXPECT_GE(1e-6 * fmax(1.0, fabs((double)(want))), \
		  fabs((double)(got) - (double)(want)))

static bool all_finite(const float *v, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return false;
	return true;
}

TEST(empty_partitions_stay_empty)
{
	float a[D] = { 0 }, b[D] = { 0 }, lse_a = -INFINITY;

	pnm_ref_merge(a, &lse_a, b, -INFINITY, D);
	EXPECT_EQ(-INFINITY, lse_a);
	EXPECT_TRUE(all_finite(a, D));
	EXPECT_EQ(0.0f, a[0]);
}

TEST(empty_partition_between_two)
{
	float acc[D], part[D], lse = -INFINITY;
	unsigned int c;

	memset(acc, 0, sizeof(acc));
	for (c = 0; c < D; c++)
		part[c] = 1.0f;
	pnm_ref_merge(acc, &lse, part, 0.0f, D);	/* one-sided: a copy */
	EXPECT_EQ(0.0f, lse);
	pnm_ref_merge(acc, &lse, part, -INFINITY, D);	/* empty: no change */
	EXPECT_EQ(0.0f, lse);
	for (c = 0; c < D; c++)
		part[c] = 3.0f;
	pnm_ref_merge(acc, &lse, part, 0.0f, D);	/* equal LSEs: the mean */
	EXPECT_CLOSE(logf(2.0f), lse);
	for (c = 0; c < D; c++)
		EXPECT_CLOSE(2.0f, acc[c]);
}

TEST(far_apart_lses_keep_outputs_finite)
{
	static const float gaps[] = { 88.0f, 104.0f, 1e6f, 3e38f };
	float a[D], b[D], lse_a;
	unsigned int g, c, side;

	for (g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {
		for (side = 0; side < 2; side++) {
			for (c = 0; c < D; c++) {
				a[c] = 1e30f;
				b[c] = -2.0f;
			}
			/* Either side the larger; exp(-gap) underflows. */
			lse_a = side ? gaps[g] : -gaps[g];
			pnm_ref_merge(a, &lse_a, b, side ? -gaps[g] : gaps[g], D);
			EXPECT_TRUE(all_finite(a, D));
			EXPECT_TRUE(isfinite(lse_a));
			EXPECT_CLOSE(side ? 1e30f : -2.0f, a[0]);
			EXPECT_CLOSE(gaps[g], lse_a);
		}
	}
}

TEST(large_lses_equal)
{
	float a[D], b[D], lse = 80.0f;
	unsigned int c;

	for (c = 0; c < D; c++) {
		a[c] = 1.5e38f;
		b[c] = 1.5e38f;
	}
	/* Equal weights: the sum of the two sides, 3e38, still fits fp32. */
	pnm_ref_merge(a, &lse, b, 80.0f, D);
	EXPECT_TRUE(isfinite(lse));
	EXPECT_CLOSE(80.0f + logf(2.0f), lse);
	EXPECT_FALSE(isnan(a[0]));
}

/*
 * Four partitions of a 12-page stream, one empty, merged in two orders:
 * both equal attention over the union, as a token split merges them.
 */
TEST(partitions_merge_to_the_union)
{
	enum { PT = 4, PAGES = 12 };
	static uint16_t pool[PAGES * (2 * PT * D + 2 * D)];
	static const uint32_t parts[4][4] = {
		{ 0, 2, 3 }, { 5, 6 }, { 0 }, { 8, 9, 11 },
	};
	static const unsigned int n_parts[4] = { 3, 2, 0, 3 };
	static const unsigned int orders[2][4] = { { 0, 1, 2, 3 }, { 3, 2, 0, 1 } };
	uint32_t table[PAGES], all[8] = { 0, 2, 3, 5, 6, 8, 9, 11 };
	struct pnm_ref_stream s = {
		.dtype = CXL_PNM_DTYPE_BF16, .head_dim = D, .page_shift = 2,
		.group = 1, .n_tokens = PAGES * PT - 2, .pool = pool,
		.pool_len = sizeof(pool), .table = table,
	};
	float q[D], whole[D], whole_lse, acc[D], acc_lse, part[D], part_lse;
	unsigned int i, o, c;

	for (i = 0; i < PAGES; i++)
		table[i] = PAGES - 1 - i;
	for (i = 0; i < sizeof(pool) / sizeof(pool[0]); i++)
		pnm_ref_store(CXL_PNM_DTYPE_BF16, pool, i,
			      (float)((i * 29) % 31) / 6.0f - 2.5f);
	for (c = 0; c < D; c++)
		q[c] = (float)((c * 5) % 9) / 3.0f - 1.2f;
	pnm_ref_attend(&s, q, all, 8, whole, &whole_lse);

	for (o = 0; o < 2; o++) {
		memset(acc, 0, sizeof(acc));
		acc_lse = -INFINITY;
		for (i = 0; i < 4; i++) {
			unsigned int p = orders[o][i];

			pnm_ref_attend(&s, q, parts[p], n_parts[p], part, &part_lse);
			if (!n_parts[p])
				EXPECT_EQ(-INFINITY, part_lse);
			pnm_ref_merge(acc, &acc_lse, part, part_lse, D);
		}
		EXPECT_TRUE(all_finite(acc, D));
		EXPECT_GE(1e-5, fabsf(acc_lse - whole_lse));
		for (c = 0; c < D; c++)
			EXPECT_GE(1e-5, fabsf(acc[c] - whole[c]));
	}
}

TEST_HARNESS_MAIN
