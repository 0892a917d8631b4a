// SPDX-License-Identifier: GPL-2.0-only
/*
 * cxl_pnm: driver for CXL Processing-Near-Memory accelerators.
 *
 * The accelerator lives in a CXL type-3 memory expander whose memory the
 * CXL core exposes as a dax device.  This DAX-bus driver claims such a dax
 * device, drives the accelerator through the control block and queues at
 * the start of its memory and hands the rest out as regions through the
 * char device /dev/cxl/pnmN.  Documentation/driver.rst describes the design.
 */
#include <linux/debugfs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/range.h>
#include <linux/slab.h>
#include <bus.h>
#include <dax-private.h>
#include "pnm_private.h"

static dev_t pnm_devt;
static DEFINE_IDA(pnm_ida);
static struct dentry *pnm_debugfs_root;

static char *pnm_devnode(const struct device *dev, umode_t *mode)
{
	if (mode)
		*mode = 0600;
	return kasprintf(GFP_KERNEL, "cxl/%s", dev_name(dev));
}

static const struct class pnm_class = {
	.name = "cxl_pnm",
	.devnode = pnm_devnode,
};

/* Runs when the binding, every open file and every region are gone. */
static void pnm_dev_release(struct device *dev)
{
	struct pnm_dev *pnm = to_pnm_dev(dev);

	pnm_pool_destroy(pnm);
	pnm_queues_free(pnm);
	cleanup_srcu_struct(&pnm->srcu);
	ida_free(&pnm_ida, pnm->id);
	kfree(pnm);
}

/* Allocate the device state; put_device() frees it from here on. */
static struct pnm_dev *pnm_alloc(struct dev_dax *dev_dax,
				 const struct range *range)
{
	struct pnm_dev *pnm;
	int id, rc;

	pnm = kzalloc(sizeof(*pnm), GFP_KERNEL);
	if (!pnm)
		return ERR_PTR(-ENOMEM);
	id = ida_alloc_max(&pnm_ida, PNM_MAX_DEVICES - 1, GFP_KERNEL);
	if (id < 0) {
		kfree(pnm);
		return ERR_PTR(id);
	}
	rc = init_srcu_struct(&pnm->srcu);
	if (rc) {
		ida_free(&pnm_ida, id);
		kfree(pnm);
		return ERR_PTR(rc);
	}

	pnm->id = id;
	pnm->dev_dax = dev_dax;
	pnm->base = range->start;
	pnm->range_size = range_len(range);
	pnm->state = PNM_STATE_LIVE;
	mutex_init(&pnm->files_lock);
	INIT_LIST_HEAD(&pnm->files);
	init_waitqueue_head(&pnm->poll_wait);
	init_waitqueue_head(&pnm->recover_wait);

	device_initialize(&pnm->dev);
	pnm->dev.parent = &dev_dax->dev;
	pnm->dev.class = &pnm_class;
	pnm->dev.devt = MKDEV(MAJOR(pnm_devt), id);
	pnm->dev.groups = pnm_attr_groups;
	pnm->dev.release = pnm_dev_release;
	rc = dev_set_name(&pnm->dev, "pnm%d", id);
	if (rc) {
		put_device(&pnm->dev);
		return ERR_PTR(rc);
	}
	return pnm;
}

/*
 * Probe: claim the dax range, identify and enable the device, set up queues,
 * the region pool and the poller, then publish the char device.  The dax
 * device must be one contiguous range starting at DPA 0 (a 1-way region
 * over the whole type-3 device), so a range offset is a DPA.
 */
