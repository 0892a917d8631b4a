// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Direct transport: drive a device model (pnm-device) from user space by
 * mapping its backing file, for host tests and benchmarks without a VM.
 *
 * It plays the kernel driver's part: it checks the control block, resets
 * and enables the device, hands out regions of the KV area and resolves
 * every struct cxl_pnm_buf with the driver's checks and errnos before a
 * command reaches the device.  Everything the device itself checks (dtype,
 * shapes, pages, sizes) is left to the device, whose status comes back in
 * the results.  Only queue 0 is used, and one user at a time may drive a
 * device: opening it resets it, so a second user would corrupt the first's
 * queue and regions.  pnm_direct_lock() enforces that at open.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cxl_pnm_hw.h"
#include "direct.h"
#include "pnm_internal.h"

#define PNM_DIRECT_MAX_BATCH		256
#define PNM_DIRECT_REGION_ALIGN		4096
#define PNM_DIRECT_DEFAULT_TIMEOUT_MS	10000
/* Enable and reset wait this long; the device polls at least every 1 s. */
#define PNM_DIRECT_CONTROL_TIMEOUT_MS	3000
/*
 * The byte of the backing file whose open file description lock marks the
 * direct transport's user.  Byte 0 is left to the device model, which may
 * lock it for "one pnm-device per file"; the lock is advisory, so the
 * bytes' contents (the control block) are not affected.
 */
#define PNM_DIRECT_LOCK_BYTE		1
/* Poll completions busily this long before sleeping between polls. */
#define PNM_DIRECT_SPIN_NS		20000
#define PNM_DIRECT_MAX_SLEEP_NS		100000

/* A region: @size bytes at @offset in the KV area; kept sorted by offset. */
struct pnm_direct_region {
	uint32_t handle;
	uint64_t offset;
	uint64_t size;
	struct pnm_direct_region *next;
};

/**
 * struct pnm_direct - state of one opened device model
 * @lock: serializes submissions and region changes
 * @fd: backing file
 * @mem: mapping of the whole file
 * @map_size: bytes mapped
 * @ctrl: control block at DPA 0
 * @geo: geometry and capabilities read once at open
 * @sq: submission queue 0
 * @cq: completion queue 0
 * @db: doorbells of queue 0
 * @owner: per SQ slot, index in the current batch of its command, or -1
 * @sq_tail: commands written, free-running
 * @cq_head: completions consumed, free-running
 * @phase: phase of the next expected completion
 * @need_restart: a batch failed mid-way; reset the device before the next
 * @regions: allocated regions, ascending offset
 * @allocated: bytes in @regions
 */
struct pnm_direct {
	pthread_mutex_t lock;
	int fd;
	uint8_t *mem;
	uint64_t map_size;
	struct pnm_hw_ctrl *ctrl;
	struct pnm_hw_ctrl geo;

	struct pnm_hw_cmd *sq;
	struct pnm_hw_cqe *cq;
	struct pnm_hw_doorbell *db;
	int *owner;
	uint32_t sq_tail;
	uint32_t cq_head;
	uint16_t phase;
	bool need_restart;

	struct pnm_direct_region *regions;
	uint64_t allocated;
};

static uint64_t pnm_direct_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* Wait politely: spin first, then sleep longer and longer. */
static void pnm_direct_pause(uint64_t start_ns, uint64_t *sleep_ns)
{
	struct timespec ts;

	if (pnm_direct_now_ns() - start_ns < PNM_DIRECT_SPIN_NS) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
		return;
	}
	*sleep_ns = *sleep_ns ? *sleep_ns * 2 : 1000;
	if (*sleep_ns > PNM_DIRECT_MAX_SLEEP_NS)
		*sleep_ns = PNM_DIRECT_MAX_SLEEP_NS;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)*sleep_ns;
	nanosleep(&ts, NULL);
}

static uint32_t pnm_direct_status(const struct pnm_direct *d)
{
	return le32toh(__atomic_load_n(&d->ctrl->status, __ATOMIC_ACQUIRE));
}

