// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libpnm core: opening devices, regions, submission and error messages.
 * Everything that depends on how a device is reached lives in a transport
 * (kernel.c, direct.c) behind struct pnm_transport_ops; this file checks the
 * caller's arguments once, for both.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pnm_internal.h"

#define PNM_DIRECT_PREFIX	"direct:"

/* Per thread, so that concurrent callers never see each other's messages. */
static __thread char pnm_message[256];

int pnm_error(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pnm_message, sizeof(pnm_message), fmt, ap);
	va_end(ap);
	return err;
}

const char *pnm_last_error(void)
{
	return pnm_message[0] ? pnm_message : "no error";
}

struct pnm_dev *pnm_dev_new(const struct pnm_transport_ops *ops,
			    enum pnm_transport kind, void *priv)
{
	struct pnm_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	dev->ops = ops;
	dev->kind = kind;
	dev->priv = priv;
	return dev;
}

/*
 * Cache the geometry at open so that region rounding and batch splitting
 * need no call into the transport.
 */
static int pnm_cache_info(struct pnm_dev *dev)
{
	int ret = dev->ops->get_info(dev, &dev->info);

	if (ret)
		return ret;
	if (!dev->info.region_align ||
	    (dev->info.region_align & (dev->info.region_align - 1)))
		return pnm_error(-EPROTO,
				 "device reports region_align %u, not a power of two",
				 dev->info.region_align);
	if (!dev->info.max_batch)
		return pnm_error(-EPROTO, "device reports max_batch 0");
	return 0;
}

static int pnm_open_with(int (*open)(const char *, struct pnm_dev **),
			 const char *name, struct pnm_dev **devp)
{
	struct pnm_dev *dev = NULL;
	int ret;

	if (!name || !devp)
		return pnm_error(-EINVAL, "pnm_open: %s is NULL",
				 name ? "devp" : "name");
	*devp = NULL;
	ret = open(name, &dev);
	if (ret)
		return ret;
	ret = pnm_cache_info(dev);
	if (ret) {
		pnm_close(dev);
		return ret;
	}
	*devp = dev;
	return 0;
}

int pnm_open_kernel(const char *devnode, struct pnm_dev **devp)
{
	return pnm_open_with(pnm_kernel_open, devnode, devp);
}

int pnm_open_direct(const char *backing_file, struct pnm_dev **devp)
{
	return pnm_open_with(pnm_direct_open, backing_file, devp);
}

int pnm_open(const char *name, struct pnm_dev **devp)
{
	size_t len = strlen(PNM_DIRECT_PREFIX);

	if (name && !strncmp(name, PNM_DIRECT_PREFIX, len)) {
		if (!name[len])
			return pnm_error(-EINVAL,
					 "device name '%s' lacks a path after '%s'",
					 name, PNM_DIRECT_PREFIX);
		return pnm_open_direct(name + len, devp);
	}
	return pnm_open_kernel(name, devp);
}

/*
 * Regions still allocated are released by the transport's close (the
 * kernel frees a file's regions when the file closes); their struct
 * pnm_region stays the caller's to free, so free regions first.
 */
void pnm_close(struct pnm_dev *dev)
{
	if (!dev)
		return;
	dev->ops->close(dev);
	free(dev);
}

enum pnm_transport pnm_transport(const struct pnm_dev *dev)
{
	return dev->kind;
}

const char *pnm_transport_name(const struct pnm_dev *dev)
{
	if (dev->ops->name)
		return dev->ops->name((struct pnm_dev *)dev);
	return dev->kind == PNM_TRANSPORT_DIRECT ? "direct" : "kernel";
}

int pnm_get_info(struct pnm_dev *dev, struct cxl_pnm_info *info)
{
	int ret;

	if (!dev || !info)
		return pnm_error(-EINVAL, "pnm_get_info: %s is NULL",
				 dev ? "info" : "dev");
	/* kv_free changes as regions come and go: ask the transport. */
	ret = dev->ops->get_info(dev, info);
	if (!ret)
		dev->info = *info;
	return ret;
}

int pnm_region_alloc(struct pnm_dev *dev, uint64_t size,
		     struct pnm_region **regionp)
{
	uint64_t align_mask, rounded;
	struct pnm_region *region;
	int ret;

