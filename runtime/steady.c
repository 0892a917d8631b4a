// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Steady-page tracker and host page cache of PnG-KV mode.
 *
 * Tracker: one 64-bit history per (stream, page); bit 0 is the latest
 * step, a set bit a selection.  Steadiness is the population count of the
 * low `window` bits, so recording a step costs a shift per page.
 *
 * Cache: per stream, `capacity` host slots with the layout of a device
 * page pool (slots, then digests), a page table from page to host slot
 * (NO_SLOT when absent) and the ascending list of held pages.  The pool
 * layout lets pnm_ref_attend() read the cached pages unchanged.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pnm_internal.h"
#include "steady.h"

#define NO_SLOT		UINT32_MAX

int steady_params_resolve(struct steady_params *p)
{
	if (!p->window)
		p->window = STEADY_DEFAULT_WINDOW;
	if (!p->threshold)
		p->threshold = p->window < STEADY_DEFAULT_THRESHOLD ?
			       p->window : STEADY_DEFAULT_THRESHOLD;
	if (!p->capacity)
		p->capacity = STEADY_DEFAULT_CAPACITY;
	if (p->hold_mass == 0.0f)
		p->hold_mass = STEADY_DEFAULT_HOLD_MASS;

	if (p->window > STEADY_MAX_WINDOW)
		return pnm_error(-EINVAL, "steady: window %u exceeds %u steps",
				 p->window, STEADY_MAX_WINDOW);
	if (p->threshold > p->window)
		return pnm_error(-EINVAL,
				 "steady: threshold %u exceeds the window of %u steps",
				 p->threshold, p->window);
	if (!(p->hold_mass > 0.0f) || !isfinite(p->hold_mass))
		return pnm_error(-EINVAL, "steady: hold_mass %g is not a positive number",
				 (double)p->hold_mass);
	return 0;
}

struct steady_tracker {
	unsigned int n_streams;
	uint32_t max_pages;
	uint64_t mask;		/* the low `window` bits */
	unsigned int threshold;
	uint64_t *history;	/* [n_streams][max_pages] */
};

struct steady_tracker *steady_tracker_new(const struct steady_params *p,
					  unsigned int n_streams,
					  uint32_t max_pages)
{
	struct steady_tracker *t = calloc(1, sizeof(*t));
	size_t entries = (size_t)n_streams * max_pages;

	if (!t)
		goto err;
	t->n_streams = n_streams;
	t->max_pages = max_pages;
	t->mask = p->window >= 64 ? UINT64_MAX : (1ULL << p->window) - 1;
	t->threshold = p->threshold;
	t->history = calloc(entries ? entries : 1, sizeof(*t->history));
	if (t->history)
		return t;
	free(t);
err:
	pnm_error(-ENOMEM, "steady: out of memory for %u streams of %u pages",
		  n_streams, max_pages);
	return NULL;
}

void steady_tracker_free(struct steady_tracker *t)
{
	if (!t)
		return;
	free(t->history);
	free(t);
}

void steady_tracker_record(struct steady_tracker *t, unsigned int stream,
			   uint32_t n_pages, const uint32_t *selected,
			   unsigned int n_selected)
{
	uint64_t *h = t->history + (size_t)stream * t->max_pages;
	unsigned int i;
	uint32_t p;

	if (n_pages > t->max_pages)
		n_pages = t->max_pages;
	for (p = 0; p < n_pages; p++)
		h[p] <<= 1;
	for (i = 0; i < n_selected; i++)
		if (selected[i] < n_pages)
			h[selected[i]] |= 1;
}

unsigned int steady_tracker_count(const struct steady_tracker *t,
				  unsigned int stream, uint32_t page)
{
	if (stream >= t->n_streams || page >= t->max_pages)
		return 0;
	return (unsigned int)__builtin_popcountll(
		t->history[(size_t)stream * t->max_pages + page] & t->mask);
}

bool steady_tracker_is_steady(const struct steady_tracker *t,
			      unsigned int stream, uint32_t page)
{
	return steady_tracker_count(t, stream, page) >= t->threshold;
}

void steady_tracker_reset(struct steady_tracker *t, unsigned int stream)
{
	memset(t->history + (size_t)stream * t->max_pages, 0,
	       t->max_pages * sizeof(*t->history));
}

