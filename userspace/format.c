// SPDX-License-Identifier: GPL-2.0-only
/*
 * Creation of a new layer, for "format" and "snapshot".
 *
 * A new layer is written in this order: the table area is made to read
 * as zeros (all ABSENT; a new file is sparse, a block device is zeroed),
 * then both header slots, then fsync.  Slot 0 holds generation 0 and slot
 * 1 generation 1, both valid, so the kernel's first header update goes to
 * slot 0 and a torn write there still leaves slot 1.  Until the headers
 * are on disk the target carries no magic and nothing will assemble it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>

#include "layer.h"

/* What the new layer inherits from the layer below it. */
struct backing {
	__u32 type;
	__u8 uuid[DM_CHAIN_UUID_SIZE];
	uint64_t virtual_size;
	uint32_t cluster_size;
	char hint[PATH_MAX];
};

static int detect_type(struct layer *b, int requested)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];

	if (requested >= 0)
		return requested;
	/*
	 * A layer with the magic is a chain layer even if damaged, so that
	 * a corrupted overlay is reported instead of silently used as raw.
	 */
	if (layer_read_slots(b, blocks))
		return -1;
	return slots_have_magic(blocks) ? DM_CHAIN_BACKING_CHAIN :
					  DM_CHAIN_BACKING_RAW;
}

static int raw_backing(const struct format_req *req, const struct layer *b,
		       struct backing *bk)
{
	if (!req->virtual_size && b->size % DM_CHAIN_BLOCK_SIZE) {
		errmsg(b->path, "raw backing size %llu is not a multiple of 4096: give --size",
		       (unsigned long long)b->size);
		return -1;
	}
	if (req->virtual_size > b->size) {
		errmsg(b->path, "raw backing is %llu bytes, smaller than --size %llu",
		       (unsigned long long)b->size,
		       (unsigned long long)req->virtual_size);
		return -1;
	}
	bk->virtual_size = req->virtual_size ? req->virtual_size : b->size;
	bk->cluster_size = req->cluster_size;
	return 0;
}

static int chain_backing(const struct format_req *req, struct layer *b,
			 struct backing *bk)
{
	const struct dm_chain_layer_info *bi = &b->info;

	if (layer_load_header(b))
		return -1;
	if (req->virtual_size && req->virtual_size != bi->virtual_size) {
		errmsg(b->path, "virtual size is %llu, but --size asks for %llu: one size per chain",
		       (unsigned long long)bi->virtual_size,
		       (unsigned long long)req->virtual_size);
		return -1;
	}
	if (req->cluster_size && req->cluster_size != bi->cluster_size) {
		errmsg(b->path, "cluster size is %u, but --cluster-size asks for %u: one cluster size per chain",
		       bi->cluster_size, req->cluster_size);
		return -1;
	}
	memcpy(bk->uuid, bi->uuid, DM_CHAIN_UUID_SIZE);
	bk->virtual_size = bi->virtual_size;
	bk->cluster_size = bi->cluster_size;
	return 0;
}

static int read_backing(const struct format_req *req, struct backing *bk)
{
	struct layer b;
	int type, r;

	if (layer_open(&b, req->backing, O_RDONLY))
		return -1;
	if (req->hint) {
		snprintf(bk->hint, sizeof(bk->hint), "%s", req->hint);
	} else if (!realpath(req->backing, bk->hint)) {
		errmsg(req->backing, "cannot resolve the path: %s", strerror(errno));
		goto fail;
	}
	if (strlen(bk->hint) > DM_CHAIN_HINT_SIZE) {
		errmsg(bk->hint, "path is longer than %u bytes: cannot be stored as a backing hint",
		       DM_CHAIN_HINT_SIZE);
		goto fail;
	}
	type = detect_type(&b, req->backing_type);
	if (type < 0)
		goto fail;
	bk->type = type;
	r = type == DM_CHAIN_BACKING_RAW ? raw_backing(req, &b, bk) :
					   chain_backing(req, &b, bk);
	layer_close(&b);
	return r;
fail:
	layer_close(&b);
	return -1;
}

/* Fill everything but the device-dependent fields of a new header. */
static int new_layer_info(const struct format_req *req, const struct backing *bk,
			  struct dm_chain_layer_info *info)
{
	uint32_t cs = bk->cluster_size ? bk->cluster_size :
					 DM_CHAIN_DEFAULT_CLUSTER_SIZE;
	char err[256];

	memset(info, 0, sizeof(*info));
	if (dm_chain_geometry(bk->virtual_size, cs, UINT64_MAX, info, err,
			      sizeof(err))) {
		errmsg(req->path, "%s", err);
		return -1;
	}
	if (uuid_random(info->uuid))
		return -1;
	info->backing_type = bk->type;
	memcpy(info->backing_uuid, bk->uuid, DM_CHAIN_UUID_SIZE);
	info->hint_len = strlen(bk->hint);
	memcpy(info->backing_hint, bk->hint, info->hint_len);
	return 0;
}

