// SPDX-License-Identifier: GPL-2.0-only
/*
 * Every kernel path of the device model against the scalar path, in
 * process: pnm_exec() on a plain buffer, with the kernel path forced
 * (scalar, avx2, avx512; a path this CPU lacks is reported and skipped)
 * and with one or several compute units.
 *
 * What must hold, for random valid commands of every opcode and dtype:
 *   - digests: byte for byte the scalar path's;
 *   - selections: page for page the scalar path's, which is also the CPU
 *     reference's (pnm_ref_select), near ties and odd digests included;
 *   - attention: within PNM_UNIT_TOLERANCE of the scalar path and of the
 *     CPU reference;
 *   - status, result, bytes read and operations: identical.
 * PNM_SEED=n changes the random commands; the seed is printed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "pnm_exec.h"
#include "pnm_kernels.h"
#include "pnm_unit.h"
#include "pnm_units.h"

#define MEM_SIZE	(96ULL << 20)
#define KV_OFFSET	4096ULL
#define N_UNITS		3

/* A path to compare with the scalar one. */
struct path {
	const struct pnm_kernels *kern;
	struct pnm_units *units;
	char name[32];
};

/* A stream laid out in the test's device memory, with its buffers. */
struct stream {
	unsigned int dtype, head_dim, page_shift, group;
	uint32_t n_tokens, n_pages, n_slots;
	uint64_t slot_bytes, digest_bytes;
	uint64_t pool, table, in, out;	/* DPAs */
	uint64_t pool_len, out_len;
	struct pnm_ref_stream ref;
};

FIXTURE(paths) {
	uint8_t *mem;
	struct pnm_exec_dev dev;
	struct path path[2 * PNM_ISA_COUNT];
	unsigned int n_paths;
	uint32_t rng;
};

FIXTURE_SETUP(paths)
{
	const char *seed = getenv("PNM_SEED");
	unsigned int isa, u;

	self->rng = seed ? (uint32_t)strtoul(seed, NULL, 0) : 20240611U;
	if (!self->rng)
		self->rng = 1;
	TH_LOG("seed %u", self->rng);
	self->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(MAP_FAILED, self->mem);
	self->dev = (struct pnm_exec_dev){
		.mem = self->mem,
		.kv_offset = KV_OFFSET,
		.kv_size = MEM_SIZE - KV_OFFSET,
		.dtypes = 7,
		.max_head_dim = 256,
		.max_group = 32,
		.page_shifts = 0x1fc,
		.max_k = 65535,
	};
	for (isa = 0; isa < PNM_ISA_COUNT; isa++) {
		const struct pnm_kernels *k = pnm_kernels_get(isa);

		if (!k) {
			static const char *const names[] = { "scalar", "avx2", "avx512" };

			TH_LOG("this CPU lacks the %s path: not tested", names[isa]);
			continue;
		}
		for (u = 0; u < 2; u++) {
			struct path *p = &self->path[self->n_paths++];

			p->kern = k;
			p->units = u ? pnm_units_create(N_UNITS) : NULL;
			ASSERT_TRUE(!u || p->units);
			snprintf(p->name, sizeof(p->name), "%s/%u", k->name,
				 u ? N_UNITS : 1);
		}
	}
}

FIXTURE_TEARDOWN(paths)
{
	unsigned int i;

	for (i = 0; i < self->n_paths; i++)
		pnm_units_destroy(self->path[i].units);
	munmap(self->mem, MEM_SIZE);
}

static uint32_t rand_below(uint32_t *rng, uint32_t n)
{
	uint32_t x = *rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*rng = x;
	return n ? x % n : 0;
}

static uint64_t align64(uint64_t x)
{
	return (x + 63) & ~63ULL;
}

/* Lay a stream out from KV_OFFSET; false if it does not fit. */
static bool stream_layout(struct stream *s, uint8_t *mem)
{
	uint32_t p = 1U << s->page_shift;

	s->n_pages = (s->n_tokens + p - 1) >> s->page_shift;
	s->slot_bytes = pnm_hw_slot_bytes(s->dtype, s->page_shift, s->head_dim);
	s->digest_bytes = pnm_hw_digest_bytes(s->dtype, s->head_dim);
	s->pool = KV_OFFSET;
	s->pool_len = s->n_slots * (s->slot_bytes + s->digest_bytes);
	s->table = align64(s->pool + s->pool_len);
	s->in = align64(s->table + 4ULL * s->n_pages);
	s->out_len = 4ULL * (s->group * s->head_dim + s->group + s->n_pages);
	s->out = align64(s->in + 4ULL * (s->group * s->head_dim + s->n_pages));
	if (s->out + s->out_len > MEM_SIZE || s->pool_len > UINT32_MAX)
		return false;
	s->ref = (struct pnm_ref_stream){
		.dtype = s->dtype, .head_dim = s->head_dim,
		.page_shift = s->page_shift, .group = s->group,
		.n_tokens = s->n_tokens, .pool = mem + s->pool,
		.pool_len = s->pool_len, .table = (uint32_t *)(mem + s->table),
	};
	return true;
}

