// SPDX-License-Identifier: GPL-2.0-only
/*
 * Timing model of the CXL-PNM device model, see pnm_timing.h.
 */
#include <math.h>

#include "pnm_timing.h"

void pnm_timing_init(struct pnm_timing *t)
{
	t->bandwidth_gbps = PNM_TIMING_BANDWIDTH_GBPS;
	t->compute_tflops = PNM_TIMING_COMPUTE_TFLOPS;
	t->overhead_ns = PNM_TIMING_OVERHEAD_NS;
}

uint64_t pnm_timing_ns(const struct pnm_timing *t, uint64_t bytes,
		       uint64_t flops)
{
	/* GB/s is bytes per ns; one TFLOPS is 1000 operations per ns. */
	double memory_ns = (double)bytes / t->bandwidth_gbps;
	double compute_ns = (double)flops / (t->compute_tflops * 1000.0);
	double busy_ns = memory_ns > compute_ns ? memory_ns : compute_ns;

	return t->overhead_ns + (uint64_t)ceil(busy_ns);
}
