// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnm-bench-kernels: the device model's kernels against the memory limit.
 *
 * One stream of up to 1M tokens (head_dim 128, bf16, 16-token pages, GQA
 * group 4 as in Llama-3.1-8B) lives in a /dev/shm file used as device
 * memory; commands run in process through pnm_exec(), the executor of
 * pnm-device, so no queue or process latency is measured.  For each
 * context length it measures SELECT, ATTEND (a 2048-token budget),
 * SELECT_ATTEND and dense attention over every page, on one compute unit
 * and on all of them, beside a streaming read kernel (the machine's
 * limit), the timing model's device time and a numpy version
 * (tools/bench_numpy.py).  --hugepages puts device memory in anonymous
 * memory backed by transparent huge pages instead (no numpy then).  Documentation/accelerator-performance.rst
 * explains the table.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cxl_pnm_hw.h"
#include "pnm_exec.h"
#include "pnm_kernels.h"
#include "pnm_timing.h"
#include "pnm_units.h"

#define HEAD_DIM	128
#define GROUP		4
#define PAGE_SHIFT	4
#define PAGE_TOKENS	(1U << PAGE_SHIFT)
#define BUDGET_TOKENS	2048
#define BUDGET_PAGES	(BUDGET_TOKENS / PAGE_TOKENS)
#define MAX_CONTEXTS	8
#define KV_OFFSET	4096ULL
/* ATTEND lists at most max_k pages: dense attention runs in commands of this many. */
#define DENSE_CHUNK	32768U

struct bench {
	unsigned int units_all;
	unsigned int reps;
	const char *csv;
	const char *plot;
	const char *kernels_name;
	bool numpy;
	bool hugepages;			/* anonymous memory, MADV_HUGEPAGE */
	uint32_t contexts[MAX_CONTEXTS];
	unsigned int n_contexts;

	const struct pnm_kernels *kern;
	struct pnm_units *units;	/* all units */
	char path[64];
	int fd;
	uint8_t *mem;
	uint64_t mem_size;
	uint32_t n_slots;		/* pages of the longest context */
	uint64_t slot_bytes, digest_bytes;
	uint64_t pool, pool_len, table, in, out;	/* DPAs */
	struct pnm_timing timing;
	double read_bw[2];		/* GB/s: one core, all cores */
	double scatter_bw;		/* GB/s: one core, ATTEND's 128 pages */
	FILE *csv_file;
};

struct row {
	const char *kernel;
	uint32_t context;
	double seconds;
	double gbps;
	double ratio;
	double vs_dense;
	double vs_numpy;
	double modeled;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- streaming read bandwidth ----------------------------------------- */

struct read_task {
	const uint8_t *base;
	uint64_t bytes;
	uint64_t sink;
};

/* 64-byte loads folded by xor: the loads are the whole cost. */
__attribute__((target("avx2")))
static uint64_t read_avx2(const uint8_t *p, uint64_t bytes)
{
	__m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
	uint64_t off, out[4];

	for (off = 0; off + 128 <= bytes; off += 128) {
		a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + off)));
		b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(p + off + 32)));
		c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(p + off + 64)));
		d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(p + off + 96)));
	}
	a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
	_mm256_storeu_si256((__m256i *)out, a);
	return out[0] ^ out[1] ^ out[2] ^ out[3];
}

static uint64_t read_plain(const uint8_t *p, uint64_t bytes)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t i, x = 0;

	for (i = 0; i < bytes / 8; i++)
		x ^= w[i];
	return x;
}

static void read_task_run(void *arg, unsigned int i)
{
	struct read_task *t = (struct read_task *)arg + i;

	t->sink = __builtin_cpu_supports("avx2") ? read_avx2(t->base, t->bytes) :
						    read_plain(t->base, t->bytes);
}

/* GB/s of streaming reads over the KV pool by @n units. */
static double measure_read(struct bench *b, struct pnm_units *u, unsigned int n)
{
	struct read_task t[PNM_UNITS_MAX];
	uint64_t bytes = b->pool_len & ~((uint64_t)128 * n - 1), sink = 0;
	double v[9];
	unsigned int r, i;

	for (i = 0; i < n; i++) {
		t[i].base = b->mem + b->pool + bytes / n * i;
		t[i].bytes = bytes / n;
	}
	for (r = 0; r < 9; r++) {
		double t0 = now_s();

		pnm_units_run(u, read_task_run, t, n);
		v[r] = bytes / (now_s() - t0) / 1e9;
		for (i = 0; i < n; i++)
			sink ^= t[i].sink;
	}
	if (sink == 0x1234)	/* keeps the loads */
		fputc(' ', stderr);
	return median(v, 9);
}

