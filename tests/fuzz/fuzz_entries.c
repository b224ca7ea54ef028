// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_entries: geometry and table-entry validation shared by dm-chain.ko
 * and chainadm (kernel/dm-chain-format.c): dm_chain_geometry() and
 * dm_chain_check_entries().
 *
 * Input (little-endian):
 *   bytes 0..7    virtual size
 *   bytes 8..11   cluster size
 *   bytes 12..15  the device of the entry check: the data area holds
 *                 (bits 0..19) clusters and (bits 20..31) * 512 bytes
 *                 more (modulo the cluster size)
 *   bytes 16..23  device size for the geometry check
 *   bytes 24..27  table index of the first entry below (modulo the table)
 *   bytes 28..29  entries per dm_chain_check_entries() call in a second
 *                 pass (0: none), as the kernel and chainadm read the
 *                 table in chunks
 *   bytes 32..    table entries
 *
 * Besides no crash and no sanitizer report:
 *   - dm_chain_geometry() accepts exactly the geometries the format
 *     allows, computed here apart (128-bit arithmetic), and lays out the
 *     table and data area as dm-chain-format.rst says;
 *   - dm_chain_check_entries() refuses exactly the entries the format
 *     forbids, at the first bad entry, each host cluster marked once in a
 *     bitmap of exactly dev_clusters bits (kernel-sized: ASan catches a
 *     bit set past it); max_cluster is the highest mapped cluster + 1;
 *   - checking in chunks gives the same verdict, message and maximum as
 *     one call; without the bitmap only duplicates go unnoticed;
 *   - dm_chain_check_map() refuses exactly the table map bytes (the same
 *     input bytes, from byte 24's offset) that mark a block past the
 *     table, naming the first one.
 */
#include "fuzz.h"

#define PREFIX		32
/* A larger device would need a bitmap of more than 2 MiB: not here. */
#define MAX_DEV_CLUSTERS	(1ULL << 24)

struct geometry {
	bool ok;
	__u64 nr_clusters, table_size, map_size, data_offset;
};

static unsigned __int128 round_up(unsigned __int128 v, __u64 to)
{
	return (v + to - 1) / to * to;
}

/* What the format allows, apart from dm-chain-format.c. */
static struct geometry model_geometry(__u64 vs, __u32 cs, __u64 dev_size)
{
	struct geometry g = { .ok = false };
	unsigned __int128 table, map, data;

	if (cs < DM_CHAIN_MIN_CLUSTER_SIZE || cs > DM_CHAIN_MAX_CLUSTER_SIZE ||
	    (cs & (cs - 1)) || !vs || vs % 4096)
		return g;
	g.nr_clusters = vs / cs + !!(vs % cs);
	if (g.nr_clusters > (1ULL << 32))	/* at most 2^32 clusters */
		return g;
	table = round_up((unsigned __int128)g.nr_clusters * 8, 4096);
	/* the table map: one bit per table block, whole blocks */
	map = round_up(round_up(table / 4096, 8) / 8, 4096);
	data = round_up(DM_CHAIN_TABLE_OFFSET + table + map, cs);
	if (data > dev_size)
		return g;
	g.table_size = table;
	g.map_size = map;
	g.data_offset = data;
	g.ok = true;
	return g;
}

static void check_geometry(__u64 vs, __u32 cs, __u64 dev_size)
{
	struct geometry want = model_geometry(vs, cs, dev_size);
	struct dm_chain_layer_info info;
	char err[256];
	int r;

	memset(&info, 0, sizeof(info));
	r = dm_chain_geometry(vs, cs, dev_size, &info, err, sizeof(err));
	FUZZ_ASSERT(!r == want.ok,
		    "geometry %llu/%u on %llu bytes: returned %d (%s), the format says %s",
		    (unsigned long long)vs, cs, (unsigned long long)dev_size, r,
		    r ? err : "", want.ok ? "valid" : "invalid");
	if (r)
		return;
	FUZZ_ASSERT(info.nr_clusters == want.nr_clusters &&
		    info.table_size == want.table_size &&
		    info.map_offset == DM_CHAIN_TABLE_OFFSET + want.table_size &&
		    info.map_size == want.map_size &&
		    info.data_offset == want.data_offset &&
		    info.table_offset == DM_CHAIN_TABLE_OFFSET &&
		    info.data_end == want.data_offset / cs &&
		    (1ULL << info.cluster_shift) == cs,
		    "geometry %llu/%u: %llu clusters, table %llu, data at %llu",
		    (unsigned long long)vs, cs,
		    (unsigned long long)info.nr_clusters,
		    (unsigned long long)info.table_size,
		    (unsigned long long)info.data_offset);
}

/*
 * A layer of this geometry on a device of dev_size bytes, as both sides
 * get it: through a packed header and dm_chain_header_unpack().
 */
static int make_layer(__u64 vs, __u32 cs, __u64 dev_size,
		      struct dm_chain_layer_info *info)
{
	static __u8 block[DM_CHAIN_BLOCK_SIZE];
	char err[256];
	int r;

	memset(info, 0, sizeof(*info));
	if (dm_chain_geometry(vs, cs, dev_size, info, err, sizeof(err)))
		return -1;
	memset(info->uuid, 0x5a, DM_CHAIN_UUID_SIZE);
	dm_chain_header_pack(info, block);
	r = dm_chain_header_unpack(block, dev_size, info, err, sizeof(err));
	FUZZ_ASSERT(!r, "a new layer's header does not unpack: %s", err);
	return 0;
}

struct verdict {
	bool ok;
	__u64 bad;		/* the first bad entry's virtual cluster */
	__u64 max_cluster;
};

/* The entry rules of dm-chain-format.rst, apart from the code. */
static struct verdict model_entries(const struct dm_chain_layer_info *info,
				    const __le64 *entries, __u64 first,
				    __u64 count, bool dups)
{
	struct verdict v = { .ok = true };
	__u64 data_start = info->data_offset >> info->cluster_shift, i;
	__u8 *seen = calloc(info->dev_clusters + 1, 1);

	FUZZ_ASSERT(seen, "out of memory");
	for (i = 0; i < count; i++) {
		__u64 e = le64_to_cpu(entries[i]), hc = e & ((1ULL << 48) - 1);
		unsigned int type = e >> 62;

		if (!e)
			continue;
		v.bad = first + i;
		if (first + i >= info->nr_clusters ||
		    (e >> 48 & 0x3fff) || type == 3 || type == 0 ||
		    (type == 1 && hc))
			goto bad;
		if (type == 1)
			continue;
		if (hc < data_start || hc >= info->dev_clusters ||
		    (dups && seen[hc]))
			goto bad;
		seen[hc] = 1;
		if (hc + 1 > v.max_cluster)
			v.max_cluster = hc + 1;
	}
	free(seen);
	return v;
bad:
	v.ok = false;
	free(seen);
	return v;
}

/* Check entries in calls of chunk entries each (count if 0). */
static int check_chunks(const struct dm_chain_layer_info *info,
			const __le64 *entries, __u64 first, __u64 count,
			__u64 chunk, bool dups, __u64 *max_cluster, char *err)
{
	size_t words = (info->dev_clusters + BITS_PER_LONG - 1) / BITS_PER_LONG;
	unsigned long *used = dups ? calloc(words ? words : 1, sizeof(long)) : NULL;
	__u64 off, n;
	int r = 0;

	FUZZ_ASSERT(used || !dups, "out of memory");
	*max_cluster = 0;
	if (!chunk)
		chunk = count;
	for (off = 0; off < count && !r; off += n) {
		n = count - off < chunk ? count - off : chunk;
		r = dm_chain_check_entries(info, entries + off, first + off, n,
					   used, max_cluster, err, 256);
	}
	free(used);
	return r;
}

static void check_table(const struct dm_chain_layer_info *info,
			const uint8_t *data, size_t size, __u64 first_in,
			__u64 chunk)
{
	__u64 total = info->table_size / 8, first = first_in % total;
	__u64 count = (size - PREFIX) / 8, max1, max2, i;
	char err1[256], err2[256], at[32];
	struct verdict want;
	__le64 *entries;
	int r1, r2;

	if (count > total - first)
		count = total - first;
	entries = malloc(count ? count * 8 : 1);
	FUZZ_ASSERT(entries, "out of memory");
	for (i = 0; i < count; i++)
		entries[i] = cpu_to_le64(fuzz_le(data, size, PREFIX + i * 8, 8));

	want = model_entries(info, entries, first, count, true);
	r1 = check_chunks(info, entries, first, count, 0, true, &max1, err1);
	FUZZ_ASSERT(!r1 == want.ok, "entries from %llu: returned %d (%s), the format says %s at %llu",
		    (unsigned long long)first, r1, r1 ? err1 : "",
		    want.ok ? "valid" : "invalid", (unsigned long long)want.bad);
	if (r1) {
		snprintf(at, sizeof(at), " %llu ", (unsigned long long)want.bad);
		FUZZ_ASSERT(r1 == -EINVAL && strstr(err1, at),
			    "entry %llu is the first bad one, but: %s",
			    (unsigned long long)want.bad, err1);
	} else {
		FUZZ_ASSERT(max1 == want.max_cluster, "max_cluster %llu, want %llu",
			    (unsigned long long)max1,
			    (unsigned long long)want.max_cluster);
	}

	if (chunk) {
		r2 = check_chunks(info, entries, first, count, chunk, true,
				  &max2, err2);
		FUZZ_ASSERT(r1 == r2 && (r1 ? !strcmp(err1, err2) : max1 == max2),
			    "in chunks of %llu: %d '%s', in one: %d '%s'",
			    (unsigned long long)chunk, r2, r2 ? err2 : "",
			    r1, r1 ? err1 : "");
	}

	want = model_entries(info, entries, first, count, false);
	r2 = check_chunks(info, entries, first, count, chunk, false, &max2,
			  err2);
	FUZZ_ASSERT(!r2 == want.ok, "without the bitmap: returned %d (%s), the format says %s",
		    r2, r2 ? err2 : "", want.ok ? "valid" : "invalid");
	free(entries);
}

/*
 * The same bytes as a piece of the table map, from byte first: valid
 * exactly when no bit marks a block past the table.
 */
static void check_map(const struct dm_chain_layer_info *info,
		      const uint8_t *data, size_t size, __u64 first_in)
{
	__u64 first = first_in % info->map_size, len = size - PREFIX, b;
	__u64 blocks = info->table_size / 4096, bad = UINT64_MAX;
	char err[256], at[32];
	int r;

	if (len > info->map_size - first)
		len = info->map_size - first;
	for (b = first * 8; b < (first + len) * 8 && bad == UINT64_MAX; b++)
		if (b >= blocks && (data[PREFIX + b / 8 - first] >> (b % 8) & 1))
			bad = b;
	r = dm_chain_check_map(info, data + PREFIX, first, len, err, sizeof(err));
	FUZZ_ASSERT(!r == (bad == UINT64_MAX),
		    "map bytes from %llu: returned %d (%s), the format says %s",
		    (unsigned long long)first, r, r ? err : "",
		    bad == UINT64_MAX ? "valid" : "invalid");
	if (r) {
		snprintf(at, sizeof(at), " %llu,", (unsigned long long)bad);
		FUZZ_ASSERT(strstr(err, at), "block %llu is the first marked past the table, but: %s",
			    (unsigned long long)bad, err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	__u64 vs = fuzz_le(data, size, 0, 8);
	__u32 cs = fuzz_le(data, size, 8, 4);
	__u32 area = fuzz_le(data, size, 12, 4);
	struct dm_chain_layer_info info;
	struct geometry g;
	__u64 dev_size;

	check_geometry(vs, cs, fuzz_le(data, size, 16, 8));

	/* The entry check, on a device just past the metadata. */
	g = model_geometry(vs, cs, UINT64_MAX);
	if (!g.ok || size < PREFIX)
		return 0;
	dev_size = g.data_offset + (__u64)(area & 0xfffff) * cs +
		   (__u64)(area >> 20) * 512 % cs;
	if (dev_size / cs > MAX_DEV_CLUSTERS)
		return 0;
	FUZZ_ASSERT(!make_layer(vs, cs, dev_size, &info),
		    "geometry %llu/%u refused on %llu bytes",
		    (unsigned long long)vs, cs, (unsigned long long)dev_size);
	fuzz_check_info(&info, dev_size);
	check_table(&info, data, size, fuzz_le(data, size, 24, 4),
		    fuzz_le(data, size, 28, 2));
	check_map(&info, data, size, fuzz_le(data, size, 24, 4));
	return 0;
}
