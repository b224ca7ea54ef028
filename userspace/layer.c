// SPDX-License-Identifier: GPL-2.0-only
/*
 * Access to one layer: open, read the header through the shared
 * validation code, scan the marked blocks of the cluster table in chunks,
 * write a new header.
 *
 * chainadm writes layers in two ways only: format_layer() (format.c) writes
 * a layer it creates, and layer_write_header() writes the next header of an
 * existing layer (check --clear-needs-check; the job verbs, through txn.c,
 * while the device is suspended or not loaded).  A header write never
 * touches the slot holding the current header: the new generation goes
 * into slot generation % 2 and is flushed, so a torn write leaves the old
 * header current.
 *
 * A layer in use by a live device is opened with O_DIRECT, so that the
 * header read is what the kernel wrote through its bios and not a stale
 * page of the page cache; header and table I/O therefore goes through
 * 4 KiB aligned buffers.  Where the file system refuses O_DIRECT (tmpfs
 * before 6.6) the layer is opened without it; the loop driver then goes
 * through the same page cache.  A block device is always read with
 * O_DIRECT, whoever asks: the kernel writes it with bios that never touch
 * its page cache, so a page cached by an earlier read (chainadm map before
 * a commit) would show the old table long after.
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
	if (l->fd < 0 && errno == EINVAL && (flags & O_DIRECT))
		l->fd = open(path, (flags & ~O_DIRECT) | O_CLOEXEC);
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
		flags = fcntl(l->fd, F_GETFL);
		if (flags < 0 || fcntl(l->fd, F_SETFL, flags | O_DIRECT)) {
			errmsg(path, "cannot read it with O_DIRECT: %s",
			       strerror(errno));
			goto out_close;
		}
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
	__u8 buf[DM_CHAIN_TABLE_OFFSET] __attribute__((aligned(DM_CHAIN_BLOCK_SIZE)));

	if (l->size < DM_CHAIN_TABLE_OFFSET) {
		/* Let the shared code word the "truncated" verdict. */
		memset(blocks, 0, DM_CHAIN_TABLE_OFFSET);
		return 0;
	}
	if (read_exact(l, buf, sizeof(buf), 0, "header"))
		return -1;
	memcpy(blocks, buf, sizeof(buf));
	return 0;
}

int layer_write_slot(const struct layer *l, int slot, const void *block)
{
	__u8 buf[DM_CHAIN_BLOCK_SIZE] __attribute__((aligned(DM_CHAIN_BLOCK_SIZE)));
	off_t off = (off_t)slot * DM_CHAIN_BLOCK_SIZE;

	memcpy(buf, block, sizeof(buf));
	if (pwrite(l->fd, buf, sizeof(buf), off) != (ssize_t)sizeof(buf) ||
	    fsync(l->fd)) {
		errmsg(l->path, "cannot write header slot %d: %s", slot,
		       strerror(errno ? errno : EIO));
		return -EIO;
	}
	return 0;
}

int layer_write_header(struct layer *l, struct dm_chain_layer_info *info)
{
	__u8 block[DM_CHAIN_BLOCK_SIZE];
	int r;

	info->generation = l->info.generation + 1;
	info->slot = info->generation % DM_CHAIN_HEADER_SLOTS;
	if (info->slot == l->info.slot) {
		/* Writing there could tear the only valid header. */
		errmsg(l->path, "generation %llu is in header slot %d, against the generation mod 2 rule: not rewriting the header; run chainadm check on it",
		       (unsigned long long)l->info.generation, l->info.slot);
		return -EINVAL;
	}
	dm_chain_header_pack(info, block);
	r = layer_write_slot(l, info->slot, block);
	if (!r)
		l->info = *info;
	return r;
}

/*
 * A layer in use by a live table may be committed to while we read it: a
 * read racing one header write sees the other slot intact, but two
 * commits during the read may tear both.  A header that fails to parse is
 * read again while its bytes keep changing; the same bytes twice are the
 * layer's real state.
 */
#define HEADER_READ_TRIES	10

