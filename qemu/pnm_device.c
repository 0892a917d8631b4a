// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnm-device: the CXL-PNM accelerator as a host process.
 *
 * QEMU's emulated CXL Type-3 memory expander keeps its memory in a shared
 * file; this process maps the same file and plays the accelerator inside the
 * expander.  It formats the control block, then polls the control word and
 * every submission queue's tail doorbell, executes commands (pnm_exec.c) and
 * posts phase-tagged completions.  There are no interrupts in either
 * direction: the host polls completions, the device polls doorbells.
 *
 * Register map (driver/cxl_pnm_hw.h, Documentation/device-interface.rst):
 *
 *   DPA 0x0000  control block, struct pnm_hw_ctrl
 *        0x000  magic, version, status       device writes
 *        0x010  geometry and capabilities    device writes at format
 *        0x080  control (ENABLE, RESET)      host writes, own cache line
 *        0x0c0  heartbeat                    device writes every poll
 *        0x100  counters                     device writes per command
 *   doorbell_offset  per queue: sq_tail, cq_head, host writes, 128 bytes
 *   queue_offset     all SQs (64-byte commands), then all CQs (32 bytes)
 *   kv_offset        the KV area, up to the end of device memory
 *
 * Device state (struct pnm_device) is private to this process: queue
 * heads and tails, phases, geometry and counters live here and are only
 * published to shared memory.  Nothing the device relies on is read back
 * from memory the host can write, except the control word, the doorbells
 * and the commands, each loaded once per use and checked.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cxl_pnm_hw.h"
#include "pnm_exec.h"
#include "pnm_kernels.h"
#include "pnm_timing.h"
#include "pnm_units.h"

#define PNM_DEFAULT_SIZE	(512ULL << 20)
#define PNM_DEFAULT_QUEUES	4
#define PNM_DEFAULT_DEPTH	64
#define PNM_MAX_QUEUES		64
#define PNM_MAX_DEPTH		65536	/* completion slot numbers are 16 bits */
#define PNM_DEFAULT_POLL_MAX_US	1000

/* Capabilities advertised in the control block. */
#define PNM_CAP_DTYPES		((1U << PNM_DTYPE_FP32) | (1U << PNM_DTYPE_FP16) | \
				 (1U << PNM_DTYPE_BF16))
#define PNM_CAP_MAX_HEAD_DIM	256
#define PNM_CAP_MAX_GROUP	32
#define PNM_CAP_PAGE_SHIFTS	0x1fcU	/* 2^2 to 2^8 tokens per page */
#define PNM_CAP_MAX_K		65535

/*
 * Busy polling continues this long after the last command or control
 * change, so a burst of doorbells is served without sleeping in between.
 */
#define PNM_SPIN_NS		50000

/* Commands served from one queue before the next queue gets its turn. */
#define PNM_QUEUE_BUDGET	16

static volatile sig_atomic_t pnm_stop;

/**
 * struct pnm_queue - device-side state of one queue pair
 * @sq: submission queue entries in device memory
 * @cq: completion queue entries in device memory
 * @db: the pair's doorbells in device memory
 * @sq_head: commands fetched, free-running
 * @cq_tail: completions posted, free-running
 * @phase: phase bit of the next completion; flips when the CQ wraps
 */
struct pnm_queue {
	struct pnm_hw_cmd *sq;
	struct pnm_hw_cqe *cq;
	struct pnm_hw_doorbell *db;
	uint32_t sq_head;
	uint32_t cq_tail;
	uint16_t phase;
};

/* Commands of one batch, run at the same time on the compute units. */
#define PNM_BATCH_MAX		64

/**
 * struct pnm_batch_cmd - a fetched command and its outcome
 * @qid: its queue
 * @slot: its SQ slot
 * @sq_head: the queue's SQ head right after fetching it
 * @cmd: private copy of the SQ entry
 * @res: outcome of pnm_exec()
 * @ret: return value of pnm_exec()
 */
struct pnm_batch_cmd {
	unsigned int qid;
	uint32_t slot;
	uint32_t sq_head;
	struct pnm_hw_cmd cmd;
	struct pnm_exec_result res;
	int ret;
};

struct pnm_device;

struct pnm_batch {
	struct pnm_device *dev;
	unsigned int n;
	struct pnm_batch_cmd cmd[PNM_BATCH_MAX];
};

struct pnm_options {
	const char *path;
	uint64_t size;
	unsigned int nr_queues;
	unsigned int depth;
	unsigned int poll_max_us;
	unsigned int verbose;
	unsigned int units;
	const char *kernels;
	struct pnm_timing timing;
};

