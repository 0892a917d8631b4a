// SPDX-License-Identifier: GPL-2.0-only
/*
 * kselftests of the cxl_pnm character device: the ioctl ABI, regions and
 * their mappings, and command submission, checked against the kernel ABI
 * contract (uapi/linux/cxl_pnm.h, Documentation/device-interface.rst).
 *
 * Runs inside the VM with the driver bound.  Every fixture opens
 * /dev/cxl/pnm0 (or $PNM_DEVICE_NODE) and fails, rather than skips, when
 * the node is missing, so a driver that never probed cannot pass.
 *
 * Self-contained on purpose: the stream tests build pages, a page table and
 * a query in a mapped region and compute the expected digests, selection,
 * attention output and LSE here, without libpnm.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cxl_pnm.h>

#include "kselftest_harness.h"

#define PNM_DEV_DEFAULT		"/dev/cxl/pnm0"
#define PNM_PAGE		4096ULL		/* contract: region_align */
#define PNM_MAX_BATCH		256		/* contract: max_batch */
#define PNM_ALL_DTYPES		((1U << CXL_PNM_DTYPE_FP32) | \
				 (1U << CXL_PNM_DTYPE_FP16) | \
				 (1U << CXL_PNM_DTYPE_BF16))

/*
 * Return whether a call failed with errno @expected, and log what it did
 * otherwise.  @err is errno, read right after the call.
 */
static bool errno_is(struct __test_metadata *_metadata, const char *call,
		     long rc, int err, int expected)
{
	if (rc == -1 && err == expected)
		return true;
	if (rc != -1)
		TH_LOG("%s returned %ld, expected %s", call, rc,
		       strerrorname_np(expected));
	else
		TH_LOG("%s failed with %s, expected %s", call,
		       strerrorname_np(err), strerrorname_np(expected));
	return false;
}

/*
 * Check that @call fails with errno @expected_errno.  A trailing TH_LOG()
 * adds context, as after EXPECT_EQ().
 */
#define EXPECT_ERRNO(expected_errno, call)				\
	EXPECT_TRUE(({							\
		long __rc;						\
									\
		errno = 0;						\
		__rc = (long)(call);					\
		errno_is(_metadata, #call, __rc, errno,			\
			 expected_errno);				\
	}))

static const char *pnm_dev_path(void)
{
	const char *path = getenv("PNM_DEVICE_NODE");

	return path && *path ? path : PNM_DEV_DEFAULT;
}

static int pnm_open(void)
{
	return open(pnm_dev_path(), O_RDWR | O_CLOEXEC);
}

static int pnm_get_info(int fd, struct cxl_pnm_info *info)
{
	memset(info, 0xa5, sizeof(*info));
	return ioctl(fd, CXL_PNM_IOC_GET_INFO, info);
}

static int pnm_region_alloc(int fd, uint64_t size,
			    struct cxl_pnm_region_alloc *ra)
{
	memset(ra, 0, sizeof(*ra));
	ra->size = size;
	return ioctl(fd, CXL_PNM_IOC_REGION_ALLOC, ra);
}

static int pnm_region_free(int fd, uint32_t handle)
{
	struct cxl_pnm_region_free rf = { .handle = handle };

	return ioctl(fd, CXL_PNM_IOC_REGION_FREE, &rf);
}

static int pnm_submit(int fd, const struct cxl_pnm_cmd *cmds,
		      struct cxl_pnm_result *results, uint32_t nr)
{
	struct cxl_pnm_submit submit = {
		.cmds = (uintptr_t)cmds,
		.results = (uintptr_t)results,
		.nr = nr,
	};

	return ioctl(fd, CXL_PNM_IOC_SUBMIT, &submit);
}

static void *pnm_mmap(int fd, size_t length, uint64_t offset, int flags)
{
	return mmap(NULL, length, PROT_READ | PROT_WRITE, flags, fd,
		    (off_t)offset);
}

/*
 * The harness's EXPECT_*() and ASSERT_*() expand to two statements, a check
 * and a loop that runs a trailing TH_LOG() on failure.  So a loop or if
 * whose body is a check gets braces in this file, to keep both inside.
 */

/* Open the device; a missing node fails the test, it is never skipped. */
#define open_pnm(fdp)							\
	({								\
		*(fdp) = pnm_open();					\
		ASSERT_LE(0, *(fdp))					\
			TH_LOG("open %s: %s (is cxl_pnm bound?)",	\
			       pnm_dev_path(), strerror(errno));	\
	})

#define get_info(fd, info)						\
	ASSERT_EQ(0, pnm_get_info(fd, info))				\
		TH_LOG("GET_INFO: %s", strerror(errno))

/* Bytes of the KV area not allocated to any region, seen through @fd. */
#define kv_free_of(fd)							\
	({								\
		struct cxl_pnm_info __info;				\
									\
		get_info(fd, &__info);					\
		__info.kv_free;						\
	})

#define region_alloc(fd, size, ra)					\
	ASSERT_EQ(0, pnm_region_alloc(fd, size, ra))			\
		TH_LOG("REGION_ALLOC of %llu bytes: %s",		\
		       (unsigned long long)(size), strerror(errno))

#define region_free(fd, handle)						\
	ASSERT_EQ(0, pnm_region_free(fd, handle))			\
		TH_LOG("REGION_FREE of handle %u: %s", (unsigned int)(handle), \
		       strerror(errno))

#define region_map(fd, ra, mapp)					\
	({								\
		*(mapp) = pnm_mmap(fd, (ra)->size, (ra)->mmap_offset,	\
				   MAP_SHARED);				\
		ASSERT_NE(MAP_FAILED, *(mapp))				\
			TH_LOG("mmap of region %u at offset %#llx: %s",	\
			       (ra)->handle,				\
			       (unsigned long long)(ra)->mmap_offset,	\
			       strerror(errno));			\
	})

#define submit_ok(fd, cmds, results, nr)				\
	ASSERT_EQ(0, pnm_submit(fd, cmds, results, nr))			\
		TH_LOG("SUBMIT of %u commands: %s", (unsigned int)(nr),	\
		       strerror(errno))

/*
 * The ABI: sizes, offsets and ioctl numbers are fixed forever, and a
 * change to any of them breaks binaries built against an older header.
 */
