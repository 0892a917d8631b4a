// SPDX-License-Identifier: GPL-2.0-only
/*
 * Shared helpers of the host unit tests, see pnm_unit.h.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pnm_unit.h"

/* Sanitizer builds start slowly; a device that is not ready by then failed. */
#define PNM_UNIT_START_TIMEOUT_MS	20000

const char *pnm_unit_device_binary(void)
{
	const char *bin = getenv("PNM_DEVICE");

	return bin && *bin ? bin : PNM_DEVICE_BIN;
}

/* Read the device's stderr until the ready line for @ud->path appears. */
static int pnm_unit_wait_ready(struct pnm_unit_device *ud)
{
	char expect[160], buf[4096];
	size_t len = 0;

	snprintf(expect, sizeof(expect), "pnm-device: ready %s\n", ud->path);
	for (;;) {
		struct pollfd pfd = { .fd = ud->stderr_fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, PNM_UNIT_START_TIMEOUT_MS) <= 0) {
			fprintf(stderr, "pnm-device on %s: no ready line within %d ms\n",
				ud->path, PNM_UNIT_START_TIMEOUT_MS);
			return -1;
		}
		n = read(ud->stderr_fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0) {
			buf[len] = '\0';
			fprintf(stderr, "pnm-device on %s exited before it was ready: %s\n",
				ud->path, buf);
			return -1;
		}
		len += n;
		buf[len] = '\0';
		if (strstr(buf, expect))
			return 0;
		if (len == sizeof(buf) - 1) {
			fprintf(stderr, "pnm-device on %s: unexpected output: %s\n",
				ud->path, buf);
			return -1;
		}
	}
}

