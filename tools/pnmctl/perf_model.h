/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Analytical model of long-context decode with the KV cache in CXL memory:
 * the baseline (pages recalled to the GPU over the CXL link), PNM-KV and
 * PnG-KV.  Documentation/perf-model.rst derives every term and gives the
 * source of every default.  Device time uses the device model's own timing
 * model (qemu/pnm_timing.h), so the two agree.
 */
#ifndef PERF_MODEL_H
#define PERF_MODEL_H

#include <stdbool.h>
#include <stdint.h>

struct perf_shape {
	const char *name;
	unsigned int layers, q_heads, kv_heads, head_dim;
	double params;			/* parameters, for the weight bytes */
};

struct perf_hw {
	unsigned int gpus;		/* 0: fewest (power of two) holding the weights */
	double gpu_bw;			/* HBM bandwidth per GPU, GB/s */
	double gpu_cap;			/* HBM per GPU, GB */
	double gpu_link;		/* host link per GPU and direction, GB/s */
	double gpu_power;		/* W per GPU */
	double gpu_cost;		/* $ per GPU-hour */
	double cxl_link;		/* CXL link per device and direction, GB/s */
	double dev_cap;			/* memory per CXL device, GB */
	double pnm_bw;			/* PNM internal bandwidth, GB/s */
	double pnm_tflops;		/* PNM compute rate */
	double pnm_overhead_ns;		/* per command */
	double pnm_power;		/* W per PNM device */
	double mem_power;		/* W per plain CXL memory device (baseline) */
	double dev_cost;		/* $ per device-hour */
	double hbm_usable;		/* fraction of HBM for weights and KV state */
};

struct perf_workload {
	uint64_t context;		/* tokens per sequence */
	unsigned int batch;		/* 0: the largest batch that fits each mode */
	unsigned int max_batch;		/* cap of the automatic batch */
	unsigned int devices;
	unsigned int page_tokens;
	unsigned int budget;		/* tokens attended per stream and step */
	unsigned int kv_bytes;		/* bytes per K/V element */
	unsigned int weight_bytes;	/* bytes per weight */
	double hit_rate;		/* PnG-KV: attended pages served by the GPU */
	double admit_pages;		/* PnG-KV: pages copied per stream and step */
	unsigned int cache_pages;	/* PnG-KV: GPU cache pages per stream */
};

enum perf_mode { PERF_BASELINE, PERF_PNM_KV, PERF_PNG_KV, PERF_NR_MODES };

struct perf_result {
	bool fits;			/* false: not even one sequence fits */
	unsigned int batch;
	unsigned int gpus;
	double step_s;			/* one decode step of the whole batch */
	double weights_s, select_s, link_s, attend_s;	/* its parts */
	double tokens_per_s;
	double joules_per_token;
	double usd_per_mtoken;		/* $ per million tokens */
	const char *limit;		/* what bounds the batch */
};

extern const struct perf_shape perf_shapes[];
extern const unsigned int perf_nr_shapes;

const char *perf_mode_name(enum perf_mode mode);
void perf_hw_defaults(struct perf_hw *hw);
void perf_workload_defaults(struct perf_workload *w);
/* GPUs used: hw->gpus, or the automatic count for @shape. */
unsigned int perf_gpus(const struct perf_shape *shape, const struct perf_hw *hw,
		       const struct perf_workload *w);
void perf_evaluate(const struct perf_shape *shape, const struct perf_hw *hw,
		   const struct perf_workload *w, enum perf_mode mode,
		   struct perf_result *r);

#endif /* PERF_MODEL_H */
