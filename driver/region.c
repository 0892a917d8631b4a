// SPDX-License-Identifier: GPL-2.0-only
/*
 * Regions: page-aligned ranges of the KV area, allocated per open file from
 * a genalloc pool and mapped into userspace.
 */
#include <linux/genalloc.h>
#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include "pnm_private.h"

/*
 * The pool hands out DPAs.  DPA 0 holds the control block, so no region
 * starts there and gen_pool_alloc()'s failure value 0 stays unambiguous.
 */
int pnm_pool_init(struct pnm_dev *pnm)
{
	int rc;

	/* genalloc addresses are unsigned long: DPAs need 64 bits. */
	BUILD_BUG_ON(sizeof(unsigned long) < sizeof(u64));
	pnm->pool = gen_pool_create(PAGE_SHIFT, dev_to_node(pnm_parent(pnm)));
	if (!pnm->pool)
		return -ENOMEM;
	rc = gen_pool_add(pnm->pool, pnm->kv_offset, pnm->kv_size,
			  dev_to_node(pnm_parent(pnm)));
	if (rc) {
		gen_pool_destroy(pnm->pool);
		pnm->pool = NULL;
	}
	return rc;
}

/* Called once every region is gone: each one holds a device reference. */
void pnm_pool_destroy(struct pnm_dev *pnm)
{
	if (pnm->pool)
		gen_pool_destroy(pnm->pool);
	pnm->pool = NULL;
}

u64 pnm_pool_free_bytes(struct pnm_dev *pnm)
{
	return gen_pool_avail(pnm->pool);
}

struct pnm_region *pnm_region_alloc(struct pnm_dev *pnm, u64 size)
{
	struct pnm_region *region;
	unsigned long dpa;

	region = kzalloc(sizeof(*region), GFP_KERNEL);
	if (!region)
		return NULL;
	dpa = gen_pool_alloc(pnm->pool, size);
	if (!dpa) {
		kfree(region);
		return NULL;
	}
	kref_init(&region->ref);
	region->pnm = pnm;
	region->offset = dpa - pnm->kv_offset;
	region->size = size;
	get_device(&pnm->dev);
	return region;
}

static void pnm_region_release(struct kref *ref)
{
	struct pnm_region *region = container_of(ref, struct pnm_region, ref);
	struct pnm_dev *pnm = region->pnm;

	gen_pool_free(pnm->pool, pnm_region_dpa(region), region->size);
	kfree(region);
	put_device(&pnm->dev);
}

/*
 * Context: process context, may sleep if this drops the last device
 * reference.  The completion consumers (the poller, an IOPOLL reaper) call
 * it under the CQ lock, but never drop that reference: the binding holds
 * one until the poller has stopped, and a reaper's io_uring command holds
 * its file, which holds another.
 */
void pnm_region_put(struct pnm_region *region)
{
	kref_put(&region->ref, pnm_region_release);
}

/*
 * The handle table's lock makes lookup and reference atomic against
 * REGION_FREE and close, which erase the entry before dropping the table's
 * reference: a region found in the table still has that reference.
 */
struct pnm_region *pnm_file_region_get(struct pnm_file *pf, u32 handle)
{
	struct pnm_region *region;

	xa_lock(&pf->regions);
	region = xa_load(&pf->regions, handle);
	if (region)
		kref_get(&region->ref);
	xa_unlock(&pf->regions);
	return region;
}

/* Find the region of @pf that contains KV offset @offset, with a reference. */
static struct pnm_region *pnm_file_region_find(struct pnm_file *pf, u64 offset)
{
	struct pnm_region *region, *found = NULL;
	unsigned long handle;

	/* A file has few regions; a linear walk is cheap next to mmap. */
	xa_lock(&pf->regions);
	xa_for_each(&pf->regions, handle, region) {
		if (offset >= region->offset &&
		    offset - region->offset < region->size) {
			kref_get(&region->ref);
			found = region;
			break;
		}
	}
	xa_unlock(&pf->regions);
	return found;
}

/*
 * Each VMA holds a region reference: splitting or moving a VMA calls
 * .open on the new one and .close on each one unmapped.
 */
static void pnm_vma_open(struct vm_area_struct *vma)
{
	struct pnm_region *region = vma->vm_private_data;

	kref_get(&region->ref);
}

static void pnm_vma_close(struct vm_area_struct *vma)
{
	pnm_region_put(vma->vm_private_data);
}

static const struct vm_operations_struct pnm_vm_ops = {
	.open = pnm_vma_open,
	.close = pnm_vma_close,
};

/**
 * pnm_region_mmap() - map part of a region of @pf
 * @pf: file
 * @vma: shared mapping whose page offset is a KV offset
 *
 * The whole range is mapped at once; a fault afterwards (only possible
 * once remove zapped the mapping) raises SIGBUS.  The protection stays the
 * default write-back, the memory type of the kernel's own mapping of the
 * device (see pnm_hw_map()).
 *
 * Return: 0, -EINVAL for a private mapping or one running past its region,
 * -ENXIO if no region of @pf contains the start offset.
 */
int pnm_region_mmap(struct pnm_file *pf, struct vm_area_struct *vma)
{
	struct pnm_dev *pnm = pf->pnm;
	u64 len = vma->vm_end - vma->vm_start;
	struct pnm_region *region;
	u64 offset, end;
	unsigned long pfn;
	int rc;

	if (!(vma->vm_flags & VM_SHARED)) {
		dev_dbg_ratelimited(&pnm->dev, "private mapping rejected, use MAP_SHARED\n");
		return -EINVAL;
	}
	if (check_shl_overflow((u64)vma->vm_pgoff, PAGE_SHIFT, &offset))
		return -ENXIO;

	region = pnm_file_region_find(pf, offset);
	if (!region) {
		dev_dbg_ratelimited(&pnm->dev, "no region at mmap offset %#llx\n",
				    offset);
		return -ENXIO;
	}
	if (check_add_overflow(offset, len, &end) ||
	    end > region->offset + region->size) {
		dev_dbg_ratelimited(&pnm->dev, "mapping %#llx+%#llx runs past the region at %#llx of %#llx bytes\n",
				    offset, len, region->offset, region->size);
		rc = -EINVAL;
		goto err_put;
	}

	vm_flags_set(vma, VM_IO | VM_PFNMAP | VM_DONTEXPAND | VM_DONTCOPY |
		     VM_DONTDUMP);
	vma->vm_ops = &pnm_vm_ops;
	vma->vm_private_data = region;
	pfn = PHYS_PFN(pnm->base + pnm->kv_offset + offset);
	rc = remap_pfn_range(vma, vma->vm_start, pfn, len, vma->vm_page_prot);
	if (rc)
		goto err_put;
	return 0;

err_put:
	/* mmap_region() does not call .close when .mmap fails. */
	pnm_region_put(region);
	return rc;
}
