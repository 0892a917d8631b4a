// SPDX-License-Identifier: GPL-2.0-only
/*
 * Bad commands: every status of the validation table in
 * Documentation/device-interface.rst, its order when a command has several
 * faults, and that a rejected command leaves device memory untouched.
 *
 * Commands the direct transport would reject as the kernel driver does
 * (unknown opcode, flags, reserved byte, a buffer outside its region) go
 * to the device with pnm_direct_submit_raw().
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "pnm_unit.h"

#define DTYPE		CXL_PNM_DTYPE_FP16
#define HEAD_DIM	32
#define PAGE_SHIFT	4
#define GROUP		4
#define N_TOKENS	50	/* 4 pages, the last with 2 tokens */
#define N_PAGES		4
#define N_SLOTS		7

FIXTURE(errors) {
	struct pnm_unit_device ud;
	struct pnm_dev *dev;
	struct pnm_unit_stream s;
	uint8_t *snapshot;
};

FIXTURE_SETUP(errors)
{
	struct cxl_pnm_result res;
	struct cxl_pnm_cmd cmd;

	ASSERT_EQ(0, pnm_unit_open(&self->ud, NULL, &self->dev));
	ASSERT_EQ(0, pnm_unit_stream_init(&self->s, self->dev, DTYPE, HEAD_DIM,
					  PAGE_SHIFT, GROUP, N_TOKENS, N_SLOTS));
	ASSERT_EQ(N_PAGES, self->s.n_pages);
	pnm_unit_stream_fill(&self->s, 3);
	self->snapshot = malloc(self->s.region->size);
	ASSERT_NE(NULL, self->snapshot);

	cmd = pnm_unit_cmd(&self->s, CXL_PNM_OP_DIGEST, 0, 0, 0, 0, 0);
	ASSERT_EQ(0, pnm_submit(self->dev, &cmd, &res, 1, 0));
	ASSERT_EQ(CXL_PNM_STATUS_OK, res.status);
}

FIXTURE_TEARDOWN(errors)
{
	free(self->snapshot);
	if (self->s.region)
		pnm_unit_stream_free(&self->s);
	pnm_close(self->dev);
	/* Exit status 0: a clean stop, and no leak the sanitizers found. */
	EXPECT_EQ(0, pnm_unit_device_stop(&self->ud));
}

/* Fill the output with a sentinel and remember the whole region. */
static void before_command(FIXTURE_DATA(errors) *self)
{
	memset(self->s.out, 0xa5, self->s.out_cap);
	memcpy(self->snapshot, self->s.region->addr, self->s.region->size);
}

/* A rejected command must leave every byte of the region as it was. */
static void check_untouched(struct __test_metadata *_metadata,
			    FIXTURE_DATA(errors) *self, unsigned int status)
{
	const uint8_t *now = self->s.region->addr;
	uint64_t i;

	if (status == CXL_PNM_STATUS_OK)
		return;
	for (i = 0; i < self->s.region->size; i++)
		ASSERT_EQ(self->snapshot[i], now[i]) {
			TH_LOG("%s command changed byte %llu of the region",
			       pnm_status_name(status), (unsigned long long)i);
		}
}

static void expect_status(struct __test_metadata *_metadata,
			  FIXTURE_DATA(errors) *self,
			  const struct cxl_pnm_cmd *cmd, unsigned int status)
{
	struct cxl_pnm_result res;
	int ret;

	before_command(self);
	ret = pnm_submit(self->dev, cmd, &res, 1, 0);
	ASSERT_EQ(0, ret) {
		TH_LOG("pnm_submit: %s", pnm_last_error());
	}
	EXPECT_EQ(status, res.status) {
		TH_LOG("opcode %u: status '%s', expected '%s'", cmd->opcode,
		       pnm_status_name(res.status), pnm_status_name(status));
	}
	check_untouched(_metadata, self, status);
}

static void expect_raw_status(struct __test_metadata *_metadata,
			      FIXTURE_DATA(errors) *self,
			      const struct pnm_hw_cmd *hw, unsigned int status)
{
	struct pnm_hw_cqe cqe;
	int ret;

	before_command(self);
	ret = pnm_direct_submit_raw(self->dev, hw, &cqe, 1, 0);
	ASSERT_EQ(0, ret) {
		TH_LOG("pnm_direct_submit_raw: %s", pnm_last_error());
	}
	EXPECT_EQ(status, le16toh(cqe.status)) {
		TH_LOG("opcode %u: status '%s', expected '%s'", hw->opcode,
		       pnm_status_name(le16toh(cqe.status)), pnm_status_name(status));
	}
	check_untouched(_metadata, self, status);
}

