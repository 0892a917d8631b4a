/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * KV-cache manager: the KV cache of a decoder-only model kept in the memory
 * of one to four PNM devices, and decode attention run on them.
 *
 * A stream is the KV sequence of one (sequence, layer, kv-head).  Its
 * tokens fill pages of page_tokens tokens; a page lives in a page slot of
 * a device's page pool.  Streams are spread over the devices by kv-head,
 * by sequence, or split by token range into one part per device
 * (Documentation/hybrid.rst).  A decode step runs one SELECT_ATTEND per
 * stream part of a layer, on every device at once, and merges the partial
 * results of a split stream by log-sum-exp.
 *
 * Two modes: PNM-KV selects and attends everything on the devices; PnG-KV
 * also keeps the stream's steady pages in a host cache, attends them on the
 * host and excludes them on the device (runtime/steady.h).
 *
 * Functions return 0 or a negative errno; pnm_last_error() names the bad
 * value.
 */
#ifndef KVCACHE_H
#define KVCACHE_H

#include <stdint.h>

#include "pnm.h"
#include "pnm_ref.h"
#include "steady.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Devices one cache may use. */
#define KVCACHE_MAX_DEVICES	4

/** Model shape; q_heads / kv_heads query heads share each KV head (GQA). */
struct kvcache_shape {
	unsigned int layers;
	unsigned int q_heads;
	unsigned int kv_heads;
	unsigned int head_dim;
	unsigned int page_tokens;	/* a power of two */
	unsigned int dtype;		/* CXL_PNM_DTYPE_* of keys and values */
};

/* Keep a host copy of the page pool, for the CPU reference and for PnG-KV. */
#define KVCACHE_HOST_MIRROR	(1U << 0)

/* How streams are spread over the devices. */
enum kvcache_spread {
	KVCACHE_SPREAD_KV_HEAD,	/* stream on device kv_head % n_devs */
	KVCACHE_SPREAD_SEQUENCE,	/* stream on device seq % n_devs */
	KVCACHE_SPREAD_TOKENS,	/* part j of every stream on device j */
};

/* How a token-split stream's page budget is shared by its parts. */
enum kvcache_split_budget {
	KVCACHE_SPLIT_PROPORTIONAL,	/* k in proportion to the parts' pages */
	KVCACHE_SPLIT_FULL,		/* each part may select k pages */
};

enum kvcache_mode {
	KVCACHE_MODE_PNM_KV,	/* select and attend on the devices */
	KVCACHE_MODE_PNG_KV,	/* steady pages on the host, the rest on PNM */
};

/**
 * struct kvcache_config - what kvcache_create() builds
 * @shape: the model
 * @nr_sequences: sequences decoded together
 * @max_tokens: tokens per sequence
 * @flags: KVCACHE_* bits
 * @spread: enum kvcache_spread; only matters with several devices
 * @split_budget: enum kvcache_split_budget, for KVCACHE_SPREAD_TOKENS
 * @mode: enum kvcache_mode
 * @steady: PnG-KV steadiness and host cache size; zero fields take the
 *	defaults
 *
 * Zero-initialized fields after @flags select the default: by kv-head,
 * proportional split, PNM-KV.
 */
struct kvcache_config {
	struct kvcache_shape shape;
	unsigned int nr_sequences;
	uint32_t max_tokens;		/* per sequence */
	unsigned int flags;		/* KVCACHE_* */
	enum kvcache_spread spread;
	enum kvcache_split_budget split_budget;
	enum kvcache_mode mode;
	struct steady_params steady;
};

struct kvcache;

/* A cache on one device: kvcache_create_multi() with one device. */
int kvcache_create(struct pnm_dev *dev, const struct kvcache_config *cfg,
		   struct kvcache **cachep);
/*
 * A cache on @n_devs (1 to KVCACHE_MAX_DEVICES) open devices, spread as
 * cfg->spread says.  The devices stay the caller's; close them after
 * kvcache_destroy().
 */
