// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl perf: print, write as CSV, or plot the decode performance model
 * (perf_model.c) for built-in or custom model shapes.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf_model.h"
#include "pnmctl.h"

#define MAX_CONTEXTS	16
#define PYTHON		"/usr/bin/python3"

enum {
	OPT_GPU = 256, OPT_GPUS, OPT_GPU_BW, OPT_GPU_CAP, OPT_GPU_LINK,
	OPT_GPU_POWER, OPT_GPU_COST, OPT_LINK_BW, OPT_DEV_CAP, OPT_PNM_BW,
	OPT_PNM_TFLOPS, OPT_PNM_OVERHEAD, OPT_PNM_POWER, OPT_MEM_POWER,
	OPT_DEV_COST, OPT_BUDGET, OPT_PAGE_TOKENS, OPT_KV_BYTES,
	OPT_WEIGHT_BYTES, OPT_HIT_RATE, OPT_ADMIT, OPT_LAYERS, OPT_Q_HEADS,
	OPT_KV_HEADS, OPT_HEAD_DIM, OPT_PARAMS, OPT_CSV, OPT_PLOT,
	OPT_MAX_BATCH,
};

static const struct option perf_opts[] = {
	{ "model", required_argument, NULL, 'm' },
	{ "context", required_argument, NULL, 'c' },
	{ "batch", required_argument, NULL, 'b' },
	{ "max-batch", required_argument, NULL, OPT_MAX_BATCH },
	{ "devices", required_argument, NULL, 'd' },
	{ "gpu", required_argument, NULL, OPT_GPU },
	{ "gpus", required_argument, NULL, OPT_GPUS },
	{ "gpu-bw", required_argument, NULL, OPT_GPU_BW },
	{ "gpu-mem", required_argument, NULL, OPT_GPU_CAP },
	{ "gpu-link", required_argument, NULL, OPT_GPU_LINK },
	{ "gpu-power", required_argument, NULL, OPT_GPU_POWER },
	{ "gpu-cost", required_argument, NULL, OPT_GPU_COST },
	{ "link-bw", required_argument, NULL, OPT_LINK_BW },
	{ "dev-mem", required_argument, NULL, OPT_DEV_CAP },
	{ "pnm-bw", required_argument, NULL, OPT_PNM_BW },
	{ "pnm-tflops", required_argument, NULL, OPT_PNM_TFLOPS },
	{ "pnm-overhead-ns", required_argument, NULL, OPT_PNM_OVERHEAD },
	{ "pnm-power", required_argument, NULL, OPT_PNM_POWER },
	{ "mem-power", required_argument, NULL, OPT_MEM_POWER },
	{ "dev-cost", required_argument, NULL, OPT_DEV_COST },
	{ "budget", required_argument, NULL, OPT_BUDGET },
	{ "page-tokens", required_argument, NULL, OPT_PAGE_TOKENS },
	{ "kv-bytes", required_argument, NULL, OPT_KV_BYTES },
	{ "weight-bytes", required_argument, NULL, OPT_WEIGHT_BYTES },
	{ "hit-rate", required_argument, NULL, OPT_HIT_RATE },
	{ "admit", required_argument, NULL, OPT_ADMIT },
	{ "layers", required_argument, NULL, OPT_LAYERS },
	{ "q-heads", required_argument, NULL, OPT_Q_HEADS },
	{ "kv-heads", required_argument, NULL, OPT_KV_HEADS },
	{ "head-dim", required_argument, NULL, OPT_HEAD_DIM },
	{ "params", required_argument, NULL, OPT_PARAMS },
	{ "csv", required_argument, NULL, OPT_CSV },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "json", no_argument, NULL, 'j' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

static void perf_usage(FILE *f)
{
	fputs("usage: pnmctl perf [--model NAME|all|custom] [--context N[,N...]]\n"
	      "         [--batch N] [--devices N] [--gpu h100|h200] [--csv FILE] [--plot FILE] [-j]\n"
	      "         [hardware and model options: see 'man pnmctl']\n"
	      "models:", f);
	for (unsigned int i = 0; i < perf_nr_shapes; i++)
		fprintf(f, " %s", perf_shapes[i].name);
	fputs(" (default: all three)\n", f);
}

/* A positive number with an optional K or M suffix (powers of 1024). */
static int parse_count(const char *opt, const char *arg, double min,
		       double max, double *value)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (end != arg && (*end == 'K' || *end == 'k')) {
		v *= 1024;
		end++;
	} else if (end != arg && (*end == 'M' || *end == 'm')) {
		v *= 1024 * 1024;
		end++;
	}
	if (errno || end == arg || *end || !(v >= min && v <= max)) {
		pnmctl_err("perf: %s '%s': expected a number from %g to %g",
			   opt, arg, min, max);
		return -EINVAL;
	}
	*value = v;
	return 0;
}

