// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * pnm-hello: the smallest complete libpnm program.  It opens a device,
 * prints its geometry, runs a NOP, then digests one page of keys on the
 * device and checks the digest against the CPU reference.
 *
 *   cc -o pnm-hello pnm-hello.c $(pkg-config --cflags --libs libpnm)
 *   ./pnm-hello /dev/cxl/pnm0        # or direct:/dev/shm/FILE
 */
#include <stdio.h>
#include <string.h>

#include <pnm.h>
#include <pnm_ref.h>

#define HEAD_DIM	128
#define PAGE_SHIFT	4			/* 16 tokens per page */
#define SLOT_BYTES	(2 * 16 * HEAD_DIM * 4)	/* K and V, fp32 */
#define DIGEST_BYTES	(2 * HEAD_DIM * 4)	/* min and max, fp32 */

static int run(struct pnm_dev *dev)
{
	struct cxl_pnm_cmd cmd = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_result res;
	struct cxl_pnm_info info;
	struct pnm_region *region;
	float *keys, expect[2 * HEAD_DIM];
	uint32_t *table;
	int rc, i;

	rc = pnm_get_info(dev, &info);
	if (rc)
		return rc;
	printf("transport %s: %u queues x %u, %llu MiB free\n",
	       pnm_transport(dev) == PNM_TRANSPORT_DIRECT ? "direct" : "kernel",
	       info.nr_queues, info.queue_depth,
	       (unsigned long long)info.kv_free >> 20);

	rc = pnm_submit(dev, &cmd, &res, 1, 0);
	if (rc)
		return rc;
	printf("nop: %s\n", pnm_status_name(res.status));

	/* One page slot, its digest, then the page table: one region
	 * (pnm_region_alloc() rounds the size up to info.region_align). */
	rc = pnm_region_alloc(dev, SLOT_BYTES + DIGEST_BYTES + 4, &region);
	if (rc)
		return rc;
	keys = region->addr;
	for (i = 0; i < 16 * HEAD_DIM; i++)
		keys[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	table = (uint32_t *)((char *)region->addr + SLOT_BYTES + DIGEST_BYTES);
	table[0] = 0;

	cmd = (struct cxl_pnm_cmd) {
		.opcode = CXL_PNM_OP_DIGEST,
		.dtype = CXL_PNM_DTYPE_FP32,
		.page_shift = PAGE_SHIFT,
		.group = 1,
		.head_dim = HEAD_DIM,
		.n_tokens = 16,
		.pool = pnm_buf(region, 0, SLOT_BYTES + DIGEST_BYTES),
		.table = pnm_buf(region, SLOT_BYTES + DIGEST_BYTES, 4),
	};
	rc = pnm_submit(dev, &cmd, &res, 1, 0);
	if (!rc && res.status != CXL_PNM_STATUS_OK) {
		fprintf(stderr, "digest: device status %s\n",
			pnm_status_name(res.status));
		rc = -1;
	}
	if (!rc) {
		pnm_ref_digest(CXL_PNM_DTYPE_FP32, HEAD_DIM, keys, 16, expect);
		rc = memcmp(expect, (char *)region->addr + SLOT_BYTES,
			    sizeof(expect)) ? -1 : 0;
		printf("digest: %s\n", rc ? "differs from the CPU reference" :
		       "matches the CPU reference");
	}
	pnm_region_free(region);
	return rc;
}

int main(int argc, char **argv)
{
	struct pnm_dev *dev;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s {/dev/cxl/pnmN | direct:PATH}\n", argv[0]);
		return 2;
	}
	rc = pnm_open(argv[1], &dev);
	if (rc) {
		fprintf(stderr, "%s: %s\n", argv[1], pnm_last_error());
		return 1;
	}
	rc = run(dev);
	if (rc)
		fprintf(stderr, "%s: failed: %s\n", argv[1], pnm_last_error());
	pnm_close(dev);
	return rc ? 1 : 0;
}
