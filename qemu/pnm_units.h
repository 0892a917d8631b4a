/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Compute units of the CXL-PNM device model: a pool of worker threads that
 * runs the tasks of a parallel step, for several commands at once or for
 * the page ranges of one large command.
 */
#ifndef PNM_UNITS_H
#define PNM_UNITS_H

struct pnm_units;

/* Largest --units value. */
#define PNM_UNITS_MAX	256

/*
 * Start @n units: the calling thread and @n - 1 workers.  Returns NULL
 * (errno set) if a thread cannot be created.
 */
struct pnm_units *pnm_units_create(unsigned int n);

/* Stop and join the workers; NULL is allowed. */
void pnm_units_destroy(struct pnm_units *u);

/* Number of units; 1 for NULL. */
unsigned int pnm_units_count(const struct pnm_units *u);

/*
 * Run @fn(@arg, i) for every i in [0, @n_tasks) on the units, the caller
 * included, and return when all have finished.  Tasks are taken in order
 * by whichever unit is free.  A NULL @u runs them on the caller.  Not
 * reentrant: a task must not call pnm_units_run() on the same pool.
 */
void pnm_units_run(struct pnm_units *u, void (*fn)(void *arg, unsigned int i),
		   void *arg, unsigned int n_tasks);

#endif /* PNM_UNITS_H */
