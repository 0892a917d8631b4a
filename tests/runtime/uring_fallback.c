// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host test of libpnm's generic asynchronous queue: the direct transport
 * has no native queue operations, so pnm_submit_async() runs each batch
 * through the synchronous submit and pnm_reap()/pnm_wait() hand out the
 * stored completions.  Runs against a pnm-device of its own (see
 * device_model.h), plain and under the sanitizers.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "device_model.h"
#include "pnm.h"

/* fp32 stream: 4 pages of 16 tokens, head_dim 16; page p's keys max p. */
#define D		16
#define PAGES		4
#define SLOT		(2 * D * 4 * 16)
#define DIGEST		(2 * D * 4)
#define TABLE_OFF	16384
#define IN_OFF		16448
#define OUT_OFF		16640
#define REGION		65536

static void stream_fill(struct pnm_region *r)
{
	uint8_t *base = r->addr;
	uint32_t *table = (uint32_t *)(base + TABLE_OFF);
	float *q = (float *)(base + IN_OFF);
	unsigned int p, c;

	memset(base, 0, REGION);
	for (p = 0; p < PAGES; p++) {
		float *digest = (float *)(base + PAGES * SLOT + p * DIGEST);

		for (c = 0; c < D; c++)
			digest[D + c] = (float)p;
		table[p] = p;
	}
	for (c = 0; c < D; c++)
		q[c] = 1.0f;
}

/* SELECT of the k best pages; k 0 gives a NOP instead. */
static struct cxl_pnm_cmd make_cmd(const struct pnm_region *r, unsigned int k)
{
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	if (!k)
		return cmd;
	cmd.opcode = CXL_PNM_OP_SELECT;
	cmd.dtype = CXL_PNM_DTYPE_FP32;
	cmd.page_shift = 4;
	cmd.group = 1;
	cmd.head_dim = D;
	cmd.n_tokens = PAGES * 16;
	cmd.k = k;
	cmd.pool = pnm_buf(r, 0, PAGES * (SLOT + DIGEST));
	cmd.table = pnm_buf(r, TABLE_OFF, 4 * PAGES);
	cmd.in = pnm_buf(r, IN_OFF, 4 * D);
	cmd.out = pnm_buf(r, OUT_OFF, 4 * PAGES);
	return cmd;
}

static unsigned int pattern_k(uint64_t i)
{
	return i % 5 == 0 ? 0 : 1 + i % 4;
}

FIXTURE(fallback) {
	struct model model;
	struct pnm_dev *dev;
	struct pnm_region *r;
};

FIXTURE_SETUP(fallback)
{
	int ret;

	self->dev = NULL;
	self->r = NULL;
	ret = model_start(&self->model, "64M");
	if (ret == -ECHILD)
		SKIP(return, "device model %s did not start (see PNM_DEVICE)",
		     PNM_DEVICE_BIN);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, pnm_open(self->model.name, &self->dev))
		TH_LOG("%s", pnm_last_error());
	ASSERT_EQ(0, pnm_region_alloc(self->dev, REGION, &self->r))
		TH_LOG("%s", pnm_last_error());
	stream_fill(self->r);
}

FIXTURE_TEARDOWN(fallback)
{
	pnm_region_free(self->r);
	pnm_close(self->dev);
	model_stop(&self->model);
}

TEST_F(fallback, transport_name)
{
	EXPECT_STREQ("direct", pnm_transport_name(self->dev));
}

