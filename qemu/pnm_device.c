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
#include <sys/statvfs.h>
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

/*
 * Largest device memory.  A CXL Type-3 expander of today holds up to a
 * few hundred GiB; the limit keeps a typo such as 16777216G from creating a
 * 16 PiB sparse file that the mapping then fails on.
 */
#define PNM_MAX_SIZE		(1ULL << 40)
#define PNM_MAX_SIZE_NAME	"1024G"

/* How often the poll loop looks at the run-time fault file, ns. */
#define PNM_FAULT_FILE_PERIOD_NS	(100 * 1000000ULL)
#define PNM_FAULT_MAX_DELAY_MS		3600000U
/* Exit status of a device stopped by --fault=exit, as if it died. */
#define PNM_FAULT_EXIT_STATUS		3

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

/*
 * Faults the device model can play (Documentation/device-model.rst,
 * "Fault injection"), for testing how hosts cope with a failing device.
 */
enum pnm_fault_kind {
	PNM_FAULT_NONE,
	PNM_FAULT_HANG,			/* stop serving queues, keep beating */
	PNM_FAULT_SLOW,			/* delay each completion */
	PNM_FAULT_EXIT,			/* die: no heartbeat, process gone */
	PNM_FAULT_CORRUPT_CID,		/* one completion names a wrong slot */
	PNM_FAULT_CORRUPT_PHASE,	/* one completion has the wrong phase */
	PNM_FAULT_NO_HEARTBEAT,		/* serve commands, stop the heartbeat */
	PNM_FAULT_COUNT
};

static const char *const pnm_fault_names[PNM_FAULT_COUNT] = {
	[PNM_FAULT_NONE] = "none",
	[PNM_FAULT_HANG] = "hang",
	[PNM_FAULT_SLOW] = "slow",
	[PNM_FAULT_EXIT] = "exit",
	[PNM_FAULT_CORRUPT_CID] = "corrupt-cid",
	[PNM_FAULT_CORRUPT_PHASE] = "corrupt-phase",
	[PNM_FAULT_NO_HEARTBEAT] = "no-heartbeat",
};

/**
 * struct pnm_fault - an injected fault
 * @kind: what goes wrong
 * @delay_ms: PNM_FAULT_SLOW: milliseconds added to each command
 * @after: commands completed normally before the fault acts
 * @seen: commands completed since the fault was set
 * @spent: a one-shot corruption has been written
 */
struct pnm_fault {
	enum pnm_fault_kind kind;
	unsigned int delay_ms;
	uint64_t after;
	uint64_t seen;
	bool spent;
};

struct pnm_options {
	const char *path;
	uint64_t size;
	bool force;
	struct pnm_fault fault;
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
 * @fd: backing file, locked (byte 0, an OFD write lock) while we run
 * @created: the file did not exist: remove it if start-up fails
 * @resized: we changed the size of an existing file
 * @old_size: its size before
 * @mapped: @mem is mapped
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
 * @fault: the fault in effect
 * @fault_path: the run-time fault file, PATH.fault
 * @fault_stamp: change time and size of the fault file when last read
 * @fault_checked_ns: when the poll loop last looked at the fault file
 * @batch_limit: most commands the next batch may take
 */
struct pnm_device {
	struct pnm_options opt;
	int fd;
	bool created;
	bool resized;
	bool mapped;
	uint64_t old_size;
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

