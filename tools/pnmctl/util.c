// SPDX-License-Identifier: GPL-2.0-only
/*
 * pnmctl: messages, sysfs access and a small JSON writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pnmctl.h"

struct pnmctl_opts pnmctl;

void pnmctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("pnmctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void pnmctl_info(int level, const char *fmt, ...)
{
	va_list ap;

	if (pnmctl.verbose < level)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int sysfs_read_str(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	return 0;
}

int sysfs_read_u64(const char *path, uint64_t *value)
{
	char buf[64], *end;
	int rc;

	rc = sysfs_read_str(path, buf, sizeof(buf));
	if (rc)
		return rc;
	errno = 0;
	*value = strtoull(buf, &end, 0);
	if (errno || end == buf || *end)
		return -EINVAL;
	return 0;
}

/*
 * sysfs takes one write per value; the kernel's error (EBUSY, ENXIO...) is
 * the errno of write().
 */
int sysfs_write_str(const char *path, const char *value)
{
	size_t len = strlen(value);
	ssize_t n;
	int fd;

	pnmctl_info(2, "  write '%s' > %s", value, path);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, value, len);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	return (size_t)n == len ? 0 : -EIO;
}

bool path_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int link_basename(const char *path, char *buf, size_t len)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t n;

	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

bool wait_for(bool (*cond)(const void *arg), const void *arg, unsigned int ms)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	unsigned int waited;

	for (waited = 0; !cond(arg); waited += 10) {
		if (waited >= ms)
			return false;
		nanosleep(&tick, NULL);
	}
	return true;
}

static void json_member(struct json_out *j, const char *key)
{
	fprintf(j->f, "%s\n%*s", j->first ? "" : ",", 2 * j->depth, "");
	j->first = false;
	if (key)
		fprintf(j->f, "\"%s\":", key);
}

void json_open(struct json_out *j, FILE *f, char bracket)
{
	j->f = f;
	j->depth = 1;
	j->first = true;
	fputc(bracket, f);
}

void json_key_open(struct json_out *j, const char *key, char bracket)
{
	json_member(j, key);
	fputc(bracket, j->f);
	j->depth++;
	j->first = true;
}

void json_close(struct json_out *j, char bracket)
{
	j->depth--;
	fprintf(j->f, "\n%*s%c", 2 * j->depth, "", bracket);
	j->first = false;
	if (j->depth == 0)
		fputc('\n', j->f);
}

void json_str(struct json_out *j, const char *key, const char *value)
{
	const unsigned char *c;

	json_member(j, key);
	fputc('"', j->f);
	for (c = (const unsigned char *)value; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(j->f, "\\%c", *c);
		else if (*c < 0x20)
			fprintf(j->f, "\\u%04x", *c);
		else
			fputc(*c, j->f);
	}
	fputc('"', j->f);
}

void json_u64(struct json_out *j, const char *key, uint64_t value)
{
	json_member(j, key);
	fprintf(j->f, "%" PRIu64, value);
}

void json_double(struct json_out *j, const char *key, double value)
{
	json_member(j, key);
	fprintf(j->f, "%.6g", value);
}