static void pnm_direct_write_control(struct pnm_direct *d, uint32_t control)
{
	__atomic_store_n(&d->ctrl->control, htole32(control), __ATOMIC_RELEASE);
}

/* Wait until (status & @mask) == @want. */
static int pnm_direct_wait_status(struct pnm_direct *d, uint32_t mask,
				  uint32_t want, const char *what)
{
	uint64_t start = pnm_direct_now_ns(), sleep_ns = 0;
	uint64_t limit = PNM_DIRECT_CONTROL_TIMEOUT_MS * 1000000ULL;

	while ((pnm_direct_status(d) & mask) != want) {
		if (pnm_direct_now_ns() - start > limit)
			return pnm_error(-ETIMEDOUT,
					 "device did not %s within %u ms (status %#x)",
					 what, PNM_DIRECT_CONTROL_TIMEOUT_MS,
					 pnm_direct_status(d));
		pnm_direct_pause(start, &sleep_ns);
	}
	return 0;
}

/*
 * Reset the device if it is enabled or failed, then enable it; either way
 * queue 0 starts empty with phase 1 and zeroed doorbells.
 */
static int pnm_direct_restart(struct pnm_direct *d)
{
	uint32_t busy = PNM_HW_STATUS_ENABLED | PNM_HW_STATUS_FATAL;
	uint32_t i;
	int ret;

	if (pnm_direct_status(d) & busy) {
		pnm_direct_write_control(d, PNM_HW_CONTROL_RESET);
		ret = pnm_direct_wait_status(d, busy, 0, "reset");
		if (ret)
			return ret;
	}
	pnm_direct_write_control(d, PNM_HW_CONTROL_ENABLE);
	ret = pnm_direct_wait_status(d, busy, PNM_HW_STATUS_ENABLED, "enable");
	if (ret)
		return ret;

	d->sq_tail = 0;
	d->cq_head = 0;
	d->phase = 1;
	for (i = 0; i < le32toh(d->geo.queue_depth); i++)
		d->owner[i] = -1;
	d->need_restart = false;
	return 0;
}

/* ---- open and geometry ------------------------------------------------- */

/*
 * The control block comes from a file anyone may have written: check that
 * every area it names lies inside the mapping before using it.
 */
static int pnm_direct_check_geometry(const struct pnm_hw_ctrl *geo,
				     uint64_t map_size, const char *path)
{
	uint64_t nr = le32toh(geo->nr_queues), depth = le32toh(geo->queue_depth);
	uint64_t dev_size = le64toh(geo->dev_size);
	uint64_t db_off = le64toh(geo->doorbell_offset);
	uint64_t q_off = le64toh(geo->queue_offset), q_size = le64toh(geo->queue_size);
	uint64_t kv_off = le64toh(geo->kv_offset), kv_size = le64toh(geo->kv_size);

	if (dev_size > map_size)
		return pnm_error(-EPROTO, "%s: device size %llu exceeds the file size %llu",
				 path, (unsigned long long)dev_size,
				 (unsigned long long)map_size);
	if (!nr || nr > 4096 || !depth || depth > 65536 || (depth & (depth - 1)))
		return pnm_error(-EPROTO, "%s: invalid queue geometry: %llu queues of depth %llu",
				 path, (unsigned long long)nr,
				 (unsigned long long)depth);
	if (db_off < PNM_HW_CTRL_SIZE || db_off > dev_size ||
	    nr * sizeof(struct pnm_hw_doorbell) > dev_size - db_off ||
	    q_off > dev_size || q_size > dev_size - q_off ||
	    nr * depth * (sizeof(struct pnm_hw_cmd) + sizeof(struct pnm_hw_cqe)) > q_size ||
	    kv_off > dev_size || kv_size > dev_size - kv_off ||
	    kv_off % PNM_DIRECT_REGION_ALIGN)
		return pnm_error(-EPROTO, "%s: control block names areas outside the %llu bytes of device memory",
				 path, (unsigned long long)dev_size);
	return 0;
}

