// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device commands against the CPU reference: DIGEST, SELECT, ATTEND and
 * SELECT_ATTEND for every dtype and GQA groups 1, 4 and 8, run through a
 * pnm-device process and the direct transport.
 *
 * Digests and page selections must match the reference exactly: min and
 * max are exact, and scores are computed with the same operations in the
 * same order, so they are bit-identical.  Attention outputs and LSEs match
 * within PNM_UNIT_TOLERANCE (pnm_unit.h explains the bound).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "pnm_unit.h"

#define HEAD_DIM	64
#define PAGE_SHIFT	4			/* 16 tokens per page */
#define N_TOKENS	(10 * 16 + 5)		/* 11 pages, the last with 5 tokens */
#define N_PAGES		11
#define SEED		7

FIXTURE(cmds) {
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	struct pnm_unit_stream s;
};

FIXTURE_VARIANT(cmds) {
	unsigned int dtype;
	unsigned int group;
};

#define CMDS_VARIANT(name, dt, g)				\
	FIXTURE_VARIANT_ADD(cmds, name) {			\
		.dtype = dt, .group = g,			\
	}

CMDS_VARIANT(fp32_group1, CXL_PNM_DTYPE_FP32, 1);
CMDS_VARIANT(fp32_group4, CXL_PNM_DTYPE_FP32, 4);
CMDS_VARIANT(fp32_group8, CXL_PNM_DTYPE_FP32, 8);
CMDS_VARIANT(fp16_group1, CXL_PNM_DTYPE_FP16, 1);
CMDS_VARIANT(fp16_group4, CXL_PNM_DTYPE_FP16, 4);
CMDS_VARIANT(fp16_group8, CXL_PNM_DTYPE_FP16, 8);
CMDS_VARIANT(bf16_group1, CXL_PNM_DTYPE_BF16, 1);
CMDS_VARIANT(bf16_group4, CXL_PNM_DTYPE_BF16, 4);
CMDS_VARIANT(bf16_group8, CXL_PNM_DTYPE_BF16, 8);

static int submit1(struct pnm_dev *dev, const struct cxl_pnm_cmd *cmd,
		   struct cxl_pnm_result *res)
{
	int ret = pnm_submit(dev, cmd, res, 1, 0);

	if (ret)
		fprintf(stderr, "pnm_submit: %s\n", pnm_last_error());
	return ret;
}

FIXTURE_SETUP(cmds)
{
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;

	ASSERT_EQ(0, pnm_unit_open(&self->ud, NULL, &self->dev));
	ASSERT_EQ(0, pnm_unit_stream_init(&self->s, self->dev, variant->dtype,
					  HEAD_DIM, PAGE_SHIFT, variant->group,
					  N_TOKENS, 0));
	ASSERT_EQ(N_PAGES, self->s.n_pages);
	pnm_unit_stream_fill(&self->s, SEED);

	/* SELECT reads digests: let the device write them for every test. */
	cmd = pnm_unit_cmd(&self->s, CXL_PNM_OP_DIGEST, 0, 0, 0, 0, 0);
	ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
}

FIXTURE_TEARDOWN(cmds)
{
	if (self->s.region)
		pnm_unit_stream_free(&self->s);
	pnm_close(self->dev);
	/* Exit status 0: a clean stop, and no leak the sanitizers found. */
	EXPECT_EQ(0, pnm_unit_device_stop(&self->ud));
}

static uint32_t valid_tokens(const struct pnm_unit_stream *s, uint32_t page)
{
	if (page + 1 < s->n_pages)
		return 1U << s->page_shift;
	return s->n_tokens - (page << s->page_shift);
}

static void *digest_of_page(const struct pnm_unit_stream *s, uint32_t page)
{
	return (void *)pnm_ref_digest_of(&s->ref, s->table[page]);
}

