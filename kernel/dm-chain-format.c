// SPDX-License-Identifier: GPL-2.0-only
/*
 * Validation and (un)packing of dm-chain layer headers and table entries.
 *
 * This file is compiled into dm-chain.ko and into chainadm, so the kernel
 * and the tool apply exactly the same rules.  Everything read from disk is
 * bounds-checked here with overflow-safe arithmetic before anyone uses it;
 * callers may trust a dm_chain_layer_info that came out of
 * dm_chain_header_read() and entries that passed dm_chain_check_entries().
 *
 * Context: no locks, no allocation, no sleeping; safe anywhere.
 */
#include "dm-chain-format.h"

/* Say why in err and return r. */
#define fail(r, fmt, ...) ({ \
	snprintf(err, err_len, fmt, ##__VA_ARGS__); \
	r; \
})

static bool uuid_is_zero(const __u8 *u)
{
	int i;

	for (i = 0; i < DM_CHAIN_UUID_SIZE; i++)
		if (u[i])
			return false;
	return true;
}

static int check_geometry(const struct dm_chain_layer_info *info,
			  __u64 dev_size, char *err, size_t err_len)
{
	__u64 need, table_end;

	if (!is_power_of_2(info->cluster_size) ||
	    info->cluster_size < DM_CHAIN_MIN_CLUSTER_SIZE ||
	    info->cluster_size > DM_CHAIN_MAX_CLUSTER_SIZE)
		return fail(-EINVAL,
			    "cluster size %u is not a power of two between 4 KiB and 2 MiB",
			    info->cluster_size);
	if (!info->virtual_size || info->virtual_size % DM_CHAIN_BLOCK_SIZE)
		return fail(-EINVAL, "virtual size %llu is not a non-zero multiple of 4096",
			    (unsigned long long)info->virtual_size);
	if (info->nr_clusters > DM_CHAIN_MAX_CLUSTERS)
		return fail(-EINVAL,
			    "virtual size %llu is %llu clusters of %u bytes, more than the %llu a layer may have; use larger clusters",
			    (unsigned long long)info->virtual_size,
			    (unsigned long long)info->nr_clusters,
			    info->cluster_size,
			    (unsigned long long)DM_CHAIN_MAX_CLUSTERS);
	if (info->table_offset != DM_CHAIN_TABLE_OFFSET)
		return fail(-EINVAL, "table offset %llu is not %u",
			    (unsigned long long)info->table_offset,
			    DM_CHAIN_TABLE_OFFSET);
	/* Both sizes are exact: a reader allocates the map whole. */
	need = DIV_ROUND_UP_ULL(info->nr_clusters * 8, DM_CHAIN_BLOCK_SIZE) *
	       DM_CHAIN_BLOCK_SIZE;
	if (info->table_size != need)
		return fail(-EINVAL, "table size %llu is not %llu, for %llu entries",
			    (unsigned long long)info->table_size,
			    (unsigned long long)need,
			    (unsigned long long)info->nr_clusters);
	if (check_add_overflow(info->table_offset, info->table_size, &table_end))
		return fail(-EINVAL, "table size %llu overflows",
			    (unsigned long long)info->table_size);
	if (info->map_offset != table_end)
		return fail(-EINVAL, "table map offset %llu is not the table end %llu",
			    (unsigned long long)info->map_offset,
			    (unsigned long long)table_end);
	need = DIV_ROUND_UP_ULL(dm_chain_table_blocks(info),
				DM_CHAIN_MAP_BITS_PER_BLOCK) * DM_CHAIN_BLOCK_SIZE;
	if (info->map_size != need)
		return fail(-EINVAL, "table map size %llu is not %llu, for %llu table blocks",
			    (unsigned long long)info->map_size,
			    (unsigned long long)need,
			    (unsigned long long)dm_chain_table_blocks(info));
	if (check_add_overflow(info->map_offset, info->map_size, &table_end))
		return fail(-EINVAL, "table map size %llu overflows",
			    (unsigned long long)info->map_size);
	if (info->data_offset < table_end ||
	    info->data_offset % info->cluster_size)
		return fail(-EINVAL,
			    "data offset %llu overlaps the table or its map, or is not cluster aligned",
			    (unsigned long long)info->data_offset);
	if (info->data_offset > dev_size)
		return fail(-EINVAL,
			    "device is truncated: %llu bytes, but the data area starts at byte %llu",
			    (unsigned long long)dev_size,
			    (unsigned long long)info->data_offset);
	return 0;
}