int kvcache_create_multi(struct pnm_dev *const *devs, unsigned int n_devs,
			 const struct kvcache_config *cfg,
			 struct kvcache **cachep);
void kvcache_destroy(struct kvcache *cache);

/*
 * Append @n tokens to the stream (@seq, @layer, @kv_head): keys[n][head_dim]
 * and values[n][head_dim] in fp32, stored in the cache's dtype (rounded to
 * nearest even).  Pages that fill are digested on the device before this
 * returns.
 */
int kvcache_append(struct kvcache *cache, unsigned int seq,
		   unsigned int layer, unsigned int kv_head,
		   const float *keys, const float *values, uint32_t n);

/*
 * Append @n tokens to every KV head of (@seq, @layer):
 * keys[kv_heads][n][head_dim], values likewise; one batch of DIGEST
 * commands covers all heads.
 */
int kvcache_append_layer(struct kvcache *cache, unsigned int seq,
			 unsigned int layer, const float *keys,
			 const float *values, uint32_t n);

/* Tokens in the stream; 0 for a stream outside the cache. */
uint32_t kvcache_tokens(const struct kvcache *cache, unsigned int seq,
			unsigned int layer, unsigned int kv_head);

/* Page slots per stream: the stride of struct kvcache_step.pages. */
uint32_t kvcache_max_pages(const struct kvcache *cache);

/**
 * struct kvcache_step - one decode step of one layer
 * @q: in: queries [nr_sequences][q_heads][head_dim], after rotary embedding
 * @budget_tokens: in: tokens to attend per stream; k = budget / page_tokens
 * @out: out: attention outputs [nr_sequences][q_heads][head_dim]
 * @lse: out: natural-log LSE of each output [nr_sequences][q_heads]
 * @pages: out: selected pages, ascending, of each stream
 *	[nr_sequences][kv_heads][kvcache_max_pages()]
 * @n_pages: out: pages attended per stream [nr_sequences][kv_heads]
 * @device_ns: out: modeled device time, summed over the step's commands
 * @device_ns_parallel: out: modeled time of the step with the devices
 *	working in parallel: the largest per-device sum
 * @host_pages: out: pages attended from the host cache (PnG-KV), summed
 *	over the step's streams; they are part of @pages
 * @bytes_moved: out: bytes between host and device memory for attention:
 *	pages copied into the host cache, exclusion lists written, outputs,
 *	LSEs and page lists read back (queries are not counted)
 *
 * Query head h belongs to KV head h / (q_heads / kv_heads).  @pages lists
 * every page attended, by the devices or the host, in stream page numbers.
 */
struct kvcache_step {
	const float *q;
	unsigned int budget_tokens;
	float *out;
	float *lse;
	uint32_t *pages;
	uint32_t *n_pages;
	uint64_t device_ns;
	uint64_t device_ns_parallel;
	uint64_t host_pages;
	uint64_t bytes_moved;
};

/*
 * Run the decode step of @layer for every sequence: per stream part one
 * SELECT_ATTEND, all parts of a device in one batch (split at max_batch),
 * all devices at once (a thread per device).  Every stream needs a token.
 * In PnG-KV mode the host attends the stream's cached steady pages, the
 * devices exclude them, and the tracker and the host cache are updated.
 */
int kvcache_decode_step(struct kvcache *cache, unsigned int layer,
			struct kvcache_step *step);

/* Devices of the cache, and stream parts per stream (1, or n_devs). */
unsigned int kvcache_devices(const struct kvcache *cache);
unsigned int kvcache_parts(const struct kvcache *cache);

/**
 * struct kvcache_part_plan - one stream part in the last decode step
 * @device: index of the device holding the part
 * @first_page: first stream page the part holds
 * @n_tokens: tokens of the part at that step (its own sub-stream)
 * @k: page budget sent; 0 when nothing was submitted for the part
 * @flags: CXL_PNM_CMD_KEEP_* sent
 * @exclude: pages excluded, part page numbers, ascending
 * @n_exclude: their count
 * @pages: pages the device selected, part page numbers, ascending
 * @n_pages: their count
 *
 * Stream page = @first_page + part page.  pnm_ref_select() over the part
 * (kvcache_ref_part()) with @k, @flags and @exclude reproduces @pages.
 */
