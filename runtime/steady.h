/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * PnG-KV building blocks: the steady-page tracker and the host page cache.
 *
 * A page is steady when decode steps keep selecting it: at least
 * `threshold` times in the last `window` steps of its stream.  The host
 * (standing in for the GPU) keeps copies of steady pages' keys and values
 * and attends them itself; the PNM device is told to exclude them.
 * Documentation/hybrid.rst describes the policy and its defaults.
 *
 * Both structures are per stream (sequence, layer, kv-head) and hold no
 * device state: runtime/kvcache.c decides what to record, admit and evict.
 */
#ifndef STEADY_H
#define STEADY_H

#include <stdbool.h>
#include <stdint.h>

#include "pnm_ref.h"

#ifdef __cplusplus
extern "C" {
#endif

#define STEADY_DEFAULT_WINDOW		8
#define STEADY_DEFAULT_THRESHOLD	4
#define STEADY_DEFAULT_CAPACITY		16
#define STEADY_DEFAULT_HOLD_MASS	0.5f
#define STEADY_MAX_WINDOW		64	/* one 64-bit history per page */

/**
 * struct steady_params - steadiness rule and host cache size
 * @window: N, decode steps remembered per page, 1 to 64
 * @threshold: X, selections within the window that make a page steady,
 *	1 to @window
 * @capacity: host cache pages per stream; a step with page budget k uses
 *	at most k - 2 of them (the device keeps the sink and recent pages)
 * @hold_mass: a cached page, which the device no longer sees, counts as
 *	selected in a step when its share of the step's attention mass is at
 *	least @hold_mass / k (1 / k is the share of a page under uniform
 *	attention over the budget), in (0, k]
 *
 * A zero field takes its default, STEADY_DEFAULT_*.
 */
struct steady_params {
	unsigned int window;
	unsigned int threshold;
	unsigned int capacity;
	float hold_mass;
};

/* Replace the zero fields of @p by the defaults, then check it. */
int steady_params_resolve(struct steady_params *p);

struct steady_tracker;

struct steady_tracker *steady_tracker_new(const struct steady_params *p,
					  unsigned int n_streams,
					  uint32_t max_pages);
void steady_tracker_free(struct steady_tracker *t);

/*
 * Record one decode step of @stream, which has @n_pages pages: @selected
 * lists the @n_selected pages selected in it, in any order, each once.  Every other page
 * below @n_pages records a miss.
 */
void steady_tracker_record(struct steady_tracker *t, unsigned int stream,
			   uint32_t n_pages, const uint32_t *selected,
			   unsigned int n_selected);
/* Selections of @page within the window. */
unsigned int steady_tracker_count(const struct steady_tracker *t,
				  unsigned int stream, uint32_t page);
bool steady_tracker_is_steady(const struct steady_tracker *t,
			      unsigned int stream, uint32_t page);
/* Forget the history of every page of @stream. */
void steady_tracker_reset(struct steady_tracker *t, unsigned int stream);

struct steady_cache;

/*
 * A host cache of @capacity pages per stream; each page keeps a copy of
 * one device page slot, @slot_bytes bytes (K then V).
 */
struct steady_cache *steady_cache_new(unsigned int n_streams,
				      uint32_t max_pages,
				      unsigned int capacity,
				      uint64_t slot_bytes,
				      uint64_t digest_bytes);
void steady_cache_free(struct steady_cache *c);

/* Pages @stream holds, ascending; returns their count. */
unsigned int steady_cache_pages(const struct steady_cache *c,
				unsigned int stream, const uint32_t **pages);
bool steady_cache_holds(const struct steady_cache *c, unsigned int stream,
			uint32_t page);
/*
 * Make room for @page of @stream and return its host slot (slot_bytes) for
 * the caller to fill, or NULL when the stream's cache is full or already
 * holds the page.
 */
void *steady_cache_insert(struct steady_cache *c, unsigned int stream,
			  uint32_t page);
/* Drop @page of @stream; a page not held is ignored. */
void steady_cache_evict(struct steady_cache *c, unsigned int stream,
			uint32_t page);

/*
 * Describe the cached pages of @stream for pnm_ref_attend(): the shape and
 * n_tokens come from @like, the pool and page table from the cache.  Only
 * pages the cache holds may be attended through it.
 */
void steady_cache_ref_stream(const struct steady_cache *c,
			     unsigned int stream,
			     const struct pnm_ref_stream *like,
			     struct pnm_ref_stream *out);

#ifdef __cplusplus
}
#endif

#endif /* STEADY_H */