#define EXPECT_OFFSET(type, field, offset)				\
	EXPECT_EQ(offset, offsetof(struct type, field))			\
		TH_LOG("offset of %s.%s", #type, #field)

TEST(abi_layout)
{
	EXPECT_EQ(80, sizeof(struct cxl_pnm_info));
	EXPECT_OFFSET(cxl_pnm_info, abi_version, 0);
	EXPECT_OFFSET(cxl_pnm_info, hw_version, 4);
	EXPECT_OFFSET(cxl_pnm_info, kv_size, 8);
	EXPECT_OFFSET(cxl_pnm_info, kv_free, 16);
	EXPECT_OFFSET(cxl_pnm_info, nr_queues, 24);
	EXPECT_OFFSET(cxl_pnm_info, queue_depth, 28);
	EXPECT_OFFSET(cxl_pnm_info, dtypes, 32);
	EXPECT_OFFSET(cxl_pnm_info, max_head_dim, 36);
	EXPECT_OFFSET(cxl_pnm_info, max_group, 40);
	EXPECT_OFFSET(cxl_pnm_info, page_shifts, 44);
	EXPECT_OFFSET(cxl_pnm_info, max_k, 48);
	EXPECT_OFFSET(cxl_pnm_info, max_batch, 52);
	EXPECT_OFFSET(cxl_pnm_info, region_align, 56);
	EXPECT_OFFSET(cxl_pnm_info, rsvd, 60);

	EXPECT_EQ(40, sizeof(struct cxl_pnm_region_alloc));
	EXPECT_OFFSET(cxl_pnm_region_alloc, size, 0);
	EXPECT_OFFSET(cxl_pnm_region_alloc, flags, 8);
	EXPECT_OFFSET(cxl_pnm_region_alloc, handle, 12);
	EXPECT_OFFSET(cxl_pnm_region_alloc, mmap_offset, 16);
	EXPECT_OFFSET(cxl_pnm_region_alloc, rsvd, 24);

	EXPECT_EQ(8, sizeof(struct cxl_pnm_region_free));
	EXPECT_OFFSET(cxl_pnm_region_free, handle, 0);
	EXPECT_OFFSET(cxl_pnm_region_free, rsvd, 4);

	EXPECT_EQ(16, sizeof(struct cxl_pnm_buf));
	EXPECT_OFFSET(cxl_pnm_buf, handle, 0);
	EXPECT_OFFSET(cxl_pnm_buf, length, 4);
	EXPECT_OFFSET(cxl_pnm_buf, offset, 8);

	EXPECT_EQ(80, sizeof(struct cxl_pnm_cmd));
	EXPECT_OFFSET(cxl_pnm_cmd, opcode, 0);
	EXPECT_OFFSET(cxl_pnm_cmd, dtype, 1);
	EXPECT_OFFSET(cxl_pnm_cmd, page_shift, 2);
	EXPECT_OFFSET(cxl_pnm_cmd, group, 3);
	EXPECT_OFFSET(cxl_pnm_cmd, head_dim, 4);
	EXPECT_OFFSET(cxl_pnm_cmd, flags, 6);
	EXPECT_OFFSET(cxl_pnm_cmd, rsvd, 7);
	EXPECT_OFFSET(cxl_pnm_cmd, n_tokens, 8);
	EXPECT_OFFSET(cxl_pnm_cmd, k, 12);
	EXPECT_OFFSET(cxl_pnm_cmd, n_list, 14);
	EXPECT_OFFSET(cxl_pnm_cmd, pool, 16);
	EXPECT_OFFSET(cxl_pnm_cmd, table, 32);
	EXPECT_OFFSET(cxl_pnm_cmd, in, 48);
	EXPECT_OFFSET(cxl_pnm_cmd, out, 64);

	EXPECT_EQ(16, sizeof(struct cxl_pnm_result));
	EXPECT_OFFSET(cxl_pnm_result, status, 0);
	EXPECT_OFFSET(cxl_pnm_result, rsvd, 2);
	EXPECT_OFFSET(cxl_pnm_result, count, 4);
	EXPECT_OFFSET(cxl_pnm_result, device_ns, 8);

	EXPECT_EQ(32, sizeof(struct cxl_pnm_submit));
	EXPECT_OFFSET(cxl_pnm_submit, cmds, 0);
	EXPECT_OFFSET(cxl_pnm_submit, results, 8);
	EXPECT_OFFSET(cxl_pnm_submit, nr, 16);
	EXPECT_OFFSET(cxl_pnm_submit, timeout_ms, 20);
	EXPECT_OFFSET(cxl_pnm_submit, flags, 24);
	EXPECT_OFFSET(cxl_pnm_submit, rsvd, 28);

	/* _IOC(dir, 0xCE, nr, size): direction, type, number and size. */
	EXPECT_EQ(0x8050ce40U, CXL_PNM_IOC_GET_INFO);
	EXPECT_EQ(0xc028ce41U, CXL_PNM_IOC_REGION_ALLOC);
	EXPECT_EQ(0x4008ce42U, CXL_PNM_IOC_REGION_FREE);
	EXPECT_EQ(0x4020ce43U, CXL_PNM_IOC_SUBMIT);
}

FIXTURE(cxl_pnm)
{
	int fd;
	struct cxl_pnm_info info;
};

FIXTURE_SETUP(cxl_pnm)
{
	open_pnm(&self->fd);
	get_info(self->fd, &self->info);
}

FIXTURE_TEARDOWN(cxl_pnm)
{
	if (self->fd >= 0)
		close(self->fd);
}

TEST_F(cxl_pnm, get_info)
{
	const struct cxl_pnm_info *info = &self->info;
	unsigned int i;

	EXPECT_EQ(CXL_PNM_ABI_VERSION, info->abi_version);
	EXPECT_EQ(1, info->hw_version);
	EXPECT_EQ(PNM_PAGE, info->region_align);
	EXPECT_EQ(PNM_MAX_BATCH, info->max_batch);
	EXPECT_LT(0, info->kv_size);
	EXPECT_EQ(0, info->kv_size % info->region_align);
	EXPECT_GE(info->kv_size, info->kv_free);
	EXPECT_EQ(0, info->kv_free % info->region_align);
	EXPECT_EQ(PNM_ALL_DTYPES, info->dtypes & PNM_ALL_DTYPES)
		TH_LOG("dtypes %#x lacks fp32, fp16 or bf16", info->dtypes);
	EXPECT_LE(1, info->nr_queues);
	EXPECT_LE(1, info->queue_depth);
	EXPECT_EQ(0, info->queue_depth & (info->queue_depth - 1))
		TH_LOG("queue_depth %u is not a power of two",
		       info->queue_depth);
	EXPECT_LE(16, info->max_head_dim);
	EXPECT_LE(1, info->max_group);
	EXPECT_NE(0, info->page_shifts);
	EXPECT_LE(1, info->max_k);
	for (i = 0; i < ARRAY_SIZE(info->rsvd); i++) {
		EXPECT_EQ(0, info->rsvd[i]) TH_LOG("rsvd[%u]", i);
	}
}

/* The node is a character device that only root may open. */
TEST_F(cxl_pnm, device_node)
{
	struct stat st;

	ASSERT_EQ(0, stat(pnm_dev_path(), &st))
		TH_LOG("stat %s: %s", pnm_dev_path(), strerror(errno));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777)
		TH_LOG("%s has mode %#o", pnm_dev_path(), st.st_mode & 07777);
	EXPECT_EQ(0, st.st_uid);
	EXPECT_EQ(0, st.st_gid);
}

TEST_F(cxl_pnm, bad_pointers)
{
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, CXL_PNM_IOC_GET_INFO, NULL));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, CXL_PNM_IOC_REGION_ALLOC, NULL));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, CXL_PNM_IOC_REGION_FREE, NULL));
	EXPECT_ERRNO(EFAULT, ioctl(self->fd, CXL_PNM_IOC_SUBMIT, NULL));
	EXPECT_EQ(self->info.kv_free, kv_free_of(self->fd));
}

TEST_F(cxl_pnm, unknown_ioctl)
{
	const unsigned int get_info_nr = _IOC_NR(CXL_PNM_IOC_GET_INFO);
	const unsigned int submit_nr = _IOC_NR(CXL_PNM_IOC_SUBMIT);
	uint64_t arg[16] = { 0 };

	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(CXL_PNM_IOC_MAGIC,
						 submit_nr + 1)));
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IO(CXL_PNM_IOC_MAGIC,
						 get_info_nr - 1)));
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IOWR(CXL_PNM_IOC_MAGIC, 0xff,
						   uint64_t), arg));
	/* GET_INFO's number with another size is another ioctl. */
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IOR(CXL_PNM_IOC_MAGIC,
						  get_info_nr, uint64_t), arg));
	EXPECT_ERRNO(ENOTTY, ioctl(self->fd, _IOR('x', 0x00,
						  struct cxl_pnm_info), arg));
}

TEST_F(cxl_pnm, region_alloc_free)
{
	uint64_t kv_free = self->info.kv_free;
	struct cxl_pnm_region_alloc ra;
	unsigned int i;

	region_alloc(self->fd, 4 * PNM_PAGE, &ra);
	EXPECT_LE(1, ra.handle);
	EXPECT_EQ(0, ra.mmap_offset % PNM_PAGE);
	EXPECT_GE(self->info.kv_size, ra.mmap_offset + ra.size);
	EXPECT_EQ(4 * PNM_PAGE, ra.size);
	EXPECT_EQ(0, ra.flags);
	for (i = 0; i < ARRAY_SIZE(ra.rsvd); i++) {
		EXPECT_EQ(0, ra.rsvd[i]) TH_LOG("rsvd[%u]", i);
	}
	EXPECT_EQ(kv_free - 4 * PNM_PAGE, kv_free_of(self->fd));

	region_free(self->fd, ra.handle);
	EXPECT_EQ(kv_free, kv_free_of(self->fd));
}

TEST_F(cxl_pnm, region_many)
{
	enum { NR = 64 };
	struct cxl_pnm_region_alloc ra[NR];
	uint64_t kv_free = self->info.kv_free;
	uint64_t allocated = 0;
	unsigned int i, j;

	/* Sizes of 1 to 4 pages, so the allocator handles mixed sizes. */
	for (i = 0; i < NR; i++) {
		region_alloc(self->fd, (i % 4 + 1) * PNM_PAGE, &ra[i]);
		allocated += ra[i].size;
	}
	EXPECT_EQ(kv_free - allocated, kv_free_of(self->fd));

	for (i = 0; i < NR; i++) {
		EXPECT_LE(1, ra[i].handle);
		EXPECT_EQ(0, ra[i].mmap_offset % PNM_PAGE);
		for (j = 0; j < i; j++) {
			EXPECT_NE(ra[i].handle, ra[j].handle)
				TH_LOG("regions %u and %u share handle %u",
				       i, j, ra[i].handle);
			/* [offset, offset + size) ranges must not overlap. */
			EXPECT_TRUE(ra[i].mmap_offset + ra[i].size <=
					    ra[j].mmap_offset ||
				    ra[j].mmap_offset + ra[j].size <=
					    ra[i].mmap_offset)
				TH_LOG("regions %u and %u overlap", i, j);
		}
	}

	/* Free the even ones, then the odd ones, to merge free ranges. */
	for (i = 0; i < NR; i += 2) {
		region_free(self->fd, ra[i].handle);
	}
	for (i = 1; i < NR; i += 2) {
		region_free(self->fd, ra[i].handle);
	}
	EXPECT_EQ(kv_free, kv_free_of(self->fd));
}

