// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hardware queues of a CXL-PNM device: command submission, the completion
 * poller, heartbeat monitoring, queue reset after a timeout and failing work
 * on a dead or removed device.
 *
 * The device raises no interrupts.  One kernel thread per device polls every
 * completion queue while any command is outstanding and sleeps otherwise.
 * An io_uring IOPOLL reaper may consume a queue's completions too.
 *
 * A slot's owner is a waiting SUBMIT batch or an io_uring command (uring.c).
 * io_uring commands that find the queue full wait in a software list and
 * enter the slots that completions free, in arrival order.
 */
#include <linux/delay.h>
#include <linux/iopoll.h>
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include "pnm_private.h"

/*
 * Poller back-off: after a completion the poller checks again at once for
 * PNM_POLL_SPINS rounds (yielding the CPU between rounds), then sleeps
 * PNM_POLL_MIN_US, doubling up to PNM_POLL_MAX_US while nothing completes.
 * A NOP round trip through QEMU and the device model takes about 80 us, so
 * the spin phase catches short commands and the sleep phase keeps a long
 * command from costing a CPU.
 */
#define PNM_POLL_SPINS		32
#define PNM_POLL_MIN_US		10
#define PNM_POLL_MAX_US		1000

/* A heartbeat unchanged this long, with commands outstanding, is a hang. */
#define PNM_HEARTBEAT_TIMEOUT_MS	2000
/* How often the poller reads status and heartbeat while it polls. */
#define PNM_HEALTH_PERIOD_MS		20
/* How often recovery reads the heartbeat while it waits for it to move. */
#define PNM_RECOVER_POLL_US		1000

static int pnm_state_errno(int state)
{
	return state == PNM_STATE_REMOVED ? -ENODEV : -EIO;
}

int pnm_queues_init(struct pnm_dev *pnm)
{
	u64 sq_bytes = pnm_hw_sq_bytes(pnm->queue_depth);
	u64 cq_bytes = pnm_hw_cq_bytes(pnm->queue_depth);
	void *area = (void *)pnm->ctrl + pnm->queue_offset;
	/* CQs follow the SQs of every queue the device has, used or not. */
	void *cq_area = area + pnm->hw_nr_queues * sq_bytes;
	unsigned int i;

	pnm->queues = kcalloc(pnm->nr_queues, sizeof(*pnm->queues), GFP_KERNEL);
	if (!pnm->queues)
		return -ENOMEM;

	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		q->slots = kcalloc(pnm->queue_depth, sizeof(*q->slots),
				   GFP_KERNEL);
		if (!q->slots)
			return -ENOMEM;	/* pnm_queues_free() cleans up */
		q->pnm = pnm;
		q->qid = i;
		spin_lock_init(&q->lock);
		spin_lock_init(&q->cq_lock);
		init_waitqueue_head(&q->slot_wait);
		INIT_LIST_HEAD(&q->uring_pending);
		q->sq = area + i * sq_bytes;
		q->cq = cq_area + i * cq_bytes;
		q->db = &pnm->doorbells[i];
		/* Matches the device after enable: indices 0, phase 1. */
		q->phase = PNM_CQE_PHASE;
	}
	return 0;
}

void pnm_queues_free(struct pnm_dev *pnm)
{
	unsigned int i;

	if (!pnm->queues)
		return;
	for (i = 0; i < pnm->nr_queues; i++)
		kfree(pnm->queues[i].slots);
	kfree(pnm->queues);
	pnm->queues = NULL;
}

static void pnm_regions_put(struct pnm_region **regions)
{
	unsigned int i;

	for (i = 0; i < PNM_CMD_NR_BUFS; i++)
		if (regions[i])
			pnm_region_put(regions[i]);
}

/* Take the slot back from the device; called with q->lock held. */
static void pnm_slot_clear(struct pnm_queue *q, struct pnm_slot *slot,
			   struct pnm_region **regions)
{
	memcpy(regions, slot->regions, sizeof(slot->regions));
	memset(slot->regions, 0, sizeof(slot->regions));
	if (!slot->batch && !slot->uring)
		q->nr_abandoned--;
	slot->batch = NULL;
	slot->uring = NULL;
	WRITE_ONCE(slot->busy, false);
	q->nr_busy--;
}

/* Fail every io_uring command still in the software list; q->lock held. */
static void pnm_queue_fail_pending(struct pnm_queue *q, int err)
{
	struct pnm_uring_req *ur, *tmp;

	list_for_each_entry_safe(ur, tmp, &q->uring_pending, node) {
		list_del(&ur->node);
		q->nr_pending--;
		pnm_uring_finish(ur, err, 0);
	}
}

