// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of runtime/steady.c: the steadiness rule of the tracker and
 * the host page cache of PnG-KV mode.  No device is involved.
 */
#include <math.h>
#include <string.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"
#include "pnm.h"
#include "pnm_ref.h"
#include "steady.h"

TEST(params_defaults_and_errors)
{
	struct steady_params p = { 0 };

	ASSERT_EQ(0, steady_params_resolve(&p));
	EXPECT_EQ(STEADY_DEFAULT_WINDOW, p.window);
	EXPECT_EQ(STEADY_DEFAULT_THRESHOLD, p.threshold);
	EXPECT_EQ(STEADY_DEFAULT_CAPACITY, p.capacity);
	EXPECT_EQ(STEADY_DEFAULT_HOLD_MASS, p.hold_mass);

	/* A window shorter than the default threshold lowers the threshold. */
	p = (struct steady_params){ .window = 2 };
	ASSERT_EQ(0, steady_params_resolve(&p));
	EXPECT_EQ(2, p.threshold);

	p = (struct steady_params){ .window = 65 };
	EXPECT_EQ(-EINVAL, steady_params_resolve(&p));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "window 65"));
	p = (struct steady_params){ .window = 3, .threshold = 4 };
	EXPECT_EQ(-EINVAL, steady_params_resolve(&p));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "threshold 4"));
	p = (struct steady_params){ .hold_mass = NAN };
	EXPECT_EQ(-EINVAL, steady_params_resolve(&p));
}

TEST(page_turns_steady_at_threshold)
{
	struct steady_params p = { .window = 4, .threshold = 3 };
	struct steady_tracker *t;
	uint32_t sel[] = { 1, 5 };
	unsigned int step;

	ASSERT_EQ(0, steady_params_resolve(&p));
	t = steady_tracker_new(&p, 2, 8);
	ASSERT_NE(NULL, t);
	for (step = 0; step < 2; step++)
		steady_tracker_record(t, 1, 8, sel, 2);
	EXPECT_EQ(2, steady_tracker_count(t, 1, 5));
	EXPECT_FALSE(steady_tracker_is_steady(t, 1, 5));
	steady_tracker_record(t, 1, 8, sel, 2);
	EXPECT_TRUE(steady_tracker_is_steady(t, 1, 1));
	EXPECT_TRUE(steady_tracker_is_steady(t, 1, 5));
	/* The other stream and the other pages saw nothing. */
	EXPECT_EQ(0, steady_tracker_count(t, 0, 1));
	EXPECT_EQ(0, steady_tracker_count(t, 1, 2));

	/* Page 5 misses twice: 2 of the last 4 steps, below 3... */
	steady_tracker_record(t, 1, 8, sel, 1);
	EXPECT_TRUE(steady_tracker_is_steady(t, 1, 1));
	EXPECT_TRUE(steady_tracker_is_steady(t, 1, 5));
	steady_tracker_record(t, 1, 8, NULL, 0);
	EXPECT_EQ(3, steady_tracker_count(t, 1, 1));
	EXPECT_EQ(2, steady_tracker_count(t, 1, 5));
	EXPECT_TRUE(steady_tracker_is_steady(t, 1, 1));
	EXPECT_FALSE(steady_tracker_is_steady(t, 1, 5));
	/* ... and the window forgets older selections entirely. */
	steady_tracker_record(t, 1, 8, NULL, 0);
	steady_tracker_record(t, 1, 8, NULL, 0);
	steady_tracker_record(t, 1, 8, NULL, 0);
	EXPECT_EQ(0, steady_tracker_count(t, 1, 1));
	EXPECT_EQ(0, steady_tracker_count(t, 1, 5));
	steady_tracker_free(t);
}

TEST(pages_past_the_stream_keep_their_history)
{
	struct steady_params p = { .window = 64, .threshold = 64 };
	struct steady_tracker *t;
	uint32_t sel[] = { 0, 6 };
	unsigned int step;

	ASSERT_EQ(0, steady_params_resolve(&p));
	t = steady_tracker_new(&p, 1, 8);
	ASSERT_NE(NULL, t);
	for (step = 0; step < 64; step++)
		steady_tracker_record(t, 0, 8, sel, 2);
	EXPECT_TRUE(steady_tracker_is_steady(t, 0, 6));
	/* A record over 4 pages neither shifts nor sets page 6. */
	steady_tracker_record(t, 0, 4, sel, 2);
	EXPECT_EQ(64, steady_tracker_count(t, 0, 6));
	EXPECT_EQ(64, steady_tracker_count(t, 0, 0));
	steady_tracker_reset(t, 0);
	EXPECT_EQ(0, steady_tracker_count(t, 0, 0));
	EXPECT_EQ(0, steady_tracker_count(t, 3, 0));	/* out of range */
	steady_tracker_free(t);
}

