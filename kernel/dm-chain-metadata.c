// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-chain metadata.
 *
 * Data model.  Every chain layer holds a header (two slots), a table with
 * one entry per virtual cluster (ABSENT, ZERO or MAPPED to a host cluster of
 * that layer), a map of the table blocks that hold entries, and a data area
 * allocated append-only.  At open we read every layer's marked table
 * blocks once, bottom-up, and fold them into one in-memory index that
 * names, for every virtual cluster, the newest layer that holds it and where.
 * A read therefore costs one directory slot and one leaf entry whatever the
 * depth, and the read path never touches metadata on disk.  Only the active
 * (top) layer changes; its table is not kept separately: an entry of the
 * active layer is derived from the index (the index names the active layer,
 * or it does not, in which case the active layer's entry is ABSENT).
 *
 * The index follows the data, not the virtual size.  A directory holds one
 * slot per leaf of 2^leaf_shift virtual clusters (at most 64 KiB of slots
 * per TiB of virtual size).  A slot is zero when the whole leaf shows the
 * background (the raw base, or nothing), an extent when the whole leaf shows
 * one layer's ZERO or one layer's consecutive host clusters (what a copy or
 * a pull leaves), and otherwise points to a leaf: sparse (sorted pairs of
 * offset and entry, the background elsewhere), made dense (one entry per
 * cluster) when a new pair would need a copy and the leaf would hold half
 * its span.  An entry changes in place; a leaf is made, or a sparse one
 * gains a pair, only in process context (dm_chain_prepare(), before
 * anything that may publish a mapping there), so publishing never
 * allocates.  The active layer's dirty table
 * blocks are marked in the leaf that holds them.  The free map covers the
 * data area up to data_end only.
 *
 * Crash argument.  A change to the active layer is recorded in the index
 * (a mapping only after the data it points to was written) and marks its
 * table block dirty; it reaches the disk in a commit, in rounds of at most
 * TABLE_IO_BLOCKS blocks:
 *
 *   1. copy the dirty table blocks from the index, then flush the active
 *      layer's device: the data of every cluster the copies point to
 *      completed before the copy, so it is on disk before any entry
 *      pointing to it;
 *   2. write the copies in place (a mapping published after the copy
 *      waits for the next commit, whose flush covers its data);
 *   2b. for a table block the layer's table map may not mark yet, flush
 *      (the whole block is now durable), then set its bit in the map
 *      (read, modify and write the map block).  A reader reads only the
 *      marked blocks, so activation costs what the layers hold, and an
 *      unmarked block may hold anything (an LV's old content, entries of
 *      a commit whose map write was lost): it is never read, and it is
 *      written whole before it is marked.  Bits are never cleared;
 *   3. write the header, generation g + 1, into slot (g + 1) mod 2, with
 *      PREFLUSH|FUA, so the table blocks are durable before it.  The
 *      generation in memory moves only when that write succeeded: a
 *      failed or torn write, and the needs-check write that follows it,
 *      go to the slot not holding the current header, never over it.
 *
 * A crash before step 2 leaves the old table: only unflushed writes are
 * lost.  A crash after step 2 but before 2b's map write leaves new blocks
 * unmarked: their entries are lost with the header they belonged to.  A
 * crash in step 2 leaves each 8-byte entry of a marked block either old or
 * new (sectors are written atomically) and every new entry points at data that
 * was flushed in step 1.  A host cluster freed by a discard is handed out
 * again only after the commit that stopped pointing at it is complete and
 * every I/O sent to it before the free has completed (the target's
 * epochs, see dm_chain_release_cluster()), so an entry on disk never
 * points at a host cluster that holds another virtual cluster's data, and
 * no virtual sector can show another sector's data.  The allocation end
 * in the header is only a hint: open takes the larger of it and the
 * highest mapped host cluster + 1, so entries written in step 2 of a
 * commit whose header never landed stay valid; host clusters below it
 * that no entry maps are free.  A torn header write fails its checksum and
 * the other slot is used.
 *
 * A commit asked for by a FLUSH flushes the device even when nothing
 * changed: writes to clusters the active layer already holds go to the
 * device in place and need no metadata, only the flush.
 */
#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/crc32c.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/sched/mm.h>

#include "dm-chain-metadata.h"

#define DM_MSG_PREFIX "chain"

/* Table blocks read per I/O at open, and copied per round at commit. */
#define TABLE_IO_BLOCKS		256
/*
 * A leaf spans 2^leaf_shift clusters: LEAF_SLOTS_SHIFT slots per TiB of
 * virtual size (2^13 slots, 64 KiB), and always whole table blocks.
 */
#define LEAF_SLOTS_SHIFT	13
#define LEAF_MIN_SHIFT		9	/* DM_CHAIN_ENTRIES_PER_BLOCK */
/* Free map bits added at least when data_end reaches its end. */
#define FREE_MAP_STEP		4096
/* The most host clusters a layer may have: a 1 GiB check bitmap */
#define FREE_MAP_MAX_BITS	BIT_ULL(33)

/*
 * A directory slot that is an extent: bit 0 set, bits 2..1 the kind,
 * bits 10..3 the layer, bits 63..11 the host cluster of the leaf's first
 * cluster (MAPPED).  A leaf pointer is at least 8-byte aligned.
 */
#define EXTENT_TAG		1ULL
#define EXTENT_KIND_SHIFT	1
#define EXTENT_LAYER_SHIFT	3
#define EXTENT_HOST_SHIFT	11
/* Runs of neighbouring dirty blocks per commit round. */
#define TABLE_RUNS		32

struct chain_layer {
	struct block_device *bdev;
	bool raw;
	struct dm_chain_layer_info info;
};

struct dm_chain_metadata {
	unsigned int nr_layers;
	unsigned int top;		/* index of the active layer */
	struct chain_layer *layers;
	u64 virtual_size;		/* in bytes */
	u64 nr_clusters;
	unsigned int cluster_shift;	/* in bytes */
	struct dm_io_client *io_client;

	/*
	 * Protects the directory slots and leaf entries of the active layer,
	 * the dirty bits, data_end, dev_clusters, the free map and
	 * change_seq.  Slots and entries are read without it (aligned u64s,
	 * READ_ONCE against WRITE_ONCE and smp_store_release here).
	 */
	spinlock_t lock;
	u64 *dir;			/* one slot per leaf */
	u64 nr_slots;
	unsigned int leaf_shift;	/* clusters per leaf, log2 */
	u64 background;			/* what an empty slot shows */
	u64 nr_table_blocks;
	u8 *top_map;			/* the active layer's map, at open */
	u64 data_end;			/* first never-allocated host cluster */
	u64 dev_clusters;		/* active layer capacity */
	unsigned long *free;		/* free host clusters below data_end */
	u64 free_bits;			/* size of the free bitmap */
	struct mutex grow_lock;		/* one free map growth at a time */
	u64 nr_free;
	u64 free_cursor;		/* where the next search starts */
	u64 change_seq;			/* bumped by every change */

	/* Serialises commits; protects the active layer's info and buf. */
	struct mutex commit_lock;
	u64 committed_seq;		/* change_seq of the last commit */
	void *buf;			/* TABLE_IO_BLOCKS blocks */
	void *map_buf;			/* one table map block */
	struct {
		u64 block;		/* first table block of the run */
		unsigned int first;	/* its place in buf, in blocks */
		unsigned int count;
	} runs[TABLE_RUNS];		/* what buf holds at commit */

	enum chain_metadata_mode mode;	/* only gets worse; see _failed() */
	bool stale;			/* a reload failed: build the index again */
	bool needs_check;
	/* Fixed at open. */
	bool raw_view;			/* dm_chain_raw_view_open() */
	bool copy_dest;			/* DM_CHAIN_OPEN_COPY_DEST */
};

__u32 dm_chain_crc32c(__u32 seed, const void *data, size_t len)
{
	return crc32c(seed, data, len);
}

static int chain_io(struct dm_chain_metadata *cmd, struct block_device *bdev,
		    blk_opf_t opf, u64 offset, void *buf, size_t len)
{
	struct dm_io_region where = {
		.bdev = bdev,
		.sector = offset >> SECTOR_SHIFT,
		.count = len >> SECTOR_SHIFT,
	};
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = is_vmalloc_addr(buf) ? DM_IO_VMA : DM_IO_KMEM,
		.mem.ptr.addr = buf,
		.client = cmd->io_client,
	};

	return dm_io(&req, 1, &where, NULL, IOPRIO_DEFAULT);
}

static int flush_device(struct dm_chain_metadata *cmd,
			struct block_device *bdev)
{
	struct dm_io_region where = { .bdev = bdev };
	struct dm_io_request req = {
		.bi_opf = REQ_OP_WRITE | REQ_PREFLUSH | REQ_SYNC,
		.mem.type = DM_IO_KMEM,
		.mem.ptr.addr = NULL,
		.client = cmd->io_client,
	};

	return dm_io(&req, 1, &where, NULL, IOPRIO_DEFAULT);
}

