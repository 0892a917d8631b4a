// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of the KV generator, runtime/kvgen.c: determinism, and the
 * structure it promises (outlier channels, attention sinks, recall of
 * earlier segments), checked through the CPU reference.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"
#include "kvgen.h"
#include "pnm.h"
#include "pnm_ref.h"

#define D	128
#define GROUP	4
#define PAGE	16

static void generate(uint64_t seed, uint64_t stream, unsigned int n,
		     float *k, float *v, float *q)
{
	struct kvgen_params p;
	struct kvgen *g;
	unsigned int t;

	kvgen_default_params(&p, D, GROUP);
	g = kvgen_new(&p, seed, stream);
	for (t = 0; t < n; t++)
		kvgen_next(g, k + t * D, v + t * D);
	kvgen_query(g, q);
	kvgen_free(g);
}

TEST(same_seed_same_stream)
{
	enum { N = 300 };
	float *k1 = calloc(N * D, 4), *v1 = calloc(N * D, 4), q1[GROUP * D];
	float *k2 = calloc(N * D, 4), *v2 = calloc(N * D, 4), q2[GROUP * D];

	ASSERT_TRUE(k1 && v1 && k2 && v2);
	generate(7, 3, N, k1, v1, q1);
	generate(7, 3, N, k2, v2, q2);
	EXPECT_EQ(0, memcmp(k1, k2, N * D * 4));
	EXPECT_EQ(0, memcmp(v1, v2, N * D * 4));
	EXPECT_EQ(0, memcmp(q1, q2, sizeof(q1)));

	generate(8, 3, N, k2, v2, q2);
	EXPECT_NE(0, memcmp(k1, k2, N * D * 4));
	generate(7, 4, N, k2, v2, q2);
	EXPECT_NE(0, memcmp(k1, k2, N * D * 4));
	free(k1);
	free(v1);
	free(k2);
	free(v2);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

TEST(outlier_channels_present)
{
	enum { N = 2000 };
	float *k = calloc(N * D, 4), *v = calloc(N * D, 4), q[GROUP * D];
	float mean_abs[D], sorted[D], median;
	unsigned int outliers[2 * D / 32], t, c, i;
	struct kvgen_params p;
	struct kvgen *g;

	ASSERT_TRUE(k && v);
	kvgen_default_params(&p, D, GROUP);
	ASSERT_EQ(D / 32, p.outlier_pairs);
	g = kvgen_new(&p, 1, 0);
	ASSERT_NE(NULL, g);
	for (t = 0; t < N; t++)
		kvgen_next(g, k + t * D, v + t * D);
	kvgen_query(g, q);
	kvgen_outlier_channels(g, outliers);
	kvgen_free(g);

	for (c = 0; c < D; c++) {
		double sum = 0;

		for (t = 0; t < N; t++)
			sum += fabsf(k[t * D + c]);
		mean_abs[c] = sum / N;
	}
	memcpy(sorted, mean_abs, sizeof(sorted));
	qsort(sorted, D, sizeof(float), cmp_float);
	median = sorted[D / 2];
	/* The outliers are exactly the largest channels, and far above. */
	for (i = 0; i < 2 * p.outlier_pairs; i++) {
		EXPECT_GE(mean_abs[outliers[i]], sorted[D - 2 * p.outlier_pairs]);
		EXPECT_GT(mean_abs[outliers[i]], 3.0f * median);
	}
	free(k);
	free(v);
}

/* A bf16 stream of @n generated tokens, digested, as the device keeps it. */
struct gen_stream {
	struct kvgen *g;
	char *pool;
	uint32_t *table;
	struct pnm_ref_stream s;
};

static int gen_stream_init(struct gen_stream *gs, uint64_t seed, uint32_t n)
{
	size_t slot = 2 * PAGE * D * 2, dig = 2 * D * 2;
	uint32_t pages = (n + PAGE - 1) / PAGE, t, i;
	struct kvgen_params p;
	float k[D], v[D];
	unsigned int c;

	kvgen_default_params(&p, D, GROUP);
	gs->g = kvgen_new(&p, seed, 0);
	gs->pool = calloc(pages, slot + dig);
	gs->table = calloc(pages, sizeof(uint32_t));
	if (!gs->g || !gs->pool || !gs->table)
		return -1;
	for (t = 0; t < n; t++) {
		char *s = gs->pool + (t / PAGE) * slot;

		kvgen_next(gs->g, k, v);
		for (c = 0; c < D; c++) {
			pnm_ref_store(CXL_PNM_DTYPE_BF16, s, (t % PAGE) * D + c, k[c]);
			pnm_ref_store(CXL_PNM_DTYPE_BF16, s + slot / 2,
				      (t % PAGE) * D + c, v[c]);
		}
	}
	for (i = 0; i < pages; i++) {
		gs->table[i] = i;
		pnm_ref_digest(CXL_PNM_DTYPE_BF16, D, gs->pool + i * slot,
			       i + 1 < pages ? PAGE : n - i * PAGE,
			       gs->pool + pages * slot + i * dig);
	}
	gs->s = (struct pnm_ref_stream){
		.dtype = CXL_PNM_DTYPE_BF16, .head_dim = D, .page_shift = 4,
		.group = GROUP, .n_tokens = n, .pool = gs->pool,
		.pool_len = pages * (slot + dig), .table = gs->table,
	};
	return 0;
}

static void gen_stream_free(struct gen_stream *gs)
{
	kvgen_free(gs->g);
	free(gs->pool);
	free(gs->table);
}

static int has_page(const uint32_t *pages, int n, uint32_t page)
{
	int i;

	for (i = 0; i < n; i++)
		if (pages[i] == page)
			return 1;
	return 0;
}

/*
 * Without KEEP_SINK, Quest still picks the sink page for most queries, and
 * the pages of the anchors a query recalls: the sink and recall structure
 * is visible to selection.  Selected pages also carry most of the dense
 * attention mass, far more than k / N.
 */
TEST(selection_finds_sinks_and_recalls)
{
	enum { N = 2048, K = 16, QUERIES = 20 };
	unsigned int sink_hits = 0, recall_hits = 0, recalls = 0, i, j;
	double mass = 0;
	struct gen_stream gs;
	float q[GROUP * D], out[GROUP * D], lse[GROUP], dense_out[GROUP * D];
	float dense_lse[GROUP];
	uint32_t pages[K], pos[8];

	ASSERT_EQ(0, gen_stream_init(&gs, 5, N));
	for (i = 0; i < QUERIES; i++) {
		unsigned int nr;
		int n;

		kvgen_query(gs.g, q);
		nr = kvgen_recalled(gs.g, pos);
		n = pnm_ref_select(&gs.s, q, K, 0, NULL, 0, pages);
		ASSERT_EQ(K, n);
		sink_hits += has_page(pages, n, 0);
		for (j = 0; j < nr; j++, recalls++)
			recall_hits += has_page(pages, n, pos[j] / PAGE);

		pnm_ref_attend(&gs.s, q, pages, n, out, lse);
		pnm_ref_attend_dense(&gs.s, q, dense_out, dense_lse);
		for (j = 0; j < GROUP; j++)
			mass += exp(lse[j] - dense_lse[j]) / (QUERIES * GROUP);
	}
	TH_LOG("sink page selected %u/%u, recalled pages %u/%u, mass %.3f",
	       sink_hits, QUERIES, recall_hits, recalls, mass);
	EXPECT_GE(sink_hits, QUERIES * 3 / 4);
	EXPECT_GT(recalls, 0);
	EXPECT_GE(recall_hits, recalls * 3 / 4);
	EXPECT_GT(mass, 0.6);
	gen_stream_free(&gs);
}

TEST(invalid_params_named)
{
	struct kvgen_params p;

	kvgen_default_params(&p, D, GROUP);
	p.head_dim = 127;
	EXPECT_EQ(NULL, kvgen_new(&p, 1, 0));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "head_dim 127"));

	kvgen_default_params(&p, D, GROUP);
	p.recall = p.anchors + 1;
	EXPECT_EQ(NULL, kvgen_new(&p, 1, 0));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "recall 17"));

	kvgen_default_params(&p, D, GROUP);
	p.topic_rho = 1.0f;
	EXPECT_EQ(NULL, kvgen_new(&p, 1, 0));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "topic_rho 1"));
}

TEST_HARNESS_MAIN