TEST(cache_keeps_pages_ascending_and_bounded)
{
	struct steady_cache *c = steady_cache_new(2, 16, 3, 64, 8);
	const uint32_t *pages;
	void *a, *b;

	ASSERT_NE(NULL, c);
	a = steady_cache_insert(c, 1, 9);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, steady_cache_insert(c, 1, 2));
	EXPECT_EQ(NULL, steady_cache_insert(c, 1, 9));	/* held already */
	ASSERT_NE(NULL, steady_cache_insert(c, 1, 5));
	EXPECT_EQ(NULL, steady_cache_insert(c, 1, 7));	/* full */
	EXPECT_EQ(NULL, steady_cache_insert(c, 0, 16));	/* past max_pages */
	ASSERT_EQ(3, steady_cache_pages(c, 1, &pages));
	EXPECT_EQ(2, pages[0]);
	EXPECT_EQ(5, pages[1]);
	EXPECT_EQ(9, pages[2]);
	EXPECT_EQ(0, steady_cache_pages(c, 0, &pages));
	EXPECT_TRUE(steady_cache_holds(c, 1, 5));
	EXPECT_FALSE(steady_cache_holds(c, 0, 5));

	/* Evicting page 9 frees its slot for the next page. */
	steady_cache_evict(c, 1, 9);
	steady_cache_evict(c, 1, 9);	/* not held: ignored */
	EXPECT_FALSE(steady_cache_holds(c, 1, 9));
	b = steady_cache_insert(c, 1, 0);
	EXPECT_EQ(a, b);
	ASSERT_EQ(3, steady_cache_pages(c, 1, &pages));
	EXPECT_EQ(0, pages[0]);
	steady_cache_free(c);
}

/* Attention over cached copies equals attention over the original pool. */
TEST(cache_attends_like_the_pool)
{
	enum { D = 16, PT = 4, PAGES = 6 };
	uint16_t pool[PAGES * (2 * PT * D + 2 * D)];
	uint32_t table[PAGES] = { 0, 1, 2, 3, 4, 5 }, pick[] = { 1, 4 };
	struct pnm_ref_stream s = {
		.dtype = CXL_PNM_DTYPE_BF16, .head_dim = D, .page_shift = 2,
		.group = 2, .n_tokens = PAGES * PT - 1, .pool = pool,
		.pool_len = sizeof(pool), .table = table,
	};
	struct steady_cache *c = steady_cache_new(1, PAGES, 4, 2 * PT * D * 2,
						  2 * D * 2);
	float q[2 * D], out_a[2 * D], out_b[2 * D], lse_a[2], lse_b[2];
	struct pnm_ref_stream hs;
	unsigned int i;

	ASSERT_NE(NULL, c);
	for (i = 0; i < sizeof(pool) / sizeof(pool[0]); i++)
		pnm_ref_store(CXL_PNM_DTYPE_BF16, pool, i,
			      (float)((i * 37) % 23) / 8.0f - 1.4f);
	for (i = 0; i < 2 * D; i++)
		q[i] = (float)((i * 11) % 7) / 4.0f - 0.7f;
	for (i = 0; i < 2; i++)
		memcpy(steady_cache_insert(c, 0, pick[i]),
		       pnm_ref_slot(&s, table[pick[i]]), 2 * PT * D * 2);
	steady_cache_ref_stream(c, 0, &s, &hs);
	pnm_ref_attend(&s, q, pick, 2, out_a, lse_a);
	pnm_ref_attend(&hs, q, pick, 2, out_b, lse_b);
	EXPECT_EQ(0, memcmp(out_a, out_b, sizeof(out_a)));
	EXPECT_EQ(0, memcmp(lse_a, lse_b, sizeof(lse_a)));
	steady_cache_free(c);
}

TEST_HARNESS_MAIN
