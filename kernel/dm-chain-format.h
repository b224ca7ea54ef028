/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-chain on-disk format, shared by the kernel target and chainadm.
 *
 * A chain layer is one block device laid out as:
 *
 *   byte 0       header slot 0   (4 KiB)
 *   byte 4096    header slot 1   (4 KiB)
 *   table_offset cluster table   (one __le64 per virtual cluster,
 *                                 rounded up to 4 KiB)
 *   map_offset   table map       (one bit per table block: set when the
 *                                 block holds entries, rounded up to 4 KiB)
 *   data_offset  data area       (clusters, allocated append-only)
 *
 * The two header slots are written alternately; the valid slot with the
 * highest generation is current, so a torn header write falls back to the
 * previous one.  Table entries are written in place, only after the data
 * they point to has been flushed, and each entry is self-contained, so a
 * table block that is only partly on disk after a crash holds a mix of old
 * and new entries that are each valid (see Documentation/dm-chain-format.rst).
 * A table block whose map bit is clear reads as all ABSENT, whatever it
 * holds, so a reader reads only the marked blocks; a bit is set only once
 * its block was written whole and flushed.
 *
 * All offsets and sizes on disk are in bytes unless the field says
 * otherwise, little-endian.
 */
#ifndef DM_CHAIN_FORMAT_H
#define DM_CHAIN_FORMAT_H

#include "dm-chain-compat.h"

#define DM_CHAIN_MAGIC			0x314e49414843444dULL /* "DMCHAIN1" */
#define DM_CHAIN_VERSION		2

#define DM_CHAIN_BLOCK_SIZE		4096u
#define DM_CHAIN_HEADER_SLOTS		2
#define DM_CHAIN_TABLE_OFFSET		(DM_CHAIN_HEADER_SLOTS * DM_CHAIN_BLOCK_SIZE)
#define DM_CHAIN_HEADERS_SIZE		DM_CHAIN_TABLE_OFFSET
/* Table blocks one map block covers. */
#define DM_CHAIN_MAP_BITS_PER_BLOCK	(DM_CHAIN_BLOCK_SIZE * 8)
#define DM_CHAIN_ENTRIES_PER_BLOCK	(DM_CHAIN_BLOCK_SIZE / 8)

#define DM_CHAIN_MIN_CLUSTER_SIZE	4096u
#define DM_CHAIN_MAX_CLUSTER_SIZE	(2u << 20)
#define DM_CHAIN_DEFAULT_CLUSTER_SIZE	(64u << 10)
#define DM_CHAIN_MAX_LAYERS		255u
/*
 * Clusters per layer: the in-memory index and the free map are sized for
 * at most this many (16 TiB of 4 KiB clusters, 256 TiB of 64 KiB ones).
 */
#define DM_CHAIN_MAX_CLUSTERS		(1ULL << 32)
#define DM_CHAIN_UUID_SIZE		16
#define DM_CHAIN_HINT_SIZE		1024
#define DM_CHAIN_JOB_SIZE		256

/* Header state flags (dm_chain_disk_header.flags). */
#define DM_CHAIN_FLAG_NEEDS_CHECK	(1u << 0) /* metadata error seen */
#define DM_CHAIN_FLAG_INVALIDATED	(1u << 1) /* content committed below */
#define DM_CHAIN_FLAG_COPY_DEST		(1u << 2) /* a copy into it is unfinished */
#define DM_CHAIN_FLAGS_KNOWN		(DM_CHAIN_FLAG_NEEDS_CHECK | \
					 DM_CHAIN_FLAG_INVALIDATED | \
					 DM_CHAIN_FLAG_COPY_DEST)

/* Feature bits: none are defined in version 2. */
#define DM_CHAIN_INCOMPAT_KNOWN		0ULL
#define DM_CHAIN_COMPAT_KNOWN		0ULL

/* What sits below a layer (dm_chain_disk_header.backing_type). */
enum dm_chain_backing_type {
	DM_CHAIN_BACKING_NONE = 0,	/* bottom of the chain, reads zeros */
	DM_CHAIN_BACKING_RAW = 1,	/* a raw device, no UUID */
	DM_CHAIN_BACKING_CHAIN = 2,	/* a chain layer, named by backing_uuid */
};