/*
 * Random keys and values in [-1, 1] (NaN past n_tokens), a shuffled page
 * table and a random query; digests by the scalar path.
 */
static void stream_fill(struct stream *s, uint8_t *mem, uint32_t *rng)
{
	uint32_t *table = (uint32_t *)(mem + s->table);
	float *q = (float *)(mem + s->in);
	uint64_t n = s->n_slots * s->slot_bytes / pnm_hw_dtype_size(s->dtype);
	uint64_t i;
	uint32_t p;

	for (i = 0; i < n; i++)
		pnm_ref_store(s->dtype, mem + s->pool, i, pnm_unit_rand(rng));
	for (p = 0; p < s->n_slots; p++)
		if (p < s->n_pages)
			table[p] = p;
	for (p = s->n_pages; p > 1; p--) {
		uint32_t j = rand_below(rng, p), t = table[p - 1];

		table[p - 1] = table[j];
		table[j] = t;
	}
	if (s->n_pages) {
		uint32_t valid = s->n_tokens - ((s->n_pages - 1) << s->page_shift);
		uint8_t *keys = mem + s->pool + table[s->n_pages - 1] * s->slot_bytes;
		size_t row = (size_t)s->head_dim;
		uint32_t t, c;

		for (t = valid; t < 1U << s->page_shift; t++)
			for (c = 0; c < s->head_dim; c++) {
				pnm_ref_store(s->dtype, keys, t * row + c, NAN);
				pnm_ref_store(s->dtype, keys + s->slot_bytes / 2,
					      t * row + c, NAN);
			}
	}
	for (i = 0; i < (uint64_t)s->group * s->head_dim; i++)
		q[i] = pnm_unit_rand(rng);
}

static struct pnm_hw_cmd stream_cmd(const struct stream *s, unsigned int opcode,
				    unsigned int k, unsigned int n_list,
				    unsigned int flags, unsigned int list_len)
{
	struct pnm_hw_cmd c;

	memset(&c, 0, sizeof(c));
	c.opcode = opcode;
	c.dtype = s->dtype;
	c.page_shift = s->page_shift;
	c.group = s->group;
	c.head_dim = htole16(s->head_dim);
	c.flags = flags;
	c.n_tokens = htole32(s->n_tokens);
	c.k = htole16(k);
	c.n_list = htole16(n_list);
	c.pool_dpa = htole64(s->pool);
	c.pool_len = htole32(s->pool_len);
	c.table_dpa = htole64(s->table);
	c.table_len = htole32(4 * s->n_pages);
	if (opcode != PNM_OP_DIGEST) {
		c.in_dpa = htole64(s->in);
		c.in_len = htole32(4 * (s->group * s->head_dim + list_len));
		c.out_dpa = htole64(s->out);
		c.out_len = htole32(s->out_len);
	}
	return c;
}

static int run(const struct pnm_exec_dev *base, const struct path *p,
	       const struct pnm_hw_cmd *cmd, struct pnm_exec_result *res)
{
	struct pnm_exec_dev dev = *base;

	dev.kernels = p ? p->kern : NULL;
	dev.units = p ? p->units : NULL;
	return pnm_exec(&dev, cmd, res);
}

static bool same_counts(const struct pnm_exec_result *a,
			const struct pnm_exec_result *b)
{
	return a->status == b->status && a->result == b->result &&
	       a->bytes_read == b->bytes_read && a->flops == b->flops;
}

/* Compare out/lse of @n floats with @ref; returns the number off. */
static unsigned int count_off(const float *seen, const float *ref, size_t n)
{
	unsigned int bad = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		bool both_inf = isinf(seen[i]) && seen[i] == ref[i];

		if (!both_inf && !pnm_unit_close(seen[i], ref[i]))
			bad++;
	}
	return bad;
}

/*
 * Run @cmd on the scalar path, then on every path; compare.  @digest:
 * the command rewrites the digest area, compared byte for byte.
 */
