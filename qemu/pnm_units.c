// SPDX-License-Identifier: GPL-2.0-only
/*
 * Compute units of the CXL-PNM device model, see pnm_units.h.
 *
 * A step is published under the mutex with a new generation number.
 * Workers take tickets from one atomic word holding the generation and the
 * next task index, so the split adapts to uneven tasks, and a worker late
 * from an old step sees the generation change instead of taking a task of
 * the new step under the old one's name.  The last unit to finish a task wakes the caller.
 * Between steps a worker spins for PNM_UNITS_SPIN_NS (a device serving a
 * burst of commands starts the next step within microseconds), then sleeps
 * on a condition variable, so an idle device costs no CPU.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "pnm_units.h"

#define PNM_UNITS_SPIN_NS	50000

struct pnm_units {
	unsigned int n;
	pthread_t *threads;

	pthread_mutex_t lock;
	pthread_cond_t wake;		/* a new step or stop */
	pthread_cond_t done;		/* the step's last task finished */
	uint64_t generation;		/* steps published; read racily to spin */
	bool stop;

	void (*fn)(void *arg, unsigned int i);
	void *arg;
	unsigned int n_tasks;
	uint64_t ticket;		/* generation << 32 | next task, atomic */
	unsigned int finished;		/* tasks finished, atomic */
};

static uint64_t pnm_units_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * Take and run tasks of step @generation until none is left.  The acquire
 * pairs with the release that published the step, so @fn, @arg and
 * @n_tasks are those of the ticket's step.
 */
static void pnm_units_work(struct pnm_units *u, uint64_t generation)
{
	uint64_t t = __atomic_load_n(&u->ticket, __ATOMIC_ACQUIRE);

	for (;;) {
		unsigned int i = (uint32_t)t;

		/*
		 * Compare and swap, not fetch and add: a late worker must not
		 * use up an index of the next step.
		 */
		if (t >> 32 != (generation & 0xffffffffU) || i >= u->n_tasks)
			return;
		if (!__atomic_compare_exchange_n(&u->ticket, &t, t + 1, false,
						 __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
			continue;	/* t now holds the current ticket */
		u->fn(u->arg, i);
		if (__atomic_add_fetch(&u->finished, 1, __ATOMIC_ACQ_REL) == u->n_tasks) {
			pthread_mutex_lock(&u->lock);
			pthread_cond_signal(&u->done);
			pthread_mutex_unlock(&u->lock);
		}
		t = __atomic_load_n(&u->ticket, __ATOMIC_ACQUIRE);
	}
}

/* Wait for a generation after @seen; false when the pool stops. */
static bool pnm_units_wait(struct pnm_units *u, uint64_t seen)
{
	uint64_t start = pnm_units_now_ns();

	while (__atomic_load_n(&u->generation, __ATOMIC_ACQUIRE) == seen &&
	       pnm_units_now_ns() - start < PNM_UNITS_SPIN_NS)
		__builtin_ia32_pause();
	pthread_mutex_lock(&u->lock);
	while (u->generation == seen && !u->stop)
		pthread_cond_wait(&u->wake, &u->lock);
	pthread_mutex_unlock(&u->lock);
	return !u->stop;
}

static void *pnm_units_main(void *arg)
{
	struct pnm_units *u = arg;
	uint64_t seen = 0;

	while (pnm_units_wait(u, seen)) {
		pthread_mutex_lock(&u->lock);
		seen = u->generation;
		pthread_mutex_unlock(&u->lock);
		pnm_units_work(u, seen);
	}
	return NULL;
}

struct pnm_units *pnm_units_create(unsigned int n)
{
	struct pnm_units *u;
	unsigned int i;
	int err;

	if (!n || n > PNM_UNITS_MAX) {
		errno = EINVAL;
		return NULL;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->n = n;
	u->threads = calloc(n, sizeof(*u->threads));
	if (!u->threads) {
		free(u);
		return NULL;
	}
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->wake, NULL);
	pthread_cond_init(&u->done, NULL);
	for (i = 1; i < n; i++) {
		err = pthread_create(&u->threads[i], NULL, pnm_units_main, u);
		if (err) {
			u->n = i;
			pnm_units_destroy(u);
			errno = err;
			return NULL;
		}
	}
	return u;
}

void pnm_units_destroy(struct pnm_units *u)
{
	unsigned int i;

	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->stop = true;
	pthread_cond_broadcast(&u->wake);
	pthread_mutex_unlock(&u->lock);
	for (i = 1; i < u->n; i++)
		pthread_join(u->threads[i], NULL);
	pthread_cond_destroy(&u->wake);
	pthread_cond_destroy(&u->done);
	pthread_mutex_destroy(&u->lock);
	free(u->threads);
	free(u);
}

unsigned int pnm_units_count(const struct pnm_units *u)
{
	return u ? u->n : 1;
}

void pnm_units_run(struct pnm_units *u, void (*fn)(void *arg, unsigned int i),
		   void *arg, unsigned int n_tasks)
{
	uint64_t generation;
	unsigned int i;

	if (!n_tasks)
		return;
	if (!u || u->n == 1 || n_tasks == 1) {
		for (i = 0; i < n_tasks; i++)
			fn(arg, i);
		return;
	}
	/*
	 * The previous step has finished every task, so no unit is inside
	 * @fn; a worker still taking tickets sees the new generation.
	 */
	pthread_mutex_lock(&u->lock);
	generation = u->generation + 1;
	u->fn = fn;
	u->arg = arg;
	u->n_tasks = n_tasks;
	__atomic_store_n(&u->finished, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&u->ticket, (generation & 0xffffffffU) << 32,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&u->generation, generation, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&u->wake);
	pthread_mutex_unlock(&u->lock);

	pnm_units_work(u, generation);

	pthread_mutex_lock(&u->lock);
	while (__atomic_load_n(&u->finished, __ATOMIC_ACQUIRE) < n_tasks)
		pthread_cond_wait(&u->done, &u->lock);
	pthread_mutex_unlock(&u->lock);
}