	if (!dev || !regionp)
		return pnm_error(-EINVAL, "pnm_region_alloc: %s is NULL",
				 dev ? "regionp" : "dev");
	*regionp = NULL;
	if (!size)
		return pnm_error(-EINVAL, "region size 0: a region needs at least one byte");

	align_mask = dev->info.region_align - 1;
	if (size > UINT64_MAX - align_mask)
		return pnm_error(-EINVAL, "region size %llu overflows when rounded up to %u",
				 (unsigned long long)size, dev->info.region_align);
	rounded = (size + align_mask) & ~align_mask;
	if (rounded > dev->info.kv_size)
		return pnm_error(-ENOMEM,
				 "region size %llu exceeds the device's KV area of %llu bytes",
				 (unsigned long long)rounded,
				 (unsigned long long)dev->info.kv_size);

	region = calloc(1, sizeof(*region));
	if (!region)
		return pnm_error(-ENOMEM, "out of memory for a region descriptor");
	ret = dev->ops->region_alloc(dev, rounded, region);
	if (ret) {
		free(region);
		return ret;
	}
	region->dev = dev;
	*regionp = region;
	return 0;
}

void pnm_region_free(struct pnm_region *region)
{
	if (!region)
		return;
	region->dev->ops->region_free(region->dev, region);
	free(region);
}

/*
 * A buffer that pnm_submit() rejects: no region, yet a non-zero offset.
 * pnm_buf() returns it for a range it cannot describe, so the mistake
 * surfaces at submission instead of reaching the device as another range.
 */
static const struct cxl_pnm_buf pnm_bad_buf = {
	.handle = 0, .length = 0, .offset = UINT64_MAX,
};

struct cxl_pnm_buf pnm_buf(const struct pnm_region *region, uint64_t offset,
			   uint64_t length)
{
	struct cxl_pnm_buf buf;

	if (!region) {
		pnm_error(-EINVAL, "pnm_buf: region is NULL");
		return pnm_bad_buf;
	}
	if (length > UINT32_MAX || offset > region->size ||
	    length > region->size - offset) {
		pnm_error(-EINVAL,
			  "buffer of %llu bytes at offset %llu does not fit region %u of %llu bytes",
			  (unsigned long long)length, (unsigned long long)offset,
			  region->handle, (unsigned long long)region->size);
		return pnm_bad_buf;
	}
	buf.handle = region->handle;
	buf.length = length;
	buf.offset = offset;
	return buf;
}

static int pnm_check_buf(unsigned int index, const char *name,
			 const struct cxl_pnm_buf *buf)
{
	if (buf->handle || (!buf->length && !buf->offset))
		return 0;
	if (buf->offset == UINT64_MAX && !buf->length)
		return pnm_error(-EINVAL,
				 "command %u: %s buffer is invalid (pnm_buf() rejected its range)",
				 index, name);
	return pnm_error(-EINVAL,
			 "command %u: %s buffer has no region but length %u and offset %llu",
			 index, name, buf->length,
			 (unsigned long long)buf->offset);
}

static int pnm_check_cmd(unsigned int index, const struct cxl_pnm_cmd *cmd)
{
	int ret;

	ret = pnm_check_buf(index, "pool", &cmd->pool);
	if (!ret)
		ret = pnm_check_buf(index, "table", &cmd->table);
	if (!ret)
		ret = pnm_check_buf(index, "in", &cmd->in);
	if (!ret)
		ret = pnm_check_buf(index, "out", &cmd->out);
	return ret;
}

int pnm_submit(struct pnm_dev *dev, const struct cxl_pnm_cmd *cmds,
	       struct cxl_pnm_result *results, unsigned int nr,
	       unsigned int timeout_ms)
{
	unsigned int i;
	int ret;

	if (!dev || !cmds || !results)
		return pnm_error(-EINVAL, "pnm_submit: %s is NULL",
				 !dev ? "dev" : !cmds ? "cmds" : "results");
	if (!nr || nr > dev->info.max_batch)
		return pnm_error(-EINVAL,
				 "batch of %u commands: the device takes 1 to %u",
				 nr, dev->info.max_batch);
	for (i = 0; i < nr; i++) {
		ret = pnm_check_cmd(i, &cmds[i]);
		if (ret)
			return ret;
	}
	return dev->ops->submit(dev, cmds, results, nr, timeout_ms);
}

/* ---- asynchronous queues ------------------------------------------------ */