/*
 * GB/s of one core reading what ATTEND reads at the longest context: the
 * key and value rows of BUDGET_PAGES pages spread over the pool, each
 * slot prefetched two slots ahead.  Scattered 8 KiB slots defeat the
 * hardware prefetchers a stream enjoys, so this is the practical limit of
 * one ATTEND unit, below read/1u.
 */
static double measure_scattered(struct bench *b)
{
	uint64_t span = b->n_slots / BUDGET_PAGES, bytes = BUDGET_PAGES * b->slot_bytes;
	uint64_t sink = 0;
	double v[9];
	unsigned int r, i;

	for (r = 0; r < 9; r++) {
		const uint8_t *base = b->mem + b->pool + (r % span) * b->slot_bytes;
		double t0 = now_s();

		for (i = 0; i < BUDGET_PAGES; i++) {
			const uint8_t *slot = base + i * span * b->slot_bytes;
			uint64_t off;

			if (i + 2 < BUDGET_PAGES)
				for (off = 0; off < b->slot_bytes; off += 64)
					__builtin_prefetch(slot + 2 * span * b->slot_bytes + off, 0, 2);
			sink ^= __builtin_cpu_supports("avx2") ? read_avx2(slot, b->slot_bytes) :
								 read_plain(slot, b->slot_bytes);
		}
		v[r] = bytes / (now_s() - t0) / 1e9;
	}
	if (sink == 0x1234)	/* keeps the loads */
		fputc(' ', stderr);
	return median(v, 9);
}

