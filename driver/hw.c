// SPDX-License-Identifier: GPL-2.0-only
/*
 * Control block of a CXL-PNM device: identify the device, read its
 * geometry, map the control, doorbell and queue areas, reset and enable.
 */
#include <linux/io.h>
#include <linux/iopoll.h>
#include <linux/log2.h>
#include <linux/overflow.h>
#include "pnm_private.h"

#define PNM_HW_RESET_TIMEOUT_US		(2 * USEC_PER_SEC)
#define PNM_HW_ENABLE_TIMEOUT_US	(2 * USEC_PER_SEC)
#define PNM_HW_POLL_US			1000

u32 pnm_hw_status(struct pnm_dev *pnm)
{
	return le32_to_cpu(READ_ONCE(pnm->ctrl->status));
}

u64 pnm_hw_heartbeat(struct pnm_dev *pnm)
{
	return le64_to_cpu(READ_ONCE(pnm->ctrl->heartbeat));
}

static void pnm_hw_write_control(struct pnm_dev *pnm, u32 control)
{
	/* Earlier stores to doorbells and queues must reach the device first. */
	wmb();
	WRITE_ONCE(pnm->ctrl->control, cpu_to_le32(control));
}

/*
 * Check that the area [@offset, @offset + @size) starts at or after @lo,
 * ends at or before @hi, is at least @min bytes and starts aligned to
 * @align.  Return its end in @end.
 */
static int pnm_hw_check_area(struct device *dev, const char *name,
			     u64 offset, u64 size, u64 min, u64 lo, u64 hi,
			     u64 align, u64 *end)
{
	if (offset < lo || !IS_ALIGNED(offset, align)) {
		dev_err(dev, "%s area at DPA %#llx: expected an %#llx-aligned DPA >= %#llx\n",
			name, offset, align, lo);
		return -EINVAL;
	}
	if (size < min) {
		dev_err(dev, "%s area of %#llx bytes: expected at least %#llx\n",
			name, size, min);
		return -EINVAL;
	}
	if (check_add_overflow(offset, size, end) || *end > hi) {
		dev_err(dev, "%s area %#llx+%#llx runs past DPA %#llx\n",
			name, offset, size, hi);
		return -EINVAL;
	}
	return 0;
}

static int pnm_hw_check_queues(struct device *dev, u32 nr_queues, u32 depth)
{
	if (nr_queues == 0) {
		dev_err(dev, "device reports no queues\n");
		return -EINVAL;
	}
	if (depth < 2 || depth > PNM_MAX_QUEUE_DEPTH || !is_power_of_2(depth)) {
		dev_err(dev, "queue depth %u: expected a power of two in [2, %u]\n",
			depth, PNM_MAX_QUEUE_DEPTH);
		return -EINVAL;
	}
	return 0;
}

