// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of PnG-KV mode: steady pages attended on the host, the rest
 * on device model processes (direct transport), partial results merged by
 * LSE.  Every step is checked against the CPU reference over the pages
 * attended, and against PNM-KV on the same tokens wherever both attended
 * the same pages.
 */
#include <string.h>

#include "kselftest_harness.h"
#include "decode_check.h"
#include "device_model.h"
#include "kvcache.h"
#include "pnm.h"

#define PNG_STEPS	24

FIXTURE(png) {
	struct model models[2];
	struct pnm_dev *devs[2];
	struct dc_run pnm;	/* PNM-KV on devs[0] */
	struct dc_run png;	/* PnG-KV on the variant's devices */
};

FIXTURE_VARIANT(png) {
	unsigned int n_devs;
	enum kvcache_spread spread;
};

FIXTURE_VARIANT_ADD(png, one_device) { .n_devs = 1 };
FIXTURE_VARIANT_ADD(png, tokens_2) { .n_devs = 2, .spread = KVCACHE_SPREAD_TOKENS };

FIXTURE_SETUP(png)
{
	unsigned int i;
	int ret;

	memset(self->devs, 0, sizeof(self->devs));
	memset(&self->pnm, 0, sizeof(self->pnm));
	memset(&self->png, 0, sizeof(self->png));
	for (i = 0; i < variant->n_devs; i++) {
		ret = model_start(&self->models[i], "32M");
		if (ret == -ECHILD)
			SKIP(return, "device model %s did not start (see PNM_DEVICE)",
			     PNM_DEVICE_BIN);
		ASSERT_EQ(0, ret);
		ASSERT_EQ(0, pnm_open(self->models[i].name, &self->devs[i]))
			TH_LOG("%s", pnm_last_error());
	}
	/* 1024 tokens of context: 64 pages, 16 of them attended per step. */
	self->pnm.cfg = (struct kvcache_config){
		.shape = {
			.layers = 1, .q_heads = 8, .kv_heads = 2, .head_dim = 64,
			.page_tokens = 16, .dtype = CXL_PNM_DTYPE_BF16,
		},
		.nr_sequences = 2,
		.max_tokens = 1024 + PNG_STEPS,
	};
	self->png.cfg = self->pnm.cfg;
	self->png.cfg.mode = KVCACHE_MODE_PNG_KV;
	self->png.cfg.spread = variant->spread;
}

FIXTURE_TEARDOWN(png)
{
	unsigned int i;

	dc_teardown(&self->pnm);
	dc_teardown(&self->png);
	for (i = 0; i < variant->n_devs; i++) {
		pnm_close(self->devs[i]);
		model_stop(&self->models[i]);
	}
}

static bool same_pages(const struct dc_run *a, const struct dc_run *b,
		       size_t pair)
{
	size_t stride = kvcache_max_pages(a->cache);

	return a->step.n_pages[pair] == b->step.n_pages[pair] &&
	       !memcmp(a->step.pages + pair * stride, b->step.pages + pair * stride,
		       a->step.n_pages[pair] * sizeof(uint32_t));
}

/* Largest output or LSE difference of the group of KV head @pair. */
static double pair_difference(const struct dc_run *a, const struct dc_run *b,
			      size_t pair)
{
	size_t group = dc_group(a), d = a->cfg.shape.head_dim, i;
	size_t head0 = pair * group;
	double worst = 0.0;

	for (i = 0; i < group * d; i++)
		worst = fmax(worst, fabs((double)a->step.out[head0 * d + i] -
					 b->step.out[head0 * d + i]));
	for (i = 0; i < group; i++)
		worst = fmax(worst, fabs((double)a->step.lse[head0 + i] -
					 b->step.lse[head0 + i]));
	return isnan(worst) ? INFINITY : worst;
}