/* A valid command of @opcode with exact buffers; @list must be ready. */
static struct cxl_pnm_cmd good_cmd(FIXTURE_DATA(errors) *self,
				   unsigned int opcode)
{
	struct pnm_unit_stream *s = &self->s;

	switch (opcode) {
	case CXL_PNM_OP_SELECT:
		return pnm_unit_cmd(s, opcode, 2, 0, 0, 0,
				    pnm_unit_out_bytes(s, opcode, 2));
	case CXL_PNM_OP_ATTEND:
		s->list[0] = 1;
		s->list[1] = 3;
		return pnm_unit_cmd(s, opcode, 2, 0, 0, 2,
				    pnm_unit_out_bytes(s, opcode, 2));
	case CXL_PNM_OP_SELECT_ATTEND:
		return pnm_unit_cmd(s, opcode, 2, 0, 0, 0,
				    pnm_unit_out_bytes(s, opcode, 2));
	default:
		return pnm_unit_cmd(s, opcode, 0, 0, 0, 0, 0);
	}
}

static const unsigned int compute_ops[] = {
	CXL_PNM_OP_DIGEST, CXL_PNM_OP_SELECT, CXL_PNM_OP_ATTEND,
	CXL_PNM_OP_SELECT_ATTEND,
};
#define N_COMPUTE_OPS	(sizeof(compute_ops) / sizeof(compute_ops[0]))

TEST_F(errors, good_commands_pass)
{
	unsigned int i;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);
	}
}

TEST_F(errors, bad_opcode)
{
	struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	struct cxl_pnm_result res;
	struct pnm_hw_cmd hw;

	hw = pnm_unit_hw_cmd(&cmd, &self->s);
	hw.opcode = PNM_OP_COUNT;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_OPCODE);
	hw.opcode = 0xff;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_OPCODE);

	/* The transport rejects it first, as the driver does. */
	cmd.opcode = CXL_PNM_OP_SELECT_ATTEND + 1;
	EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));
}

TEST_F(errors, nop_checks_only_reserved)
{
	struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	struct pnm_hw_cmd hw;

	cmd.opcode = CXL_PNM_OP_NOP;
	cmd.dtype = 9;
	cmd.head_dim = 0;
	cmd.group = 0;
	cmd.k = 0;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);

	hw = pnm_unit_hw_cmd(&cmd, &self->s);
	hw.pool_dpa = 0;	/* ranges are not checked either */
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_OK);
	hw.flags = 0x4;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);
	hw.flags = 0;
	hw.rsvd = 1;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);
}

TEST_F(errors, bad_dtype)
{
	const unsigned int dtypes[] = { 3, 7, 255 };
	unsigned int i, j;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		for (j = 0; j < 3; j++) {
			struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

			cmd.dtype = dtypes[j];
			expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_DTYPE);
		}
	}
}

TEST_F(errors, bad_head_dim)
{
	const unsigned int dims[] = { 0, 8, 24, 33, 272, 65535 };
	unsigned int i, j;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		for (j = 0; j < sizeof(dims) / sizeof(dims[0]); j++) {
			struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

			cmd.head_dim = dims[j];
			expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_SHAPE);
		}
	}
}

TEST_F(errors, bad_group)
{
	const unsigned int groups[] = { 0, 33, 255 };
	unsigned int i, j;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		for (j = 0; j < 3; j++) {
			struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

			cmd.group = groups[j];
			expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_SHAPE);
		}
	}
}

TEST_F(errors, bad_page_shift)
{
	const unsigned int shifts[] = { 0, 1, 9, 31, 32, 255 };
	unsigned int i, j;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		for (j = 0; j < sizeof(shifts) / sizeof(shifts[0]); j++) {
			struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

			cmd.page_shift = shifts[j];
			expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_SHAPE);
		}
	}
}

TEST_F(errors, reserved_byte_and_unknown_flags)
{
	unsigned int i;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);
		struct pnm_hw_cmd hw = pnm_unit_hw_cmd(&cmd, &self->s);
		struct cxl_pnm_result res;

		hw.rsvd = 0x80;
		expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);
		hw.rsvd = 0;
		hw.flags = 0x4;
		expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);
		hw.flags = 0x80 | CXL_PNM_CMD_KEEP_SINK;
		expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);

		/* Through the transport: EINVAL before the device sees them. */
		cmd.flags = 0x4;
		EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));
		cmd.flags = 0;
		cmd.rsvd = 1;
		EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));
	}
}

/* Put operand @which of @hw at @dpa with @len bytes. */
static void set_operand(struct pnm_hw_cmd *hw, unsigned int which,
			uint64_t dpa, uint32_t len)
{
	__le64 *dpas[] = { &hw->pool_dpa, &hw->table_dpa, &hw->in_dpa, &hw->out_dpa };
	__le32 *lens[] = { &hw->pool_len, &hw->table_len, &hw->in_len, &hw->out_len };

	*dpas[which] = htole64(dpa);
	*lens[which] = htole32(len);
}

