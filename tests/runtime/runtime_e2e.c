// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest test of libpnm over the kernel transport: regions through the
 * driver, and a small decode through the KV-cache manager checked against
 * the CPU reference.  Runs in the VM with cxl_pnm bound; PNM_DEVICE_NODE
 * overrides the device node (default /dev/cxl/pnm0).
 *
 * Every read of CXL memory is emulated in the VM, so shapes stay small.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "decode_check.h"
#include "kvcache.h"
#include "pnm.h"

static const char *device_node(void)
{
	const char *node = getenv("PNM_DEVICE_NODE");

	return node ? node : "/dev/cxl/pnm0";
}

FIXTURE(e2e) {
	struct pnm_dev *dev;
	struct dc_run run;
};

FIXTURE_SETUP(e2e)
{
	memset(&self->run, 0, sizeof(self->run));
	self->dev = NULL;
	if (access(device_node(), F_OK))
		SKIP(return, "%s does not exist: cxl_pnm is not bound",
		     device_node());
	ASSERT_EQ(0, pnm_open(device_node(), &self->dev))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(PNM_TRANSPORT_KERNEL, pnm_transport(self->dev));
}

FIXTURE_TEARDOWN(e2e)
{
	dc_teardown(&self->run);
	pnm_close(self->dev);
}

TEST_F(e2e, region_rounded_and_mapped)
{
	struct cxl_pnm_info info;
	struct pnm_region *r;
	unsigned char *p;

	ASSERT_EQ(0, pnm_get_info(self->dev, &info));
	ASSERT_EQ(0, pnm_region_alloc(self->dev, 1, &r))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(info.region_align, r->size);
	p = r->addr;
	p[0] = 0x5a;
	p[r->size - 1] = 0xa5;
	EXPECT_EQ(0x5a, p[0]);
	EXPECT_EQ(0xa5, p[r->size - 1]);
	pnm_region_free(r);
}

TEST_F(e2e, buffer_outside_region_rejected)
{
	struct cxl_pnm_cmd cmd = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_result res;
	struct pnm_region *r;

	ASSERT_EQ(0, pnm_region_alloc(self->dev, 4096, &r));
	cmd.in = pnm_buf(r, 4000, 200);
	EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));
	EXPECT_NE(NULL, strstr(pnm_last_error(), "in buffer is invalid"));

	cmd.in = pnm_buf(r, 0, 4096);
	EXPECT_EQ(0, pnm_submit(self->dev, &cmd, &res, 1, 0))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(CXL_PNM_STATUS_OK, res.status);
	pnm_region_free(r);
}

TEST_F(e2e, decode_matches_reference)
{
	self->run.cfg = (struct kvcache_config){
		.shape = {
			.layers = 2, .q_heads = 8, .kv_heads = 2, .head_dim = 64,
			.page_tokens = 16, .dtype = CXL_PNM_DTYPE_BF16,
		},
		.nr_sequences = 2,
		.max_tokens = 512,
	};
	ASSERT_EQ(0, dc_setup(&self->run, self->dev, 21))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_fill(&self->run, 250)) TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_decode(&self->run, 4, 64)) TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, dc_check_digests(&self->run));

	EXPECT_EQ(4 * 2 * 2 * 2, self->run.counts.streams);
	EXPECT_EQ(0, self->run.counts.selection_mismatches);
	EXPECT_EQ(0, self->run.counts.output_mismatches);
	EXPECT_EQ(2 * 2 * 2 * (254 / 16), self->run.counts.digests);
	EXPECT_EQ(0, self->run.counts.digest_mismatches);
	TH_LOG("max error: out %.3g, lse %.3g", self->run.counts.max_out_err,
	       self->run.counts.max_lse_err);
}

TEST_HARNESS_MAIN
