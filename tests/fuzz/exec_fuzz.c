// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target of the device model's command decoder and executor.
 *
 * Each input builds a small device memory image (up to 1 MiB of KV area),
 * the device's capabilities, the KV contents and one to four commands, and
 * runs every command through pnm_exec() on every kernel path the CPU has,
 * each with one unit and with three.  Besides the sanitizers it checks:
 *
 *   - a rejected command (non-zero status, or -ENOMEM) wrote nothing;
 *   - an accepted command wrote only inside its output: out_dpa and the
 *     bytes of its output layout, or for DIGEST the pool's digest area;
 *   - SELECT returns at most k pages, ATTEND exactly k;
 *   - every path and unit count gives the same status, result, bytes read
 *     and operation count, the same digests and the same selection.
 *
 * Input layout (every field taken byte by byte; a short input reads
 * zeros):
 *   header  KV size, capabilities, fill mode and seed, command count
 *   command a form byte; form 0 is a raw 64-byte SQ entry, the others
 *           describe a command field by field, with lengths near the
 *           exact ones and page tables and lists written into memory
 *   tail    bytes copied into the KV area at an offset the header chose
 *
 * Build: make fuzz (tests/fuzz/build.mk), clang -fsanitize=fuzzer.
 */
#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cxl_pnm_hw.h"
#include "pnm_exec.h"
#include "pnm_kernels.h"
#include "pnm_units.h"

#define FUZZ_KV_OFFSET		4096ULL
#define FUZZ_KV_STEP		(16ULL << 10)
#define FUZZ_KV_STEPS		64		/* up to 1 MiB of KV area */
#define FUZZ_MAX_CMDS		4
#define FUZZ_MAX_CONFIGS	(2 * PNM_ISA_COUNT)
#define FUZZ_CTRL_FILL		0x5a		/* below the KV area */

/* One way of running the executor: a kernel path and a unit count. */
struct fuzz_config {
	const struct pnm_kernels *kernels;
	struct pnm_units *units;
};

static struct fuzz_config fuzz_configs[FUZZ_MAX_CONFIGS];
static unsigned int fuzz_n_configs;

/* The images: the state before a command, and one per configuration. */
static uint8_t *fuzz_before;
static uint8_t *fuzz_after[FUZZ_MAX_CONFIGS];

struct fuzz_input {
	const uint8_t *p;
	size_t left;
};

