// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * KV-cache manager over one to four PNM devices.
 *
 * Streams and parts: a stream has n_parts parts, one when streams are
 * spread by kv-head or by sequence, one per device when they are split by
 * token range.  Part j holds the stream pages [j * part_span,
 * (j + 1) * part_span), with part_span = ceil(max_pages / n_devs) for a
 * split and max_pages otherwise; a part whose range starts past max_pages
 * is unused.  Each device sees its part as a stream of its own.
 *
 * Device memory, three regions per device that holds a part:
 *   pool    its parts' page slots, then one digest per slot, laid out as
 *           Documentation/device-interface.rst says; a part owns the
 *           contiguous slots [base, base + part pages), part page p in slot
 *           base + p, so the digests a SELECT scores are contiguous;
 *   tables  the page tables, slot s at entry s (an identity), written once;
 *           a part's table starts at entry base;
 *   io      per part: the fp32 query and its exclusion list ("in"), then
 *           out[group][d], lse[group], page[part_span] ("out").
 *
 * The host mirror (KVCACHE_HOST_MIRROR) has the layout one device holding
 * every stream unsplit would have: stream i, page p in slot
 * i * max_pages + p.
 *
 * Digests: a page is digested on its device when it fills.  The partial
 * last page is never digested; every decode step keeps that page through
 * KEEP_RECENT, so its score, and thus its stale digest, is never used.
 *
 * Concurrency: one thread per device submits that device's batch; the
 * threads share no writable state but their own struct kvcache_device
 * (commands, results, error text), and the caller joins them all before
 * reading any result.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvcache.h"
#include "pnm_internal.h"

/* One stream part: where its pages live. */
struct kvcache_part {
	unsigned int dev;	/* index into kvcache.devices */
	unsigned int local;	/* io slot on that device */
	uint32_t base;		/* first page slot in that device's pool */
	uint32_t first_page;	/* first stream page of the part */
	uint32_t max_pages;	/* page slots it owns; 0 for an unused part */
};

/* What the last decode step did for a part, see kvcache_part_plan(). */
struct kvcache_plan {
	unsigned int k;		/* 0: not submitted */
	unsigned int flags;
	unsigned int n_exclude;
	unsigned int n_pages;
	unsigned int cmd;	/* index in its device's batch */
	uint32_t n_tokens;
};

/* One device, the regions the cache holds on it, and its batch. */
struct kvcache_device {
	struct pnm_dev *dev;
	struct cxl_pnm_info info;
	struct pnm_region *pool;
	struct pnm_region *tables;
	struct pnm_region *io;
	uint64_t pool_len;	/* exactly n_slots * (slot + digest) bytes */
	uint32_t n_slots;
	unsigned int n_parts;

	struct cxl_pnm_cmd *cmds;	/* [n_parts] batch of one call */
	struct cxl_pnm_result *results;
	unsigned int *cmd_part;		/* part id of each command */
	unsigned int nr;
	uint64_t batch_ns;		/* device_ns summed over the batch */
	int ret;			/* the submitting thread's verdict */
	char error[256];		/* ... and its pnm_last_error() */
	pthread_t thread;
	struct kvcache_device_stats stats;
};

struct kvcache {
	struct kvcache_config cfg;
	unsigned int group;		/* query heads per KV head */
	unsigned int page_shift;
	unsigned int n_streams;
	unsigned int n_devs;
	unsigned int n_parts;		/* per stream */
	uint32_t max_pages;		/* pages per stream */
	uint32_t part_span;		/* pages per part */
	size_t esize;			/* bytes per key or value element */
	uint64_t slot_bytes, digest_bytes;
	uint64_t io_in_bytes, io_out_bytes;

	struct kvcache_device devices[KVCACHE_MAX_DEVICES];
	struct kvcache_part *parts;	/* [n_streams][n_parts] */
	struct kvcache_plan *plans;	/* [n_streams][n_parts] */
	uint32_t *plan_exclude;		/* [n_streams][n_parts][part_span] */
	uint32_t *plan_pages;		/* likewise */
	uint32_t *n_tokens;		/* [n_streams] */
	unsigned int *layer_streams;	/* [kv_heads] append scratch */
	uint32_t *table;		/* identity, n_streams * max_pages */
	void *mirror;			/* host copy of the pool, or NULL */
	void *stage;			/* one slot, when there is no mirror */
	float *part_result;		/* out[group][d], lse[group] scratch */

	/* PnG-KV */
	struct steady_tracker *tracker;
	struct steady_cache *host;
	uint32_t *host_last;		/* [n_streams][capacity] pages attended */
	unsigned int *n_host_last;	/* [n_streams] */
	float *host_out, *host_lse;	/* [group][d], [group] */
	float *page_out, *page_lse;	/* one page; [capacity][group] */
	uint32_t *track;		/* [max_pages] pages to record */
	struct kvcache_png_stats png;
};

static unsigned int kvcache_stream(const struct kvcache *c, unsigned int seq,
				   unsigned int layer, unsigned int kv_head)
{
	return (seq * c->cfg.shape.layers + layer) * c->cfg.shape.kv_heads +
	       kv_head;
}

static void kvcache_stream_ids(const struct kvcache *c, unsigned int stream,
			       unsigned int *seq, unsigned int *layer,
			       unsigned int *kv_head)
{
	*kv_head = stream % c->cfg.shape.kv_heads;
	stream /= c->cfg.shape.kv_heads;
	*layer = stream % c->cfg.shape.layers;
	*seq = stream / c->cfg.shape.layers;
}

static struct kvcache_part *kvcache_part(const struct kvcache *c,
					 unsigned int stream, unsigned int j)
{
	return &c->parts[(size_t)stream * c->n_parts + j];
}

/* Part of @stream that holds stream page @page. */
static unsigned int kvcache_page_part(const struct kvcache *c, uint32_t page)
{
	return page / c->part_span;
}

/* Tokens part @j of @stream holds. */
static uint32_t kvcache_part_tokens(const struct kvcache *c,
				    unsigned int stream, unsigned int j)
{
	const struct kvcache_part *p = kvcache_part(c, stream, j);
	uint64_t first = (uint64_t)p->first_page << c->page_shift;
	uint64_t room = (uint64_t)p->max_pages << c->page_shift;
	uint64_t n = c->n_tokens[stream];

	if (!p->max_pages || n <= first)
		return 0;
	return (uint32_t)(n - first < room ? n - first : room);
}

static uint32_t kvcache_pages_of(const struct kvcache *c, uint32_t tokens)
{
	return (uint32_t)(((uint64_t)tokens + c->cfg.shape.page_tokens - 1) >>
			  c->page_shift);
}

static uint64_t kvcache_io_offset(const struct kvcache *c,
				  const struct kvcache_part *p)
{
	return (uint64_t)p->local * (c->io_in_bytes + c->io_out_bytes);
}

static int kvcache_check_shape(const struct kvcache_shape *s)
{
	if (!s->layers)
		return pnm_error(-EINVAL, "kvcache: layers 0; a model has at least one layer");
	if (!s->kv_heads || !s->q_heads)
		return pnm_error(-EINVAL, "kvcache: q_heads %u and kv_heads %u must be positive",
				 s->q_heads, s->kv_heads);
	if (s->q_heads % s->kv_heads)
		return pnm_error(-EINVAL,
				 "kvcache: q_heads %u is not a multiple of kv_heads %u",
				 s->q_heads, s->kv_heads);
	if (!s->head_dim || s->head_dim % 16)
		return pnm_error(-EINVAL,
				 "kvcache: head_dim %u is not a positive multiple of 16",
				 s->head_dim);
	if (!s->page_tokens || (s->page_tokens & (s->page_tokens - 1)))
		return pnm_error(-EINVAL, "kvcache: page_tokens %u is not a power of two",
				 s->page_tokens);
	if (s->dtype > CXL_PNM_DTYPE_BF16)
		return pnm_error(-EINVAL, "kvcache: dtype %u is not fp32, fp16 or bf16",
				 s->dtype);
	return 0;
}