/* Detach the owner of a busy slot and fail it with @err; q->lock held. */
static void pnm_slot_fail(struct pnm_queue *q, struct pnm_slot *slot, int err)
{
	struct pnm_batch *batch = slot->batch;
	struct pnm_uring_req *ur = slot->uring;

	if (!batch && !ur)
		return;
	slot->batch = NULL;
	slot->uring = NULL;
	q->nr_abandoned++;
	if (ur) {
		pnm_uring_finish(ur, err, 0);
	} else if (!batch->error) {
		batch->error = err;
		complete(&batch->done);
	}
}

/*
 * Locking of a queue: q->lock serializes submitters with each other and with
 * the completion consumer for the SQ tail, the slot table, the software
 * list and each batch's @pending and @error.  A slot whose completion has
 * not arrived stays busy whatever happens to its owner, because the device
 * may still read its command and write the buffers it names.  Only a
 * completion or a device reset (remove) frees the slot and drops its region
 * references.
 */
void pnm_set_state(struct pnm_dev *pnm, enum pnm_state state)
{
	int err = pnm_state_errno(state);
	unsigned int i, s;

	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		spin_lock(&q->lock);
		/* States only move forward: LIVE, DEAD, REMOVED. */
		if (pnm->state < state)
			WRITE_ONCE(pnm->state, state);
		for (s = 0; s < pnm->queue_depth; s++) {
			struct pnm_slot *slot = &q->slots[s];

			if (slot->busy)
				pnm_slot_fail(q, slot, err);
		}
		pnm_queue_fail_pending(q, err);
		spin_unlock(&q->lock);
		wake_up_all(&q->slot_wait);
	}
	wake_up_all(&pnm->recover_wait);
}

/*
 * Free every busy slot of @q and drop its region references, failing the
 * slot's owner with @err first unless @err is 0.  Only for a reset queue,
 * which the device no longer reads or writes.  Return the slots freed.
 */
static unsigned int pnm_queue_free_busy(struct pnm_queue *q, int err)
{
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
	struct pnm_dev *pnm = q->pnm;
	unsigned int s, nr = 0;

	for (s = 0; s < pnm->queue_depth; s++) {
		struct pnm_slot *slot = &q->slots[s];

		spin_lock(&q->lock);
		if (!slot->busy) {
			spin_unlock(&q->lock);
			continue;
		}
		if (err)
			pnm_slot_fail(q, slot, err);
		pnm_slot_clear(q, slot, regions);
		spin_unlock(&q->lock);
		atomic_dec(&pnm->outstanding);
		pnm_regions_put(regions);
		nr++;
	}
	return nr;
}

/**
 * pnm_queues_release() - free every busy slot after a device reset
 * @pnm: device whose poller has stopped and whose queues are reset
 *
 * The device writes nothing to a reset queue, so the regions that commands
 * without completion still name can go back to the pool.
 */
void pnm_queues_release(struct pnm_dev *pnm)
{
	unsigned int i;

	for (i = 0; i < pnm->nr_queues; i++)
		pnm_queue_free_busy(&pnm->queues[i], 0);
}

/*
 * Queue choice: a batch, or an io_uring command, goes to the queue of the
 * CPU that submits it (CPU number modulo the queue count).  Submitters on
 * different CPUs then rarely share a queue lock, and one batch needs one
 * lock and one wait.  Migrating to another CPU mid-batch is harmless: the
 * queue is fixed for the batch once chosen.
 */
struct pnm_queue *pnm_pick_queue(struct pnm_dev *pnm)
{
	return &pnm->queues[raw_smp_processor_id() % pnm->nr_queues];
}

/* No slot is free while the queues are being reset. */
static bool pnm_queue_tail_free(struct pnm_queue *q)
{
	u32 mask = q->pnm->queue_depth - 1;

	return !READ_ONCE(q->pnm->recovering) &&
	       !READ_ONCE(q->slots[READ_ONCE(q->sq_tail) & mask].busy);
}

static void pnm_poller_kick(struct pnm_dev *pnm)
{
	wake_up(&pnm->poll_wait);
}

/*
 * Write @req into the slot at the SQ tail, which the caller found free, and
 * hand it the command's region references.  q->lock held.
 */
static struct pnm_slot *pnm_queue_place(struct pnm_queue *q,
					struct pnm_request *req)
{
	u32 idx = q->sq_tail & (q->pnm->queue_depth - 1);
	struct pnm_slot *slot = &q->slots[idx];

