// SPDX-License-Identifier: GPL-2.0-only
/*
 * Helpers of the libFuzzer targets; see fuzz.h.
 */
#include <nmmintrin.h>

#include "fuzz.h"

/* Where FUZZ_ASSERT reports: stderr as it was before -close_fd_mask. */
static int report_fd = 2;

__attribute__((weak)) void fuzz_setup(void)
{
}

/* libFuzzer calls this before it acts on -close_fd_mask. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd = dup(2);

	(void)argc;
	(void)argv;
	if (fd >= 0)
		report_fd = fd;
	fuzz_setup();
	return 0;
}

void fuzz_fail(const char *file, int line, const char *cond,
	       const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(report_fd, "==fuzz== %s:%d: invariant broken: %s: %s\n",
		file, line, cond, msg);
	abort();
}

uint64_t fuzz_le(const uint8_t *data, size_t len, size_t off, size_t bytes)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < bytes; i++)
		if (off + i < len)
			v |= (uint64_t)data[off + i] << (8 * i);
	return v;
}

/*
 * The header checksum with the SSE4.2 crc32 instruction (the same
 * CRC32C, same raw-register convention).  chainadm's table-driven one
 * costs most of a run here; it is linked as chainadm_crc32c() and still
 * checked against this one (fuzz_check_crc32c()), and used where the CPU
 * lacks SSE4.2.
 */
__u32 chainadm_crc32c(__u32 crc, const void *data, size_t len);

__attribute__((target("sse4.2"), no_sanitize("coverage")))
static __u32 crc32c_sse42(__u32 crc, const void *data, size_t len)
{
	const __u8 *p = data;
	uint64_t c = crc, v;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
	}
	for (; len; p++, len--)
		c = _mm_crc32_u8(c, *p);
	return c;
}

static bool have_sse42(void)
{
	static int have = -1;

	if (have < 0)
		have = __builtin_cpu_supports("sse4.2");
	return have;
}

__u32 dm_chain_crc32c(__u32 crc, const void *data, size_t len)
{
	return have_sse42() ? crc32c_sse42(crc, data, len) :
			      chainadm_crc32c(crc, data, len);
}

void fuzz_check_crc32c(const void *data, size_t len)
{
	__u32 want = chainadm_crc32c(~0u, data, len);

	FUZZ_ASSERT(dm_chain_crc32c(~0u, data, len) == want,
		    "crc32c of %zu bytes: chainadm's %08x, the CPU's %08x",
		    len, want, dm_chain_crc32c(~0u, data, len));
}

void fuzz_fix_csum(void *slot)
{
	struct dm_chain_disk_header *h = slot;

	h->csum = cpu_to_le32(dm_chain_header_csum(slot));
}

bool fuzz_csum_wrong(const void *slot)
{
	const struct dm_chain_disk_header *h = slot;

	return le64_to_cpu(h->magic) == DM_CHAIN_MAGIC &&
	       le32_to_cpu(h->csum) != dm_chain_header_csum(slot);
}

static bool zero_uuid(const __u8 *u)
{
	static const __u8 zero[DM_CHAIN_UUID_SIZE];

	return !memcmp(u, zero, sizeof(zero));
}

void fuzz_check_info(const struct dm_chain_layer_info *info, __u64 dev_size)
{
	unsigned __int128 table_end, need;
	__u64 cs = info->cluster_size, data_start;

	FUZZ_ASSERT(cs >= DM_CHAIN_MIN_CLUSTER_SIZE &&
		    cs <= DM_CHAIN_MAX_CLUSTER_SIZE && !(cs & (cs - 1)),
		    "cluster size %llu", (unsigned long long)cs);
	FUZZ_ASSERT((1ULL << info->cluster_shift) == cs,
		    "cluster shift %u for size %llu", info->cluster_shift,
		    (unsigned long long)cs);
	FUZZ_ASSERT(info->virtual_size && !(info->virtual_size % 4096),
		    "virtual size %llu", (unsigned long long)info->virtual_size);
	FUZZ_ASSERT(info->nr_clusters == info->virtual_size / cs +
				       !!(info->virtual_size % cs),
		    "%llu clusters for virtual size %llu",
		    (unsigned long long)info->nr_clusters,
		    (unsigned long long)info->virtual_size);
	FUZZ_ASSERT(info->table_offset == DM_CHAIN_TABLE_OFFSET,
		    "table offset %llu", (unsigned long long)info->table_offset);
	need = (unsigned __int128)info->nr_clusters * 8;
	FUZZ_ASSERT(!(info->table_size % 4096) && info->table_size >= need,
		    "table size %llu", (unsigned long long)info->table_size);
	table_end = (unsigned __int128)info->table_offset + info->table_size;
	FUZZ_ASSERT(info->map_offset == table_end &&
		    info->map_size * 8 >= info->table_size / 4096 &&
		    !(info->map_size % 4096),
		    "table map %llu+%llu", (unsigned long long)info->map_offset,
		    (unsigned long long)info->map_size);
	table_end += info->map_size;
	FUZZ_ASSERT(info->data_offset >= table_end && !(info->data_offset % cs),
		    "data offset %llu", (unsigned long long)info->data_offset);
	FUZZ_ASSERT(info->data_offset <= dev_size,
		    "data offset %llu past the device (%llu bytes)",
		    (unsigned long long)info->data_offset,
		    (unsigned long long)dev_size);
	FUZZ_ASSERT(info->dev_clusters == dev_size / cs,
		    "%llu device clusters of %llu bytes",
		    (unsigned long long)info->dev_clusters,
		    (unsigned long long)dev_size);
	data_start = info->data_offset / cs;
	FUZZ_ASSERT(info->data_end >= data_start &&
		    info->data_end <= info->dev_clusters,
		    "data end %llu outside %llu..%llu",
		    (unsigned long long)info->data_end,
		    (unsigned long long)data_start,
		    (unsigned long long)info->dev_clusters);
	FUZZ_ASSERT(!(info->flags & ~DM_CHAIN_FLAGS_KNOWN), "flags 0x%x",
		    info->flags);
	FUZZ_ASSERT(!zero_uuid(info->uuid), "zero layer UUID");
	switch (info->backing_type) {
	case DM_CHAIN_BACKING_CHAIN:
		FUZZ_ASSERT(!zero_uuid(info->backing_uuid) &&
			    memcmp(info->uuid, info->backing_uuid,
				   DM_CHAIN_UUID_SIZE),
			    "chain backing UUID zero or its own");
		break;
	case DM_CHAIN_BACKING_NONE:
	case DM_CHAIN_BACKING_RAW:
		FUZZ_ASSERT(zero_uuid(info->backing_uuid),
			    "backing UUID set for backing type %u",
			    info->backing_type);
		break;
	default:
		FUZZ_ASSERT(0, "backing type %u", info->backing_type);
	}
	FUZZ_ASSERT(info->hint_len <= DM_CHAIN_HINT_SIZE &&
		    strlen(info->backing_hint) == info->hint_len,
		    "hint length %u, string length %zu", info->hint_len,
		    strnlen(info->backing_hint, sizeof(info->backing_hint)));
	FUZZ_ASSERT(info->slot == 0 || info->slot == 1, "slot %d", info->slot);
}
