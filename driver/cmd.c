// SPDX-License-Identifier: GPL-2.0-only
/*
 * Validation of user commands and their translation into device commands.
 *
 * Every submission path (the SUBMIT ioctl today) copies a struct cxl_pnm_cmd
 * into kernel memory and passes it to pnm_cmd_prepare(), which checks what
 * the driver owns: opcode, flags, reserved fields and every buffer.  Shapes,
 * dtypes and page indices are the device's to check, and it completes a bad
 * command with an error status.
 */
#include <linux/overflow.h>
#include <linux/stddef.h>
#include "pnm_private.h"

/* The uapi command starts with the device command's first 16 bytes. */
static_assert(offsetof(struct cxl_pnm_cmd, dtype) == offsetof(struct pnm_hw_cmd, dtype));
static_assert(offsetof(struct cxl_pnm_cmd, page_shift) == offsetof(struct pnm_hw_cmd, page_shift));
static_assert(offsetof(struct cxl_pnm_cmd, group) == offsetof(struct pnm_hw_cmd, group));
static_assert(offsetof(struct cxl_pnm_cmd, head_dim) == offsetof(struct pnm_hw_cmd, head_dim));
static_assert(offsetof(struct cxl_pnm_cmd, flags) == offsetof(struct pnm_hw_cmd, flags));
static_assert(offsetof(struct cxl_pnm_cmd, rsvd) == offsetof(struct pnm_hw_cmd, rsvd));
static_assert(offsetof(struct cxl_pnm_cmd, n_tokens) == offsetof(struct pnm_hw_cmd, n_tokens));
static_assert(offsetof(struct cxl_pnm_cmd, k) == offsetof(struct pnm_hw_cmd, k));
static_assert(offsetof(struct cxl_pnm_cmd, n_list) == offsetof(struct pnm_hw_cmd, n_list));
static_assert(offsetof(struct cxl_pnm_cmd, pool) == 16);
static_assert(sizeof(struct cxl_pnm_cmd) == 80);
static_assert(sizeof(struct cxl_pnm_result) == 16);
static_assert(sizeof(struct pnm_hw_cmd) == 64);
static_assert(sizeof(struct pnm_hw_cqe) == 32);
/* Opcodes have the same numbers in the ABI and on the device. */
static_assert(CXL_PNM_OP_SELECT_ATTEND + 1 == PNM_OP_COUNT);

#define PNM_UAPI_CMD_FLAGS	(CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT)

static const char *const pnm_buf_names[PNM_CMD_NR_BUFS] = {
	"pool", "table", "in", "out",
};

void pnm_request_release(struct pnm_request *req)
{
	unsigned int i;

	for (i = 0; i < PNM_CMD_NR_BUFS; i++) {
		if (req->regions[i]) {
			pnm_region_put(req->regions[i]);
			req->regions[i] = NULL;
		}
	}
}

/*
 * Resolve buffer @i of a command to a DPA range inside one region of @pf.
 * On success *@regionp holds a reference (or NULL for an unused buffer).
 */
static int pnm_buf_resolve(struct pnm_file *pf, unsigned int i,
			   const struct cxl_pnm_buf *buf,
			   struct pnm_region **regionp, u64 *dpa)
{
	struct device *dev = &pf->pnm->dev;
	const char *name = pnm_buf_names[i];
	struct pnm_region *region;
	u64 end;

	*regionp = NULL;
	*dpa = 0;
	if (!buf->handle) {
		if (buf->length || buf->offset) {
			dev_dbg_ratelimited(dev, "%s buffer without a region has length %u, offset %llu\n",
					    name, buf->length, buf->offset);
			return -EINVAL;
		}
		return 0;
	}

	region = pnm_file_region_get(pf, buf->handle);
	if (!region) {
		dev_dbg_ratelimited(dev, "%s buffer names unknown region %u\n",
				    name, buf->handle);
		return -ENOENT;
	}
	if (check_add_overflow(buf->offset, (u64)buf->length, &end) ||
	    end > region->size) {
		dev_dbg_ratelimited(dev, "%s buffer %llu+%u runs past region %u of %llu bytes\n",
				    name, buf->offset, buf->length,
				    buf->handle, region->size);
		pnm_region_put(region);
		return -EINVAL;
	}
	*regionp = region;
	*dpa = pnm_region_dpa(region) + buf->offset;
	return 0;
}

/**
 * pnm_cmd_prepare() - validate a command and build its device command
 * @pf: file whose regions the command's buffers name
 * @cmd: the command, already copied into kernel memory
 * @req: filled with the device command and the region references it needs
 *
 * Context: any context that may take the region table lock.
 *
 * Return: 0, -EINVAL for a bad field or a buffer outside its region, -ENOENT
 * for a region handle this file does not have.  On error @req holds no
 * reference.
 */
int pnm_cmd_prepare(struct pnm_file *pf, const struct cxl_pnm_cmd *cmd,
		    struct pnm_request *req)
{
	const struct cxl_pnm_buf *bufs[PNM_CMD_NR_BUFS] = {
		&cmd->pool, &cmd->table, &cmd->in, &cmd->out,
	};
	struct device *dev = &pf->pnm->dev;
	struct pnm_hw_cmd *hw = &req->hw;
	u64 dpa[PNM_CMD_NR_BUFS];
	unsigned int i;
	int rc;

	memset(req, 0, sizeof(*req));
	if (cmd->opcode >= PNM_OP_COUNT) {
		dev_dbg_ratelimited(dev, "unknown opcode %u\n", cmd->opcode);
		return -EINVAL;
	}
	if (cmd->flags & ~PNM_UAPI_CMD_FLAGS) {
		dev_dbg_ratelimited(dev, "unknown command flags %#x\n",
				    cmd->flags);
		return -EINVAL;
	}
	if (cmd->rsvd) {
		dev_dbg_ratelimited(dev, "reserved command byte is %#x\n",
				    cmd->rsvd);
		return -EINVAL;
	}

	for (i = 0; i < PNM_CMD_NR_BUFS; i++) {
		rc = pnm_buf_resolve(pf, i, bufs[i], &req->regions[i], &dpa[i]);
		if (rc) {
			pnm_request_release(req);
			return rc;
		}
	}

	hw->opcode = cmd->opcode;
	hw->dtype = cmd->dtype;
	hw->page_shift = cmd->page_shift;
	hw->group = cmd->group;
	hw->head_dim = cpu_to_le16(cmd->head_dim);
	hw->flags = (cmd->flags & CXL_PNM_CMD_KEEP_SINK ? PNM_CMD_KEEP_SINK : 0) |
		    (cmd->flags & CXL_PNM_CMD_KEEP_RECENT ? PNM_CMD_KEEP_RECENT : 0);
	hw->rsvd = 0;
	hw->n_tokens = cpu_to_le32(cmd->n_tokens);
	hw->k = cpu_to_le16(cmd->k);
	hw->n_list = cpu_to_le16(cmd->n_list);
	hw->pool_dpa = cpu_to_le64(dpa[0]);
	hw->table_dpa = cpu_to_le64(dpa[1]);
	hw->in_dpa = cpu_to_le64(dpa[2]);
	hw->out_dpa = cpu_to_le64(dpa[3]);
	hw->pool_len = cpu_to_le32(cmd->pool.length);
	hw->table_len = cpu_to_le32(cmd->table.length);
	hw->in_len = cpu_to_le32(cmd->in.length);
	hw->out_len = cpu_to_le32(cmd->out.length);
	return 0;
}
