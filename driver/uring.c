// SPDX-License-Identifier: GPL-2.0-only
/*
 * io_uring passthrough: IORING_OP_URING_CMD on /dev/cxl/pnmN.
 *
 * Each CXL_PNM_URING_CMD_SUBMIT carries one struct cxl_pnm_cmd in the
 * command area of a 128-byte SQE.  The command is copied out of the SQE
 * field by field, validated by pnm_cmd_prepare() as the SUBMIT ioctl does,
 * and queued on the hardware queue of the submitting CPU.  The poller
 * thread, or an IOPOLL reaper, consumes its completion and hands it to the
 * submitting task with io_uring_cmd_complete_in_task(), which posts a
 * 32-byte CQE: res 0 and the packed struct cxl_pnm_result in big_cqe[0].
 *
 * Lifetime: a command in flight keeps its io_uring request, and with it
 * the file and the device state, alive.  Its struct pnm_uring_req lives
 * until the task work (or the cancel handler) that completes it.
 */
#include <linux/io_uring/cmd.h>
#include <linux/slab.h>
#include "pnm_private.h"

/**
 * struct pnm_uring_pdu - driver data in the io_uring command
 * @ur: the command's state
 * @q: its queue, which IOPOLL polls; kept apart from @ur because @ur is
 *	freed when the completion is posted
 */
struct pnm_uring_pdu {
	struct pnm_uring_req *ur;
	struct pnm_queue *q;
};

static struct pnm_uring_pdu *pnm_uring_pdu(struct io_uring_cmd *ioucmd)
{
	return io_uring_cmd_to_pdu(ioucmd, struct pnm_uring_pdu);
}

/* Release what the command still holds: regions of a command never queued. */
static void pnm_uring_req_free(struct pnm_uring_req *ur)
{
	pnm_request_release(&ur->req);
	kfree(ur);
}

/*
 * Post the CQE, then free the command's state.  In this order because the
 * cancel handler reads the state until io_uring_cmd_done() takes the
 * command off io_uring's cancelable list; @ioucmd is not touched after it.
 */
static void pnm_uring_done(struct pnm_uring_req *ur, int res, u64 res2,
			   unsigned int issue_flags)
{
	io_uring_cmd_done(ur->ioucmd, res, res2, issue_flags);
	pnm_uring_req_free(ur);
}

/* Runs in the submitting task (or io_uring's fallback if it is gone). */
static void pnm_uring_task_cb(struct io_uring_cmd *ioucmd,
			      unsigned int issue_flags)
{
	struct pnm_uring_req *ur = pnm_uring_pdu(ioucmd)->ur;

	pnm_uring_done(ur, ur->res, ur->res2, issue_flags);
}

/**
 * pnm_uring_finish() - complete an io_uring command through task work
 * @ur: a command that left its queue (slot or software list)
 * @res: 0 or -errno for the CQE
 * @res2: the packed result for the big CQE
 *
 * Context: any; the queue lock may be held.  @ur belongs to the task work
 * afterwards, so the caller must not touch it again.
 */
void pnm_uring_finish(struct pnm_uring_req *ur, int res, u64 res2)
{
	ur->state = PNM_URING_COMPLETING;
	ur->res = res;
	ur->res2 = res2;
	io_uring_cmd_complete_in_task(ur->ioucmd, pnm_uring_task_cb);
}

/*
 * io_uring cancels the commands of an exiting ring or task through
 * ->uring_cmd with IO_URING_F_CANCEL.  A command the device may still be
 * working on leaves its slot busy with the region references, so nothing
 * is reused while the device can write it.
 */
static void pnm_uring_cancel(struct io_uring_cmd *ioucmd,
			     unsigned int issue_flags)
{
	struct pnm_uring_pdu *pdu = pnm_uring_pdu(ioucmd);
	struct pnm_uring_req *ur = pdu->ur;

	if (pnm_queue_cancel_uring(pdu->q, ur))
		pnm_uring_done(ur, -ECANCELED, 0, issue_flags);
}

static void pnm_uring_read_buf(struct cxl_pnm_buf *dst,
			       const struct cxl_pnm_buf *src)
{
	dst->handle = READ_ONCE(src->handle);
	dst->length = READ_ONCE(src->length);
	dst->offset = READ_ONCE(src->offset);
}

/*
 * The SQE lies in memory userspace shares and may rewrite at any time:
 * read every field once into @cmd, which alone is validated and used.
 */
static void pnm_uring_read_cmd(struct cxl_pnm_cmd *cmd,
			       const struct cxl_pnm_cmd *sqe_cmd)
{
	cmd->opcode = READ_ONCE(sqe_cmd->opcode);
	cmd->dtype = READ_ONCE(sqe_cmd->dtype);
	cmd->page_shift = READ_ONCE(sqe_cmd->page_shift);
	cmd->group = READ_ONCE(sqe_cmd->group);
	cmd->head_dim = READ_ONCE(sqe_cmd->head_dim);
	cmd->flags = READ_ONCE(sqe_cmd->flags);
	cmd->rsvd = READ_ONCE(sqe_cmd->rsvd);
	cmd->n_tokens = READ_ONCE(sqe_cmd->n_tokens);
	cmd->k = READ_ONCE(sqe_cmd->k);
	cmd->n_list = READ_ONCE(sqe_cmd->n_list);
	pnm_uring_read_buf(&cmd->pool, &sqe_cmd->pool);
	pnm_uring_read_buf(&cmd->table, &sqe_cmd->table);
	pnm_uring_read_buf(&cmd->in, &sqe_cmd->in);
	pnm_uring_read_buf(&cmd->out, &sqe_cmd->out);
}