	q->sq[idx] = req->hw;
	memcpy(slot->regions, req->regions, sizeof(req->regions));
	memset(req->regions, 0, sizeof(req->regions));
	WRITE_ONCE(slot->busy, true);
	q->nr_busy++;
	WRITE_ONCE(q->sq_tail, q->sq_tail + 1);
	return slot;
}

/* Ring the SQ doorbell for @placed new commands; q->lock held. */
static void pnm_queue_ring(struct pnm_queue *q, unsigned int placed)
{
	struct pnm_dev *pnm = q->pnm;

	/* The commands must be in device memory before the doorbell. */
	wmb();
	WRITE_ONCE(q->db->sq_tail, cpu_to_le32(q->sq_tail));
	atomic_add(placed, &pnm->outstanding);
	atomic64_add(placed, &pnm->submitted);
}

/*
 * Move io_uring commands from the software list into free SQ slots, oldest
 * first, up to the first busy slot.  q->lock held.  Return how many moved;
 * the caller rings the doorbell.
 */
static unsigned int pnm_queue_place_pending(struct pnm_queue *q)
{
	struct pnm_uring_req *ur;
	unsigned int placed = 0;

	while (!list_empty(&q->uring_pending) && pnm_queue_tail_free(q)) {
		ur = list_first_entry(&q->uring_pending, struct pnm_uring_req,
				      node);
		list_del(&ur->node);
		q->nr_pending--;
		pnm_queue_place(q, &ur->req)->uring = ur;
		ur->state = PNM_URING_IN_SLOT;
		placed++;
	}
	return placed;
}

/*
 * Move waiting io_uring commands into the slots that a pass over the CQ
 * freed, with one doorbell for all of them: every doorbell write is an
 * access to device memory.
 */
static void pnm_queue_refill(struct pnm_queue *q)
{
	unsigned int placed;

	spin_lock(&q->lock);
	placed = pnm_queue_place_pending(q);
	if (placed)
		pnm_queue_ring(q, placed);
	spin_unlock(&q->lock);
}

/*
 * Write commands of @batch from *@next on into free SQ slots, then ring the
 * doorbell once.  Stops at the first busy slot: the device fetches in ring
 * order, so a slot still owned by the device blocks the ones after it.
 */
static int pnm_queue_submit(struct pnm_queue *q, struct pnm_batch *batch,
			    unsigned int *next)
{
	struct pnm_dev *pnm = q->pnm;
	unsigned int placed = 0;
	struct pnm_slot *slot;
	int state;

	spin_lock(&q->lock);
	state = pnm->state;
	if (state != PNM_STATE_LIVE) {
		spin_unlock(&q->lock);
		return pnm_state_errno(state);
	}
	/* A queue reset failed the commands already placed: place no more. */
	if (batch->error) {
		spin_unlock(&q->lock);
		return batch->error;
	}
	while (*next < batch->nr && pnm_queue_tail_free(q)) {
		slot = pnm_queue_place(q, &batch->reqs[*next]);
		slot->batch = batch;
		slot->index = *next;
		(*next)++;
		placed++;
	}
	if (placed)
		pnm_queue_ring(q, placed);
	spin_unlock(&q->lock);

	if (placed)
		pnm_poller_kick(pnm);
	return 0;
}

/**
 * pnm_queue_add_uring() - queue a validated io_uring command
 * @q: queue chosen for it
 * @ur: the command, ISSUING, already marked cancelable
 *
 * The command enters a free SQ slot, or the software list when the queue is
 * full or older io_uring commands wait there: a full hardware queue never
 * fails or drops a command.
 *
 * Return: 0 once queued; the completion then arrives through task work.
 * -ECANCELED if io_uring cancelled the command while it was being issued,
 * -EIO or -ENODEV if the device is dead or removed.  On error the command
 * is not queued and the caller completes it.
 */
int pnm_queue_add_uring(struct pnm_queue *q, struct pnm_uring_req *ur)
{
	struct pnm_dev *pnm = q->pnm;
	int state, rc = 0;

	spin_lock(&q->lock);
	state = pnm->state;
	if (ur->state == PNM_URING_CANCELLED) {
		rc = -ECANCELED;
	} else if (state != PNM_STATE_LIVE) {
		rc = pnm_state_errno(state);
	} else if (list_empty(&q->uring_pending) && pnm_queue_tail_free(q)) {
		pnm_queue_place(q, &ur->req)->uring = ur;
		ur->state = PNM_URING_IN_SLOT;
		pnm_queue_ring(q, 1);
	} else {
		list_add_tail(&ur->node, &q->uring_pending);
		q->nr_pending++;
		ur->state = PNM_URING_PENDING;
	}
	spin_unlock(&q->lock);

	if (!rc)
		pnm_poller_kick(pnm);
	return rc;
}

