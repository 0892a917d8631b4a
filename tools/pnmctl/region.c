// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl region create|destroy: a 1-way CXL ram region over the whole of a
 * memdev, whose dax device cxl_pnm then binds (Documentation/vm.rst).
 *
 * libcxl (ndctl 76.1) has a setter for every step except the first: it can
 * create pmem regions but not ram regions, and `cxl create-region -t ram`
 * refuses.  So the region is created through the root decoder's
 * create_ram_region attribute, the kernel's sysfs ABI, and everything after
 * that goes through libcxl.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <cxl/libcxl.h>

#include "pnmctl.h"

#define CXL_DEVICES	"/sys/bus/cxl/devices"
#define MAX_MEMDEVS	64

struct region_json {
	struct json_out j;
	bool open;
};

static struct cxl_decoder *endpoint_decoder(struct cxl_memdev *memdev)
{
	struct cxl_endpoint *ep = cxl_memdev_get_endpoint(memdev);

	return ep ? cxl_decoder_get_first(cxl_endpoint_get_port(ep)) : NULL;
}

/*
 * A root decoder (CXL fixed memory window) for ram that routes to @memdev's
 * host bridge without interleave and has room for @size bytes.
 */
static struct cxl_decoder *root_decoder_for(struct cxl_ctx *ctx,
					    struct cxl_memdev *memdev,
					    uint64_t size)
{
	struct cxl_bus *bus;

	cxl_bus_foreach(ctx, bus) {
		struct cxl_port *root = cxl_bus_get_port(bus);
		struct cxl_decoder *rd;

		cxl_decoder_foreach(root, rd) {
			if (!cxl_decoder_is_volatile_capable(rd) ||
			    cxl_decoder_get_interleave_ways(rd) != 1 ||
			    !cxl_decoder_get_target_by_memdev(rd, memdev))
				continue;
			if (cxl_decoder_get_max_available_extent(rd) < size)
				continue;
			return rd;
		}
	}
	return NULL;
}

static struct cxl_region *region_by_name(struct cxl_decoder *rd,
					 const char *name)
{
	struct cxl_region *region;

	cxl_region_foreach(rd, region) {
		if (!strcmp(cxl_region_get_devname(region), name))
			return region;
	}
	return NULL;
}

/* daxR.I of a region, or -ENOENT while it has none. */
static int region_dax(const char *region, char *dax, size_t len)
{
	char path[PATH_MAX];
	unsigned int id;

	if (sscanf(region, "region%u", &id) != 1)
		return -EINVAL;
	for (unsigned int i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), CXL_DEVICES "/%s/dax_region%u/dax%u.%u",
			 region, id, id, i);
		if (path_exists(path)) {
			snprintf(dax, len, "dax%u.%u", id, i);
			return 0;
		}
	}
	return -ENOENT;
}

static bool region_has_dax(const void *arg)
{
	char dax[64];

	return region_dax(arg, dax, sizeof(dax)) == 0;
}

/*
 * Write the root decoder's create_ram_region: reading it gives the next
 * region name, writing the name back creates the region device.
 */
static int create_ram_region(struct cxl_decoder *rd, char *name, size_t len)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), CXL_DEVICES "/%s/create_ram_region",
		 cxl_decoder_get_devname(rd));
	rc = sysfs_read_str(path, name, len);
	if (!rc)
		rc = sysfs_write_str(path, name);
	return rc;
}

/* Undo a partly built region; best effort, on the error path only. */
static void region_teardown(struct cxl_region *region, struct cxl_decoder *ed)
{
	if (cxl_region_is_enabled(region))
		cxl_region_disable(region);
	if (cxl_region_decode_is_committed(region))
		cxl_region_decode_reset(region);
	cxl_region_clear_all_targets(region);
	if (ed)
		cxl_decoder_set_dpa_size(ed, 0);
	cxl_region_delete(region);
}

#define STEP(expr, what)						\
	do {								\
		rc = (expr);						\
		if (rc) {						\
			pnmctl_err("%s: %s: %s", devname, what,		\
				   strerror(-rc > 0 ? -rc : EIO));	\
			goto err_teardown;				\
		}							\
	} while (0)