static uint8_t take8(struct fuzz_input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static uint16_t take16(struct fuzz_input *in)
{
	return take8(in) | (uint16_t)take8(in) << 8;
}

static uint32_t take32(struct fuzz_input *in)
{
	return take16(in) | (uint32_t)take16(in) << 16;
}

#define fuzz_fail(fmt, ...)						\
	do {								\
		fprintf(stderr, "exec_fuzz: " fmt "\n", ##__VA_ARGS__);	\
		abort();						\
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pnm_units *units = pnm_units_create(3);
	unsigned int isa, i;

	(void)argc;
	(void)argv;
	if (!units)
		fuzz_fail("cannot start 3 compute units");
	for (isa = 0; isa < PNM_ISA_COUNT; isa++) {
		const struct pnm_kernels *k = pnm_kernels_get(isa);

		if (!k)
			continue;
		fuzz_configs[fuzz_n_configs++] = (struct fuzz_config){ k, NULL };
		fuzz_configs[fuzz_n_configs++] = (struct fuzz_config){ k, units };
	}
	fuzz_before = malloc(FUZZ_KV_OFFSET + FUZZ_KV_STEPS * FUZZ_KV_STEP);
	for (i = 0; i < fuzz_n_configs; i++)
		fuzz_after[i] = malloc(FUZZ_KV_OFFSET + FUZZ_KV_STEPS * FUZZ_KV_STEP);
	for (i = 0; i < fuzz_n_configs; i++)
		fprintf(stderr, "exec_fuzz: config %u: %s kernels, %u units\n", i,
			fuzz_configs[i].kernels->name,
			pnm_units_count(fuzz_configs[i].units));
	return 0;
}

/* ---- device memory ------------------------------------------------------ */

static uint32_t xorshift(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9U;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/*
 * Fill the KV area: random bits (NaN, infinities and subnormals of every
 * dtype), or numbers in [-1, 1] stored as bf16, fp16 or fp32.
 */
static void fuzz_fill(uint8_t *kv, uint64_t size, unsigned int mode,
		      uint32_t seed)
{
	uint64_t i;

	for (i = 0; i + 4 <= size; i += 4) {
		uint32_t r = xorshift(&seed);
		uint32_t v;

		switch (mode) {
		case 0:
			v = r;
			break;
		case 1:	/* two bf16 of magnitude below 1: exponent < 127 */
			v = (r & 0x80ff80ffU) | 0x3c003c00U;
			break;
		case 2:	/* two fp16 below 1 */
			v = (r & 0x83ff83ffU) | 0x34003400U;
			break;
		default: /* fp32 below 1 */
			v = (r & 0x807fffffU) | 0x3e000000U;
			break;
		}
		memcpy(kv + i, &v, 4);
	}
}

/* Store a 32-bit value if [dpa, dpa + 4) lies in the image. */
static void fuzz_poke32(uint8_t *mem, uint64_t mem_size, uint64_t dpa,
			uint32_t val)
{
	uint32_t le = htole32(val);

	if (dpa < mem_size && mem_size - dpa >= 4)
		memcpy(mem + dpa, &le, 4);
}

/* ---- commands ----------------------------------------------------------- */

/* Most lengths are exact; some are a few elements short or long. */
static int64_t fuzz_delta(uint8_t b)
{
	if (b >= 0xf0)
		return -(int64_t)(b - 0xef) * 4;
	if (b >= 0xe0)
		return (int64_t)(b - 0xdf) * 4;
	return 0;
}

static uint32_t fuzz_len(uint64_t exact, uint8_t delta_byte)
{
	int64_t len = (int64_t)exact + fuzz_delta(delta_byte);

	if (len < 0)
		return 0;
	return len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
}

static uint64_t fuzz_align64(uint64_t x)
{
	return (x + 63) & ~63ULL;
}

/*
 * A command described field by field: mostly valid shapes, operands laid
 * out one after the other from a chosen offset, the page table and page
 * list written into memory, each with a chance of being wrong.
 */
static void fuzz_structured(struct fuzz_input *in, uint8_t *mem,
			    uint64_t mem_size, struct pnm_hw_cmd *hw)
{
	static const uint8_t shifts[] = { 2, 3, 4, 5, 6, 7, 8, 1, 9 };
	unsigned int opcode = take8(in) % 6;	/* 5: an unknown opcode */
	unsigned int dtype = take8(in) % 4;	/* 3: unknown */
	unsigned int page_shift = shifts[take8(in) % sizeof(shifts)];
	unsigned int group = 1 + take8(in) % 9;
	unsigned int head_dim = 16 * (take8(in) % 10);
	uint8_t flags = take8(in), odd = take8(in);
	uint32_t n_tokens = take16(in) & 0x1fff;
	unsigned int k = take8(in);
	unsigned int n_list = take8(in) % 8;
	uint32_t n_slots = take16(in) % 2048;
	uint64_t start = (uint64_t)take16(in) * 64 % (mem_size - FUZZ_KV_OFFSET);
	uint8_t d_pool = take8(in), d_table = take8(in), d_in = take8(in),
		d_out = take8(in), table_mode = take8(in), list_step = take8(in);
	unsigned int esize = dtype == PNM_DTYPE_FP32 ? 4 : 2;
	uint64_t slot_bytes = 2ULL * head_dim * esize << page_shift;
	uint64_t digest_bytes = 2ULL * head_dim * esize;
	uint64_t n_pages = ((uint64_t)n_tokens + (1U << page_shift) - 1) >> page_shift;
	unsigned int list_len = opcode == PNM_OP_ATTEND ? k :
				(opcode == PNM_OP_SELECT || opcode == PNM_OP_SELECT_ATTEND ?
				 n_list : 0);
	uint64_t pool, table, input, out, out_len, i, page;

	if (odd & 1)
		head_dim += 8;			/* not a multiple of 16 */
	if (opcode == PNM_OP_ATTEND)
		k %= 16;
	out_len = 4ULL * ((uint64_t)group * head_dim + group);
	if (opcode == PNM_OP_SELECT)
		out_len = 4ULL * k;
	else if (opcode == PNM_OP_SELECT_ATTEND)
		out_len += 4ULL * k;

	pool = FUZZ_KV_OFFSET + start;
	table = fuzz_align64(pool + fuzz_len(n_slots * (slot_bytes + digest_bytes), d_pool));
	input = fuzz_align64(table + 4 * n_pages);
	out = fuzz_align64(input + 4 * ((uint64_t)group * head_dim + list_len));
	if (odd & 2)
		out = input + 4 * (odd >> 4);	/* overlaps the input */

	memset(hw, 0, sizeof(*hw));
	hw->opcode = opcode;
	hw->dtype = dtype;
	hw->page_shift = page_shift;
	hw->group = group;
	hw->head_dim = htole16(head_dim);
	hw->flags = flags & 0x80 ? flags : flags & PNM_CMD_FLAGS_ALL;
	hw->rsvd = (odd & 0xc) == 0xc ? odd : 0;
	hw->n_tokens = htole32(n_tokens);
	hw->k = htole16(k);
	hw->n_list = htole16(n_list);
	hw->pool_dpa = htole64(pool);
	hw->pool_len = htole32(fuzz_len(n_slots * (slot_bytes + digest_bytes), d_pool));
	hw->table_dpa = htole64(table);
	hw->table_len = htole32(fuzz_len(4 * n_pages, d_table));
	hw->in_dpa = htole64(input);
	hw->in_len = htole32(fuzz_len(4 * ((uint64_t)group * head_dim + list_len), d_in));
	hw->out_dpa = htole64(out);
	hw->out_len = htole32(fuzz_len(out_len, d_out));

	/* Page table: a permutation-like walk over the slots, or input bytes. */
	for (i = 0; i < n_pages && i < 4096; i++) {
		uint32_t slot = table_mode & 1 ? take16(in) :
				(uint32_t)((i * (2 * (table_mode >> 1) + 1)) %
					   (n_slots ? n_slots : 1));

		if ((table_mode & 0xf0) == 0xf0 && i == n_pages - 1)
			slot = n_slots;		/* one past the pool */
		fuzz_poke32(mem, mem_size, table + 4 * i, slot);
	}
	/* Page list: ascending steps, now and then a step of 0 (invalid). */
	page = list_step & 3;
	for (i = 0; i < list_len; i++) {
		fuzz_poke32(mem, mem_size, input + 4 * ((uint64_t)group * head_dim + i),
			    (uint32_t)page);
		page += (list_step & 0xc0) == 0xc0 && i == 0 ? 0 : 1 + (list_step >> 2) % 3;
	}
}

/* A raw SQ entry, with its DPAs folded near the image now and then. */
static void fuzz_raw(struct fuzz_input *in, uint64_t mem_size,
		     struct pnm_hw_cmd *hw)
{
	uint8_t fold = take8(in);
	uint8_t bytes[sizeof(*hw)];
	unsigned int i;

	for (i = 0; i < sizeof(bytes); i++)
		bytes[i] = take8(in);
	memcpy(hw, bytes, sizeof(*hw));
	if (!(fold & 1))
		return;
	hw->opcode %= PNM_OP_COUNT + 1;
	hw->pool_dpa = htole64(le64toh(hw->pool_dpa) % (mem_size + 8192));
	hw->table_dpa = htole64(le64toh(hw->table_dpa) % (mem_size + 8192));
	hw->in_dpa = htole64(le64toh(hw->in_dpa) % (mem_size + 8192));
	hw->out_dpa = htole64(le64toh(hw->out_dpa) % (mem_size + 8192));
	if (fold & 2) {
		hw->pool_len = htole32(le32toh(hw->pool_len) % (mem_size + 1));
		hw->table_len = htole32(le32toh(hw->table_len) % 65536);
		hw->in_len = htole32(le32toh(hw->in_len) % 65536);
		hw->out_len = htole32(le32toh(hw->out_len) % 65536);
	}
}

/* ---- checks ------------------------------------------------------------- */

/* Where an accepted command may write: [*lo, *hi). */
static void fuzz_output_range(const struct pnm_hw_cmd *hw,
			      const struct pnm_exec_result *res,
			      uint64_t *lo, uint64_t *hi)
{
	uint64_t g = hw->group, d = le16toh(hw->head_dim);
	uint64_t attend = 4 * (g * d + g), bytes = 0;

	if (hw->opcode == PNM_OP_DIGEST) {
		uint64_t slot = pnm_hw_slot_bytes(hw->dtype, hw->page_shift, d);
		uint64_t digest = pnm_hw_digest_bytes(hw->dtype, d);
		uint64_t n_slots = le32toh(hw->pool_len) / (slot + digest);

		*lo = le64toh(hw->pool_dpa) + n_slots * slot;
		*hi = *lo + n_slots * digest;
		return;
	}
	if (hw->opcode == PNM_OP_SELECT)
		bytes = 4ULL * res->result;
	else if (hw->opcode == PNM_OP_ATTEND)
		bytes = attend;
	else if (hw->opcode == PNM_OP_SELECT_ATTEND)
		bytes = attend + 4ULL * res->result;
	if (bytes > le32toh(hw->out_len))
		fuzz_fail("opcode %u wrote %llu output bytes into a %u-byte buffer",
			  hw->opcode, (unsigned long long)bytes, le32toh(hw->out_len));
	*lo = le64toh(hw->out_dpa);
	*hi = *lo + bytes;
}

/* The first byte of [from, to) that differs, or @to. */
static uint64_t fuzz_first_change(const uint8_t *before, const uint8_t *after,
				  uint64_t from, uint64_t to)
{
	if (from >= to || !memcmp(before + from, after + from, to - from))
		return to;
	while (before[from] == after[from])
		from++;
	return from;
}

static void fuzz_check_untouched(const uint8_t *before, const uint8_t *after,
				 uint64_t lo, uint64_t hi, uint64_t size,
				 const char *what, unsigned int config)
{
	uint64_t at;

	if (hi > size)
		hi = size;
	if (lo > hi)
		lo = hi;
	at = fuzz_first_change(before, after, 0, lo);
	if (at == lo)
		at = fuzz_first_change(before, after, hi, size);
	if (at < size && (at < lo || at >= hi))
		fuzz_fail("config %u: %s changed byte %#llx (output [%#llx, %#llx))",
			  config, what, (unsigned long long)at,
			  (unsigned long long)lo, (unsigned long long)hi);
}

/* Every configuration must agree with the first (scalar, one unit). */
static void fuzz_compare(const struct pnm_hw_cmd *hw,
			 const struct pnm_exec_result *a,
			 const struct pnm_exec_result *b, const uint8_t *img_a,
			 const uint8_t *img_b, uint64_t size, unsigned int config)
{
	uint64_t lo, hi;

	if (a->status != b->status || a->result != b->result ||
	    a->bytes_read != b->bytes_read || a->flops != b->flops)
		fuzz_fail("config %u: opcode %u gave status %u result %u bytes %llu flops %llu, scalar %u %u %llu %llu",
			  config, hw->opcode, b->status, b->result,
			  (unsigned long long)b->bytes_read, (unsigned long long)b->flops,
			  a->status, a->result, (unsigned long long)a->bytes_read,
			  (unsigned long long)a->flops);
	if (a->status)
		return;
	if (hw->opcode == PNM_OP_DIGEST || hw->opcode == PNM_OP_SELECT) {
		if (memcmp(img_a, img_b, size))
			fuzz_fail("config %u: opcode %u output differs from the scalar path",
				  config, hw->opcode);
	} else if (hw->opcode == PNM_OP_SELECT_ATTEND) {
		fuzz_output_range(hw, a, &lo, &hi);
		lo = hi - 4ULL * a->result;
		if (memcmp(img_a + lo, img_b + lo, hi - lo))
			fuzz_fail("config %u: SELECT_ATTEND selected other pages than the scalar path",
				  config);
	}
}

static void fuzz_run(const struct pnm_hw_cmd *hw, uint64_t mem_size)
{
	struct pnm_exec_result res[FUZZ_MAX_CONFIGS];
	unsigned int c;

	for (c = 0; c < fuzz_n_configs; c++) {
		struct pnm_exec_dev dev = {
			.mem = fuzz_after[c],
			.kv_offset = FUZZ_KV_OFFSET,
			.kv_size = mem_size - FUZZ_KV_OFFSET,
			.kernels = fuzz_configs[c].kernels,
			.units = fuzz_configs[c].units,
		};
		uint64_t lo = 0, hi = 0;
		int ret;

		memcpy(fuzz_after[c], fuzz_before, mem_size);
		dev.dtypes = le32toh(((struct pnm_hw_ctrl *)fuzz_before)->dtypes);
		dev.max_head_dim = le32toh(((struct pnm_hw_ctrl *)fuzz_before)->max_head_dim);
		dev.max_group = le32toh(((struct pnm_hw_ctrl *)fuzz_before)->max_group);
		dev.page_shifts = le32toh(((struct pnm_hw_ctrl *)fuzz_before)->page_shifts);
		dev.max_k = le32toh(((struct pnm_hw_ctrl *)fuzz_before)->max_k);

		ret = pnm_exec(&dev, hw, &res[c]);
		if (ret && ret != -ENOMEM)
			fuzz_fail("pnm_exec returned %d", ret);
		if (ret || res[c].status >= PNM_STATUS_COUNT) {
			if (!ret)
				fuzz_fail("status %u is not in the table", res[c].status);
		}
		if (!ret && !res[c].status) {
			fuzz_output_range(hw, &res[c], &lo, &hi);
			if ((hw->opcode == PNM_OP_SELECT || hw->opcode == PNM_OP_SELECT_ATTEND) &&
			    res[c].result > le16toh(hw->k))
				fuzz_fail("selected %u pages with k %u", res[c].result,
					  le16toh(hw->k));
			if (hw->opcode == PNM_OP_ATTEND && res[c].result != le16toh(hw->k))
				fuzz_fail("attended %u pages with k %u", res[c].result,
					  le16toh(hw->k));
		}
		fuzz_check_untouched(fuzz_before, fuzz_after[c], lo, hi, mem_size,
				     ret || res[c].status ? "a rejected command" :
							    "an accepted command", c);
		if (ret)
			return;		/* out of memory: nothing to compare */
		if (c)
			fuzz_compare(hw, &res[0], &res[c], fuzz_after[0],
				     fuzz_after[c], mem_size, c);
	}
	memcpy(fuzz_before, fuzz_after[0], mem_size);
}

/*
 * The capabilities live in the image's control block, which the executor
 * never reads: pnm_exec_dev takes them, and fuzz_run copies them from
 * there.  They stay within what the kernels' buffers hold.
 */
static void fuzz_caps(struct fuzz_input *in, struct pnm_hw_ctrl *ctrl)
{
	uint8_t mode = take8(in);

	ctrl->dtypes = htole32(7);
	ctrl->max_head_dim = htole32(PNM_KERNEL_MAX_HEAD_DIM);
	ctrl->max_group = htole32(PNM_KERNEL_MAX_GROUP);
	ctrl->page_shifts = htole32(0x1fc);
	ctrl->max_k = htole32(65535);
	if (!(mode & 1))
		return;
	ctrl->dtypes = htole32(take8(in) & 7);
	ctrl->max_head_dim = htole32(16 * (1 + take8(in) % 16));
	ctrl->max_group = htole32(1 + take8(in) % PNM_KERNEL_MAX_GROUP);
	ctrl->page_shifts = htole32(take16(in) & 0x1fc);
	ctrl->max_k = htole32(take16(in));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint64_t mem_size = FUZZ_KV_OFFSET + (1 + take8(&in) % FUZZ_KV_STEPS) * FUZZ_KV_STEP;
	unsigned int fill = take8(&in) % 4, n_cmds = 1 + take8(&in) % FUZZ_MAX_CMDS;
	uint32_t seed = take32(&in);
	uint64_t tail_at = take32(&in);
	struct pnm_hw_cmd cmds[FUZZ_MAX_CMDS];
	unsigned int i;

	memset(fuzz_before, FUZZ_CTRL_FILL, FUZZ_KV_OFFSET);
	fuzz_caps(&in, (struct pnm_hw_ctrl *)fuzz_before);
	fuzz_fill(fuzz_before + FUZZ_KV_OFFSET, mem_size - FUZZ_KV_OFFSET, fill, seed);

	for (i = 0; i < n_cmds; i++) {
		if (take8(&in) % 4 == 0)
			fuzz_raw(&in, mem_size, &cmds[i]);
		else
			fuzz_structured(&in, fuzz_before, mem_size, &cmds[i]);
	}
	/* The rest of the input overwrites part of the KV area. */
	tail_at = FUZZ_KV_OFFSET + tail_at % (mem_size - FUZZ_KV_OFFSET);
	if (in.left > mem_size - tail_at)
		in.left = mem_size - tail_at;
	memcpy(fuzz_before + tail_at, in.p, in.left);

	for (i = 0; i < n_cmds; i++)
		fuzz_run(&cmds[i], mem_size);
	return 0;
}