int pnm_unit_device_start(struct pnm_unit_device *ud,
			  const char *const *extra_args)
{
	static unsigned int counter;
	const char *argv[32];
	unsigned int argc = 0;
	int pipefd[2];

	snprintf(ud->path, sizeof(ud->path), "/dev/shm/pnm-unit-%d-%u",
		 (int)getpid(), counter++);
	unlink(ud->path);
	ud->pid = 0;
	ud->stderr_fd = -1;

	argv[argc++] = pnm_unit_device_binary();
	argv[argc++] = "--mem";
	argv[argc++] = ud->path;
	argv[argc++] = "--size";
	argv[argc++] = PNM_UNIT_DEV_SIZE;
	while (extra_args && *extra_args && argc < 31)
		argv[argc++] = *extra_args++;
	argv[argc] = NULL;

	if (pipe2(pipefd, O_CLOEXEC)) {
		perror("pipe2");
		return -1;
	}
	ud->pid = fork();
	if (ud->pid < 0) {
		perror("fork");
		close(pipefd[0]);
		close(pipefd[1]);
		ud->pid = 0;
		return -1;
	}
	if (ud->pid == 0) {
		/* The device dies with the test process that started it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pipefd[1], STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	ud->stderr_fd = pipefd[0];
	if (pnm_unit_wait_ready(ud)) {
		pnm_unit_device_stop(ud);
		return -1;
	}
	return 0;
}

/* Pass on whatever the device logged after its ready line. */
static void pnm_unit_forward_log(struct pnm_unit_device *ud)
{
	char buf[4096];
	ssize_t n;

	if (ud->stderr_fd < 0)
		return;
	fcntl(ud->stderr_fd, F_SETFL, O_NONBLOCK);
	while ((n = read(ud->stderr_fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, n, stderr);
	close(ud->stderr_fd);
	ud->stderr_fd = -1;
}

int pnm_unit_device_stop(struct pnm_unit_device *ud)
{
	int status = -1;

	if (ud->pid > 0) {
		kill(ud->pid, SIGTERM);
		if (waitpid(ud->pid, &status, 0) != ud->pid)
			status = -1;
		ud->pid = 0;
	}
	pnm_unit_forward_log(ud);
	if (ud->path[0])
		unlink(ud->path);
	return status;
}

int pnm_unit_open(struct pnm_unit_device *ud, const char *const *extra_args,
		  struct pnm_dev **devp)
{
	char name[128];
	int ret;

	if (pnm_unit_device_start(ud, extra_args))
		return -1;
	snprintf(name, sizeof(name), "direct:%s", ud->path);
	ret = pnm_open(name, devp);
	if (ret) {
		fprintf(stderr, "pnm_open(%s): %s\n", name, pnm_last_error());
		pnm_unit_device_stop(ud);
		return -1;
	}
	/*
	 * The device and the transport both hold the file mapped, so the
	 * name can go now.  The 6.12 harness skips the teardown after a
	 * failed ASSERT; this way such a test leaves no file behind.
	 */
	unlink(ud->path);
	return 0;
}

/* ---- streams ------------------------------------------------------------ */

float pnm_unit_rand(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	/* 24 random bits to [-1, 1]. */
	return (float)(x >> 8) * (2.0f / 16777215.0f) - 1.0f;
}

static uint64_t pnm_unit_align(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

int pnm_unit_stream_init(struct pnm_unit_stream *s, struct pnm_dev *dev,
			 unsigned int dtype, unsigned int head_dim,
			 unsigned int page_shift, unsigned int group,
			 uint32_t n_tokens, uint32_t n_slots)
{
	uint64_t slot = pnm_hw_slot_bytes(dtype, page_shift, head_dim);
	uint64_t digest = pnm_hw_digest_bytes(dtype, head_dim);
	uint64_t size;
	uint8_t *base;
	int ret;

	memset(s, 0, sizeof(*s));
	s->dtype = dtype;
	s->head_dim = head_dim;
	s->page_shift = page_shift;
	s->group = group;
	s->n_tokens = n_tokens;
	s->n_pages = (uint32_t)(((uint64_t)n_tokens + (1U << page_shift) - 1) >>
				page_shift);
	s->n_slots = n_slots ? n_slots : s->n_pages + 3;
	s->list_cap = s->n_pages + 8;
	s->out_cap = 4ULL * ((uint64_t)group * head_dim + group + s->list_cap);

	s->pool_off = 0;
	s->pool_len = s->n_slots * (slot + digest);
	s->table_off = pnm_unit_align(s->pool_off + s->pool_len, 64);
	s->in_off = pnm_unit_align(s->table_off + 4ULL * s->list_cap, 64);
	s->out_off = pnm_unit_align(s->in_off +
				    4ULL * ((uint64_t)group * head_dim + s->list_cap), 64);
	size = pnm_unit_align(s->out_off + s->out_cap, 4096);

	ret = pnm_region_alloc(dev, size, &s->region);
	if (ret) {
		fprintf(stderr, "pnm_region_alloc(%llu): %s\n",
			(unsigned long long)size, pnm_last_error());
		return ret;
	}
	base = s->region->addr;
	s->table = (uint32_t *)(base + s->table_off);
	s->query = (float *)(base + s->in_off);
	s->list = (uint32_t *)(s->query + (size_t)group * head_dim);
	s->out = base + s->out_off;

	s->ref.dtype = dtype;
	s->ref.head_dim = head_dim;
	s->ref.page_shift = page_shift;
	s->ref.group = group;
	s->ref.n_tokens = n_tokens;
	s->ref.pool = base + s->pool_off;
	s->ref.pool_len = s->pool_len;
	s->ref.table = s->table;
	return 0;
}

void pnm_unit_stream_free(struct pnm_unit_stream *s)
{
	pnm_region_free(s->region);
	s->region = NULL;
}

void *pnm_unit_slot_row(const struct pnm_unit_stream *s, uint32_t slot,
			unsigned int row, bool values)
{
	uint64_t slot_bytes = pnm_hw_slot_bytes(s->dtype, s->page_shift, s->head_dim);
	uint64_t row_bytes = (uint64_t)s->head_dim * pnm_hw_dtype_size(s->dtype);
	uint8_t *keys = (uint8_t *)s->region->addr + s->pool_off + slot * slot_bytes;

	return keys + (values ? slot_bytes / 2 : 0) + row * row_bytes;
}

static void pnm_unit_fill_row(const struct pnm_unit_stream *s, void *row,
			      uint32_t *rng, bool nan)
{
	unsigned int c;

	for (c = 0; c < s->head_dim; c++)
		pnm_ref_store(s->dtype, row, c, nan ? NAN : pnm_unit_rand(rng));
}

void pnm_unit_stream_fill(struct pnm_unit_stream *s, uint32_t seed)
{
	uint32_t rng = seed * 2654435761U + 1, page, slot, i;
	unsigned int page_tokens = 1U << s->page_shift, t;
	uint32_t *perm;

	/* A shuffled choice of slots, so pages are not where their index is. */
	perm = malloc(s->n_slots * sizeof(*perm));
	if (!perm)
		abort();
	for (i = 0; i < s->n_slots; i++)
		perm[i] = i;
	for (i = s->n_slots; i > 1; i--) {
		uint32_t j = (uint32_t)((pnm_unit_rand(&rng) + 1.0f) * 0.5f * (i - 1));
		uint32_t tmp = perm[i - 1];

		perm[i - 1] = perm[j];
		perm[j] = tmp;
	}
	for (page = 0; page < s->n_pages; page++)
		s->table[page] = perm[page];
	free(perm);

	for (slot = 0; slot < s->n_slots; slot++) {
		for (t = 0; t < page_tokens; t++) {
			pnm_unit_fill_row(s, pnm_unit_slot_row(s, slot, t, false), &rng, false);
			pnm_unit_fill_row(s, pnm_unit_slot_row(s, slot, t, true), &rng, false);
		}
	}
	/* Rows past n_tokens in the last page: NaN, which must never be read. */
	if (s->n_pages) {
		uint32_t last = s->table[s->n_pages - 1];
		unsigned int valid = s->n_tokens - ((s->n_pages - 1) << s->page_shift);

		for (t = valid; t < page_tokens; t++) {
			pnm_unit_fill_row(s, pnm_unit_slot_row(s, last, t, false), &rng, true);
			pnm_unit_fill_row(s, pnm_unit_slot_row(s, last, t, true), &rng, true);
		}
	}
	for (i = 0; i < s->group * s->head_dim; i++)
		s->query[i] = pnm_unit_rand(&rng);
}

uint64_t pnm_unit_out_bytes(const struct pnm_unit_stream *s,
			    unsigned int opcode, unsigned int n_pages)
{
	uint64_t attend = 4ULL * ((uint64_t)s->group * s->head_dim + s->group);

	switch (opcode) {
	case CXL_PNM_OP_SELECT:
		return 4ULL * n_pages;
	case CXL_PNM_OP_ATTEND:
		return attend;
	case CXL_PNM_OP_SELECT_ATTEND:
		return attend + 4ULL * n_pages;
	default:
		return 0;
	}
}

struct cxl_pnm_cmd pnm_unit_cmd(const struct pnm_unit_stream *s,
				unsigned int opcode, unsigned int k,
				unsigned int n_list, unsigned int flags,
				unsigned int list_len, uint64_t out_len)
{
	uint64_t in_len = 4ULL * ((uint64_t)s->group * s->head_dim + list_len);
	struct cxl_pnm_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = opcode;
	cmd.dtype = s->dtype;
	cmd.page_shift = s->page_shift;
	cmd.group = s->group;
	cmd.head_dim = s->head_dim;
	cmd.flags = flags;
	cmd.n_tokens = s->n_tokens;
	cmd.k = k;
	cmd.n_list = n_list;
	cmd.pool = pnm_buf(s->region, s->pool_off, s->pool_len);
	cmd.table = pnm_buf(s->region, s->table_off, 4ULL * s->n_pages);
	if (opcode != CXL_PNM_OP_DIGEST) {
		cmd.in = pnm_buf(s->region, s->in_off, in_len);
		cmd.out = pnm_buf(s->region, s->out_off, out_len);
	}
	return cmd;
}

static void pnm_unit_hw_buf(const struct pnm_unit_stream *s,
			    const struct cxl_pnm_buf *buf, __le64 *dpa,
			    __le32 *len)
{
	uint64_t base = pnm_direct_region_dpa(s->region);

	*dpa = htole64(buf->handle ? base + buf->offset : 0);
	*len = htole32(buf->length);
}

struct pnm_hw_cmd pnm_unit_hw_cmd(const struct cxl_pnm_cmd *cmd,
				  const struct pnm_unit_stream *s)
{
	struct pnm_hw_cmd hw;

	memset(&hw, 0, sizeof(hw));
	hw.opcode = cmd->opcode;
	hw.dtype = cmd->dtype;
	hw.page_shift = cmd->page_shift;
	hw.group = cmd->group;
	hw.head_dim = htole16(cmd->head_dim);
	hw.flags = cmd->flags;
	hw.rsvd = cmd->rsvd;
	hw.n_tokens = htole32(cmd->n_tokens);
	hw.k = htole16(cmd->k);
	hw.n_list = htole16(cmd->n_list);
	pnm_unit_hw_buf(s, &cmd->pool, &hw.pool_dpa, &hw.pool_len);
	pnm_unit_hw_buf(s, &cmd->table, &hw.table_dpa, &hw.table_len);
	pnm_unit_hw_buf(s, &cmd->in, &hw.in_dpa, &hw.in_len);
	pnm_unit_hw_buf(s, &cmd->out, &hw.out_dpa, &hw.out_len);
	return hw;
}
