/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * cxl_pnm internals: the state of one bound device, its hardware queues,
 * regions and open files.  Documentation/driver.rst gives the design.
 */
#ifndef PNM_PRIVATE_H
#define PNM_PRIVATE_H

#include <linux/cdev.h>
#include <linux/device.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/srcu.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <linux/xarray.h>
#include <linux/cxl_pnm.h>

#include "cxl_pnm_hw.h"

struct dev_dax;
struct gen_pool;
struct io_comp_batch;
struct io_uring_cmd;
struct task_struct;
struct dentry;

#define PNM_MAX_DEVICES		64
#define PNM_MAX_QUEUES		64	/* queue pairs the driver will use */
#define PNM_MAX_QUEUE_DEPTH	4096	/* entries per queue the driver accepts */
#define PNM_MAX_BATCH		256	/* commands in one CXL_PNM_IOC_SUBMIT */
#define PNM_DEFAULT_TIMEOUT_MS	10000	/* SUBMIT with timeout_ms == 0 */
#define PNM_CMD_NR_BUFS		4	/* pool, table, in, out */

/**
 * struct pnm_region - a range of the KV area owned by one open file
 * @ref: held by the file's handle table, by each mapping and by each
 *	command in flight (or abandoned after a timeout) that names it
 * @pnm: the device; the region holds a reference on @pnm->dev
 * @offset: bytes from the start of the KV area, page aligned; the mmap
 *	offset userspace passes
 * @size: bytes, a multiple of PAGE_SIZE
 *
 * The last reference returns the range to @pnm->pool.
 */
struct pnm_region {
	struct kref ref;
	struct pnm_dev *pnm;
	u64 offset;
	u64 size;
};

/**
 * struct pnm_request - a validated command, ready for a submission queue
 * @hw: the device command, DPAs resolved, little-endian
 * @regions: references on the regions @hw names (NULL where unused);
 *	ownership moves to the SQ slot when the command is submitted
 */
struct pnm_request {
	struct pnm_hw_cmd hw;
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
};

/**
 * struct pnm_batch - commands of one CXL_PNM_IOC_SUBMIT and their waiter
 * @reqs: the commands
 * @results: one result per command, written at completion
 * @nr: number of commands
 * @pending: commands not completed yet, submitted or not; under the queue
 *	lock
 * @error: 0, or the errno that failed the batch (-EIO dead device or
 *	queues reset after another command timed out, -ENODEV device
 *	removed); under the queue lock
 * @done: completed when @pending drops to zero or the batch fails
 */
struct pnm_batch {
	struct pnm_request *reqs;
	struct cxl_pnm_result *results;
	unsigned int nr;
	unsigned int pending;
	int error;
	struct completion done;
};

/* Stage of an io_uring command, struct pnm_uring_req.state. */
enum pnm_uring_state {
	PNM_URING_ISSUING,	/* validated, not on a queue yet */
	PNM_URING_PENDING,	/* in the queue's software list */
	PNM_URING_IN_SLOT,	/* in an SQ slot, owned by the device */
	PNM_URING_COMPLETING,	/* completion handed to task work */
	PNM_URING_CANCELLED,	/* cancelled while ISSUING */
};

/**
 * struct pnm_uring_req - one CXL_PNM_URING_CMD_SUBMIT in flight
 * @ioucmd: the io_uring command
 * @q: the queue it goes to, chosen at issue
 * @node: entry in @q->uring_pending while PENDING
 * @req: the validated command; its region references move to the SQ slot
 *	when the command enters one
 * @state: enum pnm_uring_state; under @q->lock
 * @res: 0 or -errno, the CQE's res, set before COMPLETING
 * @res2: the packed result (CXL_PNM_URING_RESULT()), the big CQE's first
 *	word
 */
struct pnm_uring_req {
	struct io_uring_cmd *ioucmd;
	struct pnm_queue *q;
	struct list_head node;
	struct pnm_request req;
	int state;
	int res;
	u64 res2;
};

/**
 * struct pnm_slot - host state of one submission queue slot
 * @busy: the device owns the slot: a command was written to it and its
 *	completion has not arrived yet
 * @batch: the batch waiting for this command, or NULL once the waiter gave
 *	up (timeout, fatal signal) or was failed; the slot then stays busy
 *	until the command's completion or a queue reset
 * @index: the command's index in @batch
 * @uring: the io_uring command waiting for this slot's completion, or NULL
 *	(a slot has a @batch or a @uring owner, never both)
 * @regions: region references held while the device may access them
 */
struct pnm_slot {
	bool busy;
	struct pnm_batch *batch;
	unsigned int index;
	struct pnm_uring_req *uring;
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
};