/*
 * Create a ram region over all of memdev @devname and wait for its dax
 * device.  The libcxl context is created afresh after the sysfs write,
 * because libcxl lists a decoder's regions once and would not see the new
 * one.
 */
static int region_create_one(const char *devname, struct region_json *out,
			     char *dax, size_t dax_len)
{
	struct cxl_decoder *rd, *ed;
	struct cxl_region *region;
	struct cxl_memdev *memdev;
	char name[64], rd_name[64];
	struct cxl_ctx *ctx;
	unsigned int gran;
	uint64_t size;
	int rc;

	rc = cxl_new(&ctx);
	if (rc) {
		pnmctl_err("%s: libcxl cannot start: %s", devname, strerror(-rc));
		return 1;
	}
	memdev = NULL;
	cxl_memdev_foreach(ctx, memdev) {
		if (!strcmp(cxl_memdev_get_devname(memdev), devname))
			break;
	}
	if (!memdev) {
		pnmctl_err("%s: no such CXL memdev; 'ls /sys/bus/cxl/devices' shows them (are cxl_pci and cxl_mem loaded?)",
			   devname);
		goto err_ctx;
	}
	ed = endpoint_decoder(memdev);
	if (!ed) {
		pnmctl_err("%s: no endpoint port with decoders yet (is cxl_mem loaded?)",
			   devname);
		goto err_ctx;
	}
	if (cxl_decoder_get_dpa_size(ed)) {
		pnmctl_err("%s: its endpoint decoder %s is already in use; 'pnmctl region destroy REGION' frees it",
			   devname, cxl_decoder_get_devname(ed));
		goto err_ctx;
	}
	size = cxl_memdev_get_ram_size(memdev);
	if (!size) {
		pnmctl_err("%s: no volatile (ram) capacity", devname);
		goto err_ctx;
	}
	rd = root_decoder_for(ctx, memdev, size);
	if (!rd) {
		pnmctl_err("%s: no CXL window (root decoder) routes to it without interleave with %" PRIu64 " bytes free",
			   devname, size);
		goto err_ctx;
	}
	pnmctl_info(1, "%s: %" PRIu64 " MiB of ram, endpoint decoder %s, root decoder %s",
		    devname, size >> 20, cxl_decoder_get_devname(ed),
		    cxl_decoder_get_devname(rd));
	snprintf(rd_name, sizeof(rd_name), "%s", cxl_decoder_get_devname(rd));
	gran = cxl_decoder_get_interleave_granularity(rd);

	/* The step libcxl 76.1 lacks. */
	rc = create_ram_region(rd, name, sizeof(name));
	if (rc) {
		pnmctl_err("%s: %s/create_ram_region: %s", devname, rd_name,
			   strerror(-rc));
		goto err_ctx;
	}
	pnmctl_info(1, "%s: created %s through %s/create_ram_region", devname,
		    name, rd_name);
	cxl_unref(ctx);
	rc = cxl_new(&ctx);
	if (rc) {
		pnmctl_err("%s: libcxl cannot start again: %s", devname,
			   strerror(-rc));
		return 1;
	}
	rd = cxl_decoder_get_by_name(ctx, rd_name);
	region = rd ? region_by_name(rd, name) : NULL;
	memdev = NULL;
	cxl_memdev_foreach(ctx, memdev) {
		if (!strcmp(cxl_memdev_get_devname(memdev), devname))
			break;
	}
	ed = memdev ? endpoint_decoder(memdev) : NULL;
	if (!region || !ed) {
		pnmctl_err("%s: libcxl does not see %s or the endpoint decoder after creation",
			   devname, name);
		goto err_ctx;
	}

	pnmctl_info(1, "%s: %s: 1-way, granularity %u, size %" PRIu64,
		    devname, name, gran, size);
	STEP(cxl_region_set_interleave_ways(region, 1), "interleave_ways 1");
	STEP(cxl_region_set_interleave_granularity(region, gran),
	     "interleave_granularity");
	STEP(cxl_region_set_size(region, size), "region size");
	pnmctl_info(1, "%s: %s: mode ram, dpa_size %" PRIu64, devname,
		    cxl_decoder_get_devname(ed), size);
	STEP(cxl_decoder_set_mode(ed, CXL_DECODER_MODE_RAM),
	     "endpoint decoder mode ram");
	STEP(cxl_decoder_set_dpa_size(ed, size), "endpoint decoder dpa_size");
	pnmctl_info(1, "%s: %s: target0 %s, commit, enable", devname, name,
		    cxl_decoder_get_devname(ed));
	STEP(cxl_region_set_target(region, 0, ed), "target0");
	STEP(cxl_region_decode_commit(region),
	     "commit (under a hypervisor, see Documentation/troubleshooting.rst)");
	STEP(cxl_region_enable(region), "bind to cxl_region");
	if (!wait_for(region_has_dax, name, 10000)) {
		pnmctl_err("%s: %s has no dax device after 10 s (is dax_cxl loaded?)",
			   devname, name);
		rc = -ETIMEDOUT;
		goto err_teardown;
	}
	region_dax(name, dax, dax_len);
	if (out->open) {
		json_key_open(&out->j, NULL, '{');
		json_str(&out->j, "memdev", devname);
		json_str(&out->j, "region", name);
		json_u64(&out->j, "size", size);
		json_str(&out->j, "dax", dax);
		json_close(&out->j, '}');
	} else {
		printf("%s: %s (%" PRIu64 " MiB) -> %s\n", devname, name,
		       size >> 20, dax);
	}
	cxl_unref(ctx);
	return 0;

err_teardown:
	region_teardown(region, ed);
err_ctx:
	cxl_unref(ctx);
	return 1;
}