/*
 * Validate and queue one command.  Errors found before the command is
 * queued return at once, so io_uring posts them as the CQE's res.
 */
static int pnm_uring_submit(struct pnm_file *pf, struct io_uring_cmd *ioucmd,
			    unsigned int issue_flags)
{
	bool nonblock = issue_flags & IO_URING_F_NONBLOCK;
	struct pnm_uring_pdu *pdu = pnm_uring_pdu(ioucmd);
	struct pnm_request req;
	struct cxl_pnm_cmd cmd;
	struct pnm_uring_req *ur;
	int rc;

	pnm_uring_read_cmd(&cmd, io_uring_sqe_cmd(ioucmd->sqe));
	rc = pnm_cmd_prepare(pf, &cmd, &req);
	if (rc)
		return rc;

	/*
	 * Inline issue must not sleep: without memory now, -EAGAIN makes
	 * io_uring issue the command again from a worker that may.
	 */
	ur = kmalloc(sizeof(*ur), nonblock ? GFP_NOWAIT | __GFP_NOWARN :
			GFP_KERNEL);
	if (!ur) {
		pnm_request_release(&req);
		return nonblock ? -EAGAIN : -ENOMEM;
	}
	ur->ioucmd = ioucmd;
	ur->q = pnm_pick_queue(pf->pnm);
	INIT_LIST_HEAD(&ur->node);
	ur->req = req;
	ur->state = PNM_URING_ISSUING;
	ur->res = 0;
	ur->res2 = 0;
	pdu->ur = ur;
	pdu->q = ur->q;

	/*
	 * Mark the command cancelable before the device or the poller can see
	 * it: once queued it may complete at any moment, and the request must
	 * not be touched after its completion.
	 */
	io_uring_cmd_mark_cancelable(ioucmd, issue_flags);
	rc = pnm_queue_add_uring(ur->q, ur);
	if (rc)
		pnm_uring_done(ur, rc, 0, issue_flags);
	return -EIOCBQUEUED;
}

/**
 * pnm_uring_cmd() - file_operations.uring_cmd of /dev/cxl/pnmN
 * @ioucmd: the command
 * @issue_flags: IO_URING_F_* from io_uring
 *
 * Return: -EIOCBQUEUED once queued (the CQE follows), or the errno of a
 * command rejected at once: -EOPNOTSUPP for a ring without SQE128 and
 * CQE32, -ENOTTY for an unknown cmd_op, -ENODEV after remove, -EINVAL or
 * -ENOENT as the SUBMIT ioctl, -ENOMEM.
 */
int pnm_uring_cmd(struct io_uring_cmd *ioucmd, unsigned int issue_flags)
{
	const unsigned int big = IO_URING_F_SQE128 | IO_URING_F_CQE32;
	struct pnm_file *pf = ioucmd->file->private_data;
	struct pnm_dev *pnm = pf->pnm;
	int idx, rc;

	/* The command area of a 128-byte SQE contains struct cxl_pnm_cmd. */
	BUILD_BUG_ON(sizeof(struct cxl_pnm_cmd) != 80);
	BUILD_BUG_ON(offsetof(struct io_uring_sqe, cmd) +
		     sizeof(struct cxl_pnm_cmd) > 2 * sizeof(struct io_uring_sqe));
	BUILD_BUG_ON(sizeof(struct cxl_pnm_result) != 16);
	BUILD_BUG_ON(sizeof(struct pnm_uring_pdu) > sizeof_field(struct io_uring_cmd, pdu));

	if (issue_flags & IO_URING_F_CANCEL) {
		pnm_uring_cancel(ioucmd, issue_flags);
		return 0;
	}
	if ((issue_flags & big) != big)
		return -EOPNOTSUPP;

	idx = srcu_read_lock(&pnm->srcu);
	if (READ_ONCE(pnm->state) == PNM_STATE_REMOVED) {
		rc = -ENODEV;
	} else {
		switch (ioucmd->cmd_op) {
		case CXL_PNM_URING_CMD_SUBMIT:
			rc = pnm_uring_submit(pf, ioucmd, issue_flags);
			break;
		default:
			dev_dbg_ratelimited(&pnm->dev, "unknown io_uring cmd_op %#x\n",
					    ioucmd->cmd_op);
			rc = -ENOTTY;
			break;
		}
	}
	srcu_read_unlock(&pnm->srcu, idx);
	return rc;
}

/**
 * pnm_uring_cmd_iopoll() - file_operations.uring_cmd_iopoll
 * @ioucmd: a queued command of an IORING_SETUP_IOPOLL ring
 * @iob: unused, completions go through task work
 * @poll_flags: unused
 *
 * Consumes the completions of the command's queue.  As NVMe does, the CQEs
 * are posted through task work, so a ring polling a queue that another
 * ring's commands share completes each command in its own ring.
 *
 * Return: completions consumed.
 */
int pnm_uring_cmd_iopoll(struct io_uring_cmd *ioucmd,
			 struct io_comp_batch *iob, unsigned int poll_flags)
{
	struct pnm_queue *q = pnm_uring_pdu(ioucmd)->q;
	struct pnm_dev *pnm = q->pnm;
	unsigned int n = 0;
	int idx;

	/* Remove unmaps the queues after synchronize_srcu(). */
	idx = srcu_read_lock(&pnm->srcu);
	if (READ_ONCE(pnm->state) == PNM_STATE_LIVE)
		n = pnm_queue_iopoll(q);
	srcu_read_unlock(&pnm->srcu, idx);
	return n;
}
