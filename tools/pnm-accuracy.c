// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnm-accuracy: how much attention the device's page selection keeps.
 *
 * For each KV case (the realistic generator and three adversarial ones),
 * each budget and each mode (PNM-KV, PnG-KV), it fills one KV-cache stream
 * on a device (direct transport), runs decode steps and, on the last
 * steps, compares with exact attention computed on the host in double:
 *   mass    attention mass on the pages attended (mean over the group's
 *           query heads: the device selects per KV head);
 *   oracle  the mass of the same number of pages with the largest true
 *           mass, the best any selection of that size can keep;
 *   ratio   mass / oracle;
 *   error   ||out - dense|| / ||dense||, dense = pnm_ref_attend_dense()
 *           semantics (every token), mean over heads and steps.
 * Documentation/accuracy.rst describes the cases and records results.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvcache.h"
#include "kvgen.h"
#include "pnm.h"
#include "pnm_ref.h"
#include "cli.h"

#define ACC_Q_HEADS	4
#define ACC_HEAD_DIM	128
#define ACC_PAGE	16
#define ACC_DTYPE	CXL_PNM_DTYPE_BF16
#define ACC_FAR_PAGE	40	/* the needle page of the far-page case */
#define ACC_OUTLIER	7	/* the outlier channel of the outlier case */

#ifndef PNM_TOOLS_DIR
#define PNM_TOOLS_DIR "tools"
#endif
#define ACC_PLOT_SCRIPT	PNM_TOOLS_DIR "/pnm-accuracy-plot.py"
#define ACC_PYTHON	"/usr/bin/python3"

/* The program's name for messages: argv[0] without its directory. */
static const char *prog = "pnm-accuracy";

static const unsigned int budgets[] = { 256, 512, 1024, 2048, 4096 };
#define N_BUDGETS	(sizeof(budgets) / sizeof(budgets[0]))

enum acc_case { CASE_REALISTIC, CASE_FAR_PAGE, CASE_UNIFORM, CASE_OUTLIER, N_CASES };
static const char *const case_names[] = {
	"realistic", "far-page", "near-uniform", "outlier-channel",
};

struct acc_opts {
	const char *device;
	bool spawn;
	const char *csv;
	const char *plot;
	unsigned int context;
	unsigned int steps;	/* decode steps per run */
	unsigned int measured;	/* the last steps that are measured */
	uint64_t seed;
};

/* One row of the table. */
struct acc_row {
	enum acc_case kcase;
	unsigned int budget;
	enum kvcache_mode mode;
	double mass, oracle, error, hit_rate;
};

/* splitmix64 and Box-Muller: the synthetic cases' own numbers. */
struct acc_rng {
	uint64_t state;
};