/* Find the busy slot that @ur owns; q->lock held. */
static struct pnm_slot *pnm_queue_find_uring(struct pnm_queue *q,
					     struct pnm_uring_req *ur)
{
	unsigned int s;

	for (s = 0; s < q->pnm->queue_depth; s++)
		if (q->slots[s].busy && q->slots[s].uring == ur)
			return &q->slots[s];
	return NULL;
}

/**
 * pnm_queue_cancel_uring() - take an io_uring command back from its queue
 * @q: the command's queue
 * @ur: the command
 *
 * A command in the software list leaves it.  A command in an SQ slot is
 * detached from the slot, which stays busy and keeps the region references
 * until the device completes it, as after a SUBMIT timeout.  A command
 * whose completion is already on its way, or that is still being issued
 * (the issuer then sees CANCELLED and completes it), stays as it is.
 *
 * Return: true if the caller must now complete @ur with -ECANCELED.
 */
bool pnm_queue_cancel_uring(struct pnm_queue *q, struct pnm_uring_req *ur)
{
	struct pnm_slot *slot;
	bool cancel = false;

	spin_lock(&q->lock);
	switch (ur->state) {
	case PNM_URING_ISSUING:
		ur->state = PNM_URING_CANCELLED;
		break;
	case PNM_URING_PENDING:
		list_del(&ur->node);
		q->nr_pending--;
		cancel = true;
		break;
	case PNM_URING_IN_SLOT:
		slot = pnm_queue_find_uring(q, ur);
		if (!WARN_ON_ONCE(!slot)) {
			slot->uring = NULL;
			q->nr_abandoned++;
		}
		cancel = true;
		break;
	default:
		break;
	}
	if (cancel)
		ur->state = PNM_URING_COMPLETING;
	spin_unlock(&q->lock);
	return cancel;
}

static long pnm_jiffies_left(unsigned long deadline)
{
	long left = (long)(deadline - jiffies);

	return max(left, 0L);
}

/* Wait until the slot at the SQ tail is free or the device stops. */
static int pnm_queue_wait_slot(struct pnm_queue *q, unsigned long deadline)
{
	struct pnm_dev *pnm = q->pnm;
	long rc;

	rc = wait_event_killable_timeout(q->slot_wait,
					 pnm_queue_tail_free(q) ||
					 READ_ONCE(pnm->state) != PNM_STATE_LIVE,
					 pnm_jiffies_left(deadline));
	if (rc == 0)
		return -ETIMEDOUT;
	if (rc < 0)
		return -EINTR;
	return 0;
}

/*
 * Detach @batch from its slots after its waiter gave up with @err.  The
 * slots stay busy until their completions arrive.  Return 0 if the whole
 * batch completed meanwhile.
 */
static int pnm_batch_abandon(struct pnm_queue *q, struct pnm_batch *batch,
			     int err)
{
	struct pnm_dev *pnm = q->pnm;
	unsigned int s, nr = 0;

	spin_lock(&q->lock);
	if (batch->error) {
		err = batch->error;
	} else if (!batch->pending) {
		err = 0;
	} else {
		for (s = 0; s < pnm->queue_depth; s++) {
			struct pnm_slot *slot = &q->slots[s];

			if (slot->busy && slot->batch == batch) {
				slot->batch = NULL;
				q->nr_abandoned++;
				nr++;
			}
		}
	}
	spin_unlock(&q->lock);

	if (err == -ETIMEDOUT)
		atomic64_add(nr, &pnm->timed_out);
	return err;
}

/*
 * Ask the poller to reset the queues after a timeout and wait until it has
 * done so or the device left the live state.  A fatal signal ends the wait;
 * the recovery goes on without the waiter.
 */
static void pnm_recover_wait(struct pnm_dev *pnm)
{
	int ticket = atomic_inc_return(&pnm->recover_requested);

	wake_up(&pnm->poll_wait);
	wait_event_killable(pnm->recover_wait,
			    atomic_read(&pnm->recover_done) - ticket >= 0 ||
			    READ_ONCE(pnm->state) != PNM_STATE_LIVE);
}

/* End a batch whose waiter gives up with @err; see pnm_batch_execute(). */
static int pnm_batch_fail(struct pnm_queue *q, struct pnm_batch *batch,
			  int err)
{
	err = pnm_batch_abandon(q, batch, err);
	if (err == -ETIMEDOUT)
		pnm_recover_wait(q->pnm);
	return err;
}