static int kvcache_check_policy(struct kvcache_config *cfg)
{
	if (cfg->spread > KVCACHE_SPREAD_TOKENS)
		return pnm_error(-EINVAL, "kvcache: unknown spread policy %d",
				 (int)cfg->spread);
	if (cfg->split_budget > KVCACHE_SPLIT_FULL)
		return pnm_error(-EINVAL, "kvcache: unknown split budget policy %d",
				 (int)cfg->split_budget);
	if (cfg->mode > KVCACHE_MODE_PNG_KV)
		return pnm_error(-EINVAL, "kvcache: unknown mode %d", (int)cfg->mode);
	if (cfg->mode == KVCACHE_MODE_PNG_KV)
		return steady_params_resolve(&cfg->steady);
	return 0;
}

/* The device's limits, from GET_INFO, against the shape. */
static int kvcache_check_device(const struct kvcache *c, unsigned int i,
				const struct cxl_pnm_info *info)
{
	const struct kvcache_shape *s = &c->cfg.shape;

	if (!(info->dtypes & (1U << s->dtype)))
		return pnm_error(-EOPNOTSUPP, "kvcache: device %u does not support dtype %s",
				 i, pnm_dtype_name(s->dtype));
	if (s->head_dim > info->max_head_dim)
		return pnm_error(-EOPNOTSUPP, "kvcache: head_dim %u exceeds device %u's max %u",
				 s->head_dim, i, info->max_head_dim);
	if (c->group > info->max_group)
		return pnm_error(-EOPNOTSUPP, "kvcache: GQA group %u exceeds device %u's max %u",
				 c->group, i, info->max_group);
	if (c->page_shift >= 32 || !(info->page_shifts & (1U << c->page_shift)))
		return pnm_error(-EOPNOTSUPP,
				 "kvcache: page_tokens %u is not a page size of device %u (page_shifts 0x%x)",
				 s->page_tokens, i, info->page_shifts);
	return 0;
}

static int kvcache_init_sizes(struct kvcache *c)
{
	const struct kvcache_config *cfg = &c->cfg;
	const struct kvcache_shape *s = &cfg->shape;
	uint64_t streams, pages;

	c->group = s->q_heads / s->kv_heads;
	c->page_shift = (unsigned int)__builtin_ctz(s->page_tokens);
	c->esize = s->dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2;
	c->slot_bytes = 2ULL * s->head_dim * c->esize * s->page_tokens;
	c->digest_bytes = 2ULL * s->head_dim * c->esize;

	if (!cfg->nr_sequences)
		return pnm_error(-EINVAL, "kvcache: nr_sequences 0; the cache needs a sequence");
	if (!cfg->max_tokens)
		return pnm_error(-EINVAL, "kvcache: max_tokens 0; a sequence needs room for a token");
	if (cfg->flags & ~KVCACHE_HOST_MIRROR)
		return pnm_error(-EINVAL, "kvcache: unknown flags 0x%x", cfg->flags);

	streams = (uint64_t)cfg->nr_sequences * s->layers * s->kv_heads;
	pages = ((uint64_t)cfg->max_tokens + s->page_tokens - 1) >> c->page_shift;
	/*
	 * A command's pool length is a __u32 and slot indices are __u32; the
	 * host mirror has every stream in one pool, so this bounds each
	 * device's pool too.
	 */
	if (streams > UINT32_MAX / pages ||
	    streams * pages * (c->slot_bytes + c->digest_bytes) > UINT32_MAX)
		return pnm_error(-E2BIG,
				 "kvcache: %llu streams (nr_sequences x layers x kv_heads) of %llu pages of %llu bytes exceed the 4 GiB a command's pool can span; reduce nr_sequences, layers or max_tokens %u",
				 (unsigned long long)streams,
				 (unsigned long long)pages,
				 (unsigned long long)(c->slot_bytes + c->digest_bytes),
				 cfg->max_tokens);
	c->n_streams = (unsigned int)streams;
	c->max_pages = (uint32_t)pages;
	c->n_parts = cfg->spread == KVCACHE_SPREAD_TOKENS ? c->n_devs : 1;
	c->part_span = (c->max_pages + c->n_parts - 1) / c->n_parts;

	/* in: query, then an exclusion list; out: outputs, LSEs, pages. */
	c->io_in_bytes = (uint64_t)c->group * s->head_dim * sizeof(float) +
			 (uint64_t)c->part_span * sizeof(uint32_t);
	c->io_out_bytes = (uint64_t)c->group * (s->head_dim + 1) * sizeof(float) +
			  (uint64_t)c->part_span * sizeof(uint32_t);
	/* Cache-line aligned, so no two parts' operands share a line. */
	c->io_in_bytes = (c->io_in_bytes + 63) & ~63ULL;
	c->io_out_bytes = (c->io_out_bytes + 63) & ~63ULL;
	return 0;
}

/* The device of part @j of (@seq, @kv_head), as cfg.spread says. */
static unsigned int kvcache_place(const struct kvcache *c, unsigned int seq,
				  unsigned int kv_head, unsigned int j)
{
	switch (c->cfg.spread) {
	case KVCACHE_SPREAD_SEQUENCE:
		return seq % c->n_devs;
	case KVCACHE_SPREAD_TOKENS:
		return j;
	default:
		return kv_head % c->n_devs;
	}
}

/* Give every part its device, io slot and first page slot. */
static void kvcache_assign_parts(struct kvcache *c)
{
	unsigned int stream, j, seq, layer, kv_head;

	for (stream = 0; stream < c->n_streams; stream++) {
		kvcache_stream_ids(c, stream, &seq, &layer, &kv_head);
		for (j = 0; j < c->n_parts; j++) {
			struct kvcache_part *p = kvcache_part(c, stream, j);
			uint64_t first = (uint64_t)j * c->part_span;
			struct kvcache_device *kd;

			p->dev = kvcache_place(c, seq, kv_head, j);
			p->first_page = (uint32_t)first;
			if (first >= c->max_pages)
				continue;	/* unused: max_pages stays 0 */
			p->max_pages = c->max_pages - first < c->part_span ?
				       c->max_pages - (uint32_t)first : c->part_span;
			kd = &c->devices[p->dev];
			p->local = kd->n_parts++;
			p->base = kd->n_slots;
			kd->n_slots += p->max_pages;
		}
	}
}

static int kvcache_alloc_png(struct kvcache *c)
{
	const struct steady_params *sp = &c->cfg.steady;
	size_t d = c->cfg.shape.head_dim;

	c->tracker = steady_tracker_new(sp, c->n_streams, c->max_pages);
	c->host = steady_cache_new(c->n_streams, c->max_pages, sp->capacity,
				   c->slot_bytes, c->digest_bytes);
	c->host_last = calloc((size_t)c->n_streams * sp->capacity + 1,
			      sizeof(*c->host_last));
	c->n_host_last = calloc(c->n_streams, sizeof(*c->n_host_last));
	c->host_out = calloc((size_t)c->group * d, sizeof(float));
	c->host_lse = calloc(c->group, sizeof(float));
	c->page_out = calloc((size_t)c->group * d, sizeof(float));
	c->page_lse = calloc((size_t)(sp->capacity + 1) * c->group, sizeof(float));
	c->track = calloc(c->max_pages, sizeof(*c->track));
	if (c->tracker && c->host && c->host_last && c->n_host_last &&
	    c->host_out && c->host_lse && c->page_out && c->page_lse && c->track)
		return 0;
	return pnm_error(-ENOMEM, "kvcache: out of host memory for the PnG-KV host cache");
}