TEST_F(cxl_pnm, region_alloc_all)
{
	uint64_t kv_free = self->info.kv_free;
	struct cxl_pnm_region_alloc all, more;

	ASSERT_LT(0, kv_free);
	region_alloc(self->fd, kv_free, &all);
	EXPECT_EQ(0, kv_free_of(self->fd));
	EXPECT_ERRNO(ENOMEM, pnm_region_alloc(self->fd, PNM_PAGE, &more));

	region_free(self->fd, all.handle);
	EXPECT_EQ(kv_free, kv_free_of(self->fd));
	region_alloc(self->fd, PNM_PAGE, &more);
	region_free(self->fd, more.handle);
}

TEST_F(cxl_pnm, region_alloc_bad_size)
{
	uint64_t kv_size = self->info.kv_size;
	struct cxl_pnm_region_alloc ra;

	EXPECT_ERRNO(EINVAL, pnm_region_alloc(self->fd, 0, &ra));
	EXPECT_ERRNO(EINVAL, pnm_region_alloc(self->fd, 1, &ra));
	EXPECT_ERRNO(EINVAL, pnm_region_alloc(self->fd, PNM_PAGE - 1, &ra));
	EXPECT_ERRNO(EINVAL, pnm_region_alloc(self->fd, PNM_PAGE + 512, &ra));
	EXPECT_ERRNO(EINVAL, pnm_region_alloc(self->fd, UINT64_MAX, &ra));
	EXPECT_ERRNO(ENOMEM, pnm_region_alloc(self->fd, kv_size + PNM_PAGE,
					      &ra));
	EXPECT_ERRNO(ENOMEM, pnm_region_alloc(self->fd, 2 * kv_size, &ra));
	EXPECT_ERRNO(ENOMEM, pnm_region_alloc(self->fd,
					      UINT64_MAX & ~(PNM_PAGE - 1),
					      &ra));
	EXPECT_ERRNO(ENOMEM, pnm_region_alloc(self->fd, 1ULL << 63, &ra));
	EXPECT_EQ(self->info.kv_free, kv_free_of(self->fd));
}

TEST_F(cxl_pnm, region_alloc_reserved)
{
	struct cxl_pnm_region_alloc ra;
	unsigned int i;

	for (i = 0; i < 32; i++) {
		memset(&ra, 0, sizeof(ra));
		ra.size = PNM_PAGE;
		ra.flags = 1U << i;
		EXPECT_ERRNO(EINVAL,
			     ioctl(self->fd, CXL_PNM_IOC_REGION_ALLOC, &ra));
	}
	for (i = 0; i < ARRAY_SIZE(ra.rsvd); i++) {
		memset(&ra, 0, sizeof(ra));
		ra.size = PNM_PAGE;
		ra.rsvd[i] = 1;
		EXPECT_ERRNO(EINVAL,
			     ioctl(self->fd, CXL_PNM_IOC_REGION_ALLOC, &ra));
		ra.rsvd[i] = 1ULL << 63;
		EXPECT_ERRNO(EINVAL,
			     ioctl(self->fd, CXL_PNM_IOC_REGION_ALLOC, &ra));
	}
	EXPECT_EQ(self->info.kv_free, kv_free_of(self->fd));
}

TEST_F(cxl_pnm, region_free_bad)
{
	struct cxl_pnm_region_free rf;
	struct cxl_pnm_region_alloc ra;

	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 0));
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 1));
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 12345));
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, UINT32_MAX));

	region_alloc(self->fd, PNM_PAGE, &ra);
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, ra.handle + 1));

	/* A rejected free leaves the region allocated. */
	rf = (struct cxl_pnm_region_free){ .handle = ra.handle, .rsvd = 1 };
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, CXL_PNM_IOC_REGION_FREE, &rf));
	EXPECT_EQ(self->info.kv_free - PNM_PAGE, kv_free_of(self->fd));

	region_free(self->fd, ra.handle);
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, ra.handle));
	EXPECT_EQ(self->info.kv_free, kv_free_of(self->fd));
}

/*
 * Regions belong to the open file: another file's mmap offset and handle
 * are unknown here, even though both name memory of the same device.
 */
TEST_F(cxl_pnm, region_of_other_file)
{
	struct cxl_pnm_region_alloc theirs, ours;
	struct cxl_pnm_result result;
	struct cxl_pnm_cmd cmd;
	void *map;
	int other;

	open_pnm(&other);
	region_alloc(other, 2 * PNM_PAGE, &theirs);

	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, theirs.mmap_offset,
				     MAP_SHARED));
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, theirs.handle));

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_NOP;
	cmd.out = (struct cxl_pnm_buf){ .handle = theirs.handle,
					.length = 64 };
	EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, &cmd, &result, 1));

	/* A region of its own does not open the other file's to this one. */
	region_alloc(self->fd, PNM_PAGE, &ours);
	EXPECT_NE(theirs.mmap_offset, ours.mmap_offset);
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, theirs.mmap_offset,
				     MAP_SHARED));

	/* The owner can still map and use it. */
	region_map(other, &theirs, &map);
	submit_ok(other, &cmd, &result, 1);
	EXPECT_EQ(CXL_PNM_STATUS_OK, result.status);
	munmap(map, theirs.size);
	close(other);
}

/*
 * Handle 0 means "no buffer" in a command, so it is never a region's
 * handle, not even after a REGION_FREE of handle 0 (which once marked
 * index 0 free in the handle table).
 */
TEST_F(cxl_pnm, region_handle_never_zero)
{
	struct cxl_pnm_region_alloc ra[3];
	unsigned int i;

	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 0));
	for (i = 0; i < 3; i++) {
		region_alloc(self->fd, PNM_PAGE, &ra[i]);
		EXPECT_NE(0, ra[i].handle);
		/* Emptying the table and freeing 0 again changes nothing. */
		EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 0));
	}
	for (i = 0; i < 3; i++) {
		region_free(self->fd, ra[i].handle);
	}
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, 0));
	region_alloc(self->fd, PNM_PAGE, &ra[0]);
	EXPECT_NE(0, ra[0].handle);
	region_free(self->fd, ra[0].handle);
}

/*
 * Another process's regions are out of reach too: its handle is unknown to
 * this file (SUBMIT and REGION_FREE fail with ENOENT) and its mmap offset
 * maps nothing (ENXIO), even while it maps and uses the region.
 */
TEST_F(cxl_pnm, region_of_other_process)
{
	struct cxl_pnm_region_alloc theirs;
	struct cxl_pnm_result result;
	struct cxl_pnm_cmd cmd;
	int to_parent[2], to_child[2], status;
	char go = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct cxl_pnm_region_alloc ra;
		int fd = pnm_open();
		void *map;

		if (fd < 0 || pnm_region_alloc(fd, 2 * PNM_PAGE, &ra))
			_exit(2);
		map = pnm_mmap(fd, ra.size, ra.mmap_offset, MAP_SHARED);
		if (map == MAP_FAILED)
			_exit(3);
		memset(map, 0x3c, ra.size);
		if (write(to_parent[1], &ra, sizeof(ra)) != sizeof(ra) ||
		    read(to_child[0], &go, 1) != 1)
			_exit(4);
		/* Untouched by the parent's attempts. */
		_exit(((unsigned char *)map)[ra.size - 1] == 0x3c ? 0 : 5);
	}
	ASSERT_EQ(sizeof(theirs), read(to_parent[0], &theirs,
				       sizeof(theirs)));

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_NOP;
	cmd.in = (struct cxl_pnm_buf){ .handle = theirs.handle,
				       .length = PNM_PAGE };
	EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, &cmd, &result, 1));
	EXPECT_ERRNO(ENOENT, pnm_region_free(self->fd, theirs.handle));
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, theirs.mmap_offset,
				     MAP_SHARED));
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, theirs.size,
				     theirs.mmap_offset, MAP_SHARED));

	ASSERT_EQ(1, write(to_child[1], &go, 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child status %#x", status);
	close(to_parent[0]);
	close(to_parent[1]);
	close(to_child[0]);
	close(to_child[1]);
}

/*
 * The mmap offset space is the KV area alone, so the control block,
 * doorbells and queues have no offset at all: any offset past the KV area
 * is in no region of this file.  (Offsets within a page of 2^64 fail in
 * mm with EOVERFLOW before the driver sees them.)
 */
TEST_F(cxl_pnm, map_outside_kv_area)
{
	const uint64_t offsets[] = {
		self->info.kv_size,
		self->info.kv_size + PNM_PAGE,
		1ULL << 40,
		1ULL << 62,
		1ULL << 63,
	};
	struct cxl_pnm_region_alloc ra;
	unsigned int i;

	region_alloc(self->fd, PNM_PAGE, &ra);
	for (i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++) {
		EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, offsets[i],
					     MAP_SHARED))
			TH_LOG("offset %#llx", (unsigned long long)offsets[i]);
	}
	/* Offset 0 is the KV area's first page, not the control block. */
	if (ra.mmap_offset) {
		EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, 0, MAP_SHARED));
	}
	region_free(self->fd, ra.handle);
}

