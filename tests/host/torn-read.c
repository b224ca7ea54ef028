// SPDX-License-Identifier: GPL-2.0-only
/*
 * torn-read.so - LD_PRELOAD shim for tests/host/torn-header.sh.
 *
 * A live layer's header can change under a reader: the kernel writes the
 * slot not holding the current header on every commit, so a read racing
 * two commits may see both slots half written.  The shim makes that race
 * deterministic: the first TORN_READS reads (default 1) that cover the
 * two header slots of the file named by TORN_PATH return them with the
 * second half of each slot from another moment (bytes flipped, differently
 * each time), as a read between the halves of two header writes would.
 * Later reads are exact.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT	4096

static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int torn_left = -1;

static int is_target(int fd)
{
	const char *want = getenv("TORN_PATH");
	char link[64], path[PATH_MAX];
	ssize_t n;

	if (!want)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	return !strcmp(path, want);
}

/* Each torn read differs from the last, as a header being rewritten does. */
static void tear(unsigned char *buf, int nth)
{
	int slot, i;

	for (slot = 0; slot < 2; slot++)
		for (i = SLOT / 2; i < SLOT; i++)
			buf[slot * SLOT + i] ^= 0x5a + nth;
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset)
{
	ssize_t n;

	if (!real_pread)
		real_pread = (ssize_t (*)(int, void *, size_t, off_t))
			     dlsym(RTLD_NEXT, "pread");
	if (torn_left < 0) {
		const char *s = getenv("TORN_READS");

		torn_left = s ? atoi(s) : 1;
	}
	n = real_pread(fd, buf, count, offset);
	if (n >= 2 * SLOT && offset == 0 && torn_left > 0 && is_target(fd)) {
		tear(buf, torn_left--);
	}
	return n;
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset)
	__attribute__((alias("pread")));