/**
 * pnm_batch_execute() - submit a batch of validated commands and wait
 * @pnm: device
 * @batch: commands and result array; @reqs give up their region references
 *	as they are submitted, the caller releases what is left
 * @timeout_ms: budget for the whole batch, including waits for SQ slots
 *
 * Context: process context; sleeps.  A fatal signal ends the wait.
 *
 * A batch that times out waits, before it returns, for the poller to reset
 * the queues (pnm_recover()): the device then no longer reads its commands
 * or writes their buffers, unless it was declared dead instead.
 *
 * Return: 0 with every result filled, -ETIMEDOUT, -EINTR, -EIO if the device
 * died or the queues were reset after another command timed out, -ENODEV if
 * it was removed.  On -EINTR the commands already submitted keep their SQ
 * slots and region references until their completions arrive.
 */
int pnm_batch_execute(struct pnm_dev *pnm, struct pnm_batch *batch,
		      unsigned int timeout_ms)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(timeout_ms);
	struct pnm_queue *q = pnm_pick_queue(pnm);
	unsigned int next = 0;
	long left;
	int rc;

	batch->pending = batch->nr;
	batch->error = 0;
	init_completion(&batch->done);

	while (next < batch->nr) {
		rc = pnm_queue_wait_slot(q, deadline);
		if (!rc)
			rc = pnm_queue_submit(q, batch, &next);
		if (rc)
			return pnm_batch_fail(q, batch, rc);
	}

	left = wait_for_completion_killable_timeout(&batch->done,
						    pnm_jiffies_left(deadline));
	if (left > 0)
		return READ_ONCE(batch->error);
	return pnm_batch_fail(q, batch, left ? -EINTR : -ETIMEDOUT);
}

/*
 * Pack a completion for the big CQE (uapi CXL_PNM_URING_RESULT()).  count is
 * at most k, a __u16, by the device interface; a larger one is a device
 * fault and fails the command.  device_ns saturates at 32 bits.
 */
static void pnm_uring_complete(struct pnm_queue *q, struct pnm_uring_req *ur,
			       u16 status, u32 count, u64 device_ns)
{
	if (count > U16_MAX) {
		dev_err_ratelimited(&q->pnm->dev, "queue %u: completion reports %u pages, more than any k\n",
				    q->qid, count);
		pnm_uring_finish(ur, -EIO, 0);
		return;
	}
	pnm_uring_finish(ur, 0, CXL_PNM_URING_RESULT(status, count,
						     min_t(u64, device_ns, U32_MAX)));
}

/* Hand one completion to its owner and free its slot. */
static void pnm_queue_complete(struct pnm_queue *q, u16 slot_idx, u16 status,
			       u32 count, u64 device_ns)
{
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
	struct pnm_dev *pnm = q->pnm;
	struct pnm_batch *batch;
	struct pnm_slot *slot;

	/*
	 * A completion naming no command in flight is a device fault: it is
	 * dropped, and the command it was meant for times out.
	 */
	if (slot_idx >= pnm->queue_depth) {
		dev_warn_ratelimited(&pnm->dev, "queue %u: completion names slot %u, depth is %u; ignored\n",
				     q->qid, slot_idx, pnm->queue_depth);
		return;
	}

	spin_lock(&q->lock);
	slot = &q->slots[slot_idx];
	if (!slot->busy) {
		spin_unlock(&q->lock);
		dev_warn_ratelimited(&pnm->dev, "queue %u: completion for idle slot %u; ignored\n",
				     q->qid, slot_idx);
		return;
	}
	batch = slot->batch;
	if (batch) {
		struct cxl_pnm_result *res = &batch->results[slot->index];

		res->status = status;
		res->rsvd = 0;
		res->count = count;
		res->device_ns = device_ns;
		if (--batch->pending == 0)
			complete(&batch->done);
	} else if (slot->uring) {
		pnm_uring_complete(q, slot->uring, status, count, device_ns);
	}
	pnm_slot_clear(q, slot, regions);
	spin_unlock(&q->lock);

	atomic_dec(&pnm->outstanding);
	atomic64_inc(&pnm->completed);
	if (status)
		atomic64_inc(&pnm->failed);
	if (wq_has_sleeper(&q->slot_wait))
		wake_up(&q->slot_wait);
	pnm_regions_put(regions);
}

/*
 * Consume the completions of one queue.  The caller holds q->cq_lock, so
 * the CQ head and phase have one writer.  Return the number of completions.
 */
