/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * pnmctl: list, bind and test CXL-PNM devices, create CXL ram regions for
 * them, and model their performance.  Documentation/pnmctl.1.
 */
#ifndef PNMCTL_H
#define PNMCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PNMCTL_CLASS_DIR	"/sys/class/cxl_pnm"
#define PNMCTL_DAX_DEVICES	"/sys/bus/dax/devices"
#define PNMCTL_DAX_DRIVERS	"/sys/bus/dax/drivers"
#define PNMCTL_DRIVER		"cxl_pnm"

/* Options every subcommand takes. */
struct pnmctl_opts {
	int verbose;		/* -v count: 1 steps, 2 also sysfs writes */
	bool json;		/* -j */
};

extern struct pnmctl_opts pnmctl;

/* Messages: errors name the object first ("pnm0: ..."). */
void pnmctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Printed with -v (level 1) or -vv (level 2), on stderr. */
void pnmctl_info(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* sysfs helpers: 0 or a negative errno. */
int sysfs_read_str(const char *path, char *buf, size_t len);
int sysfs_read_u64(const char *path, uint64_t *value);
int sysfs_write_str(const char *path, const char *value);
bool path_exists(const char *path);
/* Last component of the target of symlink @path, into @buf. */
int link_basename(const char *path, char *buf, size_t len);
/* Wait up to @ms for @cond(@arg) to return true, polling every 10 ms. */
bool wait_for(bool (*cond)(const void *arg), const void *arg, unsigned int ms);

/* A JSON writer for listings, pretty-printed as ndctl prints them. */
struct json_out {
	FILE *f;
	int depth;
	bool first;		/* no member written yet at this depth */
};

void json_open(struct json_out *j, FILE *f, char bracket);
void json_close(struct json_out *j, char bracket);
void json_key_open(struct json_out *j, const char *key, char bracket);
void json_str(struct json_out *j, const char *key, const char *value);
void json_u64(struct json_out *j, const char *key, uint64_t value);
void json_double(struct json_out *j, const char *key, double value);

/* Bind @dax to cxl_pnm (pnmctl bind); the exit status. */
int pnmctl_bind_dax(const char *dax);

/* Subcommands: return the process exit status. */
int cmd_list(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_bind(int argc, char **argv);
int cmd_unbind(int argc, char **argv);
int cmd_region(int argc, char **argv);
int cmd_selftest(int argc, char **argv);
int cmd_perf(int argc, char **argv);


#endif /* PNMCTL_H */