static void check_all_paths(struct __test_metadata *_metadata,
			    FIXTURE_DATA(paths) *self, const struct stream *s,
			    const struct pnm_hw_cmd *cmd, unsigned int *rescored)
{
	size_t floats = (size_t)s->group * s->head_dim + s->group;
	uint64_t dig_off = s->pool + s->n_slots * s->slot_bytes;
	uint64_t dig_len = s->n_slots * s->digest_bytes;
	bool digest = cmd->opcode == PNM_OP_DIGEST;
	struct pnm_exec_result ref_res, res;
	uint8_t *ref_out, *saved_digests = NULL, *before = NULL;
	unsigned int i;

	ref_out = malloc(s->out_len + 2 * dig_len);
	ASSERT_NE(NULL, ref_out);
	if (digest) {
		/* Slots outside the table keep what they held before. */
		before = ref_out + s->out_len + dig_len;
		memcpy(before, self->mem + dig_off, dig_len);
	}
	ASSERT_EQ(0, run(&self->dev, NULL, cmd, &ref_res));
	ASSERT_EQ(PNM_STATUS_OK, ref_res.status);
	memcpy(ref_out, self->mem + s->out, s->out_len);
	if (digest) {
		saved_digests = ref_out + s->out_len;
		memcpy(saved_digests, self->mem + dig_off, dig_len);
	}

	for (i = 0; i < self->n_paths; i++) {
		const struct path *p = &self->path[i];
		const float *out = (const float *)(self->mem + s->out);

		memset(self->mem + s->out, 0x5a, s->out_len);
		if (digest)
			memcpy(self->mem + dig_off, before, dig_len);
		ASSERT_EQ(0, run(&self->dev, p, cmd, &res));
		EXPECT_TRUE(same_counts(&ref_res, &res))
			TH_LOG("%s: opcode %u status %u/%u result %u/%u", p->name,
			       cmd->opcode, res.status, ref_res.status, res.result,
			       ref_res.result);
		if (rescored)
			*rescored += res.rescored;
		switch (cmd->opcode) {
		case PNM_OP_DIGEST:
			EXPECT_EQ(0, memcmp(saved_digests, self->mem + dig_off, dig_len))
				TH_LOG("%s: digests differ", p->name);
			break;
		case PNM_OP_SELECT:
			EXPECT_EQ(0, memcmp(ref_out, out, 4ULL * ref_res.result))
				TH_LOG("%s: selection differs", p->name);
			break;
		case PNM_OP_ATTEND:
			EXPECT_EQ(0, count_off(out, (const float *)ref_out, floats))
				TH_LOG("%s: attention differs", p->name);
			break;
		case PNM_OP_SELECT_ATTEND:
			EXPECT_EQ(0, count_off(out, (const float *)ref_out, floats))
				TH_LOG("%s: attention differs", p->name);
			EXPECT_EQ(0, memcmp(ref_out + 4 * floats, out + floats,
					    4ULL * ref_res.result))
				TH_LOG("%s: selection differs", p->name);
			break;
		}
	}
	if (digest)
		memcpy(self->mem + dig_off, saved_digests, dig_len);
	free(ref_out);
}

/* The scalar path against the CPU reference, for the same command. */
static void check_reference(struct __test_metadata *_metadata,
			    FIXTURE_DATA(paths) *self, const struct stream *s,
			    const struct pnm_hw_cmd *cmd)
{
	const uint32_t *list = (const uint32_t *)(self->mem + s->in) +
			       s->group * s->head_dim;
	size_t qf = (size_t)s->group * s->head_dim;
	const float *q = (const float *)(self->mem + s->in);
	const float *out = (const float *)(self->mem + s->out);
	struct pnm_exec_result res;
	float *ref_out;
	uint32_t *pages;
	int n;

	ASSERT_EQ(0, run(&self->dev, NULL, cmd, &res));
	ASSERT_EQ(PNM_STATUS_OK, res.status);
	ref_out = malloc((qf + s->group) * sizeof(float));
	pages = malloc((s->n_pages + 1) * sizeof(*pages));
	ASSERT_TRUE(ref_out && pages);
	if (cmd->opcode == PNM_OP_ATTEND) {
		pnm_ref_attend(&s->ref, q, list, le16toh(cmd->k), ref_out, ref_out + qf);
		EXPECT_EQ(0, count_off(out, ref_out, qf + s->group));
	} else {
		n = pnm_ref_select(&s->ref, q, le16toh(cmd->k), cmd->flags, list,
				   le16toh(cmd->n_list), pages);
		ASSERT_EQ(n, (int)res.result);
		if (cmd->opcode == PNM_OP_SELECT) {
			EXPECT_EQ(0, memcmp(pages, out, 4ULL * n));
		} else {
			EXPECT_EQ(0, memcmp(pages, out + qf + s->group, 4ULL * n));
			pnm_ref_attend(&s->ref, q, pages, n, ref_out, ref_out + qf);
			EXPECT_EQ(0, count_off(out, ref_out, qf + s->group));
		}
	}
	free(ref_out);
	free(pages);
}

