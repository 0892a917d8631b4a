/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared by the KV-cache tests on the host (direct transport) and in the
 * guest (kernel transport): fill a cache from the KV generator, run decode
 * steps and compare every result with the CPU reference over the host
 * mirror.
 */
#ifndef DECODE_CHECK_H
#define DECODE_CHECK_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcache.h"
#include "kvgen.h"
#include "pnm_ref.h"

/*
 * Small shapes and contexts keep fp32 rounding differences near 1e-6;
 * a wrong page, a dropped token or a stale value shows up far above.
 */
#define DC_OUT_TOL	1e-4
#define DC_LSE_TOL	1e-4

struct dc_counts {
	unsigned int streams;
	unsigned int selection_mismatches;
	unsigned int output_mismatches;
	unsigned int digest_mismatches;
	unsigned int digests;
	double max_out_err;
	double max_lse_err;
};

struct dc_run {
	struct kvcache_config cfg;
	struct kvcache *cache;
	struct kvgen **gens;		/* one per stream */
	unsigned int n_gens;
	float *q;
	struct kvcache_step step;
	struct dc_counts counts;
};

static inline unsigned int dc_group(const struct dc_run *r)
{
	return r->cfg.shape.q_heads / r->cfg.shape.kv_heads;
}

static inline int dc_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static inline struct kvgen *dc_gen(struct dc_run *r, unsigned int seq,
				   unsigned int layer, unsigned int h)
{
	return r->gens[(seq * r->cfg.shape.layers + layer) *
		       r->cfg.shape.kv_heads + h];
}

/* Create the cache on @n_devs devices and one generator per stream. */
static inline int dc_setup_multi(struct dc_run *r, struct pnm_dev *const *devs,
				 unsigned int n_devs, uint64_t seed)
{
	const struct kvcache_shape *s = &r->cfg.shape;
	size_t q_floats = (size_t)r->cfg.nr_sequences * s->q_heads * s->head_dim;
	size_t pairs = (size_t)r->cfg.nr_sequences * s->kv_heads;
	struct kvgen_params p;
	unsigned int i;
	int ret;

	r->cfg.flags |= KVCACHE_HOST_MIRROR;
	ret = kvcache_create_multi(devs, n_devs, &r->cfg, &r->cache);
	if (ret)
		return ret;
	kvgen_default_params(&p, s->head_dim, dc_group(r));
	r->n_gens = r->cfg.nr_sequences * s->layers * s->kv_heads;
	r->gens = calloc(r->n_gens, sizeof(*r->gens));
	r->q = calloc(q_floats, sizeof(float));
	r->step.out = calloc(q_floats, sizeof(float));
	r->step.lse = calloc(q_floats / s->head_dim, sizeof(float));
	r->step.pages = calloc(pairs * kvcache_max_pages(r->cache),
			       sizeof(uint32_t));
	r->step.n_pages = calloc(pairs, sizeof(uint32_t));
	if (!r->gens || !r->q || !r->step.out || !r->step.lse ||
	    !r->step.pages || !r->step.n_pages)
		return -ENOMEM;
	for (i = 0; i < r->n_gens; i++) {
		r->gens[i] = kvgen_new(&p, seed, i);
		if (!r->gens[i])
			return -ENOMEM;
	}
	r->step.q = r->q;
	return 0;
}

static inline int dc_setup(struct dc_run *r, struct pnm_dev *dev,
			   uint64_t seed)
{
	return dc_setup_multi(r, &dev, 1, seed);
}

static inline void dc_teardown(struct dc_run *r)
{
	unsigned int i;

	if (r->gens)
		for (i = 0; i < r->n_gens; i++)
			kvgen_free(r->gens[i]);
	free(r->gens);
	free(r->q);
	free(r->step.out);
	free(r->step.lse);
	free(r->step.pages);
	free(r->step.n_pages);
	kvcache_destroy(r->cache);
	memset(r, 0, sizeof(*r));
}

/* Append @n generated tokens to every stream of (@seq, @layer). */
static inline int dc_append(struct dc_run *r, unsigned int seq,
			    unsigned int layer, uint32_t n)
{
	const struct kvcache_shape *s = &r->cfg.shape;
	size_t floats = (size_t)s->kv_heads * n * s->head_dim;
	float *k = calloc(floats ? floats : 1, sizeof(float));
	float *v = calloc(floats ? floats : 1, sizeof(float));
	unsigned int h;
	uint32_t t;
	int ret = -ENOMEM;

	if (k && v) {
		for (h = 0; h < s->kv_heads; h++)
			for (t = 0; t < n; t++) {
				size_t at = ((size_t)h * n + t) * s->head_dim;

				kvgen_next(dc_gen(r, seq, layer, h), k + at, v + at);
			}
		ret = kvcache_append_layer(r->cache, seq, layer, k, v, n);
	}
	free(k);
	free(v);
	return ret;
}

