// SPDX-License-Identifier: GPL-2.0-only
/*
 * Hardware queues of a CXL-PNM device: command submission, the completion
 * poller, heartbeat monitoring and failing work on a dead or removed device.
 *
 * The device raises no interrupts.  One kernel thread per device polls every
 * completion queue while any command is outstanding and sleeps otherwise.
 */
#include <linux/delay.h>
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
		init_waitqueue_head(&q->slot_wait);
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
	if (!slot->batch)
		q->nr_abandoned--;
	slot->batch = NULL;
	WRITE_ONCE(slot->busy, false);
	q->nr_busy--;
}

/*
 * Locking of a queue: q->lock serializes submitters with each other and with
 * the poller for the SQ tail, the slot table and each batch's @pending and
 * @error.  A slot whose completion has not arrived stays busy whatever
 * happens to its waiter, because the device may still read its command and
 * write the buffers it names.  Only a completion or a device reset (remove)
 * frees the slot and drops its region references.
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
			struct pnm_batch *batch = slot->batch;

			if (!slot->busy || !batch)
				continue;
			slot->batch = NULL;
			q->nr_abandoned++;
			if (!batch->error) {
				batch->error = err;
				complete(&batch->done);
			}
		}
		spin_unlock(&q->lock);
		wake_up_all(&q->slot_wait);
	}
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
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
	unsigned int i, s;

	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];

		for (s = 0; s < pnm->queue_depth; s++) {
			struct pnm_slot *slot = &q->slots[s];

			spin_lock(&q->lock);
			if (!slot->busy) {
				spin_unlock(&q->lock);
				continue;
			}
			pnm_slot_clear(q, slot, regions);
			spin_unlock(&q->lock);
			atomic_dec(&pnm->outstanding);
			pnm_regions_put(regions);
		}
	}
}

/*
 * Queue choice: a batch goes whole to the queue of the CPU that submits it
 * (CPU number modulo the queue count).  Submitters on different CPUs then
 * rarely share a queue lock, and one batch needs one lock and one wait.
 * Migrating to another CPU mid-batch is harmless: the queue is fixed for the
 * batch once chosen.
 */
static struct pnm_queue *pnm_pick_queue(struct pnm_dev *pnm)
{
	return &pnm->queues[raw_smp_processor_id() % pnm->nr_queues];
}

static bool pnm_queue_tail_free(struct pnm_queue *q)
{
	u32 mask = q->pnm->queue_depth - 1;

	return !READ_ONCE(q->slots[READ_ONCE(q->sq_tail) & mask].busy);
}

static void pnm_poller_kick(struct pnm_dev *pnm)
{
	wake_up(&pnm->poll_wait);
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
	u32 mask = pnm->queue_depth - 1;
	unsigned int placed = 0;
	int state;

	spin_lock(&q->lock);
	state = pnm->state;
	if (state != PNM_STATE_LIVE) {
		spin_unlock(&q->lock);
		return pnm_state_errno(state);
	}
	while (*next < batch->nr) {
		u32 idx = q->sq_tail & mask;
		struct pnm_slot *slot = &q->slots[idx];
		struct pnm_request *req = &batch->reqs[*next];

		if (slot->busy)
			break;
		q->sq[idx] = req->hw;
		memcpy(slot->regions, req->regions, sizeof(req->regions));
		memset(req->regions, 0, sizeof(req->regions));
		slot->batch = batch;
		slot->index = *next;
		WRITE_ONCE(slot->busy, true);
		q->nr_busy++;
		WRITE_ONCE(q->sq_tail, q->sq_tail + 1);
		(*next)++;
		placed++;
	}
	if (placed) {
		/* The commands must be in device memory before the doorbell. */
		wmb();
		WRITE_ONCE(q->db->sq_tail, cpu_to_le32(q->sq_tail));
		atomic_add(placed, &pnm->outstanding);
		atomic64_add(placed, &pnm->submitted);
	}
	spin_unlock(&q->lock);

	if (placed)
		pnm_poller_kick(pnm);
	return 0;
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

/**
 * pnm_batch_execute() - submit a batch of validated commands and wait
 * @pnm: device
 * @batch: commands and result array; @reqs give up their region references
 *	as they are submitted, the caller releases what is left
 * @timeout_ms: budget for the whole batch, including waits for SQ slots
 *
 * Context: process context; sleeps.  A fatal signal ends the wait.
 *
 * Return: 0 with every result filled, -ETIMEDOUT, -EINTR, -EIO if the device
 * died, -ENODEV if it was removed.  On error the commands already submitted
 * keep their SQ slots and region references until their completions arrive.
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
			return pnm_batch_abandon(q, batch, rc);
	}

	left = wait_for_completion_killable_timeout(&batch->done,
						    pnm_jiffies_left(deadline));
	if (left > 0)
		return READ_ONCE(batch->error);
	return pnm_batch_abandon(q, batch, left ? -EINTR : -ETIMEDOUT);
}

/* Hand one completion to its waiter and free its slot. */
static void pnm_queue_complete(struct pnm_queue *q, u16 slot_idx, u16 status,
			       u32 count, u64 device_ns)
{
	struct pnm_region *regions[PNM_CMD_NR_BUFS];
	struct pnm_dev *pnm = q->pnm;
	struct pnm_batch *batch;
	struct pnm_slot *slot;

	if (slot_idx >= pnm->queue_depth) {
		dev_err_ratelimited(&pnm->dev, "queue %u: completion names slot %u, depth is %u\n",
				    q->qid, slot_idx, pnm->queue_depth);
		return;
	}

	spin_lock(&q->lock);
	slot = &q->slots[slot_idx];
	if (!slot->busy) {
		spin_unlock(&q->lock);
		dev_err_ratelimited(&pnm->dev, "queue %u: completion for idle slot %u\n",
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
 * Consume the completions of one queue.  Only the poller runs this, so the
 * CQ head and phase need no lock.  Return the number of completions.
 */
static unsigned int pnm_queue_poll(struct pnm_queue *q)
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
	}
	return n;
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

		if (!pnm_poll_needed(pnm)) {
			wait_event_interruptible(pnm->poll_wait,
						 pnm_poll_needed(pnm) ||
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
