// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnm-demo: decode a Llama-3.1-8B-shaped workload through libpnm's KV-cache
 * manager and check every device result against the CPU reference.
 *
 * It fills each sequence's context from the KV generator, then for each
 * decode step and layer generates the new token's query, key and value,
 * appends the key and value, runs one decode step on every device (PNM-KV,
 * or PnG-KV with steady pages attended on the host) and compares each
 * device's selection with pnm_ref_select() over the same sub-stream,
 * budget and exclusions, and the outputs with pnm_ref_attend() over every
 * page attended.  The reference reads
 * the cache's host mirror: in a VM every read of CXL memory is emulated.
 * The device's digests are compared with the mirror's after the fill and
 * at the end.
 *
 * Documentation/runtime.rst derives the tolerance used here.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvcache.h"
#include "kvgen.h"
#include "pnm.h"
#include "pnm_ref.h"
#include "cli.h"

/* Llama-3.1-8B attention shape. */
#define DEMO_Q_HEADS		32
#define DEMO_KV_HEADS		8
#define DEMO_HEAD_DIM		128
#define DEMO_PAGE_TOKENS	16
/* Tokens generated and appended per append call during the fill. */
#define DEMO_FILL_CHUNK		512

/* Unit roundoff of binary32. */
#define FP32_U			0x1p-24
/* A command's pool length is a __u32 (see kvcache_create()). */
#define DEMO_POOL_MAX		0xffffffffULL
/* pnm_open() takes a device model's backing file as "direct:PATH". */
#define DEMO_DIRECT_PREFIX	"direct:"
#define MIB			(1024.0 * 1024.0)

/* The program's name for messages: argv[0] without its directory. */
static const char *prog = "pnm-demo";

struct demo_opts {
	const char *names[KVCACHE_MAX_DEVICES];
	unsigned int n_devs;
	const char *devices_opt;	/* the option that named the devices */
	enum kvcache_spread spread;
	enum kvcache_mode mode;
	unsigned int host_pages;	/* PnG-KV host cache per stream; 0: default */
	unsigned int sequences;
	unsigned int layers;
	unsigned int context;
	unsigned int steps;
	unsigned int budget;
	uint64_t seed;
	unsigned int dtype;
	bool verify;
};

struct demo_stats {
	uint64_t pages_scanned;
	uint64_t pages_selected;
	uint64_t device_ns;
	unsigned int streams_checked;
	unsigned int selection_mismatches;
	unsigned int output_failures;
	uint64_t digests_checked;
	unsigned int digest_mismatches;
	double max_out_abs;		/* max |device - reference| of an output */
	double max_out_rel;		/* ... over max |reference| of its head */
	double max_lse_abs;
	double max_out_ratio;		/* error over tolerance, worst case */
	double max_lse_ratio;
	char first_failure[256];
};

struct demo {
	struct demo_opts opts;
	struct pnm_dev *devs[KVCACHE_MAX_DEVICES];
	char names[KVCACHE_MAX_DEVICES][128];
	struct kvcache *cache;
	struct kvgen **gens;		/* [sequences][layers][kv_heads] */
	unsigned int group;
	float *q;			/* [sequences][q_heads][head_dim] */
	float *keys, *values;		/* [kv_heads][chunk][head_dim] */
	struct kvcache_step step;
	float *ref_out, *ref_lse;	/* [group][head_dim], [group] */
	uint32_t *ref_pages;
	struct demo_stats stats;
	uint64_t device_ns_parallel;	/* sum over steps of the slowest device */
	uint64_t bytes_moved;
	double t_fill, t_decode, t_verify;
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s [options]\n"
		"  --device NAME     /dev/cxl/pnmN or direct:PATH (default /dev/cxl/pnm0)\n"
		"  --devices N|LIST  N: /dev/cxl/pnm0..N-1 (1 to 4); or a comma list of\n"
		"                    device names, direct:PATH,PATH,... for device models\n"
		"  --spread P        kv-head (default), sequence or tokens: how streams\n"
		"                    are spread over the devices\n"
		"  --mode M          pnm-kv (default) or png-kv\n"
		"  --host-pages N    PnG-KV host cache pages per stream (default %u)\n"
		"  --sequences N     sequences decoded together (default 2)\n"
		"  --layers N        layers (default 2)\n"
		"  --context N       tokens per sequence before decoding (default 4096)\n"
		"  --steps N         decode steps (default 8)\n"
		"  --budget N        tokens attended per stream and step, a multiple of\n"
		"                    the page size (default 512)\n"
		"  --seed N          generator seed (default 1)\n"
		"  --dtype T         fp32, fp16 or bf16 (default bf16)\n"
		"  --verify          check results against the CPU reference (default)\n"
		"  --no-verify       skip the check\n"
		"Model shape: Llama-3.1-8B, %u query heads, %u KV heads, head_dim %u, %u-token pages.\n",
		prog, STEADY_DEFAULT_CAPACITY, DEMO_Q_HEADS, DEMO_KV_HEADS, DEMO_HEAD_DIM, DEMO_PAGE_TOKENS);
}

static int parse_dtype(const char *arg, unsigned int *dtype)
{
	unsigned int t;

	for (t = CXL_PNM_DTYPE_FP32; t <= CXL_PNM_DTYPE_BF16; t++) {
		if (!strcmp(arg, pnm_dtype_name(t))) {
			*dtype = t;
			return 0;
		}
	}
	return usage_error("--dtype '%s' is invalid: expected fp32, fp16 or bf16",
			   arg);
}