static int kvcache_alloc_host(struct kvcache *c)
{
	uint64_t pool_len = (uint64_t)c->n_streams * c->max_pages *
			    (c->slot_bytes + c->digest_bytes);
	size_t n_parts = (size_t)c->n_streams * c->n_parts;
	size_t entries = (size_t)c->n_streams * c->max_pages, i;
	unsigned int dev;

	c->n_tokens = calloc(c->n_streams, sizeof(*c->n_tokens));
	c->table = malloc(entries * sizeof(*c->table));
	c->parts = calloc(n_parts, sizeof(*c->parts));
	c->plans = calloc(n_parts, sizeof(*c->plans));
	c->plan_exclude = calloc(n_parts * c->part_span, sizeof(uint32_t));
	c->plan_pages = calloc(n_parts * c->part_span, sizeof(uint32_t));
	c->part_result = calloc((size_t)c->group * (c->cfg.shape.head_dim + 1),
				sizeof(float));
	c->layer_streams = calloc(c->cfg.shape.kv_heads,
				  sizeof(*c->layer_streams));
	if (c->cfg.flags & KVCACHE_HOST_MIRROR)
		c->mirror = calloc(1, pool_len);
	else
		c->stage = calloc(1, c->slot_bytes);
	if (!c->n_tokens || !c->table || !c->parts || !c->plans ||
	    !c->plan_exclude || !c->plan_pages || !c->part_result ||
	    !c->layer_streams || (!c->mirror && !c->stage))
		return pnm_error(-ENOMEM,
				 "kvcache: out of host memory for %u streams (a host mirror takes %llu bytes)",
				 c->n_streams, (unsigned long long)pool_len);
	for (i = 0; i < entries; i++)
		c->table[i] = (uint32_t)i;
	kvcache_assign_parts(c);

	for (dev = 0; dev < c->n_devs; dev++) {
		struct kvcache_device *kd = &c->devices[dev];
		unsigned int n = kd->n_parts ? kd->n_parts : 1;

		kd->cmds = calloc(n, sizeof(*kd->cmds));
		kd->results = calloc(n, sizeof(*kd->results));
		kd->cmd_part = calloc(n, sizeof(*kd->cmd_part));
		kd->stats.streams = kd->n_parts;
		if (!kd->cmds || !kd->results || !kd->cmd_part)
			return pnm_error(-ENOMEM, "kvcache: out of host memory");
	}
	return c->cfg.mode == KVCACHE_MODE_PNG_KV ? kvcache_alloc_png(c) : 0;
}

static int kvcache_alloc_device(struct kvcache *c, unsigned int i)
{
	struct kvcache_device *kd = &c->devices[i];
	uint64_t tables_len = (uint64_t)kd->n_slots * sizeof(uint32_t);
	uint64_t io_len = (uint64_t)kd->n_parts *
			  (c->io_in_bytes + c->io_out_bytes);
	int ret;

	if (!kd->n_parts)
		return 0;	/* more devices than the policy can use */
	kd->pool_len = (uint64_t)kd->n_slots * (c->slot_bytes + c->digest_bytes);
	ret = pnm_region_alloc(kd->dev, kd->pool_len, &kd->pool);
	if (!ret)
		ret = pnm_region_alloc(kd->dev, tables_len, &kd->tables);
	if (!ret)
		ret = pnm_region_alloc(kd->dev, io_len, &kd->io);
	if (ret)
		return ret;
	/* The host table is the device's, byte for byte (little-endian). */
	memcpy(kd->tables->addr, c->table, tables_len);
	return 0;
}

int kvcache_create_multi(struct pnm_dev *const *devs, unsigned int n_devs,
			 const struct kvcache_config *cfg,
			 struct kvcache **cachep)
{
	struct kvcache *c;
	unsigned int i;
	int ret;

	if (!devs || !cfg || !cachep)
		return pnm_error(-EINVAL, "kvcache_create: %s is NULL",
				 !devs ? "devs" : !cfg ? "cfg" : "cachep");
	*cachep = NULL;
	if (!n_devs || n_devs > KVCACHE_MAX_DEVICES)
		return pnm_error(-EINVAL, "kvcache: %u devices; a cache uses 1 to %u",
				 n_devs, KVCACHE_MAX_DEVICES);
	for (i = 0; i < n_devs; i++)
		if (!devs[i])
			return pnm_error(-EINVAL, "kvcache_create: device %u is NULL", i);
	ret = kvcache_check_shape(&cfg->shape);
	if (ret)
		return ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return pnm_error(-ENOMEM, "kvcache: out of memory");
	c->cfg = *cfg;
	c->n_devs = n_devs;
	ret = kvcache_check_policy(&c->cfg);
	if (!ret)
		ret = kvcache_init_sizes(c);
	for (i = 0; !ret && i < n_devs; i++) {
		c->devices[i].dev = devs[i];
		ret = pnm_get_info(devs[i], &c->devices[i].info);
		if (!ret)
			ret = kvcache_check_device(c, i, &c->devices[i].info);
	}
	if (!ret)
		ret = kvcache_alloc_host(c);
	for (i = 0; !ret && i < n_devs; i++)
		ret = kvcache_alloc_device(c, i);
	if (ret) {
		kvcache_destroy(c);
		return ret;
	}
	*cachep = c;
	return 0;
}

int kvcache_create(struct pnm_dev *dev, const struct kvcache_config *cfg,
		   struct kvcache **cachep)
{
	if (!dev) {
		if (cachep)
			*cachep = NULL;
		return pnm_error(-EINVAL, "kvcache_create: dev is NULL");
	}
	return kvcache_create_multi(&dev, 1, cfg, cachep);
}

void kvcache_destroy(struct kvcache *c)
{
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->n_devs; i++) {
		struct kvcache_device *kd = &c->devices[i];

		pnm_region_free(kd->io);
		pnm_region_free(kd->tables);
		pnm_region_free(kd->pool);
		free(kd->cmds);
		free(kd->results);
		free(kd->cmd_part);
	}
	steady_tracker_free(c->tracker);
	steady_cache_free(c->host);
	free(c->host_last);
	free(c->n_host_last);
	free(c->host_out);
	free(c->host_lse);
	free(c->page_out);
	free(c->page_lse);
	free(c->track);
	free(c->n_tokens);
	free(c->table);
	free(c->parts);
	free(c->plans);
	free(c->plan_exclude);
	free(c->plan_pages);
	free(c->part_result);
	free(c->mirror);
	free(c->stage);
	free(c->layer_streams);
	free(c);
}

static int kvcache_check_stream(const struct kvcache *c, unsigned int seq,
				unsigned int layer, unsigned int kv_head)
{
	const struct kvcache_shape *s = &c->cfg.shape;

	if (seq >= c->cfg.nr_sequences)
		return pnm_error(-EINVAL, "kvcache: sequence %u out of range (nr_sequences %u)",
				 seq, c->cfg.nr_sequences);
	if (layer >= s->layers)
		return pnm_error(-EINVAL, "kvcache: layer %u out of range (layers %u)",
				 layer, s->layers);
	if (kv_head >= s->kv_heads)
		return pnm_error(-EINVAL, "kvcache: kv head %u out of range (kv_heads %u)",
				 kv_head, s->kv_heads);
	return 0;
}