/* A closed file's regions return once their mappings are gone. */
TEST_F(cxl_pnm, close_with_mappings)
{
	uint64_t kv_free = self->info.kv_free;
	struct cxl_pnm_region_alloc ra[2];
	uint64_t *map[2];
	unsigned int i;
	int other;

	open_pnm(&other);
	for (i = 0; i < 2; i++) {
		region_alloc(other, (i + 1) * PNM_PAGE, &ra[i]);
		region_map(other, &ra[i], (void **)&map[i]);
		map[i][0] = 0x5eed0000ULL + i;
	}
	EXPECT_EQ(kv_free - 3 * PNM_PAGE, kv_free_of(self->fd));

	ASSERT_EQ(0, close(other));
	/* The mappings keep the memory: it must not be handed out again. */
	EXPECT_EQ(kv_free - 3 * PNM_PAGE, kv_free_of(self->fd));
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(0x5eed0000ULL + i, map[i][0]);
		ASSERT_EQ(0, munmap(map[i], ra[i].size));
	}
	EXPECT_EQ(kv_free, kv_free_of(self->fd));

	/* All the memory is free again, and a new open works. */
	open_pnm(&other);
	EXPECT_EQ(kv_free, kv_free_of(other));
	region_alloc(other, 3 * PNM_PAGE, &ra[0]);
	region_map(other, &ra[0], (void **)&map[0]);
	map[0][0] = 1;
	EXPECT_EQ(1, map[0][0]);
	munmap(map[0], ra[0].size);
	close(other);
	EXPECT_EQ(kv_free, kv_free_of(self->fd));
}

/* Regions of several sizes, one per test, mapped in FIXTURE_SETUP. */
FIXTURE(cxl_pnm_region)
{
	int fd;
	struct cxl_pnm_info info;
	struct cxl_pnm_region_alloc ra;
	uint8_t *map;
};

FIXTURE_VARIANT(cxl_pnm_region)
{
	uint64_t pages;		/* region size in region_align units */
};

FIXTURE_VARIANT_ADD(cxl_pnm_region, one_page)
{
	.pages = 1,
};

FIXTURE_VARIANT_ADD(cxl_pnm_region, sixteen_pages)
{
	.pages = 16,
};

FIXTURE_VARIANT_ADD(cxl_pnm_region, two_mib)
{
	.pages = 512,
};

FIXTURE_SETUP(cxl_pnm_region)
{
	self->map = MAP_FAILED;
	open_pnm(&self->fd);
	get_info(self->fd, &self->info);
	region_alloc(self->fd, variant->pages * PNM_PAGE, &self->ra);
	region_map(self->fd, &self->ra, (void **)&self->map);
}

FIXTURE_TEARDOWN(cxl_pnm_region)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, self->ra.size);
	if (self->fd >= 0)
		close(self->fd);
}

/* A word that names its page and position, so misplaced data shows. */
static uint64_t pattern_word(uint64_t page, uint64_t word)
{
	return 0xc0de000000000000ULL | page << 20 | word;
}

static void pattern_write(uint8_t *map, uint64_t pages)
{
	const uint64_t last = PNM_PAGE / 8 - 1;
	uint64_t page;

	for (page = 0; page < pages; page++) {
		uint64_t *words = (uint64_t *)(map + page * PNM_PAGE);

		words[0] = pattern_word(page, 0);
		words[last] = pattern_word(page, last);
	}
}

TEST_F(cxl_pnm_region, map_write_read)
{
	const uint64_t last = PNM_PAGE / 8 - 1;
	const uint64_t pages = variant->pages;
	uint64_t *tail;
	uint8_t *second;
	uint64_t page;

	pattern_write(self->map, pages);

	/* A second mapping of the region shows the same memory. */
	region_map(self->fd, &self->ra, (void **)&second);
	for (page = 0; page < pages; page++) {
		uint64_t *words = (uint64_t *)(second + page * PNM_PAGE);

		ASSERT_EQ(pattern_word(page, 0), words[0])
			TH_LOG("page %llu", (unsigned long long)page);
		ASSERT_EQ(pattern_word(page, last), words[last])
			TH_LOG("page %llu", (unsigned long long)page);
	}

	/* Stores through the second mapping reach the first. */
	memset(second, 0x3c, 64);
	EXPECT_EQ(0x3c3c3c3c3c3c3c3cULL, ((uint64_t *)self->map)[7]);
	ASSERT_EQ(0, munmap(second, self->ra.size));

	/* A mapping of the region's last page alone. */
	tail = pnm_mmap(self->fd, PNM_PAGE,
			self->ra.mmap_offset + (pages - 1) * PNM_PAGE,
			MAP_SHARED);
	ASSERT_NE(MAP_FAILED, tail) TH_LOG("mmap: %s", strerror(errno));
	EXPECT_EQ(pattern_word(pages - 1, last), tail[last]);
	if (pages > 1) {
		EXPECT_EQ(pattern_word(pages - 1, 0), tail[0]);
	}
	ASSERT_EQ(0, munmap(tail, PNM_PAGE));
}

TEST_F(cxl_pnm_region, map_past_end)
{
	const uint64_t size = self->ra.size;
	const uint64_t offset = self->ra.mmap_offset;

	EXPECT_ERRNO(EINVAL, pnm_mmap(self->fd, size + PNM_PAGE, offset,
				      MAP_SHARED));
	EXPECT_ERRNO(EINVAL, pnm_mmap(self->fd, 2 * PNM_PAGE,
				      offset + size - PNM_PAGE, MAP_SHARED));
	EXPECT_ERRNO(EINVAL, pnm_mmap(self->fd, 64 * size, offset,
				      MAP_SHARED));
}

TEST_F(cxl_pnm_region, map_unowned_offset)
{
	const uint64_t offset = self->ra.mmap_offset;
	const uint64_t end = offset + self->ra.size;

	/* This file has a single region, so no other offset is mappable. */
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, end, MAP_SHARED));
	if (offset >= PNM_PAGE) {
		EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE,
					     offset - PNM_PAGE, MAP_SHARED));
	}
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE, self->info.kv_size,
				     MAP_SHARED));
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE,
				     self->info.kv_size + (1ULL << 30),
				     MAP_SHARED));
}

TEST_F(cxl_pnm_region, map_private)
{
	EXPECT_ERRNO(EINVAL, pnm_mmap(self->fd, self->ra.size,
				      self->ra.mmap_offset, MAP_PRIVATE));
	EXPECT_ERRNO(EINVAL, pnm_mmap(self->fd, PNM_PAGE,
				      self->ra.mmap_offset, MAP_PRIVATE));
}

TEST_F(cxl_pnm_region, map_after_free)
{
	region_free(self->fd, self->ra.handle);
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, self->ra.size,
				     self->ra.mmap_offset, MAP_SHARED));
	EXPECT_ERRNO(ENXIO, pnm_mmap(self->fd, PNM_PAGE,
				     self->ra.mmap_offset, MAP_SHARED));
}

/*
 * REGION_FREE drops the handle at once, but the memory stays with the
 * existing mapping until munmap: handing it out earlier would let another
 * region alias live data.
 */
TEST_F(cxl_pnm_region, mapping_outlives_free)
{
	const uint64_t size = self->ra.size;
	const uint64_t kv_free = kv_free_of(self->fd);
	struct cxl_pnm_region_alloc next;
	struct cxl_pnm_result result;
	struct cxl_pnm_cmd cmd;

	pattern_write(self->map, variant->pages);
	region_free(self->fd, self->ra.handle);

	memset(&cmd, 0, sizeof(cmd));
	cmd.opcode = CXL_PNM_OP_NOP;
	cmd.out = (struct cxl_pnm_buf){ .handle = self->ra.handle,
					.length = 64 };
	EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, &cmd, &result, 1));

	EXPECT_EQ(kv_free, kv_free_of(self->fd))
		TH_LOG("freed region's memory is reusable while mapped");
	EXPECT_EQ(pattern_word(variant->pages - 1, 0),
		  *(uint64_t *)(self->map + size - PNM_PAGE));
	EXPECT_EQ(pattern_word(0, 0), *(uint64_t *)self->map);

	/* A new region of the same size lies elsewhere. */
	region_alloc(self->fd, size, &next);
	EXPECT_TRUE(next.mmap_offset + size <= self->ra.mmap_offset ||
		    self->ra.mmap_offset + size <= next.mmap_offset)
		TH_LOG("new region at %#llx overlaps the mapped one at %#llx",
		       (unsigned long long)next.mmap_offset,
		       (unsigned long long)self->ra.mmap_offset);
	region_free(self->fd, next.handle);

	ASSERT_EQ(0, munmap(self->map, size));
	self->map = MAP_FAILED;
	EXPECT_EQ(kv_free + size, kv_free_of(self->fd));
}

