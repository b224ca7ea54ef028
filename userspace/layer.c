// SPDX-License-Identifier: GPL-2.0-only
/*
 * Offline access to one layer: open, read the header through the shared
 * validation code, scan the cluster table in chunks.
 *
 * Nothing here writes to an existing layer.  chainadm writes in two places
 * only: format_layer() (format.c), to a layer it creates, and check
 * --clear-needs-check (cmd_check.c), one header slot of a layer that the
 * check found consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "layer.h"

/* Table entries read per chunk: 512 KiB, bounded memory at any size. */
#define SCAN_CHUNK	(64u * 1024)

int layer_open(struct layer *l, const char *path, int flags)
{
	struct stat st;

	memset(l, 0, sizeof(*l));
	l->fd = open(path, flags | O_CLOEXEC);
	if (l->fd < 0) {
		errmsg(path, "cannot open: %s", strerror(errno));
		return -1;
	}
	l->path = strdup(path);
	if (!l->path || fstat(l->fd, &st)) {
		errmsg(path, "cannot stat: %s", strerror(errno));
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		l->blockdev = true;
		if (ioctl(l->fd, BLKGETSIZE64, &l->size)) {
			errmsg(path, "cannot read the device size: %s",
			       strerror(errno));
			goto out_close;
		}
		l->disk_bytes = l->size;
	} else if (S_ISREG(st.st_mode)) {
		l->size = st.st_size;
		l->disk_bytes = (uint64_t)st.st_blocks * 512;
	} else {
		errmsg(path, "not a regular file or block device");
		goto out_close;
	}
	return 0;

out_close:
	layer_close(l);
	return -1;
}

void layer_close(struct layer *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	free(l->path);
	l->path = NULL;
}

static int read_exact(const struct layer *l, void *buf, size_t len,
		      uint64_t off, const char *what)
{
	ssize_t n = pread(l->fd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	errmsg(l->path, "cannot read the %s at byte %llu: %s", what,
	       (unsigned long long)off, n < 0 ? strerror(errno) : "short read");
	return -EIO;
}

int layer_read_slots(const struct layer *l, void *blocks)
{
	if (l->size < DM_CHAIN_TABLE_OFFSET) {
		/* Let the shared code word the "truncated" verdict. */
		memset(blocks, 0, DM_CHAIN_TABLE_OFFSET);
		return 0;
	}
	return read_exact(l, blocks, DM_CHAIN_TABLE_OFFSET, 0, "header") ? -1 : 0;
}

int layer_load_header(struct layer *l)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	char err[256];

	if (layer_read_slots(l, blocks))
		return -1;
	if (dm_chain_header_read(blocks, l->size, &l->info, err, sizeof(err))) {
		errmsg(l->path, "%s", err);
		return -1;
	}
	return 0;
}

bool slots_have_magic(const void *blocks)
{
	const struct dm_chain_disk_header *h = blocks;

	return le64_to_cpu(h[0].magic) == DM_CHAIN_MAGIC ||
	       le64_to_cpu(h[1].magic) == DM_CHAIN_MAGIC;
}

int layer_scan_table(const struct layer *l, unsigned long *used,
		     __u64 *max_cluster, entries_fn fn, void *arg)
{
	const struct dm_chain_layer_info *info = &l->info;
	uint64_t total = info->table_size / 8, first, count;
	__le64 *buf = malloc(SCAN_CHUNK * sizeof(*buf));
	__u64 ignored_max = 0;
	char err[256];
	int r = 0;

	if (!max_cluster)
		max_cluster = &ignored_max;
	if (!buf) {
		errmsg(l->path, "cannot scan the table: out of memory");
		return -ENOMEM;
	}
	for (first = 0; first < total && !r; first += count) {
		count = total - first < SCAN_CHUNK ? total - first : SCAN_CHUNK;
		r = read_exact(l, buf, count * 8, info->table_offset + first * 8,
			       "cluster table");
		if (r)
			break;
		r = dm_chain_check_entries(info, buf, first, count, used,
					   max_cluster, err, sizeof(err));
		if (r)
			errmsg(l->path, "%s", err);
		else if (fn)
			r = fn(l, buf, first, count, arg);
	}
	free(buf);
	return r;
}

/* Entries passed dm_chain_check_entries(): only the type matters here. */
static int count_chunk(const struct layer *l, const __le64 *entries,
		       uint64_t first, uint64_t count, void *arg)
{
	struct entry_counts *c = arg;
	uint64_t i;

	for (i = 0; i < count && first + i < l->info.nr_clusters; i++) {
		__u64 e = le64_to_cpu(entries[i]);

		switch (dm_chain_entry_type(e)) {
		case DM_CHAIN_ENTRY_MAPPED:
			c->mapped++;
			if (dm_chain_entry_cluster(e) >= l->info.data_end)
				c->beyond_end++;
			break;
		case DM_CHAIN_ENTRY_ZERO:
			c->zero++;
			break;
		default:
			c->absent++;
		}
	}
	return 0;
}

int layer_count_entries(const struct layer *l, unsigned long *used,
			__u64 *max_cluster, struct entry_counts *counts)
{
	memset(counts, 0, sizeof(*counts));
	return layer_scan_table(l, used, max_cluster, count_chunk, counts);
}

const char *backing_type_name(__u32 type)
{
	switch (type) {
	case DM_CHAIN_BACKING_NONE:
		return "none";
	case DM_CHAIN_BACKING_RAW:
		return "raw";
	default:
		return "chain";
	}
}