/* Read and check the geometry of a control block that passed identify. */
static int pnm_hw_read_geometry(struct pnm_dev *pnm,
				const struct pnm_hw_ctrl *ctrl)
{
	struct device *dev = pnm_parent(pnm);
	u64 db_offset = le64_to_cpu(ctrl->doorbell_offset);
	u64 db_size = le64_to_cpu(ctrl->doorbell_size);
	u64 queue_offset = le64_to_cpu(ctrl->queue_offset);
	u64 queue_size = le64_to_cpu(ctrl->queue_size);
	u64 kv_offset = le64_to_cpu(ctrl->kv_offset);
	u64 kv_size = le64_to_cpu(ctrl->kv_size);
	u64 dev_size = le64_to_cpu(ctrl->dev_size);
	u32 nr_queues = le32_to_cpu(ctrl->nr_queues);
	u32 depth = le32_to_cpu(ctrl->queue_depth);
	u64 db_end, queue_end, kv_end, queue_min;
	int rc;

	rc = pnm_hw_check_queues(dev, nr_queues, depth);
	if (rc)
		return rc;
	if (dev_size > pnm->range_size) {
		dev_err(dev, "device size %#llx exceeds the dax range of %#llx bytes\n",
			dev_size, pnm->range_size);
		return -EINVAL;
	}

	rc = pnm_hw_check_area(dev, "doorbell", db_offset, db_size,
			       (u64)nr_queues * sizeof(struct pnm_hw_doorbell),
			       PNM_HW_CTRL_SIZE, dev_size, PNM_HW_CACHELINE,
			       &db_end);
	if (rc)
		return rc;
	queue_min = (pnm_hw_sq_bytes(depth) + pnm_hw_cq_bytes(depth)) * nr_queues;
	rc = pnm_hw_check_area(dev, "queue", queue_offset, queue_size,
			       queue_min, db_end, dev_size, PNM_HW_ALIGN,
			       &queue_end);
	if (rc)
		return rc;
	/* The KV area is mapped to userspace page by page. */
	rc = pnm_hw_check_area(dev, "KV", kv_offset, kv_size, PAGE_SIZE,
			       queue_end, dev_size, PAGE_SIZE, &kv_end);
	if (rc)
		return rc;

	pnm->hw_version = le32_to_cpu(ctrl->version);
	/* The driver uses at most PNM_MAX_QUEUES; the others stay idle. */
	pnm->nr_queues = min_t(u32, nr_queues, PNM_MAX_QUEUES);
	pnm->queue_depth = depth;
	pnm->dtypes = le32_to_cpu(ctrl->dtypes);
	pnm->max_head_dim = le32_to_cpu(ctrl->max_head_dim);
	pnm->max_group = le32_to_cpu(ctrl->max_group);
	pnm->page_shifts = le32_to_cpu(ctrl->page_shifts);
	pnm->max_k = le32_to_cpu(ctrl->max_k);
	pnm->doorbell_offset = db_offset;
	pnm->queue_offset = queue_offset;
	pnm->hw_nr_queues = nr_queues;
	pnm->kv_offset = kv_offset;
	pnm->kv_size = round_down(kv_size, PAGE_SIZE);
	return 0;
}

/* Check magic, version and READY of the control block. */
static int pnm_hw_identify(struct device *dev, const struct pnm_hw_ctrl *ctrl)
{
	u64 magic = le64_to_cpu(ctrl->magic);
	u32 version = le32_to_cpu(ctrl->version);
	u32 status = le32_to_cpu(ctrl->status);

	if (magic != PNM_HW_MAGIC) {
		dev_err(dev, "no CXL-PNM device: magic %#llx, expected %#llx\n",
			magic, PNM_HW_MAGIC);
		return -ENODEV;
	}
	if (version != PNM_HW_VERSION) {
		dev_err(dev, "unsupported interface version %u, expected %u\n",
			version, PNM_HW_VERSION);
		return -ENODEV;
	}
	if (!(status & PNM_HW_STATUS_READY)) {
		dev_err(dev, "device not ready: status %#x\n", status);
		return -ENODEV;
	}
	return 0;
}

/**
 * pnm_hw_map() - identify the device and map its control area
 * @pnm: device whose @base and @range_size are set
 *
 * Maps the control block alone to check it, then DPA 0 up to the KV area
 * (control block, doorbells, queues) for the lifetime of the binding.  The
 * KV area itself is never mapped by the kernel; only userspace maps it.
 *
 * Both mappings are write-back, as is the user mapping of the KV area, so
 * the PAT records one memory type for the device.  That is correct on QEMU,
 * where every access to the CXL window goes through the device model.
 * NOTE: on real CXL type-3 hardware without back-invalidation (HDM-DB) the
 * host must flush or invalidate cache lines that the accelerator writes
 * (clflushopt before reading a completion) or map the area uncached.
 *
 * Return: 0, -ENODEV if this is no usable CXL-PNM device, -EINVAL if its
 * geometry is inconsistent, -ENOMEM if a mapping fails.
 */