/*
 * Copy the VmFlags of the mapping that starts at @addr, from
 * /proc/self/smaps, into @flags.  Return false if there is no such mapping.
 */
static bool vma_flags(const void *addr, char *flags, size_t size)
{
	bool found = false, in_vma = false;
	unsigned long start, end;
	char line[256];
	FILE *smaps;

	smaps = fopen("/proc/self/smaps", "r");
	if (!smaps)
		return false;
	while (!found && fgets(line, sizeof(line), smaps)) {
		/* Each mapping starts with a "start-end perms ..." line. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in_vma = start == (unsigned long)addr;
		else if (in_vma && !strncmp(line, "VmFlags:", 8))
			found = snprintf(flags, size, "%s", line + 8) > 0;
	}
	fclose(smaps);
	return found;
}

/* Whether the two-letter VmFlags mnemonic @flag is in @flags. */
static bool vma_has_flag(const char *flags, const char *flag)
{
	const char *at;

	for (at = strstr(flags, flag); at; at = strstr(at + 1, flag)) {
		if ((at == flags || at[-1] == ' ') &&
		    (at[2] == ' ' || at[2] == '\n' || at[2] == '\0'))
			return true;
	}
	return false;
}

/*
 * The contract's mapping flags as /proc/self/smaps names them: sh (shared),
 * io (VM_IO), pf (VM_PFNMAP), dc (VM_DONTCOPY), de (VM_DONTEXPAND).
 */
TEST_F(cxl_pnm_region, mapping_vm_flags)
{
	static const char *const expected[] = { "sh", "io", "pf", "dc", "de" };
	char flags[256];
	unsigned int i;

	ASSERT_TRUE(vma_flags(self->map, flags, sizeof(flags)))
		TH_LOG("no VmFlags for the mapping at %p in /proc/self/smaps",
		       self->map);
	for (i = 0; i < ARRAY_SIZE(expected); i++) {
		EXPECT_TRUE(vma_has_flag(flags, expected[i]))
			TH_LOG("VmFlags lack %s:%s", expected[i], flags);
	}
}

/* A mapping cannot grow: mremap() rejects VM_DONTEXPAND and VM_PFNMAP. */
TEST_F(cxl_pnm_region, mapping_not_expandable)
{
	const uint64_t size = self->ra.size;

	*(volatile uint64_t *)self->map = 0xe4a;
	EXPECT_ERRNO(EFAULT, mremap(self->map, size, size + PNM_PAGE,
				    MREMAP_MAYMOVE));
	EXPECT_ERRNO(EFAULT, mremap(self->map, size, size + PNM_PAGE, 0));
	EXPECT_EQ(0xe4a, *(volatile uint64_t *)self->map);
}

/* VM_DONTCOPY: a forked child has no mapping at that address. */
TEST_F(cxl_pnm_region, mapping_not_inherited)
{
	volatile uint64_t *word = (volatile uint64_t *)self->map;
	int status;
	pid_t pid;

	*word = 0x1234;
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		(void)*word;
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status))
		TH_LOG("child survived a read of the mapping (status %#x)",
		       status);
	EXPECT_EQ(SIGSEGV, WTERMSIG(status));
	EXPECT_EQ(0x1234, *word);
}

/* Command submission: what the driver checks before the device reads it. */

static struct cxl_pnm_cmd nop_cmd(void)
{
	return (struct cxl_pnm_cmd){ .opcode = CXL_PNM_OP_NOP };
}

static void results_poison(struct cxl_pnm_result *results, unsigned int nr)
{
	memset(results, 0xa5, nr * sizeof(*results));
}

TEST_F(cxl_pnm, submit_nop)
{
	struct cxl_pnm_cmd cmd = nop_cmd();
	struct cxl_pnm_result result;

	results_poison(&result, 1);
	submit_ok(self->fd, &cmd, &result, 1);
	EXPECT_EQ(CXL_PNM_STATUS_OK, result.status);
	EXPECT_EQ(0, result.rsvd);
	EXPECT_EQ(0, result.count);
}

TEST_F(cxl_pnm, submit_max_batch)
{
	struct cxl_pnm_result results[PNM_MAX_BATCH];
	struct cxl_pnm_cmd cmds[PNM_MAX_BATCH];
	unsigned int i;

	for (i = 0; i < PNM_MAX_BATCH; i++)
		cmds[i] = nop_cmd();
	results_poison(results, PNM_MAX_BATCH);
	submit_ok(self->fd, cmds, results, PNM_MAX_BATCH);
	for (i = 0; i < PNM_MAX_BATCH; i++) {
		EXPECT_EQ(CXL_PNM_STATUS_OK, results[i].status)
			TH_LOG("command %u", i);
		EXPECT_EQ(0, results[i].rsvd) TH_LOG("command %u", i);
	}
}

TEST_F(cxl_pnm, submit_bad_batch)
{
	struct cxl_pnm_result results[PNM_MAX_BATCH + 1];
	struct cxl_pnm_cmd cmds[PNM_MAX_BATCH + 1];
	struct cxl_pnm_submit submit;
	unsigned int i;

	for (i = 0; i <= PNM_MAX_BATCH; i++)
		cmds[i] = nop_cmd();
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 0));
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results,
					PNM_MAX_BATCH + 1));
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, UINT32_MAX));

	submit = (struct cxl_pnm_submit){
		.cmds = (uintptr_t)cmds,
		.results = (uintptr_t)results,
		.nr = 1,
	};
	for (i = 0; i < 32; i++) {
		submit.flags = 1U << i;
		EXPECT_ERRNO(EINVAL,
			     ioctl(self->fd, CXL_PNM_IOC_SUBMIT, &submit));
	}
	submit.flags = 0;
	submit.rsvd = 1;
	EXPECT_ERRNO(EINVAL, ioctl(self->fd, CXL_PNM_IOC_SUBMIT, &submit));
	submit.rsvd = 0;
	ASSERT_EQ(0, ioctl(self->fd, CXL_PNM_IOC_SUBMIT, &submit));
}

TEST_F(cxl_pnm, submit_bad_pointers)
{
	struct cxl_pnm_cmd cmd = nop_cmd();
	struct cxl_pnm_result result, results[2];
	struct cxl_pnm_cmd *edge;
	uint8_t *pages;

	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, NULL, &result, 1));
	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, &cmd, NULL, 1));
	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, (void *)8, &result, 1));
	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, &cmd, (void *)8, 1));

	/* Two commands, the second in a page that is not mapped. */
	pages = mmap(NULL, 2 * getpagesize(), PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, pages);
	ASSERT_EQ(0, munmap(pages + getpagesize(), getpagesize()));
	edge = (struct cxl_pnm_cmd *)(pages + getpagesize()) - 1;
	*edge = nop_cmd();
	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, edge, results, 2));

	/* Results of read-only memory cannot be written. */
	ASSERT_EQ(0, mprotect(pages, getpagesize(), PROT_READ));
	EXPECT_ERRNO(EFAULT, pnm_submit(self->fd, &cmd,
					(struct cxl_pnm_result *)pages, 1));
	munmap(pages, getpagesize());
}

TEST_F(cxl_pnm, submit_bad_command)
{
	struct cxl_pnm_result results[2];
	struct cxl_pnm_cmd cmds[2];
	unsigned int i;

	/* Opcodes past SELECT_ATTEND are the driver's to reject. */
	cmds[0] = nop_cmd();
	cmds[1] = nop_cmd();
	for (i = CXL_PNM_OP_SELECT_ATTEND + 1; i <= UINT8_MAX; i++) {
		cmds[1].opcode = i;
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2))
			TH_LOG("opcode %u", i);
	}

	cmds[1] = nop_cmd();
	for (i = 2; i < 8; i++) {
		cmds[1].flags = 1U << i;
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2))
			TH_LOG("flags %#x", 1U << i);
	}

	cmds[1] = nop_cmd();
	cmds[1].rsvd = 1;
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2));
	cmds[1].rsvd = 0x80;
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2));

	/* Both defined flags are accepted on a NOP. */
	cmds[1] = nop_cmd();
	cmds[1].flags = CXL_PNM_CMD_KEEP_SINK | CXL_PNM_CMD_KEEP_RECENT;
	submit_ok(self->fd, cmds, results, 2);
	EXPECT_EQ(CXL_PNM_STATUS_OK, results[1].status);
}

/* The buffer of @cmd that @index names: pool, table, in, out. */
static struct cxl_pnm_buf *cmd_buf(struct cxl_pnm_cmd *cmd,
				   unsigned int index)
{
	struct cxl_pnm_buf *bufs[] = {
		&cmd->pool, &cmd->table, &cmd->in, &cmd->out,
	};

	return bufs[index];
}

static const char *const cmd_buf_names[] = { "pool", "table", "in", "out" };

