// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Kernel transport: a /dev/cxl/pnmN character device of the cxl_pnm driver.
 * Regions are per open file; each is mapped MAP_SHARED at the mmap_offset
 * the driver returns.  Submission is the synchronous CXL_PNM_IOC_SUBMIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pnm_internal.h"

struct pnm_kernel {
	int fd;
	char devnode[128];	/* for messages */
};

static struct pnm_kernel *pnm_kernel_of(struct pnm_dev *dev)
{
	return dev->priv;
}

static int pnm_kernel_get_info(struct pnm_dev *dev, struct cxl_pnm_info *info)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);

	if (ioctl(k->fd, CXL_PNM_IOC_GET_INFO, info) < 0)
		return pnm_error(-errno, "%s: GET_INFO failed: %s", k->devnode,
				 strerror(errno));
	return 0;
}

static int pnm_kernel_region_alloc(struct pnm_dev *dev, uint64_t size,
				   struct pnm_region *region)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);
	struct cxl_pnm_region_alloc alloc = { .size = size };
	struct cxl_pnm_region_free rfree = { 0 };
	void *addr;
	int err;

	if (ioctl(k->fd, CXL_PNM_IOC_REGION_ALLOC, &alloc) < 0) {
		err = errno;
		if (err == ENOMEM)
			return pnm_error(-err,
					 "%s: no free range of %llu bytes in device memory",
					 k->devnode, (unsigned long long)size);
		return pnm_error(-err, "%s: REGION_ALLOC of %llu bytes failed: %s",
				 k->devnode, (unsigned long long)size,
				 strerror(err));
	}

	addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, k->fd,
		    (off_t)alloc.mmap_offset);
	if (addr == MAP_FAILED) {
		err = errno;
		rfree.handle = alloc.handle;
		ioctl(k->fd, CXL_PNM_IOC_REGION_FREE, &rfree);
		return pnm_error(-err,
				 "%s: mmap of region %u (%llu bytes at offset %llu) failed: %s",
				 k->devnode, alloc.handle,
				 (unsigned long long)size,
				 (unsigned long long)alloc.mmap_offset,
				 strerror(err));
	}

	region->handle = alloc.handle;
	region->size = size;
	region->addr = addr;
	return 0;
}

/*
 * The driver keeps the memory until the mapping is gone as well, so the
 * order of munmap and REGION_FREE does not matter; unmapping first keeps
 * a stale pointer from reaching memory another region might reuse.
 */
static void pnm_kernel_region_free(struct pnm_dev *dev,
				   struct pnm_region *region)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);
	struct cxl_pnm_region_free rfree = { .handle = region->handle };

	munmap(region->addr, region->size);
	ioctl(k->fd, CXL_PNM_IOC_REGION_FREE, &rfree);
}

static int pnm_kernel_submit(struct pnm_dev *dev,
			     const struct cxl_pnm_cmd *cmds,
			     struct cxl_pnm_result *results, unsigned int nr,
			     unsigned int timeout_ms)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);
	struct cxl_pnm_submit submit = {
		.cmds = (uintptr_t)cmds,
		.results = (uintptr_t)results,
		.nr = nr,
		.timeout_ms = timeout_ms,
	};
	int err;

	if (ioctl(k->fd, CXL_PNM_IOC_SUBMIT, &submit) == 0)
		return 0;

	err = errno;
	switch (err) {
	case ETIMEDOUT:
		return pnm_error(-err, "%s: batch of %u commands timed out after %u ms",
				 k->devnode, nr, timeout_ms ? timeout_ms : 10000);
	case ENOENT:
		return pnm_error(-err,
				 "%s: a command of the batch names a region this file does not own",
				 k->devnode);
	case EINVAL:
		return pnm_error(-err,
				 "%s: the driver rejected the batch of %u commands (a field or a buffer range is invalid)",
				 k->devnode, nr);
	default:
		return pnm_error(-err, "%s: SUBMIT of %u commands failed: %s",
				 k->devnode, nr, strerror(err));
	}
}

static void pnm_kernel_close(struct pnm_dev *dev)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);

	close(k->fd);
	free(k);
}

static const struct pnm_transport_ops pnm_kernel_ops = {
	.get_info = pnm_kernel_get_info,
	.region_alloc = pnm_kernel_region_alloc,
	.region_free = pnm_kernel_region_free,
	.submit = pnm_kernel_submit,
	.close = pnm_kernel_close,
};

static int pnm_kernel_open_fd(const char *devnode)
{
	int fd = open(devnode, O_RDWR | O_CLOEXEC);
	int err;

	if (fd >= 0)
		return fd;
	err = errno;
	if (err == ENOENT)
		return pnm_error(-err,
				 "%s: no such device node; is cxl_pnm loaded and bound to a dax device?",
				 devnode);
	if (err == EACCES || err == EPERM)
		return pnm_error(-err, "%s: permission denied; the node is root's, mode 0600",
				 devnode);
	return pnm_error(-err, "%s: open failed: %s", devnode, strerror(err));
}

int pnm_kernel_open(const char *devnode, struct pnm_dev **devp)
{
	struct cxl_pnm_info info;
	struct pnm_kernel *k;
	struct pnm_dev *dev;
	int fd, ret;

	fd = pnm_kernel_open_fd(devnode);
	if (fd < 0)
		return fd;

	k = calloc(1, sizeof(*k));
	dev = k ? pnm_dev_new(&pnm_kernel_ops, PNM_TRANSPORT_KERNEL, k) : NULL;
	if (!dev) {
		free(k);
		close(fd);
		return pnm_error(-ENOMEM, "%s: out of memory", devnode);
	}
	k->fd = fd;
	snprintf(k->devnode, sizeof(k->devnode), "%s", devnode);

	ret = pnm_kernel_get_info(dev, &info);
	if (!ret && info.abi_version != CXL_PNM_ABI_VERSION)
		ret = pnm_error(-EPROTO,
				"%s: driver ABI version %u, libpnm speaks %u",
				devnode, info.abi_version, CXL_PNM_ABI_VERSION);
	if (ret) {
		pnm_close(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}