/* Overwrite the digest of @page with min = max = @value in every channel. */
static void set_digest(struct pnm_unit_stream *s, uint32_t page, float value)
{
	void *digest = digest_of_page(s, page);
	unsigned int c;

	for (c = 0; c < 2 * s->head_dim; c++)
		pnm_ref_store(s->dtype, digest, c, value);
}

/* Run SELECT on the device and on the reference; both lists must match. */
static void check_select(struct __test_metadata *_metadata,
			 FIXTURE_DATA(cmds) *self, unsigned int k,
			 unsigned int flags, const uint32_t *exclude,
			 unsigned int n_exclude)
{
	struct pnm_unit_stream *s = &self->s;
	uint32_t expected[N_PAGES];
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;
	const uint32_t *pages = (const uint32_t *)s->out;
	int n_expected;
	unsigned int i;

	if (n_exclude)
		memcpy(s->list, exclude, n_exclude * sizeof(*exclude));
	n_expected = pnm_ref_select(&s->ref, s->query, k, flags, exclude,
				    n_exclude, expected);
	ASSERT_LE(0, n_expected);

	cmd = pnm_unit_cmd(s, CXL_PNM_OP_SELECT, k, n_exclude, flags,
			   n_exclude, pnm_unit_out_bytes(s, CXL_PNM_OP_SELECT,
							  n_expected));
	ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
	ASSERT_EQ((unsigned int)n_expected, res.count);
	for (i = 0; i < res.count; i++)
		EXPECT_EQ(expected[i], pages[i]) {
			TH_LOG("k %u flags %#x: page %u of the selection", k, flags, i);
		}
}

/* Compare [group][head_dim] outputs and LSEs with the reference's. */
static void check_attention(struct __test_metadata *_metadata,
			    const struct pnm_unit_stream *s, const float *out,
			    const float *lse, const float *ref_out,
			    const float *ref_lse)
{
	unsigned int g, c;

	for (g = 0; g < s->group; g++) {
		EXPECT_TRUE(pnm_unit_close(lse[g], ref_lse[g])) {
			TH_LOG("head %u: lse %.9g, reference %.9g", g, lse[g], ref_lse[g]);
		}
		for (c = 0; c < s->head_dim; c++) {
			float seen = out[g * s->head_dim + c];
			float want = ref_out[g * s->head_dim + c];

			ASSERT_TRUE(pnm_unit_close(seen, want)) {
				TH_LOG("head %u channel %u: out %.9g, reference %.9g",
				       g, c, seen, want);
			}
		}
	}
}

/* Run ATTEND over @pages on the device and the reference. */
static void check_attend(struct __test_metadata *_metadata,
			 FIXTURE_DATA(cmds) *self, const uint32_t *pages,
			 unsigned int n_pages)
{
	struct pnm_unit_stream *s = &self->s;
	float ref_out[8 * HEAD_DIM], ref_lse[8];
	const float *out = (const float *)s->out;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;

	memcpy(s->list, pages, n_pages * sizeof(*pages));
	cmd = pnm_unit_cmd(s, CXL_PNM_OP_ATTEND, n_pages, 0, 0, n_pages,
			   pnm_unit_out_bytes(s, CXL_PNM_OP_ATTEND, 0));
	ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
	ASSERT_EQ(n_pages, res.count);

	pnm_ref_attend(&s->ref, s->query, pages, n_pages, ref_out, ref_lse);
	check_attention(_metadata, s, out, out + s->group * s->head_dim,
			ref_out, ref_lse);
}

TEST_F(cmds, digest_matches_ref)
{
	struct pnm_unit_stream *s = &self->s;
	uint8_t expected[2 * HEAD_DIM * 4];
	size_t bytes = pnm_hw_digest_bytes(s->dtype, s->head_dim);
	uint32_t page;

	for (page = 0; page < s->n_pages; page++) {
		pnm_ref_digest(s->dtype, s->head_dim,
			       pnm_unit_slot_row(s, s->table[page], 0, false),
			       valid_tokens(s, page), expected);
		EXPECT_EQ(0, memcmp(expected, digest_of_page(s, page), bytes)) {
			TH_LOG("digest of page %u (slot %u) differs", page,
			       s->table[page]);
		}
	}
}

