// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl list, info, stats, bind and unbind: the cxl_pnm devices as sysfs
 * shows them (/sys/class/cxl_pnm/pnmN, Documentation/driver.rst) and the
 * dax devices they bind to (/sys/bus/dax).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "pnmctl.h"

#define NAME_LEN	64

/* Geometry and state attributes of /sys/class/cxl_pnm/pnmN. */
static const char *const pnm_geometry_attrs[] = {
	"nr_queues", "queue_depth", "kv_size", "kv_free", "hw_version",
	"heartbeat",
};

/* Counters, for stats. */
static const char *const pnm_counter_attrs[] = {
	"cmds_submitted", "cmds_completed", "cmds_failed", "cmds_timed_out",
	"heartbeat",
};

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

/** Topology and state of one cxl_pnm device. */
struct pnm_node {
	char name[NAME_LEN];	/* pnmN */
	char dax[NAME_LEN];	/* daxR.I it is bound to */
	char region[NAME_LEN];	/* regionR above the dax device, or "" */
	char memdev[NAME_LEN];	/* memM under the region, or "" */
	char state[16];
};

static int pnm_attr_path(char *path, const char *dev, const char *attr)
{
	int n = snprintf(path, PATH_MAX, PNMCTL_CLASS_DIR "/%s/%s", dev, attr);

	return n < PATH_MAX ? 0 : -ENAMETOOLONG;
}

/* regionR of a dax device: .../regionR/dax_regionR/daxR.I */
static void dax_region_of(const char *dax, char *region, size_t len)
{
	char path[PATH_MAX], real[PATH_MAX], *slash;

	region[0] = '\0';
	snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s", dax);
	if (!realpath(path, real))
		return;
	for (int up = 0; up < 2; up++) {
		slash = strrchr(real, '/');
		if (!slash)
			return;
		*slash = '\0';
	}
	slash = strrchr(real, '/');
	if (slash && !strncmp(slash + 1, "region", 6) &&
	    strlen(slash + 1) < len)
		strcpy(region, slash + 1);
}

/* memM behind a 1-way region: target0 names the endpoint decoder. */
static void region_memdev_of(const char *region, char *memdev, size_t len)
{
	char path[PATH_MAX], decoder[NAME_LEN], real[PATH_MAX], *slash;

	memdev[0] = '\0';
	snprintf(path, sizeof(path), "/sys/bus/cxl/devices/%s/target0", region);
	if (sysfs_read_str(path, decoder, sizeof(decoder)) || !decoder[0])
		return;
	snprintf(path, sizeof(path), "/sys/bus/cxl/devices/%s", decoder);
	if (!realpath(path, real))
		return;
	slash = strrchr(real, '/');
	if (!slash)
		return;
	/* .../endpointE/decoderE.0 -> .../endpointE/uport -> memM */
	strcpy(slash, "/uport");
	link_basename(real, memdev, len);
}

static int pnm_node_load(const char *name, struct pnm_node *node)
{
	char path[PATH_MAX];
	int rc;

	memset(node, 0, sizeof(*node));
	if (strlen(name) >= sizeof(node->name))
		return -ENAMETOOLONG;
	strcpy(node->name, name);
	pnm_attr_path(path, name, "device");
	rc = link_basename(path, node->dax, sizeof(node->dax));
	if (rc)
		return rc;
	pnm_attr_path(path, name, "state");
	if (sysfs_read_str(path, node->state, sizeof(node->state)))
		strcpy(node->state, "unknown");
	dax_region_of(node->dax, node->region, sizeof(node->region));
	if (node->region[0])
		region_memdev_of(node->region, node->memdev,
				 sizeof(node->memdev));
	return 0;
}

static uint64_t pnm_attr_u64(const char *dev, const char *attr)
{
	char path[PATH_MAX];
	uint64_t value = 0;

	pnm_attr_path(path, dev, attr);
	sysfs_read_u64(path, &value);
	return value;
}

static int version_sort(const struct dirent **a, const struct dirent **b)
{
	return strverscmp((*a)->d_name, (*b)->d_name);
}

static int select_pnm(const struct dirent *d)
{
	return !strncmp(d->d_name, "pnm", 3);
}

static int select_dax(const struct dirent *d)
{
	return !strncmp(d->d_name, "dax", 3);
}

/* Names in @dir accepted by @filter, in version order; count or -errno. */
static int scan_names(const char *dir, int (*filter)(const struct dirent *),
		      struct dirent ***names)
{
	int n = scandir(dir, names, filter, version_sort);