/* Memdevs whose endpoint decoder is free, in order of serial number. */
static int free_memdevs(char names[][32], unsigned int max)
{
	unsigned long long serials[MAX_MEMDEVS];
	struct cxl_memdev *memdev;
	struct cxl_ctx *ctx;
	unsigned int n = 0;
	int rc;

	rc = cxl_new(&ctx);
	if (rc)
		return rc;
	cxl_memdev_foreach(ctx, memdev) {
		struct cxl_decoder *ed = endpoint_decoder(memdev);
		unsigned long long serial = cxl_memdev_get_serial(memdev);
		unsigned int i;

		if (!ed || cxl_decoder_get_dpa_size(ed) || n == max)
			continue;
		/* Insertion sort: there are a handful of memdevs. */
		for (i = n; i > 0 && serials[i - 1] > serial; i--) {
			serials[i] = serials[i - 1];
			strcpy(names[i], names[i - 1]);
		}
		serials[i] = serial;
		snprintf(names[i], 32, "%s", cxl_memdev_get_devname(memdev));
		n++;
	}
	cxl_unref(ctx);
	return n;
}

static int region_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "memdev", required_argument, NULL, 'm' },
		{ "all", no_argument, NULL, 'a' },
		{ "bind", no_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char names[MAX_MEMDEVS][32];
	struct region_json out = { .open = false };
	unsigned int n = 0;
	bool all = false, bind = false;
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "m:abjvh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (n == MAX_MEMDEVS || strlen(optarg) >= 32) {
				pnmctl_err("region create: '%s': too many or too long memdev names",
					   optarg);
				return 2;
			}
			strcpy(names[n++], optarg);
			break;
		case 'a':
			all = true;
			break;
		case 'b':
			bind = true;
			break;
		case 'j':
			pnmctl.json = true;
			break;
		case 'v':
			pnmctl.verbose++;
			break;
		default:
			fprintf(c == 'h' ? stdout : stderr,
				"usage: pnmctl region create {-m memN ... | -a} [-b] [-j] [-v]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind != argc || (all == (n > 0))) {
		pnmctl_err("region create: name memdevs with -m memN, or pass -a for every memdev without a region");
		return 2;
	}
	if (all) {
		int found = free_memdevs(names, MAX_MEMDEVS);

		if (found < 0) {
			pnmctl_err("region create: libcxl cannot start: %s",
				   strerror(-found));
			return 1;
		}
		if (!found) {
			pnmctl_err("region create: no CXL memdev without a region (are cxl_pci and cxl_mem loaded?)");
			return 1;
		}
		n = found;
	}
	if (pnmctl.json) {
		json_open(&out.j, stdout, '[');
		out.open = true;
	}
	for (unsigned int i = 0; i < n && !status; i++) {
		char dax[64];

		status = region_create_one(names[i], &out, dax, sizeof(dax));
		if (!status && bind)
			status = pnmctl_bind_dax(dax);
	}
	if (out.open)
		json_close(&out.j, ']');
	return status;
}