struct dm_chain_disk_header {
	__le32 csum;		/* crc32c of bytes 4..4095 of this slot */
	__le32 flags;		/* DM_CHAIN_FLAG_* */
	__u8 uuid[DM_CHAIN_UUID_SIZE];	/* identity of this layer */
	__le64 magic;		/* DM_CHAIN_MAGIC */
	__le32 version;		/* DM_CHAIN_VERSION */
	__le32 cluster_size;	/* in bytes, power of two, 4 KiB .. 2 MiB */
	__le64 generation;	/* bumped on every header write */
	__le64 incompat_features;	/* refuse the layer if unknown bits set */
	__le64 compat_features;		/* ignore unknown bits */
	__le64 virtual_size;	/* in bytes, multiple of 4 KiB */
	__le64 table_offset;	/* in bytes, DM_CHAIN_TABLE_OFFSET */
	__le64 table_size;	/* in bytes, >= 8 * clusters, 4 KiB multiple */
	__le64 data_offset;	/* in bytes, cluster aligned, >= table end */
	__le64 data_end;	/* in clusters: first never-allocated cluster */
	__le32 backing_type;	/* enum dm_chain_backing_type */
	__le32 hint_len;	/* in bytes, length of backing_hint */
	__u8 backing_uuid[DM_CHAIN_UUID_SIZE];	/* zero unless CHAIN */
	__u8 job[DM_CHAIN_JOB_SIZE];	/* job record, zero when idle */
	__u8 backing_hint[DM_CHAIN_HINT_SIZE];	/* path, not NUL-terminated */
	__le64 map_offset;	/* in bytes, table_offset + table_size */
	__le64 map_size;	/* in bytes, one bit per table block, 4 KiB multiple */
	__u8 pad[DM_CHAIN_BLOCK_SIZE - 1424];
} __packed;

/*
 * Job record, stored in the job[] field of the active layer's header
 * (all zero when no job is recorded).  The kernel writes it under the
 * commit discipline while a job runs; chainadm writes it while the device
 * is suspended (a mirror's destination hint, a pivot's intent).
 */
#define DM_CHAIN_JOB_MAGIC		0x31424f4aU	/* "JOB1" */
#define DM_CHAIN_JOB_NO_LAYER		0xffffffffU
#define DM_CHAIN_JOB_HINT_SIZE		128

enum dm_chain_job_type {
	DM_CHAIN_JOB_NONE = 0,
	DM_CHAIN_JOB_STREAM = 1,	/* pull into the active layer */
	DM_CHAIN_JOB_COMMIT = 2,	/* intermediate commit into base */
	DM_CHAIN_JOB_ACTIVE_COMMIT = 3,	/* commit of the active layer */
	DM_CHAIN_JOB_MIRROR = 4,	/* copy to a destination */
};

enum dm_chain_job_phase {
	DM_CHAIN_PHASE_NONE = 0,
	DM_CHAIN_PHASE_RUNNING = 1,	/* copying */
	DM_CHAIN_PHASE_READY = 2,	/* in sync, every write reaches both */
	DM_CHAIN_PHASE_COMPLETED = 3,	/* copied; the table change is due */
	DM_CHAIN_PHASE_PIVOT = 4,	/* chainadm is switching tables */
	DM_CHAIN_PHASE_FAILED = 5,	/* stopped on an error */
};

#define DM_CHAIN_JOB_SHALLOW		(1u << 0) /* mirror: active layer only */
#define DM_CHAIN_JOB_DEST_RAW		(1u << 1) /* destination is raw */
#define DM_CHAIN_JOB_DEST_ZEROED	(1u << 2) /* raw dest reads zeros */
#define DM_CHAIN_JOB_PAUSED		(1u << 3) /* paused by the user */

struct dm_chain_job_record {
	__le32 magic;		/* DM_CHAIN_JOB_MAGIC, or 0: no job */
	__u8 type;		/* enum dm_chain_job_type */
	__u8 phase;		/* enum dm_chain_job_phase */
	__u8 flags;		/* DM_CHAIN_JOB_* */
	__u8 hint_len;		/* bytes used in dest_hint */
	__le32 top;		/* table index (0 = bottom) of the top layer */
	__le32 base;		/* table index of the base, or NO_LAYER */
	__le64 cursor;		/* virtual clusters below it are done */
	__le64 bandwidth;	/* bytes per second, 0 = unlimited */
	__le64 bytes_done;
	__le64 bytes_total;
	__u8 top_uuid[DM_CHAIN_UUID_SIZE];	/* zero for none */
	__u8 base_uuid[DM_CHAIN_UUID_SIZE];	/* zero for none or raw */
	__u8 dest_uuid[DM_CHAIN_UUID_SIZE];	/* mirror to a chain layer */
	__u8 dest_hint[DM_CHAIN_JOB_HINT_SIZE];	/* mirror: path, no NUL */
	__u8 pad[DM_CHAIN_JOB_SIZE - 224];
} __packed;

/*
 * Table entry, one __le64 per virtual cluster:
 *   bits 63..62  type: 0 ABSENT, 1 ZERO, 2 MAPPED, 3 invalid
 *   bits 61..48  must be zero
 *   bits 47..0   MAPPED: host cluster number (byte offset / cluster_size),
 *                must lie in the data area; otherwise zero.
 * An all-zero table (a sparse file) is all ABSENT.
 */