	struct pnm_fault fault;
	char *fault_path;
	struct timespec fault_stamp;
	off_t fault_size;
	uint64_t fault_checked_ns;
	unsigned int batch_limit;
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

/* ---- fault injection --------------------------------------------------- */

#define PNM_FAULT_SYNTAX \
	"expected hang, slow:MS, exit, corrupt-cid, corrupt-phase, no-heartbeat " \
	"or none, each optionally followed by :N (act after N commands)"

/* Whether fault @kind is set and the commands it waits for have passed. */
static bool pnm_fault_acts(const struct pnm_device *dev,
			   enum pnm_fault_kind kind)
{
	return dev->fault.kind == kind && dev->fault.seen >= dev->fault.after;
}

static void pnm_fault_set(struct pnm_device *dev, const struct pnm_fault *f,
			  const char *source)
{
	dev->fault = *f;
	dev->fault.seen = 0;
	dev->fault.spent = false;
	if (f->kind == PNM_FAULT_NONE) {
		pnm_log("%s: fault cleared by %s", dev->opt.path, source);
		return;
	}
	if (f->kind == PNM_FAULT_SLOW)
		pnm_log("%s: fault slow, %u ms per command, set by %s, acts after %" PRIu64
			" more commands", dev->opt.path, f->delay_ms, source, f->after);
	else
		pnm_log("%s: fault %s set by %s, acts after %" PRIu64 " more commands",
			dev->opt.path, pnm_fault_names[f->kind], source, f->after);
}

/*
 * A fault acts after exactly its number of commands, so a batch never
 * runs past that point.
 */
static unsigned int pnm_fault_batch_limit(const struct pnm_device *dev)
{
	const struct pnm_fault *f = &dev->fault;

	if (f->kind != PNM_FAULT_NONE && f->seen < f->after &&
	    f->after - f->seen < PNM_BATCH_MAX)
		return (unsigned int)(f->after - f->seen);
	return PNM_BATCH_MAX;
}

/* The corruption of the next completion, if one is due; it fires once. */
static enum pnm_fault_kind pnm_fault_take_corruption(struct pnm_device *dev)
{
	struct pnm_fault *f = &dev->fault;