static unsigned int pnm_queue_poll_locked(struct pnm_queue *q)
{
	u32 depth = q->pnm->queue_depth;
	unsigned int n;

	for (n = 0; n < depth; n++) {
		struct pnm_hw_cqe *cqe = &q->cq[q->cq_head & (depth - 1)];
		u16 flags = le16_to_cpu(READ_ONCE(cqe->flags));

		if ((flags & PNM_CQE_PHASE) != q->phase)
			break;
		/* The device writes @flags last: read the rest after it. */
		rmb();
		pnm_queue_complete(q, le16_to_cpu(READ_ONCE(cqe->slot)),
				   le16_to_cpu(READ_ONCE(cqe->status)),
				   le32_to_cpu(READ_ONCE(cqe->result)),
				   le64_to_cpu(READ_ONCE(cqe->device_ns)));
		WRITE_ONCE(q->cq_head, q->cq_head + 1);
		if (!(q->cq_head & (depth - 1)))
			WRITE_ONCE(q->phase, q->phase ^ PNM_CQE_PHASE);
	}
	if (n) {
		/* Finish reading the entries before the device may reuse them. */
		mb();
		WRITE_ONCE(q->db->cq_head, cpu_to_le32(q->cq_head));
		pnm_queue_refill(q);
	}
	return n;
}

/*
 * The poller and IOPOLL reapers only try the CQ lock, because its holder
 * consumes every entry present and waiting for it would gain nothing.
 */
static unsigned int pnm_queue_poll(struct pnm_queue *q)
{
	unsigned int n = 0;

	if (!spin_trylock(&q->cq_lock))
		return 0;
	/* No entry is consumed while pnm_recover() rewinds the CQ head. */
	if (!READ_ONCE(q->pnm->recovering))
		n = pnm_queue_poll_locked(q);
	spin_unlock(&q->cq_lock);
	return n;
}

static u16 pnm_cqe_phase(struct pnm_queue *q, u32 index)
{
	struct pnm_hw_cqe *cqe = &q->cq[index & (q->pnm->queue_depth - 1)];

	return le16_to_cpu(READ_ONCE(cqe->flags)) & PNM_CQE_PHASE;
}

/*
 * A CQ entry without the expected phase is normally one the device has not
 * written yet.  If the entry after it carries the phase expected there, the
 * device has moved past it: it wrote this one with the wrong phase.  Skip
 * it, or every later completion of the queue would stay unseen; the command
 * it was meant for times out.  Called from the poller's health check, so
 * the extra device reads cost nothing while completions flow.
 */
static void pnm_queue_skip_corrupt(struct pnm_queue *q)
{
	u32 depth = q->pnm->queue_depth;
	u16 next_phase;
	u32 head;

	if (!spin_trylock(&q->cq_lock))
		return;
	if (READ_ONCE(q->pnm->recovering))
		goto out;
	head = q->cq_head;
	if (pnm_cqe_phase(q, head) == q->phase)
		goto out;
	/* The phase expected at head + 1 flips where the ring wraps. */
	next_phase = (head + 1) & (depth - 1) ? q->phase : q->phase ^ PNM_CQE_PHASE;
	if (pnm_cqe_phase(q, head + 1) != next_phase)
		goto out;
	/* The device writes entries in order: head is final by now. */
	rmb();
	if (pnm_cqe_phase(q, head) == q->phase)
		goto out;
	dev_warn_ratelimited(&q->pnm->dev, "queue %u: completion %u (slot %u) has the wrong phase; ignored\n",
			     q->qid, head,
			     le16_to_cpu(READ_ONCE(q->cq[head & (depth - 1)].slot)));
	WRITE_ONCE(q->cq_head, head + 1);
	if (!(q->cq_head & (depth - 1)))
		WRITE_ONCE(q->phase, q->phase ^ PNM_CQE_PHASE);
	WRITE_ONCE(q->db->cq_head, cpu_to_le32(q->cq_head));
out:
	spin_unlock(&q->cq_lock);
}

/**
 * pnm_queue_iopoll() - consume a queue's completions for an IOPOLL reaper
 * @q: queue of the command being polled
 *
 * Context: inside the device's SRCU read section, device live (the queues
 * are unmapped once remove finishes).
 *
 * Return: completions consumed; they reach io_uring through task work.
 */
unsigned int pnm_queue_iopoll(struct pnm_queue *q)
{
	return pnm_queue_poll(q);
}