TEST_F(cxl_pnm, submit_bad_buffer)
{
	const uint64_t size = 2 * PNM_PAGE;
	struct cxl_pnm_region_alloc ra;
	struct cxl_pnm_result result;
	struct cxl_pnm_cmd cmd;
	struct cxl_pnm_buf *buf;
	unsigned int i;

	region_alloc(self->fd, size, &ra);

	for (i = 0; i < 4; i++) {
		const char *name = cmd_buf_names[i];

		cmd = nop_cmd();
		buf = cmd_buf(&cmd, i);

		/* Handle 0 means "no buffer": length and offset must be 0. */
		*buf = (struct cxl_pnm_buf){ .handle = 0, .length = 1 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: handle 0, length 1", name);
		*buf = (struct cxl_pnm_buf){ .handle = 0, .offset = 64 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: handle 0, offset 64", name);

		*buf = (struct cxl_pnm_buf){ .handle = ra.handle + 1,
					     .length = 64 };
		EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: unknown handle", name);
		*buf = (struct cxl_pnm_buf){ .handle = UINT32_MAX,
					     .length = 64 };
		EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: handle UINT32_MAX", name);

		/* Ranges leaving the region, overflow included. */
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = size + 1 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: length past the end", name);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = 8,
					     .offset = size - 4 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: straddles the end", name);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = 1,
					     .offset = size };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: starts at the end", name);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = 16,
					     .offset = UINT64_MAX - 7 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: offset + length wraps", name);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = UINT32_MAX,
					     .offset = UINT64_MAX };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: maximal offset and length", name);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = 0,
					     .offset = size + 1 };
		EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, &cmd, &result, 1))
			TH_LOG("%s: empty, past the end", name);

		/* The last byte, and the whole region, are in bounds. */
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = 1,
					     .offset = size - 1 };
		submit_ok(self->fd, &cmd, &result, 1);
		EXPECT_EQ(CXL_PNM_STATUS_OK, result.status);
		*buf = (struct cxl_pnm_buf){ .handle = ra.handle,
					     .length = size };
		submit_ok(self->fd, &cmd, &result, 1);
		EXPECT_EQ(CXL_PNM_STATUS_OK, result.status);
	}
	region_free(self->fd, ra.handle);
}

/*
 * A tiny stream built in a mapped region: two pages of head_dim 16, the
 * last one partial, in a pool of three slots with a table that does not map
 * page i to slot i.  The expected results are computed here, in double.
 *
 * Every key, value and query is a multiple of 1/8 below 4 in magnitude, so
 * fp16 and bf16 store them exactly and the reference works on the device's
 * exact inputs.  Slot 1 and the rows past n_tokens contain NaN, which must
 * reach no result.
 */
#define STREAM_HEAD_DIM		16
#define STREAM_PAGES		2
#define STREAM_SLOTS		3
#define STREAM_GROUP_MAX	2
#define STREAM_K_MAX		8	/* the largest k the tests use */
#define STREAM_ALIGN		64

static const uint32_t stream_table[STREAM_PAGES] = { 2, 0 };

FIXTURE(cxl_pnm_stream)
{
	int fd;
	struct cxl_pnm_info info;
	struct cxl_pnm_region_alloc ra;
	uint8_t *map;
	unsigned int page_shift;	/* P = 1 << page_shift tokens */
	unsigned int group;
	uint32_t n_tokens;
	uint64_t pool_off, pool_len;
	uint64_t table_off, in_off, out_off, out_len;
	/* The stream's keys, values and query, as stored. */
	float keys[STREAM_PAGES][64][STREAM_HEAD_DIM];
	float values[STREAM_PAGES][64][STREAM_HEAD_DIM];
	float query[STREAM_GROUP_MAX][STREAM_HEAD_DIM];
};

FIXTURE_VARIANT(cxl_pnm_stream)
{
	unsigned int dtype;
};

FIXTURE_VARIANT_ADD(cxl_pnm_stream, fp32)
{
	.dtype = CXL_PNM_DTYPE_FP32,
};

FIXTURE_VARIANT_ADD(cxl_pnm_stream, fp16)
{
	.dtype = CXL_PNM_DTYPE_FP16,
};

FIXTURE_VARIANT_ADD(cxl_pnm_stream, bf16)
{
	.dtype = CXL_PNM_DTYPE_BF16,
};

static unsigned int dtype_size(unsigned int dtype)
{
	return dtype == CXL_PNM_DTYPE_FP32 ? 4 : 2;
}

static uint32_t float_bits(float value)
{
	uint32_t bits;

	memcpy(&bits, &value, sizeof(bits));
	return bits;
}

static float bits_float(uint32_t bits)
{
	float value;

	memcpy(&value, &bits, sizeof(value));
	return value;
}

/*
 * Convert @value to IEEE binary16.  It must be zero, NaN or a normal
 * binary16 number, as the stream's data is.  Other values become NaN, so
 * a misuse shows up in the results.
 */
static uint16_t float_to_half(float value)
{
	uint32_t bits = float_bits(value);
	uint16_t sign = bits >> 16 & 0x8000;
	int exponent = (int)(bits >> 23 & 0xff) - 127 + 15;
	uint32_t mantissa = bits & 0x7fffff;

	if ((bits & 0x7fffffff) == 0)
		return sign;
	if (exponent < 1 || exponent > 30 || (mantissa & 0x1fff))
		return 0x7e00;
	return sign | exponent << 10 | mantissa >> 13;
}

static float half_to_float(uint16_t half)
{
	uint32_t sign = (uint32_t)(half & 0x8000) << 16;
	uint32_t exponent = half >> 10 & 0x1f;
	uint32_t mantissa = half & 0x3ff;

	if (exponent == 0x1f)
		return bits_float(sign | 0x7f800000 | mantissa << 13);
	if (exponent == 0)	/* zero or subnormal: mantissa * 2^-24 */
		return (sign ? -1.0f : 1.0f) * ldexpf((float)mantissa, -24);
	return bits_float(sign | (exponent - 15 + 127) << 23 | mantissa << 13);
}

static void elem_store(unsigned int dtype, void *base, size_t index,
		       float value)
{
	uint16_t half;

	switch (dtype) {
	case CXL_PNM_DTYPE_FP32:
		memcpy((uint8_t *)base + 4 * index, &value, 4);
		return;
	case CXL_PNM_DTYPE_FP16:
		half = float_to_half(value);
		break;
	default:	/* bf16: the high half of the fp32 encoding */
		half = float_bits(value) >> 16;
		break;
	}
	memcpy((uint8_t *)base + 2 * index, &half, 2);
}

static float elem_load(unsigned int dtype, const void *base, size_t index)
{
	uint16_t half;
	float value;

	if (dtype == CXL_PNM_DTYPE_FP32) {
		memcpy(&value, (const uint8_t *)base + 4 * index, 4);
		return value;
	}
	memcpy(&half, (const uint8_t *)base + 2 * index, 2);
	if (dtype == CXL_PNM_DTYPE_FP16)
		return half_to_float(half);
	return bits_float((uint32_t)half << 16);
}

static uint64_t align_up(uint64_t value, uint64_t align)
{
	return (value + align - 1) / align * align;
}

static unsigned int stream_tokens_per_page(FIXTURE_DATA(cxl_pnm_stream) *self)
{
	return 1U << self->page_shift;
}

/* Valid tokens of stream page @page. */
static unsigned int stream_page_tokens(FIXTURE_DATA(cxl_pnm_stream) *self,
				       unsigned int page)
{
	unsigned int tokens = stream_tokens_per_page(self);

	return page + 1 < STREAM_PAGES ? tokens :
		self->n_tokens - (STREAM_PAGES - 1) * tokens;
}

static uint64_t stream_slot_bytes(FIXTURE_DATA(cxl_pnm_stream) *self,
				  unsigned int dtype)
{
	return 2ULL * STREAM_HEAD_DIM * dtype_size(dtype) << self->page_shift;
}

static uint64_t stream_digest_bytes(unsigned int dtype)
{
	return 2ULL * STREAM_HEAD_DIM * dtype_size(dtype);
}

static uint8_t *stream_slot(FIXTURE_DATA(cxl_pnm_stream) *self,
			    unsigned int dtype, unsigned int slot)
{
	return self->map + self->pool_off +
	       slot * stream_slot_bytes(self, dtype);
}

static uint8_t *stream_digest(FIXTURE_DATA(cxl_pnm_stream) *self,
			      unsigned int dtype, unsigned int slot)
{
	return self->map + self->pool_off +
	       STREAM_SLOTS * stream_slot_bytes(self, dtype) +
	       slot * stream_digest_bytes(dtype);
}

static float *stream_out(FIXTURE_DATA(cxl_pnm_stream) *self)
{
	return (float *)(self->map + self->out_off);
}