	if ((f->kind != PNM_FAULT_CORRUPT_CID &&
	     f->kind != PNM_FAULT_CORRUPT_PHASE) || f->spent || f->seen < f->after)
		return PNM_FAULT_NONE;
	f->spent = true;
	return f->kind;
}

/* The device dies: no more heartbeat, status and queues left as they are. */
static void pnm_fault_exit(struct pnm_device *dev)
{
	pnm_log("%s: fault exit: dying after %" PRIu64 " commands (exit status %d)",
		dev->opt.path, dev->cmds_completed, PNM_FAULT_EXIT_STATUS);
	_exit(PNM_FAULT_EXIT_STATUS);
}

/* Parse a decimal number: digits only, no sign, space or base prefix. */
static int pnm_parse_decimal(const char *arg, const char **end, uint64_t *out)
{
	const char *p = arg;
	uint64_t val = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int digit = *p - '0';

		if (val > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		val = val * 10 + digit;
	}
	*end = p;
	*out = val;
	return 0;
}

/*
 * Parse a fault, KIND[:MS][:N]: MS only (and required) for slow, N the
 * commands completed before it acts, default 0.
 */
static int pnm_parse_fault(const char *arg, struct pnm_fault *f)
{
	size_t len = strcspn(arg, ":");
	const char *p = arg[len] ? arg + len + 1 : NULL;
	uint64_t ms;
	unsigned int k;

	memset(f, 0, sizeof(*f));
	for (k = 0; k < PNM_FAULT_COUNT; k++)
		if (strlen(pnm_fault_names[k]) == len &&
		    !strncmp(arg, pnm_fault_names[k], len))
			break;
	if (k == PNM_FAULT_COUNT)
		return -EINVAL;
	f->kind = k;
	if (k == PNM_FAULT_SLOW) {
		if (!p || pnm_parse_decimal(p, &p, &ms) || !ms ||
		    ms > PNM_FAULT_MAX_DELAY_MS || (*p && *p != ':'))
			return -EINVAL;
		f->delay_ms = (unsigned int)ms;
		p = *p ? p + 1 : NULL;
	}
	if (p && (k == PNM_FAULT_NONE || pnm_parse_decimal(p, &p, &f->after) || *p))
		return -EINVAL;
	return 0;
}

/*
 * The run-time fault file, PATH.fault: each time it changes, its first
 * word replaces the fault in effect (a --fault value, or none).  Looked at
 * every PNM_FAULT_FILE_PERIOD_NS, so an idle device makes no more system
 * calls than before.
 */
static void pnm_fault_poll_file(struct pnm_device *dev)
{
	uint64_t now = pnm_now_ns();
	struct pnm_fault f;
	struct stat st;
	char buf[64];
	ssize_t n;
	int fd;

	if (now - dev->fault_checked_ns < PNM_FAULT_FILE_PERIOD_NS)
		return;
	dev->fault_checked_ns = now;
	if (stat(dev->fault_path, &st) ||
	    (st.st_mtim.tv_sec == dev->fault_stamp.tv_sec &&
	     st.st_mtim.tv_nsec == dev->fault_stamp.tv_nsec &&
	     st.st_size == dev->fault_size))
		return;
	dev->fault_stamp = st.st_mtim;
	dev->fault_size = st.st_size;
	fd = open(dev->fault_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return;
	buf[n] = '\0';
	buf[strcspn(buf, " \t\r\n")] = '\0';
	if (pnm_parse_fault(buf, &f)) {
		pnm_log("%s: ignoring invalid fault '%s': %s", dev->fault_path, buf,
			PNM_FAULT_SYNTAX);
		return;
	}
	pnm_fault_set(dev, &f, dev->fault_path);
}

static void pnm_beat(struct pnm_device *dev)
{
	if (pnm_fault_acts(dev, PNM_FAULT_NO_HEARTBEAT))
		return;
	pnm_ctrl_write64(&dev->ctrl->heartbeat, ++dev->heartbeat);
}

/*
 * --fault=slow: hold a completion back.  A slow device is alive, so the
 * heartbeat keeps going meanwhile.
 */
static void pnm_fault_delay(struct pnm_device *dev)
{
	const struct timespec tick = { .tv_nsec = 1000000 };
	uint64_t end;

	if (!pnm_fault_acts(dev, PNM_FAULT_SLOW))
		return;
	end = pnm_now_ns() + dev->fault.delay_ms * 1000000ULL;
	while (!pnm_stop && pnm_now_ns() < end) {
		pnm_beat(dev);
		nanosleep(&tick, NULL);
	}
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

/*
 * Write the completion body, then its flags with the phase (release).
 * @corrupt is a fault to play: the next SQ slot instead of the command's,
 * or the phase the host does not expect.
 */
static void pnm_post_completion(struct pnm_device *dev, struct pnm_queue *q,
				const struct pnm_batch_cmd *bc, uint64_t device_ns,
				enum pnm_fault_kind corrupt)
{
	struct pnm_hw_cqe *cqe = &q->cq[q->cq_tail & (dev->opt.depth - 1)];
	uint32_t slot = bc->slot;
	uint16_t phase = q->phase;

	if (corrupt == PNM_FAULT_CORRUPT_CID)
		slot = (slot + 1) & (dev->opt.depth - 1);
	if (corrupt == PNM_FAULT_CORRUPT_PHASE)
		phase ^= PNM_CQE_PHASE;
	if (corrupt != PNM_FAULT_NONE)
		pnm_log("%s: fault %s: completion of queue %u slot %u written with slot %u, phase %u",
			dev->opt.path, pnm_fault_names[corrupt], bc->qid, bc->slot,
			slot, phase);
	cqe->slot = htole16(slot);
	cqe->sq_head = htole16(bc->sq_head & (dev->opt.depth - 1));
	cqe->status = htole16(bc->res.status);
	cqe->result = htole32(bc->res.result);
	cqe->rsvd = 0;
	cqe->device_ns = htole64(device_ns);
	cqe->bytes_read = htole64(bc->res.bytes_read);
	__atomic_store_n(&cqe->flags, htole16(phase), __ATOMIC_RELEASE);

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
	       unread + fetched < depth && b->n < dev->batch_limit) {
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
		pnm_fault_delay(dev);
		pnm_account(dev, &bc->res, device_ns);
		pnm_post_completion(dev, &dev->queues[bc->qid], bc, device_ns,
				    pnm_fault_take_corruption(dev));
		dev->fault.seen++;
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
	dev->batch_limit = pnm_fault_batch_limit(dev);
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
		pnm_fault_poll_file(dev);
		if (pnm_fault_acts(dev, PNM_FAULT_EXIT))
			pnm_fault_exit(dev);
		busy = pnm_handle_control(dev);
		/* A hung device still beats and answers the control word. */
		if (pnm_enabled(dev) && !pnm_fault_acts(dev, PNM_FAULT_HANG))
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

/*
 * Open the backing file, creating it if it does not exist.  O_NONBLOCK
 * keeps a FIFO from blocking the open; it is refused right after.
 */
static int pnm_open_backing(struct pnm_device *dev)
{
	const int flags = O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	const char *path = dev->opt.path;
	int err;

	dev->fd = open(path, flags | O_CREAT | O_EXCL, 0600);
	if (dev->fd >= 0) {
		dev->created = true;
		return 0;
	}
	if (errno == EEXIST)
		dev->fd = open(path, flags);
	if (dev->fd < 0) {
		err = errno;
		pnm_log("%s: failed to open: %s", path, strerror(err));
		return -err;
	}
	return 0;
}

/*
 * One device model per file: a second one would resize the file under
 * the first one's mapping and clear its status on exit.  An OFD lock on
 * byte 0 lasts as long as the open file; byte 1 belongs to the runtime's
 * direct transport.  OFD locks report no owner, so the pid is known only
 * when another program holds a classic POSIX lock there.
 */
static int pnm_lock_backing(struct pnm_device *dev)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = 0, .l_len = 1 };
	int err;

	if (!fcntl(dev->fd, F_OFD_SETLK, &fl))
		return 0;
	err = errno;
	if (err != EAGAIN && err != EACCES) {
		pnm_log("%s: failed to lock: %s", dev->opt.path, strerror(err));
		return -err;
	}
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET,
			     .l_start = 0, .l_len = 1 };
	if (!fcntl(dev->fd, F_OFD_GETLK, &fl) && fl.l_type != F_UNLCK && fl.l_pid > 0)
		pnm_log("%s: in use by another pnm-device (pid %d)", dev->opt.path,
			(int)fl.l_pid);
	else
		pnm_log("%s: in use by another pnm-device", dev->opt.path);
	return -EBUSY;
}

/*
 * Refuse to overwrite what is not ours: an existing non-empty file must
 * hold CXL-PNM device memory (the magic at DPA 0), unless --force.
 */
static int pnm_check_backing(struct pnm_device *dev, const struct stat *st)
{
	__le64 magic = 0;

	if (!S_ISREG(st->st_mode)) {
		pnm_log("%s: not a regular file; --mem needs a file, e.g. under /dev/shm",
			dev->opt.path);
		return -EINVAL;
	}
	if (dev->created || !st->st_size || dev->opt.force)
		return 0;
	if (pread(dev->fd, &magic, sizeof(magic), 0) == sizeof(magic) &&
	    le64toh(magic) == PNM_HW_MAGIC)
		return 0;
	pnm_log("%s: exists and does not hold CXL-PNM device memory (no magic at its start); remove it, choose another --mem file, or pass --force to overwrite it",
		dev->opt.path);
	return -EEXIST;
}

/*
 * A sparse file takes memory only as it is touched; warn when the whole
 * device memory would not fit, since QEMU and the device then die of
 * SIGBUS once it fills up.
 */
static void pnm_check_space(struct pnm_device *dev, const struct stat *st)
{
	uint64_t used = (uint64_t)st->st_blocks * 512, avail;
	struct statvfs vfs;

	if (fstatvfs(dev->fd, &vfs))
		return;
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize + used;
	if (dev->opt.size > avail)
		pnm_log("%s: warning: %" PRIu64 " bytes of device memory, but its file system has %"
			PRIu64 " bytes free; filling it will fail", dev->opt.path,
			dev->opt.size, avail);
}

/* Create or resize the backing file and map it shared. */
static int pnm_map(struct pnm_device *dev)
{
	const struct pnm_options *opt = &dev->opt;
	struct stat st;
	int err;

	err = pnm_open_backing(dev);
	if (err)
		return err;
	err = pnm_lock_backing(dev);
	if (err) {
		/* Not ours to remove: the lock holder may have created it. */
		dev->created = false;
		return err;
	}
	if (fstat(dev->fd, &st)) {
		err = -errno;
		pnm_log("%s: failed to stat: %s", opt->path, strerror(-err));
		return err;
	}
	err = pnm_check_backing(dev, &st);
	if (err)
		return err;
	pnm_check_space(dev, &st);
	dev->old_size = st.st_size;
	if ((uint64_t)st.st_size != opt->size) {
		if (ftruncate(dev->fd, (off_t)opt->size)) {
			err = -errno;
			pnm_log("%s: failed to resize to %" PRIu64 " bytes: %s",
				opt->path, opt->size, strerror(-err));
			return err;
		}
		dev->resized = true;
	}
	dev->mem = mmap(NULL, opt->size, PROT_READ | PROT_WRITE, MAP_SHARED,
			dev->fd, 0);
	if (dev->mem == MAP_FAILED) {
		err = -errno;
		pnm_log("%s: failed to map %" PRIu64 " bytes: %s", opt->path,
			opt->size, strerror(-err));
		return err;
	}
	dev->mapped = true;
	dev->ctrl = (struct pnm_hw_ctrl *)dev->mem;
	dev->exec.mem = dev->mem;
	return 0;
}

/*
 * Unmap and close the backing file.  After a failed start, leave nothing
 * behind: remove a file we created, restore the size of one we resized.
 */
static void pnm_unmap(struct pnm_device *dev, bool failed)
{
	if (dev->mapped)
		munmap(dev->mem, dev->opt.size);
	dev->mapped = false;
	if (dev->fd < 0)
		return;
	if (failed && dev->created)
		unlink(dev->opt.path);
	else if (failed && dev->resized)
		(void)!ftruncate(dev->fd, (off_t)dev->old_size);
	close(dev->fd);
	dev->fd = -1;
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
		"  --size BYTES        device memory size, suffix K, M or G, up to %s\n"
		"                      (default 512M)\n"
		"  --force             overwrite an existing file that is not device memory\n"
		"  --queues N          queue pairs, 1 to %u (default %u)\n"
		"  --depth N           entries per queue, a power of two, 2 to %u (default %u)\n"
		"  --poll-max-us N     longest idle sleep between polls, microseconds (default %u)\n"
		"  --bandwidth GBPS    modeled internal bandwidth, GB/s (default %.0f)\n"
		"  --compute TFLOPS    modeled compute rate, TFLOPS (default %.1f)\n"
		"  --overhead-ns N     modeled fixed cost per command, ns (default %u)\n"
		"  --units N           compute units (threads), 1 to %u (default: online CPUs)\n"
		"  --kernels NAME      kernel path: scalar, avx2, avx512 or auto (default\n"
		"                      $PNM_KERNELS, else auto: the best this CPU runs)\n"
		"  --fault FAULT       inject a fault: hang, slow:MS, exit, corrupt-cid,\n"
		"                      corrupt-phase or no-heartbeat, each optionally :N\n"
		"                      (after N commands); also at run time via PATH.fault\n"
		"  -v, --verbose       log state changes; twice: every command\n"
		"  -h, --help          show this help\n"
		"Numbers are decimal.\n",
		PNM_MAX_SIZE_NAME, PNM_MAX_QUEUES, PNM_DEFAULT_QUEUES, PNM_MAX_DEPTH,
		PNM_DEFAULT_DEPTH, PNM_DEFAULT_POLL_MAX_US,
		PNM_TIMING_BANDWIDTH_GBPS, PNM_TIMING_COMPUTE_TFLOPS,
		PNM_TIMING_OVERHEAD_NS, PNM_UNITS_MAX);
}

/*
 * Parse a decimal byte count with an optional K, M or G suffix (powers of
 * 1024).  Returns -ERANGE for a value that does not fit in 64 bits.
 */
static int pnm_parse_size(const char *arg, uint64_t *size)
{
	unsigned int shift = 0;
	const char *end;
	uint64_t val;
	int ret;

	ret = pnm_parse_decimal(arg, &end, &val);
	if (ret)
		return ret;
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
	if (*end)
		return -EINVAL;
	if (val > UINT64_MAX >> shift)
		return -ERANGE;
	*size = val << shift;
	return 0;
}

static int pnm_parse_uint(const char *arg, unsigned int min, unsigned int max,
			  unsigned int *out)
{
	const char *end;
	uint64_t val;

	if (pnm_parse_decimal(arg, &end, &val) || *end || val < min || val > max)
		return -EINVAL;
	*out = (unsigned int)val;
	return 0;
}

/* A positive decimal number with an optional fraction: 1100, 0.5, .5. */
static int pnm_parse_rate(const char *arg, double *out)
{
	static const char digits[] = "0123456789";
	size_t whole = strspn(arg, digits), frac = 0;
	const char *p = arg + whole;
	double val;

	if (*p == '.') {
		frac = strspn(p + 1, digits);
		p += 1 + frac;
	}
	if (*p || (!whole && !frac))
		return -EINVAL;
	val = strtod(arg, NULL);
	if (!(val > 0) || val > 1e9)
		return -EINVAL;
	*out = val;
	return 0;
}

enum {
	PNM_OPT_MEM = 0x100,
	PNM_OPT_SIZE,
	PNM_OPT_FORCE,
	PNM_OPT_QUEUES,
	PNM_OPT_DEPTH,
	PNM_OPT_POLL_MAX_US,
	PNM_OPT_BANDWIDTH,
	PNM_OPT_COMPUTE,
	PNM_OPT_OVERHEAD_NS,
	PNM_OPT_UNITS,
	PNM_OPT_KERNELS,
	PNM_OPT_FAULT,
};

static const struct option pnm_long_options[] = {
	{ "mem", required_argument, NULL, PNM_OPT_MEM },
	{ "size", required_argument, NULL, PNM_OPT_SIZE },
	{ "force", no_argument, NULL, PNM_OPT_FORCE },
	{ "queues", required_argument, NULL, PNM_OPT_QUEUES },
	{ "depth", required_argument, NULL, PNM_OPT_DEPTH },
	{ "poll-max-us", required_argument, NULL, PNM_OPT_POLL_MAX_US },
	{ "bandwidth", required_argument, NULL, PNM_OPT_BANDWIDTH },
	{ "compute", required_argument, NULL, PNM_OPT_COMPUTE },
	{ "overhead-ns", required_argument, NULL, PNM_OPT_OVERHEAD_NS },
	{ "units", required_argument, NULL, PNM_OPT_UNITS },
	{ "kernels", required_argument, NULL, PNM_OPT_KERNELS },
	{ "fault", required_argument, NULL, PNM_OPT_FAULT },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int pnm_parse_size_option(const char *arg, uint64_t *size)
{
	int ret = pnm_parse_size(arg, size);

	if (ret == -ERANGE || (!ret && *size > PNM_MAX_SIZE)) {
		pnm_log("invalid --size '%s': above the largest device memory, %s",
			arg, PNM_MAX_SIZE_NAME);
		return -EINVAL;
	}
	if (ret || !*size || *size % PNM_HW_ALIGN) {
		pnm_log("invalid --size '%s': expected a decimal multiple of 4096 bytes, suffix K, M or G",
			arg);
		return -EINVAL;
	}
	return 0;
}

static int pnm_parse_option(struct pnm_options *opt, int c, const char *arg)
{
	unsigned int overhead;

	switch (c) {
	case PNM_OPT_MEM:
		if (!*arg) {
			pnm_log("invalid --mem '': expected the path of the backing file");
			return -EINVAL;
		}
		opt->path = arg;
		return 0;
	case PNM_OPT_SIZE:
		return pnm_parse_size_option(arg, &opt->size);
	case PNM_OPT_FORCE:
		opt->force = true;
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
			pnm_log("invalid --bandwidth '%s': expected a positive decimal GB/s value",
				arg);
			return -EINVAL;
		}
		return 0;
	case PNM_OPT_COMPUTE:
		if (pnm_parse_rate(arg, &opt->timing.compute_tflops)) {
			pnm_log("invalid --compute '%s': expected a positive decimal TFLOPS value",
				arg);
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
	case PNM_OPT_FAULT:
		if (pnm_parse_fault(arg, &opt->fault)) {
			pnm_log("invalid --fault '%s': %s", arg, PNM_FAULT_SYNTAX);
			return -EINVAL;
		}
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

/* getopt's own messages would name the binary by its full path. */
static void pnm_option_error(int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		pnm_log("option '%s' needs a value", arg);
	else if (optopt >= 0x100)
		pnm_log("option '%s' takes no value", arg);
	else if (optopt)
		pnm_log("unknown option '-%c'", optopt);
	else
		pnm_log("unknown option '%s'", arg);
}

/* Returns 0, 1 after --help, or a negative errno. */
static int pnm_parse_options(int argc, char **argv, struct pnm_options *opt)
{
	int c, ret = 0;

	opt->size = PNM_DEFAULT_SIZE;
	opt->nr_queues = PNM_DEFAULT_QUEUES;
	opt->depth = PNM_DEFAULT_DEPTH;
	opt->poll_max_us = PNM_DEFAULT_POLL_MAX_US;
	opt->units = pnm_default_units();
	pnm_timing_init(&opt->timing);

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":vh", pnm_long_options, NULL)) != -1) {
		if (c == 'h') {
			pnm_usage(stdout);
			return 1;
		}
		if (c == '?' || c == ':') {
			pnm_option_error(c, argv);
			ret = -EINVAL;
		} else {
			ret = pnm_parse_option(opt, c, optarg);
		}
		if (ret)
			break;
	}
	if (!ret && optind < argc) {
		pnm_log("unexpected argument '%s'", argv[optind]);
		ret = -EINVAL;
	}
	if (!ret && !opt->path) {
		pnm_log("missing --mem PATH");
		ret = -EINVAL;
	}
	if (ret)
		fprintf(stderr, "try 'pnm-device --help'\n");
	return ret;
}

/* Start-up failed after the backing file was opened. */
static int pnm_fail(struct pnm_device *dev)
{
	pnm_unmap(dev, true);
	free(dev->fault_path);
	return 1;
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
	if (asprintf(&dev.fault_path, "%s.fault", dev.opt.path) < 0) {
		pnm_log("out of memory");
		return 1;
	}
	if (pnm_install_signals() || pnm_layout(&dev) || pnm_map(&dev))
		return pnm_fail(&dev);
	if (pnm_start_units(&dev))
		return pnm_fail(&dev);
	/* Short sleeps should last what they ask for, not the 50 us default. */
	prctl(PR_SET_TIMERSLACK, 1000UL);

	ret = pnm_format(&dev);
	if (ret) {
		pnm_stop_units(&dev);
		return pnm_fail(&dev);
	}
	if (dev.opt.fault.kind != PNM_FAULT_NONE)
		pnm_fault_set(&dev, &dev.opt.fault, "--fault");
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
	pnm_unmap(&dev, false);
	free(dev.fault_path);
	return 0;
}
