// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl selftest: open a device through libpnm and check it end to end
 * against the CPU reference: NOP, DIGEST of a small stream, and a
 * SELECT_ATTEND over it (pages compared exactly, outputs within fp32
 * rounding).  Works on /dev/cxl/pnmN and on direct:PATH (a device model).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnm.h"
#include "pnm_ref.h"
#include "pnmctl.h"

/* A small stream: 13 pages of 16 tokens, the last one partial, in 16 slots. */
#define ST_DTYPE	CXL_PNM_DTYPE_BF16
#define ST_HEAD_DIM	128
#define ST_PAGE_SHIFT	4
#define ST_GROUP	4
#define ST_TOKENS	(12 * 16 + 7)
#define ST_PAGES	13
#define ST_SLOTS	16
#define ST_K		6
#define ST_FLAGS	(CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT)
/* Outputs agree to fp32 rounding; summation order may differ. */
#define ST_TOLERANCE	1e-4f

struct selftest {
	const char *name;
	struct pnm_dev *dev;
	struct pnm_region *region;
	/* Byte offsets in the region. */
	uint64_t pool_off, pool_len, table_off, in_off, out_off, out_len;
	uint64_t slot_bytes, digest_bytes;
	struct pnm_ref_stream ref;
	int checks, failed;
};

static void st_result(struct selftest *st, const char *check, bool ok,
		      const char *detail)
{
	st->checks++;
	if (!ok)
		st->failed++;
	printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", check,
	       detail[0] ? ": " : "", detail);
}