/* The file a device name stands for: the path after "direct:", if any. */
static const char *device_path(const char *name)
{
	return strncmp(name, DEMO_DIRECT_PREFIX, strlen(DEMO_DIRECT_PREFIX)) ?
	       name : name + strlen(DEMO_DIRECT_PREFIX);
}

/*
 * Do two device names reach the same device?  The same file under two
 * paths counts too; a name that does not exist yet compares as text.
 */
static bool same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (!strcmp(a, b))
		return true;
	if (stat(device_path(a), &sa) || stat(device_path(b), &sb))
		return false;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino &&
	       sa.st_rdev == sb.st_rdev;
}

/* Each device can be used once: a second user would reset it. */
static int check_duplicates(const char *opt, const char *arg,
			    const struct demo_opts *o)
{
	unsigned int i, j;

	for (i = 0; i < o->n_devs; i++)
		for (j = 0; j < i; j++)
			if (same_device(o->names[j], o->names[i]))
				return usage_error("%s '%s' names one device twice ('%s' and '%s'); list each device once",
						   opt, arg, o->names[j], o->names[i]);
	return 0;
}

/* "N" opens /dev/cxl/pnm0..N-1; a list names each device. */
static int parse_devices(const char *arg, struct demo_opts *o,
			 char names[][128])
{
	char buf[1024], *save = NULL, *tok;
	bool direct = false;
	unsigned long long n;

	if (arg[0] >= '0' && arg[0] <= '9') {
		if (parse_uint("--devices", arg, 1, KVCACHE_MAX_DEVICES, &n))
			return -1;
		for (o->n_devs = 0; o->n_devs < n; o->n_devs++) {
			snprintf(names[o->n_devs], 128, "/dev/cxl/pnm%u", o->n_devs);
			o->names[o->n_devs] = names[o->n_devs];
		}
		return 0;
	}
	snprintf(buf, sizeof(buf), "%s", arg);
	o->n_devs = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_devs == KVCACHE_MAX_DEVICES)
			return usage_error("--devices '%s' names more than %u devices",
					   arg, KVCACHE_MAX_DEVICES);
		/* After "direct:PATH", bare paths are device models too. */
		if (!strncmp(tok, DEMO_DIRECT_PREFIX, strlen(DEMO_DIRECT_PREFIX)))
			direct = true;
		if ((size_t)snprintf(names[o->n_devs], 128, "%s%s",
				     direct && tok == device_path(tok) ?
				     DEMO_DIRECT_PREFIX : "", tok) >= 128)
			return usage_error("--devices: device name '%s' is longer than 127 bytes",
					   tok);
		o->names[o->n_devs] = names[o->n_devs];
		o->n_devs++;
	}
	if (!o->n_devs)
		return usage_error("--devices '%s' names no device", arg);
	return check_duplicates("--devices", arg, o);
}

/* --device and --devices both choose the devices: accept one of them. */
static int claim_devices(struct demo_opts *o, const char *opt)
{
	if (o->devices_opt && strcmp(o->devices_opt, opt))
		return usage_error("%s and %s both choose the devices; give one of them",
				   o->devices_opt, opt);
	o->devices_opt = opt;
	return 0;
}

static int parse_choice(const char *opt, const char *arg,
			const char *const *names, unsigned int n, int *value)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (!strcmp(arg, names[i])) {
			*value = (int)i;
			return 0;
		}
	}
	fprintf(stderr, "%s: %s '%s' is invalid: expected", prog, opt, arg);
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s %s", i ? (i + 1 == n ? " or" : ",") : "", names[i]);
	fprintf(stderr, "; try '%s --help'\n", prog);
	return -1;
}

static const char *const spread_names[] = { "kv-head", "sequence", "tokens" };
static const char *const mode_names[] = { "pnm-kv", "png-kv" };