int dm_chain_header_unpack(const void *block, __u64 dev_size,
			   struct dm_chain_layer_info *info,
			   char *err, size_t err_len)
{
	const struct dm_chain_disk_header *h = block;
	__u64 incompat, vs;
	__u32 cs;
	int r;

	if (le64_to_cpu(h->magic) != DM_CHAIN_MAGIC)
		return fail(-EINVAL, "bad magic: not a dm-chain layer");
	if (le32_to_cpu(h->csum) != dm_chain_header_csum(block))
		return fail(-EINVAL, "header checksum mismatch (stored %08x, computed %08x)",
			    le32_to_cpu(h->csum), dm_chain_header_csum(block));
	if (le32_to_cpu(h->version) == 1)
		return fail(-EINVAL,
			    "format version 1 (before the table map) is not read by this build, which reads version %u: format the layer again",
			    DM_CHAIN_VERSION);
	if (le32_to_cpu(h->version) != DM_CHAIN_VERSION)
		return fail(-EINVAL, "unsupported format version %u (this build reads %u)",
			    le32_to_cpu(h->version), DM_CHAIN_VERSION);
	incompat = le64_to_cpu(h->incompat_features);
	if (incompat & ~DM_CHAIN_INCOMPAT_KNOWN)
		return fail(-EINVAL,
			    "unknown incompatible feature bits 0x%llx: use a newer dm-chain",
			    (unsigned long long)(incompat & ~DM_CHAIN_INCOMPAT_KNOWN));
	if (le32_to_cpu(h->flags) & ~DM_CHAIN_FLAGS_KNOWN)
		return fail(-EINVAL, "unknown state flags 0x%x",
			    le32_to_cpu(h->flags) & ~DM_CHAIN_FLAGS_KNOWN);
	if (uuid_is_zero(h->uuid))
		return fail(-EINVAL, "layer UUID is zero");

	memset(info, 0, sizeof(*info));
	memcpy(info->uuid, h->uuid, DM_CHAIN_UUID_SIZE);
	memcpy(info->backing_uuid, h->backing_uuid, DM_CHAIN_UUID_SIZE);
	info->flags = le32_to_cpu(h->flags);
	cs = le32_to_cpu(h->cluster_size);
	vs = le64_to_cpu(h->virtual_size);
	info->cluster_size = cs;
	info->virtual_size = vs;
	info->generation = le64_to_cpu(h->generation);
	info->compat_features = le64_to_cpu(h->compat_features);
	info->table_offset = le64_to_cpu(h->table_offset);
	info->table_size = le64_to_cpu(h->table_size);
	info->map_offset = le64_to_cpu(h->map_offset);
	info->map_size = le64_to_cpu(h->map_size);
	info->data_offset = le64_to_cpu(h->data_offset);
	info->data_end = le64_to_cpu(h->data_end);
	info->backing_type = le32_to_cpu(h->backing_type);
	info->hint_len = le32_to_cpu(h->hint_len);
	if (is_power_of_2(cs)) {
		info->cluster_shift = ilog2(cs);
		info->nr_clusters = (vs >> info->cluster_shift) +
				    !!(vs & (cs - 1));
	}

	r = check_geometry(info, dev_size, err, err_len);
	if (r)
		return r;
	info->dev_clusters = dev_size >> info->cluster_shift;
	if (info->data_end < info->data_offset >> info->cluster_shift ||
	    info->data_end > info->dev_clusters)
		return fail(-EINVAL,
			    "allocation end %llu lies outside the data area (clusters %llu..%llu): device truncated?",
			    (unsigned long long)info->data_end,
			    (unsigned long long)(info->data_offset >> info->cluster_shift),
			    (unsigned long long)info->dev_clusters);

	switch (info->backing_type) {
	case DM_CHAIN_BACKING_CHAIN:
		if (uuid_is_zero(info->backing_uuid))
			return fail(-EINVAL, "backing type is chain but the backing UUID is zero");
		if (!memcmp(info->uuid, info->backing_uuid, DM_CHAIN_UUID_SIZE))
			return fail(-EINVAL, "layer names itself as its backing layer");
		break;
	case DM_CHAIN_BACKING_NONE:
	case DM_CHAIN_BACKING_RAW:
		if (!uuid_is_zero(info->backing_uuid))
			return fail(-EINVAL, "backing UUID set but backing type is %s",
				    info->backing_type ? "raw" : "none");
		break;
	default:
		return fail(-EINVAL, "unknown backing type %u", info->backing_type);
	}
	if (info->hint_len > DM_CHAIN_HINT_SIZE)
		return fail(-EINVAL, "backing hint length %u exceeds %u",
			    info->hint_len, DM_CHAIN_HINT_SIZE);
	memcpy(info->backing_hint, h->backing_hint, info->hint_len);
	info->backing_hint[info->hint_len] = '\0';
	if (strlen(info->backing_hint) != info->hint_len)
		return fail(-EINVAL, "backing hint contains a NUL byte");
	memcpy(info->job, h->job, DM_CHAIN_JOB_SIZE);
	return 0;
}