static uint64_t rng_next(struct acc_rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double rng_normal(struct acc_rng *r)
{
	double u1 = ((rng_next(r) >> 11) + 1.0) * 0x1p-53;
	double u2 = (rng_next(r) >> 11) * 0x1p-53;

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* The token and query source of one run. */
struct acc_source {
	enum acc_case kcase;
	struct kvgen *gen;	/* realistic */
	struct acc_rng rng;
	float dir[ACC_HEAD_DIM];	/* far-page: the needle direction */
	float base[ACC_HEAD_DIM];	/* near-uniform: the common key */
	uint32_t pos;
};

static int source_init(struct acc_source *s, enum acc_case kcase, uint64_t seed)
{
	struct kvgen_params p;
	unsigned int c;
	double norm = 0.0;

	memset(s, 0, sizeof(*s));
	s->kcase = kcase;
	s->rng.state = seed * 0x100000001b3ULL + kcase;
	if (kcase == CASE_REALISTIC) {
		kvgen_default_params(&p, ACC_HEAD_DIM, ACC_Q_HEADS);
		s->gen = kvgen_new(&p, seed, 0);
		return s->gen ? 0 : -1;
	}
	for (c = 0; c < ACC_HEAD_DIM; c++) {
		s->dir[c] = (float)rng_normal(&s->rng);
		s->base[c] = (float)rng_normal(&s->rng);
		norm += (double)s->dir[c] * s->dir[c];
	}
	for (c = 0; c < ACC_HEAD_DIM; c++)
		s->dir[c] /= (float)sqrt(norm);
	return 0;
}

/*
 * The next token's key and value.  far-page: Gaussian keys, except the
 * needle page, whose keys point along dir (logits about 8 above the rest,
 * about 60 % of the mass at 16K tokens); near-uniform: every key is
 * base plus noise of 1 %; outlier-channel: Gaussian keys with one channel
 * of magnitude 30 and random sign.  Values are Gaussian.
 */
static void source_token(struct acc_source *s, float *key, float *value)
{
	uint32_t page = s->pos / ACC_PAGE;
	unsigned int c;

	s->pos++;
	if (s->gen) {
		kvgen_next(s->gen, key, value);
		return;
	}
	for (c = 0; c < ACC_HEAD_DIM; c++) {
		double n = rng_normal(&s->rng);

		switch (s->kcase) {
		case CASE_FAR_PAGE:
			key[c] = page == ACC_FAR_PAGE ?
				 (float)(16.0 * s->dir[c] + 0.5 * n) :
				 (float)n;
			break;
		case CASE_UNIFORM:
			key[c] = s->base[c] + (float)(0.01 * n);
			break;
		default:
			key[c] = c == ACC_OUTLIER ?
				 (float)((rng_next(&s->rng) & 1 ? 30.0 : -30.0) + n) :
				 (float)n;
			break;
		}
		value[c] = (float)rng_normal(&s->rng);
	}
}

/* The queries of the next step, q[ACC_Q_HEADS][ACC_HEAD_DIM]. */
static void source_query(struct acc_source *s, float *q)
{
	unsigned int g, c;

	if (s->gen) {
		kvgen_query(s->gen, q);
		return;
	}
	for (g = 0; g < ACC_Q_HEADS; g++) {
		for (c = 0; c < ACC_HEAD_DIM; c++) {
			double n = rng_normal(&s->rng);
			float *x = &q[g * ACC_HEAD_DIM + c];

			switch (s->kcase) {
			case CASE_FAR_PAGE:
				*x = (float)(0.5 * sqrt(ACC_HEAD_DIM) * s->dir[c] + n);
				break;
			case CASE_UNIFORM:
				*x = (float)n;
				break;
			default:
				/* A small weight on the outlier channel. */
				*x = (float)(c == ACC_OUTLIER ? 0.05 * n : n);
				break;
			}
		}
	}
}

static void source_free(struct acc_source *s)
{
	kvgen_free(s->gen);
}

/* Host copies of the tokens, rounded as the cache stores them. */
struct acc_tokens {
	float *k, *v;		/* [n][ACC_HEAD_DIM] */
	uint32_t n;
};

static void round_row(float *row)
{
	uint16_t h;
	unsigned int c;

	for (c = 0; c < ACC_HEAD_DIM; c++) {
		pnm_ref_store(ACC_DTYPE, &h, 0, row[c]);
		row[c] = pnm_ref_load(ACC_DTYPE, &h, 0);
	}
}

/*
 * Exact attention of the group over every token, in double: per page the
 * mass (mean over heads), and per head the dense output.
 */
static void exact_attention(const struct acc_tokens *t, const float *q,
			    double *page_mass, double *dense)
{
	uint32_t n_pages = (t->n + ACC_PAGE - 1) / ACC_PAGE, i;
	double scale = 1.0 / sqrt(ACC_HEAD_DIM);
	double *logit = malloc(t->n * sizeof(double));
	unsigned int g, c;

	memset(page_mass, 0, n_pages * sizeof(double));
	for (g = 0; g < ACC_Q_HEADS && logit; g++) {
		const float *qg = q + g * ACC_HEAD_DIM;
		double m = -INFINITY, sum = 0.0;

		for (i = 0; i < t->n; i++) {
			double dot = 0.0;

			for (c = 0; c < ACC_HEAD_DIM; c++)
				dot += (double)qg[c] * t->k[(size_t)i * ACC_HEAD_DIM + c];
			logit[i] = dot * scale;
			m = fmax(m, logit[i]);
		}
		for (i = 0; i < t->n; i++)
			sum += exp(logit[i] - m);
		memset(dense + g * ACC_HEAD_DIM, 0, ACC_HEAD_DIM * sizeof(double));
		for (i = 0; i < t->n; i++) {
			double w = exp(logit[i] - m) / sum;

			page_mass[i / ACC_PAGE] += w / ACC_Q_HEADS;
			for (c = 0; c < ACC_HEAD_DIM; c++)
				dense[g * ACC_HEAD_DIM + c] +=
					w * t->v[(size_t)i * ACC_HEAD_DIM + c];
		}
	}
	free(logit);
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Mass of the @k heaviest pages. */
static double oracle_mass(const double *page_mass, uint32_t n_pages,
			  unsigned int k)
{
	double *sorted = malloc(n_pages * sizeof(double)), sum = 0.0;
	unsigned int i;

	if (!sorted)
		return NAN;
	memcpy(sorted, page_mass, n_pages * sizeof(double));
	qsort(sorted, n_pages, sizeof(double), cmp_desc);
	for (i = 0; i < k && i < n_pages; i++)
		sum += sorted[i];
	free(sorted);
	return sum;
}

struct acc_run {
	struct pnm_dev *dev;
	const struct acc_opts *opts;
	struct acc_tokens tokens;
	struct kvcache *cache;
	struct kvcache_step step;
	float q[ACC_Q_HEADS * ACC_HEAD_DIM];
	float out[ACC_Q_HEADS * ACC_HEAD_DIM];
	float lse[ACC_Q_HEADS];
	uint32_t *pages;
	uint32_t n_pages;
	double *page_mass;
	double dense[ACC_Q_HEADS * ACC_HEAD_DIM];
};

/* Append @n tokens from @src to the cache and to the host copies. */
static int run_append(struct acc_run *r, struct acc_source *src, uint32_t n)
{
	float *k = r->tokens.k + (size_t)r->tokens.n * ACC_HEAD_DIM;
	float *v = r->tokens.v + (size_t)r->tokens.n * ACC_HEAD_DIM;
	uint32_t i;
	int ret;

	for (i = 0; i < n; i++)
		source_token(src, k + (size_t)i * ACC_HEAD_DIM,
			     v + (size_t)i * ACC_HEAD_DIM);
	ret = kvcache_append(r->cache, 0, 0, 0, k, v, n);
	for (i = 0; i < n; i++) {
		round_row(k + (size_t)i * ACC_HEAD_DIM);
		round_row(v + (size_t)i * ACC_HEAD_DIM);
	}
	r->tokens.n += n;
	return ret;
}

/* Measure the last step: mass on the attended pages and output error. */
static void run_measure(struct acc_run *r, struct acc_row *row)
{
	uint32_t n_pages = (r->tokens.n + ACC_PAGE - 1) / ACC_PAGE, i;
	double mass = 0.0, err = 0.0;
	unsigned int g, c;

	exact_attention(&r->tokens, r->q, r->page_mass, r->dense);
	for (i = 0; i < r->step.n_pages[0]; i++)
		mass += r->page_mass[r->pages[i]];
	for (g = 0; g < ACC_Q_HEADS; g++) {
		double diff = 0.0, norm = 0.0;

		for (c = 0; c < ACC_HEAD_DIM; c++) {
			double want = r->dense[g * ACC_HEAD_DIM + c];
			double got = r->out[g * ACC_HEAD_DIM + c];

			diff += (got - want) * (got - want);
			norm += want * want;
		}
		err += sqrt(diff / norm) / ACC_Q_HEADS;
	}
	row->mass += mass;
	row->oracle += oracle_mass(r->page_mass, n_pages, r->step.n_pages[0]);
	row->error += err;
}

/* One case, budget and mode: a fresh cache, a fill, decode steps. */
static int run_one(struct pnm_dev *dev, const struct acc_opts *o,
		   struct acc_row *row)
{
	struct kvcache_config cfg = {
		.shape = {
			.layers = 1, .q_heads = ACC_Q_HEADS, .kv_heads = 1,
			.head_dim = ACC_HEAD_DIM, .page_tokens = ACC_PAGE,
			.dtype = ACC_DTYPE,
		},
		.nr_sequences = 1,
		.max_tokens = o->context + o->steps,
		.mode = row->mode,
	};
	struct acc_run r = { .dev = dev, .opts = o };
	size_t floats = (size_t)cfg.max_tokens * ACC_HEAD_DIM;
	struct kvcache_png_stats ps;
	struct acc_source src;
	uint32_t done, n;
	unsigned int step;
	int ret = -1;

	r.tokens.k = malloc(floats * sizeof(float));
	r.tokens.v = malloc(floats * sizeof(float));
	r.pages = calloc(cfg.max_tokens / ACC_PAGE + 1, sizeof(uint32_t));
	r.page_mass = calloc(cfg.max_tokens / ACC_PAGE + 1, sizeof(double));
	if (!r.tokens.k || !r.tokens.v || !r.pages || !r.page_mass ||
	    source_init(&src, row->kcase, o->seed))
		goto out;
	if (kvcache_create(dev, &cfg, &r.cache))
		goto out_src;
	r.step = (struct kvcache_step){
		.q = r.q, .budget_tokens = row->budget, .out = r.out,
		.lse = r.lse, .pages = r.pages, .n_pages = &r.n_pages,
	};
	for (done = 0; done < o->context; done += n) {
		n = o->context - done < 1024 ? o->context - done : 1024;
		if (run_append(&r, &src, n))
			goto out_cache;
	}
	for (step = 0; step < o->steps; step++) {
		source_query(&src, r.q);
		if (run_append(&r, &src, 1) ||
		    kvcache_decode_step(r.cache, 0, &r.step))
			goto out_cache;
		if (step + o->measured >= o->steps)
			run_measure(&r, row);
	}
	row->mass /= o->measured;
	row->oracle /= o->measured;
	row->error /= o->measured;
	row->hit_rate = NAN;
	if (row->mode == KVCACHE_MODE_PNG_KV && !kvcache_png_stats(r.cache, &ps))
		row->hit_rate = (double)ps.host_hits / ps.pages_attended;
	ret = 0;
out_cache:
	kvcache_destroy(r.cache);
out_src:
	source_free(&src);
out:
	if (ret)
		fprintf(stderr, "%s: %s, budget %u: %s\n", prog,
			case_names[row->kcase], row->budget, pnm_last_error());
	free(r.tokens.k);
	free(r.tokens.v);
	free(r.pages);
	free(r.page_mass);
	return ret;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: %s (--device direct:PATH | --spawn-device) [options]\n"
		"  --device NAME     a device: direct:PATH of a running pnm-device, or /dev/cxl/pnmN\n"
		"  --spawn-device    start pnm-device (next to this program) on a /dev/shm file of\n"
		"                    its own, and remove it afterwards\n"
		"  --context N       tokens before decoding (default 16384)\n"
		"  --steps N         decode steps per run (default 12)\n"
		"  --measured N      last steps measured (default 4)\n"
		"  --seed N          (default 1)\n"
		"  --csv FILE        write the table as CSV\n"
		"  --plot FILE       write a PNG plot (/usr/bin/python3 with matplotlib)\n",
		prog);
}

/*
 * Can @path be written once the run is over?  Checked before the run,
 * which takes minutes: its folder must exist and be writable, and an
 * existing @path must be a writable regular file.
 */
static int check_output(const char *opt, const char *path)
{
	char copy[PATH_MAX];
	const char *dir;
	struct stat st;

	if (!path[0])
		return usage_error("%s '': give a file name", opt);
	if (strlen(path) >= sizeof(copy))
		return usage_error("%s: path longer than %d bytes", opt, PATH_MAX - 1);
	strcpy(copy, path);
	dir = dirname(copy);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "%s: %s %s: folder %s does not exist; create it or write elsewhere\n",
			prog, opt, path, dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK)) {
		fprintf(stderr, "%s: %s %s: folder %s is not writable: %s\n",
			prog, opt, path, dir, strerror(errno));
		return -1;
	}
	if (!stat(path, &st) && (!S_ISREG(st.st_mode) || access(path, W_OK))) {
		fprintf(stderr, "%s: %s %s: exists and is not a writable file\n",
			prog, opt, path);
		return -1;
	}
	return 0;
}