static int kvcache_check_room(const struct kvcache *c, unsigned int stream,
			      uint32_t n)
{
	unsigned int seq, layer, kv_head;

	if (n <= c->cfg.max_tokens - c->n_tokens[stream])
		return 0;
	kvcache_stream_ids(c, stream, &seq, &layer, &kv_head);
	return pnm_error(-ENOSPC,
			 "kvcache: stream (seq %u, layer %u, kv head %u) holds %u tokens; %u more exceed max_tokens %u",
			 seq, layer, kv_head, c->n_tokens[stream], n,
			 c->cfg.max_tokens);
}

/* Host bytes of @stream's page @page: the mirror's slot or the stage. */
static void *kvcache_host_slot(struct kvcache *c, unsigned int stream,
			       uint32_t page)
{
	if (!c->mirror)
		return c->stage;
	return (char *)c->mirror +
	       ((uint64_t)stream * c->max_pages + page) * c->slot_bytes;
}

static void *kvcache_mirror_digest(struct kvcache *c, unsigned int stream,
				   uint32_t page)
{
	uint64_t slots = (uint64_t)c->n_streams * c->max_pages;

	return (char *)c->mirror + slots * c->slot_bytes +
	       ((uint64_t)stream * c->max_pages + page) * c->digest_bytes;
}

/* Device memory of @stream's page @page. */
static char *kvcache_device_slot(const struct kvcache *c, unsigned int stream,
				 uint32_t page)
{
	const struct kvcache_part *p =
		kvcache_part(c, stream, kvcache_page_part(c, page));

	return (char *)c->devices[p->dev].pool->addr +
	       ((uint64_t)p->base + page - p->first_page) * c->slot_bytes;
}

/* Convert @rows rows of fp32 into the dtype at row @row of @dst. */
static void kvcache_store_rows(const struct kvcache *c, void *dst,
			       uint32_t row, const float *src, uint32_t rows)
{
	size_t d = c->cfg.shape.head_dim, i;

	for (i = 0; i < rows * d; i++)
		pnm_ref_store(c->cfg.shape.dtype, dst, row * d + i, src[i]);
}

/*
 * Write rows [row, row + rows) of one page: convert into host memory, then
 * copy the K rows and the V rows into the slot with one memcpy each.  CXL
 * memory, and an emulated one most of all, handles large copies best.
 */
static void kvcache_write_rows(struct kvcache *c, unsigned int stream,
			       uint32_t page, uint32_t row, const float *keys,
			       const float *values, uint32_t rows)
{
	uint64_t row_bytes = (uint64_t)c->cfg.shape.head_dim * c->esize;
	uint64_t v_offset = c->slot_bytes / 2;
	char *host = kvcache_host_slot(c, stream, page);
	char *slot = kvcache_device_slot(c, stream, page);

	kvcache_store_rows(c, host, row, keys, rows);
	kvcache_store_rows(c, host + v_offset, row, values, rows);
	memcpy(slot + row * row_bytes, host + row * row_bytes,
	       rows * row_bytes);
	memcpy(slot + v_offset + row * row_bytes,
	       host + v_offset + row * row_bytes, rows * row_bytes);
}

/*
 * Write @n tokens into @stream's slots.  Returns the first page that
 * became full, and sets *@n_full to how many did.
 */
static uint32_t kvcache_write_tokens(struct kvcache *c, unsigned int stream,
				     const float *keys, const float *values,
				     uint32_t n, uint32_t *n_full)
{
	uint32_t P = c->cfg.shape.page_tokens, d = c->cfg.shape.head_dim;
	uint32_t first = c->n_tokens[stream] >> c->page_shift;
	uint32_t done = 0;

	*n_full = 0;
	while (done < n) {
		uint32_t pos = c->n_tokens[stream];
		uint32_t page = pos >> c->page_shift, row = pos & (P - 1);
		uint32_t rows = P - row < n - done ? P - row : n - done;

		kvcache_write_rows(c, stream, page, row,
				   keys + (size_t)done * d,
				   values + (size_t)done * d, rows);
		c->n_tokens[stream] += rows;
		done += rows;
		if (row + rows == P) {
			(*n_full)++;
			if (c->mirror)
				pnm_ref_digest(c->cfg.shape.dtype, d,
					       kvcache_host_slot(c, stream, page),
					       P,
					       kvcache_mirror_digest(c, stream, page));
		}
	}
	return first;
}

static void kvcache_fill_cmd(const struct kvcache *c, unsigned int opcode,
			     struct cxl_pnm_cmd *cmd)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->opcode = opcode;
	cmd->dtype = c->cfg.shape.dtype;
	cmd->page_shift = c->page_shift;
	cmd->group = c->group;
	cmd->head_dim = c->cfg.shape.head_dim;
}

/* Empty every device's batch. */
static void kvcache_batch_reset(struct kvcache *c)
{
	unsigned int i;

	for (i = 0; i < c->n_devs; i++) {
		c->devices[i].nr = 0;
		c->devices[i].batch_ns = 0;
	}
}

/* Append a command slot for part @id to its device's batch. */
static struct cxl_pnm_cmd *kvcache_batch_add(struct kvcache *c,
					     unsigned int id,
					     unsigned int *index)
{
	struct kvcache_device *kd = &c->devices[c->parts[id].dev];

	*index = kd->nr;
	kd->cmd_part[kd->nr] = id;
	return &kd->cmds[kd->nr++];
}

/* DIGESTs of @count full pages of @stream from page @first, per part. */
static void kvcache_digest_cmds(struct kvcache *c, unsigned int stream,
				uint32_t first, uint32_t count)
{
	while (count) {
		unsigned int j = kvcache_page_part(c, first), index;
		const struct kvcache_part *p = kvcache_part(c, stream, j);
		const struct kvcache_device *kd = &c->devices[p->dev];
		uint32_t end = p->first_page + p->max_pages;
		uint32_t n = end - first < count ? end - first : count;
		struct cxl_pnm_cmd *cmd =
			kvcache_batch_add(c, stream * c->n_parts + j, &index);

		kvcache_fill_cmd(c, CXL_PNM_OP_DIGEST, cmd);
		cmd->n_tokens = n << c->page_shift;
		cmd->pool = pnm_buf(kd->pool, 0, kd->pool_len);
		cmd->table = pnm_buf(kd->tables,
				     ((uint64_t)p->base + first - p->first_page) *
				     sizeof(uint32_t),
				     (uint64_t)n * sizeof(uint32_t));
		first += n;
		count -= n;
	}
}

/* The device status of command @i of device @dev as an error. */
static int kvcache_status_error(const struct kvcache *c, unsigned int dev,
				unsigned int i)
{
	const struct kvcache_device *kd = &c->devices[dev];
	unsigned int id = kd->cmd_part[i], seq, layer, kv_head;

	kvcache_stream_ids(c, id / c->n_parts, &seq, &layer, &kv_head);
	return pnm_error(-EIO,
			 "kvcache: %s of stream (seq %u, layer %u, kv head %u) part %u failed on device %u: %s (status %u)",
			 kd->cmds[i].opcode == CXL_PNM_OP_DIGEST ? "DIGEST" : "SELECT_ATTEND",
			 seq, layer, kv_head, id % c->n_parts, dev,
			 pnm_status_name(kd->results[i].status),
			 kd->results[i].status);
}

/* Submit one device's batch in pieces of at most max_batch commands. */
static void kvcache_device_submit(struct kvcache_device *kd)
{
	unsigned int max = kd->info.max_batch ? kd->info.max_batch : 1, done;

	kd->ret = 0;
	for (done = 0; done < kd->nr; done += max) {
		unsigned int batch = kd->nr - done < max ? kd->nr - done : max;

		kd->ret = pnm_submit(kd->dev, kd->cmds + done,
				     kd->results + done, batch, 0);
		if (kd->ret) {
			/* pnm_last_error() is per thread: keep the text. */
			snprintf(kd->error, sizeof(kd->error), "%s",
				 pnm_last_error());
			return;
		}
	}
}

