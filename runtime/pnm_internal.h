/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libpnm internals shared by the core and the transports.
 */
#ifndef PNM_INTERNAL_H
#define PNM_INTERNAL_H

#include "pnm.h"

/**
 * struct pnm_transport_ops - what a transport implements
 * @get_info: fill the device geometry
 * @region_alloc: allocate and map @size bytes (already a multiple of
 *	info.region_align); fill @region's handle, size and addr
 * @region_free: unmap and free a region that @region_alloc filled
 * @submit: run @nr commands to completion, see pnm_submit()
 * @close: release the transport's state; the core frees @dev
 * @name: how commands reach the device, for pnm_transport_name(); NULL
 *	gives "kernel" or "direct" by the device's kind
 * @queue_create: optional native asynchronous queue of @depth commands;
 *	store the transport's queue state in *@qpriv.  Without it (and the
 *	three below) the core runs each pnm_submit_async() batch through
 *	@submit and keeps the completions itself.
 * @queue_destroy: cancel or finish what is in flight, free the state
 * @queue_submit: submit @nr already checked commands, at most the depth
 *	in flight; return @nr or -errno with nothing submitted
 * @queue_reap: wait until @min (0: do not wait) completions are ready or
 *	@timeout_ms passes (< 0: forever), then store up to @max; return the
 *	count or -ETIMEDOUT
 */
struct pnm_transport_ops {
	int (*get_info)(struct pnm_dev *dev, struct cxl_pnm_info *info);
	int (*region_alloc)(struct pnm_dev *dev, uint64_t size,
			    struct pnm_region *region);
	void (*region_free)(struct pnm_dev *dev, struct pnm_region *region);
	int (*submit)(struct pnm_dev *dev, const struct cxl_pnm_cmd *cmds,
		      struct cxl_pnm_result *results, unsigned int nr,
		      unsigned int timeout_ms);
	void (*close)(struct pnm_dev *dev);
	const char *(*name)(struct pnm_dev *dev);
	int (*queue_create)(struct pnm_dev *dev, unsigned int depth,
			    unsigned int flags, void **qpriv);
	void (*queue_destroy)(struct pnm_dev *dev, void *qpriv);
	int (*queue_submit)(struct pnm_dev *dev, void *qpriv,
			    const struct cxl_pnm_cmd *cmds,
			    const uint64_t *user_data, unsigned int nr);
	int (*queue_reap)(struct pnm_dev *dev, void *qpriv,
			  struct pnm_completion *comps, unsigned int min,
			  unsigned int max, int timeout_ms);
};

struct pnm_dev {
	const struct pnm_transport_ops *ops;
	enum pnm_transport kind;
	struct cxl_pnm_info info;	/* cached at open */
	void *priv;			/* the transport's state */
};

/* Allocate a pnm_dev for a transport; the core owns and frees it. */
struct pnm_dev *pnm_dev_new(const struct pnm_transport_ops *ops,
			    enum pnm_transport kind, void *priv);

/*
 * Record a message for pnm_last_error() and return @err, a negative errno,
 * so that callers can write "return pnm_error(-EINVAL, ...)".
 */
int pnm_error(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int pnm_kernel_open(const char *devnode, struct pnm_dev **devp);
int pnm_direct_open(const char *backing_file, struct pnm_dev **devp);

#endif /* PNM_INTERNAL_H */