/**
 * struct pnm_device - the accelerator
 * @opt: command-line options
 * @fd: backing file
 * @mem: the whole device memory, mapped shared with QEMU and the host
 * @ctrl: control block at DPA 0
 * @doorbell_offset: DPA of the doorbell area
 * @doorbell_size: bytes of the doorbell area
 * @queue_offset: DPA of the queue area
 * @queue_size: bytes of the queue area
 * @sq_bytes: bytes of one SQ, 4 KiB aligned
 * @cq_bytes: bytes of one CQ, 4 KiB aligned
 * @exec: the executor's view: memory, KV area and capabilities
 * @queues: per queue pair state
 * @first_queue: queue gathered first in the next turn
 * @batch: the commands of the current turn
 * @units: compute units
 * @status: PNM_HW_STATUS_* as last published
 * @heartbeat: poll loop iterations
 * @cmds_completed: counters published in the control block
 * @cmds_failed: commands completed with a non-zero status
 * @bytes_read: device memory read by commands
 * @device_ns: modeled busy time
 */
struct pnm_device {
	struct pnm_options opt;
	int fd;
	uint8_t *mem;
	struct pnm_hw_ctrl *ctrl;

	uint64_t doorbell_offset;
	uint64_t doorbell_size;
	uint64_t queue_offset;
	uint64_t queue_size;
	uint64_t sq_bytes;
	uint64_t cq_bytes;
	struct pnm_exec_dev exec;

	struct pnm_queue *queues;
	unsigned int first_queue;
	struct pnm_batch *batch;
	struct pnm_units *units;
	uint32_t status;
	uint64_t heartbeat;
	uint64_t cmds_completed;
	uint64_t cmds_failed;
	uint64_t bytes_read;
	uint64_t device_ns;
};

#define pnm_log(fmt, ...) fprintf(stderr, "pnm-device: " fmt "\n", ##__VA_ARGS__)
#define pnm_dbg(dev, level, fmt, ...)					\
	do {								\
		if ((dev)->opt.verbose >= (level))			\
			pnm_log(fmt, ##__VA_ARGS__);			\
	} while (0)

static const char *const pnm_op_names[PNM_OP_COUNT] = {
	[PNM_OP_NOP] = "NOP",
	[PNM_OP_DIGEST] = "DIGEST",
	[PNM_OP_SELECT] = "SELECT",
	[PNM_OP_ATTEND] = "ATTEND",
	[PNM_OP_SELECT_ATTEND] = "SELECT_ATTEND",
};

static uint64_t pnm_round_up(uint64_t x, uint64_t align)
{
	return (x + align - 1) / align * align;
}

static uint64_t pnm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void pnm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- control block: one function per register access ------------------ */

/*
 * Fields the device writes are stored atomically, so the host never reads a
 * torn value.  Words the host writes are loaded with acquire, so that what
 * the host wrote before them (commands, KV data) is visible.
 */
static void pnm_ctrl_write32(__le32 *reg, uint32_t val)
{
	__atomic_store_n(reg, htole32(val), __ATOMIC_RELEASE);
}

static void pnm_ctrl_write64(__le64 *reg, uint64_t val)
{
	__atomic_store_n(reg, htole64(val), __ATOMIC_RELEASE);
}

static uint32_t pnm_host_read32(const __le32 *reg)
{
	return le32toh(__atomic_load_n(reg, __ATOMIC_ACQUIRE));
}

static void pnm_set_status(struct pnm_device *dev, uint32_t status)
{
	dev->status = status;
	pnm_ctrl_write32(&dev->ctrl->status, status);
}

static uint32_t pnm_read_control(struct pnm_device *dev)
{
	return pnm_host_read32(&dev->ctrl->control);
}

/* RESET, or ENABLE cleared: either one stops the queues. */
static bool pnm_control_stops(uint32_t control)
{
	return control & PNM_HW_CONTROL_RESET || !(control & PNM_HW_CONTROL_ENABLE);
}

static void pnm_beat(struct pnm_device *dev)
{
	pnm_ctrl_write64(&dev->ctrl->heartbeat, ++dev->heartbeat);
}

static void pnm_publish_counters(struct pnm_device *dev)
{
	pnm_ctrl_write64(&dev->ctrl->cmds_completed, dev->cmds_completed);
	pnm_ctrl_write64(&dev->ctrl->cmds_failed, dev->cmds_failed);
	pnm_ctrl_write64(&dev->ctrl->bytes_read, dev->bytes_read);
	pnm_ctrl_write64(&dev->ctrl->device_ns, dev->device_ns);
}

/* ---- enable, reset, fatal ---------------------------------------------- */

static void pnm_zero_doorbells(struct pnm_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->opt.nr_queues; i++) {
		pnm_ctrl_write32(&dev->queues[i].db->sq_tail, 0);
		pnm_ctrl_write32(&dev->queues[i].db->cq_head, 0);
	}
}

/*
 * ENABLE: empty queues, phase 1.  The doorbells are zeroed too, because a
 * host that was reset mid-stream may have left stale tails behind, and a
 * stale tail would replay old commands.
 */
static void pnm_enable(struct pnm_device *dev)
{
	unsigned int i;

	for (i = 0; i < dev->opt.nr_queues; i++) {
		struct pnm_queue *q = &dev->queues[i];

		memset(q->cq, 0, dev->cq_bytes);
		q->sq_head = 0;
		q->cq_tail = 0;
		q->phase = 1;
	}
	pnm_zero_doorbells(dev);
	pnm_set_status(dev, PNM_HW_STATUS_READY | PNM_HW_STATUS_ENABLED);
	pnm_dbg(dev, 1, "enabled, %u queues of %u entries",
		dev->opt.nr_queues, dev->opt.depth);
}