static int pnm_direct_check_header(const struct pnm_hw_ctrl *geo,
				   const char *path)
{
	if (le64toh(geo->magic) != PNM_HW_MAGIC)
		return pnm_error(-ENODEV, "%s: no CXL-PNM device (magic %#llx); is pnm-device running on it?",
				 path, (unsigned long long)le64toh(geo->magic));
	if (le32toh(geo->version) != PNM_HW_VERSION)
		return pnm_error(-EPROTO, "%s: device interface version %u, expected %u",
				 path, le32toh(geo->version), PNM_HW_VERSION);
	if (!(le32toh(geo->status) & PNM_HW_STATUS_READY))
		return pnm_error(-ENODEV, "%s: device not ready (status %#x)",
				 path, le32toh(geo->status));
	return 0;
}

/* Queue 0: its doorbells and its SQ and CQ, laid out as the spec says. */
static void pnm_direct_setup_queue(struct pnm_direct *d)
{
	uint64_t depth = le32toh(d->geo.queue_depth);
	uint64_t nr = le32toh(d->geo.nr_queues);
	uint64_t sq_bytes = (depth * sizeof(struct pnm_hw_cmd) + PNM_HW_ALIGN - 1) &
			    ~(uint64_t)(PNM_HW_ALIGN - 1);
	uint64_t q_off = le64toh(d->geo.queue_offset);

	d->db = (struct pnm_hw_doorbell *)(d->mem + le64toh(d->geo.doorbell_offset));
	d->sq = (struct pnm_hw_cmd *)(d->mem + q_off);
	d->cq = (struct pnm_hw_cqe *)(d->mem + q_off + nr * sq_bytes);
}

/*
 * Does the open file description behind /proc/@pid/fd/@fd hold our lock?
 * Its fdinfo lists the locks the description owns; an OFD lock's pid
 * field reads -1, so the lock's range tells ours apart.
 */
static bool pnm_direct_fd_holds_lock(const char *pid, const char *fd)
{
	/* pid and fd come from readdir(): up to 255 bytes each. */
	char path[576], line[256], range[32];
	bool held = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/fdinfo/%s", pid, fd);
	snprintf(range, sizeof(range), " %d %d\n", PNM_DIRECT_LOCK_BYTE,
		 PNM_DIRECT_LOCK_BYTE);
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!held && fgets(line, sizeof(line), f)) {
		size_t n = strlen(line), r = strlen(range);

		held = !strncmp(line, "lock:", 5) && strstr(line, "OFDLCK") &&
		       n >= r && !strcmp(line + n - r, range);
	}
	fclose(f);
	return held;
}

/* Scan one process's descriptors for the lock on @st's file. */
static bool pnm_direct_pid_holds_lock(const char *pid, const struct stat *st)
{
	char path[288], fd_path[576];
	struct dirent *e;
	struct stat fst;
	bool held = false;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	dir = opendir(path);
	if (!dir)
		return false;
	while (!held && (e = readdir(dir))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(fd_path, sizeof(fd_path), "%s/%s", path, e->d_name);
		if (stat(fd_path, &fst) || fst.st_dev != st->st_dev ||
		    fst.st_ino != st->st_ino)
			continue;
		held = pnm_direct_fd_holds_lock(pid, e->d_name);
	}
	closedir(dir);
	return held;
}

/*
 * The process holding the direct transport's lock on @st's file, found
 * through /proc because F_OFD_GETLK reports no pid; 0 when it cannot be
 * seen (another user's process, or no /proc).  Only runs on the error path.
 */
static pid_t pnm_direct_lock_holder(const struct stat *st)
{
	struct dirent *e;
	pid_t holder = 0;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!holder && (e = readdir(proc))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		if (pnm_direct_pid_holds_lock(e->d_name, st))
			holder = (pid_t)atoi(e->d_name);
	}
	closedir(proc);
	return holder;
}

/*
 * One user per device model: an open file description (OFD) write lock on
 * PNM_DIRECT_LOCK_BYTE.  Unlike a POSIX record lock it also conflicts with
 * a second open in the same process, and it goes away with the last
 * descriptor of this open, so a killed user never leaves it behind.
 */
