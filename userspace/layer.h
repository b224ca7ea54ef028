/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Offline access to one layer (a file or a block device): its size, its
 * header and its cluster table, always through the shared validation code
 * of kernel/dm-chain-format.c.  Functions print their own errors.
 */
#ifndef CHAINADM_LAYER_H
#define CHAINADM_LAYER_H

#include "chainadm.h"

struct layer {
	char *path;		/* as opened; owned */
	int fd;
	bool raw;		/* a raw device: no header, never probed */
	bool blockdev;
	uint64_t size;		/* in bytes */
	uint64_t disk_bytes;	/* allocated on disk: st_blocks for a file */
	struct dm_chain_layer_info info;	/* valid unless raw */
};

/*
 * Open path with flags (O_RDONLY or O_RDWR, O_EXCL and O_DIRECT allowed;
 * O_DIRECT is dropped where the file system refuses it).
 */
int layer_open(struct layer *l, const char *path, int flags);
void layer_close(struct layer *l);

/* Read both header slots (2 * 4 KiB) into blocks. */
int layer_read_slots(const struct layer *l, void *blocks);

/* Read and validate the header into l->info. */
int layer_load_header(struct layer *l);

/* Write one 4 KiB header slot as it is and flush it: 0 or -EIO. */
int layer_write_slot(const struct layer *l, int slot, const void *block);

/*
 * Write info as the next header of l (loaded by layer_load_header()):
 * generation + 1 into slot generation % 2, then fsync; l->info becomes
 * info.  -EINVAL (nothing written) if the current header sits in that
 * slot against the rule, -EIO if the write failed.
 */
int layer_write_header(struct layer *l, struct dm_chain_layer_info *info);

/* True if either header slot carries the dm-chain magic. */
bool slots_have_magic(const void *blocks);

/*
 * Feed the table blocks the layer's map marks to fn in chunks (the others
 * are all ABSENT), after the map and each chunk passed
 * dm_chain_check_entries() (used and max_cluster as documented there;
 * max_cluster may be NULL).  Returns 0, -EINVAL for an invalid entry,
 * -EIO or -ENOMEM, or what fn returned.
 */
typedef int (*entries_fn)(const struct layer *l, const __le64 *entries,
			  uint64_t first, uint64_t count, void *arg);
int layer_scan_table(const struct layer *l, unsigned long *used,
		     __u64 *max_cluster, entries_fn fn, void *arg);

/* Entry statistics of one layer, filled by layer_count_entries(). */
struct entry_counts {
	uint64_t mapped;
	uint64_t zero;
	uint64_t absent;	/* virtual clusters only, not the padding */
	uint64_t beyond_end;	/* mapped at or after data_end */
	uint64_t marked_blocks;	/* table blocks the map marks (read) */
};
int layer_count_entries(const struct layer *l, unsigned long *used,
			__u64 *max_cluster, struct entry_counts *counts);

const char *backing_type_name(__u32 type);

/* Creation of a new layer (format and snapshot). */
struct format_req {
	const char *path;	/* file (created sparse) or block device */
	uint64_t virtual_size;	/* 0: from the backing layer */
	uint32_t cluster_size;	/* 0: from the backing layer or default */
	uint64_t layer_size;	/* 0: room for every cluster */
	const char *backing;	/* NULL: no backing layer */
	int backing_type;	/* enum dm_chain_backing_type, -1: detect */
	const char *hint;	/* NULL: realpath(backing) */
	bool quiet;		/* no summary line on stdout */
};
int format_layer(const struct format_req *req);

#endif