	if (n < 0 && errno == ENOENT) {
		*names = NULL;
		return 0;
	}
	return n < 0 ? -errno : n;
}

static void free_names(struct dirent **names, int n)
{
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Accept "pnmN" and "/dev/cxl/pnmN".  For a dax device or a missing device,
 * print a message with the command to run.
 */
static int resolve_pnm(const char *arg, char *name, size_t len)
{
	const char *base = strncmp(arg, "/dev/cxl/", 9) ? arg : arg + 9;
	char path[PATH_MAX], drv[NAME_LEN];

	if (!strncmp(base, "dax", 3)) {
		snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s/driver",
			 base);
		if (!link_basename(path, drv, sizeof(drv)) &&
		    !strcmp(drv, PNMCTL_DRIVER)) {
			pnmctl_err("%s: a dax device; name its pnm device (see 'pnmctl list')",
				   base);
		} else {
			pnmctl_err("%s: not bound to cxl_pnm; run 'pnmctl bind %s'",
				   base, base);
		}
		return -ENODEV;
	}
	if (strncmp(base, "pnm", 3) || strlen(base) >= len ||
	    strchr(base, '/')) {
		pnmctl_err("'%s' is not a device name: expected pnmN or /dev/cxl/pnmN",
			   arg);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), PNMCTL_CLASS_DIR "/%s", base);
	if (!path_exists(path)) {
		if (!path_exists(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER))
			pnmctl_err("%s: no such device: cxl_pnm is not loaded; run 'modprobe cxl_pnm' and 'pnmctl bind daxR.I'",
				   base);
		else
			pnmctl_err("%s: no such device; 'pnmctl list' shows the bound ones, 'pnmctl list -D' the dax devices to bind",
				   base);
		return -ENODEV;
	}
	strcpy(name, base);
	return 0;
}

static void pnm_node_json(struct json_out *j, const struct pnm_node *node,
			  bool counters)
{
	char devnode[NAME_LEN + 16];
	size_t i;

	json_key_open(j, NULL, '{');
	json_str(j, "dev", node->name);
	snprintf(devnode, sizeof(devnode), "/dev/cxl/%s", node->name);
	json_str(j, "devnode", devnode);
	json_str(j, "dax", node->dax);
	if (node->region[0])
		json_str(j, "region", node->region);
	if (node->memdev[0])
		json_str(j, "memdev", node->memdev);
	json_str(j, "state", node->state);
	for (i = 0; i < ARRAY_SIZE(pnm_geometry_attrs); i++)
		json_u64(j, pnm_geometry_attrs[i],
			 pnm_attr_u64(node->name, pnm_geometry_attrs[i]));
	for (i = 0; counters && i < ARRAY_SIZE(pnm_counter_attrs) - 1; i++)
		json_u64(j, pnm_counter_attrs[i],
			 pnm_attr_u64(node->name, pnm_counter_attrs[i]));
	json_close(j, '}');
}

static void pnm_node_line(const struct pnm_node *node)
{
	printf("%-6s %-8s %-9s %-6s %-7s kv %8.1f MiB free %8.1f MiB  queues %" PRIu64 "x%" PRIu64 "\n",
	       node->name, node->dax, node->region[0] ? node->region : "-",
	       node->memdev[0] ? node->memdev : "-", node->state,
	       pnm_attr_u64(node->name, "kv_size") / 1048576.0,
	       pnm_attr_u64(node->name, "kv_free") / 1048576.0,
	       pnm_attr_u64(node->name, "nr_queues"),
	       pnm_attr_u64(node->name, "queue_depth"));
}

static void dax_listing(struct json_out *j)
{
	struct dirent **names;
	int n = scan_names(PNMCTL_DAX_DEVICES, select_dax, &names);

	if (n < 0) {
		pnmctl_err(PNMCTL_DAX_DEVICES ": %s", strerror(-n));
		return;
	}
	if (!pnmctl.json && n)
		printf("\n%-8s %-10s %-9s %s\n", "dax", "driver", "region",
		       "size");
	for (int i = 0; i < n; i++) {
		const char *dax = names[i]->d_name;
		char path[PATH_MAX], drv[NAME_LEN] = "", region[NAME_LEN];
		uint64_t size = 0;

		snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s/driver",
			 dax);
		link_basename(path, drv, sizeof(drv));
		snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s/size",
			 dax);
		sysfs_read_u64(path, &size);
		dax_region_of(dax, region, sizeof(region));
		if (pnmctl.json) {
			json_key_open(j, NULL, '{');
			json_str(j, "dax", dax);
			json_str(j, "driver", drv[0] ? drv : "none");
			if (region[0])
				json_str(j, "region", region);
			json_u64(j, "size", size);
			json_close(j, '}');
		} else {
			printf("%-8s %-10s %-9s %" PRIu64 "\n", dax,
			       drv[0] ? drv : "none",
			       region[0] ? region : "-", size);
		}
	}
	free_names(names, n);
}