#define DM_CHAIN_ENTRY_TYPE_SHIFT	62
#define DM_CHAIN_ENTRY_ABSENT		0ULL
#define DM_CHAIN_ENTRY_ZERO		1ULL
#define DM_CHAIN_ENTRY_MAPPED		2ULL
#define DM_CHAIN_ENTRY_RESERVED_MASK	0x3fff000000000000ULL
#define DM_CHAIN_ENTRY_CLUSTER_MASK	0x0000ffffffffffffULL

static inline __u64 dm_chain_entry_type(__u64 e)
{
	return e >> DM_CHAIN_ENTRY_TYPE_SHIFT;
}

static inline __u64 dm_chain_entry_cluster(__u64 e)
{
	return e & DM_CHAIN_ENTRY_CLUSTER_MASK;
}

static inline __u64 dm_chain_make_entry(__u64 type, __u64 cluster)
{
	return (type << DM_CHAIN_ENTRY_TYPE_SHIFT) |
	       (cluster & DM_CHAIN_ENTRY_CLUSTER_MASK);
}

/*
 * Geometry and identity of a layer in CPU byte order, as unpacked from a
 * valid header.  Sizes are in bytes.
 */
struct dm_chain_layer_info {
	__u8 uuid[DM_CHAIN_UUID_SIZE];
	__u8 backing_uuid[DM_CHAIN_UUID_SIZE];
	__u32 flags;
	__u32 cluster_size;
	__u32 cluster_shift;
	__u32 backing_type;
	__u64 generation;
	__u64 compat_features;
	__u64 virtual_size;
	__u64 nr_clusters;	/* virtual clusters */
	__u64 table_offset;
	__u64 table_size;
	__u64 map_offset;
	__u64 map_size;
	__u64 data_offset;
	__u64 data_end;		/* in clusters, absolute */
	__u64 dev_clusters;	/* device size in clusters, rounded down */
	__u32 hint_len;
	int slot;		/* header slot this came from */
	char backing_hint[DM_CHAIN_HINT_SIZE + 1];
	__u8 job[DM_CHAIN_JOB_SIZE];
};

/* Sanity-check and unpack one header slot; 0 or -errno, message in err. */
int dm_chain_header_unpack(const void *block, __u64 dev_size,
			   struct dm_chain_layer_info *info,
			   char *err, size_t err_len);

/* Choose the current slot from both slots (2 * 4 KiB read from byte 0). */
int dm_chain_header_read(const void *blocks, __u64 dev_size,
			 struct dm_chain_layer_info *info,
			 char *err, size_t err_len);

/* Fill one header slot from info (generation and slot taken from info). */
void dm_chain_header_pack(const struct dm_chain_layer_info *info, void *block);

/* Geometry for a new layer; 0 or -errno with message. */
int dm_chain_geometry(__u64 virtual_size, __u32 cluster_size, __u64 dev_size,
		      struct dm_chain_layer_info *info, char *err,
		      size_t err_len);

/*
 * Validate table entries [first, first + count) of a layer.  used is a
 * bitmap of dev_clusters bits that catches two entries mapping one host
 * cluster (may be NULL to skip that check); *max_cluster is raised to the
 * highest host cluster seen + 1.
 */
int dm_chain_check_entries(const struct dm_chain_layer_info *info,
			   const __le64 *entries, __u64 first, __u64 count,
			   unsigned long *used, __u64 *max_cluster,
			   char *err, size_t err_len);

/*
 * The table map: bit (b % 8) of byte b / 8 is set when table block b holds
 * entries.  A block whose bit is clear reads as all ABSENT.
 */
static inline __u64 dm_chain_table_blocks(const struct dm_chain_layer_info *info)
{
	return info->table_size / DM_CHAIN_BLOCK_SIZE;
}

static inline bool dm_chain_map_test(const __u8 *map, __u64 block)
{
	return map[block >> 3] & (1u << (block & 7));
}

static inline void dm_chain_map_set(__u8 *map, __u64 block)
{
	map[block >> 3] |= 1u << (block & 7);
}

/*
 * Validate the map bytes [first, first + len) of a layer (first in
 * bytes from map_offset): no bit may mark a block past the table.
 */
int dm_chain_check_map(const struct dm_chain_layer_info *info,
		       const __u8 *map, __u64 first, __u64 len,
		       char *err, size_t err_len);

/* Checksum helper supplied by each side (kernel crc32c, userspace table). */
__u32 dm_chain_crc32c(__u32 seed, const void *data, size_t len);

static inline __u32 dm_chain_header_csum(const void *block)
{
	return dm_chain_crc32c(~0u, (const __u8 *)block + 4,
			       DM_CHAIN_BLOCK_SIZE - 4) ^ ~0u;
}

#endif