int dm_chain_header_read(const void *blocks, __u64 dev_size,
			 struct dm_chain_layer_info *info,
			 char *err, size_t err_len)
{
	struct dm_chain_layer_info other;
	char err1[128];
	int r0, r1;

	if (dev_size < DM_CHAIN_TABLE_OFFSET)
		return fail(-EINVAL,
			    "device is truncated: %llu bytes, smaller than the two header slots",
			    (unsigned long long)dev_size);

	r0 = dm_chain_header_unpack(blocks, dev_size, info, err, err_len);
	r1 = dm_chain_header_unpack((const __u8 *)blocks + DM_CHAIN_BLOCK_SIZE,
				    dev_size, &other, err1, sizeof(err1));
	if (r0 && r1) {
		/* Report slot 0's reason; a fresh layer writes slot 0 first. */
		return r0;
	}
	if (r0 || (!r1 && other.generation > info->generation)) {
		*info = other;
		info->slot = 1;
	} else {
		info->slot = 0;
	}
	return 0;
}

void dm_chain_header_pack(const struct dm_chain_layer_info *info, void *block)
{
	struct dm_chain_disk_header *h = block;

	memset(h, 0, sizeof(*h));
	h->flags = cpu_to_le32(info->flags);
	memcpy(h->uuid, info->uuid, DM_CHAIN_UUID_SIZE);
	h->magic = cpu_to_le64(DM_CHAIN_MAGIC);
	h->version = cpu_to_le32(DM_CHAIN_VERSION);
	h->cluster_size = cpu_to_le32(info->cluster_size);
	h->generation = cpu_to_le64(info->generation);
	h->incompat_features = cpu_to_le64(0);
	h->compat_features = cpu_to_le64(info->compat_features);
	h->virtual_size = cpu_to_le64(info->virtual_size);
	h->table_offset = cpu_to_le64(info->table_offset);
	h->table_size = cpu_to_le64(info->table_size);
	h->map_offset = cpu_to_le64(info->map_offset);
	h->map_size = cpu_to_le64(info->map_size);
	h->data_offset = cpu_to_le64(info->data_offset);
	h->data_end = cpu_to_le64(info->data_end);
	h->backing_type = cpu_to_le32(info->backing_type);
	h->hint_len = cpu_to_le32(info->hint_len);
	memcpy(h->backing_uuid, info->backing_uuid, DM_CHAIN_UUID_SIZE);
	memcpy(h->job, info->job, DM_CHAIN_JOB_SIZE);
	memcpy(h->backing_hint, info->backing_hint, info->hint_len);
	h->csum = cpu_to_le32(dm_chain_header_csum(block));
}