/* Fill every slot and digest with NaN, then write the stream's tokens. */
static void stream_build(FIXTURE_DATA(cxl_pnm_stream) *self,
			 unsigned int dtype)
{
	const unsigned int tokens = stream_tokens_per_page(self);
	const uint64_t nan_elems = self->pool_len / dtype_size(dtype);
	unsigned int page, t, c, g;
	uint32_t *table;
	float *query;
	uint64_t i;

	for (i = 0; i < nan_elems; i++)
		elem_store(dtype, self->map + self->pool_off, i, NAN);

	for (page = 0; page < STREAM_PAGES; page++) {
		uint8_t *slot = stream_slot(self, dtype, stream_table[page]);
		uint64_t values_at = (uint64_t)tokens * STREAM_HEAD_DIM;

		for (t = 0; t < stream_page_tokens(self, page); t++) {
			for (c = 0; c < STREAM_HEAD_DIM; c++) {
				/* Page 1's keys are 1 larger, so it scores higher. */
				float key = (float)((t * 7 + c * 3 + page) % 9) / 8
					    - 0.5f + page;
				float value = (float)((t * 5 + c * 2 + 3 * page) % 11) / 4
					      - 1.25f;
				size_t at = (size_t)t * STREAM_HEAD_DIM + c;

				self->keys[page][t][c] = key;
				self->values[page][t][c] = value;
				elem_store(dtype, slot, at, key);
				elem_store(dtype, slot, values_at + at, value);
			}
		}
	}

	table = (uint32_t *)(self->map + self->table_off);
	memcpy(table, stream_table, sizeof(stream_table));

	/* Positive queries, so larger keys mean a larger Quest bound. */
	query = (float *)(self->map + self->in_off);
	for (g = 0; g < self->group; g++) {
		for (c = 0; c < STREAM_HEAD_DIM; c++) {
			self->query[g][c] = (float)((c + 3 * g) % 4 + 1) / 4;
			query[g * STREAM_HEAD_DIM + c] = self->query[g][c];
		}
	}
}

static unsigned int pick_page_shift(uint32_t page_shifts)
{
	/* Prefer 16-token pages, the common choice, else the smallest. */
	if (page_shifts & 1U << 4)
		return 4;
	return page_shifts ? __builtin_ctz(page_shifts) : 0;
}

FIXTURE_SETUP(cxl_pnm_stream)
{
	const unsigned int dtype = variant->dtype;
	uint64_t size, in_len;
	unsigned int tokens;

	self->map = MAP_FAILED;
	open_pnm(&self->fd);
	get_info(self->fd, &self->info);
	ASSERT_TRUE(self->info.dtypes & 1U << dtype)
		TH_LOG("dtype %u not in dtypes %#x", dtype, self->info.dtypes);
	ASSERT_LE(STREAM_HEAD_DIM, self->info.max_head_dim);
	ASSERT_LE(STREAM_K_MAX, self->info.max_k);

	self->page_shift = pick_page_shift(self->info.page_shifts);
	ASSERT_GE(6, self->page_shift)
		TH_LOG("no page size of at most 64 tokens in %#x",
		       self->info.page_shifts);
	self->group = self->info.max_group < STREAM_GROUP_MAX ?
		      self->info.max_group : STREAM_GROUP_MAX;
	tokens = stream_tokens_per_page(self);
	/* A full first page and a partial second one (unless P is 1). */
	self->n_tokens = tokens + (tokens + 1) / 2;

	self->pool_off = 0;
	self->pool_len = STREAM_SLOTS * (stream_slot_bytes(self, dtype) +
					 stream_digest_bytes(dtype));
	self->table_off = align_up(self->pool_off + self->pool_len,
				   STREAM_ALIGN);
	self->in_off = align_up(self->table_off + sizeof(stream_table),
				STREAM_ALIGN);
	/* The query, then room for a page list of every page. */
	in_len = (uint64_t)self->group * STREAM_HEAD_DIM * 4 +
		 STREAM_PAGES * 4;
	self->out_off = align_up(self->in_off + in_len, STREAM_ALIGN);
	/*
	 * out[group][d], lse[group], then room for k page numbers, so the
	 * output is long enough whether the device sizes the page list by k
	 * or by the pages it selects.
	 */
	self->out_len = (uint64_t)self->group * (STREAM_HEAD_DIM + 1) * 4 +
			STREAM_K_MAX * 4;
	size = align_up(self->out_off + self->out_len, PNM_PAGE);

	region_alloc(self->fd, size, &self->ra);
	region_map(self->fd, &self->ra, (void **)&self->map);
	stream_build(self, dtype);
}

FIXTURE_TEARDOWN(cxl_pnm_stream)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, self->ra.size);
	if (self->fd >= 0)
		close(self->fd);
}

static struct cxl_pnm_buf stream_buf(FIXTURE_DATA(cxl_pnm_stream) *self,
				     uint64_t offset, uint64_t length)
{
	return (struct cxl_pnm_buf){
		.handle = self->ra.handle,
		.length = (uint32_t)length,
		.offset = offset,
	};
}

static struct cxl_pnm_cmd stream_cmd(FIXTURE_DATA(cxl_pnm_stream) *self,
				     unsigned int dtype, unsigned int opcode)
{
	struct cxl_pnm_cmd cmd = {
		.opcode = opcode,
		.dtype = dtype,
		.page_shift = self->page_shift,
		.group = self->group,
		.head_dim = STREAM_HEAD_DIM,
		.n_tokens = self->n_tokens,
		.pool = stream_buf(self, self->pool_off, self->pool_len),
		.table = stream_buf(self, self->table_off,
				    sizeof(stream_table)),
	};

	if (opcode != CXL_PNM_OP_DIGEST) {
		cmd.in = stream_buf(self, self->in_off,
				    self->group * STREAM_HEAD_DIM * 4);
		cmd.out = stream_buf(self, self->out_off, self->out_len);
	}
	return cmd;
}

/* Digest of stream page @page: per-channel min and max over valid rows. */
static void ref_digest(FIXTURE_DATA(cxl_pnm_stream) *self, unsigned int page,
		       float *min, float *max)
{
	unsigned int t, c;

	for (c = 0; c < STREAM_HEAD_DIM; c++) {
		min[c] = INFINITY;
		max[c] = -INFINITY;
		for (t = 0; t < stream_page_tokens(self, page); t++) {
			min[c] = fminf(min[c], self->keys[page][t][c]);
			max[c] = fmaxf(max[c], self->keys[page][t][c]);
		}
	}
}

/* Quest upper bound of stream page @page, summed over the group. */
static double ref_score(FIXTURE_DATA(cxl_pnm_stream) *self, unsigned int page)
{
	float min[STREAM_HEAD_DIM], max[STREAM_HEAD_DIM];
	double score = 0;
	unsigned int g, c;

	ref_digest(self, page, min, max);
	for (g = 0; g < self->group; g++)
		for (c = 0; c < STREAM_HEAD_DIM; c++)
			score += fmax((double)self->query[g][c] * min[c],
				      (double)self->query[g][c] * max[c]);
	return score;
}

/* Attention of query head @g over the valid tokens of @pages. */
static void ref_attend(FIXTURE_DATA(cxl_pnm_stream) *self, unsigned int g,
		       const uint32_t *pages, unsigned int nr_pages,
		       double *out, double *lse)
{
	const double scale = 1.0 / sqrt(STREAM_HEAD_DIM);
	double logits[STREAM_PAGES * 64];
	double m = -INFINITY, sum = 0;
	unsigned int i, t, c, n = 0;

	for (i = 0; i < nr_pages; i++) {
		for (t = 0; t < stream_page_tokens(self, pages[i]); t++) {
			double dot = 0;

			for (c = 0; c < STREAM_HEAD_DIM; c++)
				dot += (double)self->query[g][c] *
				       self->keys[pages[i]][t][c];
			logits[n] = scale * dot;
			m = fmax(m, logits[n]);
			n++;
		}
	}
	for (i = 0; i < n; i++)
		sum += exp(logits[i] - m);
	*lse = m + log(sum);

	memset(out, 0, STREAM_HEAD_DIM * sizeof(*out));
	n = 0;
	for (i = 0; i < nr_pages; i++) {
		for (t = 0; t < stream_page_tokens(self, pages[i]); t++) {
			double weight = exp(logits[n++] - *lse);

			for (c = 0; c < STREAM_HEAD_DIM; c++)
				out[c] += weight *
					  self->values[pages[i]][t][c];
		}
	}
}

/* The device accumulates in fp32, the reference here in double. */
static bool close_enough(double expected, double got)
{
	return fabs(got - expected) <= 1e-4 + 1e-4 * fabs(expected);
}