static void *kvcache_device_thread(void *arg)
{
	kvcache_device_submit(arg);
	return NULL;
}

/*
 * Run every device's batch, the devices in parallel: one thread per
 * device beyond the first, which the calling thread serves.  pnm_submit()
 * waits for its batch, so threads are what lets devices overlap.  Then
 * check every status.
 */
static int kvcache_run(struct kvcache *c)
{
	bool threaded[KVCACHE_MAX_DEVICES] = { false };
	unsigned int i, first = c->n_devs, cmd;

	for (i = 0; i < c->n_devs; i++) {
		if (!c->devices[i].nr)
			continue;
		if (first == c->n_devs) {
			first = i;
			continue;
		}
		/* Without a thread the device's batch runs after the others. */
		threaded[i] = !pthread_create(&c->devices[i].thread, NULL,
					      kvcache_device_thread,
					      &c->devices[i]);
	}
	if (first == c->n_devs)
		return 0;
	kvcache_device_submit(&c->devices[first]);
	for (i = first + 1; i < c->n_devs; i++) {
		if (threaded[i])
			pthread_join(c->devices[i].thread, NULL);
		else if (c->devices[i].nr)
			kvcache_device_submit(&c->devices[i]);
	}

	for (i = 0; i < c->n_devs; i++)
		if (c->devices[i].nr && c->devices[i].ret)
			return pnm_error(c->devices[i].ret, "kvcache: device %u: %s",
					 i, c->devices[i].error);
	for (i = 0; i < c->n_devs; i++) {
		struct kvcache_device *kd = &c->devices[i];

		for (cmd = 0; cmd < kd->nr; cmd++) {
			if (kd->results[cmd].status != CXL_PNM_STATUS_OK)
				return kvcache_status_error(c, i, cmd);
			kd->batch_ns += kd->results[cmd].device_ns;
		}
	}
	return 0;
}

/* Write the tokens of @nr streams, then digest their full pages. */
static int kvcache_append_streams(struct kvcache *c,
				  const unsigned int *streams, unsigned int nr,
				  const float *keys, const float *values,
				  uint32_t n)
{
	size_t stride = (size_t)n * c->cfg.shape.head_dim;
	uint32_t first, n_full;
	unsigned int i;

	kvcache_batch_reset(c);
	for (i = 0; i < nr; i++) {
		first = kvcache_write_tokens(c, streams[i], keys + i * stride,
					     values + i * stride, n, &n_full);
		if (n_full)
			kvcache_digest_cmds(c, streams[i], first, n_full);
	}
	return kvcache_run(c);
}

int kvcache_append(struct kvcache *c, unsigned int seq, unsigned int layer,
		   unsigned int kv_head, const float *keys,
		   const float *values, uint32_t n)
{
	unsigned int stream;
	int ret;

	if (!c || !keys || !values)
		return pnm_error(-EINVAL, "kvcache_append: %s is NULL",
				 !c ? "cache" : !keys ? "keys" : "values");
	ret = kvcache_check_stream(c, seq, layer, kv_head);
	if (ret)
		return ret;
	stream = kvcache_stream(c, seq, layer, kv_head);
	ret = kvcache_check_room(c, stream, n);
	if (ret || !n)
		return ret;
	return kvcache_append_streams(c, &stream, 1, keys, values, n);
}

int kvcache_append_layer(struct kvcache *c, unsigned int seq,
			 unsigned int layer, const float *keys,
			 const float *values, uint32_t n)
{
	unsigned int *streams, kv_heads, h;
	int ret;

	if (!c || !keys || !values)
		return pnm_error(-EINVAL, "kvcache_append_layer: %s is NULL",
				 !c ? "cache" : !keys ? "keys" : "values");
	kv_heads = c->cfg.shape.kv_heads;
	streams = c->layer_streams;
	ret = kvcache_check_stream(c, seq, layer, 0);
	if (ret)
		return ret;
	/* Check every head before writing any, so a failure changes nothing. */
	for (h = 0; h < kv_heads; h++) {
		streams[h] = kvcache_stream(c, seq, layer, h);
		ret = kvcache_check_room(c, streams[h], n);
		if (ret)
			return ret;
	}
	if (!n)
		return 0;
	return kvcache_append_streams(c, streams, kv_heads, keys, values, n);
}

uint32_t kvcache_tokens(const struct kvcache *c, unsigned int seq,
			unsigned int layer, unsigned int kv_head)
{
	if (!c || seq >= c->cfg.nr_sequences || layer >= c->cfg.shape.layers ||
	    kv_head >= c->cfg.shape.kv_heads)
		return 0;
	return c->n_tokens[kvcache_stream(c, seq, layer, kv_head)];
}

uint32_t kvcache_max_pages(const struct kvcache *c)
{
	return c ? c->max_pages : 0;
}

unsigned int kvcache_devices(const struct kvcache *c)
{
	return c ? c->n_devs : 0;
}

unsigned int kvcache_parts(const struct kvcache *c)
{
	return c ? c->n_parts : 0;
}

static int kvcache_check_step(const struct kvcache *c, unsigned int layer,
			      const struct kvcache_step *step, unsigned int *k)
{
	const struct kvcache_shape *s = &c->cfg.shape;
	unsigned int seq, h, i;

	if (!step || !step->q || !step->out || !step->lse || !step->pages ||
	    !step->n_pages)
		return pnm_error(-EINVAL,
				 "kvcache_decode_step: step or one of its q, out, lse, pages, n_pages is NULL");
	if (layer >= s->layers)
		return pnm_error(-EINVAL, "kvcache: layer %u out of range (layers %u)",
				 layer, s->layers);

	*k = step->budget_tokens >> c->page_shift;
	if (*k < 2)
		return pnm_error(-EINVAL,
				 "kvcache: budget of %u tokens is %u pages of %u tokens; KEEP_SINK and KEEP_RECENT need 2",
				 step->budget_tokens, *k, s->page_tokens);
	for (i = 0; i < c->n_devs; i++) {
		uint32_t max_k = c->devices[i].info.max_k;

		if (c->devices[i].n_parts && (*k > max_k || *k > UINT16_MAX))
			return pnm_error(-EINVAL,
					 "kvcache: budget of %u tokens is %u pages, above device %u's max_k %u",
					 step->budget_tokens, *k, i, max_k);
	}
	for (seq = 0; seq < c->cfg.nr_sequences; seq++)
		for (h = 0; h < s->kv_heads; h++)
			if (!c->n_tokens[kvcache_stream(c, seq, layer, h)])
				return pnm_error(-EINVAL,
						 "kvcache: stream (seq %u, layer %u, kv head %u) has no tokens to attend",
						 seq, layer, h);
	return 0;
}

/*
 * Share @k pages among the parts (Documentation/hybrid.rst): each part
 * first gets its kept pages; with KVCACHE_SPLIT_FULL each may then select
 * up to k; otherwise the k - kept pages left go in proportion to the
 * parts' candidate pages (not kept, not excluded), rounded down, and the
 * remainder one page each to the parts in order that still have room.
 * A part with budget 0 is not submitted.
 */