static int read_layer_header(struct dm_chain_metadata *cmd, unsigned int l,
			     char *err, size_t err_len)
{
	struct chain_layer *layer = &cmd->layers[l];
	u64 dev_size = bdev_nr_bytes(layer->bdev);
	char why[160];
	int r;

	if (dev_size < DM_CHAIN_TABLE_OFFSET) {
		snprintf(err, err_len, "Layer %u is truncated: %llu bytes, too small for a header",
			 l, dev_size);
		return -EINVAL;
	}
	r = chain_io(cmd, layer->bdev, REQ_OP_READ, 0, cmd->buf,
		     DM_CHAIN_TABLE_OFFSET);
	if (r) {
		snprintf(err, err_len, "Layer %u: reading the header failed (%d)", l, r);
		return r;
	}
	r = dm_chain_header_read(cmd->buf, dev_size, &layer->info,
				 why, sizeof(why));
	if (r)
		snprintf(err, err_len, "Layer %u: %s", l, why);
	return r;
}

static int check_link(struct dm_chain_metadata *cmd, unsigned int l,
		      char *err, size_t err_len)
{
	const struct dm_chain_layer_info *info = &cmd->layers[l].info;
	const struct chain_layer *below = l ? &cmd->layers[l - 1] : NULL;
	static const char * const names[] = { "none", "raw", "chain" };
	u32 want = !below ? DM_CHAIN_BACKING_NONE :
		   below->raw ? DM_CHAIN_BACKING_RAW : DM_CHAIN_BACKING_CHAIN;

	if (info->flags & DM_CHAIN_FLAG_INVALIDATED) {
		snprintf(err, err_len,
			 "Layer %u was invalidated by a commit into a lower layer; drop it from the chain",
			 l);
		return -EINVAL;
	}
	if ((info->flags & DM_CHAIN_FLAG_COPY_DEST) &&
	    !(cmd->copy_dest && l == cmd->top)) {
		snprintf(err, err_len,
			 "Layer %u is the unfinished destination of a copy: copy into it again (chainadm copy --reuse-external) or format it anew",
			 l);
		return -EINVAL;
	}
	if (info->flags & DM_CHAIN_FLAG_NEEDS_CHECK) {
		snprintf(err, err_len, "Layer %u is marked needs-check; run chainadm check on it",
			 l);
		return -EINVAL;
	}
	if (info->backing_type != want) {
		snprintf(err, err_len,
			 "Layer %u expects backing type %s below it, but the table gives %s",
			 l, names[info->backing_type], names[want]);
		return -EINVAL;
	}
	if (want == DM_CHAIN_BACKING_CHAIN &&
	    memcmp(info->backing_uuid, below->info.uuid, DM_CHAIN_UUID_SIZE)) {
		snprintf(err, err_len,
			 "Layer %u backing UUID %pUb does not match layer %u UUID %pUb",
			 l, info->backing_uuid, l - 1, below->info.uuid);
		return -EINVAL;
	}
	if (info->virtual_size != cmd->virtual_size) {
		snprintf(err, err_len,
			 "Layer %u virtual size %llu does not match the target length %llu",
			 l, info->virtual_size, cmd->virtual_size);
		return -EINVAL;
	}
	return 0;
}