TEST_F(cmds, digest_skips_nan_past_n_tokens)
{
	struct pnm_unit_stream *s = &self->s;
	const void *digest = digest_of_page(s, s->n_pages - 1);
	unsigned int c;

	/* The fixture filled the unused rows of the last page with NaN. */
	ASSERT_TRUE(isnan(pnm_ref_load(s->dtype,
				       pnm_unit_slot_row(s, s->table[s->n_pages - 1],
							 15, false), 0)));
	for (c = 0; c < 2 * s->head_dim; c++)
		ASSERT_FALSE(isnan(pnm_ref_load(s->dtype, digest, c))) {
			TH_LOG("digest element %u of the partial page is NaN", c);
		}
}

TEST_F(cmds, select_matches_ref)
{
	check_select(_metadata, self, 5, 0, NULL, 0);
	check_select(_metadata, self, 1, 0, NULL, 0);
	check_select(_metadata, self, 5,
		     CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT, NULL, 0);
}

TEST_F(cmds, select_k_at_least_pages)
{
	struct pnm_unit_stream *s = &self->s;
	const uint32_t exclude[] = { 3, 7 };
	const uint32_t *pages = (const uint32_t *)s->out;
	uint32_t i;

	check_select(_metadata, self, N_PAGES, 0, NULL, 0);
	check_select(_metadata, self, N_PAGES + 7, 0, NULL, 0);
	for (i = 0; i < N_PAGES; i++)
		EXPECT_EQ(i, pages[i]);
	/* k clamps to the pages left after exclusion. */
	check_select(_metadata, self, 60000, 0, exclude, 2);
}

TEST_F(cmds, select_ties_to_lower_page)
{
	struct pnm_unit_stream *s = &self->s;
	size_t bytes = pnm_hw_digest_bytes(s->dtype, s->head_dim);
	const uint32_t *pages = (const uint32_t *)s->out;
	uint32_t page;

	/* Every page gets page 0's digest, so every score is equal. */
	for (page = 1; page < s->n_pages; page++)
		memcpy(digest_of_page(s, page), digest_of_page(s, 0), bytes);

	check_select(_metadata, self, 3, 0, NULL, 0);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(1, pages[1]);
	EXPECT_EQ(2, pages[2]);

	check_select(_metadata, self, 3, CXL_PNM_CMD_KEEP_RECENT, NULL, 0);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(1, pages[1]);
	EXPECT_EQ(N_PAGES - 1, pages[2]);
}

TEST_F(cmds, select_keeps_sink_and_recent)
{
	struct pnm_unit_stream *s = &self->s;
	const uint32_t *pages = (const uint32_t *)s->out;
	unsigned int i;

	/*
	 * Digests of zero score exactly 0, below every page with a negative
	 * minimum and a positive maximum, which random keys give.
	 */
	set_digest(s, 0, 0.0f);
	set_digest(s, s->n_pages - 1, 0.0f);

	check_select(_metadata, self, 4, 0, NULL, 0);
	for (i = 0; i < 4; i++) {
		EXPECT_NE(0, pages[i]);
		EXPECT_NE(N_PAGES - 1, pages[i]);
	}

	check_select(_metadata, self, 4, CXL_PNM_CMD_KEEP_SINK, NULL, 0);
	EXPECT_EQ(0, pages[0]);
	EXPECT_NE(N_PAGES - 1, pages[3]);

	check_select(_metadata, self, 4, CXL_PNM_CMD_KEEP_RECENT, NULL, 0);
	EXPECT_NE(0, pages[0]);
	EXPECT_EQ(N_PAGES - 1, pages[3]);

	check_select(_metadata, self, 4,
		     CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT, NULL, 0);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(N_PAGES - 1, pages[3]);

	/* k equal to the kept pages selects only them. */
	check_select(_metadata, self, 2,
		     CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT, NULL, 0);
	EXPECT_EQ(0, pages[0]);
	EXPECT_EQ(N_PAGES - 1, pages[1]);
}

