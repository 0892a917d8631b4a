// SPDX-License-Identifier: GPL-2.0-only
/*
 * The decode performance model, Documentation/perf-model.rst.
 *
 * One decode step produces one token for each of the batch's sequences.
 * Within a layer the work is serial: the GPU reads the layer's weights and
 * computes the query, then the KV cache is searched and attended, and the
 * next layer needs that result.  So a step is the sum of its parts, and no
 * part hides behind another (PnG-KV's GPU and PNM halves excepted: they run
 * at once).  Units: bytes, seconds, GB = 1e9 bytes.
 */
#include <math.h>

#include "perf_model.h"
#include "pnm_timing.h"

#define GB	1e9

/* Llama 3.1 shapes; Documentation/perf-model.rst gives the sources. */
const struct perf_shape perf_shapes[] = {
	{ "llama-3.1-8b", 32, 32, 8, 128, 8e9 },
	{ "llama-3.1-70b", 80, 64, 8, 128, 70e9 },
	{ "llama-3.1-405b", 126, 128, 8, 128, 405e9 },
};
const unsigned int perf_nr_shapes = sizeof(perf_shapes) / sizeof(perf_shapes[0]);

const char *perf_mode_name(enum perf_mode mode)
{
	static const char *const names[] = {
		[PERF_BASELINE] = "baseline",
		[PERF_PNM_KV] = "pnm-kv",
		[PERF_PNG_KV] = "png-kv",
	};

	return mode < PERF_NR_MODES ? names[mode] : "?";
}

void perf_hw_defaults(struct perf_hw *hw)
{
	*hw = (struct perf_hw) {
		.gpus = 0,
		.gpu_bw = 3350,		/* H100 SXM */
		.gpu_cap = 80,
		.gpu_link = 64,		/* PCIe 5.0 x16, one direction */
		.gpu_power = 700,
		.gpu_cost = 2.94,	/* cloud price per hour */
		.cxl_link = 64,		/* CXL 2.0 on PCIe 5.0 x16 */
		.dev_cap = 512,
		.pnm_bw = PNM_TIMING_BANDWIDTH_GBPS,
		.pnm_tflops = PNM_TIMING_COMPUTE_TFLOPS,
		.pnm_overhead_ns = PNM_TIMING_OVERHEAD_NS,
		.pnm_power = 90,	/* estimate */
		.mem_power = 30,	/* estimate */
		.dev_cost = 0.5,	/* estimate */
		.hbm_usable = 0.9,
	};
}

void perf_workload_defaults(struct perf_workload *w)
{
	*w = (struct perf_workload) {
		.context = 1 << 20,
		.batch = 0,
		.max_batch = 256,
		.devices = 8,
		.page_tokens = 16,
		.budget = 2048,
		.kv_bytes = 2,
		.weight_bytes = 2,
		.hit_rate = 0.36,	/* measured, Documentation/hybrid.rst */
		.admit_pages = 2.6,	/* measured, ditto: 666 KiB / 32 streams */
		.cache_pages = 16,	/* steady.h default capacity */
	};
}

static double weight_bytes(const struct perf_shape *s,
			   const struct perf_workload *w)
{
	return s->params * w->weight_bytes;
}

unsigned int perf_gpus(const struct perf_shape *s, const struct perf_hw *hw,
		       const struct perf_workload *w)
{
	unsigned int g;

	if (hw->gpus)
		return hw->gpus;
	/* Fewest GPUs, a power of two, whose HBM holds the weights with 10 %
	 * of the usable HBM to spare for KV state and activations. */
	for (g = 1; g < 1024; g *= 2) {
		if (weight_bytes(s, w) <= 0.9 * g * hw->gpu_cap * GB * hw->hbm_usable)
			break;
	}
	return g;
}

/** Sizes of one sequence's KV cache, in bytes and pages. */
struct kv_sizes {
	double streams;		/* (layer, kv head) pairs */
	double pages;		/* pages per stream */
	double slot;		/* K and V of one page */
	double digest;		/* per-channel min and max of one page */
	double selected;	/* pages attended per stream and step */
	double group;		/* query heads per KV head */
};

static void kv_sizes(const struct perf_shape *s, const struct perf_workload *w,
		     struct kv_sizes *kv)
{
	kv->streams = (double)s->layers * s->kv_heads;
	kv->pages = ceil((double)w->context / w->page_tokens);
	kv->slot = 2.0 * w->page_tokens * s->head_dim * w->kv_bytes;
	kv->digest = 2.0 * s->head_dim * w->kv_bytes;
	kv->selected = fmin(ceil((double)w->budget / w->page_tokens), kv->pages);
	kv->group = (double)s->q_heads / s->kv_heads;
}

/*
 * Device time of one SELECT_ATTEND over a stream, counted as the device
 * model counts it (qemu/pnm_exec.c): the page table, the query and the
 * exclusion list, the digests of the candidate pages, and the K and V rows
 * of the attended tokens; 4 operations per channel per scored page (after
 * summing the group's positive and negative query parts once) and 4 per
 * query element per attended token.  Then qemu/pnm_timing.c turns that
 * into time.
 */
