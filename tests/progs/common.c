// SPDX-License-Identifier: GPL-2.0
/*
 * Shared helpers for the dm-chain test programs (see common.h).
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

void report(const char *object, const char *what, int err)
{
	if (err)
		fprintf(stderr, "%s: %s: %s: %s\n", progname, object, what,
			strerror(err));
	else
		fprintf(stderr, "%s: %s: %s\n", progname, object, what);
}

void reportf(const char *object, const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: %s: %s: ", progname, object, what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void *alloc_aligned(size_t len)
{
	void *p;
	int err;

	err = posix_memalign(&p, DIO_ALIGN, len ? len : DIO_ALIGN);
	if (err) {
		report("memory", "cannot allocate I/O buffer", err);
		exit(EXIT_USAGE);
	}
	memset(p, 0, len);
	return p;
}

static int dev_get_size(struct dev *d)
{
	struct stat st;

	if (fstat(d->fd, &st)) {
		report(d->path, "fstat", errno);
		return -1;
	}
	d->is_blk = S_ISBLK(st.st_mode);
	if (!d->is_blk) {
		d->size = st.st_size;
		return 0;
	}
	if (ioctl(d->fd, BLKGETSIZE64, &d->size)) {
		report(d->path, "BLKGETSIZE64", errno);
		return -1;
	}
	return 0;
}

/*
 * O_DIRECT keeps the page cache out of the picture, so a read really asks
 * the device.  Regular files on filesystems without direct I/O (tmpfs
 * before 6.6) refuse it with EINVAL; those are host self-test files and
 * buffered I/O is good enough there.
 */
int dev_open(struct dev *d, const char *path, int flags)
{
	d->path = path;
	d->direct = true;
	d->fd = open(path, flags | O_DIRECT | O_CLOEXEC);
	if (d->fd < 0 && errno == EINVAL) {
		d->direct = false;
		d->fd = open(path, flags | O_CLOEXEC);
	}
	if (d->fd < 0) {
		report(path, "open", errno);
		return -1;
	}
	if (dev_get_size(d)) {
		close(d->fd);
		d->fd = -1;
		return -1;
	}
	return 0;
}

void dev_close(struct dev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

int dev_check_size(const struct dev *d, uint64_t need)
{
	if (d->size >= need)
		return 0;
	reportf(d->path, "device too small", "%" PRIu64 " bytes, need %"
		PRIu64, d->size, need);
	return -1;
}

/* Loop over short transfers and EINTR; a read past the end is an error. */
int xpread(int fd, void *buf, size_t len, uint64_t off, const char *name)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			reportf(name, "read failed", "offset %" PRIu64 ": %s",
				off, strerror(errno));
			return -1;
		}
		if (n == 0) {
			reportf(name, "read failed", "offset %" PRIu64
				": unexpected end of file", off);
			return -1;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int xpwrite(int fd, const void *buf, size_t len, uint64_t off,
	    const char *name)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			reportf(name, "write failed", "offset %" PRIu64 ": %s",
				off, n ? strerror(errno) : "no progress");
			return -1;
		}
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

int xwrite_all(int fd, const void *buf, size_t len, const char *name)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			report(name, "write failed", n ? errno : EIO);
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

static int blk_range_ioctl(const struct dev *d, unsigned long req,
			   const char *name, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	if (!ioctl(d->fd, req, range))
		return 0;
	reportf(d->path, name, "offset %" PRIu64 " length %" PRIu64 ": %s",
		off, len, strerror(errno));
	return -1;
}

static int file_fallocate(const struct dev *d, int mode, const char *name,
			  uint64_t off, uint64_t len)
{
	if (!fallocate(d->fd, mode, off, len))
		return 0;
	reportf(d->path, name, "offset %" PRIu64 " length %" PRIu64 ": %s",
		off, len, strerror(errno));
	return -1;
}

int dev_discard(const struct dev *d, uint64_t off, uint64_t len)
{
	if (d->is_blk)
		return blk_range_ioctl(d, BLKDISCARD, "BLKDISCARD", off, len);
	return file_fallocate(d, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      "fallocate(PUNCH_HOLE)", off, len);
}

int dev_zeroout(const struct dev *d, uint64_t off, uint64_t len)
{
	if (d->is_blk)
		return blk_range_ioctl(d, BLKZEROOUT, "BLKZEROOUT", off, len);
	/* Not every filesystem has ZERO_RANGE; a punched hole reads as zeros. */
	if (!fallocate(d->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		       off, len))
		return 0;
	if (errno != EOPNOTSUPP)
		return file_fallocate(d, FALLOC_FL_ZERO_RANGE |
				      FALLOC_FL_KEEP_SIZE,
				      "fallocate(ZERO_RANGE)", off, len);
	return dev_discard(d, off, len);
}

