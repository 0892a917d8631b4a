// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Kernel transport: a /dev/cxl/pnmN character device of the cxl_pnm driver.
 * Regions are per open file; each is mapped MAP_SHARED at the mmap_offset
 * the driver returns.  Commands go through io_uring passthrough (uring.c):
 * pnm_submit() on a ring the device shares, each pnm_queue on its own.
 * The synchronous CXL_PNM_IOC_SUBMIT remains as the fallback, chosen by
 * name ("ioctl:/dev/cxl/pnm0"), by PNM_TRANSPORT=ioctl, or when the kernel
 * or the driver lacks io_uring passthrough.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pnm_internal.h"
#include "pnm_uring.h"

#define PNM_IOCTL_PREFIX	"ioctl:"
#define PNM_URING_PREFIX	"uring:"
#define PNM_TRANSPORT_ENV	"PNM_TRANSPORT"

/* Submission path requested for a device node. */
enum pnm_kernel_mode {
	PNM_KERNEL_AUTO,	/* io_uring if available, else ioctl */
	PNM_KERNEL_URING,	/* io_uring or fail */
	PNM_KERNEL_IOCTL,	/* CXL_PNM_IOC_SUBMIT */
};

/**
 * struct pnm_kernel - state of the kernel transport
 * @fd: the device file
 * @devnode: its path, for messages
 * @sync: ring of the synchronous pnm_submit(), NULL in ioctl mode
 * @sync_lock: serializes pnm_submit() callers on @sync, which one thread
 *	at a time may use
 */
struct pnm_kernel {
	int fd;
	char devnode[128];	/* for messages */
	struct pnm_uring *sync;
	pthread_mutex_t sync_lock;
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

static int pnm_kernel_uring_submit(struct pnm_dev *dev,
				   const struct cxl_pnm_cmd *cmds,
				   struct cxl_pnm_result *results,
				   unsigned int nr, unsigned int timeout_ms)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);
	int ret;

	pthread_mutex_lock(&k->sync_lock);
	ret = pnm_uring_run(k->sync, cmds, results, nr, timeout_ms);
	pthread_mutex_unlock(&k->sync_lock);
	return ret;
}

static int pnm_kernel_queue_create(struct pnm_dev *dev, unsigned int depth,
				   unsigned int flags, void **qpriv)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);

	return pnm_uring_create(k->fd, k->devnode, depth,
				flags & PNM_QUEUE_IOPOLL ? IORING_SETUP_IOPOLL : 0,
				(struct pnm_uring **)qpriv);
}

static void pnm_kernel_queue_destroy(struct pnm_dev *dev, void *qpriv)
{
	(void)dev;
	pnm_uring_destroy(qpriv);
}

static int pnm_kernel_queue_submit(struct pnm_dev *dev, void *qpriv,
				   const struct cxl_pnm_cmd *cmds,
				   const uint64_t *user_data, unsigned int nr)
{
	(void)dev;
	return pnm_uring_submit(qpriv, cmds, user_data, nr);
}

static int pnm_kernel_queue_reap(struct pnm_dev *dev, void *qpriv,
				 struct pnm_completion *comps,
				 unsigned int min, unsigned int max,
				 int timeout_ms)
{
	(void)dev;
	return pnm_uring_reap(qpriv, comps, min, max, timeout_ms);
}

static void pnm_kernel_close(struct pnm_dev *dev)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);

	if (k->sync) {
		pnm_uring_destroy(k->sync);
		pthread_mutex_destroy(&k->sync_lock);
	}
	close(k->fd);
	free(k);
}

static const char *pnm_kernel_uring_name(struct pnm_dev *dev)
{
	(void)dev;
	return "io_uring";
}

static const char *pnm_kernel_ioctl_name(struct pnm_dev *dev)
{
	(void)dev;
	return "ioctl";
}