static bool parse_common(int c)
{
	if (c == 'v') {
		pnmctl.verbose++;
		return true;
	}
	if (c == 'j') {
		pnmctl.json = true;
		return true;
	}
	return false;
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dax", no_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct dirent **names;
	struct json_out j;
	bool dax = false;
	int c, n;

	while ((c = getopt_long(argc, argv, "Djvh", opts, NULL)) != -1) {
		if (parse_common(c))
			continue;
		if (c == 'D') {
			dax = true;
			continue;
		}
		fprintf(c == 'h' ? stdout : stderr,
			"usage: pnmctl list [-D|--dax] [-j] [-v]\n");
		return c == 'h' ? 0 : 2;
	}
	if (optind != argc) {
		pnmctl_err("list: unexpected argument '%s'", argv[optind]);
		return 2;
	}
	n = scan_names(PNMCTL_CLASS_DIR, select_pnm, &names);
	if (n < 0) {
		pnmctl_err(PNMCTL_CLASS_DIR ": %s", strerror(-n));
		return 1;
	}
	if (!n && !path_exists(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER))
		pnmctl_info(1, "cxl_pnm is not loaded");
	if (pnmctl.json) {
		json_open(&j, stdout, dax ? '{' : '[');
		if (dax)
			json_key_open(&j, "pnm_devices", '[');
	}
	for (int i = 0; i < n; i++) {
		struct pnm_node node;

		if (pnm_node_load(names[i]->d_name, &node))
			continue;	/* unbound while we looked */
		if (pnmctl.json)
			pnm_node_json(&j, &node, pnmctl.verbose > 0);
		else
			pnm_node_line(&node);
	}
	free_names(names, n);
	if (dax) {
		if (pnmctl.json) {
			json_close(&j, ']');
			json_key_open(&j, "dax_devices", '[');
		}
		dax_listing(&j);
		if (pnmctl.json)
			json_close(&j, ']');
	}
	if (pnmctl.json)
		json_close(&j, dax ? '}' : ']');
	return 0;
}

/* info and stats: one device, NAME: value lines or a JSON object. */
static int show_device(int argc, char **argv, const char *cmd, bool geometry)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *const *attrs;
	char name[NAME_LEN];
	struct pnm_node node;
	struct json_out j;
	size_t i, n_attrs;
	int c, rc;

	while ((c = getopt_long(argc, argv, "jvh", opts, NULL)) != -1) {
		if (parse_common(c))
			continue;
		fprintf(c == 'h' ? stdout : stderr,
			"usage: pnmctl %s [-j] pnmN\n", cmd);
		return c == 'h' ? 0 : 2;
	}
	if (optind + 1 != argc) {
		pnmctl_err("%s: name one device, e.g. 'pnmctl %s pnm0'", cmd,
			   cmd);
		return 2;
	}
	if (resolve_pnm(argv[optind], name, sizeof(name)))
		return 1;
	rc = pnm_node_load(name, &node);
	if (rc) {
		pnmctl_err("%s: cannot read its dax device: %s", name,
			   strerror(-rc));
		return 1;
	}
	attrs = geometry ? pnm_geometry_attrs : pnm_counter_attrs;
	n_attrs = geometry ? ARRAY_SIZE(pnm_geometry_attrs) :
			     ARRAY_SIZE(pnm_counter_attrs);
	if (pnmctl.json) {
		json_open(&j, stdout, '{');
		json_str(&j, "dev", node.name);
		if (geometry) {
			json_str(&j, "dax", node.dax);
			json_str(&j, "region", node.region);
			json_str(&j, "memdev", node.memdev);
		}
		json_str(&j, "state", node.state);
		for (i = 0; i < n_attrs; i++)
			json_u64(&j, attrs[i], pnm_attr_u64(name, attrs[i]));
		json_close(&j, '}');
		return 0;
	}
	printf("%-15s %s\n", "dev", node.name);
	if (geometry) {
		printf("%-15s /dev/cxl/%s\n", "devnode", node.name);
		printf("%-15s %s\n", "dax", node.dax);
		printf("%-15s %s\n", "region", node.region[0] ? node.region : "-");
		printf("%-15s %s\n", "memdev", node.memdev[0] ? node.memdev : "-");
	}
	printf("%-15s %s\n", "state", node.state);
	for (i = 0; i < n_attrs; i++)
		printf("%-15s %" PRIu64 "\n", attrs[i],
		       pnm_attr_u64(name, attrs[i]));
	if (strcmp(node.state, "live"))
		pnmctl_err("%s: state is %s; commands fail until it is unbound and bound again ('pnmctl unbind %s; pnmctl bind %s')",
			   name, node.state, node.dax, node.dax);
	return 0;
}

