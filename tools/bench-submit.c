// SPDX-License-Identifier: GPL-2.0-only
/*
 * bench-submit: the cost of submitting commands to a CXL-PNM device.
 *
 * For NOP and a small SELECT, at batch sizes 1, 4, 16, 64 and 256, it
 * measures commands per second and time per command through each path:
 *
 *   ioctl      pnm_submit() over CXL_PNM_IOC_SUBMIT ("ioctl:" device)
 *   uring      pnm_submit() over io_uring passthrough (the default)
 *   async      pnm_submit_async() + pnm_wait(), two batches in flight
 *   raw        IORING_OP_URING_CMD through liburing, no libpnm
 *   direct     pnm_submit() over the direct transport (host only)
 *   floor      IORING_OP_NOP on the same ring as "raw": what io_uring
 *              itself costs, with no driver and no device
 *
 * Each row runs for at least --min-ms.  "x floor" divides a row's time per
 * command by the floor's at the same batch size: under emulation absolute
 * times mean little, ratios less so.
 *
 *   bench-submit [--device NAME] [--min-ms N]
 *
 * NAME is /dev/cxl/pnmN (default /dev/cxl/pnm0) or direct:PATH.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "pnm.h"
#include "pnm_uring.h"

#define BENCH_MAX_BATCH	256

static const unsigned int bench_batches[] = { 1, 4, 16, 64, 256 };
#define BENCH_NR_BATCHES (sizeof(bench_batches) / sizeof(bench_batches[0]))

/* The SELECT stream: fp32, head_dim 16, 4 pages of 16 tokens. */
#define ST_D		16
#define ST_PAGES	4
#define ST_SLOT		(2 * ST_D * 4 * 16)
#define ST_DIGEST	(2 * ST_D * 4)
#define ST_TABLE	16384
#define ST_IN		16448
#define ST_OUT		16640
#define ST_REGION	65536

struct bench {
	const char *device;
	unsigned int min_ms;
	bool kernel;
	struct pnm_dev *dev;		/* default submission path */
	struct pnm_dev *ioctl_dev;	/* "ioctl:" twin of a kernel device */
	struct pnm_region *region;
	struct pnm_region *ioctl_region;
	struct io_uring ring;		/* raw ring: URING_CMD and the floor */
	int raw_fd;
	double floor_ns[BENCH_NR_BATCHES];
};

enum bench_op { BENCH_NOP, BENCH_SELECT };
static const char *const bench_op_names[] = { "nop", "select" };

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void stream_fill(struct pnm_region *r)
{
	uint8_t *base = r->addr;
	uint32_t *table = (uint32_t *)(base + ST_TABLE);
	float *q = (float *)(base + ST_IN);
	unsigned int p, c;

	memset(base, 0, ST_REGION);
	for (p = 0; p < ST_PAGES; p++) {
		float *digest = (float *)(base + ST_PAGES * ST_SLOT +
					  p * ST_DIGEST);

		for (c = 0; c < ST_D; c++)
			digest[ST_D + c] = (float)p;
		table[p] = p;
	}
	for (c = 0; c < ST_D; c++)
		q[c] = 1.0f;
}

static void make_cmds(struct cxl_pnm_cmd *cmds, unsigned int nr,
		      enum bench_op op, const struct pnm_region *r)
{
	unsigned int i;

	memset(cmds, 0, nr * sizeof(*cmds));
	for (i = 0; i < nr && op == BENCH_SELECT; i++) {
		cmds[i].opcode = CXL_PNM_OP_SELECT;
		cmds[i].dtype = CXL_PNM_DTYPE_FP32;
		cmds[i].page_shift = 4;
		cmds[i].group = 1;
		cmds[i].head_dim = ST_D;
		cmds[i].n_tokens = ST_PAGES * 16;
		cmds[i].k = 2;
		cmds[i].pool = pnm_buf(r, 0, ST_PAGES * (ST_SLOT + ST_DIGEST));
		cmds[i].table = pnm_buf(r, ST_TABLE, 4 * ST_PAGES);
		cmds[i].in = pnm_buf(r, ST_IN, 4 * ST_D);
		cmds[i].out = pnm_buf(r, ST_OUT, 4 * ST_PAGES);
	}
}

static int check_results(const struct cxl_pnm_result *res, unsigned int nr)
{
	unsigned int i;

	for (i = 0; i < nr; i++) {
		if (res[i].status) {
			fprintf(stderr, "bench-submit: command %u: device status %s\n",
				i, pnm_status_name(res[i].status));
			return -EIO;
		}
	}
	return 0;
}

/* One synchronous batch per round; return ns per command or < 0. */
static double run_sync(struct bench *b, struct pnm_dev *dev,
		       const struct cxl_pnm_cmd *cmds, unsigned int nr)
{
	struct cxl_pnm_result res[BENCH_MAX_BATCH];
	double start = now_ns(), end = start + b->min_ms * 1e6, t;
	unsigned long rounds = 0;

	do {
		if (pnm_submit(dev, cmds, res, nr, 0) || check_results(res, nr)) {
			fprintf(stderr, "bench-submit: %s\n", pnm_last_error());
			return -1;
		}
		rounds++;
		t = now_ns();
	} while (t < end);
	return (t - start) / (rounds * nr);
}