static int parse_args(int argc, char **argv, struct demo_opts *o,
		      char names[][128])
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "devices", required_argument, NULL, 'D' },
		{ "spread", required_argument, NULL, 'P' },
		{ "mode", required_argument, NULL, 'M' },
		{ "host-pages", required_argument, NULL, 'H' },
		{ "sequences", required_argument, NULL, 'S' },
		{ "layers", required_argument, NULL, 'L' },
		{ "context", required_argument, NULL, 'c' },
		{ "steps", required_argument, NULL, 's' },
		{ "budget", required_argument, NULL, 'b' },
		{ "seed", required_argument, NULL, 'r' },
		{ "dtype", required_argument, NULL, 't' },
		{ "verify", no_argument, NULL, 'v' },
		{ "no-verify", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	unsigned long long v;
	int opt, ret = 0, choice;

	*o = (struct demo_opts){
		.names = { "/dev/cxl/pnm0" }, .n_devs = 1, .sequences = 2, .layers = 2,
		.context = 4096, .steps = 8, .budget = 512, .seed = 1,
		.dtype = CXL_PNM_DTYPE_BF16, .verify = true,
	};
	opterr = 0;	/* getopt's messages carry the full path: ours follow */
	while (!ret && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			ret = claim_devices(o, "--device");
			o->names[0] = optarg;
			o->n_devs = 1;
			break;
		case 'D':
			ret = claim_devices(o, "--devices");
			if (!ret)
				ret = parse_devices(optarg, o, names);
			break;
		case 'P':
			ret = parse_choice("--spread", optarg, spread_names, 3, &choice);
			o->spread = (enum kvcache_spread)choice;
			break;
		case 'M':
			ret = parse_choice("--mode", optarg, mode_names, 2, &choice);
			o->mode = (enum kvcache_mode)choice;
			break;
		case 'H':
			ret = parse_uint("--host-pages", optarg, 1, 1U << 16, &v);
			o->host_pages = v;
			break;
		case 'S':
			ret = parse_uint("--sequences", optarg, 1, 1024, &v);
			o->sequences = v;
			break;
		case 'L':
			ret = parse_uint("--layers", optarg, 1, 1024, &v);
			o->layers = v;
			break;
		case 'c':
			ret = parse_uint("--context", optarg, 1, 1U << 24, &v);
			o->context = v;
			break;
		case 's':
			ret = parse_uint("--steps", optarg, 0, 1U << 20, &v);
			o->steps = v;
			break;
		case 'b':
			ret = parse_uint("--budget", optarg, 2 * DEMO_PAGE_TOKENS,
					 UINT16_MAX * DEMO_PAGE_TOKENS, &v);
			/* The device selects whole pages: k = budget / page. */
			if (!ret && v % DEMO_PAGE_TOKENS)
				ret = usage_error("--budget %llu is not a multiple of the %u-token page size (e.g. %llu or %llu)",
						  v, DEMO_PAGE_TOKENS,
						  v - v % DEMO_PAGE_TOKENS,
						  v - v % DEMO_PAGE_TOKENS + DEMO_PAGE_TOKENS);
			o->budget = v;
			break;
		case 'r':
			ret = parse_uint("--seed", optarg, 0, UINT64_MAX, &v);
			o->seed = v;
			break;
		case 't':
			ret = parse_dtype(optarg, &o->dtype);
			break;
		case 'v':
			o->verify = true;
			break;
		case 'n':
			o->verify = false;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!ret && optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return ret;
}

static int fail(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, pnm_last_error());
	return -1;
}

/*
 * Open one device.  A regular file is a device model's backing file that
 * lacks its "direct:" prefix: the kernel transport's ioctls would fail on it
 * with ENOTTY, which says nothing to the user.
 */
static int demo_open(const char *name, struct pnm_dev **devp)
{
	const char *err;
	struct stat st;

	if (name == device_path(name) && !stat(name, &st) && S_ISREG(st.st_mode)) {
		fprintf(stderr, "%s: %s is a regular file, not a device node: use %s%s for a device model's backing file\n",
			prog, name, DEMO_DIRECT_PREFIX, name);
		return -1;
	}
	if (!pnm_open(name, devp))
		return 0;
	/* libpnm's message usually names the file already. */
	err = pnm_last_error();
	if (strstr(err, device_path(name)))
		fprintf(stderr, "%s: %s\n", prog, err);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, name, err);
	return -1;
}

/* Bytes of one page's K and V and its digest. */
static uint64_t demo_slot_bytes(const struct demo_opts *o)
{
	uint64_t esize = o->dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2;

	return 2 * DEMO_HEAD_DIM * esize * (DEMO_PAGE_TOKENS + 1);
}

static uint64_t demo_pages(const struct demo_opts *o)
{
	return ((uint64_t)o->context + o->steps + DEMO_PAGE_TOKENS - 1) /
	       DEMO_PAGE_TOKENS;
}

/*
 * The host mirror holds every stream's pages in one pool, which a
 * command's __u32 pool length must span (kvcache_create() checks the
 * same): say so in this program's options.
 */
static int demo_check_pool(const struct demo_opts *o)
{
	uint64_t streams = (uint64_t)o->sequences * o->layers * DEMO_KV_HEADS;
	uint64_t slot = demo_slot_bytes(o), pages = demo_pages(o);
	uint64_t max_pages = DEMO_POOL_MAX / (streams * slot);
	uint64_t max_context = max_pages * DEMO_PAGE_TOKENS;

	if (pages <= max_pages)
		return 0;
	max_context = max_context > o->steps ? max_context - o->steps : 0;
	fprintf(stderr, "%s: %u sequences x %u layers x %u kv heads of %llu pages (--context %u + --steps %u tokens) take %.1f GiB; the cache's pool spans at most 4 GiB: lower --context (at most %llu with these options), --sequences or --layers\n",
		prog, o->sequences, o->layers, DEMO_KV_HEADS,
		(unsigned long long)pages, o->context, o->steps,
		(double)streams * pages * slot / (MIB * 1024),
		(unsigned long long)max_context);
	return -1;
}

/*
 * Page slots the KV-cache manager places on device @i: whole streams by
 * kv-head or by sequence, or part i of every stream for a token split.
 * @parts: the stream parts among them.
 */
static uint64_t demo_device_slots(const struct demo_opts *o, unsigned int i,
				  uint64_t *parts)
{
	uint64_t pages = demo_pages(o), span, first;
	unsigned int n = o->n_devs, h, seq, count = 0;

	switch (o->spread) {
	case KVCACHE_SPREAD_SEQUENCE:
		for (seq = 0; seq < o->sequences; seq++)
			count += seq % n == i;
		*parts = (uint64_t)count * o->layers * DEMO_KV_HEADS;
		return *parts * pages;
	case KVCACHE_SPREAD_TOKENS:
		span = (pages + n - 1) / n;
		first = span * i;
		*parts = 0;
		if (first >= pages)
			return 0;
		*parts = (uint64_t)o->sequences * o->layers * DEMO_KV_HEADS;
		return *parts * (pages - first < span ? pages - first : span);
	default:
		for (h = 0; h < DEMO_KV_HEADS; h++)
			count += h % n == i;
		*parts = (uint64_t)o->sequences * o->layers * count;
		return *parts * pages;
	}
}