int dm_chain_geometry(__u64 virtual_size, __u32 cluster_size, __u64 dev_size,
		      struct dm_chain_layer_info *info, char *err,
		      size_t err_len)
{
	__u64 table;

	info->cluster_size = cluster_size;
	info->virtual_size = virtual_size;
	info->table_offset = DM_CHAIN_TABLE_OFFSET;
	if (!is_power_of_2(cluster_size))
		return fail(-EINVAL, "cluster size %u is not a power of two", cluster_size);
	info->cluster_shift = ilog2(cluster_size);
	info->nr_clusters = (virtual_size >> info->cluster_shift) +
			    !!(virtual_size & (cluster_size - 1));
	table = info->nr_clusters * 8;
	table = (table + DM_CHAIN_BLOCK_SIZE - 1) & ~(__u64)(DM_CHAIN_BLOCK_SIZE - 1);
	info->table_size = table;
	info->map_offset = info->table_offset + table;
	info->map_size = DIV_ROUND_UP_ULL(table / DM_CHAIN_BLOCK_SIZE,
					  DM_CHAIN_MAP_BITS_PER_BLOCK) *
			 DM_CHAIN_BLOCK_SIZE;
	info->data_offset = info->map_offset + info->map_size;
	info->data_offset = (info->data_offset + cluster_size - 1) &
			    ~(__u64)(cluster_size - 1);
	info->data_end = info->data_offset >> info->cluster_shift;
	return check_geometry(info, dev_size, err, err_len);
}

int dm_chain_check_entries(const struct dm_chain_layer_info *info,
			   const __le64 *entries, __u64 first, __u64 count,
			   unsigned long *used, __u64 *max_cluster,
			   char *err, size_t err_len)
{
	__u64 data_start = info->data_offset >> info->cluster_shift;
	__u64 i;

	for (i = 0; i < count; i++) {
		__u64 vc = first + i, e = le64_to_cpu(entries[i]);
		__u64 type = dm_chain_entry_type(e);
		__u64 hc = dm_chain_entry_cluster(e);

		if (!e)
			continue;
		if (vc >= info->nr_clusters)
			return fail(-EINVAL, "table padding entry %llu is not zero",
				    (unsigned long long)vc);
		if (e & DM_CHAIN_ENTRY_RESERVED_MASK)
			return fail(-EINVAL,
				    "entry for cluster %llu has reserved bits set (0x%016llx)",
				    (unsigned long long)vc, (unsigned long long)e);
		if (type == DM_CHAIN_ENTRY_ZERO && !hc)
			continue;
		if (type != DM_CHAIN_ENTRY_MAPPED)
			return fail(-EINVAL, "entry for cluster %llu is malformed (0x%016llx)",
				    (unsigned long long)vc, (unsigned long long)e);
		if (hc < data_start)
			return fail(-EINVAL,
				    "entry for cluster %llu points into metadata (host cluster %llu, data starts at %llu)",
				    (unsigned long long)vc, (unsigned long long)hc,
				    (unsigned long long)data_start);
		if (hc >= info->dev_clusters)
			return fail(-EINVAL,
				    "entry for cluster %llu points beyond the end of the device (host cluster %llu of %llu)",
				    (unsigned long long)vc, (unsigned long long)hc,
				    (unsigned long long)info->dev_clusters);
		if (used && __test_and_set_bit(hc, used))
			return fail(-EINVAL,
				    "entry for cluster %llu maps host cluster %llu, which another entry already maps",
				    (unsigned long long)vc, (unsigned long long)hc);
		if (hc + 1 > *max_cluster)
			*max_cluster = hc + 1;
	}
	return 0;
}

int dm_chain_check_map(const struct dm_chain_layer_info *info,
		       const __u8 *map, __u64 first, __u64 len,
		       char *err, size_t err_len)
{
	__u64 blocks = dm_chain_table_blocks(info), i, b;

	for (i = 0; i < len; i++) {
		if (!map[i])
			continue;
		for (b = (first + i) * 8; b < (first + i + 1) * 8; b++)
			if (b >= blocks && (map[i] & (1u << (b & 7))))
				return fail(-EINVAL,
					    "table map marks block %llu, past the %llu table blocks",
					    (unsigned long long)b,
					    (unsigned long long)blocks);
	}
	return 0;
}
