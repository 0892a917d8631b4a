// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of the KV-cache manager over several devices: 2 to 4 device
 * model processes, each on its own /dev/shm file, driven through the
 * direct transport.  Spreading by kv-head or by sequence must give results
 * bit-identical to one device; a token-range split must equal the CPU
 * reference over the pages its parts selected.
 */
#include <string.h>

#include "kselftest_harness.h"
#include "decode_check.h"
#include "device_model.h"
#include "kvcache.h"
#include "pnm.h"

/* The state both fixtures share: the models, their devices, two caches. */
struct md_state {
	struct model models[KVCACHE_MAX_DEVICES];
	struct pnm_dev *devs[KVCACHE_MAX_DEVICES];
	unsigned int n_devs;
	struct dc_run one;	/* every stream on devs[0] */
	struct dc_run many;	/* spread over every device */
};

/*
 * Start @n_devs device models and open them; configure both caches.
 * 4 sequences and 4 KV heads, so every policy uses every device; 400
 * tokens are 25 pages: split 13 + 12 on 2 devices, 9 + 9 + 7 on 3,
 * 7 + 7 + 7 + 4 on 4.
 */
static void md_setup(struct __test_metadata *_metadata, struct md_state *md,
		     unsigned int n_devs, enum kvcache_spread spread,
		     enum kvcache_split_budget split_budget)
{
	unsigned int i;
	int ret;

	memset(md, 0, sizeof(*md));
	for (i = 0; i < n_devs; i++) {
		ret = model_start(&md->models[i], "32M");
		if (ret == -ECHILD)
			SKIP(return, "device model %s did not start (see PNM_DEVICE)",
			     PNM_DEVICE_BIN);
		ASSERT_EQ(0, ret);
		md->n_devs = i + 1;
		ASSERT_EQ(0, pnm_open(md->models[i].name, &md->devs[i]))
			TH_LOG("%s", pnm_last_error());
	}
	md->one.cfg = (struct kvcache_config){
		.shape = {
			.layers = 2, .q_heads = 8, .kv_heads = 4, .head_dim = 32,
			.page_tokens = 16, .dtype = CXL_PNM_DTYPE_BF16,
		},
		.nr_sequences = 4,
		.max_tokens = 400,
	};
	md->many.cfg = md->one.cfg;
	md->many.cfg.spread = spread;
	md->many.cfg.split_budget = split_budget;
}

static void md_teardown(struct md_state *md)
{
	unsigned int i;

	dc_teardown(&md->one);
	dc_teardown(&md->many);
	for (i = 0; i < md->n_devs; i++) {
		pnm_close(md->devs[i]);
		model_stop(&md->models[i]);
	}
}

/* Every spread policy: results against one device or the reference. */
FIXTURE(multidev) {
	struct md_state md;
};

FIXTURE_VARIANT(multidev) {
	unsigned int n_devs;
	enum kvcache_spread spread;
	enum kvcache_split_budget split_budget;
};

FIXTURE_VARIANT_ADD(multidev, kv_head_2) { .n_devs = 2, .spread = KVCACHE_SPREAD_KV_HEAD };
FIXTURE_VARIANT_ADD(multidev, kv_head_4) { .n_devs = 4, .spread = KVCACHE_SPREAD_KV_HEAD };
FIXTURE_VARIANT_ADD(multidev, sequence_3) { .n_devs = 3, .spread = KVCACHE_SPREAD_SEQUENCE };
FIXTURE_VARIANT_ADD(multidev, sequence_4) { .n_devs = 4, .spread = KVCACHE_SPREAD_SEQUENCE };
FIXTURE_VARIANT_ADD(multidev, tokens_2) { .n_devs = 2, .spread = KVCACHE_SPREAD_TOKENS };
FIXTURE_VARIANT_ADD(multidev, tokens_4) { .n_devs = 4, .spread = KVCACHE_SPREAD_TOKENS };
FIXTURE_VARIANT_ADD(multidev, tokens_full_3) {
	.n_devs = 3, .spread = KVCACHE_SPREAD_TOKENS,
	.split_budget = KVCACHE_SPLIT_FULL,
};

FIXTURE_SETUP(multidev)
{
	md_setup(_metadata, &self->md, variant->n_devs, variant->spread,
		 variant->split_budget);
}

FIXTURE_TEARDOWN(multidev)
{
	md_teardown(&self->md);
}

