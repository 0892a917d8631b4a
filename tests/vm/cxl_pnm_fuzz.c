// SPDX-License-Identifier: GPL-2.0-only
/*
 * A fuzzer of the cxl_pnm user interface, in the VM.  From a seeded PRNG it
 * issues random ioctl numbers on the device, mutated REGION_ALLOC and
 * REGION_FREE, SUBMIT batches and io_uring commands built from valid
 * commands with random fields, sizes, offsets and handles (its own, freed
 * and never allocated ones), and mmap calls with random offsets, lengths
 * and flags.  An oracle computes the errno the kernel ABI contract gives
 * each call, so a wrong answer fails the run, not only a crash.
 *
 * PNM_FUZZ_SEED (default 1) and PNM_FUZZ_SECONDS (default 20) set the run;
 * PNM_FUZZ_OPS replays exactly that many operations of a seed.  The seed
 * and the operation count are printed, so a failure reproduces.
 */
#include <signal.h>
#include <sys/mman.h>

#include "pnm_vm_test.h"
#include "kselftest_harness.h"

#define PNM_PAGE	4096
#define FUZZ_REGIONS	24
#define FUZZ_BATCH	8
#define FUZZ_MAX_PAGES	16
#define FUZZ_URING	16

enum fuzz_op {
	FUZZ_IOCTL_RANDOM,
	FUZZ_GET_INFO,
	FUZZ_ALLOC,
	FUZZ_FREE,
	FUZZ_SUBMIT,
	FUZZ_URING_CMD,
	FUZZ_MMAP,
	FUZZ_OPS
};

static const char *const fuzz_op_names[FUZZ_OPS] = {
	"random ioctl", "GET_INFO", "REGION_ALLOC", "REGION_FREE", "SUBMIT",
	"io_uring command", "mmap",
};

struct fuzz_region {
	uint32_t handle;	/* 0: free entry */
	uint64_t size;
	uint64_t offset;	/* mmap offset */
};

struct fuzz {
	uint64_t rng;
	int fd;
	struct io_uring ring;
	struct cxl_pnm_info info;
	struct fuzz_region regions[FUZZ_REGIONS];
	uint32_t freed[FUZZ_REGIONS];	/* some handles freed earlier */
	unsigned long count[FUZZ_OPS];
	unsigned long mismatches;
	unsigned long timeouts;
	unsigned long executed;	/* commands that reached the device */
	uint8_t junk[PNM_PAGE];
};

static uint64_t rnd(struct fuzz *f)
{
	/* xorshift64* */
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dULL;
}

static uint64_t rnd_below(struct fuzz *f, uint64_t n)
{
	return n ? rnd(f) % n : 0;
}