TEST_F(cmds, select_exclusion_list)
{
	struct pnm_unit_stream *s = &self->s;
	const uint32_t *pages = (const uint32_t *)s->out;
	const uint32_t sink[] = { 0 };
	uint32_t top[3];
	unsigned int i, j;

	/* Exclude the three best pages; none of them may come back. */
	check_select(_metadata, self, 3, 0, NULL, 0);
	memcpy(top, pages, sizeof(top));
	check_select(_metadata, self, 5, 0, top, 3);
	for (i = 0; i < 5; i++)
		for (j = 0; j < 3; j++)
			EXPECT_NE(top[j], pages[i]);

	/* An excluded sink page is not kept, and k may then be 1. */
	set_digest(s, 0, 1000.0f);
	check_select(_metadata, self, 1, CXL_PNM_CMD_KEEP_SINK, sink, 1);
	EXPECT_NE(0, pages[0]);
}

/*
 * Give @page the lowest finite score this query allows: each channel's
 * min = max = -100 * sign of the query summed over the group, so every
 * term of the score is negative.
 */
static void set_lowest_digest(struct pnm_unit_stream *s, uint32_t page)
{
	void *digest = digest_of_page(s, page);
	unsigned int g, c;

	for (c = 0; c < s->head_dim; c++) {
		float q = 0.0f;

		for (g = 0; g < s->group; g++)
			q += s->query[g * s->head_dim + c];
		pnm_ref_store(s->dtype, digest, c, q >= 0 ? -100.0f : 100.0f);
		pnm_ref_store(s->dtype, digest, s->head_dim + c,
			      q >= 0 ? -100.0f : 100.0f);
	}
}

TEST_F(cmds, select_nan_score_ranks_lowest)
{
	struct pnm_unit_stream *s = &self->s;
	const uint32_t *pages = (const uint32_t *)s->out;
	unsigned int i;

	set_digest(s, 2, NAN);
	set_lowest_digest(s, 5);
	ASSERT_TRUE(isnan(pnm_ref_score(&s->ref, s->query, 2)));
	ASSERT_GT(-100.0f, pnm_ref_score(&s->ref, s->query, 5));

	check_select(_metadata, self, N_PAGES - 1, 0, NULL, 0);
	for (i = 0; i < N_PAGES - 1; i++)
		EXPECT_NE(2, pages[i]);
}

TEST_F(cmds, attend_matches_ref)
{
	const uint32_t all[N_PAGES] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	const uint32_t some[] = { 1, 4, 5, 9 };
	const uint32_t last[] = { N_PAGES - 1 };

	check_attend(_metadata, self, all, N_PAGES);
	check_attend(_metadata, self, some, 4);
	/* Only the 5 valid tokens of the partial page; the rest is NaN. */
	check_attend(_metadata, self, last, 1);
}

TEST_F(cmds, attend_results_are_finite)
{
	const uint32_t all[N_PAGES] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct pnm_unit_stream *s = &self->s;
	const float *out = (const float *)s->out;
	unsigned int i;

	check_attend(_metadata, self, all, N_PAGES);
	for (i = 0; i < s->group * (s->head_dim + 1); i++)
		ASSERT_TRUE(isfinite(out[i])) {
			TH_LOG("output element %u is %g", i, out[i]);
		}
}

