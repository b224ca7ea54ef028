/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The dm-log-writes on-disk log format, as written by
 * drivers/md/dm-log-writes.c (see Documentation/admin-guide/device-mapper/
 * log-writes.rst).  All fields are little endian.
 *
 * The log is a sequence of blocks of the logged device's logical block size
 * ("sectorsize"):
 *
 *	block 0:	struct lw_super, zero padded
 *	then per entry:	one block: struct lw_entry, followed for a MARK by
 *			its name (data_len bytes, no NUL), zero padded;
 *			then nr_sectors blocks of written data, except for
 *			a DISCARD, which carries no data.
 *
 * Entry sector and nr_sectors count sectorsize blocks of the logged device,
 * not 512-byte sectors.  nr_entries in the super is rewritten on every FUA
 * and MARK entry and at table teardown, so it can lag behind after a crash.
 */
#ifndef DMCHAIN_LW_FORMAT_H
#define DMCHAIN_LW_FORMAT_H

#include <stdint.h>

#define LW_MAGIC		0x6a736677736872ULL
#define LW_VERSION		1
#define LW_END_MARK		"dm-log-writes-end"

enum lw_flag {
	LW_FLUSH	= 1 << 0,
	LW_FUA		= 1 << 1,
	LW_DISCARD	= 1 << 2,
	LW_MARK		= 1 << 3,
	LW_METADATA	= 1 << 4,
};

#define LW_NR_FLAGS	5

struct lw_super {
	uint64_t magic;
	uint64_t version;
	uint64_t nr_entries;
	uint32_t sectorsize;	/* bytes per log block and per entry sector */
} __attribute__((packed));

struct lw_entry {
	uint64_t sector;	/* in sectorsize units of the logged device */
	uint64_t nr_sectors;	/* same units; 0 for MARK and empty FLUSH */
	uint64_t flags;		/* enum lw_flag */
	uint64_t data_len;	/* MARK: length of the name after the entry */
} __attribute__((packed));

_Static_assert(sizeof(struct lw_super) == 28, "lw_super layout");
_Static_assert(sizeof(struct lw_entry) == 32, "lw_entry layout");

/* Largest block size accepted in a log super. */
#define LW_MAX_SECTORSIZE	65536u

#endif