static void kvcache_split_budget(const struct kvcache *c, unsigned int k,
				 const uint32_t *cand, const unsigned int *kept,
				 unsigned int *budget)
{
	uint64_t left = k, free_total = 0, given = 0;
	unsigned int j;

	for (j = 0; j < c->n_parts; j++) {
		left -= kept[j];
		free_total += cand[j] - kept[j];
	}
	for (j = 0; j < c->n_parts; j++) {
		uint64_t share;

		if (!cand[j]) {
			budget[j] = 0;
			continue;
		}
		if (c->n_parts == 1 || c->cfg.split_budget == KVCACHE_SPLIT_FULL) {
			budget[j] = k;
			continue;
		}
		share = left >= free_total ? cand[j] - kept[j] :
			left * (cand[j] - kept[j]) / free_total;
		budget[j] = kept[j] + (unsigned int)share;
		given += share;
	}
	if (c->n_parts == 1 || c->cfg.split_budget == KVCACHE_SPLIT_FULL)
		return;
	while (given < left) {
		bool gave = false;

		for (j = 0; j < c->n_parts && given < left; j++) {
			if (budget[j] < cand[j]) {
				budget[j]++;
				given++;
				gave = true;
			}
		}
		if (!gave)
			break;
	}
}

/*
 * Fill part @j's plan for this step: its tokens, the host pages it must
 * exclude (part page numbers), the kept-page flags, and its candidates.
 */
static void kvcache_plan_part(struct kvcache *c, unsigned int stream,
			      unsigned int j, const uint32_t *host,
			      unsigned int n_host, uint32_t *cand,
			      unsigned int *kept)
{
	unsigned int id = stream * c->n_parts + j, i;
	const struct kvcache_part *p = &c->parts[id];
	struct kvcache_plan *plan = &c->plans[id];
	uint32_t *exclude = c->plan_exclude + (size_t)id * c->part_span;
	uint32_t last = kvcache_pages_of(c, c->n_tokens[stream]) - 1, np;

	memset(plan, 0, sizeof(*plan));
	plan->n_tokens = kvcache_part_tokens(c, stream, j);
	*cand = 0;
	*kept = 0;
	if (!plan->n_tokens)
		return;
	np = kvcache_pages_of(c, plan->n_tokens);
	for (i = 0; i < n_host; i++)
		if (host[i] >= p->first_page && host[i] < p->first_page + np)
			exclude[plan->n_exclude++] = host[i] - p->first_page;

	/* The sink is kept by the part holding page 0, unless the host has it. */
	if (p->first_page == 0 && !(plan->n_exclude && exclude[0] == 0)) {
		plan->flags |= CXL_PNM_CMD_KEEP_SINK;
		(*kept)++;
	}
	/* The last page is never in the host cache. */
	if (p->first_page + np - 1 == last) {
		plan->flags |= CXL_PNM_CMD_KEEP_RECENT;
		if (!(plan->flags & CXL_PNM_CMD_KEEP_SINK) || np > 1)
			(*kept)++;
	}
	*cand = np - plan->n_exclude;
}

/* Write the part's query and exclusion list and queue its SELECT_ATTEND. */
static void kvcache_attend_cmd(struct kvcache *c, unsigned int id,
			       const float *q)
{
	const struct kvcache_part *p = &c->parts[id];
	struct kvcache_plan *plan = &c->plans[id];
	const struct kvcache_device *kd = &c->devices[p->dev];
	uint64_t q_bytes = (uint64_t)c->group * c->cfg.shape.head_dim *
			   sizeof(float);
	uint64_t list_bytes = (uint64_t)plan->n_exclude * sizeof(uint32_t);
	uint64_t io = kvcache_io_offset(c, p);
	char *in = (char *)kd->io->addr + io;
	struct cxl_pnm_cmd *cmd = kvcache_batch_add(c, id, &plan->cmd);

	memcpy(in, q, q_bytes);
	memcpy(in + q_bytes, c->plan_exclude + (size_t)id * c->part_span,
	       list_bytes);

	kvcache_fill_cmd(c, CXL_PNM_OP_SELECT_ATTEND, cmd);
	cmd->flags = plan->flags;
	cmd->n_tokens = plan->n_tokens;
	cmd->k = (uint16_t)plan->k;
	cmd->n_list = (uint16_t)plan->n_exclude;
	cmd->pool = pnm_buf(kd->pool, 0, kd->pool_len);
	cmd->table = pnm_buf(kd->tables, (uint64_t)p->base * sizeof(uint32_t),
			     (uint64_t)p->max_pages * sizeof(uint32_t));
	cmd->in = pnm_buf(kd->io, io, q_bytes + list_bytes);
	cmd->out = pnm_buf(kd->io, io + c->io_in_bytes, c->io_out_bytes);
}

/* Selections of @page in the window, for ordering admissions and trims. */
static unsigned int kvcache_steady_count(const struct kvcache *c,
					 unsigned int stream, uint32_t page)
{
	return steady_tracker_count(c->tracker, stream, page);
}

/*
 * PnG-KV: the host cache of a stream holds at most k - 2 pages, so the
 * device keeps room for the sink and recent pages; a smaller budget than
 * at admission evicts the pages selected least often (ties: the later).
 * Returns the host pages to attend, copied to host_last.
 */
static unsigned int kvcache_png_host_pages(struct kvcache *c,
					   unsigned int stream, unsigned int k,
					   const uint32_t **host)
{
	unsigned int n = steady_cache_pages(c->host, stream, host), i, worst;

	while (n > k - 2) {
		for (worst = 0, i = 1; i < n; i++)
			if (kvcache_steady_count(c, stream, (*host)[i]) <=
			    kvcache_steady_count(c, stream, (*host)[worst]))
				worst = i;
		steady_cache_evict(c->host, stream, (*host)[worst]);
		c->png.pages_evicted++;
		n = steady_cache_pages(c->host, stream, host);
	}
	memcpy(c->host_last + (size_t)stream * c->cfg.steady.capacity, *host,
	       n * sizeof(**host));
	c->n_host_last[stream] = n;
	return n;
}

/*
 * Plan and queue every part of @stream.  The host's pages count against
 * the budget: the devices share k - (host pages) (the rule of
 * Documentation/hybrid.rst), so PnG-KV attends as many pages as PNM-KV.
 */
static void kvcache_queue_stream(struct kvcache *c, unsigned int stream,
				 const float *q, unsigned int k)
{
	uint32_t cand[KVCACHE_MAX_DEVICES];
	unsigned int kept[KVCACHE_MAX_DEVICES], budget[KVCACHE_MAX_DEVICES];
	const uint32_t *host = NULL;
	unsigned int n_host = 0, j;

	if (c->cfg.mode == KVCACHE_MODE_PNG_KV)
		n_host = kvcache_png_host_pages(c, stream, k, &host);
	for (j = 0; j < c->n_parts; j++)
		kvcache_plan_part(c, stream, j, host, n_host, &cand[j], &kept[j]);
	kvcache_split_budget(c, k - n_host, cand, kept, budget);
	for (j = 0; j < c->n_parts; j++) {
		unsigned int id = stream * c->n_parts + j;

		c->plans[id].k = budget[j];
		if (budget[j])
			kvcache_attend_cmd(c, id, q);
	}
}

/*
 * Read part @id's result out of device memory and merge it into @out and
 * @lse; append its pages, as stream pages, to @pages.  Each part is read
 * once, with two copies, since device memory is slow to read in a VM.
 */