int pnm_hw_map(struct pnm_dev *pnm)
{
	struct device *dev = pnm_parent(pnm);
	struct pnm_hw_ctrl *ctrl;
	void *mem;
	int rc;

	BUILD_BUG_ON(sizeof(struct pnm_hw_ctrl) > PNM_HW_CTRL_SIZE);
	BUILD_BUG_ON(offsetof(struct pnm_hw_ctrl, control) % PNM_HW_CACHELINE);
	BUILD_BUG_ON(sizeof(struct pnm_hw_doorbell) != PNM_HW_DOORBELL_STRIDE);

	if (pnm->range_size < PNM_HW_CTRL_SIZE) {
		dev_err(dev, "dax range of %#llx bytes cannot hold a control block\n",
			pnm->range_size);
		return -ENODEV;
	}
	ctrl = memremap(pnm->base, PNM_HW_CTRL_SIZE, MEMREMAP_WB);
	if (!ctrl)
		return -ENOMEM;
	rc = pnm_hw_identify(dev, ctrl);
	if (!rc)
		rc = pnm_hw_read_geometry(pnm, ctrl);
	memunmap(ctrl);
	if (rc)
		return rc;

	mem = devm_memremap(dev, pnm->base, pnm->kv_offset, MEMREMAP_WB);
	if (IS_ERR(mem)) {
		dev_err(dev, "cannot map DPA 0-%#llx: %pe\n", pnm->kv_offset, mem);
		return PTR_ERR(mem);
	}
	pnm->ctrl = mem;
	pnm->doorbells = mem + pnm->doorbell_offset;
	return 0;
}

/* Wait until (status & @mask) == @want or FATAL; return the last status. */
static int pnm_hw_wait_status(struct pnm_dev *pnm, u32 mask, u32 want,
			      u64 timeout_us, u32 *status)
{
	return read_poll_timeout(pnm_hw_status, *status,
				 (*status & mask) == want ||
				 (*status & PNM_HW_STATUS_FATAL),
				 PNM_HW_POLL_US, timeout_us, false, pnm);
}

/**
 * pnm_hw_reset() - stop the device's queues
 * @pnm: device
 *
 * The device drops commands it has not started and finishes the one it is
 * executing.  Once ENABLED is clear it writes no completion and reads no
 * submission queue until the next enable.
 *
 * Return: 0, or -ETIMEDOUT if ENABLED stays set, -EIO on FATAL.
 */
int pnm_hw_reset(struct pnm_dev *pnm)
{
	struct device *dev = pnm_parent(pnm);
	u32 status;
	int rc;

	pnm_hw_write_control(pnm, PNM_HW_CONTROL_RESET);
	rc = pnm_hw_wait_status(pnm, PNM_HW_STATUS_ENABLED, 0,
				PNM_HW_RESET_TIMEOUT_US, &status);
	if (rc) {
		dev_err(dev, "reset timed out: status %#x\n", status);
		return rc;
	}
	if (status & PNM_HW_STATUS_FATAL) {
		dev_err(dev, "device failed during reset: status %#x\n", status);
		return -EIO;
	}
	return 0;
}

/**
 * pnm_hw_enable() - reset the device and bring its queues up
 * @pnm: mapped device
 *
 * Every doorbell is zeroed before ENABLE: the device starts each queue at
 * SQ head 0, CQ tail 0 and phase 1, and the host's indices must match.
 *
 * Return: 0, -ETIMEDOUT if the device does not respond, -EIO on FATAL.
 */
int pnm_hw_enable(struct pnm_dev *pnm)
{
	struct device *dev = pnm_parent(pnm);
	u32 status, i;
	int rc;

	rc = pnm_hw_reset(pnm);
	if (rc)
		return rc;

	for (i = 0; i < pnm->hw_nr_queues; i++) {
		WRITE_ONCE(pnm->doorbells[i].sq_tail, 0);
		WRITE_ONCE(pnm->doorbells[i].cq_head, 0);
	}
	pnm_hw_write_control(pnm, PNM_HW_CONTROL_ENABLE);
	rc = pnm_hw_wait_status(pnm, PNM_HW_STATUS_ENABLED,
				PNM_HW_STATUS_ENABLED,
				PNM_HW_ENABLE_TIMEOUT_US, &status);
	if (rc) {
		dev_err(dev, "enable timed out: status %#x\n", status);
		return rc;
	}
	if (status & PNM_HW_STATUS_FATAL) {
		dev_err(dev, "device failed during enable: status %#x\n", status);
		return -EIO;
	}
	return 0;
}