/*
 * Will the streams placed on device @i fit its free KV area?  Per page
 * slot: K, V and digest, a page table entry, and an exclusion list and a
 * page list entry in the part's command buffers; per part: the queries,
 * outputs and LSEs of its group.  The manager's own check stays the last
 * word (it also rounds each region to the region alignment).
 */
static int demo_check_capacity(struct demo *d, unsigned int i,
			       struct cxl_pnm_info *info)
{
	const struct demo_opts *o = &d->opts;
	uint64_t parts, slots = demo_device_slots(o, i, &parts), need;

	if (pnm_get_info(d->devs[i], info))
		return fail("get info");
	need = slots * (demo_slot_bytes(o) + 3 * sizeof(uint32_t)) +
	       parts * (d->group * (2 * DEMO_HEAD_DIM + 1) * sizeof(float) + 128);
	if (need <= info->kv_free)
		return 0;
	fprintf(stderr, "%s: device %u (%s) needs %.1f MiB for its streams of %llu pages (--sequences %u, --layers %u, --context %u + --steps %u tokens) but has %.1f MiB free: lower --context, --sequences or --layers, or add devices (--devices)\n",
		prog, i, o->names[i], need / MIB,
		(unsigned long long)demo_pages(o), o->sequences, o->layers,
		o->context, o->steps, info->kv_free / MIB);
	return -1;
}

static struct kvgen *demo_gen(struct demo *d, unsigned int seq,
			      unsigned int layer, unsigned int h)
{
	return d->gens[(seq * d->opts.layers + layer) * DEMO_KV_HEADS + h];
}

static int demo_setup(struct demo *d)
{
	struct kvcache_config cfg = {
		.shape = {
			.layers = d->opts.layers,
			.q_heads = DEMO_Q_HEADS,
			.kv_heads = DEMO_KV_HEADS,
			.head_dim = DEMO_HEAD_DIM,
			.page_tokens = DEMO_PAGE_TOKENS,
			.dtype = d->opts.dtype,
		},
		.nr_sequences = d->opts.sequences,
		.max_tokens = d->opts.context + d->opts.steps,
		.flags = KVCACHE_HOST_MIRROR,
		.spread = d->opts.spread,
		.mode = d->opts.mode,
		.steady = { .capacity = d->opts.host_pages },
	};
	size_t n_gens = (size_t)d->opts.sequences * d->opts.layers * DEMO_KV_HEADS;
	size_t q_floats = (size_t)d->opts.sequences * DEMO_Q_HEADS * DEMO_HEAD_DIM;
	size_t pairs = (size_t)d->opts.sequences * DEMO_KV_HEADS;
	size_t chunk = (size_t)DEMO_KV_HEADS * DEMO_FILL_CHUNK * DEMO_HEAD_DIM;
	struct cxl_pnm_info info[KVCACHE_MAX_DEVICES];
	struct kvgen_params params;
	size_t i;

	d->group = DEMO_Q_HEADS / DEMO_KV_HEADS;
	if (demo_check_pool(&d->opts))
		return -1;
	for (i = 0; i < d->opts.n_devs; i++) {
		if (demo_open(d->opts.names[i], &d->devs[i]) ||
		    demo_check_capacity(d, i, &info[i]))
			return -1;
	}
	if (kvcache_create_multi(d->devs, d->opts.n_devs, &cfg, &d->cache))
		return fail("create KV cache");
	/* The banner comes once every size is known to fit. */
	for (i = 0; i < d->opts.n_devs; i++)
		printf("device %u     %s (%s transport), KV area %llu MiB, %u queues, max_batch %u\n",
		       (unsigned int)i, d->opts.names[i],
		       pnm_transport_name(d->devs[i]),
		       (unsigned long long)(info[i].kv_size >> 20), info[i].nr_queues,
		       info[i].max_batch);
	printf("model        Llama-3.1-8B attention: %u q heads, %u kv heads, head_dim %u, %s, %u-token pages\n",
	       DEMO_Q_HEADS, DEMO_KV_HEADS, DEMO_HEAD_DIM,
	       pnm_dtype_name(d->opts.dtype), DEMO_PAGE_TOKENS);
	printf("placement    %s over %u device(s), mode %s\n",
	       spread_names[d->opts.spread], d->opts.n_devs,
	       d->opts.mode == KVCACHE_MODE_PNG_KV ? "PnG-KV" : "PNM-KV");

	kvgen_default_params(&params, DEMO_HEAD_DIM, d->group);
	d->gens = calloc(n_gens, sizeof(*d->gens));
	if (!d->gens)
		return fail("allocate generators");
	for (i = 0; i < n_gens; i++) {
		d->gens[i] = kvgen_new(&params, d->opts.seed, i);
		if (!d->gens[i])
			return fail("create generator");
	}

	d->q = calloc(q_floats, sizeof(float));
	d->keys = calloc(chunk, sizeof(float));
	d->values = calloc(chunk, sizeof(float));
	d->step.out = calloc(q_floats, sizeof(float));
	d->step.lse = calloc((size_t)d->opts.sequences * DEMO_Q_HEADS, sizeof(float));
	d->step.pages = calloc(pairs * kvcache_max_pages(d->cache), sizeof(uint32_t));
	d->step.n_pages = calloc(pairs, sizeof(uint32_t));
	d->ref_out = calloc((size_t)d->group * DEMO_HEAD_DIM, sizeof(float));
	d->ref_lse = calloc(d->group, sizeof(float));
	d->ref_pages = calloc(kvcache_max_pages(d->cache), sizeof(uint32_t));
	if (!d->q || !d->keys || !d->values || !d->step.out || !d->step.lse ||
	    !d->step.pages || !d->step.n_pages || !d->ref_out || !d->ref_lse ||
	    !d->ref_pages) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	d->step.q = d->q;
	d->step.budget_tokens = d->opts.budget;
	return 0;
}

