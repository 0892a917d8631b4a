// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host tests of the KV-cache manager end to end: a device model process
 * (pnm-device) on a /dev/shm file, libpnm's direct transport, and every
 * decode result compared with the CPU reference.
 *
 * PNM_DEVICE_BIN names the device model binary; the build passes the one
 * it built (the sanitizer build passes the sanitizer device model).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "decode_check.h"
#include "device_model.h"
#include "kvcache.h"
#include "pnm.h"

FIXTURE(kvcache) {
	struct model model;
	struct pnm_dev *dev;
	struct dc_run run;
};

FIXTURE_VARIANT(kvcache) {
	unsigned int dtype;
};

FIXTURE_VARIANT_ADD(kvcache, bf16) { .dtype = CXL_PNM_DTYPE_BF16 };
FIXTURE_VARIANT_ADD(kvcache, fp16) { .dtype = CXL_PNM_DTYPE_FP16 };
FIXTURE_VARIANT_ADD(kvcache, fp32) { .dtype = CXL_PNM_DTYPE_FP32 };

FIXTURE_SETUP(kvcache)
{
	int ret;

	memset(&self->run, 0, sizeof(self->run));
	self->dev = NULL;
	ret = model_start(&self->model, "64M");
	if (ret == -ECHILD)
		SKIP(return, "device model %s did not start (see PNM_DEVICE)",
		     PNM_DEVICE_BIN);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, pnm_open(self->model.name, &self->dev))
		TH_LOG("%s", pnm_last_error());
	/* A small GQA shape: 2 layers, 4 query heads on 2 KV heads. */
	self->run.cfg = (struct kvcache_config){
		.shape = {
			.layers = 2, .q_heads = 4, .kv_heads = 2, .head_dim = 32,
			.page_tokens = 16, .dtype = variant->dtype,
		},
		.nr_sequences = 2,
		.max_tokens = 400,
	};
}

FIXTURE_TEARDOWN(kvcache)
{
	dc_teardown(&self->run);
	pnm_close(self->dev);
	model_stop(&self->model);
}

TEST_F(kvcache, decode_matches_reference)
{
	/* 300 tokens: 18 full pages and a partial one of 12 tokens. */
	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 11))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_fill(&self->run, 300)) TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_decode(&self->run, 6, 96)) TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_check_digests(&self->run));

	EXPECT_EQ(6 * 2 * 2 * 2, self->run.counts.streams);
	EXPECT_EQ(0, self->run.counts.selection_mismatches);
	EXPECT_EQ(0, self->run.counts.output_mismatches);
	EXPECT_EQ(2 * 2 * 2 * (306 / 16), self->run.counts.digests);
	EXPECT_EQ(0, self->run.counts.digest_mismatches);
	TH_LOG("max error: out %.3g, lse %.3g", self->run.counts.max_out_err,
	       self->run.counts.max_lse_err);
}

TEST_F(kvcache, budget_above_context)
{
	/* k exceeds the stream's pages: every page is attended. */
	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 12));
	ASSERT_EQ(0, dc_fill(&self->run, 40));
	ASSERT_EQ(0, dc_decode(&self->run, 2, 1024)) TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(0, self->run.counts.selection_mismatches);
	EXPECT_EQ(0, self->run.counts.output_mismatches);
	EXPECT_EQ(3, self->run.step.n_pages[0]);
}

TEST_F(kvcache, split_appends_equal_one)
{
	struct pnm_ref_stream a, b;
	float k[40 * 32], v[40 * 32];
	unsigned int i;

	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 13));
	for (i = 0; i < 40 * 32; i++) {
		k[i] = (float)(i % 97) * 0.25f - 12.0f;
		v[i] = (float)(i % 89) * 0.5f;
	}
	/* Stream (0, 0, 0) in one piece, stream (1, 0, 0) in three. */
	ASSERT_EQ(0, kvcache_append(self->run.cache, 0, 0, 0, k, v, 40));
	ASSERT_EQ(0, kvcache_append(self->run.cache, 1, 0, 0, k, v, 7));
	ASSERT_EQ(0, kvcache_append(self->run.cache, 1, 0, 0, k + 7 * 32,
				    v + 7 * 32, 20));
	ASSERT_EQ(0, kvcache_append(self->run.cache, 1, 0, 0, k + 27 * 32,
				    v + 27 * 32, 13));
	EXPECT_EQ(40, kvcache_tokens(self->run.cache, 1, 0, 0));

	ASSERT_EQ(0, kvcache_ref_stream(self->run.cache, 0, 0, 0,
					KVCACHE_REF_DEVICE, &a));
	ASSERT_EQ(0, kvcache_ref_stream(self->run.cache, 1, 0, 0,
					KVCACHE_REF_DEVICE, &b));
	for (i = 0; i < 3; i++) {
		size_t esize = variant->dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2;
		size_t rows = i < 2 ? 16 : 8;

		/* K rows, V rows and (for full pages) the digest match. */
		EXPECT_EQ(0, memcmp(pnm_ref_slot(&a, a.table[i]),
				    pnm_ref_slot(&b, b.table[i]), rows * 32 * esize));
		EXPECT_EQ(0, memcmp((const char *)pnm_ref_slot(&a, a.table[i]) + 16 * 32 * esize,
				    (const char *)pnm_ref_slot(&b, b.table[i]) + 16 * 32 * esize,
				    rows * 32 * esize));
		if (i < 2)
			EXPECT_EQ(0, memcmp(pnm_ref_digest_of(&a, a.table[i]),
					    pnm_ref_digest_of(&b, b.table[i]),
					    2 * 32 * esize));
	}
}