/*
 * RESET (or ENABLE cleared): drop the commands not yet fetched and stop
 * serving queues until the next ENABLE.  Commands run to completion before
 * the control word is looked at, so none is cut short.
 */
static void pnm_reset(struct pnm_device *dev)
{
	pnm_set_status(dev, PNM_HW_STATUS_READY);
	pnm_dbg(dev, 1, "reset");
}

/*
 * A host that breaks the queue protocol leaves the device in an unknown
 * state: stop serving every queue and set FATAL until the host resets.
 */
static void pnm_fatal(struct pnm_device *dev, const char *why)
{
	pnm_log("%s: fatal: %s; waiting for RESET", dev->opt.path, why);
	pnm_set_status(dev, PNM_HW_STATUS_READY | PNM_HW_STATUS_FATAL);
}

static bool pnm_enabled(const struct pnm_device *dev)
{
	return dev->status & PNM_HW_STATUS_ENABLED;
}

/*
 * React to the control word.  RESET wins over ENABLE; after FATAL only a
 * RESET brings the device back, so a host that leaves ENABLE set does not
 * restart a device it has not looked at.  Returns true if the state changed.
 */
static bool pnm_handle_control(struct pnm_device *dev)
{
	uint32_t control = pnm_read_control(dev);
	bool fatal = dev->status & PNM_HW_STATUS_FATAL;

	if (pnm_control_stops(control)) {
		if (!pnm_enabled(dev) && !fatal)
			return false;
		pnm_reset(dev);
		return true;
	}
	if (pnm_enabled(dev) || fatal)
		return false;
	pnm_enable(dev);
	return true;
}

/* ---- queues ------------------------------------------------------------ */

/*
 * Copy one SQ entry out of shared memory with eight 64-bit loads; every
 * later use of a field reads the private copy, so the host cannot change a
 * field between its check and its use.
 */
static void pnm_fetch(const struct pnm_queue *q, uint32_t slot,
		      struct pnm_hw_cmd *cmd)
{
	const uint64_t *src = (const uint64_t *)&q->sq[slot];
	uint64_t words[sizeof(*cmd) / sizeof(uint64_t)];
	unsigned int i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		words[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	memcpy(cmd, words, sizeof(*cmd));
}

/* Write the completion body, then its flags with the phase (release). */
static void pnm_post_completion(struct pnm_device *dev, struct pnm_queue *q,
				const struct pnm_batch_cmd *bc, uint64_t device_ns)
{
	struct pnm_hw_cqe *cqe = &q->cq[q->cq_tail & (dev->opt.depth - 1)];

	cqe->slot = htole16(bc->slot);
	cqe->sq_head = htole16(bc->sq_head & (dev->opt.depth - 1));
	cqe->status = htole16(bc->res.status);
	cqe->result = htole32(bc->res.result);
	cqe->rsvd = 0;
	cqe->device_ns = htole64(device_ns);
	cqe->bytes_read = htole64(bc->res.bytes_read);
	__atomic_store_n(&cqe->flags, htole16(q->phase), __ATOMIC_RELEASE);

	q->cq_tail++;
	if (!(q->cq_tail & (dev->opt.depth - 1)))
		q->phase ^= PNM_CQE_PHASE;
}

static void pnm_account(struct pnm_device *dev,
			const struct pnm_exec_result *res, uint64_t device_ns)
{
	dev->cmds_completed++;
	if (res->status)
		dev->cmds_failed++;
	dev->bytes_read += res->bytes_read;
	dev->device_ns += device_ns;
	/* Before the completion, so a host that sees it sees the counters. */
	pnm_publish_counters(dev);
}

/* ---- batches ----------------------------------------------------------- */

/* An operand as a raw command names it, for the conflict check. */
struct pnm_span {
	uint64_t dpa;
	uint64_t len;
};

static bool pnm_spans_overlap(struct pnm_span a, struct pnm_span b)
{
	if (!a.len || !b.len)
		return false;
	/* 128-bit ends: the fields are unchecked here and may wrap. */
	return (unsigned __int128)a.dpa < (unsigned __int128)b.dpa + b.len &&
	       (unsigned __int128)b.dpa < (unsigned __int128)a.dpa + a.len;
}

/* The operands of @cmd: pool, table, in, out; the ones it may write first. */
static unsigned int pnm_cmd_spans(const struct pnm_hw_cmd *cmd,
				  struct pnm_span span[4], unsigned int *n_write)
{
	span[0] = (struct pnm_span){ le64toh(cmd->pool_dpa), le32toh(cmd->pool_len) };
	span[1] = (struct pnm_span){ le64toh(cmd->table_dpa), le32toh(cmd->table_len) };
	span[2] = (struct pnm_span){ le64toh(cmd->in_dpa), le32toh(cmd->in_len) };
	span[3] = (struct pnm_span){ le64toh(cmd->out_dpa), le32toh(cmd->out_len) };
	if (cmd->opcode == PNM_OP_NOP || cmd->opcode >= PNM_OP_COUNT) {
		*n_write = 0;
		return 0;
	}
	if (cmd->opcode == PNM_OP_DIGEST) {
		*n_write = 1;	/* the digest area lies in the pool */
		return 2;
	}
	span[0] = span[3];	/* writes out; reads pool, table, in */
	span[3] = (struct pnm_span){ le64toh(cmd->pool_dpa), le32toh(cmd->pool_len) };
	*n_write = 1;
	return 4;
}

/* Whether one of the commands may write what the other reads or writes. */
static bool pnm_cmds_conflict(const struct pnm_hw_cmd *a,
			      const struct pnm_hw_cmd *b)
{
	struct pnm_span sa[4], sb[4];
	unsigned int na, nb, wa, wb, i, j;

	na = pnm_cmd_spans(a, sa, &wa);
	nb = pnm_cmd_spans(b, sb, &wb);
	for (i = 0; i < wa; i++)
		for (j = 0; j < nb; j++)
			if (pnm_spans_overlap(sa[i], sb[j]))
				return true;
	for (i = 0; i < wb; i++)
		for (j = 0; j < na; j++)
			if (pnm_spans_overlap(sb[i], sa[j]))
				return true;
	return false;
}

static bool pnm_batch_conflicts(const struct pnm_batch *b,
				const struct pnm_hw_cmd *cmd)
{
	unsigned int i;

	for (i = 0; i < b->n; i++)
		if (pnm_cmds_conflict(&b->cmd[i].cmd, cmd))
			return true;
	return false;
}

/*
 * Fetch up to PNM_QUEUE_BUDGET commands of queue @qid into @b, as long as
 * the CQ has room for their completions and none of them touches memory an
 * earlier command of the batch writes (or the reverse): commands of one
 * batch run at the same time, and this keeps the result of running them
 * one by one in fetch order.  A doorbell that claims more commands than
 * the queue holds, or a CQ head ahead of the completions posted, breaks
 * the protocol and is fatal.
 */
static void pnm_gather_queue(struct pnm_device *dev, unsigned int qid,
			     struct pnm_batch *b)
{
	struct pnm_queue *q = &dev->queues[qid];
	uint32_t depth = dev->opt.depth;
	uint32_t sq_tail = pnm_host_read32(&q->db->sq_tail);
	uint32_t cq_head = pnm_host_read32(&q->db->cq_head);
	uint32_t pending = sq_tail - q->sq_head;
	uint32_t unread = q->cq_tail - cq_head;
	unsigned int fetched = 0;
	char why[160];