/*
 * Token splits only: a stream has several parts there, and the test
 * checks how they share the sink, the recent page and the budget.
 */
FIXTURE(token_split) {
	struct md_state md;
};

FIXTURE_VARIANT(token_split) {
	unsigned int n_devs;
	enum kvcache_split_budget split_budget;
};

FIXTURE_VARIANT_ADD(token_split, proportional_2) { .n_devs = 2 };
FIXTURE_VARIANT_ADD(token_split, proportional_4) { .n_devs = 4 };
FIXTURE_VARIANT_ADD(token_split, full_3) {
	.n_devs = 3, .split_budget = KVCACHE_SPLIT_FULL,
};

FIXTURE_SETUP(token_split)
{
	md_setup(_metadata, &self->md, variant->n_devs, KVCACHE_SPREAD_TOKENS,
		 variant->split_budget);
}

FIXTURE_TEARDOWN(token_split)
{
	md_teardown(&self->md);
}

/* Both runs, same seed, so both caches hold the same tokens. */
static int setup_both(struct md_state *md, uint32_t context)
{
	int ret = dc_setup(&md->one, md->devs[0], 31);

	if (!ret)
		ret = dc_setup_multi(&md->many, md->devs, md->n_devs, 31);
	if (!ret)
		ret = dc_fill(&md->one, context);
	if (!ret)
		ret = dc_fill(&md->many, context);
	return ret;
}

static bool same_step(const struct dc_run *a, const struct dc_run *b)
{
	const struct kvcache_shape *s = &a->cfg.shape;
	size_t heads = (size_t)a->cfg.nr_sequences * s->q_heads;
	size_t pairs = (size_t)a->cfg.nr_sequences * s->kv_heads;

	return !memcmp(a->step.out, b->step.out, heads * s->head_dim * sizeof(float)) &&
	       !memcmp(a->step.lse, b->step.lse, heads * sizeof(float)) &&
	       !memcmp(a->step.n_pages, b->step.n_pages, pairs * sizeof(uint32_t)) &&
	       !memcmp(a->step.pages, b->step.pages,
		       pairs * kvcache_max_pages(a->cache) * sizeof(uint32_t));
}

/* Largest |a - b| over every output and LSE of the last steps. */
static double step_difference(const struct dc_run *a, const struct dc_run *b)
{
	const struct kvcache_shape *s = &a->cfg.shape;
	size_t heads = (size_t)a->cfg.nr_sequences * s->q_heads, i;
	double worst = 0.0;

	for (i = 0; i < heads * s->head_dim; i++)
		worst = fmax(worst, fabs((double)a->step.out[i] - b->step.out[i]));
	for (i = 0; i < heads; i++)
		worst = fmax(worst, fabs((double)a->step.lse[i] - b->step.lse[i]));
	return isnan(worst) ? INFINITY : worst;
}

TEST_F(multidev, matches_single_device_or_reference)
{
	struct md_state *md = &self->md;
	unsigned int step, layer, identical = 0, total = 0, i;
	struct kvcache_device_stats st;
	uint64_t commands = 0;

	/* 340 tokens: 22 pages, so the last part of a 4-way split has one. */
	ASSERT_EQ(0, setup_both(md, 340))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(variant->n_devs, kvcache_devices(md->many.cache));
	EXPECT_EQ(variant->spread == KVCACHE_SPREAD_TOKENS ? variant->n_devs : 1,
		  kvcache_parts(md->many.cache));
	md->one.step.budget_tokens = 96;
	md->many.step.budget_tokens = 96;
	for (step = 0; step < 4; step++) {
		for (layer = 0; layer < 2; layer++) {
			ASSERT_EQ(0, dc_step(&md->one, layer));
			ASSERT_EQ(0, dc_step(&md->many, layer))
				TH_LOG("%s", pnm_last_error());
			identical += same_step(&md->one, &md->many);
			total++;
		}
	}
	ASSERT_EQ(0, dc_check_digests(&md->many));
	EXPECT_EQ(0, md->many.counts.digest_mismatches);
	EXPECT_EQ(0, md->one.counts.selection_mismatches);
	EXPECT_EQ(0, md->one.counts.output_mismatches);
	/* Per part: the reference selection; per stream: the reference output. */
	EXPECT_EQ(0, md->many.counts.selection_mismatches);
	EXPECT_EQ(0, md->many.counts.output_mismatches);
	EXPECT_EQ(4 * 2 * 4 * 4, md->many.counts.streams);
	if (variant->spread != KVCACHE_SPREAD_TOKENS)
		EXPECT_EQ(total, identical);

	for (i = 0; i < variant->n_devs; i++) {
		ASSERT_EQ(0, kvcache_device_stats(md->many.cache, i, &st));
		EXPECT_NE(0, st.streams);
		EXPECT_NE(0, st.device_ns) TH_LOG("device %u did no work", i);
		commands += st.commands;
	}
	/* One command per stream and step, or per non-empty part. */
	if (variant->spread != KVCACHE_SPREAD_TOKENS) {
		EXPECT_EQ(4 * 4 * 2 * 4, commands);
	} else {
		EXPECT_LE(4 * 4 * 2 * 4, commands);
	}
	EXPECT_LE(md->many.step.device_ns_parallel, md->many.step.device_ns);
	TH_LOG("max error: out %.3g, lse %.3g", md->many.counts.max_out_err,
	       md->many.counts.max_lse_err);
}