TEST_F(cmds, select_attend_matches_ref)
{
	const unsigned int flags = CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT;
	struct pnm_unit_stream *s = &self->s;
	const uint32_t exclude[] = { 4 };
	float ref_out[8 * HEAD_DIM], ref_lse[8];
	const float *out = (const float *)s->out;
	const uint32_t *pages;
	uint32_t expected[N_PAGES];
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;
	unsigned int i;
	int n;

	n = pnm_ref_select(&s->ref, s->query, 5, flags, exclude, 1, expected);
	ASSERT_EQ(5, n);
	pnm_ref_attend(&s->ref, s->query, expected, n, ref_out, ref_lse);

	memcpy(s->list, exclude, sizeof(exclude));
	cmd = pnm_unit_cmd(s, CXL_PNM_OP_SELECT_ATTEND, 5, 1, flags, 1,
			   pnm_unit_out_bytes(s, CXL_PNM_OP_SELECT_ATTEND, 5));
	ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
	ASSERT_EQ(5, res.count);

	pages = (const uint32_t *)(out + s->group * (s->head_dim + 1));
	for (i = 0; i < 5; i++)
		EXPECT_EQ(expected[i], pages[i]);
	check_attention(_metadata, s, out, out + s->group * s->head_dim,
			ref_out, ref_lse);
}

/* Zero outputs and -inf LSEs, as the specification gives for no tokens. */
static void check_empty_attention(struct __test_metadata *_metadata,
				  const struct pnm_unit_stream *s)
{
	const float *out = (const float *)s->out;
	unsigned int i;

	for (i = 0; i < s->group * s->head_dim; i++)
		ASSERT_EQ(0.0f, out[i]);
	for (i = 0; i < s->group; i++) {
		ASSERT_TRUE(isinf(out[s->group * s->head_dim + i]));
		ASSERT_LT(out[s->group * s->head_dim + i], 0.0f);
	}
}

TEST_F(cmds, attend_no_pages)
{
	struct pnm_unit_stream *s = &self->s;
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;

	memset(s->out, 0xa5, s->out_cap);
	cmd = pnm_unit_cmd(s, CXL_PNM_OP_ATTEND, 0, 0, 0, 0,
			   pnm_unit_out_bytes(s, CXL_PNM_OP_ATTEND, 0));
	ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
	EXPECT_EQ(0, res.count);
	check_empty_attention(_metadata, s);
}

TEST_F(cmds, empty_stream)
{
	struct pnm_unit_stream *s = &self->s;
	const unsigned int ops[] = {
		CXL_PNM_OP_DIGEST, CXL_PNM_OP_SELECT, CXL_PNM_OP_ATTEND,
		CXL_PNM_OP_SELECT_ATTEND,
	};
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;
	unsigned int i;

	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		unsigned int k = ops[i] == CXL_PNM_OP_ATTEND ? 0 : 4;

		memset(s->out, 0xa5, s->out_cap);
		cmd = pnm_unit_cmd(s, ops[i], k, 0, CXL_PNM_CMD_KEEP_SINK |
				   CXL_PNM_CMD_KEEP_RECENT, 0,
				   pnm_unit_out_bytes(s, ops[i], 0));
		cmd.n_tokens = 0;
		cmd.table = pnm_buf(s->region, s->table_off, 0);
		if (ops[i] == CXL_PNM_OP_DIGEST || ops[i] == CXL_PNM_OP_SELECT)
			cmd.table = (struct cxl_pnm_buf){ 0 };	/* no table at all */
		ASSERT_EQ(0, submit1(self->dev, &cmd, &res));
		ASSERT_EQ(CXL_PNM_STATUS_OK, res.status) {
			TH_LOG("opcode %u on an empty stream: %s", ops[i],
			       pnm_status_name(res.status));
		}
		EXPECT_EQ(0, res.count);
		if (ops[i] == CXL_PNM_OP_ATTEND || ops[i] == CXL_PNM_OP_SELECT_ATTEND)
			check_empty_attention(_metadata, s);
	}
}

TEST_HARNESS_MAIN