/* Room for every virtual cluster after the metadata. */
static int full_layer_size(const struct dm_chain_layer_info *info,
			   uint64_t *size)
{
	return check_mul_overflow(info->nr_clusters, (__u64)info->cluster_size,
				  size) ||
	       check_add_overflow(*size, info->data_offset, size) ? -1 : 0;
}

static int write_headers(int fd, const char *path,
			 struct dm_chain_layer_info *info)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];

	info->generation = 0;
	dm_chain_header_pack(info, blocks);
	info->generation = 1;
	dm_chain_header_pack(info, blocks + DM_CHAIN_BLOCK_SIZE);
	if (pwrite(fd, blocks, sizeof(blocks), 0) != (ssize_t)sizeof(blocks) ||
	    fsync(fd)) {
		errmsg(path, "cannot write the header: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Clear the table map: every table block then reads as ABSENT, whatever
 * the table area holds, so a block device's table is never written here.
 */
static int clear_table(int fd, const char *path, bool blockdev,
		       const struct dm_chain_layer_info *info, uint64_t dev_size)
{
	uint64_t range[2] = { info->map_offset, info->map_size };

	if (!blockdev && ftruncate(fd, dev_size)) {
		errmsg(path, "cannot size the file to %llu bytes: %s",
		       (unsigned long long)dev_size, strerror(errno));
		return -1;
	}
	/*
	 * Durable before the headers: a header that survived a power cut
	 * without the zeroes would trust the map bits of the layer this
	 * device held before, and its table blocks.
	 */
	if (blockdev && (ioctl(fd, BLKZEROOUT, range) || fsync(fd))) {
		errmsg(path, "cannot zero the table map: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int open_target(const struct format_req *req, bool *blockdev,
		       bool *created, uint64_t *dev_size)
{
	struct stat st;
	int fd;

	*blockdev = !stat(req->path, &st) && S_ISBLK(st.st_mode);
	if (*blockdev && req->layer_size) {
		errmsg(req->path, "--layer-size applies to files only: a block device layer uses the whole device");
		return -1;
	}
	/* O_EXCL: never overwrite a file, never format a device in use. */
	fd = open(req->path, O_RDWR | O_EXCL | O_CLOEXEC |
			     (*blockdev ? 0 : O_CREAT), 0644);
	if (fd < 0) {
		errmsg(req->path, "cannot create the layer: %s%s", strerror(errno),
		       errno == EEXIST ? ": remove the file first" :
		       errno == EBUSY ? ": the device is in use" : "");
		return -1;
	}
	*created = !*blockdev;
	if (*blockdev && ioctl(fd, BLKGETSIZE64, dev_size)) {
		errmsg(req->path, "cannot read the device size: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void print_summary(const struct format_req *req,
			  const struct dm_chain_layer_info *info)
{
	char vs[SIZE_STR_LEN], cs[SIZE_STR_LEN];

	printf("Formatted %s: virtual size %s, cluster size %s", req->path,
	       size_str(info->virtual_size, vs, sizeof(vs)),
	       size_str(info->cluster_size, cs, sizeof(cs)));
	if (info->backing_type != DM_CHAIN_BACKING_NONE)
		printf(", backing %s (%s)", info->backing_hint,
		       backing_type_name(info->backing_type));
	putchar('\n');
}

int format_layer(const struct format_req *req)
{
	struct backing bk = { .type = DM_CHAIN_BACKING_NONE,
			      .virtual_size = req->virtual_size,
			      .cluster_size = req->cluster_size };
	struct dm_chain_layer_info info;
	uint64_t dev_size = 0;
	bool blockdev, created = false;
	int fd;

	if (req->backing && read_backing(req, &bk))
		return -1;
	if (new_layer_info(req, &bk, &info))
		return -1;
	fd = open_target(req, &blockdev, &created, &dev_size);
	if (fd < 0)
		return -1;
	if (!blockdev && req->layer_size)
		dev_size = req->layer_size;
	else if (!blockdev && full_layer_size(&info, &dev_size)) {
		errmsg(req->path, "virtual size %llu is too large",
		       (unsigned long long)info.virtual_size);
		goto fail;
	}
	if (dev_size < info.data_offset) {
		errmsg(req->path, "layer size %llu is smaller than its metadata (%llu bytes)",
		       (unsigned long long)dev_size,
		       (unsigned long long)info.data_offset);
		goto fail;
	}
	if (clear_table(fd, req->path, blockdev, &info, dev_size) ||
	    write_headers(fd, req->path, &info))
		goto fail;
	close(fd);
	if (!req->quiet)
		print_summary(req, &info);
	return 0;

fail:
	close(fd);
	if (created)
		unlink(req->path);
	return -1;
}
