/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers for the dm-chain test programs: error reporting in the
 * "prog: <object>: <what>: <why>" shape, aligned buffers, full-length
 * pread/pwrite, size parsing, device size, a deterministic PRNG and the
 * discard/zero-out primitives that differ between block devices and files.
 *
 * Every helper that can fail prints its own message and returns -1, so the
 * callers only have to map a failure to an exit code.
 */
#ifndef DMCHAIN_TEST_COMMON_H
#define DMCHAIN_TEST_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit codes shared by all programs. */
#define EXIT_OK		0
#define EXIT_VERIFY	1	/* data did not match what was expected */
#define EXIT_USAGE	2	/* bad arguments or an I/O error */

#define SECTOR_SIZE	512u
#define SECTOR_SHIFT	9
#define DIO_ALIGN	4096u

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

extern const char *progname;

/* "prog: object: what: strerror(err)"; err == 0 prints no reason. */
void report(const char *object, const char *what, int err);
/* Like report() with a printf-style reason instead of an errno. */
void reportf(const char *object, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

void *alloc_aligned(size_t len);

/* A device or file under test, opened with O_DIRECT when possible. */
struct dev {
	const char *path;
	int fd;
	bool is_blk;
	bool direct;
	uint64_t size;		/* in bytes */
};

int dev_open(struct dev *d, const char *path, int flags);
void dev_close(struct dev *d);
/* Fail unless @d has at least @need bytes. */
int dev_check_size(const struct dev *d, uint64_t need);

int xpread(int fd, void *buf, size_t len, uint64_t off, const char *name);
int xpwrite(int fd, const void *buf, size_t len, uint64_t off,
	    const char *name);
int xwrite_all(int fd, const void *buf, size_t len, const char *name);

/* Discard (BLKDISCARD / punch hole) or zero-out (BLKZEROOUT / zero range). */
int dev_discard(const struct dev *d, uint64_t off, uint64_t len);
int dev_zeroout(const struct dev *d, uint64_t off, uint64_t len);

/* A device-mapper ioctl buffer of @size bytes for device @name, zeroed. */
struct dm_ioctl;
void dm_ioctl_init(struct dm_ioctl *io, size_t size, const char *name,
		   uint32_t flags);

/* "64K", "1M", "512", "2G": binary suffixes K, M, G, T (case-insensitive). */
int parse_size(const char *s, uint64_t *out);
int parse_u64(const char *s, uint64_t *out);
/* Parse option @opt's argument or print a usage error. */
int opt_size(const char *opt, const char *arg, uint64_t *out);
int opt_u64(const char *opt, const char *arg, uint64_t *out);

static inline bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* splitmix64: tiny, fast, and the same sequence on every machine. */
struct rng {
	uint64_t s;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n); n must be > 0. */
uint64_t rng_below(struct rng *r, uint64_t n);
void rng_fill(struct rng *r, void *buf, size_t len);

/*
 * Pick a random extent in 512-byte sectors inside [0, nr_sect): mostly
 * unaligned, often crossing a cluster boundary, sometimes whole clusters.
 */
struct extent {
	uint64_t sect;
	uint64_t nr;
};

void pick_extent(struct rng *r, uint64_t nr_sect, uint64_t max_sect,
		 uint64_t cluster_sect, struct extent *e);

/* crc32c (Castagnoli); call crc32c_init() once first. */
void crc32c_init(void);
uint32_t crc32c(const void *data, size_t len);

#endif