TEST_F(errors, operand_outside_kv_area)
{
	struct pnm_direct_state st;
	unsigned int i, which;

	ASSERT_EQ(0, pnm_direct_get_state(self->dev, &st));
	for (i = 0; i < N_COMPUTE_OPS; i++) {
		/* DIGEST uses only the pool and the table. */
		unsigned int n_used = compute_ops[i] == CXL_PNM_OP_DIGEST ? 2 : 4;

		for (which = 0; which < 4; which++) {
			struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);
			struct pnm_hw_cmd hw = pnm_unit_hw_cmd(&cmd, &self->s);
			uint32_t len = le32toh(which == 0 ? hw.pool_len :
					       which == 1 ? hw.table_len :
					       which == 2 ? hw.in_len : hw.out_len);
			unsigned int want = which < n_used ?
					    CXL_PNM_STATUS_BAD_RANGE : CXL_PNM_STATUS_OK;

			if (!len)
				len = 64;
			/* In the control block. */
			set_operand(&hw, which, 0, len);
			expect_raw_status(_metadata, self, &hw, want);
			/* Ending one byte into the KV area. */
			set_operand(&hw, which, st.kv_offset - len + 1, len);
			expect_raw_status(_metadata, self, &hw, want);
			/* Running one byte past its end. */
			set_operand(&hw, which, st.kv_offset + st.kv_size - len + 1, len);
			expect_raw_status(_metadata, self, &hw, want);
			/* Past the end of device memory. */
			set_operand(&hw, which, st.dev_size + 4096, len);
			expect_raw_status(_metadata, self, &hw, want);
			/* dpa + len wraps around 2^64. */
			set_operand(&hw, which, UINT64_MAX - len / 2, len);
			expect_raw_status(_metadata, self, &hw, want);
		}
	}
}

TEST_F(errors, short_buffers)
{
	struct pnm_unit_stream *s = &self->s;
	unsigned int i;

	/* Page table: 4 bytes per page. */
	for (i = 0; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

		cmd.table.length -= 4;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
	}
	/* Input: the query, then the page list. */
	for (i = 1; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

		cmd.in.length = 4 * GROUP * HEAD_DIM - 4;
		cmd.k = compute_ops[i] == CXL_PNM_OP_ATTEND ? 0 : cmd.k;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
	}
	{
		struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_ATTEND);

		cmd.in.length -= 4;	/* room for 1 of the k = 2 pages */
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
	}
	{
		struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_SELECT);

		s->list[0] = 1;
		cmd.n_list = 1;		/* the excluded page has no room */
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
		cmd.in.length += 4;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);
	}
	/* Output: pages selected, out and lse, or both. */
	for (i = 1; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

		cmd.out.length -= 4;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
	}
	{
		/* k above the page count needs room for N pages only. */
		struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_SELECT);

		cmd.k = 1000;
		cmd.out.length = 4 * N_PAGES - 4;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);
		cmd.out.length = 4 * N_PAGES;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);
	}
}

TEST_F(errors, page_table_entry_past_pool)
{
	struct pnm_unit_stream *s = &self->s;
	uint32_t saved = s->table[2];
	unsigned int i;

	for (i = 0; i < N_COMPUTE_OPS; i++) {
		struct cxl_pnm_cmd cmd = good_cmd(self, compute_ops[i]);

		s->table[2] = N_SLOTS;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_PAGE);
		s->table[2] = UINT32_MAX;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_PAGE);
		s->table[2] = saved;

		/* A pool too short for the slots the table names. */
		cmd.pool.length = s->pool_len / N_SLOTS * 2;
		expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_PAGE);
	}
}

TEST_F(errors, bad_page_lists)
{
	const uint32_t bad[][2] = {
		{ 1, N_PAGES },		/* past the stream */
		{ 2, 1 },		/* not ascending */
		{ 1, 1 },		/* duplicate */
		{ 0, UINT32_MAX },
	};
	struct pnm_unit_stream *s = &self->s;
	unsigned int i, j;

	for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
		for (i = 1; i < N_COMPUTE_OPS; i++) {
			struct cxl_pnm_cmd cmd;

			cmd = pnm_unit_cmd(s, compute_ops[i], 2, 2, 0, 2,
					   pnm_unit_out_bytes(s, compute_ops[i], 2));
			s->list[0] = bad[j][0];
			s->list[1] = bad[j][1];
			expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_LIST);
		}
	}
}