static void demo_teardown(struct demo *d)
{
	size_t n_gens = (size_t)d->opts.sequences * d->opts.layers * DEMO_KV_HEADS;
	size_t i;

	if (d->gens)
		for (i = 0; i < n_gens; i++)
			kvgen_free(d->gens[i]);
	free(d->gens);
	free(d->q);
	free(d->keys);
	free(d->values);
	free(d->step.out);
	free(d->step.lse);
	free(d->step.pages);
	free(d->step.n_pages);
	free(d->ref_out);
	free(d->ref_lse);
	free(d->ref_pages);
	kvcache_destroy(d->cache);
	for (i = 0; i < d->opts.n_devs; i++)
		pnm_close(d->devs[i]);
}

/* Generate @n tokens for every KV head of (@seq, @layer) and append them. */
static int demo_append(struct demo *d, unsigned int seq, unsigned int layer,
		       uint32_t n)
{
	unsigned int h;
	uint32_t t;

	for (h = 0; h < DEMO_KV_HEADS; h++) {
		struct kvgen *g = demo_gen(d, seq, layer, h);
		size_t base = (size_t)h * n * DEMO_HEAD_DIM;

		for (t = 0; t < n; t++)
			kvgen_next(g, d->keys + base + (size_t)t * DEMO_HEAD_DIM,
				   d->values + base + (size_t)t * DEMO_HEAD_DIM);
	}
	if (kvcache_append_layer(d->cache, seq, layer, d->keys, d->values, n))
		return fail("append");
	return 0;
}

/*
 * Report a step of a long run on stderr, so that a run in the slow VM shows
 * where it is while the summary on stdout stays clean.
 */