static void pnm_heartbeat_rearm(struct pnm_dev *pnm)
{
	pnm->heartbeat = pnm_hw_heartbeat(pnm);
	pnm->heartbeat_stamp = jiffies;
	pnm->health_next = jiffies;
}

/*
 * A device that sets FATAL, leaves the enabled state or whose heartbeat
 * stalls for PNM_HEARTBEAT_TIMEOUT_MS while commands are outstanding is dead:
 * its waiters fail with -EIO and later submissions too, until the device is
 * unbound.  Its busy slots keep their regions until then, because a device
 * that only stalled might still write them.
 */
static void pnm_check_health(struct pnm_dev *pnm)
{
	unsigned long stalled;
	unsigned int i;
	u32 status;
	u64 beat;

	if (time_before(jiffies, pnm->health_next))
		return;
	pnm->health_next = jiffies + msecs_to_jiffies(PNM_HEALTH_PERIOD_MS);

	status = pnm_hw_status(pnm);
	if ((status & PNM_HW_STATUS_FATAL) ||
	    !(status & PNM_HW_STATUS_ENABLED)) {
		dev_err(&pnm->dev, "device stopped (status %#x) with %d commands outstanding; failing them\n",
			status, atomic_read(&pnm->outstanding));
		pnm_set_state(pnm, PNM_STATE_DEAD);
		return;
	}

	for (i = 0; i < pnm->nr_queues; i++)
		pnm_queue_skip_corrupt(&pnm->queues[i]);

	beat = pnm_hw_heartbeat(pnm);
	if (beat != pnm->heartbeat) {
		pnm->heartbeat = beat;
		pnm->heartbeat_stamp = jiffies;
		return;
	}
	stalled = jiffies - pnm->heartbeat_stamp;
	if (stalled > msecs_to_jiffies(PNM_HEARTBEAT_TIMEOUT_MS)) {
		dev_err(&pnm->dev, "heartbeat stuck at %llu for %u ms with %d commands outstanding; failing them\n",
			beat, jiffies_to_msecs(stalled),
			atomic_read(&pnm->outstanding));
		pnm_set_state(pnm, PNM_STATE_DEAD);
	}
}

/*
 * Recovery after a timeout.  A command that does not complete in time on a
 * device whose heartbeat still advances means the device lost or stalled
 * on it.  Its slot stays busy, and so would every slot after it once the
 * ring comes round.  The poller then resets the queues as device-interface
 * .rst describes (RESET, wait for ENABLED to clear, ENABLE), fails every
 * command that was in a slot with -EIO, frees the slots and their region
 * references and serves new commands.  A device whose heartbeat does not
 * move, or that does not come back from the reset, is dead instead.
 *
 * While the queues are reset, pnm->recovering keeps submitters off the
 * slots (they wait for a free slot, io_uring commands in the software
 * list) and IOPOLL reapers off the CQs.  Setting it under each queue's
 * cq_lock means a reaper inside pnm_queue_poll_locked() finishes first.
 */
static void pnm_queues_block(struct pnm_dev *pnm, bool block)
{
	unsigned int i;

	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		spin_lock(&q->cq_lock);
		spin_lock(&q->lock);
		WRITE_ONCE(pnm->recovering, block);
		spin_unlock(&q->lock);
		spin_unlock(&q->cq_lock);
	}
}

/* Whether some busy slot lost its owner, to a timeout or a cancel. */
static bool pnm_queues_abandoned(struct pnm_dev *pnm)
{
	bool abandoned = false;
	unsigned int i;

	for (i = 0; i < pnm->nr_queues && !abandoned; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		spin_lock(&q->lock);
		abandoned = q->nr_abandoned > 0;
		spin_unlock(&q->lock);
	}
	return abandoned;
}

/*
 * Fail the owner of every busy slot with @err, free the slots and rewind
 * the host's queue indices to those of a freshly enabled device.  The
 * device is reset: it reads no SQ and writes no CQ until the next enable.
 * Return the number of commands failed or freed.
 */
static unsigned int pnm_queues_abort(struct pnm_dev *pnm, int err)
{
	unsigned int i, nr = 0;

	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		nr += pnm_queue_free_busy(q, err);

		spin_lock(&q->cq_lock);
		spin_lock(&q->lock);
		q->sq_tail = 0;
		q->cq_head = 0;
		q->phase = PNM_CQE_PHASE;
		spin_unlock(&q->lock);
		spin_unlock(&q->cq_lock);
	}
	return nr;
}

