// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lifecycle races of cxl_pnm, in the VM, each bounded in time:
 *   - processes killed or exiting with SUBMIT batches and io_uring commands
 *     in flight;
 *   - threads allocating, mapping, freeing and naming regions in commands
 *     at once, sharing one file;
 *   - unbind of the last device while files are open, regions mapped and
 *     commands in flight, then bind again (mappings are zapped and fault
 *     with SIGBUS, operations fail with ENODEV, the rebound device works);
 *   - rmmod while a file or a mapping is open fails (EWOULDBLOCK).
 * After each race the device must be live, have nothing outstanding and
 * have every region back in its pool.  PNM_RACE_SECONDS (default 4) sets
 * the length of each timed race.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "pnm_vm_test.h"
#include "kselftest_harness.h"

#define PNM_PAGE	4096
#define RACE_THREADS	6

static double race_seconds(void)
{
	const char *s = getenv("PNM_RACE_SECONDS");
	double v = s ? atof(s) : 0;

	return v > 0 ? v : 4;
}

static int dut(void)
{
	int n = pnm_count_devices();

	return n > 0 ? n - 1 : 0;
}

/*
 * Wait up to 15 s until every command submitted to pnm@id has completed or
 * was released by a reset, and every region is back: a killed waiter's
 * commands finish on their own.
 */
static bool settled(int id, uint64_t kv_size)
{
	double end = pnm_now_s() + 15;

	while (pnm_now_s() < end) {
		if (pnm_sysfs_u64(id, "kv_free") == kv_size &&
		    pnm_sysfs_u64(id, "cmds_submitted") ==
		    pnm_sysfs_u64(id, "cmds_completed"))
			return true;
		usleep(20000);
	}
	return false;
}

/* A child that submits NOP batches naming a region until it is killed. */
static void submit_forever(int fd, uint32_t handle)
{
	struct cxl_pnm_cmd cmds[64];
	struct cxl_pnm_result results[64];
	int i;

	for (i = 0; i < 64; i++)
		cmds[i] = (struct cxl_pnm_cmd){
			.opcode = CXL_PNM_OP_NOP,
			.in = { .handle = handle, .length = PNM_PAGE },
		};
	for (;;)
		pnm_submit(fd, cmds, results, 64, 0);
}

/* A child that fills a ring with NOPs and exits without reaping them. */
static void uring_and_exit(int fd, uint32_t handle)
{
	struct cxl_pnm_cmd cmd = {
		.opcode = CXL_PNM_OP_NOP,
		.in = { .handle = handle, .length = PNM_PAGE },
	};
	struct io_uring ring;
	int i;

	if (pnm_ring_init(&ring, 256))
		_exit(2);
	for (i = 0; i < 256; i++)
		pnm_ring_prep(&ring, fd, &cmd, i);
	io_uring_submit(&ring);
	_exit(0);
}

