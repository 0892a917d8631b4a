// SPDX-License-Identifier: GPL-2.0-only
/*
 * One user per device model.  The direct transport takes an open file
 * description lock on byte 1 of the backing file.  A second open of the
 * same file, in this process or another, fails with EBUSY and names the
 * holder, and the first user goes on undisturbed.  The lock goes away with
 * its holder, even one killed by SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "device_model.h"
#include "pnm.h"

FIXTURE(direct_lock) {
	struct model model;
	struct pnm_dev *dev;
};

FIXTURE_SETUP(direct_lock)
{
	int ret;

	self->dev = NULL;
	ret = model_start(&self->model, "32M");
	if (ret == -ECHILD)
		SKIP(return, "device model %s did not start (see PNM_DEVICE)",
		     PNM_DEVICE_BIN);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(0, pnm_open(self->model.name, &self->dev))
		TH_LOG("%s", pnm_last_error());
}

FIXTURE_TEARDOWN(direct_lock)
{
	pnm_close(self->dev);
	model_stop(&self->model);
}

/* The device still serves its first user: a region and a NOP. */
static int device_works(struct pnm_dev *dev)
{
	struct cxl_pnm_cmd cmd = { .opcode = CXL_PNM_OP_NOP };
	struct cxl_pnm_result result;
	struct pnm_region *region;
	int ret;

	ret = pnm_region_alloc(dev, 4096, &region);
	if (ret)
		return ret;
	pnm_region_free(region);
	ret = pnm_submit(dev, &cmd, &result, 1, 0);
	return ret ? ret : result.status;
}

/* The lock's state on @byte, seen through a new open of @path. */
static short lock_type(const char *path, off_t byte)
{
	struct flock fl = {
		.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = byte, .l_len = 1,
	};
	int fd = open(path, O_RDWR);

	if (fd < 0 || fcntl(fd, F_OFD_GETLK, &fl))
		fl.l_type = -1;
	if (fd >= 0)
		close(fd);
	return fl.l_type;
}

TEST_F(direct_lock, second_open_in_this_process_is_busy)
{
	struct pnm_dev *second = NULL;
	char want[160];

	EXPECT_EQ(-EBUSY, pnm_open(self->model.name, &second));
	EXPECT_EQ(NULL, second);
	snprintf(want, sizeof(want), "%s: already opened by this process (pid %d)",
		 self->model.mem, (int)getpid());
	EXPECT_NE(NULL, strstr(pnm_last_error(), want))
		TH_LOG("message: %s", pnm_last_error());
	EXPECT_NE(NULL, strstr(pnm_last_error(), "one direct-transport user at a time"));
	/* The failed open did not reset the device under its user. */
	EXPECT_EQ(0, device_works(self->dev)) TH_LOG("%s", pnm_last_error());
}

TEST_F(direct_lock, other_process_is_busy_and_told_the_holder)
{
	char want[160];
	int status;
	pid_t child;

	snprintf(want, sizeof(want), "already opened by another process (pid %d)",
		 (int)getpid());
	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		struct pnm_dev *dev = NULL;
		int ret = pnm_open(self->model.name, &dev);

		if (ret != -EBUSY || !strstr(pnm_last_error(), want)) {
			fprintf(stderr, "child: pnm_open returned %d: %s\n", ret,
				pnm_last_error());
			_exit(1);
		}
		_exit(0);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_EQ(0, device_works(self->dev)) TH_LOG("%s", pnm_last_error());
}

TEST_F(direct_lock, close_releases_the_device)
{
	pnm_close(self->dev);
	self->dev = NULL;
	ASSERT_EQ(0, pnm_open(self->model.name, &self->dev))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(0, device_works(self->dev)) TH_LOG("%s", pnm_last_error());
}

TEST_F(direct_lock, killed_holder_releases_the_device)
{
	int ready[2], status;
	char c = 0;
	pid_t child;

	pnm_close(self->dev);
	self->dev = NULL;
	ASSERT_EQ(0, pipe(ready));
	child = fork();
	ASSERT_LE(0, child);
	if (child == 0) {
		struct pnm_dev *dev;

		close(ready[0]);
		if (pnm_open(self->model.name, &dev))
			_exit(1);
		c = 1;
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	close(ready[0]);
	EXPECT_EQ(-EBUSY, pnm_open(self->model.name, &self->dev));
	kill(child, SIGKILL);
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_EQ(0, pnm_open(self->model.name, &self->dev))
		TH_LOG("%s", pnm_last_error());
	EXPECT_EQ(0, device_works(self->dev)) TH_LOG("%s", pnm_last_error());
}

/*
 * Byte 1 is the transport's; byte 0 is left to the device model (which
 * may lock it itself), so the transport never changes its state.
 */
TEST_F(direct_lock, lock_covers_byte_1_only)
{
	short byte0;

	EXPECT_EQ(F_WRLCK, lock_type(self->model.mem, 1));
	EXPECT_EQ(F_UNLCK, lock_type(self->model.mem, 2));
	byte0 = lock_type(self->model.mem, 0);
	pnm_close(self->dev);
	self->dev = NULL;
	EXPECT_EQ(F_UNLCK, lock_type(self->model.mem, 1));
	EXPECT_EQ(byte0, lock_type(self->model.mem, 0));
}

TEST_HARNESS_MAIN