static void progress(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int demo_fill(struct demo *d)
{
	double t0 = now_seconds();
	unsigned int seq, layer;
	uint32_t done, n;

	for (seq = 0; seq < d->opts.sequences; seq++) {
		progress("fill: sequence %u of %u, %u tokens x %u layers",
			 seq + 1, d->opts.sequences, d->opts.context,
			 d->opts.layers);
		for (layer = 0; layer < d->opts.layers; layer++) {
			for (done = 0; done < d->opts.context; done += n) {
				n = d->opts.context - done;
				if (n > DEMO_FILL_CHUNK)
					n = DEMO_FILL_CHUNK;
				if (demo_append(d, seq, layer, n))
					return -1;
			}
		}
	}
	d->t_fill += now_seconds() - t0;
	return 0;
}

static void record_failure(struct demo *d, const char *fmt, ...)
{
	va_list ap;

	if (d->stats.first_failure[0])
		return;
	va_start(ap, fmt);
	vsnprintf(d->stats.first_failure, sizeof(d->stats.first_failure), fmt, ap);
	va_end(ap);
}

/*
 * Compare the digests the device wrote with the host's, page by page.
 * Min and max are exact, so they must match bit for bit.  Reads device
 * memory: about 0.5 KiB per page.
 */
static int demo_check_digests(struct demo *d)
{
	struct pnm_ref_stream dev_s, host_s;
	size_t bytes = 2 * DEMO_HEAD_DIM * (d->opts.dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2);
	unsigned int seq, layer, h, j;
	double t0 = now_seconds();
	uint32_t page, full, first;

	for (seq = 0; seq < d->opts.sequences; seq++)
	for (layer = 0; layer < d->opts.layers; layer++)
	for (h = 0; h < DEMO_KV_HEADS; h++)
	for (j = 0; j < kvcache_parts(d->cache); j++) {
		if (kvcache_ref_part(d->cache, seq, layer, h, j, KVCACHE_REF_DEVICE,
				     &dev_s, &first) ||
		    kvcache_ref_part(d->cache, seq, layer, h, j, KVCACHE_REF_MIRROR,
				     &host_s, NULL))
			return fail("reference stream");
		full = dev_s.n_tokens / DEMO_PAGE_TOKENS;
		for (page = 0; page < full; page++) {
			d->stats.digests_checked++;
			if (!memcmp(pnm_ref_digest_of(&dev_s, dev_s.table[page]),
				    pnm_ref_digest_of(&host_s, host_s.table[page]),
				    bytes))
				continue;
			d->stats.digest_mismatches++;
			record_failure(d, "digest of page %u of stream (seq %u, layer %u, kv head %u) differs from the reference",
				       first + page, seq, layer, h);
		}
	}
	d->t_verify += now_seconds() - t0;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool same_pages(const uint32_t *a, unsigned int na, const uint32_t *b,
		       unsigned int nb)
{
	return na == nb && !memcmp(a, b, na * sizeof(*a));
}

/*
 * Error bounds of one query head, from Documentation/runtime.rst: with
 * S = scale * max_t sum_c |q_c K_tc| over the attended tokens, n tokens
 * and Vmax = max |V|, the device and the reference each compute a logit
 * within (d + 2) u S, so
 *   |d lse| <= 2 (d + 2) u S + 2 (n + 8) u + 4 u |lse|
 *   |d out| <= Vmax (4 (d + 2) u S + 4 (n + 8) u).
 */
struct demo_bound {
	double out_tol;
	double lse_tol;
};

static struct demo_bound demo_head_bound(const struct pnm_ref_stream *s,
					 const float *q, const uint32_t *pages,
					 unsigned int n_pages, float lse)
{
	double scale = 1.0 / sqrt((double)s->head_dim), smax = 0.0, vmax = 0.0;
	unsigned int d = s->head_dim, p, t, c;
	uint32_t n = 0, n_all = pnm_ref_n_pages(s);
	struct demo_bound b;

	for (p = 0; p < n_pages; p++) {
		const void *keys = pnm_ref_slot(s, s->table[pages[p]]);
		const void *values = (const char *)keys +
			(size_t)d * (s->dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2) *
			DEMO_PAGE_TOKENS;
		uint32_t valid = pages[p] + 1 < n_all ? DEMO_PAGE_TOKENS :
				 s->n_tokens - pages[p] * DEMO_PAGE_TOKENS;

		for (t = 0; t < valid; t++, n++) {
			double sum = 0.0;

			for (c = 0; c < d; c++) {
				size_t i = (size_t)t * d + c;
				double v = fabs(pnm_ref_load(s->dtype, values, i));

				sum += fabs(q[c] * pnm_ref_load(s->dtype, keys, i));
				if (v > vmax)
					vmax = v;
			}
			if (sum * scale > smax)
				smax = sum * scale;
		}
	}
	b.lse_tol = 2.0 * (d + 2) * FP32_U * smax + 2.0 * (n + 8) * FP32_U +
		    4.0 * FP32_U * fabs(lse);
	b.out_tol = vmax * (4.0 * (d + 2) * FP32_U * smax + 4.0 * (n + 8) * FP32_U);
	return b;
}

/* Compare one query head's output and LSE with the reference's. */
static void demo_check_head(struct demo *d, const struct pnm_ref_stream *s,
			    const float *q, const uint32_t *pages,
			    unsigned int n_pages, const float *out, float lse,
			    const float *ref_out, float ref_lse,
			    unsigned int seq, unsigned int layer, unsigned int head)
{
	struct demo_bound b = demo_head_bound(s, q, pages, n_pages, ref_lse);
	double max_abs = 0.0, max_ref = 0.0, lse_err = fabs((double)lse - ref_lse);
	unsigned int c;
	bool ok;

	for (c = 0; c < s->head_dim; c++) {
		double err = fabs((double)out[c] - ref_out[c]);

		if (!(err <= max_abs))	/* also catches NaN */
			max_abs = isnan(err) ? INFINITY : err;
		if (fabs(ref_out[c]) > max_ref)
			max_ref = fabs(ref_out[c]);
	}
	if (isnan(lse_err))
		lse_err = INFINITY;

	if (max_abs > d->stats.max_out_abs)
		d->stats.max_out_abs = max_abs;
	if (max_ref > 0 && max_abs / max_ref > d->stats.max_out_rel)
		d->stats.max_out_rel = max_abs / max_ref;
	if (lse_err > d->stats.max_lse_abs)
		d->stats.max_lse_abs = lse_err;
	if (max_abs / b.out_tol > d->stats.max_out_ratio)
		d->stats.max_out_ratio = max_abs / b.out_tol;
	if (lse_err / b.lse_tol > d->stats.max_lse_ratio)
		d->stats.max_lse_ratio = lse_err / b.lse_tol;

	ok = max_abs <= b.out_tol && lse_err <= b.lse_tol;
	if (ok)
		return;
	d->stats.output_failures++;
	record_failure(d, "seq %u layer %u q head %u: output error %.3g (tolerance %.3g), lse error %.3g (tolerance %.3g)",
		       seq, layer, head, max_abs, b.out_tol, lse_err, b.lse_tol);
}

/*
 * Check what each device selected for the stream against pnm_ref_select()
 * over the same sub-stream with the same budget, flags and exclusions,
 * and that the stream's pages are the devices' and the host's together.
 * An unsplit PNM-KV stream must also equal a plain top-k of the stream.
 */
static int demo_check_selection(struct demo *d, unsigned int seq,
				unsigned int layer, unsigned int h,
				const float *q, unsigned int k,
				const uint32_t *pages, unsigned int n_pages)
{
	unsigned int j, i, n_host, total, bad = 0;
	struct kvcache_part_plan plan;
	struct pnm_ref_stream s;
	const uint32_t *host;
	int n_ref;

	n_host = kvcache_host_pages(d->cache, seq, layer, h, &host);
	total = n_host;
	for (j = 0; j < kvcache_parts(d->cache); j++) {
		if (kvcache_part_plan(d->cache, seq, layer, h, j, &plan) ||
		    kvcache_ref_part(d->cache, seq, layer, h, j, KVCACHE_REF_MIRROR,
				     &s, NULL))
			return fail("stream part");
		if (!plan.k)
			continue;
		total += plan.n_pages;
		n_ref = pnm_ref_select(&s, q, plan.k, plan.flags, plan.exclude,
				       plan.n_exclude, d->ref_pages);
		if (n_ref < 0 || !same_pages(plan.pages, plan.n_pages,
					     d->ref_pages, n_ref))
			bad++;
		for (i = 0; i < plan.n_pages; i++)
			if (!bsearch(&(uint32_t){ plan.first_page + plan.pages[i] },
				     pages, n_pages, sizeof(*pages), cmp_u32))
				bad++;
	}
	for (i = 0; i < n_host; i++)
		if (!bsearch(&host[i], pages, n_pages, sizeof(*pages), cmp_u32))
			bad++;
	if (total != n_pages)
		bad++;
	if (kvcache_parts(d->cache) == 1 && !n_host) {
		if (kvcache_ref_stream(d->cache, seq, layer, h, KVCACHE_REF_MIRROR, &s))
			return fail("reference stream");
		n_ref = pnm_ref_select(&s, q, k, CXL_PNM_CMD_KEEP_SINK |
				       CXL_PNM_CMD_KEEP_RECENT, NULL, 0, d->ref_pages);
		if (n_ref < 0 || !same_pages(pages, n_pages, d->ref_pages, n_ref))
			bad++;
	}
	if (bad) {
		d->stats.selection_mismatches++;
		record_failure(d, "seq %u layer %u kv head %u: the selection of %u pages (%u from the host) differs from the reference",
			       seq, layer, h, n_pages, n_host);
	}
	return 0;
}

/* Check the selection and the outputs of one stream of the last step. */
static int demo_check_stream(struct demo *d, unsigned int seq,
			     unsigned int layer, unsigned int h, unsigned int k)
{
	size_t pair = (size_t)seq * DEMO_KV_HEADS + h;
	const uint32_t *pages = d->step.pages + pair * kvcache_max_pages(d->cache);
	unsigned int n_pages = d->step.n_pages[pair], g, head;
	size_t q_head = (size_t)seq * DEMO_Q_HEADS + (size_t)h * d->group;
	const float *q = d->q + q_head * DEMO_HEAD_DIM;
	struct pnm_ref_stream s;

	if (kvcache_ref_stream(d->cache, seq, layer, h, KVCACHE_REF_MIRROR, &s))
		return fail("reference stream");
	if (demo_check_selection(d, seq, layer, h, q, k, pages, n_pages))
		return -1;
	/* Attend over the pages attended, so outputs compare like for like. */
	pnm_ref_attend(&s, q, pages, n_pages, d->ref_out, d->ref_lse);
	for (g = 0; g < d->group; g++) {
		head = h * d->group + g;
		demo_check_head(d, &s, q + (size_t)g * DEMO_HEAD_DIM, pages,
				n_pages,
				d->step.out + (q_head + g) * DEMO_HEAD_DIM,
				d->step.lse[q_head + g],
				d->ref_out + (size_t)g * DEMO_HEAD_DIM,
				d->ref_lse[g], seq, layer, head);
	}
	d->stats.streams_checked++;
	return 0;
}

static int demo_verify_step(struct demo *d, unsigned int layer)
{
	unsigned int k = d->opts.budget / DEMO_PAGE_TOKENS, seq, h;
	double t0 = now_seconds();

	for (seq = 0; seq < d->opts.sequences; seq++)
		for (h = 0; h < DEMO_KV_HEADS; h++)
			if (demo_check_stream(d, seq, layer, h, k))
				return -1;
	d->t_verify += now_seconds() - t0;
	return 0;
}

/*
 * One decode step of one layer: each sequence's new token gets its query
 * (position = tokens so far) and then its key and value, which are
 * appended before attention, as a decoder does.
 */
static int demo_decode_layer(struct demo *d, unsigned int layer)
{
	unsigned int seq, h;
	double t0 = now_seconds();

	for (seq = 0; seq < d->opts.sequences; seq++) {
		for (h = 0; h < DEMO_KV_HEADS; h++)
			kvgen_query(demo_gen(d, seq, layer, h),
				    d->q + ((size_t)seq * DEMO_Q_HEADS + h * d->group) *
				    DEMO_HEAD_DIM);
		if (demo_append(d, seq, layer, 1))
			return -1;
	}
	if (kvcache_decode_step(d->cache, layer, &d->step))
		return fail("decode step");
	d->t_decode += now_seconds() - t0;

	d->stats.device_ns += d->step.device_ns;
	d->device_ns_parallel += d->step.device_ns_parallel;
	d->bytes_moved += d->step.bytes_moved;
	for (seq = 0; seq < d->opts.sequences; seq++) {
		for (h = 0; h < DEMO_KV_HEADS; h++) {
			uint32_t n = kvcache_tokens(d->cache, seq, layer, h);

			d->stats.pages_scanned += (n + DEMO_PAGE_TOKENS - 1) / DEMO_PAGE_TOKENS;
			d->stats.pages_selected +=
				d->step.n_pages[(size_t)seq * DEMO_KV_HEADS + h];
		}
	}
	return d->opts.verify ? demo_verify_step(d, layer) : 0;
}

static bool demo_passed(const struct demo *d)
{
	return !d->stats.selection_mismatches && !d->stats.output_failures &&
	       !d->stats.digest_mismatches;
}

/* Per device: stream parts held, pages scanned and selected, time. */
static void demo_summary_devices(const struct demo *d)
{
	struct kvcache_device_stats ds;
	unsigned int i;

	for (i = 0; i < d->opts.n_devs; i++) {
		if (kvcache_device_stats(d->cache, i, &ds))
			continue;
		printf("device %u     %u stream parts, %llu commands, %llu pages scanned, %llu selected, %.3f ms modeled\n",
		       i, ds.streams, (unsigned long long)ds.commands,
		       (unsigned long long)ds.pages_scanned,
		       (unsigned long long)ds.pages_selected, ds.device_ns * 1e-6);
	}
}

/* Host cache figures (PnG-KV) and bytes moved per decode step. */
static void demo_summary_mode(const struct demo *d)
{
	struct kvcache_png_stats ps;
	unsigned int steps = d->opts.steps ? d->opts.steps : 1;

	if (kvcache_png_stats(d->cache, &ps))
		return;
	if (d->opts.mode == KVCACHE_MODE_PNG_KV)
		printf("png-kv       hit rate %.3f (%llu of %llu attended pages from the host cache); %llu pages copied in, %llu evicted\n",
		       ps.pages_attended ? (double)ps.host_hits / ps.pages_attended : 0.0,
		       (unsigned long long)ps.host_hits,
		       (unsigned long long)ps.pages_attended,
		       (unsigned long long)ps.pages_copied,
		       (unsigned long long)ps.pages_evicted);
	printf("bytes moved  %.1f KiB per decode step (all layers): pages copied %.1f, exclusion lists %.1f, results %.1f\n",
	       d->bytes_moved / 1024.0 / steps, ps.bytes_copied / 1024.0 / steps,
	       ps.bytes_lists / 1024.0 / steps, ps.bytes_results / 1024.0 / steps);
}

static void demo_summary(const struct demo *d, double wall)
{
	const struct demo_stats *st = &d->stats;
	unsigned int streams = d->opts.sequences * d->opts.layers * DEMO_KV_HEADS;

	printf("tokens       %u per sequence (context %u + %u decode steps)\n",
	       d->opts.context + d->opts.steps, d->opts.context, d->opts.steps);
	printf("sequences    %u\n", d->opts.sequences);
	printf("layers       %u\n", d->opts.layers);
	printf("steps        %u\n", d->opts.steps);
	printf("streams      %u (sequence x layer x kv head)\n", streams);
	printf("pages        %llu scanned, %llu selected (budget %u tokens, k = %u pages)\n",
	       (unsigned long long)st->pages_scanned,
	       (unsigned long long)st->pages_selected, d->opts.budget,
	       d->opts.budget / DEMO_PAGE_TOKENS);
	if (d->opts.verify) {
		printf("selection    %u of %u streams identical to the reference\n",
		       st->streams_checked - st->selection_mismatches,
		       st->streams_checked);
		printf("digests      %llu of %llu page digests identical to the reference (after fill and at the end)\n",
		       (unsigned long long)(st->digests_checked - st->digest_mismatches),
		       (unsigned long long)st->digests_checked);
		printf("max error    out %.3g abs, %.3g rel; lse %.3g abs; worst error/tolerance: out %.3g, lse %.3g\n",
		       st->max_out_abs, st->max_out_rel, st->max_lse_abs,
		       st->max_out_ratio, st->max_lse_ratio);
	}
	printf("wall time    %.2f s: fill %.2f s, decode %.2f s, verify %.2f s\n",
	       wall, d->t_fill, d->t_decode, d->t_verify);
	printf("device time  %.3f ms modeled (sum of device_ns of %u decode steps x %u layers); %.3f ms with the devices in parallel\n",
	       st->device_ns * 1e-6, d->opts.steps, d->opts.layers,
	       d->device_ns_parallel * 1e-6);
	demo_summary_devices(d);
	demo_summary_mode(d);
	if (!d->opts.verify)
		printf("verify: SKIPPED\n");
	else if (demo_passed(d))
		printf("verify: PASS\n");
	else
		printf("verify: FAIL %u selection mismatches, %u output failures, %u digest mismatches; first: %s\n",
		       st->selection_mismatches, st->output_failures,
		       st->digest_mismatches, st->first_failure);
}

static int demo_run(struct demo *d)
{
	unsigned int step, layer;

	if (demo_fill(d))
		return -1;
	if (d->opts.verify && demo_check_digests(d))
		return -1;
	for (step = 0; step < d->opts.steps; step++) {
		progress("decode: step %u of %u", step + 1, d->opts.steps);
		for (layer = 0; layer < d->opts.layers; layer++)
			if (demo_decode_layer(d, layer))
				return -1;
	}
	/* Pages that filled while decoding were digested too: check again. */
	if (d->opts.verify && d->opts.steps && demo_check_digests(d))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct demo d = { 0 };
	double t0 = now_seconds();
	int ret;

	if (argv[0] && strrchr(argv[0], '/'))
		prog = strrchr(argv[0], '/') + 1;
	else if (argv[0] && argv[0][0])
		prog = argv[0];
	if (parse_args(argc, argv, &d.opts, d.names))
		return 2;
	ret = demo_setup(&d);
	if (!ret)
		ret = demo_run(&d);
	if (!ret)
		demo_summary(&d, now_seconds() - t0);
	demo_teardown(&d);
	if (ret)
		return 1;
	return !d.opts.verify || demo_passed(&d) ? 0 : 1;
}