int cmd_info(int argc, char **argv)
{
	return show_device(argc, argv, "info", true);
}

int cmd_stats(int argc, char **argv)
{
	return show_device(argc, argv, "stats", false);
}

/* Returns "" when @dax has no driver. */
static int dax_driver(const char *dax, char *drv, size_t len)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s/driver", dax);
	rc = link_basename(path, drv, len);
	if (rc == -ENOENT) {
		drv[0] = '\0';
		return 0;
	}
	return rc;
}

/* pnmN whose parent is @dax, or -ENOENT. */
static int pnm_of_dax(const char *dax, char *name, size_t len)
{
	struct dirent **names;
	int n = scan_names(PNMCTL_CLASS_DIR, select_pnm, &names), rc = -ENOENT;

	for (int i = 0; i < n; i++) {
		char path[PATH_MAX], parent[NAME_LEN];

		pnm_attr_path(path, names[i]->d_name, "device");
		if (!link_basename(path, parent, sizeof(parent)) &&
		    !strcmp(parent, dax) && strlen(names[i]->d_name) < len) {
			strcpy(name, names[i]->d_name);
			rc = 0;
		}
	}
	free_names(names, n > 0 ? n : 0);
	return rc;
}

static bool dax_bound_to_pnm(const void *arg)
{
	char drv[NAME_LEN];

	return !dax_driver(arg, drv, sizeof(drv)) && !strcmp(drv, PNMCTL_DRIVER);
}

static bool dax_has_node(const void *arg)
{
	char name[NAME_LEN], node[PATH_MAX];

	if (pnm_of_dax(arg, name, sizeof(name)))
		return false;
	snprintf(node, sizeof(node), "/dev/cxl/%s", name);
	return path_exists(node);
}

static int check_dax_name(const char *cmd, const char *dax)
{
	char path[PATH_MAX];
	unsigned int r, i;
	char tail;

	if (sscanf(dax, "dax%u.%u%c", &r, &i, &tail) != 2) {
		pnmctl_err("%s: '%s' is not a dax device name (daxR.I)", cmd,
			   dax);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), PNMCTL_DAX_DEVICES "/%s", dax);
	if (!path_exists(path)) {
		pnmctl_err("%s: no such dax device; 'pnmctl list -D' lists them, 'pnmctl region create' makes one",
			   dax);
		return -ENODEV;
	}
	return 0;
}

static int bind_usage(const char *cmd, int c)
{
	fprintf(c == 'h' ? stdout : stderr, "usage: pnmctl %s [-v] daxR.I%s\n",
		cmd, strcmp(cmd, "unbind") ? "" : "|pnmN");
	return c == 'h' ? 0 : 2;
}