TEST_F(multidev, budget_above_context_equals_single_device)
{
	struct md_state *md = &self->md;
	unsigned int layer;

	/*
	 * Every page attended on both sides: only rounding may differ.  With
	 * 4 devices the last part (pages 21-24) holds no token: an empty
	 * partition, never submitted.
	 */
	ASSERT_EQ(0, setup_both(md, 300));
	md->one.step.budget_tokens = 1024;
	md->many.step.budget_tokens = 1024;
	for (layer = 0; layer < 2; layer++) {
		ASSERT_EQ(0, dc_step(&md->one, layer));
		ASSERT_EQ(0, dc_step(&md->many, layer));
		EXPECT_EQ(19, md->many.step.n_pages[0]);
		EXPECT_GE(1e-5, step_difference(&md->one, &md->many));
	}
	EXPECT_EQ(0, md->many.counts.selection_mismatches);
	EXPECT_EQ(0, md->many.counts.output_mismatches);
}

TEST_F(token_split, keeps_sink_and_recent_once)
{
	struct md_state *md = &self->md;
	struct kvcache_part_plan plan;
	unsigned int j, sinks = 0, recents = 0;

	ASSERT_EQ(0, setup_both(md, 300));
	md->many.step.budget_tokens = 96;
	ASSERT_EQ(0, dc_step(&md->many, 0));
	for (j = 0; j < kvcache_parts(md->many.cache); j++) {
		ASSERT_EQ(0, kvcache_part_plan(md->many.cache, 1, 0, 2, j, &plan));
		sinks += !!(plan.flags & CXL_PNM_CMD_KEEP_SINK);
		recents += !!(plan.flags & CXL_PNM_CMD_KEEP_RECENT);
		EXPECT_EQ(j, plan.device);
		if (variant->split_budget == KVCACHE_SPLIT_FULL && plan.n_tokens)
			EXPECT_EQ(6, plan.k);
	}
	EXPECT_EQ(1, sinks);
	EXPECT_EQ(1, recents);
	/* The proportional split attends the budget; the full one more. */
	if (variant->split_budget == KVCACHE_SPLIT_PROPORTIONAL) {
		EXPECT_EQ(6, md->many.step.n_pages[1 * 4 + 2]);
	} else {
		EXPECT_LT(6, md->many.step.n_pages[1 * 4 + 2]);
	}
	EXPECT_EQ(0, md->many.counts.selection_mismatches);
	EXPECT_EQ(0, md->many.counts.output_mismatches);
}

TEST_F(multidev, bad_device_lists_named)
{
	struct md_state *md = &self->md;
	struct kvcache *c = NULL;
	struct pnm_dev *five[5];
	struct pnm_dev *with_null[2] = { md->devs[0], NULL };
	unsigned int i;

	for (i = 0; i < 5; i++)
		five[i] = md->devs[0];
	EXPECT_EQ(-EINVAL, kvcache_create_multi(five, 5, &md->many.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "5 devices"));
	EXPECT_EQ(-EINVAL, kvcache_create_multi(five, 0, &md->many.cfg, &c));
	EXPECT_EQ(-EINVAL, kvcache_create_multi(with_null, 2, &md->many.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "device 1 is NULL"));
	md->many.cfg.spread = 7;
	EXPECT_EQ(-EINVAL, kvcache_create_multi(md->devs, variant->n_devs,
						&md->many.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "spread policy 7"));
	EXPECT_EQ(NULL, c);
}

TEST_HARNESS_MAIN