TEST(close_in_flight)
{
	uint64_t kv_size;
	unsigned int rounds = 0;
	struct cxl_pnm_info info;
	double end;
	int id = dut();

	{
		int fd = pnm_open_id(id);

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, pnm_get_info(fd, &info));
		close(fd);
	}
	kv_size = info.kv_size;
	for (end = pnm_now_s() + race_seconds(); pnm_now_s() < end; rounds++) {
		struct cxl_pnm_region_alloc ra;
		pid_t ioctl_pid, uring_pid;
		int fd = pnm_open_id(id), status;

		ASSERT_LE(0, fd);
		ASSERT_EQ(0, pnm_alloc(fd, PNM_PAGE, &ra));
		ioctl_pid = fork();
		ASSERT_LE(0, ioctl_pid);
		if (!ioctl_pid)
			submit_forever(fd, ra.handle);
		uring_pid = fork();
		ASSERT_LE(0, uring_pid);
		if (!uring_pid)
			uring_and_exit(fd, ra.handle);
		/* The parent's handle goes first, then its file. */
		EXPECT_EQ(0, pnm_free(fd, ra.handle));
		close(fd);
		usleep(1000 * (rounds % 20));
		kill(ioctl_pid, SIGKILL);
		ASSERT_EQ(ioctl_pid, waitpid(ioctl_pid, &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status));
		ASSERT_EQ(uring_pid, waitpid(uring_pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	}
	TH_LOG("%u rounds of kill and exit with commands in flight", rounds);
	EXPECT_TRUE(settled(id, kv_size));
	EXPECT_TRUE(pnm_state_is(id, "live"));
}

struct shared_file {
	int fd;
	double end;
	unsigned int handles[64];	/* handles some thread allocated */
	pthread_mutex_t lock;
	unsigned long ops, bad;
};

/* Return codes the contract allows for a racing thread's operation. */
static bool allowed(int rc)
{
	return rc == 0 || rc == -ENOENT || rc == -ENOMEM;
}

static void *region_worker(void *arg)
{
	struct shared_file *sf = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;
	struct cxl_pnm_result res;

	while (pnm_now_s() < sf->end) {
		unsigned int slot = rand_r(&seed) % 64, handle;
		struct cxl_pnm_region_alloc ra;
		struct cxl_pnm_cmd cmd = { .opcode = CXL_PNM_OP_NOP };
		uint8_t *map;
		int rc = 0;

		switch (rand_r(&seed) % 4) {
		case 0:
			rc = pnm_alloc(sf->fd, PNM_PAGE * (1 + rand_r(&seed) % 8),
				       &ra);
			if (rc)
				break;
			map = mmap(NULL, PNM_PAGE, PROT_READ | PROT_WRITE,
				   MAP_SHARED, sf->fd, ra.mmap_offset);
			if (map == MAP_FAILED) {
				rc = -errno;
				break;
			}
			map[0] = (uint8_t)slot;
			munmap(map, PNM_PAGE);
			pthread_mutex_lock(&sf->lock);
			handle = sf->handles[slot];
			sf->handles[slot] = ra.handle;
			pthread_mutex_unlock(&sf->lock);
			/* Replaced: free the old one (maybe freed already). */
			if (handle)
				rc = pnm_free(sf->fd, handle);
			break;
		case 1:
			pthread_mutex_lock(&sf->lock);
			handle = sf->handles[slot];
			sf->handles[slot] = 0;
			pthread_mutex_unlock(&sf->lock);
			if (handle)
				rc = pnm_free(sf->fd, handle);
			break;
		default:
			/* Name a region another thread may free right now. */
			handle = __atomic_load_n(&sf->handles[slot], __ATOMIC_RELAXED);
			if (handle)
				cmd.in = (struct cxl_pnm_buf){
					.handle = handle, .length = PNM_PAGE,
				};
			rc = pnm_submit(sf->fd, &cmd, &res, 1, 0);
			break;
		}
		pthread_mutex_lock(&sf->lock);
		sf->ops++;
		if (!allowed(rc)) {
			sf->bad++;
			fprintf(stderr, "# racing operation failed: %s\n",
				pnm_errname(rc));
		}
		pthread_mutex_unlock(&sf->lock);
	}
	return NULL;
}

TEST(concurrent_alloc_free_submit)
{
	struct shared_file sf = { .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t threads[RACE_THREADS];
	struct cxl_pnm_info info;
	int id = dut(), i;

	sf.fd = pnm_open_id(id);
	ASSERT_LE(0, sf.fd);
	ASSERT_EQ(0, pnm_get_info(sf.fd, &info));
	sf.end = pnm_now_s() + race_seconds();
	for (i = 0; i < RACE_THREADS; i++) {
		ASSERT_EQ(0, pthread_create(&threads[i], NULL, region_worker,
					    &sf));
	}
	for (i = 0; i < RACE_THREADS; i++)
		pthread_join(threads[i], NULL);
	TH_LOG("%lu racing operations from %d threads", sf.ops, RACE_THREADS);
	EXPECT_EQ(0, sf.bad);
	EXPECT_LT(0, sf.ops);
	close(sf.fd);
	EXPECT_TRUE(settled(id, info.kv_size));
	EXPECT_TRUE(pnm_state_is(id, "live"));
}

static sigjmp_buf bus_jmp;

static void on_fault(int sig)
{
	siglongjmp(bus_jmp, sig);
}

static int touch(volatile uint8_t *p)
{
	struct sigaction sa = { .sa_handler = on_fault }, old_bus, old_segv;
	int sig;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	sig = sigsetjmp(bus_jmp, 1);
	if (!sig)
		(void)*p;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return sig;
}

struct submitter {
	int fd;
	volatile bool stop;
	unsigned long ok, enodev, other;
};

static void *submit_loop(void *arg)
{
	struct submitter *s = arg;

	while (!s->stop) {
		int rc = pnm_nop(s->fd, 0);

		if (!rc)
			s->ok++;
		else if (rc == -ENODEV || rc == -EIO)
			s->enodev++;
		else
			s->other++;
		if (rc == -ENODEV)
			break;
	}
	return NULL;
}

TEST(unbind_while_open)
{
	struct cxl_pnm_cmd nop = { .opcode = CXL_PNM_OP_NOP };
	int id = dut(), cycle, cycles = 5;
	char dax[32];

	ASSERT_TRUE(pnm_dax_name(id, dax, sizeof(dax)));
	for (cycle = 0; cycle < cycles; cycle++) {
		struct submitter sub = { 0 };
		struct cxl_pnm_region_alloc ra;
		struct io_uring ring;
		pthread_t thread;
		uint8_t *map;
		int fd, i, rc, completed = 0, enodev = 0;

		fd = pnm_open_id(id);
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, pnm_ring_init(&ring, 64));
		ASSERT_EQ(0, pnm_alloc(fd, 4 * PNM_PAGE, &ra));
		map = mmap(NULL, 4 * PNM_PAGE, PROT_READ | PROT_WRITE,
			   MAP_SHARED, fd, ra.mmap_offset);
		ASSERT_NE(MAP_FAILED, map);
		memset(map, 0xa5, 4 * PNM_PAGE);
		for (i = 0; i < 64; i++)
			pnm_ring_prep(&ring, fd, &nop, i);
		ASSERT_EQ(64, io_uring_submit(&ring));
		sub.fd = fd;
		ASSERT_EQ(0, pthread_create(&thread, NULL, submit_loop, &sub));
		usleep(2000 * cycle);

		ASSERT_EQ(0, pnm_unbind(dax));
		/* Every io_uring command completes: done, or failed. */
		for (i = 0; i < 64; i++) {
			rc = pnm_ring_wait(&ring, 10, NULL);
			ASSERT_NE(-ETIME, rc);
			completed += rc == 0;
			enodev += rc == -ENODEV;
		}
		EXPECT_EQ(64, completed + enodev);
		sub.stop = true;
		pthread_join(thread, NULL);
		EXPECT_EQ(0, sub.other);
		EXPECT_EQ(SIGBUS, touch(map));
		EXPECT_EQ(-ENODEV, pnm_nop(fd, 0));
		EXPECT_EQ(-ENODEV, pnm_free(fd, ra.handle));
		EXPECT_EQ(MAP_FAILED, mmap(NULL, PNM_PAGE, PROT_READ,
					   MAP_SHARED, fd, ra.mmap_offset));
		/* The zapped mapping still holds the file. */
		close(fd);
		EXPECT_EQ(-EAGAIN, pnm_delete_module());
		munmap(map, 4 * PNM_PAGE);
		io_uring_queue_exit(&ring);

		ASSERT_EQ(0, pnm_bind(dax, id));
		fd = pnm_open_id(id);
		ASSERT_LE(0, fd);
		EXPECT_EQ(0, pnm_nop(fd, 0));
		close(fd);
	}
	EXPECT_TRUE(pnm_state_is(id, "live"));
}

TEST(rmmod_while_open)
{
	struct cxl_pnm_region_alloc ra;
	int fd = pnm_open_id(0);
	uint8_t *map;

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EAGAIN, pnm_delete_module());
	ASSERT_EQ(0, pnm_alloc(fd, PNM_PAGE, &ra));
	map = mmap(NULL, PNM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   ra.mmap_offset);
	ASSERT_NE(MAP_FAILED, map);
	close(fd);
	/* The mapping alone still pins the module. */
	EXPECT_EQ(-EAGAIN, pnm_delete_module());
	map[0] = 1;
	EXPECT_EQ(0, touch(map));
	munmap(map, PNM_PAGE);
	EXPECT_EQ(0, access("/sys/module/cxl_pnm", F_OK));
}

TEST_HARNESS_MAIN