/* A random ascending subset of [0, n) of @len pages into @list. */
static void random_list(uint32_t *rng, uint32_t n, unsigned int len,
			uint32_t *list)
{
	unsigned int have = 0;
	uint32_t page;

	for (page = 0; page < n && have < len; page++)
		if (rand_below(rng, n - page) < len - have)
			list[have++] = page;
}

static void random_shape(uint32_t *rng, struct stream *s)
{
	bool large = rand_below(rng, 6) == 0;

	memset(s, 0, sizeof(*s));
	s->dtype = rand_below(rng, 3);
	s->head_dim = 16 * (1 + rand_below(rng, large ? 8 : 16));
	s->group = 1 + rand_below(rng, large ? 4 : 9);
	s->page_shift = 2 + rand_below(rng, 7);
	s->n_tokens = large ? 8192 + rand_below(rng, 40000) : rand_below(rng, 3000);
	s->n_slots = ((s->n_tokens + (1U << s->page_shift) - 1) >> s->page_shift) +
		     rand_below(rng, 4);
}

/* Random valid commands of every opcode through every path. */
TEST_F(paths, random_commands)
{
	unsigned int iter, rescored = 0, n_iter = 60;
	const char *env = getenv("PNM_ITERATIONS");

	if (env)
		n_iter = (unsigned int)strtoul(env, NULL, 0);
	for (iter = 0; iter < n_iter; iter++) {
		uint32_t *list;
		struct pnm_hw_cmd cmd;
		struct stream s;
		unsigned int k, n_list, flags;

		random_shape(&self->rng, &s);
		if (!stream_layout(&s, self->mem))
			continue;
		stream_fill(&s, self->mem, &self->rng);
		list = (uint32_t *)(self->mem + s.in) + s.group * s.head_dim;

		cmd = stream_cmd(&s, PNM_OP_DIGEST, 0, 0, 0, 0);
		check_all_paths(_metadata, self, &s, &cmd, NULL);

		/* SELECT and SELECT_ATTEND with an exclusion list. */
		if (s.n_pages) {
			flags = rand_below(&self->rng, 4);
			n_list = rand_below(&self->rng, 4) ? 0 :
				 rand_below(&self->rng, s.n_pages / 4 + 1);
			random_list(&self->rng, s.n_pages, n_list, list);
			k = 2 + rand_below(&self->rng, s.n_pages + 4);
			if (k > 65535)
				k = 65535;
			cmd = stream_cmd(&s, PNM_OP_SELECT, k, n_list, flags, n_list);
			check_all_paths(_metadata, self, &s, &cmd, &rescored);
			check_reference(_metadata, self, &s, &cmd);
			cmd.opcode = PNM_OP_SELECT_ATTEND;
			check_all_paths(_metadata, self, &s, &cmd, &rescored);
			check_reference(_metadata, self, &s, &cmd);
		}

		/* ATTEND over a random page list. */
		k = rand_below(&self->rng, s.n_pages + 1);
		if (k > 65535)
			k = 65535;
		random_list(&self->rng, s.n_pages, k, list);
		cmd = stream_cmd(&s, PNM_OP_ATTEND, k, 0, 0, k);
		check_all_paths(_metadata, self, &s, &cmd, NULL);
		check_reference(_metadata, self, &s, &cmd);
		if (_metadata->exit_code)
			break;
	}
	TH_LOG("%u commands, %u pages rescored in the scalar order", 4 * iter, rescored);
}

/*
 * Near ties: every page's digest is one base digest with one channel moved
 * by one step of the dtype, so many scores differ by a few ulps and the
 * fast paths must fall back to the scalar order to pick the same pages.
 * The test fails if no fast path ever needed to rescore, since then the
 * ties were not near enough to test anything.
 */