static int parse_contexts(const char *arg, uint64_t *contexts,
			  unsigned int *n)
{
	char buf[256], *tok, *save;
	double v;

	if (strlen(arg) >= sizeof(buf)) {
		pnmctl_err("perf: --context '%s': too long", arg);
		return -EINVAL;
	}
	strcpy(buf, arg);
	*n = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_CONTEXTS) {
			pnmctl_err("perf: --context: at most %d lengths", MAX_CONTEXTS);
			return -EINVAL;
		}
		if (parse_count("--context", tok, 1, 16 * 1024 * 1024, &v))
			return -EINVAL;
		contexts[(*n)++] = (uint64_t)v;
	}
	if (!*n) {
		pnmctl_err("perf: --context '%s': no length given", arg);
		return -EINVAL;
	}
	return 0;
}

static const char *plot_script(void)
{
	const char *env = getenv("PNMCTL_PLOT_SCRIPT");

	if (env)
		return env;
	if (!access(PNMCTL_DATADIR "/perf-plot.py", R_OK))
		return PNMCTL_DATADIR "/perf-plot.py";
	return PNMCTL_SRC_PLOT;
}

/* Run the matplotlib script on the CSV; Debian's python3 has matplotlib. */
static int run_plot(const char *csv, const char *png)
{
	const char *script = plot_script();
	pid_t pid;
	int status;

	if (access(script, R_OK)) {
		pnmctl_err("perf: plot script %s: %s (set PNMCTL_PLOT_SCRIPT)",
			   script, strerror(errno));
		return -ENOENT;
	}
	pnmctl_info(1, "perf: %s %s %s %s", PYTHON, script, csv, png);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		execl(PYTHON, PYTHON, script, csv, png, (char *)NULL);
		fprintf(stderr, "pnmctl: perf: cannot run " PYTHON ": %s (apt-get install python3-matplotlib)\n",
			strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		pnmctl_err("perf: the plot script failed (status %d)",
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EIO;
	}
	return 0;
}

struct perf_row {
	const struct perf_shape *shape;
	uint64_t context;
	enum perf_mode mode;
	struct perf_result r;
	double speedup;			/* tokens/s over the baseline's */
};

static void row_csv(FILE *f, const struct perf_row *row, unsigned int devices)
{
	const struct perf_result *r = &row->r;

	fprintf(f, "%s,%llu,%s,%u,%u,%u,%s,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n",
		row->shape->name, (unsigned long long)row->context,
		perf_mode_name(row->mode), devices, r->gpus, r->batch, r->limit,
		r->step_s * 1e3, r->weights_s * 1e3, r->select_s * 1e3,
		r->link_s * 1e3, r->attend_s * 1e3, r->tokens_per_s,
		r->joules_per_token, r->usd_per_mtoken, row->speedup);
}

static const char csv_header[] =
	"model,context,mode,devices,gpus,batch,limit,step_ms,weights_ms,select_ms,link_ms,attend_ms,tokens_per_s,joules_per_token,usd_per_mtoken,speedup\n";

static void row_json(struct json_out *j, const struct perf_row *row,
		     unsigned int devices)
{
	const struct perf_result *r = &row->r;

	json_key_open(j, NULL, '{');
	json_str(j, "model", row->shape->name);
	json_u64(j, "context", row->context);
	json_str(j, "mode", perf_mode_name(row->mode));
	json_u64(j, "devices", devices);
	json_u64(j, "gpus", r->gpus);
	json_u64(j, "batch", r->batch);
	json_str(j, "limit", r->limit);
	if (r->fits) {
		json_double(j, "step_ms", r->step_s * 1e3);
		json_double(j, "tokens_per_s", r->tokens_per_s);
		json_double(j, "joules_per_token", r->joules_per_token);
		json_double(j, "usd_per_mtoken", r->usd_per_mtoken);
		json_double(j, "speedup", row->speedup);
	}
	json_close(j, '}');
}

static void row_table(const struct perf_row *row)
{
	const struct perf_result *r = &row->r;

	printf("%-15s %5lluK %-9s %4u %5u  ", row->shape->name,
	       (unsigned long long)row->context / 1024,
	       perf_mode_name(row->mode), r->gpus, r->batch);
	if (!r->fits) {
		printf("%-12s %s\n", r->limit, "does not fit");
		return;
	}
	printf("%-12s %9.2f %10.1f %9.3f %9.3f %7.2fx\n", r->limit,
	       r->step_s * 1e3, r->tokens_per_s, r->joules_per_token,
	       r->usd_per_mtoken, row->speedup);
}

static int custom_shape(struct perf_shape *s)
{
	if (!s->layers || !s->q_heads || !s->kv_heads || !s->head_dim ||
	    s->params <= 0 || s->q_heads % s->kv_heads) {
		pnmctl_err("perf: --model custom needs --layers, --q-heads, --kv-heads (dividing --q-heads), --head-dim and --params");
		return -EINVAL;
	}
	return 0;
}

int cmd_perf(int argc, char **argv)
{
	static struct perf_shape custom = { .name = "custom" };
	uint64_t contexts[MAX_CONTEXTS] = { 128 << 10, 256 << 10, 512 << 10, 1 << 20 };
	const char *model = "all", *csv_path = NULL, *plot_path = NULL;
	char tmp_csv[] = "/tmp/pnmctl-perf-XXXXXX";
	unsigned int n_contexts = 4, i, c_i, m;
	struct perf_workload w;
	struct perf_hw hw;
	struct json_out j;
	FILE *csv = NULL;
	int c, status = 0;
	double v;

	perf_hw_defaults(&hw);
	perf_workload_defaults(&w);
	while ((c = getopt_long(argc, argv, "m:c:b:d:jvh", perf_opts, NULL)) != -1) {
		const char *name = NULL;
		double *target = NULL;
		double lo = 0, hi = 1e12;
		unsigned int *uint_target = NULL;

		for (i = 0; perf_opts[i].name; i++) {
			if (perf_opts[i].val == c)
				name = perf_opts[i].name;
		}
		switch (c) {
		case 'm': model = optarg; continue;
		case 'c':
			if (parse_contexts(optarg, contexts, &n_contexts))
				return 2;
			continue;
		case 'j': pnmctl.json = true; continue;
		case 'v': pnmctl.verbose++; continue;
		case OPT_CSV: csv_path = optarg; continue;
		case OPT_PLOT: plot_path = optarg; continue;
		case OPT_GPU:
			if (!strcmp(optarg, "h100")) {
				hw.gpu_bw = 3350; hw.gpu_cap = 80; hw.gpu_cost = 2.94;
			} else if (!strcmp(optarg, "h200")) {
				/* Price: estimate, see perf-model.rst. */
				hw.gpu_bw = 4800; hw.gpu_cap = 141; hw.gpu_cost = 3.8;
			} else {
				pnmctl_err("perf: --gpu '%s': expected h100 or h200 (or set --gpu-bw, --gpu-mem)",
					   optarg);
				return 2;
			}
			continue;
		case 'b': uint_target = &w.batch; lo = 1; hi = 1 << 20; break;
		case OPT_MAX_BATCH: uint_target = &w.max_batch; lo = 1; hi = 1 << 20; break;
		case 'd': uint_target = &w.devices; lo = 1; hi = 4096; break;
		case OPT_GPUS: uint_target = &hw.gpus; lo = 1; hi = 4096; break;
		case OPT_BUDGET: uint_target = &w.budget; lo = 1; hi = 1 << 24; break;
		case OPT_PAGE_TOKENS: uint_target = &w.page_tokens; lo = 1; hi = 4096; break;
		case OPT_KV_BYTES: uint_target = &w.kv_bytes; lo = 1; hi = 4; break;
		case OPT_WEIGHT_BYTES: uint_target = &w.weight_bytes; lo = 1; hi = 4; break;
		case OPT_LAYERS: uint_target = &custom.layers; lo = 1; hi = 4096; break;
		case OPT_Q_HEADS: uint_target = &custom.q_heads; lo = 1; hi = 4096; break;
		case OPT_KV_HEADS: uint_target = &custom.kv_heads; lo = 1; hi = 4096; break;
		case OPT_HEAD_DIM: uint_target = &custom.head_dim; lo = 1; hi = 4096; break;
		case OPT_PARAMS: target = &custom.params; lo = 1e6; hi = 1e14; break;
		case OPT_GPU_BW: target = &hw.gpu_bw; lo = 1; break;
		case OPT_GPU_CAP: target = &hw.gpu_cap; lo = 1; break;
		case OPT_GPU_LINK: target = &hw.gpu_link; lo = 0.001; break;
		case OPT_GPU_POWER: target = &hw.gpu_power; break;
		case OPT_GPU_COST: target = &hw.gpu_cost; break;
		case OPT_LINK_BW: target = &hw.cxl_link; lo = 0.001; break;
		case OPT_DEV_CAP: target = &hw.dev_cap; lo = 0.001; break;
		case OPT_PNM_BW: target = &hw.pnm_bw; lo = 0.001; break;
		case OPT_PNM_TFLOPS: target = &hw.pnm_tflops; lo = 0.001; break;
		case OPT_PNM_OVERHEAD: target = &hw.pnm_overhead_ns; hi = 1e9; break;
		case OPT_PNM_POWER: target = &hw.pnm_power; break;
		case OPT_MEM_POWER: target = &hw.mem_power; break;
		case OPT_DEV_COST: target = &hw.dev_cost; break;
		case OPT_HIT_RATE: target = &w.hit_rate; hi = 1; break;
		case OPT_ADMIT: target = &w.admit_pages; hi = 1e6; break;
		case 'h':
			perf_usage(stdout);
			return 0;
		default:
			perf_usage(stderr);
			return 2;
		}
		{
			char opt[64];

			snprintf(opt, sizeof(opt), "--%s", name ? name : "?");
			if (parse_count(opt, optarg, lo, hi, &v))
				return 2;
		}
		if (uint_target) {
			if (v != floor(v)) {
				pnmctl_err("perf: --%s '%s': expected a whole number",
					   name, optarg);
				return 2;
			}
			*uint_target = (unsigned int)v;
		} else {
			*target = v;
		}
	}
	if (optind != argc) {
		pnmctl_err("perf: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	if (w.budget < w.page_tokens) {
		pnmctl_err("perf: --budget %u is below one page (%u tokens)",
			   w.budget, w.page_tokens);
		return 2;
	}

	const struct perf_shape *shapes[8];
	unsigned int n_shapes = 0;

	if (!strcmp(model, "all")) {
		for (i = 0; i < perf_nr_shapes; i++)
			shapes[n_shapes++] = &perf_shapes[i];
	} else if (!strcmp(model, "custom")) {
		if (custom_shape(&custom))
			return 2;
		shapes[n_shapes++] = &custom;
	} else {
		for (i = 0; i < perf_nr_shapes; i++) {
			if (!strcmp(model, perf_shapes[i].name) ||
			    !strcmp(model, perf_shapes[i].name + 10))	/* "405b" */
				shapes[n_shapes++] = &perf_shapes[i];
		}
		if (!n_shapes) {
			pnmctl_err("perf: --model '%s': not a built-in model; 'pnmctl perf --help' lists them, or use --model custom",
				   model);
			return 2;
		}
	}

	if (plot_path && !csv_path) {
		int fd = mkstemp(tmp_csv);

		if (fd < 0) {
			pnmctl_err("perf: %s: %s", tmp_csv, strerror(errno));
			return 1;
		}
		close(fd);
		csv_path = tmp_csv;
	}
	if (csv_path) {
		csv = fopen(csv_path, "w");
		if (!csv) {
			pnmctl_err("perf: --csv %s: %s", csv_path, strerror(errno));
			return 1;
		}
		fputs(csv_header, csv);
	}
	if (pnmctl.json) {
		json_open(&j, stdout, '[');
	} else {
		printf("%u devices; PNM %.0f GB/s, %.1f TFLOPS; CXL link %.0f GB/s; GPU %.0f GB/s, %.0f GB\n",
		       w.devices, hw.pnm_bw, hw.pnm_tflops, hw.cxl_link, hw.gpu_bw,
		       hw.gpu_cap);
		printf("%-15s %6s %-9s %4s %5s  %-12s %9s %10s %9s %9s %8s\n",
		       "model", "ctx", "mode", "gpus", "batch", "limit",
		       "step_ms", "tokens/s", "J/token", "$/Mtok", "speedup");
	}
	for (m = 0; m < n_shapes; m++) {
		for (c_i = 0; c_i < n_contexts; c_i++) {
			struct perf_row rows[PERF_NR_MODES];

			w.context = contexts[c_i];
			for (i = 0; i < PERF_NR_MODES; i++) {
				rows[i].shape = shapes[m];
				rows[i].context = w.context;
				rows[i].mode = i;
				perf_evaluate(shapes[m], &hw, &w, i, &rows[i].r);
			}
			for (i = 0; i < PERF_NR_MODES; i++) {
				rows[i].speedup = rows[PERF_BASELINE].r.fits &&
					rows[i].r.fits ?
					rows[i].r.tokens_per_s /
					rows[PERF_BASELINE].r.tokens_per_s : NAN;
				if (pnmctl.json)
					row_json(&j, &rows[i], w.devices);
				else
					row_table(&rows[i]);
				if (csv)
					row_csv(csv, &rows[i], w.devices);
			}
		}
	}
	if (pnmctl.json)
		json_close(&j, ']');
	if (csv && fclose(csv)) {
		pnmctl_err("perf: --csv %s: %s", csv_path, strerror(errno));
		status = 1;
	}
	if (!status && plot_path && run_plot(csv_path, plot_path))
		status = 1;
	if (csv_path == tmp_csv)
		unlink(tmp_csv);
	return status;
}