/* Wait up to PNM_HEARTBEAT_TIMEOUT_MS for the heartbeat to change. */
static bool pnm_heartbeat_moves(struct pnm_dev *pnm)
{
	u64 first = pnm_hw_heartbeat(pnm), beat;

	return !read_poll_timeout(pnm_hw_heartbeat, beat, beat != first,
				  PNM_RECOVER_POLL_US,
				  PNM_HEARTBEAT_TIMEOUT_MS * USEC_PER_MSEC,
				  false, pnm);
}

static void pnm_recover(struct pnm_dev *pnm)
{
	unsigned int i, nr;
	int rc;

	if (READ_ONCE(pnm->state) != PNM_STATE_LIVE ||
	    !pnm_queues_abandoned(pnm))
		return;
	if (!pnm_heartbeat_moves(pnm)) {
		dev_err(&pnm->dev, "command timed out and the heartbeat is stuck at %llu; failing %d commands outstanding\n",
			pnm_hw_heartbeat(pnm), atomic_read(&pnm->outstanding));
		pnm_set_state(pnm, PNM_STATE_DEAD);
		return;
	}

	pnm_queues_block(pnm, true);
	rc = pnm_hw_reset(pnm);
	if (!rc) {
		nr = pnm_queues_abort(pnm, -EIO);
		rc = pnm_hw_enable(pnm);
	}
	if (rc) {
		dev_err(&pnm->dev, "queue reset after a timeout failed (%pe); device dead\n",
			ERR_PTR(rc));
		pnm_set_state(pnm, PNM_STATE_DEAD);
	} else {
		atomic64_inc(&pnm->resets);
		dev_warn(&pnm->dev, "command timed out: queues reset, %u commands in flight failed\n",
			 nr);
	}
	pnm_queues_block(pnm, false);

	for (i = 0; i < pnm->nr_queues; i++) {
		pnm_queue_refill(&pnm->queues[i]);
		wake_up_all(&pnm->queues[i].slot_wait);
	}
	pnm_heartbeat_rearm(pnm);
}

static bool pnm_recover_pending(struct pnm_dev *pnm)
{
	return atomic_read(&pnm->recover_requested) !=
	       atomic_read(&pnm->recover_done);
}

/* Serve every recovery asked for so far, then wake their waiters. */
static void pnm_recover_serve(struct pnm_dev *pnm)
{
	int target = atomic_read(&pnm->recover_requested);

	pnm_recover(pnm);
	atomic_set(&pnm->recover_done, target);
	wake_up_all(&pnm->recover_wait);
}

static bool pnm_poll_needed(struct pnm_dev *pnm)
{
	return atomic_read(&pnm->outstanding) > 0 &&
	       READ_ONCE(pnm->state) == PNM_STATE_LIVE;
}

static void pnm_poll_backoff(unsigned int idle_rounds)
{
	unsigned int shift, us;

	if (idle_rounds < PNM_POLL_SPINS) {
		cond_resched();
		return;
	}
	shift = min(idle_rounds - PNM_POLL_SPINS, 7U);
	us = min(PNM_POLL_MIN_US << shift, PNM_POLL_MAX_US);
	usleep_range(us, us + us / 4);
}

static int pnm_poll_thread(void *data)
{
	struct pnm_dev *pnm = data;
	unsigned int idle_rounds = 0;

	while (!kthread_should_stop()) {
		unsigned int i, n = 0;

		if (pnm_recover_pending(pnm)) {
			pnm_recover_serve(pnm);
			continue;
		}
		if (!pnm_poll_needed(pnm)) {
			wait_event_interruptible(pnm->poll_wait,
						 pnm_poll_needed(pnm) ||
						 pnm_recover_pending(pnm) ||
						 kthread_should_stop());
			pnm_heartbeat_rearm(pnm);
			idle_rounds = 0;
			continue;
		}

		for (i = 0; i < pnm->nr_queues; i++)
			n += pnm_queue_poll(&pnm->queues[i]);
		if (n) {
			/* Completions prove the device alive. */
			pnm->heartbeat_stamp = jiffies;
			idle_rounds = 0;
		} else {
			idle_rounds++;
			pnm_check_health(pnm);
		}
		pnm_poll_backoff(idle_rounds);
	}
	return 0;
}

int pnm_poller_start(struct pnm_dev *pnm)
{
	struct task_struct *task;

	task = kthread_run(pnm_poll_thread, pnm, "cxl_pnm%d", pnm->id);
	if (IS_ERR(task))
		return PTR_ERR(task);
	pnm->poller = task;
	return 0;
}

void pnm_poller_stop(struct pnm_dev *pnm)
{
	kthread_stop(pnm->poller);
	pnm->poller = NULL;
}