/* ---- device memory ---------------------------------------------------- */

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static int bench_map(struct bench *b)
{
	uint32_t longest = 0;
	unsigned int i;

	for (i = 0; i < b->n_contexts; i++)
		if (b->contexts[i] > longest)
			longest = b->contexts[i];
	b->n_slots = longest / PAGE_TOKENS;
	b->slot_bytes = pnm_hw_slot_bytes(PNM_DTYPE_BF16, PAGE_SHIFT, HEAD_DIM);
	b->digest_bytes = pnm_hw_digest_bytes(PNM_DTYPE_BF16, HEAD_DIM);
	b->pool = KV_OFFSET;
	b->pool_len = (uint64_t)b->n_slots * (b->slot_bytes + b->digest_bytes);
	b->table = align_up(b->pool + b->pool_len, 4096);
	b->in = align_up(b->table + 4ULL * b->n_slots, 4096);
	b->out = align_up(b->in + 4ULL * (GROUP * HEAD_DIM + b->n_slots), 4096);
	b->mem_size = align_up(b->out + 4ULL * (GROUP * HEAD_DIM + GROUP + b->n_slots),
			       4096);
	if (b->pool_len > UINT32_MAX) {
		fprintf(stderr, "pnm-bench-kernels: %u pages do not fit a 32-bit pool length\n",
			b->n_slots);
		return -EINVAL;
	}

	if (b->hugepages) {
		b->mem = mmap(NULL, b->mem_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (b->mem == MAP_FAILED) {
			fprintf(stderr, "pnm-bench-kernels: map %llu bytes: %s\n",
				(unsigned long long)b->mem_size, strerror(errno));
			return -errno;
		}
		/* Advice only: without THP the run goes on with 4 KiB pages. */
		if (madvise(b->mem, b->mem_size, MADV_HUGEPAGE))
			fprintf(stderr, "pnm-bench-kernels: MADV_HUGEPAGE: %s\n", strerror(errno));
		return 0;
	}
	snprintf(b->path, sizeof(b->path), "/dev/shm/pnm-bench-%d", (int)getpid());
	b->fd = open(b->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (b->fd < 0 || ftruncate(b->fd, b->mem_size)) {
		fprintf(stderr, "pnm-bench-kernels: %s: %s\n", b->path, strerror(errno));
		return -errno;
	}
	b->mem = mmap(NULL, b->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (b->mem == MAP_FAILED) {
		fprintf(stderr, "pnm-bench-kernels: map %s: %s\n", b->path, strerror(errno));
		return -errno;
	}
	return 0;
}

static void bench_unmap(struct bench *b)
{
	if (b->mem && b->mem != MAP_FAILED)
		munmap(b->mem, b->mem_size);
	if (b->fd >= 0)
		close(b->fd);
	if (b->path[0])
		unlink(b->path);
}

struct fill_task {
	struct bench *b;
	unsigned int n;
};

/* Keys and values: bf16 of uniform values in [-1, 1), 4 per random word. */
static void fill_run(void *arg, unsigned int i)
{
	struct fill_task *f = arg;
	uint64_t words = f->b->n_slots * f->b->slot_bytes / 8;
	uint64_t *w = (uint64_t *)(f->b->mem + f->b->pool);
	uint64_t x = 0x9e3779b97f4a7c15ULL * (i + 1), j;

	for (j = words * i / f->n; j < words * (i + 1) / f->n; j++) {
		uint64_t v = 0;
		int e;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		for (e = 0; e < 4; e++) {
			uint32_t r = (x >> (16 * e)) & 0xffff;
			float f32 = (float)r / 32768.0f - 1.0f;
			uint32_t bits;

			memcpy(&bits, &f32, 4);
			v |= (uint64_t)(bits >> 16) << (16 * e);
		}
		w[j] = v;
	}
}

static struct pnm_exec_dev bench_dev(const struct bench *b, struct pnm_units *u)
{
	return (struct pnm_exec_dev){
		.mem = b->mem, .kv_offset = KV_OFFSET,
		.kv_size = b->mem_size - KV_OFFSET,
		.dtypes = 7, .max_head_dim = 256, .max_group = 32,
		.page_shifts = 0x1fc, .max_k = 65535,
		.kernels = b->kern, .units = u,
	};
}

/* A command over @n_pages pages from page slot @first (identity table). */
static struct pnm_hw_cmd bench_cmd(const struct bench *b, unsigned int opcode,
				   uint32_t first, uint32_t n_pages,
				   unsigned int k)
{
	struct pnm_hw_cmd c;
	unsigned int list = opcode == PNM_OP_ATTEND ? k : 0;
	uint64_t out = 4ULL * (GROUP * HEAD_DIM + GROUP) +
		       (opcode == PNM_OP_ATTEND ? 0 : 4ULL * BUDGET_PAGES);

	memset(&c, 0, sizeof(c));
	c.opcode = opcode;
	c.dtype = PNM_DTYPE_BF16;
	c.page_shift = PAGE_SHIFT;
	c.group = GROUP;
	c.head_dim = htole16(HEAD_DIM);
	c.n_tokens = htole32(n_pages * PAGE_TOKENS);
	c.k = htole16(k);
	if (opcode == PNM_OP_SELECT || opcode == PNM_OP_SELECT_ATTEND)
		c.flags = PNM_CMD_KEEP_SINK | PNM_CMD_KEEP_RECENT;
	c.pool_dpa = htole64(b->pool);
	c.pool_len = htole32(b->pool_len);
	c.table_dpa = htole64(b->table + 4ULL * first);
	c.table_len = htole32(4 * n_pages);
	if (opcode != PNM_OP_DIGEST) {
		c.in_dpa = htole64(b->in);
		c.in_len = htole32(4 * (GROUP * HEAD_DIM + list));
		c.out_dpa = htole64(b->out);
		c.out_len = htole32(out);
	}
	return c;
}

static int bench_exec(const struct bench *b, struct pnm_units *u,
		      const struct pnm_hw_cmd *cmd, struct pnm_exec_result *res)
{
	struct pnm_exec_dev dev = bench_dev(b, u);

	if (pnm_exec(&dev, cmd, res) || res->status) {
		fprintf(stderr, "pnm-bench-kernels: opcode %u failed: status %u\n",
			cmd->opcode, res->status);
		return -EIO;
	}
	return 0;
}

static int bench_setup(struct bench *b)
{
	struct fill_task f = { .b = b, .n = 4 * pnm_units_count(b->units) };
	uint32_t *table = (uint32_t *)(b->mem + b->table);
	float *q = (float *)(b->mem + b->in);
	struct pnm_exec_result res;
	struct pnm_hw_cmd cmd;
	uint32_t i, x = 12345;
	double t0 = now_s();

	pnm_units_run(b->units, fill_run, &f, f.n);
	/* Pages of the stream in consecutive slots, as an allocator hands out. */
	for (i = 0; i < b->n_slots; i++)
		table[i] = i;
	for (i = 0; i < GROUP * HEAD_DIM; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		q[i] = (float)(x >> 8) / 8388608.0f - 1.0f;
	}
	cmd = bench_cmd(b, PNM_OP_DIGEST, 0, b->n_slots, 0);
	if (bench_exec(b, b->units, &cmd, &res))
		return -EIO;
	fprintf(stderr, "pnm-bench-kernels: %u pages (%.0f MiB) filled and digested in %.1f s\n",
		b->n_slots, b->pool_len / 1048576.0, now_s() - t0);
	return 0;
}

/* ---- the measurements -------------------------------------------------- */

/*
 * Median time of @cmd on @u over b->reps runs.  Each run uses the next
 * window of @n_pages pages of the pool, so a short context is read from
 * memory, not from the cache a previous run filled.
 */
static int time_cmd(struct bench *b, struct pnm_units *u, unsigned int opcode,
		    uint32_t n_pages, unsigned int k, double *seconds,
		    struct pnm_exec_result *res)
{
	uint32_t windows = b->n_slots / n_pages;
	uint32_t *list = (uint32_t *)((float *)(b->mem + b->in) + GROUP * HEAD_DIM);
	double v[64];
	unsigned int r, i;

	if (opcode == PNM_OP_ATTEND)	/* k pages spread over the context */
		for (i = 0; i < k; i++)
			list[i] = (uint32_t)((uint64_t)i * n_pages / k);
	for (r = 0; r < b->reps; r++) {
		struct pnm_hw_cmd cmd = bench_cmd(b, opcode, (r % windows) * n_pages,
						  n_pages, k);
		double t0 = now_s();

		if (bench_exec(b, u, &cmd, res))
			return -EIO;
		v[r] = now_s() - t0;
	}
	*seconds = median(v, b->reps);
	return 0;
}

/* Dense attention: ATTEND over every page, DENSE_CHUNK pages a command. */
static int time_dense(struct bench *b, struct pnm_units *u, uint32_t n_pages,
		      double *seconds, uint64_t *bytes, uint64_t *device_ns)
{
	uint32_t *list = (uint32_t *)((float *)(b->mem + b->in) + GROUP * HEAD_DIM);
	unsigned int reps = b->reps > 5 ? 5 : b->reps, r;
	uint32_t windows = b->n_slots / n_pages, i;
	double v[64];

	for (i = 0; i < n_pages && i < DENSE_CHUNK; i++)
		list[i] = i;
	for (r = 0; r < reps; r++) {
		uint32_t first = (r % windows) * n_pages, done;
		double t0 = now_s();

		*bytes = 0;
		*device_ns = 0;
		for (done = 0; done < n_pages; done += DENSE_CHUNK) {
			uint32_t n = n_pages - done < DENSE_CHUNK ? n_pages - done : DENSE_CHUNK;
			struct pnm_hw_cmd cmd = bench_cmd(b, PNM_OP_ATTEND, first + done, n, n);
			struct pnm_exec_result res;

			if (bench_exec(b, u, &cmd, &res))
				return -EIO;
			*bytes += res.bytes_read;
			*device_ns += pnm_timing_ns(&b->timing, res.bytes_read, res.flops);
		}
		/* The partial (out, lse) of the chunks merge by LSE on the host. */
		v[r] = now_s() - t0;
	}
	*seconds = median(v, reps);
	return 0;
}

static void print_row(struct bench *b, const struct row *r, const char *bound)
{
	char ctx[16] = "", gbps[16] = "", ratio[16] = "", dense[16] = "",
	     numpy[16] = "", modeled[16] = "";

	if (r->context)
		snprintf(ctx, sizeof(ctx), "%u", r->context);
	if (r->gbps > 0)
		snprintf(gbps, sizeof(gbps), "%.2f", r->gbps);
	if (r->ratio > 0)
		snprintf(ratio, sizeof(ratio), "%.2f", r->ratio);
	if (r->vs_dense > 0)
		snprintf(dense, sizeof(dense), "%.1f", r->vs_dense);
	if (r->vs_numpy > 0)
		snprintf(numpy, sizeof(numpy), "%.1f", r->vs_numpy);
	if (r->modeled > 0)
		snprintf(modeled, sizeof(modeled), "%.1f", r->modeled * 1e6);
	printf("%-18s %8s %11.1f %10s %7s %9s %6s %9s %11s\n", r->kernel, ctx,
	       r->seconds * 1e6, gbps, ratio, dense, bound ? bound : "", numpy,
	       modeled);
	if (b->csv_file)
		fprintf(b->csv_file, "%s,%s,%.9f,%s,%s,%s,%s\n", r->kernel, ctx,
			r->seconds, gbps, ratio, dense, numpy);
}

/*
 * numpy's SELECT_ATTEND time per context (tools/bench_numpy.py), read from
 * its output lines "context seconds".  Zero where it did not run.
 */
static void run_numpy(struct bench *b, double *np_seconds)
{
	char cmd[1024], ctx[128] = "";
	unsigned int i;
	FILE *p;

	for (i = 0; i < b->n_contexts; i++)
		snprintf(ctx + strlen(ctx), sizeof(ctx) - strlen(ctx), "%s%u",
			 i ? "," : "", b->contexts[i]);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 %s/tools/bench_numpy.py run --mem %s --pool %llu --slots %u "
		 "--in %llu --head-dim %u --group %u --page-tokens %u --budget %u "
		 "--contexts %s --reps 3",
		 PNM_TOP, b->path, (unsigned long long)b->pool, b->n_slots,
		 (unsigned long long)b->in, HEAD_DIM, GROUP, PAGE_TOKENS,
		 BUDGET_PAGES, ctx);
	p = popen(cmd, "r");
	if (!p) {
		fprintf(stderr, "pnm-bench-kernels: cannot run numpy: %s\n", strerror(errno));
		return;
	}
	while (fgets(cmd, sizeof(cmd), p)) {
		unsigned int c;
		double s;

		if (sscanf(cmd, "%u %lf", &c, &s) != 2)
			continue;
		for (i = 0; i < b->n_contexts; i++)
			if (b->contexts[i] == c)
				np_seconds[i] = s;
	}
	if (pclose(p))
		fprintf(stderr, "pnm-bench-kernels: numpy benchmark failed; its column stays empty\n");
}

static int bench_run(struct bench *b)
{
	double np_seconds[MAX_CONTEXTS] = { 0 };
	struct pnm_units *one = NULL;
	unsigned int i;
	int ret = 0;

	b->read_bw[0] = measure_read(b, one, 1);
	b->read_bw[1] = measure_read(b, b->units, pnm_units_count(b->units));
	b->scatter_bw = measure_scattered(b);
	if (b->numpy)
		run_numpy(b, np_seconds);

	printf("# kernels %s, %u units; head_dim %u, bf16, %u-token pages, group %u, budget %u tokens;\n"
	       "# device memory: %s\n",
	       b->kern->name, pnm_units_count(b->units), HEAD_DIM, PAGE_TOKENS, GROUP,
	       BUDGET_TOKENS, b->hugepages ? "anonymous, MADV_HUGEPAGE" : "/dev/shm file, 4 KiB pages");
	printf("# time in us; GB/s of device memory read; ratio to the read bandwidth of as\n"
	       "# many cores; dense: speedup of SELECT_ATTEND over dense attention, beside\n"
	       "# its bound (bytes dense reads / bytes SELECT_ATTEND reads); modeled: the\n"
	       "# timing model's device_ns for CXL-PNM hardware\n");
	printf("%-18s %8s %11s %10s %7s %9s %6s %9s %11s\n", "kernel", "context",
	       "time_us", "GB/s", "ratio", "vs_dense", "bound", "vs_numpy", "modeled_us");
	if (b->csv_file)
		fprintf(b->csv_file, "kernel,context_tokens,seconds,gbytes_per_s,ratio_to_read_bw,"
			"speedup_vs_dense,speedup_vs_numpy\n");
	print_row(b, &(struct row){ .kernel = "read/1u", .seconds = b->pool_len / b->read_bw[0] / 1e9,
				    .gbps = b->read_bw[0], .ratio = 1 }, NULL);
	print_row(b, &(struct row){ .kernel = "read/all", .seconds = b->pool_len / b->read_bw[1] / 1e9,
				    .gbps = b->read_bw[1], .ratio = 1 }, NULL);
	print_row(b, &(struct row){ .kernel = "read/scattered", .seconds = BUDGET_PAGES *
					b->slot_bytes / b->scatter_bw / 1e9,
				    .gbps = b->scatter_bw, .ratio = b->scatter_bw / b->read_bw[0] }, NULL);

	for (i = 0; i < b->n_contexts && !ret; i++) {
		uint32_t ctx = b->contexts[i], n_pages = ctx / PAGE_TOKENS;
		static const struct {
			const char *name;
			unsigned int opcode;
		} ops[] = {
			{ "select", PNM_OP_SELECT },
			{ "attend", PNM_OP_ATTEND },
		};
		struct pnm_exec_result res;
		uint64_t dense_bytes = 0, dense_ns = 0, sa_bytes;
		double t, t_sa, t_dense;
		char name[32], bound[16];
		unsigned int o, all;

		for (o = 0; o < 2; o++) {
			for (all = 0; all < 2; all++) {
				struct pnm_units *u = all ? b->units : NULL;

				ret = time_cmd(b, u, ops[o].opcode, n_pages, BUDGET_PAGES, &t, &res);
				if (ret)
					break;
				snprintf(name, sizeof(name), "%s/%s", ops[o].name, all ? "all" : "1u");
				print_row(b, &(struct row){
					.kernel = name, .context = ctx, .seconds = t,
					.gbps = res.bytes_read / t / 1e9,
					.ratio = res.bytes_read / t / 1e9 / b->read_bw[all],
					.modeled = pnm_timing_ns(&b->timing, res.bytes_read,
								 res.flops) * 1e-9,
				}, NULL);
			}
		}
		if (ret)
			break;
		ret = time_cmd(b, b->units, PNM_OP_SELECT_ATTEND, n_pages, BUDGET_PAGES,
			       &t_sa, &res);
		if (!ret)
			ret = time_dense(b, b->units, n_pages, &t_dense, &dense_bytes, &dense_ns);
		if (ret)
			break;
		sa_bytes = res.bytes_read;
		snprintf(bound, sizeof(bound), "%.1f", (double)dense_bytes / sa_bytes);
		print_row(b, &(struct row){
			.kernel = "select_attend/all", .context = ctx, .seconds = t_sa,
			.gbps = sa_bytes / t_sa / 1e9,
			.ratio = sa_bytes / t_sa / 1e9 / b->read_bw[1],
			.vs_dense = t_dense / t_sa,
			.vs_numpy = np_seconds[i] > 0 ? np_seconds[i] / t_sa : 0,
			.modeled = pnm_timing_ns(&b->timing, res.bytes_read, res.flops) * 1e-9,
		}, bound);
		print_row(b, &(struct row){
			.kernel = "dense/all", .context = ctx, .seconds = t_dense,
			.gbps = dense_bytes / t_dense / 1e9,
			.ratio = dense_bytes / t_dense / 1e9 / b->read_bw[1],
			.modeled = dense_ns * 1e-9,
		}, NULL);
		if (np_seconds[i] > 0)
			print_row(b, &(struct row){
				.kernel = "numpy_select_attend", .context = ctx,
				.seconds = np_seconds[i],
				.gbps = sa_bytes / np_seconds[i] / 1e9,
			}, NULL);
	}
	return ret;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: pnm-bench-kernels [options]\n"
		"Measure the device model's kernels against the memory read bandwidth.\n"
		"\n"
		"  --units N          compute units for the all-units rows (default: online CPUs)\n"
		"  --kernels NAME     scalar, avx2, avx512 or auto (default auto)\n"
		"  --contexts LIST    context lengths in tokens, comma-separated, multiples of %u\n"
		"                     (default 4096,16384,65536,262144,1048576)\n"
		"  --reps N           repetitions per measurement, median taken (default 9)\n"
		"  --csv FILE         write the table as CSV\n"
		"  --plot FILE        write a PNG of time against context length\n"
		"  --no-numpy         skip the numpy comparison\n"
		"  --hugepages        device memory in anonymous memory with MADV_HUGEPAGE\n"
		"                     instead of a /dev/shm file (implies --no-numpy)\n"
		"  -h, --help         show this help\n", PAGE_TOKENS);
}

static int parse_contexts(struct bench *b, const char *arg)
{
	char *copy = strdup(arg), *tok, *save = NULL;

	b->n_contexts = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long v = strtoul(tok, &end, 0);

		if (*end || !v || v % PAGE_TOKENS || v > (1UL << 22) ||
		    b->n_contexts == MAX_CONTEXTS || v / PAGE_TOKENS < BUDGET_PAGES) {
			fprintf(stderr, "pnm-bench-kernels: invalid context '%s': expected %u to %lu tokens, a multiple of %u, at most %u values\n",
				tok, BUDGET_TOKENS, 1UL << 22, PAGE_TOKENS, MAX_CONTEXTS);
			free(copy);
			return -EINVAL;
		}
		b->contexts[b->n_contexts++] = (uint32_t)v;
	}
	free(copy);
	return b->n_contexts ? 0 : -EINVAL;
}