static void kvcache_collect_part(struct kvcache *c, unsigned int id,
				 float *out, float *lse, uint32_t *pages,
				 unsigned int *n_pages, struct kvcache_step *step)
{
	const struct kvcache_part *p = &c->parts[id];
	struct kvcache_plan *plan = &c->plans[id];
	struct kvcache_device *kd = &c->devices[p->dev];
	const struct cxl_pnm_result *res = &kd->results[plan->cmd];
	size_t d = c->cfg.shape.head_dim, g = c->group, h;
	const char *res_mem = (const char *)kd->io->addr +
			      kvcache_io_offset(c, p) + c->io_in_bytes;
	uint32_t *local = c->plan_pages + (size_t)id * c->part_span;
	uint32_t count = res->count, i;
	uint64_t result_bytes;

	if (count > p->max_pages)	/* never from a correct device */
		count = p->max_pages;
	memcpy(c->part_result, res_mem, g * (d + 1) * sizeof(float));
	memcpy(local, res_mem + g * (d + 1) * sizeof(float),
	       count * sizeof(uint32_t));
	plan->n_pages = count;
	for (h = 0; h < g; h++)
		pnm_ref_merge(out + h * d, &lse[h], c->part_result + h * d,
			      c->part_result[g * d + h], (unsigned int)d);
	for (i = 0; i < count; i++)
		pages[(*n_pages)++] = p->first_page + local[i];

	result_bytes = g * (d + 1) * sizeof(float) + count * sizeof(uint32_t);
	c->png.bytes_results += result_bytes;
	c->png.bytes_lists += plan->n_exclude * sizeof(uint32_t);
	step->bytes_moved += result_bytes + plan->n_exclude * sizeof(uint32_t);
	kd->stats.commands++;
	kd->stats.pages_scanned += kvcache_pages_of(c, plan->n_tokens) -
				   plan->n_exclude;
	kd->stats.pages_selected += count;
	kd->stats.device_ns += res->device_ns;
}

/* Merge sorted, disjoint @b into sorted @a of *@na entries (room for all). */
static void kvcache_merge_pages(uint32_t *a, unsigned int *na,
				const uint32_t *b, unsigned int nb)
{
	unsigned int i = *na, j = nb, at = *na + nb;

	while (j) {
		if (i && a[i - 1] > b[j - 1])
			a[--at] = a[--i];
		else
			a[--at] = b[--j];
	}
	*na += nb;
}

/*
 * PnG-KV host side of one stream: attend each cached page on the host
 * (per page, so that its attention mass is known), merge into the device
 * result, then record the step, evict pages that stopped being steady and
 * admit steady pages the devices selected.  Admission copies the page out
 * of device memory, as a GPU fetches a page over CXL.
 */
static void kvcache_png_finish(struct kvcache *c, unsigned int stream,
			       const float *q, unsigned int k, float *out,
			       float *lse, uint32_t *pages,
			       unsigned int *n_pages, struct kvcache_step *step)
{
	const uint32_t *host = c->host_last + (size_t)stream * c->cfg.steady.capacity;
	unsigned int n_host = c->n_host_last[stream], i, h, n_track = 0;
	size_t d = c->cfg.shape.head_dim, g = c->group;
	uint32_t n_all = kvcache_pages_of(c, c->n_tokens[stream]);
	unsigned int cap = c->cfg.steady.capacity < k - 2 ?
			   c->cfg.steady.capacity : k - 2;
	struct pnm_ref_stream like, hs;
	const uint32_t *held;
	unsigned int n_held;

	like = (struct pnm_ref_stream){
		.dtype = c->cfg.shape.dtype, .head_dim = (unsigned int)d,
		.page_shift = c->page_shift, .group = c->group,
		.n_tokens = c->n_tokens[stream],
	};
	steady_cache_ref_stream(c->host, stream, &like, &hs);
	for (h = 0; h < g; h++)
		c->host_lse[h] = -INFINITY;
	for (i = 0; i < n_host; i++) {
		pnm_ref_attend(&hs, q, &host[i], 1, c->page_out,
			       c->page_lse + (size_t)i * g);
		for (h = 0; h < g; h++)
			pnm_ref_merge(c->host_out + h * d, &c->host_lse[h],
				      c->page_out + h * d,
				      c->page_lse[i * g + h], (unsigned int)d);
	}
	for (h = 0; h < g; h++)
		pnm_ref_merge(out + h * d, &lse[h], c->host_out + h * d,
			      c->host_lse[h], (unsigned int)d);

	/* Device pages count as selected, except the forced recent page. */
	for (i = 0; i < *n_pages; i++)
		if (pages[i] != n_all - 1)
			c->track[n_track++] = pages[i];
	/* A cached page counts when it carries hold_mass / k of the mass. */
	for (i = 0; i < n_host; i++) {
		double share = 0.0;

		for (h = 0; h < g; h++)
			share += exp((double)c->page_lse[i * g + h] - lse[h]);
		if (share / g >= c->cfg.steady.hold_mass / k)
			c->track[n_track++] = host[i];
	}
	kvcache_merge_pages(pages, n_pages, host, n_host);
	steady_tracker_record(c->tracker, stream, n_all, c->track, n_track);

	/* Evict what stopped being steady, then admit by selections. */
	n_held = steady_cache_pages(c->host, stream, &held);
	for (i = n_held; i-- > 0;) {
		if (!steady_tracker_is_steady(c->tracker, stream, held[i])) {
			steady_cache_evict(c->host, stream, held[i]);
			c->png.pages_evicted++;
		}
	}
	for (;;) {
		uint32_t best = UINT32_MAX;
		unsigned int best_count = 0, cnt;
		void *slot;

		if (steady_cache_pages(c->host, stream, &held) >= cap)
			break;
		for (i = 0; i < *n_pages; i++) {
			uint32_t page = pages[i];

			if (page >= n_all - 1 ||
			    steady_cache_holds(c->host, stream, page) ||
			    !steady_tracker_is_steady(c->tracker, stream, page))
				continue;
			cnt = kvcache_steady_count(c, stream, page);
			if (cnt > best_count) {
				best_count = cnt;
				best = page;
			}
		}
		if (best == UINT32_MAX)
			break;
		slot = steady_cache_insert(c->host, stream, best);
		memcpy(slot, kvcache_device_slot(c, stream, best), c->slot_bytes);
		c->png.pages_copied++;
		c->png.bytes_copied += c->slot_bytes;
		step->bytes_moved += c->slot_bytes;
	}

	c->png.host_hits += n_host;
	step->host_pages += n_host;
}

/* Merge every part's result of @stream into @step, then the host's. */
static void kvcache_collect_stream(struct kvcache *c, unsigned int stream,
				   const float *q, unsigned int k,
				   struct kvcache_step *step)
{
	unsigned int seq, layer, kv_head, j, h;
	size_t d = c->cfg.shape.head_dim, head, pair;
	unsigned int n_pages = 0;
	float *out, *lse;
	uint32_t *pages;

	kvcache_stream_ids(c, stream, &seq, &layer, &kv_head);
	head = (size_t)seq * c->cfg.shape.q_heads + (size_t)kv_head * c->group;
	pair = (size_t)seq * c->cfg.shape.kv_heads + kv_head;
	out = step->out + head * d;
	lse = step->lse + head;
	pages = step->pages + pair * c->max_pages;
	for (h = 0; h < c->group; h++) {
		memset(out + h * d, 0, d * sizeof(*out));
		lse[h] = -INFINITY;
	}
	for (j = 0; j < c->n_parts; j++)
		if (c->plans[stream * c->n_parts + j].k)
			kvcache_collect_part(c, stream * c->n_parts + j, out,
					     lse, pages, &n_pages, step);
	if (c->cfg.mode == KVCACHE_MODE_PNG_KV)
		kvcache_png_finish(c, stream, q, k, out, lse, pages, &n_pages,
				   step);
	step->n_pages[pair] = n_pages;
	c->png.stream_steps++;
	c->png.pages_attended += n_pages;
}

int kvcache_decode_step(struct kvcache *c, unsigned int layer,
			struct kvcache_step *step)
{
	const struct kvcache_shape *s;
	unsigned int k = 0, seq, h, i;
	int ret;

	if (!c)
		return pnm_error(-EINVAL, "kvcache_decode_step: cache is NULL");
	ret = kvcache_check_step(c, layer, step, &k);
	if (ret)
		return ret;
	s = &c->cfg.shape;