void dm_ioctl_init(struct dm_ioctl *io, size_t size, const char *name,
		   uint32_t flags)
{
	memset(io, 0, size);
	io->version[0] = DM_VERSION_MAJOR;
	io->data_size = size;
	io->data_start = sizeof(*io);
	snprintf(io->name, sizeof(io->name), "%s", name);
	io->flags = flags;
}

int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || *end) ? -1 : 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "KMGT";
	const char *sfx;
	uint64_t v;
	char *end;
	int shift;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (!*end) {
		*out = v;
		return 0;
	}
	sfx = strchr(suffixes, end[0] & ~0x20);
	if (!sfx || !end[0] || (end[1] && strcmp(end + 1, "iB")))
		return -1;
	shift = 10 * (int)(sfx - suffixes + 1);
	if (v > (UINT64_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

int opt_size(const char *opt, const char *arg, uint64_t *out)
{
	if (!parse_size(arg, out))
		return 0;
	reportf(opt, "invalid size", "'%s' (use bytes or a K/M/G/T suffix)",
		arg);
	return -1;
}

int opt_u64(const char *opt, const char *arg, uint64_t *out)
{
	if (!parse_u64(arg, out))
		return 0;
	reportf(opt, "invalid number", "'%s'", arg);
	return -1;
}

void rng_seed(struct rng *r, uint64_t seed)
{
	r->s = seed;
}

uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	/* The modulo bias is irrelevant for test workloads. */
	return rng_next(r) % n;
}

void rng_fill(struct rng *r, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t v;

	while (len >= 8) {
		v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		v = rng_next(r);
		memcpy(p, &v, len);
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* Ends just past a cluster boundary so both clusters are partial. */
static void extent_crossing(struct rng *r, uint64_t nr_clusters,
			    uint64_t max_sect, uint64_t cs, struct extent *e)
{
	uint64_t boundary = (1 + rng_below(r, nr_clusters - 1)) * cs;
	uint64_t head;

	e->nr = 2 + rng_below(r, max_sect - 1);
	head = 1 + rng_below(r, min_u64(e->nr - 1, boundary));
	e->sect = boundary - head;
}

static void extent_whole(struct rng *r, uint64_t nr_clusters,
			 uint64_t max_sect, uint64_t cs, struct extent *e)
{
	uint64_t n = max_sect / cs;

	n = 1 + rng_below(r, n ? n : 1);
	e->sect = rng_below(r, nr_clusters) * cs;
	e->nr = min_u64(n * cs, max_sect);
}

static void extent_small(struct rng *r, uint64_t nr_clusters,
			 uint64_t max_sect, uint64_t cs, struct extent *e)
{
	e->nr = 1 + rng_below(r, min_u64(8, min_u64(max_sect, cs)));
	e->sect = rng_below(r, nr_clusters) * cs + rng_below(r, cs - e->nr + 1);
}

void pick_extent(struct rng *r, uint64_t nr_sect, uint64_t max_sect,
		 uint64_t cluster_sect, struct extent *e)
{
	uint64_t nr_clusters = nr_sect / cluster_sect;
	unsigned int shape = rng_below(r, 100);

	if (shape < 40 || nr_clusters < 2) {
		e->sect = rng_below(r, nr_sect);
		e->nr = 1 + rng_below(r, max_sect);
	} else if (shape < 65 && max_sect >= 2) {
		extent_crossing(r, nr_clusters, max_sect, cluster_sect, e);
	} else if (shape < 85) {
		extent_whole(r, nr_clusters, max_sect, cluster_sect, e);
	} else {
		extent_small(r, nr_clusters, max_sect, cluster_sect, e);
	}
	if (e->sect + e->nr > nr_sect)
		e->nr = nr_sect - e->sect;
}

/*
 * crc32c (Castagnoli) of the stamps: the SSE4.2 instruction where the CPU
 * has it (a crash-state explorer checks every sector of thousands of
 * states, in an emulated guest), else a bytewise table.
 */

static uint32_t crc_table[256];
static bool crc_hw;

void crc32c_init(void)
{
	uint32_t c;
	int i, j;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ (c & 1 ? 0x82f63b78u : 0);
		crc_table[i] = c;
	}
#if defined(__x86_64__)
	__builtin_cpu_init();
	crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t c, const unsigned char *p, size_t len)
{
	uint64_t v;

	for (; len >= 8; len -= 8, p += 8) {
		memcpy(&v, p, 8);
		c = (uint32_t)__builtin_ia32_crc32di(c, v);
	}
	while (len--)
		c = __builtin_ia32_crc32qi(c, *p++);
	return c;
}
#endif

uint32_t crc32c(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t c = ~0u;

#if defined(__x86_64__)
	if (crc_hw)
		return ~crc32c_hw(c, p, len);
#endif
	while (len--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return ~c;
}