int layer_load_header(struct layer *l)
{
	static __u8 blocks[2][DM_CHAIN_TABLE_OFFSET];
	unsigned int i;
	char err[256];

	for (i = 0; i < HEADER_READ_TRIES; i++) {
		if (layer_read_slots(l, blocks[i & 1]))
			return -1;
		if (!dm_chain_header_read(blocks[i & 1], l->size, &l->info,
					  err, sizeof(err)))
			return 0;
		if (i && !memcmp(blocks[0], blocks[1], sizeof(blocks[0])))
			break;
		usleep(1000);
	}
	errmsg(l->path, "%s", err);
	return -1;
}

bool slots_have_magic(const void *blocks)
{
	const struct dm_chain_disk_header *h = blocks;

	return le64_to_cpu(h[0].magic) == DM_CHAIN_MAGIC ||
	       le64_to_cpu(h[1].magic) == DM_CHAIN_MAGIC;
}

/*
 * Read and check the layer's table map into *mapp: 0, or -ENOMEM, -EIO or
 * -EINVAL (a bit past the table) after a message.
 */
static int read_map(const struct layer *l, __u8 **mapp)
{
	const struct dm_chain_layer_info *info = &l->info;
	__u8 *map = aligned_alloc(DM_CHAIN_BLOCK_SIZE, info->map_size);
	char err[256];
	int r;

	*mapp = NULL;
	if (!map) {
		errmsg(l->path, "cannot read the table map: out of memory");
		return -ENOMEM;
	}
	r = read_exact(l, map, info->map_size, info->map_offset, "table map");
	if (!r) {
		r = dm_chain_check_map(info, map, 0, info->map_size, err,
				       sizeof(err));
		if (r)
			errmsg(l->path, "%s", err);
	}
	if (r) {
		free(map);
		return r;
	}
	*mapp = map;
	return 0;
}

int layer_scan_table(const struct layer *l, unsigned long *used,
		     __u64 *max_cluster, entries_fn fn, void *arg)
{
	const struct dm_chain_layer_info *info = &l->info;
	uint64_t blocks = dm_chain_table_blocks(info), b, end;
	const uint64_t chunk = SCAN_CHUNK / DM_CHAIN_ENTRIES_PER_BLOCK;
	/* Aligned for O_DIRECT; the table's offset and size are in blocks. */
	__le64 *buf;
	__u64 ignored_max = 0;
	char err[256];
	__u8 *map;
	int r = read_map(l, &map);

	if (r)
		return r;
	if (!max_cluster)
		max_cluster = &ignored_max;
	buf = aligned_alloc(DM_CHAIN_BLOCK_SIZE, SCAN_CHUNK * sizeof(*buf));
	if (!buf) {
		errmsg(l->path, "cannot scan the table: out of memory");
		free(map);
		return -ENOMEM;
	}
	/* Only the blocks the map marks hold entries: the rest are ABSENT. */
	for (b = 0; b < blocks && !r; b = end) {
		if (!dm_chain_map_test(map, b)) {
			end = b + 1;
			continue;
		}
		for (end = b + 1; end < blocks && end - b < chunk &&
		     dm_chain_map_test(map, end); end++)
			;
		r = read_exact(l, buf, (end - b) * DM_CHAIN_BLOCK_SIZE,
			       info->table_offset + b * DM_CHAIN_BLOCK_SIZE,
			       "cluster table");
		if (r)
			break;
		r = dm_chain_check_entries(info, buf, b * DM_CHAIN_ENTRIES_PER_BLOCK,
					   (end - b) * DM_CHAIN_ENTRIES_PER_BLOCK,
					   used, max_cluster, err, sizeof(err));
		if (r)
			errmsg(l->path, "%s", err);
		else if (fn)
			r = fn(l, buf, b * DM_CHAIN_ENTRIES_PER_BLOCK,
			       (end - b) * DM_CHAIN_ENTRIES_PER_BLOCK, arg);
	}
	free(map);
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
		}
	}
	c->marked_blocks += (count + DM_CHAIN_ENTRIES_PER_BLOCK - 1) /
			    DM_CHAIN_ENTRIES_PER_BLOCK;
	return 0;
}

int layer_count_entries(const struct layer *l, unsigned long *used,
			__u64 *max_cluster, struct entry_counts *counts)
{
	int r;

	memset(counts, 0, sizeof(*counts));
	r = layer_scan_table(l, used, max_cluster, count_chunk, counts);
	counts->absent = l->info.nr_clusters - counts->mapped - counts->zero;
	return r;
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