TEST_F(kvcache, bad_arguments_named)
{
	struct kvcache *c = NULL;
	struct kvcache_config cfg = self->run.cfg;
	float kv[32] = { 0 };

	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 14));

	EXPECT_EQ(-EINVAL, kvcache_append(self->run.cache, 5, 0, 0, kv, kv, 1));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "sequence 5"));
	EXPECT_EQ(-EINVAL, kvcache_append(self->run.cache, 0, 2, 0, kv, kv, 1));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "layer 2"));
	EXPECT_EQ(-EINVAL, kvcache_append(self->run.cache, 0, 0, 9, kv, kv, 1));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "kv head 9"));
	EXPECT_EQ(-ENOSPC, kvcache_append(self->run.cache, 0, 0, 0, kv, kv, 401));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "max_tokens 400"));
	EXPECT_EQ(0, kvcache_tokens(self->run.cache, 0, 0, 0));

	/* Streams without tokens cannot be attended. */
	self->run.step.budget_tokens = 64;
	EXPECT_EQ(-EINVAL, kvcache_decode_step(self->run.cache, 0, &self->run.step));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "no tokens"));
	ASSERT_EQ(0, dc_fill(&self->run, 20));
	self->run.step.budget_tokens = 31;
	EXPECT_EQ(-EINVAL, kvcache_decode_step(self->run.cache, 0, &self->run.step));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "budget of 31 tokens"));
	self->run.step.budget_tokens = 64;
	EXPECT_EQ(-EINVAL, kvcache_decode_step(self->run.cache, 2, &self->run.step));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "layer 2"));

	cfg.shape.head_dim = 24;
	EXPECT_EQ(-EINVAL, kvcache_create(self->dev, &cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "head_dim 24"));
	cfg = self->run.cfg;
	cfg.shape.q_heads = 5;
	EXPECT_EQ(-EINVAL, kvcache_create(self->dev, &cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "q_heads 5"));
	cfg = self->run.cfg;
	cfg.shape.page_tokens = 12;
	EXPECT_EQ(-EINVAL, kvcache_create(self->dev, &cfg, &c));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "page_tokens 12"));
	cfg = self->run.cfg;
	cfg.max_tokens = 1U << 31;
	EXPECT_EQ(-E2BIG, kvcache_create(self->dev, &cfg, &c));
	cfg = self->run.cfg;
	cfg.max_tokens = 1U << 18;	/* 285 MiB of bf16 pool on 64 MiB */
	EXPECT_EQ(-ENOMEM, kvcache_create(self->dev, &cfg, &c))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(NULL, c);
}

/* 40 sequences x 8 KV heads = 320 streams: two batches of max_batch 256. */
TEST_F(kvcache, decode_splits_batches)
{
	self->run.cfg.shape.kv_heads = 8;
	self->run.cfg.shape.q_heads = 32;
	self->run.cfg.shape.layers = 1;
	self->run.cfg.nr_sequences = 40;
	self->run.cfg.max_tokens = 64;
	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 15))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_fill(&self->run, 50));
	ASSERT_EQ(0, dc_decode(&self->run, 1, 32)) TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(320, self->run.counts.streams);
	EXPECT_EQ(0, self->run.counts.selection_mismatches);
	EXPECT_EQ(0, self->run.counts.output_mismatches);
	EXPECT_NE(0, self->run.step.device_ns);
}

TEST_HARNESS_MAIN