static inline int dc_fill(struct dc_run *r, uint32_t n)
{
	unsigned int seq, layer;
	int ret;

	for (seq = 0; seq < r->cfg.nr_sequences; seq++)
		for (layer = 0; layer < r->cfg.shape.layers; layer++) {
			ret = dc_append(r, seq, layer, n);
			if (ret)
				return ret;
		}
	return 0;
}

/*
 * Compare the device's digests of full pages with the mirror's, part by
 * part: a part's full pages are its sub-stream's full pages.
 */
static inline int dc_check_digests(struct dc_run *r)
{
	const struct kvcache_shape *sh = &r->cfg.shape;
	size_t bytes = 2 * sh->head_dim *
		       (sh->dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2);
	struct pnm_ref_stream dev_s, host_s;
	unsigned int seq, layer, h, j;
	uint32_t page, first;
	int ret;

	for (seq = 0; seq < r->cfg.nr_sequences; seq++)
	for (layer = 0; layer < sh->layers; layer++)
	for (h = 0; h < sh->kv_heads; h++)
	for (j = 0; j < kvcache_parts(r->cache); j++) {
		ret = kvcache_ref_part(r->cache, seq, layer, h, j,
				       KVCACHE_REF_DEVICE, &dev_s, &first);
		if (!ret)
			ret = kvcache_ref_part(r->cache, seq, layer, h, j,
					       KVCACHE_REF_MIRROR, &host_s, NULL);
		if (ret)
			return ret;
		for (page = 0; page < dev_s.n_tokens / sh->page_tokens; page++) {
			r->counts.digests++;
			if (memcmp(pnm_ref_digest_of(&dev_s, dev_s.table[page]),
				   pnm_ref_digest_of(&host_s, host_s.table[page]),
				   bytes)) {
				r->counts.digest_mismatches++;
				fprintf(stderr, "# digest differs: seq %u layer %u kv head %u page %u\n",
					seq, layer, h, first + page);
			}
		}
	}
	return 0;
}

/*
 * Check each part's selection against pnm_ref_select() over the part's
 * sub-stream with the budget, flags and exclusions the cache sent, and
 * that the stream's page list is the union of the parts' pages and the
 * host's.  Unsplit PNM-KV streams must also match a plain top-k selection
 * of the whole stream.  Returns the mismatches.
 */
static inline unsigned int dc_check_selection(struct dc_run *r, unsigned int seq,
					      unsigned int layer, unsigned int h,
					      const float *q, uint32_t *scratch)
{
	const struct kvcache_shape *sh = &r->cfg.shape;
	size_t pair = (size_t)seq * sh->kv_heads + h;
	const uint32_t *pages = r->step.pages + pair * kvcache_max_pages(r->cache);
	unsigned int n_pages = r->step.n_pages[pair], j, i, bad = 0, total;
	unsigned int k = r->step.budget_tokens / sh->page_tokens;
	struct kvcache_part_plan plan;
	struct pnm_ref_stream s;
	const uint32_t *host;
	unsigned int n_host = kvcache_host_pages(r->cache, seq, layer, h, &host);
	int n_ref;

	total = n_host;
	for (j = 0; j < kvcache_parts(r->cache); j++) {
		if (kvcache_part_plan(r->cache, seq, layer, h, j, &plan) ||
		    kvcache_ref_part(r->cache, seq, layer, h, j,
				     KVCACHE_REF_MIRROR, &s, NULL))
			return 1;
		if (!plan.k)
			continue;
		total += plan.n_pages;
		n_ref = pnm_ref_select(&s, q, plan.k, plan.flags, plan.exclude,
				       plan.n_exclude, scratch);
		if (n_ref != (int)plan.n_pages ||
		    memcmp(scratch, plan.pages, plan.n_pages * sizeof(*scratch)))
			bad++;
		for (i = 0; i < plan.n_pages; i++)
			if (!bsearch(&(uint32_t){ plan.first_page + plan.pages[i] },
				     pages, n_pages, sizeof(*pages), dc_cmp_u32))
				bad++;
	}
	for (i = 0; i < n_host; i++)
		if (!bsearch(&host[i], pages, n_pages, sizeof(*pages), dc_cmp_u32))
			bad++;
	if (total != n_pages)
		bad++;
	if (kvcache_parts(r->cache) == 1 && !n_host) {
		if (kvcache_ref_stream(r->cache, seq, layer, h,
				       KVCACHE_REF_MIRROR, &s))
			return bad + 1;
		n_ref = pnm_ref_select(&s, q, k, CXL_PNM_CMD_KEEP_SINK |
				       CXL_PNM_CMD_KEEP_RECENT, NULL, 0, scratch);
		if (n_ref != (int)n_pages ||
		    memcmp(scratch, pages, n_pages * sizeof(*pages)))
			bad++;
	}
	return bad;
}