	kvcache_batch_reset(c);
	for (seq = 0; seq < c->cfg.nr_sequences; seq++)
		for (h = 0; h < s->kv_heads; h++)
			kvcache_queue_stream(c, kvcache_stream(c, seq, layer, h),
					     step->q + ((size_t)seq * s->q_heads +
							(size_t)h * c->group) * s->head_dim,
					     k);
	ret = kvcache_run(c);
	if (ret)
		return ret;

	step->device_ns = 0;
	step->device_ns_parallel = 0;
	step->host_pages = 0;
	step->bytes_moved = 0;
	for (i = 0; i < c->n_devs; i++) {
		step->device_ns += c->devices[i].batch_ns;
		if (c->devices[i].batch_ns > step->device_ns_parallel)
			step->device_ns_parallel = c->devices[i].batch_ns;
	}
	for (seq = 0; seq < c->cfg.nr_sequences; seq++)
		for (h = 0; h < s->kv_heads; h++)
			kvcache_collect_stream(c, kvcache_stream(c, seq, layer, h),
					       step->q + ((size_t)seq * s->q_heads +
							  (size_t)h * c->group) * s->head_dim,
					       k, step);
	return 0;
}

int kvcache_part_plan(const struct kvcache *c, unsigned int seq,
		      unsigned int layer, unsigned int kv_head,
		      unsigned int part, struct kvcache_part_plan *plan)
{
	unsigned int id;
	int ret;

	if (!c || !plan)
		return pnm_error(-EINVAL, "kvcache_part_plan: %s is NULL",
				 c ? "plan" : "cache");
	ret = kvcache_check_stream(c, seq, layer, kv_head);
	if (ret)
		return ret;
	if (part >= c->n_parts)
		return pnm_error(-EINVAL, "kvcache: part %u out of range (%u parts per stream)",
				 part, c->n_parts);
	id = kvcache_stream(c, seq, layer, kv_head) * c->n_parts + part;
	*plan = (struct kvcache_part_plan){
		.device = c->parts[id].dev,
		.first_page = c->parts[id].first_page,
		.n_tokens = c->plans[id].n_tokens,
		.k = c->plans[id].k,
		.flags = c->plans[id].flags,
		.exclude = c->plan_exclude + (size_t)id * c->part_span,
		.n_exclude = c->plans[id].n_exclude,
		.pages = c->plan_pages + (size_t)id * c->part_span,
		.n_pages = c->plans[id].k ? c->plans[id].n_pages : 0,
	};
	return 0;
}

unsigned int kvcache_host_pages(const struct kvcache *c, unsigned int seq,
				unsigned int layer, unsigned int kv_head,
				const uint32_t **pages)
{
	unsigned int stream;

	*pages = NULL;
	if (!c || c->cfg.mode != KVCACHE_MODE_PNG_KV ||
	    kvcache_check_stream(c, seq, layer, kv_head))
		return 0;
	stream = kvcache_stream(c, seq, layer, kv_head);
	*pages = c->host_last + (size_t)stream * c->cfg.steady.capacity;
	return c->n_host_last[stream];
}

int kvcache_device_stats(const struct kvcache *c, unsigned int device,
			 struct kvcache_device_stats *stats)
{
	if (!c || !stats)
		return pnm_error(-EINVAL, "kvcache_device_stats: %s is NULL",
				 c ? "stats" : "cache");
	if (device >= c->n_devs)
		return pnm_error(-EINVAL, "kvcache: device %u out of range (%u devices)",
				 device, c->n_devs);
	*stats = c->devices[device].stats;
	return 0;
}

int kvcache_png_stats(const struct kvcache *c, struct kvcache_png_stats *stats)
{
	if (!c || !stats)
		return pnm_error(-EINVAL, "kvcache_png_stats: %s is NULL",
				 c ? "stats" : "cache");
	*stats = c->png;
	return 0;
}

static int kvcache_check_ref(const struct kvcache *c, unsigned int seq,
			     unsigned int layer, unsigned int kv_head,
			     enum kvcache_ref_source source, const void *stream)
{
	int ret;

	if (!c || !stream)
		return pnm_error(-EINVAL, "kvcache_ref_stream: %s is NULL",
				 c ? "stream" : "cache");
	ret = kvcache_check_stream(c, seq, layer, kv_head);
	if (ret)
		return ret;
	if (source == KVCACHE_REF_MIRROR && !c->mirror)
		return pnm_error(-EINVAL,
				 "kvcache: no host mirror; create the cache with KVCACHE_HOST_MIRROR");
	if (source != KVCACHE_REF_MIRROR && source != KVCACHE_REF_DEVICE)
		return pnm_error(-EINVAL, "kvcache: unknown reference source %d",
				 (int)source);
	return 0;
}

static void kvcache_ref_shape(const struct kvcache *c,
			      struct pnm_ref_stream *s)
{
	s->dtype = c->cfg.shape.dtype;
	s->head_dim = c->cfg.shape.head_dim;
	s->page_shift = c->page_shift;
	s->group = c->group;
}

int kvcache_ref_stream(const struct kvcache *c, unsigned int seq,
		       unsigned int layer, unsigned int kv_head,
		       enum kvcache_ref_source source,
		       struct pnm_ref_stream *stream)
{
	uint32_t first;
	unsigned int id;
	int ret;

	ret = kvcache_check_ref(c, seq, layer, kv_head, source, stream);
	if (ret)
		return ret;
	id = kvcache_stream(c, seq, layer, kv_head);
	if (source == KVCACHE_REF_DEVICE) {
		if (c->n_parts > 1)
			return pnm_error(-EINVAL,
					 "kvcache: stream (seq %u, layer %u, kv head %u) is split over %u devices; describe its parts with kvcache_ref_part()",
					 seq, layer, kv_head, c->n_parts);
		return kvcache_ref_part(c, seq, layer, kv_head, 0, source,
					stream, &first);
	}
	kvcache_ref_shape(c, stream);
	stream->n_tokens = c->n_tokens[id];
	stream->pool = c->mirror;
	stream->pool_len = (uint64_t)c->n_streams * c->max_pages *
			   (c->slot_bytes + c->digest_bytes);
	stream->table = c->table + (size_t)id * c->max_pages;
	return 0;
}

int kvcache_ref_part(const struct kvcache *c, unsigned int seq,
		     unsigned int layer, unsigned int kv_head,
		     unsigned int part, enum kvcache_ref_source source,
		     struct pnm_ref_stream *stream, uint32_t *first_page)
{
	const struct kvcache_part *p;
	unsigned int id;
	int ret;

	ret = kvcache_check_ref(c, seq, layer, kv_head, source, stream);
	if (ret)
		return ret;
	if (part >= c->n_parts)
		return pnm_error(-EINVAL, "kvcache: part %u out of range (%u parts per stream)",
				 part, c->n_parts);
	id = kvcache_stream(c, seq, layer, kv_head);
	p = kvcache_part(c, id, part);
	kvcache_ref_shape(c, stream);
	stream->n_tokens = kvcache_part_tokens(c, id, part);
	if (first_page)
		*first_page = p->first_page;
	if (source == KVCACHE_REF_MIRROR) {
		stream->pool = c->mirror;
		stream->pool_len = (uint64_t)c->n_streams * c->max_pages *
				   (c->slot_bytes + c->digest_bytes);
		stream->table = c->table + (size_t)id * c->max_pages +
				p->first_page;
		return 0;
	}
	if (!p->max_pages) {
		/* An unused part: no tokens, and nothing to point at. */
		stream->pool = NULL;
		stream->pool_len = 0;
		stream->table = c->table;
		return 0;
	}
	stream->pool = c->devices[p->dev].pool->addr;
	stream->pool_len = c->devices[p->dev].pool_len;
	stream->table = c->table + p->base;
	return 0;
}