/* io_uring passthrough, the default. */
static const struct pnm_transport_ops pnm_kernel_ops = {
	.get_info = pnm_kernel_get_info,
	.region_alloc = pnm_kernel_region_alloc,
	.region_free = pnm_kernel_region_free,
	.submit = pnm_kernel_uring_submit,
	.close = pnm_kernel_close,
	.name = pnm_kernel_uring_name,
	.queue_create = pnm_kernel_queue_create,
	.queue_destroy = pnm_kernel_queue_destroy,
	.queue_submit = pnm_kernel_queue_submit,
	.queue_reap = pnm_kernel_queue_reap,
};

/* The SUBMIT ioctl; queues use the core's synchronous fallback. */
static const struct pnm_transport_ops pnm_kernel_ioctl_ops = {
	.get_info = pnm_kernel_get_info,
	.region_alloc = pnm_kernel_region_alloc,
	.region_free = pnm_kernel_region_free,
	.submit = pnm_kernel_submit,
	.close = pnm_kernel_close,
	.name = pnm_kernel_ioctl_name,
};

/* Split an optional "ioctl:" or "uring:" off @name; else ask the environment. */
static int pnm_kernel_mode(const char **name)
{
	const char *env = getenv(PNM_TRANSPORT_ENV);

	if (!strncmp(*name, PNM_IOCTL_PREFIX, strlen(PNM_IOCTL_PREFIX))) {
		*name += strlen(PNM_IOCTL_PREFIX);
		return PNM_KERNEL_IOCTL;
	}
	if (!strncmp(*name, PNM_URING_PREFIX, strlen(PNM_URING_PREFIX))) {
		*name += strlen(PNM_URING_PREFIX);
		return PNM_KERNEL_URING;
	}
	if (!env || !*env)
		return PNM_KERNEL_AUTO;
	if (!strcmp(env, "ioctl"))
		return PNM_KERNEL_IOCTL;
	if (!strcmp(env, "uring") || !strcmp(env, "io_uring"))
		return PNM_KERNEL_URING;
	return pnm_error(-EINVAL, "%s=%s: expected ioctl or uring",
			 PNM_TRANSPORT_ENV, env);
}

/*
 * Set up the shared ring and check that the driver completes a NOP
 * through it.  In AUTO mode, a ring that cannot be set up (ENOSYS without
 * io_uring, EPERM under kernel.io_uring_disabled) or a driver without
 * passthrough (EOPNOTSUPP) leaves the device on the ioctl.  Any other
 * failure of the NOP (EIO from a dead device, say) proves that passthrough
 * works, and the next submission will report it.
 */
static int pnm_kernel_setup_uring(struct pnm_dev *dev, int mode)
{
	struct pnm_kernel *k = pnm_kernel_of(dev);
	int ret;

	ret = pnm_uring_create(k->fd, k->devnode, dev->info.max_batch, 0,
			       &k->sync);
	if (!ret) {
		ret = pnm_uring_probe(k->sync);
		if (ret == -EOPNOTSUPP) {
			pnm_uring_destroy(k->sync);
			k->sync = NULL;
		} else {
			ret = 0;
		}
	}
	if (ret) {
		if (mode == PNM_KERNEL_URING)
			return ret;
		dev->ops = &pnm_kernel_ioctl_ops;
		return 0;
	}
	pthread_mutex_init(&k->sync_lock, NULL);
	dev->ops = &pnm_kernel_ops;
	return 0;
}

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
	int fd, ret, mode;

	mode = pnm_kernel_mode(&devnode);
	if (mode < 0)
		return mode;
	fd = pnm_kernel_open_fd(devnode);
	if (fd < 0)
		return fd;

	k = calloc(1, sizeof(*k));
	dev = k ? pnm_dev_new(&pnm_kernel_ioctl_ops, PNM_TRANSPORT_KERNEL, k) :
		  NULL;
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
	if (!ret) {
		dev->info = info;
		if (mode != PNM_KERNEL_IOCTL)
			ret = pnm_kernel_setup_uring(dev, mode);
	}
	if (ret) {
		pnm_close(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}