struct kvcache_part_plan {
	unsigned int device;
	uint32_t first_page;
	uint32_t n_tokens;
	unsigned int k;
	unsigned int flags;
	const uint32_t *exclude;
	unsigned int n_exclude;
	const uint32_t *pages;
	unsigned int n_pages;
};

/*
 * What the last decode step of @layer did for part @part of the stream
 * (@seq, @layer, @kv_head).  The pointers stay valid until the next decode
 * step of that layer.
 */
int kvcache_part_plan(const struct kvcache *cache, unsigned int seq,
		      unsigned int layer, unsigned int kv_head,
		      unsigned int part, struct kvcache_part_plan *plan);

/*
 * Pages the host attended for the stream in its layer's last decode step
 * (PnG-KV), ascending, and their count; zero in PNM-KV mode.
 */
unsigned int kvcache_host_pages(const struct kvcache *cache, unsigned int seq,
				unsigned int layer, unsigned int kv_head,
				const uint32_t **pages);

/** Cumulative work of one device since the cache was created. */
struct kvcache_device_stats {
	unsigned int streams;		/* stream parts it holds */
	uint64_t commands;		/* SELECT_ATTEND commands run */
	uint64_t pages_scanned;		/* pages scored: parts' pages minus excluded */
	uint64_t pages_selected;	/* pages selected and attended */
	uint64_t device_ns;		/* modeled time of those commands */
};

int kvcache_device_stats(const struct kvcache *cache, unsigned int device,
			 struct kvcache_device_stats *stats);

/** Cumulative PnG-KV figures (PNM-KV mode counts results only). */
struct kvcache_png_stats {
	uint64_t stream_steps;		/* streams x decode steps */
	uint64_t pages_attended;	/* host and device */
	uint64_t host_hits;		/* attended from the host cache */
	uint64_t pages_copied;		/* admitted into the host cache */
	uint64_t pages_evicted;
	uint64_t bytes_copied;		/* pages_copied x slot bytes */
	uint64_t bytes_lists;		/* exclusion lists written */
	uint64_t bytes_results;		/* outputs, LSEs, page lists read */
};

int kvcache_png_stats(const struct kvcache *cache,
		      struct kvcache_png_stats *stats);

/* Where kvcache_ref_stream() points the reference. */
enum kvcache_ref_source {
	KVCACHE_REF_MIRROR,	/* the host copy (KVCACHE_HOST_MIRROR) */
	KVCACHE_REF_DEVICE,	/* the mapped device memory: slow in a VM */
};

/*
 * Describe the stream (@seq, @layer, @kv_head) for the pnm_ref_* functions,
 * over @source.  The page table is the host's copy of the one in device
 * memory.  With either source the digest of a partial last page is stale:
 * only KEEP_RECENT makes it harmless.  KVCACHE_REF_DEVICE needs a stream
 * that is not split (kvcache_parts() 1); use kvcache_ref_part() otherwise.
 */
int kvcache_ref_stream(const struct kvcache *cache, unsigned int seq,
		       unsigned int layer, unsigned int kv_head,
		       enum kvcache_ref_source source,
		       struct pnm_ref_stream *stream);

/*
 * Describe part @part of the stream as the sub-stream its device sees
 * (its tokens, page 0 = stream page *@first_page), over @source.
 */
int kvcache_ref_part(const struct kvcache *cache, unsigned int seq,
		     unsigned int layer, unsigned int kv_head,
		     unsigned int part, enum kvcache_ref_source source,
		     struct pnm_ref_stream *stream, uint32_t *first_page);

#ifdef __cplusplus
}
#endif

#endif /* KVCACHE_H */