static double select_attend_s(const struct perf_shape *s,
			      const struct perf_hw *hw,
			      const struct perf_workload *w,
			      const struct kv_sizes *kv, double excluded)
{
	struct pnm_timing t = {
		.bandwidth_gbps = hw->pnm_bw,
		.compute_tflops = hw->pnm_tflops,
		.overhead_ns = (uint64_t)hw->pnm_overhead_ns,
	};
	double query_floats = kv->group * s->head_dim;
	double kept = fmin(2.0, kv->pages);	/* sink and recent page */
	double candidates = fmax(kv->pages - kept - excluded, 0.0);
	double tokens = fmax(kv->selected - excluded, 0.0) * w->page_tokens;
	double bytes = 4.0 * kv->pages + 4.0 * query_floats + 4.0 * excluded +
		       candidates * kv->digest +
		       2.0 * tokens * s->head_dim * w->kv_bytes;
	double flops = 2.0 * query_floats + 4.0 * s->head_dim * candidates +
		       4.0 * tokens * query_floats;

	return pnm_timing_ns(&t, (uint64_t)bytes, (uint64_t)flops) * 1e-9;
}

/* Largest batch within both capacities, and what bounds it. */
static unsigned int max_batch(double cxl_per_seq, double cxl_total,
			      double hbm_per_seq, double hbm_free,
			      unsigned int cap, const char **limit)
{
	double by_cxl = floor(cxl_total / cxl_per_seq);
	double by_hbm = hbm_per_seq > 0 ? floor(hbm_free / hbm_per_seq) : INFINITY;
	double b = fmin(fmin(by_cxl, by_hbm), cap);

	*limit = b == cap ? "batch cap" : by_hbm < by_cxl ? "GPU memory" :
		 "CXL memory";
	return b > 0 ? (unsigned int)b : 0;
}

void perf_evaluate(const struct perf_shape *s, const struct perf_hw *hw,
		   const struct perf_workload *w, enum perf_mode mode,
		   struct perf_result *r)
{
	unsigned int gpus = perf_gpus(s, hw, w);
	double hbm_bw = gpus * hw->gpu_bw * GB;
	double hbm_free = gpus * hw->gpu_cap * GB * hw->hbm_usable -
			  weight_bytes(s, w);
	/* Traffic between GPUs and devices is bound by the narrower side. */
	double link_bw = fmin(w->devices * hw->cxl_link, gpus * hw->gpu_link) * GB;
	double cxl_total = w->devices * hw->dev_cap * GB;
	double cxl_per_seq, hbm_per_seq, b, dev_power, excluded;
	struct kv_sizes kv;
	unsigned int batch;

	kv_sizes(s, w, &kv);
	cxl_per_seq = kv.streams * kv.pages * (kv.slot + kv.digest);
	/* GPU-resident state per sequence, beyond the weights. */
	switch (mode) {
	case PERF_BASELINE:
		/* The digests, so that the GPU selects pages without touching
		 * the link; the recalled pages of one layer. */
		hbm_per_seq = kv.streams * kv.pages * kv.digest +
			      s->kv_heads * kv.selected * kv.slot;
		break;
	case PERF_PNG_KV:
		hbm_per_seq = kv.streams * w->cache_pages * kv.slot;
		break;
	default:
		hbm_per_seq = 0;
		break;
	}

	*r = (struct perf_result){ .gpus = gpus };
	batch = max_batch(cxl_per_seq, cxl_total, hbm_per_seq, hbm_free,
			  w->max_batch, &r->limit);
	if (w->batch) {
		r->limit = "--batch";
		if (w->batch > batch) {
			r->limit = batch ? "does not fit" : r->limit;
			batch = 0;
		} else {
			batch = w->batch;
		}
	}
	if (!batch || hbm_free < 0)
		return;
	b = batch;
	r->fits = true;
	r->batch = batch;
	r->weights_s = weight_bytes(s, w) / hbm_bw;
	/* Every mode writes each new token's K and V to CXL memory. */
	r->link_s = b * kv.streams * kv.slot / w->page_tokens / link_bw;

	switch (mode) {
	case PERF_BASELINE:
		r->select_s = b * kv.streams * kv.pages * kv.digest / hbm_bw;
		r->link_s += b * kv.streams * kv.selected * kv.slot / link_bw;
		r->attend_s = b * kv.streams * kv.selected * kv.slot / hbm_bw;
		dev_power = hw->mem_power;
		break;
	case PERF_PNM_KV:
	case PERF_PNG_KV:
		excluded = mode == PERF_PNG_KV ? w->hit_rate * kv.selected : 0;
		/* Streams spread evenly; each device runs its commands one at
		 * a time, as the device model does. */
		r->select_s = b * kv.streams / w->devices *
			      select_attend_s(s, hw, w, &kv, excluded);
		/* Query in, out and lse and the page list back, fp32. */
		r->link_s += b * kv.streams *
			     (4.0 * kv.group * s->head_dim * 2 + 4.0 * kv.group +
			      4.0 * kv.selected) / link_bw;
		if (mode == PERF_PNG_KV) {
			double gpu_s = b * kv.streams * excluded * kv.slot / hbm_bw;

			/* The GPU attends its cached pages while the devices
			 * attend the rest. */
			r->select_s = fmax(r->select_s, gpu_s);
			r->link_s += b * kv.streams * w->admit_pages * kv.slot /
				     link_bw;
		}
		dev_power = hw->pnm_power;
		break;
	default:
		return;
	}
	r->step_s = r->weights_s + r->select_s + r->link_s + r->attend_s;
	r->tokens_per_s = b / r->step_s;
	r->joules_per_token = (gpus * hw->gpu_power + w->devices * dev_power) *
			      r->step_s / b;
	r->usd_per_mtoken = (gpus * hw->gpu_cost + w->devices * hw->dev_cost) /
			    3600.0 * r->step_s / b * 1e6;
}