/* Check out[group][d] and lse[group] against attention over @pages. */
static void check_attention(struct __test_metadata *_metadata,
			    FIXTURE_DATA(cxl_pnm_stream) *self,
			    const uint32_t *pages, unsigned int nr_pages)
{
	const float *out = stream_out(self);
	const float *lse = out + self->group * STREAM_HEAD_DIM;
	double ref_out[STREAM_HEAD_DIM], ref_lse;
	unsigned int g, c;

	for (g = 0; g < self->group; g++) {
		ref_attend(self, g, pages, nr_pages, ref_out, &ref_lse);
		EXPECT_TRUE(close_enough(ref_lse, lse[g]))
			TH_LOG("head %u: lse %.7g, expected %.7g", g, lse[g],
			       ref_lse);
		for (c = 0; c < STREAM_HEAD_DIM; c++) {
			float got = out[g * STREAM_HEAD_DIM + c];

			EXPECT_TRUE(close_enough(ref_out[c], got))
				TH_LOG("head %u: out[%u] %.7g, expected %.7g",
				       g, c, got, ref_out[c]);
		}
	}
}

static void stream_digest_run(struct __test_metadata *_metadata,
			      FIXTURE_DATA(cxl_pnm_stream) *self,
			      unsigned int dtype)
{
	struct cxl_pnm_cmd cmd = stream_cmd(self, dtype, CXL_PNM_OP_DIGEST);
	struct cxl_pnm_result result;

	submit_ok(self->fd, &cmd, &result, 1);
	ASSERT_EQ(CXL_PNM_STATUS_OK, result.status);
}

/* Run SELECT_ATTEND with budget @k and @flags; expect @pages selected. */
static void check_select_attend(struct __test_metadata *_metadata,
				FIXTURE_DATA(cxl_pnm_stream) *self,
				unsigned int dtype, unsigned int k,
				unsigned int flags, const uint32_t *pages,
				unsigned int nr_pages)
{
	struct cxl_pnm_cmd cmd;
	struct cxl_pnm_result result;
	const uint32_t *selected;
	unsigned int i;

	stream_digest_run(_metadata, self, dtype);
	memset(self->map + self->out_off, 0xff, self->out_len);

	cmd = stream_cmd(self, dtype, CXL_PNM_OP_SELECT_ATTEND);
	cmd.k = k;
	cmd.flags = flags;
	results_poison(&result, 1);
	submit_ok(self->fd, &cmd, &result, 1);
	ASSERT_EQ(CXL_PNM_STATUS_OK, result.status);
	EXPECT_EQ(0, result.rsvd);
	ASSERT_EQ(nr_pages, result.count);

	selected = (const uint32_t *)(stream_out(self) +
				      self->group * (STREAM_HEAD_DIM + 1));
	for (i = 0; i < nr_pages; i++) {
		EXPECT_EQ(pages[i], selected[i]) TH_LOG("selected[%u]", i);
	}
	check_attention(_metadata, self, pages, nr_pages);
}

TEST_F(cxl_pnm_stream, digest)
{
	const unsigned int dtype = variant->dtype;
	float min[STREAM_HEAD_DIM], max[STREAM_HEAD_DIM];
	unsigned int page, c;
	const uint8_t *digest;

	stream_digest_run(_metadata, self, dtype);
	for (page = 0; page < STREAM_PAGES; page++) {
		ref_digest(self, page, min, max);
		digest = stream_digest(self, dtype, stream_table[page]);
		for (c = 0; c < STREAM_HEAD_DIM; c++) {
			float got_min = elem_load(dtype, digest, c);
			float got_max = elem_load(dtype, digest,
						  STREAM_HEAD_DIM + c);

			/* Exact: min and max of exactly stored values. */
			EXPECT_TRUE(got_min == min[c])
				TH_LOG("page %u: min[%u] %g, expected %g",
				       page, c, got_min, min[c]);
			EXPECT_TRUE(got_max == max[c])
				TH_LOG("page %u: max[%u] %g, expected %g",
				       page, c, got_max, max[c]);
		}
	}
	/* Slot 1 is no page of the stream: its digest stays NaN. */
	digest = stream_digest(self, dtype, 1);
	for (c = 0; c < 2 * STREAM_HEAD_DIM; c++) {
		EXPECT_TRUE(isnan(elem_load(dtype, digest, c)))
			TH_LOG("slot 1 digest[%u] written", c);
	}
}

TEST_F(cxl_pnm_stream, select_attend_top1)
{
	static const uint32_t expected[] = { 1 };

	/* The test's own data must make page 1 the clear winner. */
	ASSERT_LT(ref_score(self, 0) + 1, ref_score(self, 1));
	check_select_attend(_metadata, self, variant->dtype, 1, 0,
			    expected, 1);
}

TEST_F(cxl_pnm_stream, select_attend_keep_sink)
{
	static const uint32_t expected[] = { 0 };

	check_select_attend(_metadata, self, variant->dtype, 1,
			    CXL_PNM_CMD_KEEP_SINK, expected, 1);
}

TEST_F(cxl_pnm_stream, select_attend_all)
{
	static const uint32_t expected[] = { 0, 1 };

	/* A budget at or above the page count selects every page. */
	check_select_attend(_metadata, self, variant->dtype, STREAM_PAGES, 0,
			    expected, STREAM_PAGES);
	check_select_attend(_metadata, self, variant->dtype, STREAM_K_MAX, 0,
			    expected, STREAM_PAGES);
}

TEST_F(cxl_pnm_stream, attend_listed)
{
	const unsigned int dtype = variant->dtype;
	static const uint32_t list[] = { 0 };
	struct cxl_pnm_result result;
	struct cxl_pnm_cmd cmd;
	uint32_t *in_list;

	in_list = (uint32_t *)(self->map + self->in_off +
			       self->group * STREAM_HEAD_DIM * 4);
	in_list[0] = list[0];
	memset(self->map + self->out_off, 0xff, self->out_len);

	cmd = stream_cmd(self, dtype, CXL_PNM_OP_ATTEND);
	cmd.k = 1;
	cmd.in.length += sizeof(list);
	submit_ok(self->fd, &cmd, &result, 1);
	ASSERT_EQ(CXL_PNM_STATUS_OK, result.status);
	EXPECT_EQ(1, result.count);
	check_attention(_metadata, self, list, 1);
}

/*
 * What only the device can judge (dtype, shapes, k) passes the driver: the
 * call succeeds and each result carries that command's own status.
 */
TEST_F(cxl_pnm_stream, device_status)
{
	const unsigned int dtype = variant->dtype;
	struct cxl_pnm_result results[4];
	struct cxl_pnm_cmd cmds[4];

	stream_digest_run(_metadata, self, dtype);
	cmds[0] = nop_cmd();
	cmds[1] = stream_cmd(self, dtype, CXL_PNM_OP_SELECT_ATTEND);
	cmds[1].k = 1;
	cmds[1].dtype = CXL_PNM_DTYPE_BF16 + 1;
	cmds[2] = stream_cmd(self, dtype, CXL_PNM_OP_SELECT_ATTEND);
	cmds[2].k = 0;
	cmds[3] = stream_cmd(self, dtype, CXL_PNM_OP_SELECT_ATTEND);
	cmds[3].k = 1;
	cmds[3].head_dim = 8;
	results_poison(results, 4);
	submit_ok(self->fd, cmds, results, 4);
	EXPECT_EQ(CXL_PNM_STATUS_OK, results[0].status);
	EXPECT_EQ(CXL_PNM_STATUS_BAD_DTYPE, results[1].status);
	EXPECT_EQ(CXL_PNM_STATUS_BAD_K, results[2].status);
	EXPECT_EQ(CXL_PNM_STATUS_BAD_SHAPE, results[3].status);
}

/*
 * The driver validates the whole batch first: a bad last command means
 * the DIGEST before it never runs, so the digests keep their NaN.
 */
TEST_F(cxl_pnm_stream, batch_validated_first)
{
	const unsigned int dtype = variant->dtype;
	struct cxl_pnm_result results[2];
	struct cxl_pnm_cmd cmds[2];
	const uint8_t *digest = stream_digest(self, dtype, stream_table[0]);

	cmds[0] = stream_cmd(self, dtype, CXL_PNM_OP_DIGEST);
	cmds[1] = nop_cmd();
	cmds[1].rsvd = 1;
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2));

	cmds[1] = nop_cmd();
	cmds[1].out = (struct cxl_pnm_buf){ .handle = self->ra.handle + 1,
					    .length = 4 };
	EXPECT_ERRNO(ENOENT, pnm_submit(self->fd, cmds, results, 2));

	cmds[1].out = stream_buf(self, self->ra.size - 4, 8);
	EXPECT_ERRNO(EINVAL, pnm_submit(self->fd, cmds, results, 2));

	EXPECT_TRUE(isnan(elem_load(dtype, digest, 0)))
		TH_LOG("a rejected batch ran its DIGEST");

	/* The same DIGEST alone runs. */
	submit_ok(self->fd, cmds, results, 1);
	EXPECT_EQ(CXL_PNM_STATUS_OK, results[0].status);
	EXPECT_FALSE(isnan(elem_load(dtype, digest, 0)));
}

TEST_HARNESS_MAIN