/* Keep two batches in flight on a pnm_queue. */
static double run_async(struct bench *b, const struct cxl_pnm_cmd *cmds,
			unsigned int nr)
{
	struct pnm_completion comps[2 * BENCH_MAX_BATCH];
	double start, end, t = 0;
	unsigned long done = 0;
	struct pnm_queue *q;
	int n, i;

	if (pnm_queue_create(b->dev, 2 * nr, 0, &q))
		goto fail;
	start = now_ns();
	end = start + b->min_ms * 1e6;
	if (pnm_submit_async(q, cmds, NULL, nr) != (int)nr)
		goto fail_queue;
	do {
		if (pnm_submit_async(q, cmds, NULL, nr) != (int)nr)
			goto fail_queue;
		n = pnm_wait(q, comps, nr, nr, 10000);
		if (n < 0)
			goto fail_queue;
		for (i = 0; i < n; i++) {
			if (comps[i].res || comps[i].result.status) {
				fprintf(stderr, "bench-submit: async command: res %d, status %u\n",
					comps[i].res, comps[i].result.status);
				pnm_queue_destroy(q);
				return -1;
			}
		}
		done += n;
		t = now_ns();
	} while (t < end);
	while (pnm_queue_inflight(q)) {
		n = pnm_wait(q, comps, 1, 2 * nr, 10000);
		if (n < 0)
			goto fail_queue;
		done += n;
	}
	t = now_ns();
	pnm_queue_destroy(q);
	return (t - start) / done;

fail_queue:
	pnm_queue_destroy(q);
fail:
	fprintf(stderr, "bench-submit: %s\n", pnm_last_error());
	return -1;
}

/*
 * Submit @nr SQEs and reap them, on the raw ring: URING_CMD commands, or
 * IORING_OP_NOP when @cmds is NULL.
 */
static double run_raw(struct bench *b, const struct cxl_pnm_cmd *cmds,
		      unsigned int nr)
{
	double start = now_ns(), end = start + b->min_ms * 1e6, t;
	unsigned long rounds = 0;
	struct io_uring_cqe *cqe;
	unsigned int i, head, seen;
	int ret;

	do {
		for (i = 0; i < nr; i++) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);

			if (cmds)
				pnm_prep_uring_cmd(sqe, b->raw_fd, &cmds[i], i);
			else
				io_uring_prep_nop(sqe);
		}
		ret = io_uring_submit_and_wait(&b->ring, nr);
		if (ret < 0) {
			fprintf(stderr, "bench-submit: io_uring: %s\n",
				strerror(-ret));
			return -1;
		}
		for (seen = 0; seen < nr; ) {
			unsigned int got = 0;

			io_uring_for_each_cqe(&b->ring, head, cqe) {
				if (cqe->res < 0 || (cmds &&
				    CXL_PNM_URING_RESULT_STATUS(cqe->big_cqe[0]))) {
					fprintf(stderr, "bench-submit: raw command: res %d\n",
						cqe->res);
					return -1;
				}
				got++;
			}
			io_uring_cq_advance(&b->ring, got);
			seen += got;
			if (seen < nr && io_uring_wait_cqe(&b->ring, &cqe))
				return -1;
		}
		rounds++;
		t = now_ns();
	} while (t < end);
	return (t - start) / (rounds * nr);
}

static void print_row(const char *op, unsigned int batch, const char *path,
		      double ns, double floor_ns)
{
	if (ns < 0) {
		printf("%-7s %5u  %-7s %12s %10s %9s\n", op, batch, path,
		       "failed", "-", "-");
		return;
	}
	printf("%-7s %5u  %-7s %12.0f %10.2f %9.1f\n", op, batch, path,
	       1e9 / ns, ns / 1e3, ns / floor_ns);
}

static int bench_open(struct bench *b)
{
	char name[256];

	if (pnm_open(b->device, &b->dev)) {
		fprintf(stderr, "bench-submit: %s\n", pnm_last_error());
		return -1;
	}
	b->kernel = pnm_transport(b->dev) == PNM_TRANSPORT_KERNEL;
	if (pnm_region_alloc(b->dev, ST_REGION, &b->region)) {
		fprintf(stderr, "bench-submit: %s\n", pnm_last_error());
		return -1;
	}
	stream_fill(b->region);
	b->raw_fd = -1;
	if (!b->kernel)
		return 0;

	snprintf(name, sizeof(name), "ioctl:%s", b->device);
	if (pnm_open(name, &b->ioctl_dev) ||
	    pnm_region_alloc(b->ioctl_dev, ST_REGION, &b->ioctl_region)) {
		fprintf(stderr, "bench-submit: %s\n", pnm_last_error());
		return -1;
	}
	stream_fill(b->ioctl_region);
	return 0;
}

/*
 * The raw ring submits on a file of its own, with a region it allocates and
 * maps itself, so no libpnm code runs on that path: what libpnm adds shows
 * as the difference between "raw" and "uring".
 */