/* A backing UUID naming a layer above: the chain loops back on itself. */
static int check_cycle(struct dm_chain_metadata *cmd, unsigned int l,
		       char *err, size_t err_len)
{
	const struct dm_chain_layer_info *info = &cmd->layers[l].info;
	unsigned int m;

	if (info->backing_type != DM_CHAIN_BACKING_CHAIN)
		return 0;
	for (m = l + 1; m < cmd->nr_layers; m++) {
		if (!memcmp(info->backing_uuid, cmd->layers[m].info.uuid,
			    DM_CHAIN_UUID_SIZE)) {
			snprintf(err, err_len,
				 "Layer %u names layer %u above it as its backing layer: a cycle",
				 l, m);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_layers(struct dm_chain_metadata *cmd, char *err,
			size_t err_len)
{
	unsigned int l, m, first = cmd->layers[0].raw ? 1 : 0;
	int r;

	if (cmd->layers[0].raw &&
	    bdev_nr_bytes(cmd->layers[0].bdev) < cmd->virtual_size) {
		snprintf(err, err_len, "Raw base is truncated: %llu bytes, virtual size is %llu",
			 bdev_nr_bytes(cmd->layers[0].bdev), cmd->virtual_size);
		return -EINVAL;
	}
	for (l = first; l < cmd->nr_layers; l++) {
		r = read_layer_header(cmd, l, err, err_len);
		if (r)
			return r;
		for (m = first; m < l; m++) {
			if (!memcmp(cmd->layers[m].info.uuid,
				    cmd->layers[l].info.uuid, DM_CHAIN_UUID_SIZE)) {
				snprintf(err, err_len,
					 "Layer %u has the same UUID as layer %u: a layer cannot appear twice",
					 l, m);
				return -EINVAL;
			}
		}
		if (l > first && cmd->layers[l].info.cluster_size !=
				 cmd->layers[first].info.cluster_size) {
			snprintf(err, err_len,
				 "Layer %u cluster size %u does not match layer %u cluster size %u",
				 l, cmd->layers[l].info.cluster_size, first,
				 cmd->layers[first].info.cluster_size);
			return -EINVAL;
		}
	}
	/* Links only once every header is read: a cycle names a later one. */
	for (l = first; l < cmd->nr_layers; l++) {
		r = check_cycle(cmd, l, err, err_len);
		if (!r)
			r = check_link(cmd, l, err, err_len);
		if (r)
			return r;
	}
	return 0;
}

/* ---- The index ---- */

/*
 * A leaf: how it shows its span of clusters, then two bitmaps with one
 * bit per table block: dirty (changed since the last commit) and marked
 * (set in the table map on disk), in separate words, both changed under
 * cmd->lock.
 *
 * Dense (nr == LEAF_DENSE): dense[] holds an entry for every cluster of
 * the span (16 KiB at 64 KiB clusters: a power of two, so its pages are
 * all used).  Entries change in place.
 *
 * Sparse: nr pairs, room for cap, each an offset in the leaf and an entry
 * packed in one u64 (make_pair()), sorted by offset: the clusters the leaf
 * may show other than the background; every other cluster shows the
 * background.  An entry changes in place.  dm_chain_prepare() adds a pair
 * in place when its offset is the highest and there is room (a reader
 * sees nr grow only once the pair is written), otherwise in a copy that
 * takes the leaf's place in the directory, the old leaf freed after an
 * RCU grace period: lookups run under rcu_read_lock().  A leaf whose copy
 * would hold half its span in pairs is made dense instead: a pair costs 8
 * bytes and at most as much again in room, a dense entry 8 bytes for every
 * cluster.  (Appends into the room a copy was given may take a sparse
 * leaf past half its span: it then costs about what a dense one would.)
 */
struct chain_leaf {
	struct rcu_head rcu;
	u64 *dense;
	u32 nr;
	u32 cap;
	u64 pairs[];
};

#define LEAF_DENSE		U32_MAX
/* A pair: bits 63..48 the offset, 47..40 layer, 39..38 kind, 37..0 host. */
#define PAIR_OFF_SHIFT		48
#define PAIR_LAYER_SHIFT	40
#define PAIR_KIND_SHIFT		38
#define PAIR_HOST_MASK		(BIT_ULL(PAIR_KIND_SHIFT) - 1)

static u64 leaf_span(struct dm_chain_metadata *cmd)
{
	return 1ULL << cmd->leaf_shift;
}

static unsigned int leaf_bitmap_longs(struct dm_chain_metadata *cmd)
{
	return BITS_TO_LONGS(leaf_span(cmd) >> LEAF_MIN_SHIFT);
}

static bool leaf_dense(const struct chain_leaf *leaf)
{
	return leaf->nr == LEAF_DENSE;
}

static unsigned long *leaf_dirty(struct dm_chain_metadata *cmd,
				 struct chain_leaf *leaf)
{
	return (unsigned long *)(leaf->pairs + leaf->cap);
}

static unsigned long *leaf_marked(struct dm_chain_metadata *cmd,
				  struct chain_leaf *leaf)
{
	return leaf_dirty(cmd, leaf) + leaf_bitmap_longs(cmd);
}

static struct chain_leaf *slot_leaf(u64 slot)
{
	return slot && !(slot & EXTENT_TAG) ?
	       (struct chain_leaf *)(uintptr_t)slot : NULL;
}

/* Host clusters are below FREE_MAP_MAX_BITS, offsets below the span. */
static u64 make_pair(u64 off, u64 e)
{
	return (off << PAIR_OFF_SHIFT) |
	       ((u64)chain_entry_layer(e) << PAIR_LAYER_SHIFT) |
	       ((u64)chain_entry_kind(e) << PAIR_KIND_SHIFT) |
	       chain_entry_host(e);
}

static u64 pair_off(u64 p)
{
	return p >> PAIR_OFF_SHIFT;
}

static u64 pair_entry(u64 p)
{
	return chain_entry((p >> PAIR_LAYER_SHIFT) & 0xff,
			   (p >> PAIR_KIND_SHIFT) & 3, p & PAIR_HOST_MASK);
}

/* The index of the first of nr pairs at or past off. */
static u32 pair_find(const struct chain_leaf *leaf, u32 nr, u64 off)
{
	u32 lo = 0, hi = nr, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (pair_off(READ_ONCE(leaf->pairs[mid])) < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pair for off among the first nr of a sparse leaf, or NULL. */
static u64 *pair_at(struct chain_leaf *leaf, u32 nr, u64 off)
{
	u32 i = pair_find(leaf, nr, off);

	return i < nr && pair_off(READ_ONCE(leaf->pairs[i])) == off ?
	       &leaf->pairs[i] : NULL;
}

/* What leaf shows at off.  Under rcu_read_lock() or cmd->lock. */
static u64 leaf_entry(struct dm_chain_metadata *cmd, struct chain_leaf *leaf,
		      u64 off)
{
	/* Pairs with smp_store_release() in __leaf_want(). */
	u32 nr = smp_load_acquire(&leaf->nr);
	u64 *p;

	if (nr == LEAF_DENSE)
		return READ_ONCE(leaf->dense[off]);
	p = pair_at(leaf, nr, off);
	return p ? pair_entry(READ_ONCE(*p)) : cmd->background;
}

static u64 make_extent(u64 e)
{
	return (chain_entry_host(e) << EXTENT_HOST_SHIFT) |
	       ((u64)chain_entry_layer(e) << EXTENT_LAYER_SHIFT) |
	       ((u64)chain_entry_kind(e) << EXTENT_KIND_SHIFT) | EXTENT_TAG;
}

/* Entry off of a leaf whose slot is not a leaf pointer. */
static u64 slot_entry(struct dm_chain_metadata *cmd, u64 slot, u64 off)
{
	enum chain_kind kind;

	if (!slot)
		return cmd->background;
	kind = (slot >> EXTENT_KIND_SHIFT) & 3;
	return chain_entry((slot >> EXTENT_LAYER_SHIFT) & 0xff, kind,
			   kind == CHAIN_MAPPED ?
			   (slot >> EXTENT_HOST_SHIFT) + off : 0);
}

/* Expect 2^leaf_shift clusters per leaf, as LEAF_SLOTS_SHIFT says. */
static void set_leaf_shift(struct dm_chain_metadata *cmd)
{
	int shift = 40 - LEAF_SLOTS_SHIFT - (int)cmd->cluster_shift;

	BUILD_BUG_ON(40 - LEAF_SLOTS_SHIFT - 12 > 64 - PAIR_OFF_SHIFT);
	BUILD_BUG_ON(PAIR_HOST_MASK + 1 < FREE_MAP_MAX_BITS);
	cmd->leaf_shift = max(shift, LEAF_MIN_SHIFT);
	cmd->nr_slots = DIV_ROUND_UP_ULL(cmd->nr_clusters, leaf_span(cmd));
}

static void leaf_free(struct chain_leaf *leaf)
{
	if (leaf) {
		kvfree(leaf->dense);
		kvfree(leaf);
	}
}

/*
 * A sparse leaf with room for want pairs (and for as many more as its
 * allocation holds), or a dense one (want == LEAF_DENSE) showing what
 * slot value from shows, the background if from is a leaf.  No bit set.
 * May sleep.
 */
static struct chain_leaf *leaf_alloc(struct dm_chain_metadata *cmd,
				     u32 want, u64 from)
{
	size_t bits = 2 * leaf_bitmap_longs(cmd) * sizeof(long);
	struct chain_leaf *leaf;
	u32 cap = 0;
	u64 j;

	if (want != LEAF_DENSE)
		cap = (kmalloc_size_roundup(struct_size(leaf, pairs, want) + bits) -
		       bits - sizeof(*leaf)) / sizeof(u64);
	leaf = kvmalloc(struct_size(leaf, pairs, cap) + bits, GFP_KERNEL);
	if (!leaf)
		return NULL;
	leaf->dense = NULL;
	leaf->nr = want == LEAF_DENSE ? LEAF_DENSE : 0;
	leaf->cap = cap;
	bitmap_zero(leaf_dirty(cmd, leaf), 2 * leaf_bitmap_longs(cmd) * BITS_PER_LONG);
	if (want != LEAF_DENSE)
		return leaf;
	leaf->dense = kvmalloc_array(leaf_span(cmd), sizeof(u64), GFP_KERNEL);
	if (!leaf->dense) {
		kvfree(leaf);
		return NULL;
	}
	if (slot_leaf(from))
		from = 0;
	for (j = 0; j < leaf_span(cmd); j++)
		leaf->dense[j] = slot_entry(cmd, from, j);
	return leaf;
}

/* Put the pairs of sparse leaf old into dense leaf new. */
static void scatter_pairs(struct chain_leaf *new, const struct chain_leaf *old)
{
	u32 k;

	for (k = 0; k < old->nr; k++)
		new->dense[pair_off(old->pairs[k])] = pair_entry(old->pairs[k]);
}

/*
 * Where leaf keeps the entry at off: its dense entry or its pair; NULL
 * if it has no pair for off.  Caller holds cmd->lock.
 */
static u64 *__leaf_find(struct chain_leaf *leaf, u64 off)
{
	return leaf_dense(leaf) ? &leaf->dense[off] :
	       pair_at(leaf, leaf->nr, off);
}

/*
 * 0 if the entry at off of the leaf slot shows can change in place now:
 * the leaf is dense or has off's pair, or the pair was just added at the
 * end.  Else what leaf_alloc() must make.  Caller holds cmd->lock.
 */
static u32 __leaf_want(struct dm_chain_metadata *cmd, u64 slot, u64 off)
{
	struct chain_leaf *leaf = slot_leaf(slot);
	u32 nr;

	if (!slot)
		return 1;
	if (!leaf)
		return LEAF_DENSE;	/* an extent */
	if (__leaf_find(leaf, off))
		return 0;
	nr = leaf->nr;
	if (nr < leaf->cap && (!nr || pair_off(leaf->pairs[nr - 1]) < off)) {
		leaf->pairs[nr] = make_pair(off, cmd->background);
		/* Pairs with smp_load_acquire() in leaf_entry(). */
		smp_store_release(&leaf->nr, nr + 1);
		return 0;
	}
	return nr + 1 >= leaf_span(cmd) / 2 ? LEAF_DENSE : nr + 1;
}

/*
 * Put new, made by leaf_alloc(cmd, want, from), in directory slot i,
 * which holds slot, showing what slot shows, with a pair for off if
 * sparse.  False if new does not fit what slot is now.  Readers see no
 * change.  Caller holds cmd->lock.
 */
static bool __leaf_publish(struct dm_chain_metadata *cmd, u64 i, u64 slot,
			   struct chain_leaf *new, u64 from, u32 want, u64 off)
{
	struct chain_leaf *old = slot_leaf(slot);
	u32 j;

	if (want == LEAF_DENSE) {
		/* Filled from an extent, or with the background. */
		if (!leaf_dense(new) ||
		    (old ? 0 : slot) != (slot_leaf(from) ? 0 : from))
			return false;
		if (old)
			scatter_pairs(new, old);
	} else {
		if (leaf_dense(new) || new->cap < want)
			return false;
		j = old ? pair_find(old, old->nr, off) : 0;
		if (old) {
			memcpy(new->pairs, old->pairs, j * sizeof(u64));
			memcpy(new->pairs + j + 1, old->pairs + j,
			       (old->nr - j) * sizeof(u64));
		}
		new->pairs[j] = make_pair(off, cmd->background);
		new->nr = old ? old->nr + 1 : 1;
	}
	if (old)
		bitmap_copy(leaf_dirty(cmd, new), leaf_dirty(cmd, old),
			    2 * leaf_bitmap_longs(cmd) * BITS_PER_LONG);
	/* Pairs with the address dependency in dm_chain_lookup(). */
	smp_store_release(&cmd->dir[i], (u64)(uintptr_t)new);
	return true;
}

/*
 * Let vcluster's entry change in place: make its slot a leaf, and give a
 * sparse leaf a pair for it, showing what it shows now.  Readers see no
 * change.  Process context, may sleep; allocates as GFP_NOIO.
 */
int dm_chain_prepare(struct dm_chain_metadata *cmd, u64 vcluster)
{
	u64 i = vcluster >> cmd->leaf_shift, off = vcluster & (leaf_span(cmd) - 1);
	struct chain_leaf *leaf, *new = NULL;
	u64 slot, from = 0;
	unsigned int noio;
	bool done;
	u32 want;

	might_sleep();
	/* Pairs are never removed and dense leaves never replaced. */
	rcu_read_lock();
	leaf = slot_leaf(READ_ONCE(cmd->dir[i]));
	done = leaf && leaf_dense(leaf);
	if (leaf && !done) {
		/* Pairs with smp_store_release() in __leaf_want(). */
		want = smp_load_acquire(&leaf->nr);
		done = pair_at(leaf, want, off);
	}
	rcu_read_unlock();
	if (done)
		return 0;
	for (;;) {
		spin_lock_irq(&cmd->lock);
		slot = cmd->dir[i];
		want = __leaf_want(cmd, slot, off);
		done = !want ||
		       (new && __leaf_publish(cmd, i, slot, new, from, want, off));
		spin_unlock_irq(&cmd->lock);
		if (done)
			break;
		leaf_free(new);
		from = slot;
		noio = memalloc_noio_save();
		new = leaf_alloc(cmd, want, from);
		memalloc_noio_restore(noio);
		if (!new)
			return -ENOMEM;
	}
	if (!want)
		leaf_free(new);
	else if (slot_leaf(slot))
		/* Only a sparse leaf is replaced; lookups may still read it. */
		kvfree_rcu(slot_leaf(slot), rcu);
	return 0;
}

/* Free every leaf and empty the directory.  Nothing may look it up. */
static void clear_index(struct dm_chain_metadata *cmd)
{
	u64 i;

	for (i = 0; i < cmd->nr_slots; i++) {
		leaf_free(slot_leaf(cmd->dir[i]));
		cmd->dir[i] = 0;
	}
}

/* A table entry of layer l as an index entry, or 0 if the layer lacks it. */
static u64 held_entry(unsigned int l, __le64 disk)
{
	u64 e = le64_to_cpu(disk);

	switch (dm_chain_entry_type(e)) {
	case DM_CHAIN_ENTRY_MAPPED:
		return chain_entry(l, CHAIN_MAPPED, dm_chain_entry_cluster(e));
	case DM_CHAIN_ENTRY_ZERO:
		return chain_entry(l, CHAIN_ZERO, 0);
	default:
		return 0;
	}
}

/*
 * Fold n entries of layer l from cluster vc on, all in one leaf, into the
 * index at open: the leaf is made again with the union of what it held
 * and what layer l holds there, the new entries winning.  Linear in both.
 */
static int fold_leaf(struct dm_chain_metadata *cmd, unsigned int l,
		     const __le64 *entries, u64 vc, u64 n)
{
	u64 *slot = &cmd->dir[vc >> cmd->leaf_shift], base = vc & (leaf_span(cmd) - 1);
	struct chain_leaf *old = slot_leaf(*slot), *leaf = old;
	u32 nr = old ? old->nr : 0, keys = 0, i = 0, k = 0;
	u64 j, e;

	if (!old || !leaf_dense(old)) {
		/* Count the union of the pairs and the entries held. */
		for (j = 0; j < n; j++) {
			if (!held_entry(l, entries[j]))
				continue;
			for (; i < nr && pair_off(old->pairs[i]) < base + j; i++)
				keys++;
			if (i < nr && pair_off(old->pairs[i]) == base + j)
				i++;
			keys++;
		}
		if (keys == 0)
			return 0;
		keys += nr - i;
		leaf = leaf_alloc(cmd, keys >= leaf_span(cmd) / 2 ? LEAF_DENSE : keys, 0);
		if (!leaf)
			return -ENOMEM;
		if (!leaf_dense(leaf)) {
			/* Merge: old pairs and new entries, both sorted. */
			for (i = 0, j = 0; i < nr || j < n;) {
				e = j < n ? held_entry(l, entries[j]) : 0;
				if (j < n && !e) {
					j++;
				} else if (i < nr && (j >= n ||
					   pair_off(old->pairs[i]) < base + j)) {
					leaf->pairs[k++] = old->pairs[i++];
				} else {
					if (i < nr && pair_off(old->pairs[i]) == base + j)
						i++;
					leaf->pairs[k++] = make_pair(base + j++, e);
				}
			}
			leaf->nr = k;
		} else if (old) {
			scatter_pairs(leaf, old);
		}
		leaf_free(old);
		*slot = (u64)(uintptr_t)leaf;
		if (!leaf_dense(leaf))
			return 0;
	}
	for (j = 0; j < n; j++) {
		e = held_entry(l, entries[j]);
		if (e)
			leaf->dense[base + j] = e;
	}
	return 0;
}

/*
 * Fold count entries of layer l from cluster first into the index, at
 * open, leaf by leaf.
 */
static int fold_entries(struct dm_chain_metadata *cmd, unsigned int l,
			const __le64 *entries, u64 first, u64 count)
{
	u64 end = min(first + count, cmd->nr_clusters), vc, stop;
	int r;

	for (vc = first; vc < end; vc = stop) {
		stop = min(dm_chain_leaf_end(cmd, vc), end);
		r = fold_leaf(cmd, l, entries + (vc - first), vc, stop - vc);
		if (r)
			return r;
	}
	return 0;
}

/*
 * After open: a dense leaf that shows the background everywhere, or one
 * layer's ZERO, or one layer's consecutive host clusters, becomes a slot
 * value again.  Entries past the last cluster are not looked at.  A
 * sparse leaf is left as it is (the background fills most of it; in a
 * short last leaf it may be an extent, and costs a leaf).
 */
static void compact_index(struct dm_chain_metadata *cmd)
{
	struct chain_leaf *leaf;
	u64 i, j, n, slot;

	for (i = 0; i < cmd->nr_slots; i++) {
		leaf = slot_leaf(cmd->dir[i]);
		if (!leaf || !leaf_dense(leaf))
			continue;
		n = min(leaf_span(cmd), cmd->nr_clusters - (i << cmd->leaf_shift));
		slot = leaf->dense[0] == cmd->background ? 0 :
		       make_extent(leaf->dense[0]);
		for (j = 0; j < n; j++)
			if (leaf->dense[j] != slot_entry(cmd, slot, j))
				break;
		if (j < n)
			continue;
		cmd->dir[i] = slot;
		leaf_free(leaf);
	}
}

/*
 * Turn the active layer's map of used host clusters into the free map:
 * every cluster of the data area below data_end that no entry maps (used
 * is NULL when no entry maps any).  The map covers data_end and some room
 * above it, not the whole device.
 */
static int set_free_map(struct dm_chain_metadata *cmd, const unsigned long *used)
{
	u64 start = cmd->layers[cmd->top].info.data_offset >> cmd->cluster_shift;
	u64 bits = max(cmd->data_end + FREE_MAP_STEP, 2 * cmd->data_end);
	unsigned long *map;

	map = kvcalloc(BITS_TO_LONGS(bits), sizeof(long), GFP_KERNEL);
	if (!map)
		return -ENOMEM;
	if (used)
		bitmap_complement(map, used, cmd->data_end);
	else
		bitmap_fill(map, cmd->data_end);
	/* complement works on whole words: clear what lies past data_end */
	bitmap_clear(map, cmd->data_end, BITS_TO_LONGS(bits) * BITS_PER_LONG -
		     cmd->data_end);
	bitmap_clear(map, 0, min(start, cmd->data_end));
	kvfree(cmd->free);
	cmd->free = map;
	cmd->free_bits = bits;
	cmd->nr_free = bitmap_weight(map, cmd->data_end);
	cmd->free_cursor = start;
	return 0;
}

/* Read layer l's table map into a new buffer; the caller frees it. */
static u8 *read_table_map(struct dm_chain_metadata *cmd, unsigned int l,
			  char *err, size_t err_len)
{
	struct chain_layer *layer = &cmd->layers[l];
	const struct dm_chain_layer_info *info = &layer->info;
	char why[160];
	u8 *map;
	int r;

	map = kvmalloc(info->map_size, GFP_KERNEL);
	if (!map) {
		snprintf(err, err_len, "Layer %u: cannot allocate its table map (%llu bytes)",
			 l, info->map_size);
		return ERR_PTR(-ENOMEM);
	}
	r = chain_io(cmd, layer->bdev, REQ_OP_READ, info->map_offset, map,
		     info->map_size);
	if (r) {
		snprintf(err, err_len, "Layer %u: reading the table map failed (%d)", l, r);
	} else {
		r = dm_chain_check_map(info, map, 0, info->map_size, why,
				       sizeof(why));
		if (r)
			snprintf(err, err_len, "Layer %u: %s", l, why);
	}
	if (r) {
		kvfree(map);
		return ERR_PTR(r);
	}
	return map;
}

/*
 * Read, validate and fold one chain layer's table into the index: only
 * the table blocks its map marks, in runs of at most TABLE_IO_BLOCKS.
 * The active layer's map is kept in cmd->top_map for build_index().
 */
static int load_layer_table(struct dm_chain_metadata *cmd, unsigned int l,
			    char *err, size_t err_len)
{
	struct chain_layer *layer = &cmd->layers[l];
	const struct dm_chain_layer_info *info = &layer->info;
	u64 blocks = dm_chain_table_blocks(info), b, end, max_cluster = 0;
	unsigned long *used;
	char why[160];
	u8 *map;
	int r = 0;

	if (info->dev_clusters > FREE_MAP_MAX_BITS) {
		snprintf(err, err_len,
			 "Layer %u: its device holds %llu clusters, more than the %llu dm-chain can track; use a smaller device or larger clusters",
			 l, info->dev_clusters, FREE_MAP_MAX_BITS);
		return -EINVAL;
	}
	map = read_table_map(cmd, l, err, err_len);
	if (IS_ERR(map))
		return PTR_ERR(map);
	/* The check bitmap covers the device: only when there is a table. */
	b = find_next_bit_le(map, blocks, 0);
	used = NULL;
	if (b < blocks) {
		used = kvcalloc(BITS_TO_LONGS(info->dev_clusters), sizeof(long),
				GFP_KERNEL);
		if (!used) {
			kvfree(map);
			snprintf(err, err_len,
				 "Layer %u: cannot allocate the table check bitmap", l);
			return -ENOMEM;
		}
	}
	for (; b < blocks; b = find_next_bit_le(map, blocks, end)) {
		u64 first = b * DM_CHAIN_ENTRIES_PER_BLOCK, count;

		end = min(find_next_zero_bit_le(map, blocks, b),
			  b + TABLE_IO_BLOCKS);
		count = (end - b) * DM_CHAIN_ENTRIES_PER_BLOCK;
		r = chain_io(cmd, layer->bdev, REQ_OP_READ,
			     info->table_offset + b * DM_CHAIN_BLOCK_SIZE,
			     cmd->buf, (end - b) * DM_CHAIN_BLOCK_SIZE);
		if (r) {
			snprintf(err, err_len, "Layer %u: reading the table failed (%d)", l, r);
			break;
		}
		r = dm_chain_check_entries(info, cmd->buf, first, count, used,
					   &max_cluster, why, sizeof(why));
		if (r) {
			snprintf(err, err_len, "Layer %u: %s", l, why);
			break;
		}
		r = fold_entries(cmd, l, cmd->buf, first, count);
		if (r) {
			snprintf(err, err_len, "Layer %u: cannot allocate index leaves", l);
			break;
		}
		cond_resched();
	}
	if (!r && l == cmd->top) {
		cmd->data_end = max(info->data_end, max_cluster);
		r = set_free_map(cmd, used);
		if (r)
			snprintf(err, err_len, "Layer %u: cannot allocate the free map", l);
	}
	kvfree(used);
	if (!r && l == cmd->top)
		cmd->top_map = map;
	else
		kvfree(map);
	return r;
}

/*
 * Mark in every leaf the table blocks the active layer's map has set, so
 * that a commit sets only bits that are not set yet.  A leaf made later
 * starts with none marked.
 */
static void mark_leaves(struct dm_chain_metadata *cmd)
{
	u64 blocks = dm_chain_table_blocks(&cmd->layers[cmd->top].info);
	unsigned int per_leaf = leaf_span(cmd) >> LEAF_MIN_SHIFT, j;
	struct chain_leaf *leaf;
	u64 i;

	for (i = 0; i < cmd->nr_slots; i++) {
		leaf = slot_leaf(cmd->dir[i]);
		for (j = 0; leaf && j < per_leaf && i * per_leaf + j < blocks; j++)
			if (test_bit_le(i * per_leaf + j, cmd->top_map))
				__set_bit(j, leaf_marked(cmd, leaf));
	}
}

static int build_index(struct dm_chain_metadata *cmd, char *err,
		       size_t err_len)
{
	unsigned int l;
	int r = 0;

	clear_index(cmd);
	cmd->background = cmd->layers[0].raw ? chain_entry(0, CHAIN_RAW, 0) :
			  chain_entry(0, CHAIN_NONE, 0);
	for (l = 0; l < cmd->nr_layers; l++) {
		if (cmd->layers[l].raw)
			continue;
		r = load_layer_table(cmd, l, err, err_len);
		if (r)
			break;
	}
	if (!r) {
		compact_index(cmd);
		if (cmd->top_map)
			mark_leaves(cmd);
	}
	kvfree(cmd->top_map);
	cmd->top_map = NULL;
	if (r)
		return r;
	cmd->dev_clusters = cmd->layers[cmd->top].info.dev_clusters;
	return 0;
}

static int alloc_metadata(struct dm_chain_metadata *cmd, unsigned int nr)
{
	cmd->layers = kvcalloc(nr, sizeof(*cmd->layers), GFP_KERNEL);
	cmd->buf = vmalloc(TABLE_IO_BLOCKS * DM_CHAIN_BLOCK_SIZE);
	cmd->map_buf = kmalloc(DM_CHAIN_BLOCK_SIZE, GFP_KERNEL);
	cmd->io_client = dm_io_client_create();
	if (IS_ERR(cmd->io_client)) {
		int r = PTR_ERR(cmd->io_client);

		cmd->io_client = NULL;
		return r;
	}
	if (!cmd->layers || !cmd->buf || !cmd->map_buf)
		return -ENOMEM;
	return 0;
}

static void free_metadata(struct dm_chain_metadata *cmd)
{
	if (cmd->io_client)
		dm_io_client_destroy(cmd->io_client);
	if (cmd->dir)
		clear_index(cmd);
	kvfree(cmd->free);
	kvfree(cmd->dir);
	vfree(cmd->buf);
	kfree(cmd->map_buf);
	kvfree(cmd->layers);
	kfree(cmd);
}

/* The metadata object of nr layers, nothing read yet. */
static struct dm_chain_metadata *new_metadata(struct block_device **bdevs,
					      unsigned int nr,
					      unsigned int flags,
					      u64 virtual_size,
					      char *err, size_t err_len)
{
	struct dm_chain_metadata *cmd;
	unsigned int l;
	int r;

	cmd = kzalloc(sizeof(*cmd), GFP_KERNEL);
	if (!cmd) {
		snprintf(err, err_len, "Cannot allocate metadata");
		return ERR_PTR(-ENOMEM);
	}
	spin_lock_init(&cmd->lock);
	mutex_init(&cmd->commit_lock);
	mutex_init(&cmd->grow_lock);
	cmd->nr_layers = nr;
	cmd->top = nr - 1;
	cmd->virtual_size = virtual_size;
	cmd->copy_dest = flags & DM_CHAIN_OPEN_COPY_DEST;
	r = alloc_metadata(cmd, nr);
	if (r) {
		snprintf(err, err_len, "Cannot allocate metadata buffers");
		free_metadata(cmd);
		return ERR_PTR(r);
	}
	for (l = 0; l < nr; l++) {
		cmd->layers[l].bdev = bdevs[l];
		cmd->layers[l].raw = (flags & DM_CHAIN_OPEN_RAW_BASE) && !l;
	}
	return cmd;
}

/* The index directory, once the geometry is known. */
static int alloc_dir(struct dm_chain_metadata *cmd, char *err, size_t err_len)
{
	set_leaf_shift(cmd);
	cmd->dir = kvcalloc(cmd->nr_slots, sizeof(u64), GFP_KERNEL);
	if (cmd->dir)
		return 0;
	snprintf(err, err_len, "Cannot allocate the index directory for %llu clusters",
		 cmd->nr_clusters);
	return -ENOMEM;
}

struct dm_chain_metadata *dm_chain_metadata_open(struct block_device **bdevs,
						 unsigned int nr,
						 unsigned int flags,
						 u64 virtual_size,
						 char *err, size_t err_len)
{
	struct dm_chain_metadata *cmd;
	int r;

	BUILD_BUG_ON(sizeof(struct dm_chain_disk_header) != DM_CHAIN_BLOCK_SIZE);
	BUILD_BUG_ON(sizeof(struct dm_chain_job_record) != DM_CHAIN_JOB_SIZE);

	cmd = new_metadata(bdevs, nr, flags, virtual_size, err, err_len);
	if (IS_ERR(cmd))
		return cmd;
	r = check_layers(cmd, err, err_len);
	if (r)
		goto bad;
	cmd->cluster_shift = cmd->layers[cmd->top].info.cluster_shift;
	cmd->nr_clusters = cmd->layers[cmd->top].info.nr_clusters;
	cmd->nr_table_blocks = cmd->layers[cmd->top].info.table_size /
			       DM_CHAIN_BLOCK_SIZE;
	r = alloc_dir(cmd, err, err_len);
	if (r)
		goto bad;
	r = build_index(cmd, err, err_len);
	if (r)
		goto bad;
	cmd->mode = CHAIN_MODE_WRITE;
	return cmd;

bad:
	free_metadata(cmd);
	return ERR_PTR(r);
}

struct dm_chain_metadata *dm_chain_raw_view_open(struct block_device *bdev,
						 unsigned int cluster_shift,
						 u64 virtual_size,
						 char *err, size_t err_len)
{
	struct dm_chain_metadata *cmd;
	u64 slot;
	int r;

	if (!virtual_size || virtual_size % DM_CHAIN_BLOCK_SIZE) {
		snprintf(err, err_len,
			 "A copy of a lone raw layer needs a size that is a multiple of %u bytes, not %llu",
			 DM_CHAIN_BLOCK_SIZE, virtual_size);
		return ERR_PTR(-EINVAL);
	}
	cmd = new_metadata(&bdev, 1, DM_CHAIN_OPEN_RAW_BASE, virtual_size,
			   err, err_len);
	if (IS_ERR(cmd))
		return cmd;
	cmd->raw_view = true;
	cmd->cluster_shift = cluster_shift;
	cmd->nr_clusters = DIV_ROUND_UP_ULL(virtual_size, 1ULL << cluster_shift);
	r = alloc_dir(cmd, err, err_len);
	if (r) {
		free_metadata(cmd);
		return ERR_PTR(r);
	}
	/* Every leaf one extent: cluster vc in place, host cluster vc. */
	for (slot = 0; slot < cmd->nr_slots; slot++)
		cmd->dir[slot] = make_extent(chain_entry(0, CHAIN_MAPPED,
							 slot << cmd->leaf_shift));
	cmd->data_end = cmd->nr_clusters;
	cmd->dev_clusters = cmd->nr_clusters;
	cmd->mode = CHAIN_MODE_WRITE;
	return cmd;
}

bool dm_chain_is_raw_view(struct dm_chain_metadata *cmd)
{
	return cmd->raw_view;
}

void dm_chain_metadata_close(struct dm_chain_metadata *cmd)
{
	int r = dm_chain_commit(cmd, false);

	if (r)
		DMERR("%pg: final metadata commit failed (%d)",
		      cmd->layers[cmd->top].bdev, r);
	free_metadata(cmd);
}

/* Reload every layer when one of them changed since we read it. */
static int reload_if_changed(struct dm_chain_metadata *cmd)
{
	unsigned int l;
	char err[160];
	bool changed = false;
	u64 *gen;
	int r;

	gen = kmalloc_array(cmd->nr_layers, sizeof(*gen), GFP_KERNEL);
	if (!gen)
		return -ENOMEM;
	for (l = 0; l < cmd->nr_layers; l++)
		gen[l] = cmd->layers[l].info.generation;
	r = check_layers(cmd, err, sizeof(err));
	if (r)
		goto fail;
	changed = cmd->stale;
	for (l = 0; l < cmd->nr_layers; l++)
		changed |= gen[l] != cmd->layers[l].info.generation;
	if (changed)
		r = build_index(cmd, err, sizeof(err));
fail:
	/*
	 * The index may be half built, and the device stays suspended: the
	 * next resume builds it again, whatever the generations say.
	 */
	cmd->stale = r != 0;
	kfree(gen);
	if (!r)
		return 0;
	DMERR("%pg: reloading the chain failed: %s",
	      cmd->layers[cmd->top].bdev, err);
	return r;
}

int dm_chain_metadata_refresh(struct dm_chain_metadata *cmd)
{
	u64 clusters;
	int r = 0;

	if (cmd->raw_view)
		return 0;	/* no header to read; its size is the table's */
	mutex_lock(&cmd->commit_lock);
	if (!dm_chain_dirty(cmd))
		r = reload_if_changed(cmd);
	/* A grown device is used up to what open would accept. */
	clusters = min_t(u64, bdev_nr_bytes(cmd->layers[cmd->top].bdev) >>
		       cmd->cluster_shift, FREE_MAP_MAX_BITS);
	spin_lock_irq(&cmd->lock);
	if (!r && clusters >= cmd->data_end)
		cmd->dev_clusters = clusters;
	spin_unlock_irq(&cmd->lock);
	mutex_unlock(&cmd->commit_lock);
	return r;
}

u64 dm_chain_lookup(struct dm_chain_metadata *cmd, u64 vcluster)
{
	u64 off = vcluster & (leaf_span(cmd) - 1), slot, e;
	struct chain_leaf *leaf;

	/*
	 * A leaf is published filled (smp_store_release() in
	 * __leaf_publish()) and its entries change by WRITE_ONCE() in
	 * __set_entry(); what is read depends on the slot read.  A sparse
	 * leaf replaced meanwhile is freed only after this section.
	 */
	rcu_read_lock();
	slot = READ_ONCE(cmd->dir[vcluster >> cmd->leaf_shift]);
	leaf = slot_leaf(slot);
	e = leaf ? leaf_entry(cmd, leaf, off) : slot_entry(cmd, slot, off);
	rcu_read_unlock();
	return e;
}

u64 dm_chain_background(struct dm_chain_metadata *cmd)
{
	return cmd->background;
}

bool dm_chain_leaf_empty(struct dm_chain_metadata *cmd, u64 vcluster)
{
	return !READ_ONCE(cmd->dir[vcluster >> cmd->leaf_shift]);
}

u64 dm_chain_leaf_end(struct dm_chain_metadata *cmd, u64 vcluster)
{
	return min((vcluster | (leaf_span(cmd) - 1)) + 1, cmd->nr_clusters);
}

bool dm_chain_owned(struct dm_chain_metadata *cmd, u64 vcluster)
{
	u64 e = dm_chain_lookup(cmd, vcluster);

	return chain_entry_kind(e) == CHAIN_MAPPED &&
	       chain_entry_layer(e) == cmd->top;
}

enum chain_kind dm_chain_top_kind(struct dm_chain_metadata *cmd,
				  u64 vcluster, u64 *host)
{
	u64 e = dm_chain_lookup(cmd, vcluster);

	*host = chain_entry_host(e);
	if (chain_entry_layer(e) != cmd->top ||
	    chain_entry_kind(e) == CHAIN_NONE || chain_entry_kind(e) == CHAIN_RAW)
		return CHAIN_NONE;
	return chain_entry_kind(e);
}

bool dm_chain_has_lower(struct dm_chain_metadata *cmd)
{
	return cmd->nr_layers > 1;
}

/* Caller holds cmd->lock and checked nr_free. */
static u64 __take_free(struct dm_chain_metadata *cmd)
{
	u64 host = find_next_bit(cmd->free, cmd->data_end, cmd->free_cursor);

	if (host >= cmd->data_end)
		host = find_first_bit(cmd->free, cmd->data_end);
	__clear_bit(host, cmd->free);
	cmd->nr_free--;
	cmd->free_cursor = host + 1;
	return host;
}

/*
 * Make the free map cover data_end and FREE_MAP_STEP more (twice data_end
 * at least), so that a host cluster handed out below it can be given
 * back from any context.  May sleep.
 */
static int grow_free_map(struct dm_chain_metadata *cmd)
{
	unsigned long *map, *old = NULL;
	u64 bits;
	unsigned int noio;
	int r = 0;

	mutex_lock(&cmd->grow_lock);
	bits = READ_ONCE(cmd->data_end);
	bits = max(bits + FREE_MAP_STEP, 2 * bits);
	if (READ_ONCE(cmd->free_bits) > READ_ONCE(cmd->data_end) + 1)
		goto out;
	noio = memalloc_noio_save();
	map = kvcalloc(BITS_TO_LONGS(bits), sizeof(long), GFP_KERNEL);
	memalloc_noio_restore(noio);
	if (!map) {
		r = -ENOMEM;
		goto out;
	}
	spin_lock_irq(&cmd->lock);
	if (bits > cmd->free_bits) {
		bitmap_copy(map, cmd->free, cmd->free_bits);
		old = cmd->free;
		cmd->free = map;
		cmd->free_bits = bits;
	} else {
		old = map;
	}
	spin_unlock_irq(&cmd->lock);
	kvfree(old);
out:
	mutex_unlock(&cmd->grow_lock);
	return r;
}

int dm_chain_alloc_cluster(struct dm_chain_metadata *cmd, u64 *host)
{
	int r;

	might_sleep();
	for (;;) {
		spin_lock_irq(&cmd->lock);
		r = 0;
		if (cmd->mode != CHAIN_MODE_WRITE)
			r = -EROFS;
		else if (cmd->nr_free)
			*host = __take_free(cmd);
		else if (cmd->data_end >= cmd->dev_clusters)
			r = -ENOSPC;
		else if (cmd->data_end + 1 >= cmd->free_bits)
			r = -EAGAIN;
		else
			*host = cmd->data_end++;
		spin_unlock_irq(&cmd->lock);
		if (r != -EAGAIN)
			return r;
		r = grow_free_map(cmd);
		if (r)
			return r;
	}
}

void dm_chain_release_cluster(struct dm_chain_metadata *cmd, u64 host)
{
	unsigned long flags;

	spin_lock_irqsave(&cmd->lock, flags);
	if (!WARN_ON_ONCE(host >= cmd->data_end || host >= cmd->free_bits ||
			  test_bit(host, cmd->free))) {
		__set_bit(host, cmd->free);
		cmd->nr_free++;
	}
	spin_unlock_irqrestore(&cmd->lock, flags);
}

/*
 * Caller holds cmd->lock and called dm_chain_prepare() for vcluster: its
 * slot is a leaf, with a pair for it if sparse.  If not, the change cannot
 * be recorded without an allocation here: the metadata fails rather than
 * lose it.
 */
static u64 __set_entry(struct dm_chain_metadata *cmd, u64 vcluster, u64 e)
{
	u64 off = vcluster & (leaf_span(cmd) - 1), old, *where = NULL;
	struct chain_leaf *leaf = slot_leaf(cmd->dir[vcluster >> cmd->leaf_shift]);

	if (leaf)
		where = __leaf_find(leaf, off);
	if (WARN_ON_ONCE(!where)) {
		cmd->mode = CHAIN_MODE_FAIL;
		return 0;
	}
	if (leaf_dense(leaf)) {
		old = *where;
		WRITE_ONCE(*where, e);
	} else {
		old = pair_entry(*where);
		WRITE_ONCE(*where, make_pair(off, e));
	}
	__set_bit(off >> LEAF_MIN_SHIFT, leaf_dirty(cmd, leaf));
	cmd->change_seq++;
	if (chain_entry_kind(old) == CHAIN_MAPPED &&
	    chain_entry_layer(old) == cmd->top)
		return chain_entry_host(old);
	return 0;
}

void dm_chain_set_mapped(struct dm_chain_metadata *cmd, u64 vcluster,
			 u64 host)
{
	unsigned long flags;

	spin_lock_irqsave(&cmd->lock, flags);
	__set_entry(cmd, vcluster, chain_entry(cmd->top, CHAIN_MAPPED, host));
	spin_unlock_irqrestore(&cmd->lock, flags);
}

u64 dm_chain_set_zero(struct dm_chain_metadata *cmd, u64 vcluster)
{
	enum chain_kind kind = dm_chain_has_lower(cmd) ? CHAIN_ZERO : CHAIN_NONE;
	unsigned long flags;
	u64 old;

	spin_lock_irqsave(&cmd->lock, flags);
	old = __set_entry(cmd, vcluster, chain_entry(cmd->top, kind, 0));
	spin_unlock_irqrestore(&cmd->lock, flags);
	return old;
}

bool dm_chain_dirty(struct dm_chain_metadata *cmd)
{
	return READ_ONCE(cmd->change_seq) != READ_ONCE(cmd->committed_seq);
}

/* The active layer's on-disk entry, derived from the index. */
static __le64 active_entry(struct dm_chain_metadata *cmd, u64 e)
{
	if (chain_entry_layer(e) != cmd->top)
		return 0;
	switch (chain_entry_kind(e)) {
	case CHAIN_MAPPED:
		return cpu_to_le64(dm_chain_make_entry(DM_CHAIN_ENTRY_MAPPED,
						       chain_entry_host(e)));
	case CHAIN_ZERO:
		return cpu_to_le64(dm_chain_make_entry(DM_CHAIN_ENTRY_ZERO, 0));
	default:
		return 0;
	}
}

/*
 * Claim one dirty table block and copy it from the index.  The copy is
 * what step 2 writes: a mapping published after it waits for the next
 * commit, whose flush comes after its data.
 */
static void fill_block(struct dm_chain_metadata *cmd, u64 block, __le64 *out)
{
	u64 first = block * DM_CHAIN_ENTRIES_PER_BLOCK, i;
	struct chain_leaf *leaf;

	spin_lock_irq(&cmd->lock);
	leaf = slot_leaf(cmd->dir[first >> cmd->leaf_shift]);
	__clear_bit((first & (leaf_span(cmd) - 1)) >> LEAF_MIN_SHIFT,
		    leaf_dirty(cmd, leaf));
	for (i = 0; i < DM_CHAIN_ENTRIES_PER_BLOCK; i++)
		out[i] = first + i < cmd->nr_clusters ?
			 active_entry(cmd, dm_chain_lookup(cmd, first + i)) : 0;
	spin_unlock_irq(&cmd->lock);
}

/*
 * The leaf holding table block b, if any, and b's bit in it.  Under
 * rcu_read_lock() or cmd->lock: dm_chain_prepare() may replace a sparse
 * leaf (copying its bits) at any time, so the slot is read each time.
 */
static struct chain_leaf *block_leaf(struct dm_chain_metadata *cmd, u64 b,
				     unsigned int *bit)
{
	u64 first = b * DM_CHAIN_ENTRIES_PER_BLOCK;

	*bit = (first & (leaf_span(cmd) - 1)) >> LEAF_MIN_SHIFT;
	/* The last leaf may reach past the table, never the reverse. */
	if (first >> cmd->leaf_shift >= cmd->nr_slots)
		return NULL;
	return slot_leaf(READ_ONCE(cmd->dir[first >> cmd->leaf_shift]));
}

/*
 * Table block b's dirty bit, or its marked bit (marked), in its leaf.  A
 * block outside any leaf is neither dirty nor to be marked: only blocks
 * that were dirty are asked whether they are marked.
 */
static bool block_bit(struct dm_chain_metadata *cmd, u64 b, bool marked)
{
	struct chain_leaf *leaf;
	unsigned int bit;
	bool set;

	rcu_read_lock();
	leaf = block_leaf(cmd, b, &bit);
	set = leaf ? test_bit(bit, marked ? leaf_marked(cmd, leaf) :
					    leaf_dirty(cmd, leaf)) : marked;
	rcu_read_unlock();
	return set;
}

/*
 * The first dirty table block at or after block, or nr_table_blocks.
 * Only leaves hold dirty blocks.  Caller holds commit_lock.
 */
static u64 next_dirty_block(struct dm_chain_metadata *cmd, u64 block)
{
	unsigned int per_leaf_shift = cmd->leaf_shift - LEAF_MIN_SHIFT;
	u64 per_leaf = 1ULL << per_leaf_shift, i, b = per_leaf;
	struct chain_leaf *leaf;

	for (i = block >> per_leaf_shift; i < cmd->nr_slots; i++) {
		rcu_read_lock();
		leaf = slot_leaf(READ_ONCE(cmd->dir[i]));
		if (leaf) {
			b = (i << per_leaf_shift) > block ? 0 : block & (per_leaf - 1);
			b = find_next_bit(leaf_dirty(cmd, leaf), per_leaf, b);
		}
		rcu_read_unlock();
		if (leaf && b < per_leaf)
			return min((i << per_leaf_shift) + b, cmd->nr_table_blocks);
	}
	return cmd->nr_table_blocks;
}

/*
 * Copy up to TABLE_IO_BLOCKS dirty table blocks, from *block on, into buf
 * as runs of neighbours.  Returns the number of runs.  Caller holds
 * commit_lock.
 */
static unsigned int __copy_dirty_blocks(struct dm_chain_metadata *cmd,
					u64 *block)
{
	unsigned int used = 0, nr = 0;
	u64 b = *block;

	while (used < TABLE_IO_BLOCKS && nr < TABLE_RUNS) {
		b = next_dirty_block(cmd, b);
		if (b >= cmd->nr_table_blocks)
			break;
		cmd->runs[nr].block = b;
		cmd->runs[nr].first = used;
		while (used < TABLE_IO_BLOCKS && b < cmd->nr_table_blocks &&
		       block_bit(cmd, b, false)) {
			fill_block(cmd, b, cmd->buf + used * DM_CHAIN_BLOCK_SIZE);
			used++;
			b++;
		}
		cmd->runs[nr].count = used - cmd->runs[nr].first;
		nr++;
	}
	*block = b;
	return nr;
}

/* Write map block mb from map_buf. */
static int write_map_block(struct dm_chain_metadata *cmd, u64 mb)
{
	const struct dm_chain_layer_info *info = &cmd->layers[cmd->top].info;

	return chain_io(cmd, cmd->layers[cmd->top].bdev, REQ_OP_WRITE,
			info->map_offset + mb * DM_CHAIN_BLOCK_SIZE,
			cmd->map_buf, DM_CHAIN_BLOCK_SIZE);
}

/*
 * Step 2b: set the map bits of the table blocks this round wrote that the
 * map may not mark yet.  Their blocks were written whole; a flush makes
 * them durable before any bit that tells a reader to read them, since an
 * unmarked block may hold anything (a reused LV, a lost earlier commit).
 * Each map block is read, and written only if a bit changed.  The runs
 * are in ascending block order.  Caller holds commit_lock, so the marked
 * bits change only here (under cmd->lock, as dm_chain_prepare() copies
 * them).
 */
static int __mark_blocks(struct dm_chain_metadata *cmd, unsigned int nr)
{
	const struct dm_chain_layer_info *info = &cmd->layers[cmd->top].info;
	u64 b, end, mb = U64_MAX;
	struct chain_leaf *leaf;
	unsigned int i, bit;
	bool unmarked = false, changed = false;
	int r;

	for (i = 0; i < nr && !unmarked; i++)
		for (b = cmd->runs[i].block, end = b + cmd->runs[i].count;
		     b < end && !unmarked; b++)
			unmarked = !block_bit(cmd, b, true);
	if (!unmarked)
		return 0;
	r = flush_device(cmd, cmd->layers[cmd->top].bdev);
	for (i = 0; i < nr && !r; i++) {
		for (b = cmd->runs[i].block, end = b + cmd->runs[i].count;
		     b < end && !r; b++) {
			if (block_bit(cmd, b, true))
				continue;
			if (b / DM_CHAIN_MAP_BITS_PER_BLOCK != mb) {
				if (changed)
					r = write_map_block(cmd, mb);
				mb = b / DM_CHAIN_MAP_BITS_PER_BLOCK;
				changed = false;
				if (!r)
					r = chain_io(cmd, cmd->layers[cmd->top].bdev,
						     REQ_OP_READ,
						     info->map_offset +
						     mb * DM_CHAIN_BLOCK_SIZE,
						     cmd->map_buf,
						     DM_CHAIN_BLOCK_SIZE);
				if (r)
					break;
			}
			if (!test_bit_le(b % DM_CHAIN_MAP_BITS_PER_BLOCK,
					 cmd->map_buf)) {
				__set_bit_le(b % DM_CHAIN_MAP_BITS_PER_BLOCK,
					     cmd->map_buf);
				changed = true;
			}
		}
	}
	if (!r && changed)
		r = write_map_block(cmd, mb);
	if (r)
		return r;
	/* Only now that every bit is written may a later commit skip it. */
	spin_lock_irq(&cmd->lock);
	for (i = 0; i < nr; i++)
		for (b = cmd->runs[i].block, end = b + cmd->runs[i].count;
		     b < end; b++) {
			leaf = block_leaf(cmd, b, &bit);
			__set_bit(bit, leaf_marked(cmd, leaf));
		}
	spin_unlock_irq(&cmd->lock);
	return 0;
}

/*
 * Steps 1, 2 and 2b, in rounds of at most TABLE_IO_BLOCKS blocks: copy
 * the dirty blocks from the index, flush the data device, write the
 * copies, then mark the new ones in the table map.  Every entry written
 * was published (its data written) before the flush that precedes it.
 * Caller holds commit_lock.
 */
static int __write_dirty_blocks(struct dm_chain_metadata *cmd)
{
	const struct dm_chain_layer_info *info = &cmd->layers[cmd->top].info;
	struct block_device *bdev = cmd->layers[cmd->top].bdev;
	unsigned int nr, i;
	u64 block = 0;
	int r;

	while ((nr = __copy_dirty_blocks(cmd, &block))) {
		r = flush_device(cmd, bdev);
		if (r)
			return r;
		for (i = 0; i < nr; i++) {
			r = chain_io(cmd, bdev, REQ_OP_WRITE,
				     info->table_offset +
				     cmd->runs[i].block * DM_CHAIN_BLOCK_SIZE,
				     cmd->buf + cmd->runs[i].first * DM_CHAIN_BLOCK_SIZE,
				     cmd->runs[i].count * DM_CHAIN_BLOCK_SIZE);
			if (r)
				return r;
		}
		r = __mark_blocks(cmd, nr);
		if (r)
			return r;
	}
	return 0;
}

/*
 * Write the header, generation g + 1, into slot (g + 1) mod 2: never the
 * slot holding the current header g.  The generation moves only once the
 * write succeeded, so a retry after a failure (the needs-check write of
 * dm_chain_metadata_failed()) goes to the same slot.  Caller holds
 * commit_lock.
 */
static int __write_header(struct dm_chain_metadata *cmd)
{
	struct dm_chain_layer_info *info = &cmd->layers[cmd->top].info;
	int r;

	spin_lock_irq(&cmd->lock);
	info->data_end = cmd->data_end;
	spin_unlock_irq(&cmd->lock);
	if (cmd->needs_check)
		info->flags |= DM_CHAIN_FLAG_NEEDS_CHECK;
	info->generation++;
	dm_chain_header_pack(info, cmd->buf);
	r = chain_io(cmd, cmd->layers[cmd->top].bdev,
		     REQ_OP_WRITE | REQ_PREFLUSH | REQ_FUA | REQ_SYNC,
		     (info->generation & 1) * DM_CHAIN_BLOCK_SIZE,
		     cmd->buf, DM_CHAIN_BLOCK_SIZE);
	if (r)
		info->generation--;
	else
		info->slot = info->generation & 1;
	return r;
}

int dm_chain_commit(struct dm_chain_metadata *cmd, bool flush)
{
	struct block_device *bdev = cmd->layers[cmd->top].bdev;
	u64 seq;
	int r;

	mutex_lock(&cmd->commit_lock);
	/*
	 * Under the lock every change counted in seq is in the leaves this
	 * commit reads next (a plain change_seq++ orders nothing by itself).
	 */
	spin_lock_irq(&cmd->lock);
	seq = cmd->change_seq;
	spin_unlock_irq(&cmd->lock);
	if (cmd->raw_view) {
		/* Data is in place and the job record in memory: flush only. */
		r = flush ? flush_device(cmd, bdev) : 0;
		if (!r)
			WRITE_ONCE(cmd->committed_seq, seq);
		goto out;
	}
	if (seq == cmd->committed_seq) {
		/* Nothing to write; a FLUSH still owes the device a flush. */
		r = flush ? flush_device(cmd, bdev) : 0;
		mutex_unlock(&cmd->commit_lock);
		return r;
	}
	if (cmd->mode != CHAIN_MODE_WRITE) {
		mutex_unlock(&cmd->commit_lock);
		return -EROFS;
	}
	/* Steps 1 and 2: data, then the table blocks that point to it. */
	r = __write_dirty_blocks(cmd);
	if (r)
		goto out;
	/*
	 * Step 3: the header, with a PREFLUSH that makes step 2 durable (and,
	 * when no table block changed, the data a FLUSH waits for).
	 */
	r = __write_header(cmd);
	if (r)
		goto out;
	WRITE_ONCE(cmd->committed_seq, seq);
out:
	mutex_unlock(&cmd->commit_lock);
	if (r)
		dm_chain_metadata_failed(cmd, "commit", r);
	return r;
}

void dm_chain_metadata_failed(struct dm_chain_metadata *cmd, const char *op,
			      int r)
{
	struct block_device *bdev = cmd->layers[cmd->top].bdev;

	DMERR_LIMIT("%pg: metadata %s failed (%d): switching to read-only",
		    bdev, op, r);
	spin_lock_irq(&cmd->lock);
	if (cmd->mode < CHAIN_MODE_READ_ONLY)
		cmd->mode = CHAIN_MODE_READ_ONLY;
	spin_unlock_irq(&cmd->lock);
	/* A raw layer has no header: never write one over its data. */
	if (cmd->needs_check || cmd->raw_view)
		return;
	cmd->needs_check = true;

	/* Best effort: the device may refuse this write too. */
	mutex_lock(&cmd->commit_lock);
	if (__write_header(cmd)) {
		spin_lock_irq(&cmd->lock);
		cmd->mode = CHAIN_MODE_FAIL;
		spin_unlock_irq(&cmd->lock);
	}
	mutex_unlock(&cmd->commit_lock);
}

enum chain_metadata_mode dm_chain_mode(struct dm_chain_metadata *cmd)
{
	return READ_ONCE(cmd->mode);
}

bool dm_chain_needs_check(struct dm_chain_metadata *cmd)
{
	return READ_ONCE(cmd->needs_check);
}

unsigned int dm_chain_cluster_shift(struct dm_chain_metadata *cmd)
{
	return cmd->cluster_shift;
}

u64 dm_chain_nr_clusters(struct dm_chain_metadata *cmd)
{
	return cmd->nr_clusters;
}

void dm_chain_space(struct dm_chain_metadata *cmd, u64 *used, u64 *total)
{
	const struct dm_chain_layer_info *info = &cmd->layers[cmd->top].info;
	u64 start = info->data_offset >> cmd->cluster_shift;
	unsigned long flags;

	spin_lock_irqsave(&cmd->lock, flags);
	*used = cmd->data_end - start - cmd->nr_free;
	*total = cmd->dev_clusters - start;
	spin_unlock_irqrestore(&cmd->lock, flags);
}

void dm_chain_get_job(struct dm_chain_metadata *cmd, void *rec)
{
	mutex_lock(&cmd->commit_lock);
	memcpy(rec, cmd->layers[cmd->top].info.job, DM_CHAIN_JOB_SIZE);
	mutex_unlock(&cmd->commit_lock);
}

void dm_chain_set_job(struct dm_chain_metadata *cmd, const void *rec)
{
	u8 *job = cmd->layers[cmd->top].info.job;

	mutex_lock(&cmd->commit_lock);
	if (memcmp(job, rec, DM_CHAIN_JOB_SIZE)) {
		memcpy(job, rec, DM_CHAIN_JOB_SIZE);
		spin_lock_irq(&cmd->lock);
		cmd->change_seq++;
		spin_unlock_irq(&cmd->lock);
	}
	mutex_unlock(&cmd->commit_lock);
}

const u8 *dm_chain_layer_uuid(struct dm_chain_metadata *cmd, unsigned int l)
{
	static const u8 none[DM_CHAIN_UUID_SIZE];

	return cmd->layers[l].raw ? none : cmd->layers[l].info.uuid;
}