static inline void dc_check_stream(struct dc_run *r, unsigned int seq,
				   unsigned int layer, unsigned int h)
{
	const struct kvcache_shape *sh = &r->cfg.shape;
	unsigned int group = dc_group(r), g, c;
	size_t pair = (size_t)seq * sh->kv_heads + h;
	size_t head0 = (size_t)seq * sh->q_heads + (size_t)h * group;
	const uint32_t *pages = r->step.pages + pair * kvcache_max_pages(r->cache);
	unsigned int n_pages = r->step.n_pages[pair];
	const float *q = r->q + head0 * sh->head_dim;
	uint32_t *ref_pages = calloc(kvcache_max_pages(r->cache), sizeof(uint32_t));
	float *ref_out = calloc((size_t)group * sh->head_dim, sizeof(float));
	float *ref_lse = calloc(group, sizeof(float));
	struct pnm_ref_stream s;

	r->counts.streams++;
	if (!ref_pages || !ref_out || !ref_lse ||
	    kvcache_ref_stream(r->cache, seq, layer, h, KVCACHE_REF_MIRROR, &s)) {
		r->counts.output_mismatches++;
		goto out;
	}
	if (dc_check_selection(r, seq, layer, h, q, ref_pages)) {
		r->counts.selection_mismatches++;
		fprintf(stderr, "# selection differs: seq %u layer %u kv head %u (%u pages attended)\n",
			seq, layer, h, n_pages);
	}
	/* The reference over every page attended, by devices or host. */
	pnm_ref_attend(&s, q, pages, n_pages, ref_out, ref_lse);
	for (g = 0; g < group; g++) {
		const float *out = r->step.out + (head0 + g) * sh->head_dim;
		double lse_err = fabs((double)r->step.lse[head0 + g] - ref_lse[g]);
		double out_err = 0.0;

		for (c = 0; c < sh->head_dim; c++) {
			double e = fabs((double)out[c] - ref_out[g * sh->head_dim + c]);

			if (!(e <= out_err))
				out_err = isnan(e) ? INFINITY : e;
		}
		if (isnan(lse_err))
			lse_err = INFINITY;
		if (out_err > r->counts.max_out_err)
			r->counts.max_out_err = out_err;
		if (lse_err > r->counts.max_lse_err)
			r->counts.max_lse_err = lse_err;
		if (out_err > DC_OUT_TOL || lse_err > DC_LSE_TOL) {
			r->counts.output_mismatches++;
			fprintf(stderr, "# output differs: seq %u layer %u q head %u: out %.3g lse %.3g\n",
				seq, layer, h * group + g, out_err, lse_err);
		}
	}
out:
	free(ref_pages);
	free(ref_out);
	free(ref_lse);
}

/*
 * One decode step of @layer: a query and one new token per stream, then
 * the decode step, then the comparison with the reference.
 */
static inline int dc_step(struct dc_run *r, unsigned int layer)
{
	const struct kvcache_shape *sh = &r->cfg.shape;
	unsigned int seq, h, group = dc_group(r);
	int ret;

	for (seq = 0; seq < r->cfg.nr_sequences; seq++) {
		for (h = 0; h < sh->kv_heads; h++)
			kvgen_query(dc_gen(r, seq, layer, h),
				    r->q + ((size_t)seq * sh->q_heads + h * group) *
				    sh->head_dim);
		ret = dc_append(r, seq, layer, 1);
		if (ret)
			return ret;
	}
	ret = kvcache_decode_step(r->cache, layer, &r->step);
	if (ret)
		return ret;
	for (seq = 0; seq < r->cfg.nr_sequences; seq++)
		for (h = 0; h < sh->kv_heads; h++)
			dc_check_stream(r, seq, layer, h);
	return 0;
}

/* Run @steps decode steps over every layer, each checked. */
static inline int dc_decode(struct dc_run *r, unsigned int steps,
			    unsigned int budget_tokens)
{
	unsigned int step, layer;
	int ret;

	r->step.budget_tokens = budget_tokens;
	for (step = 0; step < steps; step++)
		for (layer = 0; layer < r->cfg.shape.layers; layer++) {
			ret = dc_step(r, layer);
			if (ret)
				return ret;
		}
	return 0;
}

#endif /* DECODE_CHECK_H */