struct steady_cache {
	unsigned int n_streams;
	uint32_t max_pages;
	unsigned int capacity;
	uint64_t slot_bytes;
	uint64_t pool_len;	/* per stream: capacity slots and digests */
	char *pools;		/* [n_streams][pool_len] */
	uint32_t *table;	/* [n_streams][max_pages]: host slot or NO_SLOT */
	uint32_t *pages;	/* [n_streams][capacity]: held pages, ascending */
	unsigned int *n_held;	/* [n_streams] */
};

struct steady_cache *steady_cache_new(unsigned int n_streams,
				      uint32_t max_pages,
				      unsigned int capacity,
				      uint64_t slot_bytes,
				      uint64_t digest_bytes)
{
	struct steady_cache *c = calloc(1, sizeof(*c));
	size_t entries = (size_t)n_streams * max_pages;

	if (!c)
		goto err;
	c->n_streams = n_streams;
	c->max_pages = max_pages;
	c->capacity = capacity;
	c->slot_bytes = slot_bytes;
	c->pool_len = capacity * (slot_bytes + digest_bytes);
	c->pools = calloc(n_streams ? n_streams : 1, c->pool_len ? c->pool_len : 1);
	c->table = malloc((entries ? entries : 1) * sizeof(*c->table));
	c->pages = calloc((size_t)n_streams * capacity + 1, sizeof(*c->pages));
	c->n_held = calloc(n_streams + 1, sizeof(*c->n_held));
	if (c->pools && c->table && c->pages && c->n_held) {
		memset(c->table, 0xff, entries * sizeof(*c->table));
		return c;
	}
	steady_cache_free(c);
err:
	pnm_error(-ENOMEM, "steady: out of memory for a host cache of %u pages per stream",
		  capacity);
	return NULL;
}

void steady_cache_free(struct steady_cache *c)
{
	if (!c)
		return;
	free(c->pools);
	free(c->table);
	free(c->pages);
	free(c->n_held);
	free(c);
}

unsigned int steady_cache_pages(const struct steady_cache *c,
				unsigned int stream, const uint32_t **pages)
{
	*pages = c->pages + (size_t)stream * c->capacity;
	return c->n_held[stream];
}

bool steady_cache_holds(const struct steady_cache *c, unsigned int stream,
			uint32_t page)
{
	return page < c->max_pages &&
	       c->table[(size_t)stream * c->max_pages + page] != NO_SLOT;
}

/* Lowest host slot of @stream no held page uses. */
static uint32_t steady_cache_free_slot(const struct steady_cache *c,
				       unsigned int stream)
{
	const uint32_t *held = c->pages + (size_t)stream * c->capacity;
	const uint32_t *table = c->table + (size_t)stream * c->max_pages;
	uint32_t slot;
	unsigned int i;

	for (slot = 0; slot < c->capacity; slot++) {
		for (i = 0; i < c->n_held[stream]; i++)
			if (table[held[i]] == slot)
				break;
		if (i == c->n_held[stream])
			return slot;
	}
	return NO_SLOT;
}

void *steady_cache_insert(struct steady_cache *c, unsigned int stream,
			  uint32_t page)
{
	uint32_t *held = c->pages + (size_t)stream * c->capacity;
	unsigned int n = c->n_held[stream], at;
	uint32_t slot;

	if (n >= c->capacity || page >= c->max_pages ||
	    steady_cache_holds(c, stream, page))
		return NULL;
	slot = steady_cache_free_slot(c, stream);
	for (at = n; at > 0 && held[at - 1] > page; at--)
		held[at] = held[at - 1];
	held[at] = page;
	c->n_held[stream] = n + 1;
	c->table[(size_t)stream * c->max_pages + page] = slot;
	return c->pools + (size_t)stream * c->pool_len + slot * c->slot_bytes;
}

void steady_cache_evict(struct steady_cache *c, unsigned int stream,
			uint32_t page)
{
	uint32_t *held = c->pages + (size_t)stream * c->capacity;
	unsigned int n = c->n_held[stream], i;

	if (!steady_cache_holds(c, stream, page))
		return;
	for (i = 0; i < n && held[i] != page; i++)
		;
	memmove(held + i, held + i + 1, (n - i - 1) * sizeof(*held));
	c->n_held[stream] = n - 1;
	c->table[(size_t)stream * c->max_pages + page] = NO_SLOT;
}

void steady_cache_ref_stream(const struct steady_cache *c,
			     unsigned int stream,
			     const struct pnm_ref_stream *like,
			     struct pnm_ref_stream *out)
{
	*out = *like;
	out->pool = c->pools + (size_t)stream * c->pool_len;
	out->pool_len = c->pool_len;
	out->table = c->table + (size_t)stream * c->max_pages;
}