static bool one_in(struct fuzz *f, unsigned int n)
{
	return rnd_below(f, n) == 0;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

static void mismatch(struct fuzz *f, const char *what, int want, int got)
{
	f->mismatches++;
	if (f->mismatches <= 20)
		printf("# op %lu: %s returned %s, the contract says %s\n",
		       f->count[0] + f->count[1] + f->count[2] + f->count[3] +
		       f->count[4] + f->count[5] + f->count[6], what,
		       pnm_errname(got), pnm_errname(want));
}

static struct fuzz_region *region_of(struct fuzz *f, uint32_t handle)
{
	unsigned int i;

	for (i = 0; i < FUZZ_REGIONS && handle; i++)
		if (f->regions[i].handle == handle)
			return &f->regions[i];
	return NULL;
}

/* A handle: mostly one of ours, sometimes freed, zero or made up. */
static uint32_t pick_handle(struct fuzz *f)
{
	switch (rnd_below(f, 8)) {
	case 0:
		return (uint32_t)rnd(f);
	case 1:
		return f->freed[rnd_below(f, FUZZ_REGIONS)];
	case 2:
		return (uint32_t)rnd_below(f, 64);
	default:
		return f->regions[rnd_below(f, FUZZ_REGIONS)].handle;
	}
}

/* Sizes and offsets near the interesting edges of a region. */
static uint64_t pick_len(struct fuzz *f, uint64_t size)
{
	switch (rnd_below(f, 6)) {
	case 0:
		return rnd(f) & 0xffffffffULL;
	case 1:
		return size;
	case 2:
		return size + 1;
	default:
		return rnd_below(f, size + 1);
	}
}

static void fill_buf(struct fuzz *f, struct cxl_pnm_buf *b)
{
	struct fuzz_region *r;

	memset(b, 0, sizeof(*b));
	if (one_in(f, 3))
		return;		/* unused buffer */
	b->handle = pick_handle(f);
	r = region_of(f, b->handle);
	b->length = (uint32_t)pick_len(f, r ? r->size : PNM_PAGE);
	b->offset = one_in(f, 10) ? rnd(f) : pick_len(f, r ? r->size : 0);
	if (one_in(f, 10))
		b->length = 0;
	if (!b->handle && !one_in(f, 4))
		b->length = 0, b->offset = 0;
}

static void random_cmd(struct fuzz *f, struct cxl_pnm_cmd *c)
{
	memset(c, 0, sizeof(*c));
	c->opcode = one_in(f, 12) ? (uint8_t)rnd(f) :
		(uint8_t)rnd_below(f, CXL_PNM_OP_SELECT_ATTEND + 1);
	c->dtype = one_in(f, 8) ? (uint8_t)rnd(f) : (uint8_t)rnd_below(f, 3);
	c->page_shift = one_in(f, 8) ? (uint8_t)rnd(f) :
		(uint8_t)(2 + rnd_below(f, 5));
	c->group = (uint8_t)rnd_below(f, 9);
	c->head_dim = one_in(f, 8) ? (uint16_t)rnd(f) :
		(uint16_t)(16 << rnd_below(f, 3));
	c->flags = one_in(f, 10) ? (uint8_t)rnd(f) : (uint8_t)rnd_below(f, 4);
	c->rsvd = one_in(f, 20) ? (uint8_t)rnd(f) : 0;
	c->n_tokens = one_in(f, 8) ? (uint32_t)rnd(f) :
		(uint32_t)rnd_below(f, 512);
	c->k = (uint16_t)rnd_below(f, 64);
	c->n_list = (uint16_t)rnd_below(f, 4);
	fill_buf(f, &c->pool);
	fill_buf(f, &c->table);
	fill_buf(f, &c->in);
	fill_buf(f, &c->out);
}

/* The contract's errno for one buffer of a command. */
static int buf_errno(struct fuzz *f, const struct cxl_pnm_buf *b)
{
	struct fuzz_region *r;

	if (!b->handle)
		return b->length || b->offset ? -EINVAL : 0;
	r = region_of(f, b->handle);
	if (!r)
		return -ENOENT;
	if (b->offset > r->size || b->length > r->size - b->offset)
		return -EINVAL;
	return 0;
}

/* The contract's errno for one command, checks in the driver's order. */
static int cmd_errno(struct fuzz *f, const struct cxl_pnm_cmd *c)
{
	const struct cxl_pnm_buf *bufs[] = { &c->pool, &c->table, &c->in,
					     &c->out };
	unsigned int i;
	int rc;

	if (c->opcode > CXL_PNM_OP_SELECT_ATTEND)
		return -EINVAL;
	if (c->flags & ~(CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT))
		return -EINVAL;
	if (c->rsvd)
		return -EINVAL;
	for (i = 0; i < 4; i++) {
		rc = buf_errno(f, bufs[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* A pointer: mostly valid, sometimes NULL, unmapped or kernel. */
static void *pick_ptr(struct fuzz *f, void *valid)
{
	switch (rnd_below(f, 10)) {
	case 0:
		return NULL;
	case 1:
		return (void *)(uintptr_t)0xffff888000000000ULL;
	case 2:
		return (void *)(uintptr_t)0x10;
	default:
		return valid;
	}
}

static bool is_bad_ptr(void *p, void *valid)
{
	return p != valid;
}

static void fuzz_random_ioctl(struct fuzz *f)
{
	unsigned long nr;
	uint8_t type;
	int rc;

	for (rnd(f);;) {
		nr = one_in(f, 2) ? (unsigned long)(uint32_t)rnd(f) :
			_IOC(rnd_below(f, 4), one_in(f, 2) ? CXL_PNM_IOC_MAGIC :
			     (uint8_t)rnd(f), 0x38 + rnd_below(f, 32),
			     rnd_below(f, 256));
		type = _IOC_TYPE(nr);
		/*
		 * The VFS answers some numbers itself before the driver sees
		 * them (FIOCLEX, FIONBIO, FIFREEZE on the device's file
		 * system...): leave the types it uses alone.
		 */
		if (type == 'T' || type == 'X' || type == 'f' || type == 0x94 ||
		    type == 0x15)
			continue;
		if (nr == CXL_PNM_IOC_GET_INFO ||
		    nr == CXL_PNM_IOC_REGION_ALLOC ||
		    nr == CXL_PNM_IOC_REGION_FREE || nr == CXL_PNM_IOC_SUBMIT)
			continue;
		break;
	}
	for (unsigned int i = 0; i < sizeof(f->junk); i++)
		f->junk[i] = (uint8_t)rnd(f);
	rc = ioctl(f->fd, nr, pick_ptr(f, f->junk)) ? -errno : 0;
	if (rc != -ENOTTY)
		mismatch(f, "unknown ioctl", -ENOTTY, rc);
}

static void fuzz_get_info(struct fuzz *f)
{
	struct cxl_pnm_info info;
	void *p = pick_ptr(f, &info);
	int rc = ioctl(f->fd, CXL_PNM_IOC_GET_INFO, p) ? -errno : 0;
	int want = is_bad_ptr(p, &info) ? -EFAULT : 0;

	if (rc != want)
		mismatch(f, "GET_INFO", want, rc);
	else if (!rc && info.kv_size != f->info.kv_size)
		mismatch(f, "GET_INFO kv_size", 0, -EPROTO);
}

static int track_free(struct fuzz *f, uint32_t handle)
{
	struct fuzz_region *r = region_of(f, handle);

	if (!r)
		return -ENOENT;
	f->freed[rnd_below(f, FUZZ_REGIONS)] = handle;
	memset(r, 0, sizeof(*r));
	return 0;
}

static void fuzz_alloc(struct fuzz *f)
{
	struct cxl_pnm_region_alloc ra = { 0 };
	struct fuzz_region *slot = NULL;
	unsigned int i;
	int rc, want = 0;

	for (i = 0; i < FUZZ_REGIONS && !slot; i++)
		if (!f->regions[i].handle)
			slot = &f->regions[i];
	if (!slot) {
		/* Table full: free one of ours to make room. */
		slot = &f->regions[rnd_below(f, FUZZ_REGIONS)];
		rc = pnm_free(f->fd, slot->handle);
		if (rc)
			mismatch(f, "REGION_FREE of an own region", 0, rc);
		track_free(f, slot->handle);
	}
	switch (rnd_below(f, 8)) {
	case 0:
		ra.size = rnd(f);
		break;
	case 1:
		ra.size = rnd_below(f, 3 * PNM_PAGE);
		break;
	case 2:
		ra.size = f->info.kv_size + PNM_PAGE;
		break;
	default:
		ra.size = PNM_PAGE * (1 + rnd_below(f, FUZZ_MAX_PAGES));
		break;
	}
	ra.flags = one_in(f, 16) ? (uint32_t)rnd(f) | 1 : 0;
	if (one_in(f, 16))
		ra.rsvd[rnd_below(f, 2)] = rnd(f) | 1;
	if (ra.flags || ra.rsvd[0] || ra.rsvd[1] || !ra.size ||
	    ra.size % PNM_PAGE)
		want = -EINVAL;
	else if (ra.size > f->info.kv_size)
		want = -ENOMEM;
	rc = ioctl(f->fd, CXL_PNM_IOC_REGION_ALLOC, &ra) ? -errno : 0;
	/* Fragmentation may leave no range big enough: ENOMEM is fair. */
	if (rc != want && !(want == 0 && rc == -ENOMEM))
		mismatch(f, "REGION_ALLOC", want, rc);
	if (!rc && !ra.handle)
		mismatch(f, "REGION_ALLOC handle 0", 0, -EPROTO);
	if (!rc) {
		slot->handle = ra.handle;
		slot->size = ra.size;
		slot->offset = ra.mmap_offset;
	}
}

static void fuzz_free(struct fuzz *f)
{
	struct cxl_pnm_region_free rf = { .handle = pick_handle(f) };
	int rc, want;

	if (one_in(f, 16))
		rf.rsvd = (uint32_t)rnd(f) | 1;
	want = rf.rsvd ? -EINVAL : region_of(f, rf.handle) ? 0 : -ENOENT;
	rc = ioctl(f->fd, CXL_PNM_IOC_REGION_FREE, &rf) ? -errno : 0;
	if (rc != want)
		mismatch(f, "REGION_FREE", want, rc);
	if (!rc)
		track_free(f, rf.handle);
}

static void fuzz_submit(struct fuzz *f)
{
	struct cxl_pnm_cmd cmds[FUZZ_BATCH];
	struct cxl_pnm_result results[FUZZ_BATCH];
	struct cxl_pnm_submit s = { 0 };
	unsigned int i, nr = 1 + rnd_below(f, FUZZ_BATCH);
	void *pc, *pr;
	int rc, want = 0;

	for (i = 0; i < nr; i++)
		random_cmd(f, &cmds[i]);
	pc = pick_ptr(f, cmds);
	pr = pick_ptr(f, results);
	s.cmds = (uintptr_t)pc;
	s.results = (uintptr_t)pr;
	s.nr = one_in(f, 20) ? (one_in(f, 2) ? 0 : f->info.max_batch + 1) : nr;
	s.timeout_ms = 2000;
	if (one_in(f, 20))
		s.flags = (uint32_t)rnd(f) | 1;
	if (one_in(f, 20))
		s.rsvd = (uint32_t)rnd(f) | 1;

	if (!s.nr || s.nr > f->info.max_batch || s.flags || s.rsvd)
		want = -EINVAL;
	else if (is_bad_ptr(pc, cmds) || is_bad_ptr(pr, results))
		want = -EFAULT;
	for (i = 0; i < nr && !want; i++)
		want = cmd_errno(f, &cmds[i]);
	rc = ioctl(f->fd, CXL_PNM_IOC_SUBMIT, &s) ? -errno : 0;
	if (rc == -ETIMEDOUT && !want) {
		f->timeouts++;
		return;
	}
	if (rc != want)
		mismatch(f, "SUBMIT", want, rc);
	if (!rc)
		f->executed += nr;
}

static void fuzz_uring(struct fuzz *f)
{
	int want[FUZZ_URING];
	unsigned int i, nr = 1 + rnd_below(f, FUZZ_URING);
	uint64_t data;
	int rc;

	for (i = 0; i < nr; i++) {
		struct cxl_pnm_cmd c;

		random_cmd(f, &c);
		want[i] = cmd_errno(f, &c);
		pnm_ring_prep(&f->ring, f->fd, &c, i);
	}
	rc = io_uring_submit(&f->ring);
	if (rc != (int)nr) {
		mismatch(f, "io_uring_submit", (int)nr, rc);
		return;
	}
	for (i = 0; i < nr; i++) {
		rc = pnm_ring_wait(&f->ring, 10, &data);
		if (rc == -ETIME) {
			mismatch(f, "io_uring command (no completion)", 0, rc);
			return;
		}
		if (data >= nr || rc != want[data])
			mismatch(f, "io_uring command", data < nr ? want[data] : 0,
				 rc);
		else if (!rc)
			f->executed++;
	}
}

static void fuzz_mmap(struct fuzz *f)
{
	struct fuzz_region *r = &f->regions[rnd_below(f, FUZZ_REGIONS)];
	uint64_t off, len, pages = 1 + rnd_below(f, FUZZ_MAX_PAGES);
	bool shared = !one_in(f, 8);
	int prot = one_in(f, 4) ? PROT_READ : PROT_READ | PROT_WRITE;
	struct fuzz_region *in = NULL;
	unsigned int i;
	uint8_t *p;
	int rc, want;

	switch (rnd_below(f, 5)) {
	case 0:
		off = rnd_below(f, f->info.kv_size / PNM_PAGE + 16) * PNM_PAGE;
		break;
	case 1:
		off = (rnd(f) >> 12) << 12;
		break;
	default:
		off = r->offset + rnd_below(f, r->size / PNM_PAGE + 2) * PNM_PAGE;
		break;
	}
	len = pages * PNM_PAGE;
	for (i = 0; i < FUZZ_REGIONS; i++) {
		struct fuzz_region *c = &f->regions[i];

		if (c->handle && off >= c->offset && off - c->offset < c->size)
			in = c;
	}
	if (!shared)
		want = -EINVAL;
	else if (!in)
		want = -ENXIO;
	else if (len > in->size - (off - in->offset))
		want = -EINVAL;
	else
		want = 0;
	p = mmap(NULL, len, prot, shared ? MAP_SHARED : MAP_PRIVATE, f->fd,
		 (off_t)off);
	rc = p == MAP_FAILED ? -errno : 0;
	if (rc != want)
		mismatch(f, "mmap", want, rc);
	if (!rc) {
		/* The whole range is mapped: touch both ends. */
		(void)*(volatile uint8_t *)p;
		(void)*(volatile uint8_t *)(p + len - 1);
		if (prot & PROT_WRITE)
			p[len / 2] ^= 0;
		munmap(p, len);
	}
}

static void fuzz_one(struct fuzz *f)
{
	enum fuzz_op op = (enum fuzz_op)rnd_below(f, FUZZ_OPS);

	switch (op) {
	case FUZZ_IOCTL_RANDOM:
		fuzz_random_ioctl(f);
		break;
	case FUZZ_GET_INFO:
		fuzz_get_info(f);
		break;
	case FUZZ_ALLOC:
		fuzz_alloc(f);
		break;
	case FUZZ_FREE:
		fuzz_free(f);
		break;
	case FUZZ_SUBMIT:
		fuzz_submit(f);
		break;
	case FUZZ_URING_CMD:
		fuzz_uring(f);
		break;
	default:
		fuzz_mmap(f);
		break;
	}
	f->count[op]++;
}

TEST(ioctl_uring_mmap)
{
	uint64_t seed = env_u64("PNM_FUZZ_SEED", 1);
	uint64_t ops = env_u64("PNM_FUZZ_OPS", 0);
	double seconds = (double)env_u64("PNM_FUZZ_SECONDS", 20);
	static struct fuzz f;
	unsigned long total = 0;
	double t0, end, took;
	unsigned int i;

	f.rng = seed * 0x9e3779b97f4a7c15ULL | 1;
	f.fd = pnm_open_id(0);
	ASSERT_LE(0, f.fd);
	ASSERT_EQ(0, pnm_get_info(f.fd, &f.info));
	ASSERT_EQ(0, pnm_ring_init(&f.ring, 64));
	printf("# seed %llu (PNM_FUZZ_SEED), %s\n", (unsigned long long)seed,
	       ops ? "fixed operation count" : "time bound");

	t0 = pnm_now_s();
	end = t0 + seconds;
	while (ops ? total < ops : pnm_now_s() < end) {
		fuzz_one(&f);
		total++;
	}
	took = pnm_now_s() - t0;

	printf("# %lu operations in %.1f s (replay: PNM_FUZZ_SEED=%llu PNM_FUZZ_OPS=%lu)\n",
	       total, took, (unsigned long long)seed, total);
	for (i = 0; i < FUZZ_OPS; i++)
		printf("#   %-17s %lu\n", fuzz_op_names[i], f.count[i]);
	printf("# %lu commands reached the device, %lu batches timed out\n",
	       f.executed, f.timeouts);
	EXPECT_EQ(0, f.mismatches);

	/* Nothing leaks: every region returns once the file is closed. */
	io_uring_queue_exit(&f.ring);
	close(f.fd);
	for (end = pnm_now_s() + 15; pnm_now_s() < end; usleep(20000))
		if (pnm_sysfs_u64(0, "kv_free") == f.info.kv_size)
			break;
	EXPECT_EQ(f.info.kv_size, pnm_sysfs_u64(0, "kv_free"));
	EXPECT_TRUE(pnm_state_is(0, "live"));
}

TEST_HARNESS_MAIN