	if (pending > depth) {
		snprintf(why, sizeof(why),
			 "queue %u: SQ tail %u is %u commands ahead of head %u, queue depth %u",
			 qid, sq_tail, pending, q->sq_head, depth);
		pnm_fatal(dev, why);
		return;
	}
	if (unread > depth) {
		snprintf(why, sizeof(why), "queue %u: CQ head %u is past CQ tail %u",
			 qid, cq_head, q->cq_tail);
		pnm_fatal(dev, why);
		return;
	}
	while (fetched < pending && fetched < PNM_QUEUE_BUDGET &&
	       unread + fetched < depth && b->n < PNM_BATCH_MAX) {
		struct pnm_batch_cmd *bc = &b->cmd[b->n];
		uint32_t slot = q->sq_head & (depth - 1);

		pnm_fetch(q, slot, &bc->cmd);
		if (b->n && pnm_batch_conflicts(b, &bc->cmd))
			return;	/* it runs in the next batch */
		q->sq_head++;
		bc->qid = qid;
		bc->slot = slot;
		bc->sq_head = q->sq_head;
		b->n++;
		fetched++;
	}
}

/* One command of a batch of several, on one unit. */
static void pnm_batch_task(void *arg, unsigned int i)
{
	struct pnm_batch *b = arg;
	struct pnm_exec_dev exec = b->dev->exec;

	exec.units = NULL;
	b->cmd[i].ret = pnm_exec(&exec, &b->cmd[i].cmd, &b->cmd[i].res);
}

/*
 * Run the batch: a single command gets every unit for its pages, several
 * commands get a unit each.  Then post the completions in fetch order.
 */
static void pnm_run_batch(struct pnm_device *dev, struct pnm_batch *b)
{
	unsigned int i;

	b->dev = dev;
	if (b->n == 1)
		b->cmd[0].ret = pnm_exec(&dev->exec, &b->cmd[0].cmd, &b->cmd[0].res);
	else
		pnm_units_run(dev->units, pnm_batch_task, b, b->n);

	for (i = 0; i < b->n; i++) {
		struct pnm_batch_cmd *bc = &b->cmd[i];
		const struct pnm_hw_cmd *cmd = &bc->cmd;
		uint64_t device_ns;

		if (bc->ret) {
			pnm_fatal(dev, "out of memory for a command's scratch buffers");
			return;
		}
		device_ns = pnm_timing_ns(&dev->opt.timing, bc->res.bytes_read,
					  bc->res.flops);
		pnm_account(dev, &bc->res, device_ns);
		pnm_post_completion(dev, &dev->queues[bc->qid], bc, device_ns);
		pnm_dbg(dev, 2, "queue %u slot %u: %s status %u result %u bytes %" PRIu64
			" device_ns %" PRIu64 " rescored %u", bc->qid, bc->slot,
			cmd->opcode < PNM_OP_COUNT ? pnm_op_names[cmd->opcode] : "unknown",
			bc->res.status, bc->res.result, bc->res.bytes_read, device_ns,
			bc->res.rescored);
	}
}

/*
 * One turn: gather a batch from every queue, starting one queue further
 * each turn so that no queue always goes first, run it, and look at the
 * control word (a RESET drops what is not fetched yet).
 */
static unsigned int pnm_serve_queues(struct pnm_device *dev)
{
	struct pnm_batch *b = dev->batch;
	unsigned int i, n = dev->opt.nr_queues;

	b->n = 0;
	for (i = 0; i < n && pnm_enabled(dev); i++)
		pnm_gather_queue(dev, (dev->first_queue + i) % n, b);
	dev->first_queue = (dev->first_queue + 1) % n;
	if (!b->n)
		return 0;
	pnm_run_batch(dev, b);
	pnm_handle_control(dev);
	return b->n;
}

/* ---- polling ----------------------------------------------------------- */

/**
 * struct pnm_backoff - adaptive polling interval
 * @last_work_ns: when the device last did something
 * @sleep_us: next sleep; doubles while idle, up to poll_max_us
 */
struct pnm_backoff {
	uint64_t last_work_ns;
	unsigned int sleep_us;
};

/*
 * Spin for PNM_SPIN_NS after activity, then sleep 1, 2, 4 ... microseconds
 * up to --poll-max-us.  An idle device thus wakes about once per
 * poll_max_us, and a busy one sees a new doorbell within a pause
 * instruction.
 */
static void pnm_backoff(struct pnm_backoff *b, bool busy,
			unsigned int poll_max_us)
{
	uint64_t now = pnm_now_ns();
	struct timespec ts;

	if (busy) {
		b->last_work_ns = now;
		b->sleep_us = 0;
		return;
	}
	if (now - b->last_work_ns < PNM_SPIN_NS) {
		pnm_cpu_relax();
		return;
	}
	b->sleep_us = b->sleep_us ? b->sleep_us * 2 : 1;
	if (b->sleep_us > poll_max_us)
		b->sleep_us = poll_max_us;
	ts.tv_sec = b->sleep_us / 1000000;
	ts.tv_nsec = (long)(b->sleep_us % 1000000) * 1000;
	nanosleep(&ts, NULL);	/* EINTR: the loop checks pnm_stop */
}

static void pnm_poll(struct pnm_device *dev)
{
	struct pnm_backoff backoff = { .last_work_ns = pnm_now_ns() };

	while (!pnm_stop) {
		bool busy;

		pnm_beat(dev);
		busy = pnm_handle_control(dev);
		if (pnm_enabled(dev))
			busy |= pnm_serve_queues(dev) > 0;
		pnm_backoff(&backoff, busy, dev->opt.poll_max_us);
	}
}

/* ---- memory ------------------------------------------------------------ */

/* Lay out doorbells, queues and the KV area; fails if @size is too small. */
static int pnm_layout(struct pnm_device *dev)
{
	const struct pnm_options *opt = &dev->opt;
	uint64_t kv_offset;

	dev->doorbell_offset = PNM_HW_CTRL_SIZE;
	dev->doorbell_size = pnm_round_up((uint64_t)opt->nr_queues *
					  sizeof(struct pnm_hw_doorbell),
					  PNM_HW_ALIGN);
	dev->queue_offset = dev->doorbell_offset + dev->doorbell_size;
	dev->sq_bytes = pnm_round_up((uint64_t)opt->depth *
				     sizeof(struct pnm_hw_cmd), PNM_HW_ALIGN);
	dev->cq_bytes = pnm_round_up((uint64_t)opt->depth *
				     sizeof(struct pnm_hw_cqe), PNM_HW_ALIGN);
	dev->queue_size = opt->nr_queues * (dev->sq_bytes + dev->cq_bytes);
	kv_offset = dev->queue_offset + dev->queue_size;

	if (opt->size < kv_offset + PNM_HW_ALIGN) {
		pnm_log("%s: size %" PRIu64 " is too small: %u queues of depth %u need %" PRIu64
			" bytes before the KV area, plus at least 4096 for it",
			opt->path, opt->size, opt->nr_queues, opt->depth, kv_offset);
		return -EINVAL;
	}
	dev->exec.kv_offset = kv_offset;
	dev->exec.kv_size = (opt->size - kv_offset) & ~(uint64_t)(PNM_HW_ALIGN - 1);
	dev->exec.dtypes = PNM_CAP_DTYPES;
	dev->exec.max_head_dim = PNM_CAP_MAX_HEAD_DIM;
	dev->exec.max_group = PNM_CAP_MAX_GROUP;
	dev->exec.page_shifts = PNM_CAP_PAGE_SHIFTS;
	dev->exec.max_k = PNM_CAP_MAX_K;
	return 0;
}

/* Create or resize the backing file and map it shared. */
static int pnm_map(struct pnm_device *dev)
{
	const struct pnm_options *opt = &dev->opt;
	const char *step = "resize";
	struct stat st;
	int err;

	dev->fd = open(opt->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (dev->fd < 0) {
		err = errno;
		pnm_log("%s: failed to open: %s", opt->path, strerror(err));
		return -err;
	}
	if (fstat(dev->fd, &st) || ((uint64_t)st.st_size != opt->size &&
				    ftruncate(dev->fd, (off_t)opt->size)))
		goto fail;
	step = "map";
	dev->mem = mmap(NULL, opt->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			dev->fd, 0);
	if (dev->mem == MAP_FAILED)
		goto fail;
	dev->ctrl = (struct pnm_hw_ctrl *)dev->mem;
	dev->exec.mem = dev->mem;
	return 0;

fail:
	err = errno;
	pnm_log("%s: failed to %s %" PRIu64 " bytes: %s", opt->path, step,
		opt->size, strerror(err));
	close(dev->fd);
	return -err;
}

static void pnm_unmap(struct pnm_device *dev)
{
	munmap(dev->mem, dev->opt.size);
	close(dev->fd);
}

/*
 * Format the control block, doorbells and queues; the KV area keeps its
 * contents.  READY goes up last, after every field it vouches for.
 */
static int pnm_format(struct pnm_device *dev)
{
	struct pnm_hw_ctrl *ctrl = dev->ctrl;
	unsigned int i;

	pnm_set_status(dev, 0);
	memset(ctrl, 0, PNM_HW_CTRL_SIZE);
	memset(dev->mem + dev->doorbell_offset, 0,
	       dev->doorbell_size + dev->queue_size);

	dev->queues = calloc(dev->opt.nr_queues, sizeof(*dev->queues));
	if (!dev->queues) {
		pnm_log("out of memory for %u queues", dev->opt.nr_queues);
		return -ENOMEM;
	}
	for (i = 0; i < dev->opt.nr_queues; i++) {
		struct pnm_queue *q = &dev->queues[i];

		q->db = (struct pnm_hw_doorbell *)(dev->mem + dev->doorbell_offset) + i;
		q->sq = (struct pnm_hw_cmd *)(dev->mem + dev->queue_offset +
					      i * dev->sq_bytes);
		q->cq = (struct pnm_hw_cqe *)(dev->mem + dev->queue_offset +
					      dev->opt.nr_queues * dev->sq_bytes +
					      i * dev->cq_bytes);
		q->phase = 1;
	}

	ctrl->nr_queues = htole32(dev->opt.nr_queues);
	ctrl->queue_depth = htole32(dev->opt.depth);
	ctrl->dtypes = htole32(dev->exec.dtypes);
	ctrl->max_head_dim = htole32(dev->exec.max_head_dim);
	ctrl->max_group = htole32(dev->exec.max_group);
	ctrl->page_shifts = htole32(dev->exec.page_shifts);
	ctrl->max_k = htole32(dev->exec.max_k);
	ctrl->doorbell_offset = htole64(dev->doorbell_offset);
	ctrl->doorbell_size = htole64(dev->doorbell_size);
	ctrl->queue_offset = htole64(dev->queue_offset);
	ctrl->queue_size = htole64(dev->queue_size);
	ctrl->kv_offset = htole64(dev->exec.kv_offset);
	ctrl->kv_size = htole64(dev->exec.kv_size);
	ctrl->dev_size = htole64(dev->opt.size);
	ctrl->version = htole32(PNM_HW_VERSION);
	pnm_ctrl_write64(&ctrl->magic, PNM_HW_MAGIC);
	pnm_set_status(dev, PNM_HW_STATUS_READY);
	return 0;
}

/* ---- process ----------------------------------------------------------- */

static void pnm_on_signal(int sig)
{
	(void)sig;
	pnm_stop = 1;
}

/* No SA_RESTART: a signal ends the current nanosleep at once. */
static int pnm_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pnm_on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL)) {
		pnm_log("failed to install signal handlers: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static void pnm_usage(FILE *out)
{
	fprintf(out,
		"usage: pnm-device --mem PATH [options]\n"
		"Run the CXL-PNM accelerator model on a shared memory file.\n"
		"\n"
		"  --mem PATH          backing file of device memory, created or resized\n"
		"  --size BYTES        device memory size, suffix K, M or G (default 512M)\n"
		"  --queues N          queue pairs, 1 to %u (default %u)\n"
		"  --depth N           entries per queue, a power of two, 2 to %u (default %u)\n"
		"  --poll-max-us N     longest idle sleep between polls, microseconds (default %u)\n"
		"  --bandwidth GBPS    modeled internal bandwidth, GB/s (default %.0f)\n"
		"  --compute TFLOPS    modeled compute rate, TFLOPS (default %.1f)\n"
		"  --overhead-ns N     modeled fixed cost per command, ns (default %u)\n"
		"  --units N           compute units (threads), 1 to %u (default: online CPUs)\n"
		"  --kernels NAME      kernel path: scalar, avx2, avx512 or auto (default\n"
		"                      $PNM_KERNELS, else auto: the best this CPU runs)\n"
		"  -v, --verbose       log state changes; twice: every command\n"
		"  -h, --help          show this help\n",
		PNM_MAX_QUEUES, PNM_DEFAULT_QUEUES, PNM_MAX_DEPTH,
		PNM_DEFAULT_DEPTH, PNM_DEFAULT_POLL_MAX_US,
		PNM_TIMING_BANDWIDTH_GBPS, PNM_TIMING_COMPUTE_TFLOPS,
		PNM_TIMING_OVERHEAD_NS, PNM_UNITS_MAX);
}

/* Parse a byte count with an optional K, M or G suffix (powers of 1024). */
static int pnm_parse_size(const char *arg, uint64_t *size)
{
	unsigned long long val;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	val = strtoull(arg, &end, 0);
	if (errno || end == arg || arg[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K':
		shift = 10;
		end++;
		break;
	case 'm': case 'M':
		shift = 20;
		end++;
		break;
	case 'g': case 'G':
		shift = 30;
		end++;
		break;
	}
	if (*end || val > UINT64_MAX >> shift)
		return -EINVAL;
	*size = (uint64_t)val << shift;
	return 0;
}

static int pnm_parse_uint(const char *arg, unsigned int min, unsigned int max,
			  unsigned int *out)
{
	unsigned long val;
	char *end;

	errno = 0;
	val = strtoul(arg, &end, 0);
	if (errno || end == arg || *end || arg[0] == '-' || val < min || val > max)
		return -EINVAL;
	*out = (unsigned int)val;
	return 0;
}

static int pnm_parse_rate(const char *arg, double *out)
{
	char *end;
	double val;

	errno = 0;
	val = strtod(arg, &end);
	if (errno || end == arg || *end || !(val > 0) || val > 1e9)
		return -EINVAL;
	*out = val;
	return 0;
}

enum {
	PNM_OPT_MEM = 0x100,
	PNM_OPT_SIZE,
	PNM_OPT_QUEUES,
	PNM_OPT_DEPTH,
	PNM_OPT_POLL_MAX_US,
	PNM_OPT_BANDWIDTH,
	PNM_OPT_COMPUTE,
	PNM_OPT_OVERHEAD_NS,
	PNM_OPT_UNITS,
	PNM_OPT_KERNELS,
};

static const struct option pnm_long_options[] = {
	{ "mem", required_argument, NULL, PNM_OPT_MEM },
	{ "size", required_argument, NULL, PNM_OPT_SIZE },
	{ "queues", required_argument, NULL, PNM_OPT_QUEUES },
	{ "depth", required_argument, NULL, PNM_OPT_DEPTH },
	{ "poll-max-us", required_argument, NULL, PNM_OPT_POLL_MAX_US },
	{ "bandwidth", required_argument, NULL, PNM_OPT_BANDWIDTH },
	{ "compute", required_argument, NULL, PNM_OPT_COMPUTE },
	{ "overhead-ns", required_argument, NULL, PNM_OPT_OVERHEAD_NS },
	{ "units", required_argument, NULL, PNM_OPT_UNITS },
	{ "kernels", required_argument, NULL, PNM_OPT_KERNELS },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int pnm_parse_option(struct pnm_options *opt, int c, const char *arg)
{
	unsigned int overhead;

	switch (c) {
	case PNM_OPT_MEM:
		opt->path = arg;
		return 0;
	case PNM_OPT_SIZE:
		if (pnm_parse_size(arg, &opt->size) || !opt->size ||
		    opt->size % PNM_HW_ALIGN) {
			pnm_log("invalid --size '%s': expected a multiple of 4096 bytes, suffix K, M or G",
				arg);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_QUEUES:
		if (pnm_parse_uint(arg, 1, PNM_MAX_QUEUES, &opt->nr_queues)) {
			pnm_log("invalid --queues '%s': expected 1 to %u", arg,
				PNM_MAX_QUEUES);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_DEPTH:
		if (pnm_parse_uint(arg, 2, PNM_MAX_DEPTH, &opt->depth) ||
		    (opt->depth & (opt->depth - 1))) {
			pnm_log("invalid --depth '%s': expected a power of two from 2 to %u",
				arg, PNM_MAX_DEPTH);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_POLL_MAX_US:
		if (pnm_parse_uint(arg, 1, 1000000, &opt->poll_max_us)) {
			pnm_log("invalid --poll-max-us '%s': expected 1 to 1000000", arg);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_BANDWIDTH:
		if (pnm_parse_rate(arg, &opt->timing.bandwidth_gbps)) {
			pnm_log("invalid --bandwidth '%s': expected a positive GB/s value", arg);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_COMPUTE:
		if (pnm_parse_rate(arg, &opt->timing.compute_tflops)) {
			pnm_log("invalid --compute '%s': expected a positive TFLOPS value", arg);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_OVERHEAD_NS:
		if (pnm_parse_uint(arg, 0, UINT_MAX, &overhead)) {
			pnm_log("invalid --overhead-ns '%s': expected a whole number of ns", arg);
			return -EINVAL;
		}
		opt->timing.overhead_ns = overhead;
		return 0;
	case PNM_OPT_UNITS:
		if (pnm_parse_uint(arg, 1, PNM_UNITS_MAX, &opt->units)) {
			pnm_log("invalid --units '%s': expected 1 to %u", arg, PNM_UNITS_MAX);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_KERNELS:
		opt->kernels = arg;
		return 0;
	case 'v':
		opt->verbose++;
		return 0;
	default:
		return -EINVAL;
	}
}

/* One unit per online CPU, within 1 .. PNM_UNITS_MAX. */
static unsigned int pnm_default_units(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > PNM_UNITS_MAX ? PNM_UNITS_MAX : (unsigned int)n;
}

/* Pick the kernel path: --kernels, else $PNM_KERNELS, else the best. */
static int pnm_choose_kernels(struct pnm_device *dev)
{
	const char *why = NULL;

	dev->exec.kernels = pnm_kernels_choose(dev->opt.kernels, &why);
	if (!dev->exec.kernels) {
		pnm_log("invalid kernel path '%s' (--kernels or PNM_KERNELS): %s",
			dev->opt.kernels ? dev->opt.kernels : getenv("PNM_KERNELS"), why);
		return -EINVAL;
	}
	return 0;
}

static int pnm_start_units(struct pnm_device *dev)
{
	dev->batch = calloc(1, sizeof(*dev->batch));
	dev->units = pnm_units_create(dev->opt.units);
	if (!dev->batch || !dev->units) {
		pnm_log("failed to start %u compute units: %s", dev->opt.units,
			strerror(errno));
		free(dev->batch);
		pnm_units_destroy(dev->units);
		return -ENOMEM;
	}
	dev->exec.units = dev->units;
	return 0;
}

static void pnm_stop_units(struct pnm_device *dev)
{
	pnm_units_destroy(dev->units);
	free(dev->batch);
}

/* Returns 0, 1 after --help, or a negative errno. */
static int pnm_parse_options(int argc, char **argv, struct pnm_options *opt)
{
	int c, ret;

	opt->size = PNM_DEFAULT_SIZE;
	opt->nr_queues = PNM_DEFAULT_QUEUES;
	opt->depth = PNM_DEFAULT_DEPTH;
	opt->poll_max_us = PNM_DEFAULT_POLL_MAX_US;
	opt->units = pnm_default_units();
	pnm_timing_init(&opt->timing);

	while ((c = getopt_long(argc, argv, "vh", pnm_long_options, NULL)) != -1) {
		if (c == 'h') {
			pnm_usage(stdout);
			return 1;
		}
		ret = pnm_parse_option(opt, c, optarg);
		if (ret) {
			pnm_usage(stderr);
			return ret;
		}
	}
	if (optind < argc) {
		pnm_log("unexpected argument '%s'", argv[optind]);
		pnm_usage(stderr);
		return -EINVAL;
	}
	if (!opt->path) {
		pnm_log("missing --mem PATH");
		pnm_usage(stderr);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct pnm_device dev = { .fd = -1 };
	int ret;

	ret = pnm_parse_options(argc, argv, &dev.opt);
	if (ret)
		return ret > 0 ? 0 : 2;
	if (pnm_choose_kernels(&dev))
		return 2;
	if (pnm_install_signals() || pnm_layout(&dev) || pnm_map(&dev))
		return 1;
	if (pnm_start_units(&dev)) {
		pnm_unmap(&dev);
		return 1;
	}
	/* Short sleeps should last what they ask for, not the 50 us default. */
	prctl(PR_SET_TIMERSLACK, 1000UL);

	ret = pnm_format(&dev);
	if (ret) {
		pnm_stop_units(&dev);
		pnm_unmap(&dev);
		return 1;
	}
	pnm_log("ready %s", dev.opt.path);
	pnm_dbg(&dev, 1, "%" PRIu64 " bytes, KV area at %#" PRIx64 ", %" PRIu64
		" bytes, %u units, %s kernels", dev.opt.size, dev.exec.kv_offset,
		dev.exec.kv_size, dev.opt.units, dev.exec.kernels->name);

	pnm_poll(&dev);

	/* The host sees a stopped device: not ready, not enabled. */
	pnm_set_status(&dev, 0);
	pnm_dbg(&dev, 1, "stopped after %" PRIu64 " commands", dev.cmds_completed);
	free(dev.queues);
	pnm_stop_units(&dev);
	pnm_unmap(&dev);
	return 0;
}