/**
 * struct pnm_queue - one hardware submission/completion queue pair
 * @pnm: the device
 * @qid: queue pair index
 * @lock: protects @sq_tail, @slots, @nr_busy, @nr_abandoned,
 *	@uring_pending, @nr_pending and the SQ ring itself; taken by
 *	submitters and by the completion consumer
 * @cq_lock: held by the one context that consumes the CQ: the poller
 *	thread or an io_uring IOPOLL reaper; both only try to take it
 * @sq: submission queue entries, in device memory
 * @cq: completion queue entries, in device memory
 * @db: this queue's doorbells, in device memory
 * @sq_tail: free-running index of the next SQ slot to fill
 * @cq_head: free-running index of the next CQ entry to read; changed
 *	under @cq_lock only
 * @phase: phase bit the next valid CQ entry carries; like @cq_head
 * @slots: host state per SQ slot, @pnm->queue_depth entries
 * @nr_busy: slots owned by the device
 * @nr_abandoned: busy slots whose waiter gave up
 * @slot_wait: submitters waiting for the slot at @sq_tail to be free
 * @uring_pending: io_uring commands waiting for a free SQ slot, oldest
 *	first; completions move them into the slots they free
 * @nr_pending: entries of @uring_pending
 */
struct pnm_queue {
	struct pnm_dev *pnm;
	unsigned int qid;
	spinlock_t lock;	/* SQ side and slots, see above */
	spinlock_t cq_lock;	/* CQ consumer, see above */
	struct pnm_hw_cmd *sq;
	struct pnm_hw_cqe *cq;
	struct pnm_hw_doorbell *db;
	u32 sq_tail;
	u32 cq_head;
	u16 phase;
	struct pnm_slot *slots;
	unsigned int nr_busy;
	unsigned int nr_abandoned;
	wait_queue_head_t slot_wait;
	struct list_head uring_pending;
	unsigned int nr_pending;
};

/* Device states, pnm_dev.state. */
enum pnm_state {
	PNM_STATE_LIVE,		/* accepting commands */
	PNM_STATE_DEAD,		/* heartbeat stalled or FATAL: commands fail */
	PNM_STATE_REMOVED,	/* unbound: every file operation fails */
};

/**
 * struct pnm_dev - one CXL-PNM device bound to the driver
 * @dev: the char device /dev/cxl/pnmN; its reference count is the lifetime
 *	of this structure, held by the binding, each open file and each region
 * @cdev: the char device
 * @dev_dax: the dax device bound to the driver
 * @id: N of pnmN
 * @base: host physical address of DPA 0
 * @range_size: bytes of the dax range
 * @ctrl: kernel mapping of the control block; with @doorbells and the queues
 *	it lies in one write-back mapping of DPA 0 up to @kv_offset
 * @doorbells: one doorbell pair per hardware queue
 * @hw_version: interface version the device reports
 * @nr_queues: queue pairs in use
 * @queue_depth: entries per queue, a power of two
 * @dtypes: capability bitmaps and limits from the control block
 * @max_head_dim: see struct pnm_hw_ctrl
 * @max_group: see struct pnm_hw_ctrl
 * @page_shifts: see struct pnm_hw_ctrl
 * @max_k: see struct pnm_hw_ctrl
 * @hw_nr_queues: queue pairs the device has; the queue area layout uses it
 * @doorbell_offset: DPA of the doorbell area
 * @queue_offset: DPA of the queue area
 * @kv_offset: DPA of the KV area
 * @kv_size: bytes of the KV area
 * @pool: allocator of the KV area, in DPAs
 * @queues: @nr_queues queue pairs
 * @state: enum pnm_state; changed under every queue lock, read with
 *	READ_ONCE elsewhere
 * @srcu: file operations run inside an SRCU read section so that remove can
 *	wait for them to leave
 * @files_lock: protects @files
 * @files: open files, to zap their mappings on remove
 * @poller: completion polling thread
 * @poll_wait: the poller sleeps here while nothing is outstanding
 * @outstanding: busy SQ slots over all queues
 * @heartbeat: last heartbeat value the poller saw
 * @heartbeat_stamp: jiffies when @heartbeat last changed
 * @health_next: jiffies of the poller's next status and heartbeat check
 * @recovering: the poller is resetting the queues after a timeout: no
 *	command enters a slot and no CQ is consumed; written under every
 *	queue's cq_lock and lock
 * @recover_requested: recoveries asked for by timed-out submitters
 * @recover_done: value of @recover_requested that the last recovery served
 * @recover_wait: timed-out submitters wait here for the recovery
 * @submitted: commands written to a submission queue
 * @completed: completions received
 * @failed: completions with a non-zero device status
 * @timed_out: commands whose waiter gave up before their completion
 * @resets: queue resets after a timeout that brought the device back
 * @debugfs: this device's debugfs folder
 */
struct pnm_dev {
	struct device dev;
	struct cdev cdev;
	struct dev_dax *dev_dax;
	int id;
	phys_addr_t base;
	u64 range_size;
	struct pnm_hw_ctrl *ctrl;
	struct pnm_hw_doorbell *doorbells;

