/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Timing model of the CXL-PNM device model: the time a command would take
 * on CXL-PNM hardware, reported in each completion as device_ns.
 *
 *   device_ns = overhead + max(bytes read / bandwidth, flops / compute rate)
 *
 * A roofline: the command is bound by whichever of internal memory
 * bandwidth and compute takes longer, plus a fixed cost per command.
 * Documentation/device-model.rst gives the sources of the defaults.
 */
#ifndef PNM_TIMING_H
#define PNM_TIMING_H

#include <stdint.h>

/* Internal bandwidth of an LPDDR5X-based CXL-PNM device, GB/s. */
#define PNM_TIMING_BANDWIDTH_GBPS	1100.0
/* Estimated fp32 compute rate of the accelerator, TFLOPS. */
#define PNM_TIMING_COMPUTE_TFLOPS	8.0
/* Estimated fixed cost per command (fetch, decode, completion), ns. */
#define PNM_TIMING_OVERHEAD_NS		200

/**
 * struct pnm_timing - parameters of the timing model
 * @bandwidth_gbps: device-internal memory bandwidth, GB/s (bytes per ns)
 * @compute_tflops: arithmetic rate, TFLOPS (thousands of operations per ns)
 * @overhead_ns: fixed cost of every command, ns
 */
struct pnm_timing {
	double bandwidth_gbps;
	double compute_tflops;
	uint64_t overhead_ns;
};

void pnm_timing_init(struct pnm_timing *t);

/* Modeled time of a command that read @bytes and did @flops operations. */
uint64_t pnm_timing_ns(const struct pnm_timing *t, uint64_t bytes,
		       uint64_t flops);

#endif /* PNM_TIMING_H */