TEST_F(png, equals_pnm_kv_on_same_pages)
{
	unsigned int step, compared = 0, compared_with_hits = 0;
	struct kvcache_png_stats st;
	size_t pair, pairs = 2 * 2;
	double worst = 0.0;

	ASSERT_EQ(0, dc_setup(&self->pnm, self->devs[0], 41));
	ASSERT_EQ(0, dc_setup_multi(&self->png, self->devs, variant->n_devs, 41))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_fill(&self->pnm, 1024));
	ASSERT_EQ(0, dc_fill(&self->png, 1024));
	self->pnm.step.budget_tokens = 256;
	self->png.step.budget_tokens = 256;
	for (step = 0; step < PNG_STEPS; step++) {
		ASSERT_EQ(0, dc_step(&self->pnm, 0));
		ASSERT_EQ(0, dc_step(&self->png, 0)) TH_LOG("%s", pnm_last_error());
		for (pair = 0; pair < pairs; pair++) {
			const uint32_t *host;
			unsigned int n_host = kvcache_host_pages(self->png.cache,
								 pair / 2, 0,
								 pair % 2, &host);

			if (!same_pages(&self->pnm, &self->png, pair))
				continue;
			compared++;
			compared_with_hits += n_host > 0;
			worst = fmax(worst, pair_difference(&self->pnm, &self->png, pair));
		}
	}
	/* Each run against the reference over its own pages. */
	EXPECT_EQ(0, self->png.counts.selection_mismatches);
	EXPECT_EQ(0, self->png.counts.output_mismatches);
	EXPECT_EQ(0, self->pnm.counts.output_mismatches);
	/* Same pages attended: same attention up to fp32 rounding. */
	EXPECT_LT(0, compared_with_hits);
	EXPECT_GE(DC_OUT_TOL, worst);

	ASSERT_EQ(0, kvcache_png_stats(self->png.cache, &st));
	EXPECT_LT(0, st.host_hits);
	EXPECT_LT(0, st.pages_copied);
	EXPECT_EQ(st.pages_copied * 2 * 16 * 64 * 2, st.bytes_copied);
	EXPECT_EQ(PNG_STEPS * pairs, st.stream_steps);
	/* PnG-KV attends the budget, 16 pages, as PNM-KV does. */
	EXPECT_EQ(16 * PNG_STEPS * pairs, st.pages_attended);
	TH_LOG("hit rate %.2f; %u of %u stream steps attended the PNM-KV pages (%u with host pages); worst difference %.3g",
	       (double)st.host_hits / st.pages_attended, compared,
	       PNG_STEPS * (unsigned int)pairs, compared_with_hits, worst);
}

TEST_F(png, host_cache_respects_budget)
{
	const uint32_t *host;
	unsigned int step, n_host;

	self->png.cfg.steady.capacity = 64;
	ASSERT_EQ(0, dc_setup_multi(&self->png, self->devs, variant->n_devs, 42));
	ASSERT_EQ(0, dc_fill(&self->png, 1024));
	self->png.step.budget_tokens = 256;
	for (step = 0; step < 12; step++)
		ASSERT_EQ(0, dc_step(&self->png, 0));
	n_host = kvcache_host_pages(self->png.cache, 0, 0, 0, &host);
	EXPECT_GE(14, n_host);	/* k - 2 */
	EXPECT_LT(0, n_host);

	/* A smaller budget evicts down to its k - 2 before the step. */
	self->png.step.budget_tokens = 64;
	ASSERT_EQ(0, dc_step(&self->png, 0));
	n_host = kvcache_host_pages(self->png.cache, 0, 0, 0, &host);
	EXPECT_GE(2, n_host);
	EXPECT_EQ(4, self->png.step.n_pages[0]);
	EXPECT_EQ(0, self->png.counts.selection_mismatches);
	EXPECT_EQ(0, self->png.counts.output_mismatches);
}

TEST_F(png, bad_steady_params_named)
{
	struct kvcache *c = NULL;

	self->png.cfg.steady.window = 65;
	EXPECT_EQ(-EINVAL, kvcache_create(self->devs[0], &self->png.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "window 65"));
	self->png.cfg.steady.window = 4;
	self->png.cfg.steady.threshold = 5;
	EXPECT_EQ(-EINVAL, kvcache_create(self->devs[0], &self->png.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "threshold 5"));
	self->png.cfg.steady.threshold = 0;
	self->png.cfg.steady.hold_mass = -1.0f;
	EXPECT_EQ(-EINVAL, kvcache_create(self->devs[0], &self->png.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "hold_mass"));
	self->png.cfg.mode = 9;
	EXPECT_EQ(-EINVAL, kvcache_create(self->devs[0], &self->png.cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "mode 9"));
	EXPECT_EQ(NULL, c);
}

TEST_HARNESS_MAIN