static int parse_options(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "units", required_argument, NULL, 'u' },
		{ "kernels", required_argument, NULL, 'k' },
		{ "contexts", required_argument, NULL, 'c' },
		{ "reps", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'o' },
		{ "plot", required_argument, NULL, 'p' },
		{ "no-numpy", no_argument, NULL, 'n' },
		{ "hugepages", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int c;

	b->units_all = ncpu < 1 ? 1 : ncpu > PNM_UNITS_MAX ? PNM_UNITS_MAX : (unsigned int)ncpu;
	b->reps = 9;
	b->numpy = true;
	parse_contexts(b, "4096,16384,65536,262144,1048576");
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 'u':
		case 'r':
			v = strtoul(optarg, &end, 0);
			if (*end || !v || v > (c == 'u' ? PNM_UNITS_MAX : 63)) {
				fprintf(stderr, "pnm-bench-kernels: invalid --%s '%s'\n",
					c == 'u' ? "units" : "reps", optarg);
				return -EINVAL;
			}
			if (c == 'u')
				b->units_all = v;
			else
				b->reps = v;
			break;
		case 'k':
			b->kernels_name = optarg;
			break;
		case 'c':
			if (parse_contexts(b, optarg))
				return -EINVAL;
			break;
		case 'o':
			b->csv = optarg;
			break;
		case 'p':
			b->plot = optarg;
			break;
		case 'n':
			b->numpy = false;
			break;
		case 'H':
			b->hugepages = true;
			b->numpy = false;	/* numpy maps the /dev/shm file */
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench b = { .fd = -1 };
	const char *why = NULL;
	int ret;

	if (parse_options(&b, argc, argv))
		return 2;
	b.kern = pnm_kernels_choose(b.kernels_name, &why);
	if (!b.kern) {
		fprintf(stderr, "pnm-bench-kernels: --kernels %s: %s\n", b.kernels_name, why);
		return 2;
	}
	pnm_timing_init(&b.timing);
	b.units = pnm_units_create(b.units_all);
	if (!b.units) {
		fprintf(stderr, "pnm-bench-kernels: cannot start %u units\n", b.units_all);
		return 1;
	}
	if (b.csv) {
		b.csv_file = fopen(b.csv, "w");
		if (!b.csv_file) {
			fprintf(stderr, "pnm-bench-kernels: %s: %s\n", b.csv, strerror(errno));
			pnm_units_destroy(b.units);
			return 1;
		}
	}
	ret = bench_map(&b);
	if (!ret)
		ret = bench_setup(&b);
	if (!ret)
		ret = bench_run(&b);
	bench_unmap(&b);
	pnm_units_destroy(b.units);
	if (b.csv_file && fclose(b.csv_file))
		ret = -EIO;
	if (!ret && b.plot && b.csv) {
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tools/bench_numpy.py plot --csv %s --out %s",
			 PNM_TOP, b.csv, b.plot);
		if (system(cmd))
			fprintf(stderr, "pnm-bench-kernels: plotting failed\n");
	} else if (!ret && b.plot) {
		fprintf(stderr, "pnm-bench-kernels: --plot needs --csv\n");
	}
	return ret ? 1 : 0;
}