static int pnm_direct_lock(struct pnm_direct *d, const char *path,
			   const struct stat *st)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
		.l_start = PNM_DIRECT_LOCK_BYTE,
		.l_len = 1,
	};
	pid_t holder;

	if (!fcntl(d->fd, F_OFD_SETLK, &fl))
		return 0;
	if (errno != EAGAIN && errno != EACCES)
		return pnm_error(-errno, "%s: failed to lock byte %d: %s", path,
				 PNM_DIRECT_LOCK_BYTE, strerror(errno));
	holder = pnm_direct_lock_holder(st);
	if (holder == getpid())
		return pnm_error(-EBUSY, "%s: already opened by this process (pid %d); one direct-transport user at a time",
				 path, (int)holder);
	if (holder)
		return pnm_error(-EBUSY, "%s: already opened by another process (pid %d); one direct-transport user at a time",
				 path, (int)holder);
	return pnm_error(-EBUSY, "%s: already opened by another process or by this one; one direct-transport user at a time",
			 path);
}

static int pnm_direct_map(struct pnm_direct *d, const char *path)
{
	struct stat st;
	int ret;

	d->fd = open(path, O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return pnm_error(-errno, "%s: failed to open: %s", path, strerror(errno));
	if (fstat(d->fd, &st))
		return pnm_error(-errno, "%s: failed to stat: %s", path, strerror(errno));
	/* Before the device is touched: opening resets it. */
	ret = pnm_direct_lock(d, path, &st);
	if (ret)
		return ret;
	if ((uint64_t)st.st_size < PNM_HW_CTRL_SIZE)
		return pnm_error(-ENODEV, "%s: %llu bytes, too small for a device",
				 path, (unsigned long long)st.st_size);
	d->map_size = st.st_size;
	d->mem = mmap(NULL, d->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      d->fd, 0);
	if (d->mem == MAP_FAILED) {
		d->mem = NULL;
		return pnm_error(-errno, "%s: failed to map: %s", path, strerror(errno));
	}
	d->ctrl = (struct pnm_hw_ctrl *)d->mem;
	return 0;
}

static void pnm_direct_destroy(struct pnm_direct *d)
{
	struct pnm_direct_region *r, *next;

	for (r = d->regions; r; r = next) {
		next = r->next;
		free(r);
	}
	if (d->mem)
		munmap(d->mem, d->map_size);
	if (d->fd >= 0)
		close(d->fd);
	free(d->owner);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static const struct pnm_transport_ops pnm_direct_ops;

static int pnm_direct_init(struct pnm_direct *d, const char *path)
{
	int ret;

	ret = pnm_direct_map(d, path);
	if (ret)
		return ret;
	/* One snapshot: later host writes to the file cannot move the areas. */
	memcpy(&d->geo, d->ctrl, sizeof(d->geo));
	ret = pnm_direct_check_header(&d->geo, path);
	if (!ret)
		ret = pnm_direct_check_geometry(&d->geo, d->map_size, path);
	if (ret)
		return ret;

	d->owner = calloc(le32toh(d->geo.queue_depth), sizeof(*d->owner));
	if (!d->owner)
		return pnm_error(-ENOMEM, "out of memory for queue state");
	pnm_direct_setup_queue(d);
	return pnm_direct_restart(d);
}

int pnm_direct_open(const char *backing_file, struct pnm_dev **devp)
{
	struct pnm_direct *d;
	struct pnm_dev *dev;
	int ret;

	d = calloc(1, sizeof(*d));
	if (!d)
		return pnm_error(-ENOMEM, "out of memory for a direct device");
	d->fd = -1;
	pthread_mutex_init(&d->lock, NULL);

	ret = pnm_direct_init(d, backing_file);
	if (ret) {
		pnm_direct_destroy(d);
		return ret;
	}
	dev = pnm_dev_new(&pnm_direct_ops, PNM_TRANSPORT_DIRECT, d);
	if (!dev) {
		pnm_direct_destroy(d);
		return pnm_error(-ENOMEM, "out of memory for a device");
	}
	*devp = dev;
	return 0;
}

/* ---- transport operations ---------------------------------------------- */

static struct pnm_direct *pnm_direct_of(struct pnm_dev *dev)
{
	return dev->priv;
}

static int pnm_direct_get_info(struct pnm_dev *dev, struct cxl_pnm_info *info)
{
	struct pnm_direct *d = pnm_direct_of(dev);
	const struct pnm_hw_ctrl *geo = &d->geo;

	memset(info, 0, sizeof(*info));
	info->abi_version = CXL_PNM_ABI_VERSION;
	info->hw_version = le32toh(geo->version);
	info->kv_size = le64toh(geo->kv_size);
	pthread_mutex_lock(&d->lock);
	info->kv_free = info->kv_size - d->allocated;
	pthread_mutex_unlock(&d->lock);
	info->nr_queues = le32toh(geo->nr_queues);
	info->queue_depth = le32toh(geo->queue_depth);
	info->dtypes = le32toh(geo->dtypes);
	info->max_head_dim = le32toh(geo->max_head_dim);
	info->max_group = le32toh(geo->max_group);
	info->page_shifts = le32toh(geo->page_shifts);
	info->max_k = le32toh(geo->max_k);
	info->max_batch = PNM_DIRECT_MAX_BATCH;
	info->region_align = PNM_DIRECT_REGION_ALIGN;
	return 0;
}

static bool pnm_direct_handle_used(const struct pnm_direct *d, uint32_t handle)
{
	const struct pnm_direct_region *r;

	for (r = d->regions; r; r = r->next)
		if (r->handle == handle)
			return true;
	return false;
}

/* First fit: the lowest gap between regions (kept sorted) that fits. */
static int pnm_direct_region_alloc(struct pnm_dev *dev, uint64_t size,
				   struct pnm_region *region)
{
	struct pnm_direct *d = pnm_direct_of(dev);
	uint64_t kv_size = le64toh(d->geo.kv_size), start = 0;
	struct pnm_direct_region **link, *r;
	uint32_t handle = 1;

	if (!size || size % PNM_DIRECT_REGION_ALIGN)
		return pnm_error(-EINVAL, "region size %llu is not a positive multiple of %u",
				 (unsigned long long)size, PNM_DIRECT_REGION_ALIGN);
	r = calloc(1, sizeof(*r));
	if (!r)
		return pnm_error(-ENOMEM, "out of memory for a region");

	pthread_mutex_lock(&d->lock);
	for (link = &d->regions; *link; link = &(*link)->next) {
		if ((*link)->offset - start >= size)
			break;
		start = (*link)->offset + (*link)->size;
	}
	if (start > kv_size || kv_size - start < size) {
		pthread_mutex_unlock(&d->lock);
		free(r);
		return pnm_error(-ENOMEM, "no free range of %llu bytes in the KV area (%llu of %llu bytes free)",
				 (unsigned long long)size,
				 (unsigned long long)(kv_size - d->allocated),
				 (unsigned long long)kv_size);
	}
	while (pnm_direct_handle_used(d, handle))
		handle++;
	r->handle = handle;
	r->offset = start;
	r->size = size;
	r->next = *link;
	*link = r;
	d->allocated += size;
	pthread_mutex_unlock(&d->lock);

	region->handle = handle;
	region->size = size;
	region->addr = d->mem + le64toh(d->geo.kv_offset) + start;
	/* A new region never shows a previous owner's data. */
	memset(region->addr, 0, size);
	return 0;
}

static void pnm_direct_region_free(struct pnm_dev *dev, struct pnm_region *region)
{
	struct pnm_direct *d = pnm_direct_of(dev);
	struct pnm_direct_region **link, *r;

	pthread_mutex_lock(&d->lock);
	for (link = &d->regions; *link; link = &(*link)->next) {
		r = *link;
		if (r->handle != region->handle)
			continue;
		*link = r->next;
		d->allocated -= r->size;
		free(r);
		break;
	}
	pthread_mutex_unlock(&d->lock);
}

static const struct pnm_direct_region *
pnm_direct_find(const struct pnm_direct *d, uint32_t handle)
{
	const struct pnm_direct_region *r;

	for (r = d->regions; r; r = r->next)
		if (r->handle == handle)
			return r;
	return NULL;
}

/*
 * Resolve a buffer to a DPA range as the driver does: handle 0 is no
 * buffer (and then needs length and offset 0), an unknown handle is
 * ENOENT, a range past the region's end is EINVAL.
 */
static int pnm_direct_resolve(const struct pnm_direct *d, unsigned int index,
			      const char *name, const struct cxl_pnm_buf *buf,
			      __le64 *dpa, __le32 *len)
{
	const struct pnm_direct_region *r;

	if (!buf->handle) {
		if (buf->length || buf->offset)
			return pnm_error(-EINVAL, "command %u: %s buffer has no region but length %u and offset %llu",
					 index, name, buf->length,
					 (unsigned long long)buf->offset);
		*dpa = 0;
		*len = 0;
		return 0;
	}
	r = pnm_direct_find(d, buf->handle);
	if (!r)
		return pnm_error(-ENOENT, "command %u: %s buffer names unknown region %u",
				 index, name, buf->handle);
	if (buf->offset > r->size || buf->length > r->size - buf->offset)
		return pnm_error(-EINVAL, "command %u: %s buffer of %u bytes at offset %llu runs past region %u of %llu bytes",
				 index, name, buf->length,
				 (unsigned long long)buf->offset, r->handle,
				 (unsigned long long)r->size);
	*dpa = htole64(le64toh(d->geo.kv_offset) + r->offset + buf->offset);
	*len = htole32(buf->length);
	return 0;
}

/* The driver's command checks, then the translation to a device command. */
static int pnm_direct_translate(const struct pnm_direct *d, unsigned int index,
				const struct cxl_pnm_cmd *cmd,
				struct pnm_hw_cmd *hw)
{
	int ret;

	if (cmd->opcode > CXL_PNM_OP_SELECT_ATTEND)
		return pnm_error(-EINVAL, "command %u: unknown opcode %u",
				 index, cmd->opcode);
	if (cmd->flags & ~PNM_CMD_FLAGS_ALL)
		return pnm_error(-EINVAL, "command %u: unknown flags %#x",
				 index, cmd->flags & ~PNM_CMD_FLAGS_ALL);
	if (cmd->rsvd)
		return pnm_error(-EINVAL, "command %u: reserved byte is %u, expected 0",
				 index, cmd->rsvd);

	memset(hw, 0, sizeof(*hw));
	hw->opcode = cmd->opcode;
	hw->dtype = cmd->dtype;
	hw->page_shift = cmd->page_shift;
	hw->group = cmd->group;
	hw->head_dim = htole16(cmd->head_dim);
	hw->flags = cmd->flags;
	hw->n_tokens = htole32(cmd->n_tokens);
	hw->k = htole16(cmd->k);
	hw->n_list = htole16(cmd->n_list);
	ret = pnm_direct_resolve(d, index, "pool", &cmd->pool, &hw->pool_dpa, &hw->pool_len);
	if (!ret)
		ret = pnm_direct_resolve(d, index, "table", &cmd->table, &hw->table_dpa,
					 &hw->table_len);
	if (!ret)
		ret = pnm_direct_resolve(d, index, "in", &cmd->in, &hw->in_dpa, &hw->in_len);
	if (!ret)
		ret = pnm_direct_resolve(d, index, "out", &cmd->out, &hw->out_dpa, &hw->out_len);
	return ret;
}

/* Copy out every completion whose phase is current; returns how many. */
static int pnm_direct_reap(struct pnm_direct *d, struct pnm_hw_cqe *cqes)
{
	uint32_t depth = le32toh(d->geo.queue_depth);
	int reaped = 0;

	for (;;) {
		struct pnm_hw_cqe *cqe = &d->cq[d->cq_head & (depth - 1)];
		uint16_t flags = le16toh(__atomic_load_n(&cqe->flags, __ATOMIC_ACQUIRE));
		struct pnm_hw_cqe copy;
		uint16_t slot;

		if ((flags & PNM_CQE_PHASE) != d->phase)
			break;
		memcpy(&copy, cqe, sizeof(copy));
		slot = le16toh(copy.slot);
		if (slot >= depth || d->owner[slot] < 0)
			return pnm_error(-EIO, "device completed SQ slot %u, which holds no command",
					 slot);
		cqes[d->owner[slot]] = copy;
		d->owner[slot] = -1;
		d->cq_head++;
		if (!(d->cq_head & (depth - 1)))
			d->phase ^= PNM_CQE_PHASE;
		reaped++;
	}
	if (reaped)
		__atomic_store_n(&d->db->cq_head, htole32(d->cq_head), __ATOMIC_RELEASE);
	return reaped;
}

/*
 * Feed @cmds through queue 0, at most queue_depth at a time, and collect
 * their completions.  The caller holds d->lock.
 */
static int pnm_direct_run(struct pnm_direct *d, const struct pnm_hw_cmd *cmds,
			  struct pnm_hw_cqe *cqes, unsigned int nr,
			  unsigned int timeout_ms)
{
	uint32_t depth = le32toh(d->geo.queue_depth);
	uint64_t limit_ns, start = pnm_direct_now_ns(), idle_since = start;
	uint64_t sleep_ns = 0;
	unsigned int submitted = 0, completed = 0;
	int ret;

	if (d->need_restart) {
		ret = pnm_direct_restart(d);
		if (ret)
			return ret;
	}
	limit_ns = (uint64_t)(timeout_ms ? timeout_ms : PNM_DIRECT_DEFAULT_TIMEOUT_MS) *
		   1000000ULL;

	while (completed < nr) {
		uint32_t status;

		while (submitted < nr && d->owner[d->sq_tail & (depth - 1)] < 0) {
			uint32_t slot = d->sq_tail & (depth - 1);

			memcpy(&d->sq[slot], &cmds[submitted], sizeof(cmds[0]));
			d->owner[slot] = (int)submitted++;
			d->sq_tail++;
			/* Release: the device sees the command before the tail. */
			__atomic_store_n(&d->db->sq_tail, htole32(d->sq_tail),
					 __ATOMIC_RELEASE);
		}

		ret = pnm_direct_reap(d, cqes);
		if (ret < 0)
			goto fail;
		if (ret > 0) {
			completed += ret;
			idle_since = pnm_direct_now_ns();
			sleep_ns = 0;
			continue;
		}

		status = pnm_direct_status(d);
		if ((status & (PNM_HW_STATUS_ENABLED | PNM_HW_STATUS_FATAL)) !=
		    PNM_HW_STATUS_ENABLED) {
			ret = pnm_error(-EIO, "device stopped serving commands (status %#x)%s",
					status, status & PNM_HW_STATUS_FATAL ?
					": fatal error, see its log" : "");
			goto fail;
		}
		if (pnm_direct_now_ns() - start > limit_ns) {
			ret = pnm_error(-ETIMEDOUT, "%u of %u commands still running after %u ms",
					nr - completed, nr,
					timeout_ms ? timeout_ms : PNM_DIRECT_DEFAULT_TIMEOUT_MS);
			goto fail;
		}
		pnm_direct_pause(idle_since, &sleep_ns);
	}
	return 0;

fail:
	/* Commands may still be queued: start from a clean device next time. */
	d->need_restart = true;
	return ret;
}

static int pnm_direct_submit(struct pnm_dev *dev, const struct cxl_pnm_cmd *cmds,
			     struct cxl_pnm_result *results, unsigned int nr,
			     unsigned int timeout_ms)
{
	struct pnm_direct *d = pnm_direct_of(dev);
	struct pnm_hw_cqe *cqes = NULL;
	struct pnm_hw_cmd *hw;
	unsigned int i;
	int ret = 0;

	if (!nr || nr > PNM_DIRECT_MAX_BATCH)
		return pnm_error(-EINVAL, "batch of %u commands: the device takes 1 to %u",
				 nr, PNM_DIRECT_MAX_BATCH);
	hw = malloc(nr * sizeof(*hw));
	cqes = malloc(nr * sizeof(*cqes));
	if (!hw || !cqes) {
		ret = pnm_error(-ENOMEM, "out of memory for a batch of %u commands", nr);
		goto out;
	}

	/* Every command is checked before any is submitted. */
	pthread_mutex_lock(&d->lock);
	for (i = 0; i < nr; i++) {
		ret = pnm_direct_translate(d, i, &cmds[i], &hw[i]);
		if (ret)
			break;
	}
	if (!ret)
		ret = pnm_direct_run(d, hw, cqes, nr, timeout_ms);
	pthread_mutex_unlock(&d->lock);
	if (ret)
		goto out;

	for (i = 0; i < nr; i++) {
		memset(&results[i], 0, sizeof(results[i]));
		results[i].status = le16toh(cqes[i].status);
		results[i].count = le32toh(cqes[i].result);
		results[i].device_ns = le64toh(cqes[i].device_ns);
	}
out:
	free(hw);
	free(cqes);
	return ret;
}

static void pnm_direct_close(struct pnm_dev *dev)
{
	pnm_direct_destroy(pnm_direct_of(dev));
}

static const struct pnm_transport_ops pnm_direct_ops = {
	.get_info = pnm_direct_get_info,
	.region_alloc = pnm_direct_region_alloc,
	.region_free = pnm_direct_region_free,
	.submit = pnm_direct_submit,
	.close = pnm_direct_close,
};

/* ---- test interface (direct.h) ----------------------------------------- */

static struct pnm_direct *pnm_direct_checked(struct pnm_dev *dev)
{
	if (!dev || dev->kind != PNM_TRANSPORT_DIRECT || dev->ops != &pnm_direct_ops) {
		pnm_error(-EINVAL, "not a device opened with the direct transport");
		return NULL;
	}
	return pnm_direct_of(dev);
}

int pnm_direct_submit_raw(struct pnm_dev *dev, const struct pnm_hw_cmd *cmds,
			  struct pnm_hw_cqe *cqes, unsigned int nr,
			  unsigned int timeout_ms)
{
	struct pnm_direct *d = pnm_direct_checked(dev);
	int ret;

	if (!d)
		return -EINVAL;
	if (!nr)
		return pnm_error(-EINVAL, "raw batch of 0 commands");
	pthread_mutex_lock(&d->lock);
	ret = pnm_direct_run(d, cmds, cqes, nr, timeout_ms);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

uint64_t pnm_direct_region_dpa(const struct pnm_region *region)
{
	struct pnm_direct *d = pnm_direct_checked(region ? region->dev : NULL);
	const struct pnm_direct_region *r;
	uint64_t dpa = UINT64_MAX;

	if (!d)
		return dpa;
	pthread_mutex_lock(&d->lock);
	r = pnm_direct_find(d, region->handle);
	if (r)
		dpa = le64toh(d->geo.kv_offset) + r->offset;
	pthread_mutex_unlock(&d->lock);
	return dpa;
}

int pnm_direct_get_state(struct pnm_dev *dev, struct pnm_direct_state *state)
{
	struct pnm_direct *d = pnm_direct_checked(dev);
	const struct pnm_hw_ctrl *c;

	if (!d)
		return -EINVAL;
	c = d->ctrl;
	state->status = pnm_direct_status(d);
	state->heartbeat = le64toh(__atomic_load_n(&c->heartbeat, __ATOMIC_ACQUIRE));
	state->cmds_completed = le64toh(__atomic_load_n(&c->cmds_completed, __ATOMIC_ACQUIRE));
	state->cmds_failed = le64toh(__atomic_load_n(&c->cmds_failed, __ATOMIC_ACQUIRE));
	state->bytes_read = le64toh(__atomic_load_n(&c->bytes_read, __ATOMIC_ACQUIRE));
	state->device_ns = le64toh(__atomic_load_n(&c->device_ns, __ATOMIC_ACQUIRE));
	state->kv_offset = le64toh(d->geo.kv_offset);
	state->kv_size = le64toh(d->geo.kv_size);
	state->dev_size = le64toh(d->geo.dev_size);
	return 0;
}