static int raw_open(struct bench *b, struct pnm_region *raw_region)
{
	struct cxl_pnm_region_alloc ra = { .size = ST_REGION };
	const char *node = b->device;
	void *addr;
	int ret;

	ret = io_uring_queue_init(BENCH_MAX_BATCH, &b->ring, PNM_URING_SETUP);
	if (ret) {
		fprintf(stderr, "bench-submit: io_uring setup: %s\n",
			strerror(-ret));
		return -1;
	}
	if (!b->kernel)
		return 0;
	if (!strncmp(node, "uring:", 6))
		node += 6;
	b->raw_fd = open(node, O_RDWR | O_CLOEXEC);
	if (b->raw_fd < 0 || ioctl(b->raw_fd, CXL_PNM_IOC_REGION_ALLOC, &ra)) {
		fprintf(stderr, "bench-submit: %s: %s\n", node, strerror(errno));
		return -1;
	}
	addr = mmap(NULL, ST_REGION, PROT_READ | PROT_WRITE, MAP_SHARED,
		    b->raw_fd, ra.mmap_offset);
	if (addr == MAP_FAILED) {
		fprintf(stderr, "bench-submit: %s: mmap: %s\n", node,
			strerror(errno));
		return -1;
	}
	raw_region->handle = ra.handle;
	raw_region->size = ST_REGION;
	raw_region->addr = addr;
	stream_fill(raw_region);
	return 0;
}

static void print_machine(const struct bench *b)
{
	char model[256] = "unknown CPU", line[256];
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "model name", 10)) {
			char *colon = strchr(line, ':');

			snprintf(model, sizeof(model), "%.200s",
				 colon ? colon + 2 : line);
			model[strcspn(model, "\n")] = 0;
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	printf("# bench-submit: %s (%s), kernel %s, %ld CPUs, %s\n", b->device,
	       pnm_transport_name(b->dev), u.release,
	       sysconf(_SC_NPROCESSORS_ONLN), model);
	printf("# each row runs >= %u ms; x floor = time per command / IORING_OP_NOP's\n",
	       b->min_ms);
	printf("%-7s %5s  %-7s %12s %10s %9s\n", "op", "batch", "path",
	       "cmds/s", "us/cmd", "x floor");
}

static void usage(FILE *out)
{
	fprintf(out, "usage: bench-submit [--device NAME] [--min-ms N]\n"
		"  --device NAME   /dev/cxl/pnmN (default /dev/cxl/pnm0) or direct:PATH\n"
		"  --min-ms N      shortest run of each row, ms (default 300)\n");
}

static int parse_args(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "min-ms", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	b->device = "/dev/cxl/pnm0";
	b->min_ms = 300;
	while ((c = getopt_long(argc, argv, "d:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			b->device = optarg;
			break;
		case 'm':
			b->min_ms = strtoul(optarg, &end, 0);
			if (*end || !b->min_ms || b->min_ms > 60000) {
				fprintf(stderr, "bench-submit: --min-ms %s: expected 1 to 60000\n",
					optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bench-submit: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct cxl_pnm_cmd cmds[BENCH_MAX_BATCH];
	struct pnm_region raw_region = { 0 };
	struct bench b;
	unsigned int o, i;

	memset(&b, 0, sizeof(b));
	if (parse_args(&b, argc, argv) || bench_open(&b) ||
	    raw_open(&b, &raw_region))
		return 1;
	print_machine(&b);

	for (i = 0; i < BENCH_NR_BATCHES; i++) {
		b.floor_ns[i] = run_raw(&b, NULL, bench_batches[i]);
		print_row("-", bench_batches[i], "floor", b.floor_ns[i],
			  b.floor_ns[i]);
	}
	for (o = BENCH_NOP; o <= BENCH_SELECT; o++) {
		for (i = 0; i < BENCH_NR_BATCHES; i++) {
			unsigned int nr = bench_batches[i];
			const char *op = bench_op_names[o];
			double fl = b.floor_ns[i];

			make_cmds(cmds, nr, o, b.region);
			if (!b.kernel) {
				print_row(op, nr, "direct",
					  run_sync(&b, b.dev, cmds, nr), fl);
				print_row(op, nr, "async",
					  run_async(&b, cmds, nr), fl);
				continue;
			}
			print_row(op, nr, "uring", run_sync(&b, b.dev, cmds, nr),
				  fl);
			print_row(op, nr, "async", run_async(&b, cmds, nr), fl);
			make_cmds(cmds, nr, o, b.ioctl_region);
			print_row(op, nr, "ioctl",
				  run_sync(&b, b.ioctl_dev, cmds, nr), fl);
			make_cmds(cmds, nr, o, &raw_region);
			print_row(op, nr, "raw", run_raw(&b, cmds, nr), fl);
		}
	}

	io_uring_queue_exit(&b.ring);
	if (raw_region.addr)
		munmap(raw_region.addr, ST_REGION);
	if (b.raw_fd >= 0)
		close(b.raw_fd);	/* frees the raw region */
	pnm_region_free(b.ioctl_region);
	pnm_close(b.ioctl_dev);
	pnm_region_free(b.region);
	pnm_close(b.dev);
	return 0;
}