/* xorshift64: a fixed, portable sequence of test values in [-1, 1). */
static float st_random(uint64_t *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return (float)((*state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

static int st_layout(struct selftest *st, const struct cxl_pnm_info *info)
{
	uint64_t size, align = info->region_align ? info->region_align : 4096;

	if (!(info->dtypes & (1U << ST_DTYPE)) ||
	    info->max_head_dim < ST_HEAD_DIM || info->max_group < ST_GROUP ||
	    !(info->page_shifts & (1U << ST_PAGE_SHIFT)) ||
	    info->max_k < ST_K) {
		pnmctl_err("%s: the device lacks the test shape (bf16, head_dim %u, group %u, 16-token pages, k %u): dtypes 0x%x, max_head_dim %u, max_group %u, page_shifts 0x%x, max_k %u",
			   st->name, ST_HEAD_DIM, ST_GROUP, ST_K, info->dtypes,
			   info->max_head_dim, info->max_group,
			   info->page_shifts, info->max_k);
		return -EOPNOTSUPP;
	}
	st->slot_bytes = 2ULL * (1U << ST_PAGE_SHIFT) * ST_HEAD_DIM * 2;
	st->digest_bytes = 2ULL * ST_HEAD_DIM * 2;
	st->pool_off = 0;
	st->pool_len = ST_SLOTS * (st->slot_bytes + st->digest_bytes);
	st->table_off = st->pool_off + st->pool_len;
	st->in_off = st->table_off + 4 * ST_PAGES;
	st->out_off = st->in_off + 4 * ST_GROUP * ST_HEAD_DIM;
	st->out_len = 4 * (ST_GROUP * ST_HEAD_DIM + ST_GROUP + ST_K);
	size = (st->out_off + st->out_len + align - 1) / align * align;
	return pnm_region_alloc(st->dev, size, &st->region);
}

/* Keys and values, a shuffled page table, a query. */
static void st_fill(struct selftest *st)
{
	uint8_t *base = st->region->addr;
	uint32_t *table = (uint32_t *)(base + st->table_off);
	float *query = (float *)(base + st->in_off);
	uint64_t rng = 0x504e4d2d73656c66ULL;
	size_t i, n = ST_SLOTS * st->slot_bytes / 2;

	for (i = 0; i < n; i++)
		pnm_ref_store(ST_DTYPE, base + st->pool_off, i, st_random(&rng));
	/* Slot of page p: a permutation, so the table is really used. */
	for (i = 0; i < ST_PAGES; i++)
		table[i] = (uint32_t)((i * 7 + 3) % ST_SLOTS);
	for (i = 0; i < ST_GROUP * ST_HEAD_DIM; i++)
		query[i] = st_random(&rng);

	st->ref = (struct pnm_ref_stream) {
		.dtype = ST_DTYPE,
		.head_dim = ST_HEAD_DIM,
		.page_shift = ST_PAGE_SHIFT,
		.group = ST_GROUP,
		.n_tokens = ST_TOKENS,
		.pool = base + st->pool_off,
		.pool_len = st->pool_len,
		.table = table,
	};
}

static struct cxl_pnm_cmd st_cmd(const struct selftest *st, uint8_t opcode)
{
	struct cxl_pnm_cmd cmd = {
		.opcode = opcode,
		.dtype = ST_DTYPE,
		.page_shift = ST_PAGE_SHIFT,
		.group = ST_GROUP,
		.head_dim = ST_HEAD_DIM,
		.n_tokens = ST_TOKENS,
	};

	if (opcode == CXL_PNM_OP_NOP)
		return (struct cxl_pnm_cmd){ .opcode = opcode };
	cmd.pool = pnm_buf(st->region, st->pool_off, st->pool_len);
	cmd.table = pnm_buf(st->region, st->table_off, 4 * ST_PAGES);
	if (opcode == CXL_PNM_OP_SELECT_ATTEND) {
		cmd.k = ST_K;
		cmd.flags = ST_FLAGS;
		cmd.in = pnm_buf(st->region, st->in_off, 4 * ST_GROUP * ST_HEAD_DIM);
		cmd.out = pnm_buf(st->region, st->out_off, st->out_len);
	}
	return cmd;
}

/* Submit one command; false with a message unless it completed OK. */
static bool st_submit(struct selftest *st, const struct cxl_pnm_cmd *cmd,
		      struct cxl_pnm_result *res, char *detail, size_t len)
{
	int rc = pnm_submit(st->dev, cmd, res, 1, 0);

	if (rc) {
		snprintf(detail, len, "submit failed: %s (%s)", strerror(-rc),
			 pnm_last_error());
		return false;
	}
	if (res->status != CXL_PNM_STATUS_OK) {
		snprintf(detail, len, "device status %u (%s)", res->status,
			 pnm_status_name(res->status));
		return false;
	}
	return true;
}

static void st_nop(struct selftest *st)
{
	struct cxl_pnm_cmd cmd = st_cmd(st, CXL_PNM_OP_NOP);
	struct cxl_pnm_result res;
	char detail[256] = "";
	bool ok;

	pnmctl_info(1, "%s: NOP", st->name);
	ok = st_submit(st, &cmd, &res, detail, sizeof(detail));
	st_result(st, "nop", ok, detail);
}

static void st_digest(struct selftest *st)
{
	struct cxl_pnm_cmd cmd = st_cmd(st, CXL_PNM_OP_DIGEST);
	uint8_t expect[2 * ST_HEAD_DIM * 2];
	struct cxl_pnm_result res;
	char detail[256] = "";
	unsigned int p, n_valid;
	bool ok;

	pnmctl_info(1, "%s: DIGEST of %u pages (%u tokens)", st->name,
		    ST_PAGES, ST_TOKENS);
	ok = st_submit(st, &cmd, &res, detail, sizeof(detail));
	for (p = 0; ok && p < ST_PAGES; p++) {
		uint32_t slot = st->ref.table[p];

		n_valid = p + 1 < ST_PAGES ? 16 : ST_TOKENS - 16 * (ST_PAGES - 1);
		pnm_ref_digest(ST_DTYPE, ST_HEAD_DIM, pnm_ref_slot(&st->ref, slot),
			       n_valid, expect);
		if (memcmp(expect, pnm_ref_digest_of(&st->ref, slot),
			   sizeof(expect))) {
			snprintf(detail, sizeof(detail),
				 "digest of page %u (slot %u) differs from the CPU reference",
				 p, slot);
			ok = false;
		}
	}
	if (ok)
		snprintf(detail, sizeof(detail), "%u pages, device time %" PRIu64 " ns",
			 ST_PAGES, (uint64_t)res.device_ns);
	st_result(st, "digest", ok, detail);
}

static void st_select_attend(struct selftest *st)
{
	struct cxl_pnm_cmd cmd = st_cmd(st, CXL_PNM_OP_SELECT_ATTEND);
	const uint8_t *out = (const uint8_t *)st->region->addr + st->out_off;
	const float *query = (const float *)((const uint8_t *)st->region->addr +
					     st->in_off);
	float ref_out[ST_GROUP * ST_HEAD_DIM], ref_lse[ST_GROUP];
	float dev_out[ST_GROUP * ST_HEAD_DIM], dev_lse[ST_GROUP];
	uint32_t ref_pages[ST_K], dev_pages[ST_K];
	struct cxl_pnm_result res;
	char detail[256] = "";
	int n_ref, i;
	bool ok;

	pnmctl_info(1, "%s: SELECT_ATTEND, k %u of %u pages, group %u",
		    st->name, ST_K, ST_PAGES, ST_GROUP);
	ok = st_submit(st, &cmd, &res, detail, sizeof(detail));
	n_ref = pnm_ref_select(&st->ref, query, ST_K, ST_FLAGS, NULL, 0,
			       ref_pages);
	if (ok && (int)res.count != n_ref) {
		snprintf(detail, sizeof(detail),
			 "selected %u pages, the reference %d", res.count, n_ref);
		ok = false;
	}
	if (ok) {
		memcpy(dev_out, out, sizeof(dev_out));
		memcpy(dev_lse, out + sizeof(dev_out), sizeof(dev_lse));
		memcpy(dev_pages, out + sizeof(dev_out) + sizeof(dev_lse),
		       4 * n_ref);
		if (memcmp(dev_pages, ref_pages, 4 * n_ref)) {
			snprintf(detail, sizeof(detail),
				 "selected pages differ from the reference selection");
			ok = false;
		}
	}
	if (ok) {
		pnm_ref_attend(&st->ref, query, ref_pages, n_ref, ref_out,
			       ref_lse);
		for (i = 0; ok && i < ST_GROUP * ST_HEAD_DIM; i++) {
			if (fabsf(dev_out[i] - ref_out[i]) >
			    ST_TOLERANCE * (1.0f + fabsf(ref_out[i]))) {
				snprintf(detail, sizeof(detail),
					 "out[%d] = %g, the reference %g", i,
					 dev_out[i], ref_out[i]);
				ok = false;
			}
		}
		for (i = 0; ok && i < ST_GROUP; i++) {
			if (fabsf(dev_lse[i] - ref_lse[i]) >
			    ST_TOLERANCE * (1.0f + fabsf(ref_lse[i]))) {
				snprintf(detail, sizeof(detail),
					 "lse[%d] = %g, the reference %g", i,
					 dev_lse[i], ref_lse[i]);
				ok = false;
			}
		}
	}
	if (ok)
		snprintf(detail, sizeof(detail),
			 "%d pages selected and attended, device time %" PRIu64 " ns",
			 n_ref, (uint64_t)res.device_ns);
	st_result(st, "select_attend", ok, detail);
}

/* pnmN and /dev/cxl/pnmN name a kernel device; anything else goes as is. */
static void st_devname(const char *arg, char *name, size_t len)
{
	if (!strncmp(arg, "pnm", 3) && !strchr(arg, '/'))
		snprintf(name, len, "/dev/cxl/%s", arg);
	else
		snprintf(name, len, "%s", arg);
}

int cmd_selftest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct selftest st = { 0 };
	struct cxl_pnm_info info;
	char devname[4096];
	int c, rc;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (c == 'v') {
			pnmctl.verbose++;
			continue;
		}
		fprintf(c == 'h' ? stdout : stderr,
			"usage: pnmctl selftest [-v] {pnmN | /dev/cxl/pnmN | direct:PATH}\n");
		return c == 'h' ? 0 : 2;
	}
	if (optind + 1 != argc) {
		pnmctl_err("selftest: name one device: pnmN, /dev/cxl/pnmN or direct:PATH");
		return 2;
	}
	st.name = argv[optind];
	st_devname(st.name, devname, sizeof(devname));
	pnmctl_info(1, "%s: opening %s", st.name, devname);
	rc = pnm_open(devname, &st.dev);
	if (rc) {
		pnmctl_err("%s: cannot open: %s%s", st.name, pnm_last_error(),
			   rc == -ENOENT && strncmp(devname, "direct:", 7) ?
			   " ('pnmctl list' shows the devices; 'pnmctl bind daxR.I' makes one)" :
			   "");
		printf("%s: selftest FAIL\n", st.name);
		return 1;
	}
	rc = pnm_get_info(st.dev, &info);
	if (!rc) {
		pnmctl_info(1, "%s: transport %s, %u queues x %u, kv %" PRIu64 " MiB free of %" PRIu64,
			    st.name, pnm_transport_name(st.dev), info.nr_queues,
			    info.queue_depth, (uint64_t)info.kv_free >> 20,
			    (uint64_t)info.kv_size >> 20);
		rc = st_layout(&st, &info);
		if (rc && rc != -EOPNOTSUPP)
			pnmctl_err("%s: cannot allocate a test region: %s",
				   st.name, pnm_last_error());
	} else {
		pnmctl_err("%s: GET_INFO failed: %s", st.name, pnm_last_error());
	}
	if (!rc) {
		st_fill(&st);
		st_nop(&st);
		st_digest(&st);
		st_select_attend(&st);
	}
	pnm_region_free(st.region);
	pnm_close(st.dev);
	rc = rc || st.failed;
	printf("%s: selftest %s (%d of %d checks passed)\n", st.name,
	       rc ? "FAIL" : "PASS", st.checks - st.failed, st.checks);
	return rc ? 1 : 0;
}