	u32 hw_version;
	u32 nr_queues;
	u32 queue_depth;
	u32 dtypes;
	u32 max_head_dim;
	u32 max_group;
	u32 page_shifts;
	u32 max_k;
	u32 hw_nr_queues;
	u64 doorbell_offset;
	u64 queue_offset;
	u64 kv_offset;
	u64 kv_size;

	struct gen_pool *pool;
	struct pnm_queue *queues;

	int state;
	struct srcu_struct srcu;
	struct mutex files_lock;	/* protects files */
	struct list_head files;

	struct task_struct *poller;
	wait_queue_head_t poll_wait;
	atomic_t outstanding;
	u64 heartbeat;
	unsigned long heartbeat_stamp;
	unsigned long health_next;
	bool recovering;
	atomic_t recover_requested;
	atomic_t recover_done;
	wait_queue_head_t recover_wait;

	atomic64_t submitted;
	atomic64_t completed;
	atomic64_t failed;
	atomic64_t timed_out;
	atomic64_t resets;

	struct dentry *debugfs;
};

/**
 * struct pnm_file - state of one open file of /dev/cxl/pnmN
 * @pnm: the device; the file holds a reference on @pnm->dev
 * @file: the open file, whose mapping remove zaps
 * @regions: handle table, handles >= 1, values struct pnm_region *
 * @node: entry in @pnm->files
 */
struct pnm_file {
	struct pnm_dev *pnm;
	struct file *file;
	struct xarray regions;
	struct list_head node;
};

static inline struct pnm_dev *to_pnm_dev(struct device *dev)
{
	return container_of(dev, struct pnm_dev, dev);
}

static inline struct device *pnm_parent(struct pnm_dev *pnm)
{
	return pnm->dev.parent;
}

/* hw.c */
int pnm_hw_map(struct pnm_dev *pnm);
int pnm_hw_enable(struct pnm_dev *pnm);
int pnm_hw_reset(struct pnm_dev *pnm);
u32 pnm_hw_status(struct pnm_dev *pnm);
u64 pnm_hw_heartbeat(struct pnm_dev *pnm);

/* queue.c */
int pnm_queues_init(struct pnm_dev *pnm);
void pnm_queues_free(struct pnm_dev *pnm);
int pnm_poller_start(struct pnm_dev *pnm);
void pnm_poller_stop(struct pnm_dev *pnm);
void pnm_set_state(struct pnm_dev *pnm, enum pnm_state state);
void pnm_queues_release(struct pnm_dev *pnm);
int pnm_batch_execute(struct pnm_dev *pnm, struct pnm_batch *batch,
		      unsigned int timeout_ms);
struct pnm_queue *pnm_pick_queue(struct pnm_dev *pnm);
int pnm_queue_add_uring(struct pnm_queue *q, struct pnm_uring_req *ur);
bool pnm_queue_cancel_uring(struct pnm_queue *q, struct pnm_uring_req *ur);
unsigned int pnm_queue_iopoll(struct pnm_queue *q);

/* uring.c */
int pnm_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags);
int pnm_uring_cmd_iopoll(struct io_uring_cmd *ioucmd,
			 struct io_comp_batch *iob, unsigned int poll_flags);
void pnm_uring_finish(struct pnm_uring_req *ur, int res, u64 res2);

/* cmd.c */
int pnm_cmd_prepare(struct pnm_file *pf, const struct cxl_pnm_cmd *cmd,
		    struct pnm_request *req);
void pnm_request_release(struct pnm_request *req);

/* region.c */
int pnm_pool_init(struct pnm_dev *pnm);
void pnm_pool_destroy(struct pnm_dev *pnm);
u64 pnm_pool_free_bytes(struct pnm_dev *pnm);
struct pnm_region *pnm_region_alloc(struct pnm_dev *pnm, u64 size);
void pnm_region_put(struct pnm_region *region);
struct pnm_region *pnm_file_region_get(struct pnm_file *pf, u32 handle);
int pnm_region_mmap(struct pnm_file *pf, struct vm_area_struct *vma);

/* file.c */
int pnm_cdev_add(struct pnm_dev *pnm);
void pnm_cdev_del(struct pnm_dev *pnm);
void pnm_files_zap_mappings(struct pnm_dev *pnm);

/* sysfs.c */
extern const struct attribute_group *pnm_attr_groups[];
void pnm_debugfs_init(struct pnm_dev *pnm, struct dentry *root);
void pnm_debugfs_exit(struct pnm_dev *pnm);

/* Bytes of one submission or completion queue: entries rounded to 4 KiB. */
static inline u64 pnm_hw_sq_bytes(u32 depth)
{
	return round_up((u64)depth * sizeof(struct pnm_hw_cmd), PNM_HW_ALIGN);
}

static inline u64 pnm_hw_cq_bytes(u32 depth)
{
	return round_up((u64)depth * sizeof(struct pnm_hw_cqe), PNM_HW_ALIGN);
}

static inline u64 pnm_region_dpa(const struct pnm_region *region)
{
	return region->pnm->kv_offset + region->offset;
}

#endif /* PNM_PRIVATE_H */
