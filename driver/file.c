// SPDX-License-Identifier: GPL-2.0-only
/*
 * The char device /dev/cxl/pnmN: open files, their region tables, the
 * ioctls and mmap.
 */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include "pnm_private.h"

/*
 * Lifetime and remove: every file operation runs inside an SRCU read
 * section of the device and first checks that the device is not removed.
 * Remove marks the device removed, fails waiting commands, then waits for
 * the read sections to end (synchronize_srcu()), so no operation touches the
 * device afterwards.  SRCU, not a rw_semaphore: an ioctl inside the
 * section may fault and wait for mmap_lock, while mmap() enters the section
 * with mmap_lock held.  With a rw_semaphore, a waiting writer would block
 * the second reader and deadlock both.
 */
static bool pnm_removed(struct pnm_dev *pnm)
{
	return READ_ONCE(pnm->state) == PNM_STATE_REMOVED;
}

static int pnm_file_init(struct pnm_dev *pnm, struct inode *inode,
			 struct file *file)
{
	struct pnm_file *pf;

	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	get_device(&pnm->dev);
	pf->pnm = pnm;
	pf->file = file;
	xa_init_flags(&pf->regions, XA_FLAGS_ALLOC1);
	mutex_lock(&pnm->files_lock);
	list_add_tail(&pf->node, &pnm->files);
	mutex_unlock(&pnm->files_lock);
	file->private_data = pf;
	return nonseekable_open(inode, file);
}

static int pnm_open(struct inode *inode, struct file *file)
{
	struct pnm_dev *pnm = container_of(inode->i_cdev, struct pnm_dev, cdev);
	int idx, rc;

	idx = srcu_read_lock(&pnm->srcu);
	rc = pnm_removed(pnm) ? -ENODEV : pnm_file_init(pnm, inode, file);
	srcu_read_unlock(&pnm->srcu, idx);
	return rc;
}

/* Runs after the last mapping of the file is gone: each VMA holds the file. */
static int pnm_release(struct inode *inode, struct file *file)
{
	struct pnm_file *pf = file->private_data;
	struct pnm_dev *pnm = pf->pnm;
	struct pnm_region *region;
	unsigned long handle;

	mutex_lock(&pnm->files_lock);
	list_del(&pf->node);
	mutex_unlock(&pnm->files_lock);

	xa_for_each(&pf->regions, handle, region) {
		xa_erase(&pf->regions, handle);
		pnm_region_put(region);
	}
	xa_destroy(&pf->regions);
	kfree(pf);
	put_device(&pnm->dev);
	return 0;
}