static int region_destroy_one(const char *name, bool force)
{
	struct cxl_decoder *targets[16];
	struct cxl_region *region = NULL;
	struct cxl_bus *bus;
	struct cxl_ctx *ctx;
	unsigned int ways, i;
	char dax[64], drv[64], path[PATH_MAX];
	int rc, status = 1;

	if (!region_dax(name, dax, sizeof(dax))) {
		snprintf(path, sizeof(path), "/sys/bus/dax/devices/%s/driver", dax);
		if (!link_basename(path, drv, sizeof(drv)) &&
		    !strcmp(drv, PNMCTL_DRIVER) && !force) {
			pnmctl_err("%s: its %s is bound to cxl_pnm; run 'pnmctl unbind %s' first, or pass -f",
				   name, dax, dax);
			return 1;
		}
	}
	rc = cxl_new(&ctx);
	if (rc) {
		pnmctl_err("%s: libcxl cannot start: %s", name, strerror(-rc));
		return 1;
	}
	cxl_bus_foreach(ctx, bus) {
		struct cxl_decoder *rd;

		cxl_decoder_foreach(cxl_bus_get_port(bus), rd) {
			if (!region)
				region = region_by_name(rd, name);
		}
	}
	if (!region) {
		pnmctl_err("%s: no such CXL region; 'ls /sys/bus/cxl/devices' shows them",
			   name);
		goto out;
	}
	ways = cxl_region_get_interleave_ways(region);
	for (i = 0; i < ways && i < 16; i++)
		targets[i] = cxl_region_get_target_decoder(region, i);
	pnmctl_info(1, "%s: disable (unbinds its dax device%s)", name,
		    force ? " and cxl_pnm" : "");
	rc = cxl_region_disable(region);
	if (!rc) {
		pnmctl_info(1, "%s: decode reset, clear targets", name);
		rc = cxl_region_decode_reset(region);
	}
	if (!rc)
		rc = cxl_region_clear_all_targets(region);
	for (i = 0; !rc && i < ways && i < 16; i++) {
		if (!targets[i])
			continue;
		pnmctl_info(1, "%s: free the DPA of %s", name,
			    cxl_decoder_get_devname(targets[i]));
		rc = cxl_decoder_set_dpa_size(targets[i], 0);
	}
	if (!rc) {
		pnmctl_info(1, "%s: delete", name);
		rc = cxl_region_delete(region);
	}
	if (rc) {
		pnmctl_err("%s: destroy failed: %s", name, strerror(-rc > 0 ? -rc : EIO));
		goto out;
	}
	printf("%s: destroyed\n", name);
	status = 0;
out:
	cxl_unref(ctx);
	return status;
}

static int region_destroy(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool force = false;
	int c, status = 0;

	while ((c = getopt_long(argc, argv, "fvh", opts, NULL)) != -1) {
		if (c == 'f') {
			force = true;
		} else if (c == 'v') {
			pnmctl.verbose++;
		} else {
			fprintf(c == 'h' ? stdout : stderr,
				"usage: pnmctl region destroy [-f] [-v] regionN...\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (optind == argc) {
		pnmctl_err("region destroy: name a region, e.g. region0");
		return 2;
	}
	for (; optind < argc && !status; optind++)
		status = region_destroy_one(argv[optind], force);
	return status;
}

int cmd_region(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "create"))
		return region_create(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "destroy"))
		return region_destroy(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		puts("usage: pnmctl region create {-m memN ... | -a} [-b] [-j] [-v]\n"
		     "       pnmctl region destroy [-f] [-v] regionN...");
		return 0;
	}
	pnmctl_err("region: expected 'create' or 'destroy'%s%s",
		   argc >= 2 ? ", not " : "", argc >= 2 ? argv[1] : "");
	return 2;
}