/*
 * @done, @head and @count belong to the generic fallback: a ring of @depth
 * completions of batches that already ran.  @inflight counts what was
 * submitted and not yet returned, so it includes those completions.
 */
struct pnm_queue {
	struct pnm_dev *dev;
	unsigned int depth;
	unsigned int inflight;
	void *priv;
	struct pnm_completion *done;
	unsigned int head;
	unsigned int count;
};

static bool pnm_queue_native(const struct pnm_queue *q)
{
	return q->dev->ops->queue_create != NULL;
}

int pnm_queue_create(struct pnm_dev *dev, unsigned int depth,
		     unsigned int flags, struct pnm_queue **queuep)
{
	struct pnm_queue *q;
	int ret = 0;

	if (!dev || !queuep)
		return pnm_error(-EINVAL, "pnm_queue_create: %s is NULL",
				 dev ? "queuep" : "dev");
	*queuep = NULL;
	if (!depth || depth > PNM_QUEUE_MAX_DEPTH)
		return pnm_error(-EINVAL, "queue depth %u: expected 1 to %u",
				 depth, PNM_QUEUE_MAX_DEPTH);
	if (flags & ~PNM_QUEUE_IOPOLL)
		return pnm_error(-EINVAL, "queue flags %#x: unknown bits %#x",
				 flags, flags & ~PNM_QUEUE_IOPOLL);

	q = calloc(1, sizeof(*q));
	if (!q)
		return pnm_error(-ENOMEM, "out of memory for a queue");
	q->dev = dev;
	q->depth = depth;
	if (pnm_queue_native(q)) {
		ret = dev->ops->queue_create(dev, depth, flags, &q->priv);
	} else {
		/* Batches run at once here, so polling changes nothing. */
		q->done = calloc(depth, sizeof(*q->done));
		if (!q->done)
			ret = pnm_error(-ENOMEM, "out of memory for %u completions",
					depth);
	}
	if (ret) {
		free(q->done);
		free(q);
		return ret;
	}
	*queuep = q;
	return 0;
}

void pnm_queue_destroy(struct pnm_queue *q)
{
	if (!q)
		return;
	if (pnm_queue_native(q))
		q->dev->ops->queue_destroy(q->dev, q->priv);
	free(q->done);
	free(q);
}

unsigned int pnm_queue_inflight(const struct pnm_queue *q)
{
	return q ? q->inflight : 0;
}

static void pnm_fallback_push(struct pnm_queue *q, uint64_t user_data,
			      int res, const struct cxl_pnm_result *result)
{
	struct pnm_completion *c = &q->done[(q->head + q->count) % q->depth];

	memset(c, 0, sizeof(*c));
	c->user_data = user_data;
	c->res = res;
	if (!res)
		c->result = *result;
	q->count++;
}

static uint64_t pnm_user_data(const uint64_t *user_data, unsigned int i)
{
	return user_data ? user_data[i] : i;
}

/*
 * Run one chunk through the synchronous submit.  A batch the driver
 * rejects fails as a whole without running, so each command then runs on
 * its own to give every one its own outcome, as a native queue would.
 */
static void pnm_fallback_run(struct pnm_queue *q,
			     const struct cxl_pnm_cmd *cmds,
			     const uint64_t *user_data, unsigned int first,
			     unsigned int nr)
{
	const struct pnm_transport_ops *ops = q->dev->ops;
	struct cxl_pnm_result results[256];
	unsigned int i;
	int ret;

	ret = ops->submit(q->dev, cmds + first, results, nr, 0);
	if ((ret == -EINVAL || ret == -ENOENT) && nr > 1) {
		for (i = first; i < first + nr; i++)
			pnm_fallback_run(q, cmds, user_data, i, 1);
		return;
	}
	for (i = 0; i < nr; i++)
		pnm_fallback_push(q, pnm_user_data(user_data, first + i), ret,
				  &results[i]);
}

static void pnm_fallback_submit(struct pnm_queue *q,
				const struct cxl_pnm_cmd *cmds,
				const uint64_t *user_data, unsigned int nr)
{
	unsigned int chunk = q->dev->info.max_batch, i, n;

	if (chunk > 256)
		chunk = 256;
	for (i = 0; i < nr; i += n) {
		n = nr - i < chunk ? nr - i : chunk;
		pnm_fallback_run(q, cmds, user_data, i, n);
	}
}