static int pnm_ioctl_get_info(struct pnm_dev *pnm, void __user *argp)
{
	struct cxl_pnm_info info;

	memset(&info, 0, sizeof(info));
	info.abi_version = CXL_PNM_ABI_VERSION;
	info.hw_version = pnm->hw_version;
	info.kv_size = pnm->kv_size;
	info.kv_free = pnm_pool_free_bytes(pnm);
	info.nr_queues = pnm->nr_queues;
	info.queue_depth = pnm->queue_depth;
	info.dtypes = pnm->dtypes;
	info.max_head_dim = pnm->max_head_dim;
	info.max_group = pnm->max_group;
	info.page_shifts = pnm->page_shifts;
	info.max_k = pnm->max_k;
	info.max_batch = PNM_MAX_BATCH;
	info.region_align = PAGE_SIZE;
	if (copy_to_user(argp, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

static int pnm_ioctl_region_alloc(struct pnm_file *pf, void __user *argp)
{
	struct pnm_dev *pnm = pf->pnm;
	struct cxl_pnm_region_alloc arg;
	struct pnm_region *region;
	u32 handle;
	int rc;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.flags || arg.rsvd[0] || arg.rsvd[1]) {
		dev_dbg_ratelimited(&pnm->dev, "region alloc: flags %#x or reserved fields set\n",
				    arg.flags);
		return -EINVAL;
	}
	if (!arg.size || !IS_ALIGNED(arg.size, PAGE_SIZE)) {
		dev_dbg_ratelimited(&pnm->dev, "region size %llu is not a positive multiple of %lu\n",
				    arg.size, PAGE_SIZE);
		return -EINVAL;
	}
	if (arg.size > pnm->kv_size)
		return -ENOMEM;

	region = pnm_region_alloc(pnm, arg.size);
	if (!region)
		return -ENOMEM;
	rc = xa_alloc(&pf->regions, &handle, region, xa_limit_32b, GFP_KERNEL);
	if (rc) {
		pnm_region_put(region);
		return rc == -EBUSY ? -ENOSPC : rc;
	}

	arg.handle = handle;
	arg.mmap_offset = region->offset;
	if (copy_to_user(argp, &arg, sizeof(arg))) {
		/* Userspace never received the handle, so take it back. */
		xa_erase(&pf->regions, handle);
		pnm_region_put(region);
		return -EFAULT;
	}
	return 0;
}

static int pnm_ioctl_region_free(struct pnm_file *pf, void __user *argp)
{
	struct cxl_pnm_region_free arg;
	struct pnm_region *region;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	if (arg.rsvd) {
		dev_dbg_ratelimited(&pf->pnm->dev, "region free: reserved field is %#x\n",
				    arg.rsvd);
		return -EINVAL;
	}
	/*
	 * Handle 0 is never allocated.  Erasing it anyway would mark index 0
	 * free in the allocating xarray, and the next REGION_ALLOC would hand
	 * out handle 0, which commands read as "no buffer".
	 */
	if (!arg.handle)
		return -ENOENT;
	/* Mappings and commands in flight keep their own references. */
	region = xa_erase(&pf->regions, arg.handle);
	if (!region)
		return -ENOENT;
	pnm_region_put(region);
	return 0;
}

static int pnm_submit_check(struct pnm_dev *pnm,
			    const struct cxl_pnm_submit *arg)
{
	if (!arg->nr || arg->nr > PNM_MAX_BATCH) {
		dev_dbg_ratelimited(&pnm->dev, "batch of %u commands, expected 1 to %u\n",
				    arg->nr, PNM_MAX_BATCH);
		return -EINVAL;
	}
	if (arg->flags || arg->rsvd) {
		dev_dbg_ratelimited(&pnm->dev, "submit: flags %#x or reserved field %#x set\n",
				    arg->flags, arg->rsvd);
		return -EINVAL;
	}
	return 0;
}

/*
 * Copy the batch in once, validate every command before submitting any, and
 * zero the user's result array first so that a bad result pointer fails
 * before the device receives a command.
 */
static int pnm_ioctl_submit(struct pnm_file *pf, void __user *argp)
{
	struct pnm_dev *pnm = pf->pnm;
	struct cxl_pnm_result __user *uresults;
	struct cxl_pnm_submit arg;
	struct pnm_batch batch = {};
	struct cxl_pnm_cmd *cmds;
	unsigned int i, nr;
	size_t results_size;
	int rc;

	if (copy_from_user(&arg, argp, sizeof(arg)))
		return -EFAULT;
	rc = pnm_submit_check(pnm, &arg);
	if (rc)
		return rc;
	nr = arg.nr;
	results_size = array_size(nr, sizeof(struct cxl_pnm_result));
	uresults = u64_to_user_ptr(arg.results);

	cmds = vmemdup_array_user(u64_to_user_ptr(arg.cmds), nr, sizeof(*cmds));
	if (IS_ERR(cmds))
		return PTR_ERR(cmds);
	if (clear_user(uresults, results_size)) {
		rc = -EFAULT;
		goto out_free_cmds;
	}

	batch.nr = nr;
	batch.reqs = kvcalloc(nr, sizeof(*batch.reqs), GFP_KERNEL);
	batch.results = kvcalloc(nr, sizeof(*batch.results), GFP_KERNEL);
	if (!batch.reqs || !batch.results) {
		rc = -ENOMEM;
		goto out_free_batch;
	}

	for (i = 0; i < nr; i++) {
		rc = pnm_cmd_prepare(pf, &cmds[i], &batch.reqs[i]);
		if (rc) {
			dev_dbg_ratelimited(&pnm->dev, "command %u of the batch rejected: %d\n",
					    i, rc);
			goto out_release;
		}
	}

	rc = pnm_batch_execute(pnm, &batch, arg.timeout_ms ?:
			       PNM_DEFAULT_TIMEOUT_MS);
	if (!rc && copy_to_user(uresults, batch.results, results_size))
		rc = -EFAULT;

out_release:
	/* Commands that reached a queue gave their references to its slots. */
	for (i = 0; i < nr; i++)
		pnm_request_release(&batch.reqs[i]);
out_free_batch:
	kvfree(batch.results);
	kvfree(batch.reqs);
out_free_cmds:
	kvfree(cmds);
	return rc;
}

static long pnm_ioctl_dispatch(struct pnm_file *pf, unsigned int cmd,
			       void __user *argp)
{
	switch (cmd) {
	case CXL_PNM_IOC_GET_INFO:
		return pnm_ioctl_get_info(pf->pnm, argp);
	case CXL_PNM_IOC_REGION_ALLOC:
		return pnm_ioctl_region_alloc(pf, argp);
	case CXL_PNM_IOC_REGION_FREE:
		return pnm_ioctl_region_free(pf, argp);
	case CXL_PNM_IOC_SUBMIT:
		return pnm_ioctl_submit(pf, argp);
	default:
		return -ENOTTY;
	}
}

static long pnm_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct pnm_file *pf = file->private_data;
	struct pnm_dev *pnm = pf->pnm;
	int idx;
	long rc;

	idx = srcu_read_lock(&pnm->srcu);
	if (pnm_removed(pnm))
		rc = -ENODEV;
	else
		rc = pnm_ioctl_dispatch(pf, cmd, (void __user *)arg);
	srcu_read_unlock(&pnm->srcu, idx);
	return rc;
}

static int pnm_mmap(struct file *file, struct vm_area_struct *vma)
{
	struct pnm_file *pf = file->private_data;
	struct pnm_dev *pnm = pf->pnm;
	int idx, rc;

	idx = srcu_read_lock(&pnm->srcu);
	rc = pnm_removed(pnm) ? -ENODEV : pnm_region_mmap(pf, vma);
	srcu_read_unlock(&pnm->srcu, idx);
	return rc;
}

static const struct file_operations pnm_fops = {
	.owner = THIS_MODULE,
	.open = pnm_open,
	.release = pnm_release,
	.unlocked_ioctl = pnm_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = pnm_mmap,
	.uring_cmd = pnm_uring_cmd,
	.uring_cmd_iopoll = pnm_uring_cmd_iopoll,
};

/* Zap every user mapping of the device once no mmap() can run any more. */
void pnm_files_zap_mappings(struct pnm_dev *pnm)
{
	struct pnm_file *pf;

	mutex_lock(&pnm->files_lock);
	list_for_each_entry(pf, &pnm->files, node)
		unmap_mapping_range(pf->file->f_mapping, 0, 0, 1);
	mutex_unlock(&pnm->files_lock);
}

int pnm_cdev_add(struct pnm_dev *pnm)
{
	cdev_init(&pnm->cdev, &pnm_fops);
	pnm->cdev.owner = THIS_MODULE;
	return cdev_device_add(&pnm->cdev, &pnm->dev);
}

void pnm_cdev_del(struct pnm_dev *pnm)
{
	cdev_device_del(&pnm->cdev, &pnm->dev);
}