static int cxl_pnm_probe(struct dev_dax *dev_dax)
{
	struct device *dev = &dev_dax->dev;
	struct range *range;
	struct pnm_dev *pnm;
	int rc;

	if (dev_dax->nr_range != 1) {
		dev_err(dev, "dax device has %d ranges, expected 1\n",
			dev_dax->nr_range);
		return -EINVAL;
	}
	range = &dev_dax->ranges[0].range;
	if (!devm_request_mem_region(dev, range->start, range_len(range),
				     dev_name(dev))) {
		dev_err(dev, "cannot claim %#llx-%#llx\n",
			range->start, range->end);
		return -EBUSY;
	}

	pnm = pnm_alloc(dev_dax, range);
	if (IS_ERR(pnm))
		return PTR_ERR(pnm);

	rc = pnm_hw_map(pnm);
	if (rc)
		goto err_put;
	rc = pnm_hw_enable(pnm);
	if (rc)
		goto err_put;
	rc = pnm_queues_init(pnm);
	if (rc)
		goto err_reset;
	rc = pnm_pool_init(pnm);
	if (rc)
		goto err_reset;
	rc = pnm_poller_start(pnm);
	if (rc)
		goto err_reset;
	rc = pnm_cdev_add(pnm);
	if (rc)
		goto err_stop_poller;

	pnm_debugfs_init(pnm, pnm_debugfs_root);
	dev_set_drvdata(dev, pnm);
	dev_info(&pnm->dev, "%s: %u queues of depth %u, %llu MiB for regions\n",
		 dev_name(dev), pnm->nr_queues, pnm->queue_depth,
		 pnm->kv_size >> 20);
	return 0;

err_stop_poller:
	pnm_poller_stop(pnm);
err_reset:
	pnm_hw_reset(pnm);
err_put:
	put_device(&pnm->dev);
	return rc;
}

/*
 * Remove is safe with open files, mappings and commands in flight.  It hides
 * the char device, fails waiting commands with -ENODEV, waits for file
 * operations to leave, zaps user mappings, stops the poller and resets the
 * device.  Only then does it give the regions of unfinished commands back.
 * Open files keep the state alive, and their operations return -ENODEV.
 */
static void cxl_pnm_remove(struct dev_dax *dev_dax)
{
	struct pnm_dev *pnm = dev_get_drvdata(&dev_dax->dev);

	pnm_cdev_del(pnm);
	pnm_debugfs_exit(pnm);
	pnm_set_state(pnm, PNM_STATE_REMOVED);
	synchronize_srcu(&pnm->srcu);
	pnm_files_zap_mappings(pnm);
	pnm_poller_stop(pnm);
	/*
	 * NOTE: a device that ignores the reset might still write buffers of
	 * unfinished commands.  The regions are released anyway, because the
	 * memory leaves the driver with the dax range.
	 */
	if (pnm_hw_reset(pnm))
		dev_warn(&dev_dax->dev, "releasing %d unfinished commands of a device that did not reset\n",
			 atomic_read(&pnm->outstanding));
	pnm_queues_release(pnm);
	put_device(&pnm->dev);
}

/*
 * No automatic binding to CXL memory: dax devices of CXL ram regions match
 * only DAXDRV_KMEM_TYPE drivers, so this DAXDRV_DEVICE_TYPE driver binds one
 * only when userspace names it through new_id.  A dax device without the
 * kmem flag (pmem, hmem) may match by type if device_dax leaves it unbound.
 * Probe then finds no CXL-PNM magic and returns -ENODEV.
 */
static struct dax_device_driver cxl_pnm_driver = {
	.probe = cxl_pnm_probe,
	.remove = cxl_pnm_remove,
	.type = DAXDRV_DEVICE_TYPE,
};

static int __init cxl_pnm_init(void)
{
	int rc;

	rc = alloc_chrdev_region(&pnm_devt, 0, PNM_MAX_DEVICES, "cxl_pnm");
	if (rc)
		return rc;
	rc = class_register(&pnm_class);
	if (rc)
		goto err_unregister_chrdev;
	pnm_debugfs_root = debugfs_create_dir("cxl_pnm", NULL);
	rc = dax_driver_register(&cxl_pnm_driver);
	if (rc) {
		debugfs_remove_recursive(pnm_debugfs_root);
		goto err_unregister_class;
	}
	return 0;

err_unregister_class:
	class_unregister(&pnm_class);
err_unregister_chrdev:
	unregister_chrdev_region(pnm_devt, PNM_MAX_DEVICES);
	return rc;
}

static void __exit cxl_pnm_exit(void)
{
	dax_driver_unregister(&cxl_pnm_driver);
	debugfs_remove_recursive(pnm_debugfs_root);
	class_unregister(&pnm_class);
	unregister_chrdev_region(pnm_devt, PNM_MAX_DEVICES);
	ida_destroy(&pnm_ida);
}

module_init(cxl_pnm_init);
module_exit(cxl_pnm_exit);

MODULE_DESCRIPTION("CXL Processing-Near-Memory accelerator driver");
MODULE_LICENSE("GPL");