int pnm_submit_async(struct pnm_queue *q, const struct cxl_pnm_cmd *cmds,
		     const uint64_t *user_data, unsigned int nr)
{
	unsigned int i;
	int ret;

	if (!q || !cmds)
		return pnm_error(-EINVAL, "pnm_submit_async: %s is NULL",
				 q ? "cmds" : "queue");
	if (!nr)
		return 0;
	if (nr > q->depth - q->inflight)
		return pnm_error(-EBUSY,
				 "%u commands do not fit: %u of the queue's depth %u are in flight",
				 nr, q->inflight, q->depth);
	for (i = 0; i < nr; i++) {
		ret = pnm_check_cmd(i, &cmds[i]);
		if (ret)
			return ret;
	}
	if (pnm_queue_native(q)) {
		ret = q->dev->ops->queue_submit(q->dev, q->priv, cmds,
						user_data, nr);
		if (ret < 0)
			return ret;
	} else {
		pnm_fallback_submit(q, cmds, user_data, nr);
	}
	q->inflight += nr;
	return nr;
}

static int pnm_fallback_reap(struct pnm_queue *q,
			     struct pnm_completion *comps, unsigned int max)
{
	unsigned int n = 0;

	while (n < max && q->count) {
		comps[n++] = q->done[q->head];
		q->head = (q->head + 1) % q->depth;
		q->count--;
	}
	return n;
}

static int pnm_queue_reap(struct pnm_queue *q, struct pnm_completion *comps,
			  unsigned int min, unsigned int max, int timeout_ms)
{
	int ret;

	if (!q || (!comps && max))
		return pnm_error(-EINVAL, "pnm_reap: %s is NULL",
				 q ? "comps" : "queue");
	if (min > q->inflight)
		return pnm_error(-EINVAL,
				 "waiting for %u completions with %u commands in flight",
				 min, q->inflight);
	if (min > max)
		return pnm_error(-EINVAL, "waiting for %u completions with room for %u",
				 min, max);
	if (!max)
		return 0;
	if (pnm_queue_native(q))
		ret = q->dev->ops->queue_reap(q->dev, q->priv, comps, min, max,
					      timeout_ms);
	else
		ret = pnm_fallback_reap(q, comps, max);
	if (ret > 0)
		q->inflight -= ret;
	return ret;
}

int pnm_reap(struct pnm_queue *q, struct pnm_completion *comps,
	     unsigned int max)
{
	return pnm_queue_reap(q, comps, 0, max, 0);
}

int pnm_wait(struct pnm_queue *q, struct pnm_completion *comps,
	     unsigned int min, unsigned int max, int timeout_ms)
{
	return pnm_queue_reap(q, comps, min, max, timeout_ms);
}

static const char *const pnm_status_names[] = {
	[CXL_PNM_STATUS_OK] = "ok",
	[CXL_PNM_STATUS_BAD_OPCODE] = "bad opcode",
	[CXL_PNM_STATUS_BAD_DTYPE] = "bad dtype",
	[CXL_PNM_STATUS_BAD_SHAPE] = "bad shape",
	[CXL_PNM_STATUS_BAD_RESERVED] = "reserved field set",
	[CXL_PNM_STATUS_BAD_RANGE] = "bad range",
	[CXL_PNM_STATUS_SHORT_BUFFER] = "short buffer",
	[CXL_PNM_STATUS_BAD_PAGE] = "bad page",
	[CXL_PNM_STATUS_BAD_LIST] = "bad list",
	[CXL_PNM_STATUS_BAD_K] = "bad k",
	[CXL_PNM_STATUS_BAD_LENGTH] = "bad length",
	[CXL_PNM_STATUS_OVERLAP] = "overlap",
};

const char *pnm_status_name(unsigned int status)
{
	if (status >= sizeof(pnm_status_names) / sizeof(pnm_status_names[0]))
		return "unknown status";
	return pnm_status_names[status];
}

const char *pnm_dtype_name(unsigned int dtype)
{
	switch (dtype) {
	case CXL_PNM_DTYPE_FP32:
		return "fp32";
	case CXL_PNM_DTYPE_FP16:
		return "fp16";
	case CXL_PNM_DTYPE_BF16:
		return "bf16";
	default:
		return "unknown dtype";
	}
}