/* Bind @dax to cxl_pnm the way daxctl reconfigures devices. */
int pnmctl_bind_dax(const char *dax)
{
	char drv[NAME_LEN], path[PATH_MAX], name[NAME_LEN];
	int rc;

	if (check_dax_name("bind", dax))
		return 1;
	if (!path_exists(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER)) {
		pnmctl_err("%s: cxl_pnm is not loaded; run 'modprobe cxl_pnm' (or 'insmod cxl_pnm.ko') first",
			   dax);
		return 1;
	}
	rc = dax_driver(dax, drv, sizeof(drv));
	if (rc) {
		pnmctl_err("%s: cannot read its driver: %s", dax, strerror(-rc));
		return 1;
	}
	if (!strcmp(drv, PNMCTL_DRIVER)) {
		pnm_of_dax(dax, name, sizeof(name));
		printf("%s: already bound to cxl_pnm as %s\n", dax, name);
		return 0;
	}
	if (drv[0]) {
		pnmctl_info(1, "%s: unbinding from %s", dax, drv);
		snprintf(path, sizeof(path), PNMCTL_DAX_DRIVERS "/%s/unbind", drv);
		rc = sysfs_write_str(path, dax);
		if (rc) {
			pnmctl_err("%s: cannot unbind it from %s: %s", dax, drv,
				   strerror(-rc));
			return 1;
		}
	}
	pnmctl_info(1, "%s: adding it to cxl_pnm's device ids (new_id)", dax);
	rc = sysfs_write_str(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER "/new_id", dax);
	if (rc) {
		pnmctl_err("%s: writing cxl_pnm's new_id failed: %s", dax,
			   strerror(-rc));
		return 1;
	}
	/* driver_attach() probes synchronously; the node follows via devtmpfs. */
	if (!wait_for(dax_bound_to_pnm, dax, 5000)) {
		pnmctl_err("%s: cxl_pnm did not take it: its probe failed; 'dmesg | grep cxl_pnm' says why",
			   dax);
		return 1;
	}
	pnmctl_info(1, "%s: probed, waiting for its /dev/cxl node", dax);
	if (!wait_for(dax_has_node, dax, 5000)) {
		pnmctl_err("%s: bound, but no /dev/cxl/pnmN appeared within 5 s (is devtmpfs mounted?)",
			   dax);
		return 1;
	}
	pnm_of_dax(dax, name, sizeof(name));
	printf("%s: bound to cxl_pnm as %s (/dev/cxl/%s)\n", dax, name, name);
	return 0;
}

int cmd_bind(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (!parse_common(c))
			return bind_usage("bind", c);
	}
	if (optind + 1 != argc) {
		pnmctl_err("bind: name one dax device, e.g. 'pnmctl bind dax0.0'");
		return 2;
	}
	return pnmctl_bind_dax(argv[optind]);
}

int cmd_unbind(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char dax[NAME_LEN], drv[NAME_LEN], name[NAME_LEN] = "";
	const char *arg;
	int c, rc;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (!parse_common(c))
			return bind_usage("unbind", c);
	}
	if (optind + 1 != argc) {
		pnmctl_err("unbind: name one dax device or pnm device, e.g. 'pnmctl unbind dax0.0'");
		return 2;
	}
	arg = argv[optind];
	if (!strncmp(arg, "pnm", 3) || !strncmp(arg, "/dev/cxl/", 9)) {
		char path[PATH_MAX];

		if (resolve_pnm(arg, name, sizeof(name)))
			return 1;
		pnm_attr_path(path, name, "device");
		if (link_basename(path, dax, sizeof(dax))) {
			pnmctl_err("%s: has no dax device", name);
			return 1;
		}
	} else {
		if (strlen(arg) >= sizeof(dax) || check_dax_name("unbind", arg))
			return 1;
		strcpy(dax, arg);
		pnm_of_dax(dax, name, sizeof(name));
	}
	rc = dax_driver(dax, drv, sizeof(drv));
	if (rc) {
		pnmctl_err("%s: cannot read its driver: %s", dax, strerror(-rc));
		return 1;
	}
	if (strcmp(drv, PNMCTL_DRIVER)) {
		pnmctl_err("%s: not bound to cxl_pnm (driver: %s)", dax,
			   drv[0] ? drv : "none");
		return 1;
	}
	pnmctl_info(1, "%s: unbinding from cxl_pnm%s%s", dax,
		    name[0] ? ", removing " : "", name);
	rc = sysfs_write_str(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER "/unbind", dax);
	if (rc) {
		pnmctl_err("%s: cannot unbind it from cxl_pnm: %s", dax,
			   strerror(-rc));
		return 1;
	}
	/* Without this a later driver_attach() would take it again. */
	pnmctl_info(1, "%s: removing it from cxl_pnm's device ids (remove_id)",
		    dax);
	rc = sysfs_write_str(PNMCTL_DAX_DRIVERS "/" PNMCTL_DRIVER "/remove_id",
			     dax);
	if (rc)
		pnmctl_err("%s: remove_id failed: %s (it stays unbound until the next bind)",
			   dax, strerror(-rc));
	printf("%s: unbound from cxl_pnm%s%s%s\n", dax, name[0] ? " (was " : "",
	       name, name[0] ? ")" : "");
	return 0;
}