/* 2000 commands in batches of up to 64, 128 in flight; each once. */
TEST_F(fallback, every_command_once)
{
	const unsigned int total = 2000, depth = 128;
	struct pnm_completion comps[64];
	struct cxl_pnm_cmd cmds[64];
	uint64_t user_data[64];
	uint8_t *seen = calloc(total, 1);
	unsigned int queued = 0, done = 0, i;
	struct pnm_queue *q;
	int n;

	ASSERT_NE(NULL, seen);
	ASSERT_EQ(0, pnm_queue_create(self->dev, depth, PNM_QUEUE_IOPOLL, &q))
		TH_LOG("%s", pnm_last_error());
	while (done < total) {
		unsigned int nr = 0;

		while (queued + nr < total && nr < 64 &&
		       pnm_queue_inflight(q) + nr < depth) {
			cmds[nr] = make_cmd(self->r, pattern_k(queued + nr));
			user_data[nr] = 7000 + queued + nr;
			nr++;
		}
		if (nr) {
			ASSERT_EQ((int)nr, pnm_submit_async(q, cmds, user_data, nr))
				TH_LOG("%s", pnm_last_error());
			queued += nr;
		}
		n = pnm_wait(q, comps, 1, 64, 10000);
		ASSERT_LT(0, n) TH_LOG("%s", pnm_last_error());
		for (i = 0; i < (unsigned int)n; i++) {
			uint64_t id = comps[i].user_data - 7000;

			ASSERT_GT(total, id);
			EXPECT_EQ(0, seen[id]++);
			EXPECT_EQ(0, comps[i].res);
			EXPECT_EQ(0, comps[i].rsvd);
			EXPECT_EQ(CXL_PNM_STATUS_OK, comps[i].result.status);
			EXPECT_EQ(pattern_k(id), comps[i].result.count);
		}
		done += n;
	}
	EXPECT_EQ(0, pnm_queue_inflight(q));
	EXPECT_EQ(0, pnm_reap(q, comps, 64));
	pnm_queue_destroy(q);
	free(seen);
}

/* A batch the transport rejects is split so each command has its res. */
TEST_F(fallback, rejection_is_per_command)
{
	struct pnm_completion comps[4];
	struct cxl_pnm_cmd cmds[4];
	struct pnm_queue *q;
	unsigned int i;

	for (i = 0; i < 4; i++)
		cmds[i] = make_cmd(self->r, 2);
	cmds[1].table.handle = 999;
	ASSERT_EQ(0, pnm_queue_create(self->dev, 4, 0, &q));
	ASSERT_EQ(4, pnm_submit_async(q, cmds, NULL, 4));
	ASSERT_EQ(4, pnm_wait(q, comps, 4, 4, 0));
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(i, comps[i].user_data);
		EXPECT_EQ(i == 1 ? -ENOENT : 0, comps[i].res)
			TH_LOG("command %u", i);
	}
	EXPECT_EQ(2, comps[0].result.count);
	EXPECT_EQ(0, comps[1].result.count);
	pnm_queue_destroy(q);
}

TEST_F(fallback, arguments)
{
	struct pnm_completion comps[8];
	struct cxl_pnm_cmd cmds[9];
	struct pnm_queue *q;
	unsigned int i;

	for (i = 0; i < 9; i++)
		cmds[i] = make_cmd(self->r, 0);
	EXPECT_EQ(-EINVAL, pnm_queue_create(NULL, 8, 0, &q));
	EXPECT_EQ(-EINVAL, pnm_queue_create(self->dev, 0, 0, &q));
	EXPECT_EQ(-EINVAL, pnm_queue_create(self->dev, 8, 2, &q));
	ASSERT_EQ(0, pnm_queue_create(self->dev, 8, 0, &q));
	EXPECT_EQ(0, pnm_submit_async(q, cmds, NULL, 0));
	EXPECT_EQ(-EBUSY, pnm_submit_async(q, cmds, NULL, 9));
	EXPECT_EQ(-EINVAL, pnm_submit_async(q, NULL, NULL, 1));
	cmds[0].in = pnm_buf(self->r, REGION - 4, 8);	/* marked invalid */
	EXPECT_EQ(-EINVAL, pnm_submit_async(q, cmds, NULL, 1));
	EXPECT_EQ(0, pnm_queue_inflight(q));
	EXPECT_EQ(-EINVAL, pnm_wait(q, comps, 1, 8, 0));
	/* Completions wait in the queue until they are reaped. */
	ASSERT_EQ(8, pnm_submit_async(q, cmds + 1, NULL, 8));
	EXPECT_EQ(8, pnm_queue_inflight(q));
	EXPECT_EQ(-EINVAL, pnm_wait(q, comps, 4, 3, 0));
	EXPECT_EQ(3, pnm_reap(q, comps, 3));
	EXPECT_EQ(5, pnm_queue_inflight(q));
	EXPECT_EQ(5, pnm_wait(q, comps, 5, 8, -1));
	EXPECT_EQ(7, comps[4].user_data);
	pnm_queue_destroy(q);
	pnm_queue_destroy(NULL);
}

TEST_HARNESS_MAIN
