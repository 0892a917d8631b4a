// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl: the command-line tool of the CXL-PNM stack, in the manner of
 * ndctl's cxl and daxctl: one subcommand per task, -j for JSON, -v for
 * the steps taken.  Documentation/pnmctl.1 describes every subcommand.
 */
#include <stdlib.h>
#include <string.h>

#include "pnmctl.h"

struct pnmctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct pnmctl_cmd pnmctl_cmds[] = {
	{ "list", cmd_list, "list CXL-PNM devices (-D: also dax devices)" },
	{ "info", cmd_info, "geometry, state and topology of one device" },
	{ "stats", cmd_stats, "command counters of one device" },
	{ "bind", cmd_bind, "bind a dax device to cxl_pnm" },
	{ "unbind", cmd_unbind, "unbind a dax device from cxl_pnm" },
	{ "region", cmd_region, "create or destroy a CXL ram region" },
	{ "selftest", cmd_selftest, "run NOP, DIGEST and SELECT_ATTEND checks" },
	{ "perf", cmd_perf, "model decode throughput, energy and cost" },
};

static void pnmctl_usage(FILE *f)
{
	size_t i;

	fputs("usage: pnmctl COMMAND [OPTIONS] [ARGS]\n\ncommands:\n", f);
	for (i = 0; i < sizeof(pnmctl_cmds) / sizeof(pnmctl_cmds[0]); i++)
		fprintf(f, "  %-9s %s\n", pnmctl_cmds[i].name,
			pnmctl_cmds[i].summary);
	fputs("\n'pnmctl COMMAND --help' lists the options of COMMAND; "
	      "man pnmctl has the details.\n", f);
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		pnmctl_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		pnmctl_usage(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(pnmctl_cmds) / sizeof(pnmctl_cmds[0]); i++) {
		if (!strcmp(argv[1], pnmctl_cmds[i].name))
			return pnmctl_cmds[i].fn(argc - 1, argv + 1);
	}
	pnmctl_err("'%s' is not a command; 'pnmctl --help' lists them",
		   argv[1]);
	return 2;
}