TEST_F(errors, bad_k)
{
	const unsigned int both = CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT;
	struct cxl_pnm_cmd cmd;

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.k = 0;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_K);
	cmd = good_cmd(self, CXL_PNM_OP_SELECT_ATTEND);
	cmd.k = 0;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_K);

	/* Two kept pages need k >= 2. */
	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.k = 1;
	cmd.flags = both;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_K);
	cmd = good_cmd(self, CXL_PNM_OP_SELECT_ATTEND);
	cmd.k = 1;
	cmd.flags = both;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_K);
	cmd.k = 2;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);

	/* ATTEND with k = 0 attends nothing, which is valid. */
	cmd = good_cmd(self, CXL_PNM_OP_ATTEND);
	cmd.k = 0;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);
}

TEST_F(errors, too_many_pages)
{
	/* N = 2^24 + 1 pages of 4 tokens, all in slot 0. */
	const uint64_t n_pages = (1ULL << 24) + 1;
	struct pnm_region *table;
	struct cxl_pnm_cmd cmd;

	ASSERT_EQ(0, pnm_region_alloc(self->dev, 4 * n_pages + 4092, &table));
	cmd = good_cmd(self, CXL_PNM_OP_DIGEST);
	cmd.page_shift = 2;
	cmd.n_tokens = (uint32_t)(n_pages * 4);
	cmd.table = pnm_buf(table, 0, 4 * n_pages);
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_LENGTH);

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.page_shift = 2;
	cmd.n_tokens = (uint32_t)(n_pages * 4);
	cmd.table = pnm_buf(table, 0, 4 * n_pages);
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_LENGTH);
	pnm_region_free(table);
}

TEST_F(errors, output_overlaps_input)
{
	struct pnm_unit_stream *s = &self->s;
	struct cxl_pnm_cmd cmd;

	/* SELECT writing into the tail of its query. */
	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.out.offset = cmd.in.offset + cmd.in.length - 4;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OVERLAP);
	/* Right after it is fine. */
	cmd.out.offset += 4;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OK);

	/* ATTEND writing over a page slot. */
	cmd = good_cmd(self, CXL_PNM_OP_ATTEND);
	cmd.out.offset = s->pool_off + 128;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OVERLAP);

	/* SELECT_ATTEND writing over its page table. */
	cmd = good_cmd(self, CXL_PNM_OP_SELECT_ATTEND);
	cmd.out.offset = s->table_off;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OVERLAP);

	/* DIGEST whose page table lies in the digests it writes. */
	memcpy((uint8_t *)s->region->addr + s->pool_len - 64, s->table,
	       4 * N_PAGES);
	cmd = good_cmd(self, CXL_PNM_OP_DIGEST);
	cmd.table = pnm_buf(s->region, s->pool_len - 64, 4 * N_PAGES);
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_OVERLAP);
}

TEST_F(errors, first_fault_wins)
{
	struct pnm_unit_stream *s = &self->s;
	struct cxl_pnm_cmd cmd;
	struct pnm_hw_cmd hw;
	uint32_t saved = s->table[0];

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.dtype = 5;
	cmd.head_dim = 0;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_DTYPE);

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	hw = pnm_unit_hw_cmd(&cmd, s);
	hw.group = 0;
	hw.rsvd = 1;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_SHAPE);
	hw.group = GROUP;
	hw.pool_dpa = 0;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RESERVED);
	hw.rsvd = 0;
	hw.table_len = 0;
	expect_raw_status(_metadata, self, &hw, CXL_PNM_STATUS_BAD_RANGE);

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.out.length = 0;
	s->table[0] = N_SLOTS;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_SHORT_BUFFER);

	cmd = good_cmd(self, CXL_PNM_OP_ATTEND);
	s->list[0] = N_PAGES;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_PAGE);
	s->table[0] = saved;

	cmd = pnm_unit_cmd(s, CXL_PNM_OP_SELECT, 0, 1, 0, 1,
			   pnm_unit_out_bytes(s, CXL_PNM_OP_SELECT, 0));
	s->list[0] = N_PAGES;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_LIST);

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.k = 0;
	cmd.out.offset = cmd.in.offset;
	expect_status(_metadata, self, &cmd, CXL_PNM_STATUS_BAD_K);
}

TEST_F(errors, transport_checks_buffers)
{
	struct cxl_pnm_cmd cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	struct cxl_pnm_result res;

	cmd.table.handle = self->s.region->handle + 100;
	EXPECT_EQ(-ENOENT, pnm_submit(self->dev, &cmd, &res, 1, 0));

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.out.offset = self->s.region->size - cmd.out.length + 1;
	EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.out.offset = UINT64_MAX - 2;
	EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));

	cmd = good_cmd(self, CXL_PNM_OP_SELECT);
	cmd.in.handle = 0;
	EXPECT_EQ(-EINVAL, pnm_submit(self->dev, &cmd, &res, 1, 0));
}

TEST_HARNESS_MAIN