TEST_F(paths, select_near_ties)
{
	unsigned int dtype, rescored = 0, i;

	for (dtype = 0; dtype < PNM_DTYPE_COUNT; dtype++) {
		struct stream s = {
			.dtype = dtype, .head_dim = 128, .page_shift = 4,
			.group = 4, .n_tokens = 16 * 2000, .n_slots = 2000,
		};
		uint8_t *digests;
		struct pnm_hw_cmd cmd;
		uint32_t p;

		ASSERT_TRUE(stream_layout(&s, self->mem));
		stream_fill(&s, self->mem, &self->rng);
		digests = self->mem + s.pool + s.n_slots * s.slot_bytes;
		for (i = 0; i < 2 * s.head_dim; i++) {
			float base = pnm_unit_rand(&self->rng);
			float lo = i < s.head_dim ? base - 1 : base + 1;

			pnm_ref_store(dtype, digests, i, lo);
		}
		for (p = 1; p < s.n_slots; p++) {
			unsigned int c = rand_below(&self->rng, 2 * s.head_dim);
			size_t es = pnm_hw_dtype_size(dtype);
			uint8_t *dg = digests + p * s.digest_bytes;
			uint32_t bits = 0;

			memcpy(dg, digests, s.digest_bytes);
			/*
			 * One step of the dtype away from zero: min stays
			 * below max.
			 */
			memcpy(&bits, dg + c * es, es);
			bits += 1;
			memcpy(dg + c * es, &bits, es);
		}
		for (i = 0; i < 3; i++) {
			cmd = stream_cmd(&s, PNM_OP_SELECT, 128, 0,
					 PNM_CMD_KEEP_SINK | PNM_CMD_KEEP_RECENT, 0);
			check_all_paths(_metadata, self, &s, &cmd, &rescored);
			check_reference(_metadata, self, &s, &cmd);
			stream_fill(&s, self->mem, &self->rng);	/* new query */
		}
	}
	TH_LOG("%u pages rescored in the scalar order", rescored);
	if (self->n_paths > 2)
		EXPECT_LT(0, rescored);
}

/*
 * Digests no DIGEST writes: min above max, NaN, infinity.  The fast paths
 * cannot bound such scores and rescore them; selections stay the scalar
 * path's.
 */
TEST_F(paths, select_odd_digests)
{
	struct stream s = {
		.dtype = PNM_DTYPE_FP32, .head_dim = 32, .page_shift = 4,
		.group = 2, .n_tokens = 16 * 300, .n_slots = 300,
	};
	static const float odd[] = { NAN, INFINITY, -INFINITY, 5.0f, -5.0f, 0.0f };
	struct pnm_hw_cmd cmd;
	uint8_t *digests;
	unsigned int i;

	ASSERT_TRUE(stream_layout(&s, self->mem));
	stream_fill(&s, self->mem, &self->rng);
	cmd = stream_cmd(&s, PNM_OP_DIGEST, 0, 0, 0, 0);
	ASSERT_EQ(0, run(&self->dev, NULL, &cmd, &(struct pnm_exec_result){ 0 }));
	digests = self->mem + s.pool + s.n_slots * s.slot_bytes;
	for (i = 0; i < 600; i++) {
		uint32_t slot = rand_below(&self->rng, s.n_slots);
		uint32_t c = rand_below(&self->rng, 2 * s.head_dim);

		pnm_ref_store(s.dtype, digests + slot * s.digest_bytes, c,
			      odd[rand_below(&self->rng, sizeof(odd) / sizeof(odd[0]))]);
	}
	for (i = 1; i < 300; i += 37) {
		cmd = stream_cmd(&s, PNM_OP_SELECT, i, 0, PNM_CMD_KEEP_SINK, 0);
		check_all_paths(_metadata, self, &s, &cmd, NULL);
		check_reference(_metadata, self, &s, &cmd);
	}
}

/* The kernel path names and their errors. */
TEST(kernel_path_names)
{
	enum pnm_kernel_isa isa;
	const char *why = NULL;

	EXPECT_EQ(0, pnm_kernels_parse("scalar", &isa));
	EXPECT_EQ(PNM_ISA_SCALAR, isa);
	EXPECT_EQ(0, pnm_kernels_parse("avx512", &isa));
	EXPECT_EQ(PNM_ISA_AVX512, isa);
	EXPECT_EQ(0, pnm_kernels_parse("auto", &isa));
	EXPECT_EQ(PNM_ISA_COUNT, isa);
	EXPECT_NE(0, pnm_kernels_parse("sse9", &isa));
	EXPECT_EQ(NULL, pnm_kernels_choose("sse9", &why));
	EXPECT_NE(NULL, why);
	EXPECT_EQ(&pnm_kernels_scalar, pnm_kernels_choose("scalar", &why));
	EXPECT_NE(NULL, pnm_kernels_get(PNM_ISA_COUNT));
}

TEST_HARNESS_MAIN
