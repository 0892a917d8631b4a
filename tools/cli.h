/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Command-line helpers shared by pnm-demo and pnm-accuracy.  The including
 * tool defines prog, its short name for messages.
 */
#ifndef PNM_TOOLS_CLI_H
#define PNM_TOOLS_CLI_H

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const char *prog;

/* Report a bad command line in one line naming the problem; return -1. */
static inline int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int usage_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; try '%s --help'\n", prog);
	return -1;
}

/*
 * Parse a decimal number of option @opt within [@min, @max].  Decimal only,
 * so that a leading zero is not read as octal.
 */
static inline int parse_uint(const char *opt, const char *arg,
			     unsigned long long min, unsigned long long max,
			     unsigned long long *value)
{
	char *end;

	errno = 0;
	*value = strtoull(arg, &end, 10);
	if (errno || !isdigit((unsigned char)arg[0]) || *end || *value < min ||
	    *value > max)
		return usage_error("%s '%s' is invalid: expected %llu to %llu",
				   opt, arg, min, max);
	return 0;
}

#endif /* PNM_TOOLS_CLI_H */