/* Run @argv, wait for it; its exit status, or -1 if it could not run. */
static int run_program(char *const argv[], bool quiet)
{
	int status, fd;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (quiet) {
			fd = open("/dev/null", O_WRONLY);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --plot needs the plot script and a python3 with matplotlib: check now. */
static int check_plot(const char *path)
{
	char *probe[] = { ACC_PYTHON, "-c", "import matplotlib", NULL };

	if (check_output("--plot", path))
		return -1;
	if (access(ACC_PLOT_SCRIPT, R_OK)) {
		fprintf(stderr, "%s: --plot: plot script %s: %s\n", prog,
			ACC_PLOT_SCRIPT, strerror(errno));
		return -1;
	}
	if (run_program(probe, true)) {
		fprintf(stderr, "%s: --plot: %s cannot import matplotlib; install python3-matplotlib (apt-get install python3-matplotlib)\n",
			prog, ACC_PYTHON);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct acc_opts *o)
{
	static const struct option longopts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "spawn-device", no_argument, NULL, 'S' },
		{ "context", required_argument, NULL, 'c' },
		{ "steps", required_argument, NULL, 's' },
		{ "measured", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 'r' },
		{ "csv", required_argument, NULL, 'C' },
		{ "plot", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	unsigned long long v;
	int opt, ret = 0;

	*o = (struct acc_opts){ .context = 16384, .steps = 12, .measured = 4, .seed = 1 };
	opterr = 0;	/* getopt's messages carry the full path: ours follow */
	while (!ret && (opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			o->device = optarg;
			break;
		case 'S':
			o->spawn = true;
			break;
		case 'c':
			ret = parse_uint("--context", optarg, 2 * ACC_PAGE, 1U << 20, &v);
			o->context = v;
			break;
		case 's':
			ret = parse_uint("--steps", optarg, 1, 4096, &v);
			o->steps = v;
			break;
		case 'm':
			ret = parse_uint("--measured", optarg, 1, 4096, &v);
			o->measured = v;
			break;
		case 'r':
			ret = parse_uint("--seed", optarg, 0, UINT64_MAX, &v);
			o->seed = v;
			break;
		case 'C':
			o->csv = optarg;
			break;
		case 'p':
			o->plot = optarg;
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
	if (ret)
		return ret;
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!o->device == !o->spawn)
		return usage_error(o->spawn ? "--device and --spawn-device both choose the device; give one of them" :
				   "no device: give --device direct:PATH or --spawn-device");
	if (o->measured > o->steps)
		return usage_error("--measured %u exceeds --steps %u", o->measured,
				   o->steps);
	if (o->csv && check_output("--csv", o->csv))
		return -1;
	if (o->plot && check_plot(o->plot))
		return -1;
	return 0;
}

/* A pnm-device process this program started. */
struct acc_model {
	pid_t pid;
	char mem[64];
	char log[80];
	char name[80];
};

/*
 * What an interrupted run must remove: the spawned model with its backing
 * file and log, and the CSV written for the plot alone.  Global, for the
 * signal handler.
 */
static struct acc_model model;
static char tmp_csv[64];

static bool model_ready(const char *log)
{
	char buf[4096];
	ssize_t n;
	int fd = open(log, O_RDONLY);

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "pnm-device: ready") != NULL;
}

/* Async-signal-safe: kill(), waitpid() and unlink() only. */
static void model_stop(struct acc_model *m)
{
	int status;

	if (m->pid > 0) {
		kill(m->pid, SIGTERM);
		waitpid(m->pid, &status, 0);
		m->pid = 0;
	}
	if (m->mem[0])
		unlink(m->mem);
	if (m->log[0])
		unlink(m->log);
}

/* Clean up, then die of the signal as if it had not been caught. */
static void on_signal(int sig)
{
	model_stop(&model);
	if (tmp_csv[0])
		unlink(tmp_csv);
	signal(sig, SIG_DFL);
	raise(sig);
}

static const int cleanup_signals[] = { SIGINT, SIGTERM, SIGHUP };
#define N_CLEANUP_SIGNALS	(sizeof(cleanup_signals) / sizeof(cleanup_signals[0]))

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	unsigned int i;

	sigemptyset(&sa.sa_mask);
	for (i = 0; i < N_CLEANUP_SIGNALS; i++)
		sigaddset(&sa.sa_mask, cleanup_signals[i]);
	for (i = 0; i < N_CLEANUP_SIGNALS; i++)
		sigaction(cleanup_signals[i], &sa, NULL);
}

/* Hold the signals while the handler's state changes under it. */
static void block_signals(bool block)
{
	sigset_t set;
	unsigned int i;

	sigemptyset(&set);
	for (i = 0; i < N_CLEANUP_SIGNALS; i++)
		sigaddset(&set, cleanup_signals[i]);
	sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* The model's last words (its log's first line), or its exit status. */
static const char *model_exit_reason(const char *log, int status)
{
	static char reason[160];
	FILE *f = fopen(log, "re");

	reason[0] = '\0';
	if (f) {
		if (fgets(reason, sizeof(reason), f))
			reason[strcspn(reason, "\n")] = '\0';
		fclose(f);
	}
	if (!reason[0])
		snprintf(reason, sizeof(reason), "status %d",
			 WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	return reason;
}

/* Start the pnm-device that sits next to this program. */
static int model_start(struct acc_model *m)
{
	char self[PATH_MAX], bin[PATH_MAX + 16], *slash;
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int waited, fd, status;
	unsigned int i;
	pid_t pid;

	if (len <= 0) {
		fprintf(stderr, "%s: cannot find this program's folder: /proc/self/exe: %s\n",
			prog, strerror(errno));
		return -1;
	}
	self[len] = '\0';
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/pnm-device", self);
	if (getenv("PNM_DEVICE"))
		snprintf(bin, sizeof(bin), "%s", getenv("PNM_DEVICE"));
	snprintf(m->mem, sizeof(m->mem), "/dev/shm/pnm-accuracy-%d", (int)getpid());
	snprintf(m->log, sizeof(m->log), "%s.log", m->mem);
	snprintf(m->name, sizeof(m->name), "direct:%s", m->mem);

	/* The handler must know the child from the moment it exists. */
	block_signals(true);
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < N_CLEANUP_SIGNALS; i++)
			signal(cleanup_signals[i], SIG_DFL);
		block_signals(false);
		/* The model must not outlive a run that is killed. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
		execl(bin, bin, "--mem", m->mem, "--size", "128M", (char *)NULL);
		fprintf(stderr, "exec %s failed: %s\n", bin, strerror(errno));
		_exit(127);
	}
	m->pid = pid > 0 ? pid : 0;
	block_signals(false);
	if (pid < 0) {
		fprintf(stderr, "%s: fork for %s failed: %s\n", prog, bin,
			strerror(errno));
		return -1;
	}
	for (waited = 0; waited < 10000; waited += 10) {
		if (model_ready(m->log))
			return 0;
		if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
			m->pid = 0;
			fprintf(stderr, "%s: %s exited before it was ready (%s); set PNM_DEVICE to a pnm-device binary\n",
				prog, bin, model_exit_reason(m->log, status));
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "%s: %s not ready after 10 s; see %s\n", prog, bin, m->log);
	return -1;
}

static void print_table(FILE *out, const struct acc_row *rows, unsigned int n,
			bool csv)
{
	unsigned int i;

	if (csv)
		fprintf(out, "case,budget_tokens,mode,mass,oracle_mass,mass_ratio,rel_error,hit_rate\n");
	else
		fprintf(out, "%-16s %6s %-7s %8s %8s %7s %9s %6s\n", "case", "budget",
			"mode", "mass", "oracle", "ratio", "rel.err", "hits");
	for (i = 0; i < n; i++) {
		const struct acc_row *r = &rows[i];
		const char *mode = r->mode == KVCACHE_MODE_PNG_KV ? "png-kv" : "pnm-kv";

		char hits[16] = "-";

		if (!isnan(r->hit_rate))
			snprintf(hits, sizeof(hits), "%.3f", r->hit_rate);
		if (csv)
			fprintf(out, "%s,%u,%s,%.6f,%.6f,%.6f,%.6g,%s\n",
				case_names[r->kcase], r->budget, mode, r->mass,
				r->oracle, r->mass / r->oracle, r->error,
				isnan(r->hit_rate) ? "" : hits);
		else
			fprintf(out, "%-16s %6u %-7s %8.4f %8.4f %7.4f %9.3g %6s\n",
				case_names[r->kcase], r->budget, mode, r->mass,
				r->oracle, r->mass / r->oracle, r->error, hits);
	}
}

static int write_csv(const char *path, const struct acc_row *rows,
		     unsigned int n)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return -1;
	}
	print_table(f, rows, n, true);
	if (fclose(f)) {
		fprintf(stderr, "%s: writing %s failed: %s\n", prog, path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int write_outputs(const struct acc_opts *o, const struct acc_row *rows,
			 unsigned int n)
{
	const char *csv = o->csv;
	int ret;

	if (!csv && o->plot) {
		snprintf(tmp_csv, sizeof(tmp_csv), "/tmp/pnm-accuracy-%d.csv",
			 (int)getpid());
		csv = tmp_csv;
	}
	ret = csv ? write_csv(csv, rows, n) : 0;
	if (!ret && o->plot) {
		char *argv[] = { ACC_PYTHON, ACC_PLOT_SCRIPT, (char *)csv,
				 (char *)o->plot, NULL };

		/* The script prints its own one-line reason. */
		if (run_program(argv, false)) {
			fprintf(stderr, "%s: the plot %s was not written\n", prog,
				o->plot);
			ret = -1;
		}
	}
	if (tmp_csv[0])
		unlink(tmp_csv);
	return ret;
}

int main(int argc, char **argv)
{
	struct acc_row rows[N_CASES * N_BUDGETS * 2];
	struct acc_opts o;
	struct pnm_dev *dev = NULL;
	unsigned int n = 0, kc, b, mode;
	int ret = 1;

	if (argv[0] && strrchr(argv[0], '/'))
		prog = strrchr(argv[0], '/') + 1;
	else if (argv[0] && argv[0][0])
		prog = argv[0];
	if (parse_args(argc, argv, &o))
		return 2;
	/* From here on a signal removes what the run created. */
	catch_signals();
	if (o.spawn && model_start(&model))
		goto out;
	if (pnm_open(o.spawn ? model.name : o.device, &dev)) {
		fprintf(stderr, "%s: %s\n", prog, pnm_last_error());
		goto out;
	}
	printf("pnm-accuracy: %u-token context, %u query heads per KV head, head_dim %u, bf16, %u-token pages; last %u of %u steps measured\n",
	       o.context, ACC_Q_HEADS, ACC_HEAD_DIM, ACC_PAGE, o.measured, o.steps);
	for (kc = 0; kc < N_CASES; kc++)
		for (b = 0; b < N_BUDGETS; b++)
			for (mode = 0; mode < 2; mode++) {
				rows[n] = (struct acc_row){
					.kcase = kc, .budget = budgets[b],
					.mode = mode ? KVCACHE_MODE_PNG_KV : KVCACHE_MODE_PNM_KV,
				};
				if (run_one(dev, &o, &rows[n]))
					goto out;
				n++;
			}
	print_table(stdout, rows, n, false);
	ret = write_outputs(&o, rows, n) ? 1 : 0;
out:
	pnm_close(dev);
	block_signals(true);
	if (o.spawn)
		model_stop(&model);
	return ret;
}
