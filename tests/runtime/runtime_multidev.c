// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest test of multi-device decode over the kernel transport: the KV
 * cache spread over /dev/cxl/pnm0..N-1 by kv-head, by sequence and split
 * by token range, in PNM-KV and PnG-KV modes, every result checked
 * against the CPU reference over the pages attended.
 *
 *   runtime_multidev [N] [harness options]
 *
 * N (1 to 4) is the number of devices the test needs: it fails, it does
 * not skip, when fewer device nodes exist.  Without N it decodes over 1,
 * 2, ... up to every device node present (and skips when there is none).
 *
 * Every access to CXL memory is emulated in the VM, so shapes stay small.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "decode_check.h"
#include "kvcache.h"
#include "pnm.h"

static unsigned int requested;	/* devices asked for; 0: all present */

static unsigned int devices_present(void)
{
	char node[32];
	unsigned int n;

	for (n = 0; n < KVCACHE_MAX_DEVICES; n++) {
		snprintf(node, sizeof(node), "/dev/cxl/pnm%u", n);
		if (access(node, F_OK))
			break;
	}
	return n;
}

FIXTURE(multi) {
	struct pnm_dev *devs[KVCACHE_MAX_DEVICES];
	unsigned int n_devs;
	struct dc_run run;
};

FIXTURE_VARIANT(multi) {
	enum kvcache_spread spread;
	enum kvcache_mode mode;
};

FIXTURE_VARIANT_ADD(multi, kv_head) { .spread = KVCACHE_SPREAD_KV_HEAD };
FIXTURE_VARIANT_ADD(multi, sequence) { .spread = KVCACHE_SPREAD_SEQUENCE };
FIXTURE_VARIANT_ADD(multi, tokens) { .spread = KVCACHE_SPREAD_TOKENS };
FIXTURE_VARIANT_ADD(multi, kv_head_png) {
	.spread = KVCACHE_SPREAD_KV_HEAD, .mode = KVCACHE_MODE_PNG_KV,
};
FIXTURE_VARIANT_ADD(multi, tokens_png) {
	.spread = KVCACHE_SPREAD_TOKENS, .mode = KVCACHE_MODE_PNG_KV,
};

FIXTURE_SETUP(multi)
{
	unsigned int present = devices_present(), i;
	char node[32];

	memset(self->devs, 0, sizeof(self->devs));
	memset(&self->run, 0, sizeof(self->run));
	self->n_devs = requested ? requested : present;
	if (!requested && !present)
		SKIP(return, "no /dev/cxl/pnm0: cxl_pnm is not bound");
	ASSERT_LE(self->n_devs, present)
		TH_LOG("%u devices requested, %u present", self->n_devs, present);
	for (i = 0; i < self->n_devs; i++) {
		snprintf(node, sizeof(node), "/dev/cxl/pnm%u", i);
		ASSERT_EQ(0, pnm_open(node, &self->devs[i]))
			TH_LOG("%s", pnm_last_error());
		ASSERT_EQ(PNM_TRANSPORT_KERNEL, pnm_transport(self->devs[i]));
	}
	/*
	 * 4 sequences, 4 KV heads: every policy uses up to 4 devices.  256
	 * tokens are 16 pages, 4 per part of a 4-way token split, and the
	 * fill plus 6 steps reaches all 16.
	 */
	self->run.cfg = (struct kvcache_config){
		.shape = {
			.layers = 1, .q_heads = 8, .kv_heads = 4, .head_dim = 64,
			.page_tokens = 16, .dtype = CXL_PNM_DTYPE_BF16,
		},
		.nr_sequences = 4,
		.max_tokens = 256,
		.spread = variant->spread,
		.mode = variant->mode,
		.steady = { .window = 4, .threshold = 2 },
	};
}

FIXTURE_TEARDOWN(multi)
{
	unsigned int i;

	dc_teardown(&self->run);
	for (i = 0; i < self->n_devs; i++)
		pnm_close(self->devs[i]);
}

/* Decode over the first @n_devs devices and check every result. */
static void decode_on(struct __test_metadata *_metadata,
		      FIXTURE_DATA(multi) *self,
		      const FIXTURE_VARIANT(multi) *variant,
		      unsigned int n_devs)
{
	struct kvcache_device_stats st;
	struct kvcache_png_stats png;
	unsigned int i;

	ASSERT_EQ(0, dc_setup_multi(&self->run, self->devs, n_devs, 51))
		TH_LOG("%u devices: %s", n_devs, pnm_last_error());
	ASSERT_EQ(0, dc_fill(&self->run, 250))
		TH_LOG("%u devices: %s", n_devs, pnm_last_error());
	ASSERT_EQ(0, dc_decode(&self->run, 6, 96))
		TH_LOG("%u devices: %s", n_devs, pnm_last_error());
	ASSERT_EQ(0, dc_check_digests(&self->run));

	EXPECT_EQ(6 * 4 * 4, self->run.counts.streams);
	EXPECT_EQ(0, self->run.counts.selection_mismatches)
		TH_LOG("%u devices", n_devs);
	EXPECT_EQ(0, self->run.counts.output_mismatches)
		TH_LOG("%u devices", n_devs);
	EXPECT_EQ(0, self->run.counts.digest_mismatches)
		TH_LOG("%u devices", n_devs);
	for (i = 0; i < n_devs; i++) {
		ASSERT_EQ(0, kvcache_device_stats(self->run.cache, i, &st));
		EXPECT_NE(0, st.commands)
			TH_LOG("device %u of %u did no work", i, n_devs);
		TH_LOG("device %u of %u: %u stream parts, %llu commands, %llu pages scanned, %llu selected, %.3f ms",
		       i, n_devs, st.streams, (unsigned long long)st.commands,
		       (unsigned long long)st.pages_scanned,
		       (unsigned long long)st.pages_selected, st.device_ns * 1e-6);
	}
	if (variant->mode == KVCACHE_MODE_PNG_KV) {
		ASSERT_EQ(0, kvcache_png_stats(self->run.cache, &png));
		EXPECT_LT(0, png.host_hits);
		TH_LOG("PnG-KV: hit rate %.2f", (double)png.host_hits / png.pages_attended);
	}
	TH_LOG("%u devices; max error: out %.3g, lse %.3g", n_devs,
	       self->run.counts.max_out_err, self->run.counts.max_lse_err);
}

/*
 * Every device count from 1 up to the devices used, so one VM with four
 * devices exercises counts 1 to 4 under each policy; with N given, N only.
 */
TEST_F(multi, decode_matches_reference)
{
	struct kvcache_config cfg = self->run.cfg;
	unsigned int n;

	for (n = requested ? requested : 1; n <= self->n_devs; n++) {
		self->run.cfg = cfg;
		decode_on(_metadata, self, variant, n);
		dc_teardown(&self->run);
	}
}

/* An optional leading device count, then the harness's own options. */
int main(int argc, char **argv)
{
	char *end;

	if (argc > 1 && argv[1][0] != '-') {
		unsigned long n = strtoul(argv[1], &end, 10);

		if (*end || n < 1 || n > KVCACHE_MAX_DEVICES) {
			fprintf(stderr, "runtime_multidev: device count '%s' is invalid: expected 1 to %u\n",
				argv[1], KVCACHE_MAX_DEVICES);
			return 2;
		}
		requested = (unsigned int)n;
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	return test_harness_run(argc, argv);
}
