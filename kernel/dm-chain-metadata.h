/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-chain metadata: the layers' headers and tables, the in-memory index
 * that resolves every virtual cluster to the newest layer holding it, and
 * the commit of the active layer's metadata.
 */
#ifndef DM_CHAIN_METADATA_H
#define DM_CHAIN_METADATA_H

#include <linux/blkdev.h>
#include "dm-chain-format.h"

struct dm_chain_metadata;

/*
 * An index entry resolves one virtual cluster:
 *   bits 63..56  layer index (0 = bottom)
 *   bits 55..54  kind
 *   bits 47..0   host cluster (MAPPED) or zero
 */
enum chain_kind {
	CHAIN_NONE = 0,		/* no layer holds it: reads zeros */
	CHAIN_ZERO = 1,		/* a layer says zero: reads zeros */
	CHAIN_MAPPED = 2,	/* data in a chain layer's host cluster */
	CHAIN_RAW = 3,		/* data in the raw base, same offset */
};

#define CHAIN_LAYER_SHIFT	56
#define CHAIN_KIND_SHIFT	54
#define CHAIN_HOST_MASK		DM_CHAIN_ENTRY_CLUSTER_MASK

static inline u64 chain_entry(unsigned int layer, enum chain_kind kind,
			      u64 host)
{
	return ((u64)layer << CHAIN_LAYER_SHIFT) |
	       ((u64)kind << CHAIN_KIND_SHIFT) | (host & CHAIN_HOST_MASK);
}

static inline unsigned int chain_entry_layer(u64 e)
{
	return e >> CHAIN_LAYER_SHIFT;
}

static inline enum chain_kind chain_entry_kind(u64 e)
{
	return (e >> CHAIN_KIND_SHIFT) & 3;
}

static inline u64 chain_entry_host(u64 e)
{
	return e & CHAIN_HOST_MASK;
}

/* Ordered: a mode can only get worse while the metadata is open. */
enum chain_metadata_mode {
	CHAIN_MODE_WRITE,
	CHAIN_MODE_READ_ONLY,
	CHAIN_MODE_FAIL,
};

/* dm_chain_metadata_open() flags */
#define DM_CHAIN_OPEN_RAW_BASE	BIT(0)	/* bdevs[0] is a raw device */
#define DM_CHAIN_OPEN_COPY_DEST	BIT(1)	/* the top is a copy's destination */

/*
 * Read and validate every layer, check that they form one chain, and build
 * the index.  bdevs[0] is the bottom layer, bdevs[nr - 1] the active one.
 * Only a view with DM_CHAIN_OPEN_COPY_DEST takes a top layer marked as
 * the unfinished destination of a copy.  virtual_size is the target
 * length in bytes.  On failure returns an ERR_PTR and fills err.  May
 * block.
 */
struct dm_chain_metadata *dm_chain_metadata_open(struct block_device **bdevs,
						 unsigned int nr,
						 unsigned int flags,
						 u64 virtual_size,
						 char *err, size_t err_len);

/*
 * A lone raw layer seen as a chain of one layer that holds every cluster
 * in place (host cluster = virtual cluster), with clusters of 1 <<
 * cluster_shift bytes: the source of a copy of a lone raw device.  No
 * header and no table is read or written: a commit only flushes, and the
 * job record lives in memory.  May block.
 */
struct dm_chain_metadata *dm_chain_raw_view_open(struct block_device *bdev,
						 unsigned int cluster_shift,
						 u64 virtual_size,
						 char *err, size_t err_len);
bool dm_chain_is_raw_view(struct dm_chain_metadata *cmd);

/* Commit if needed and free everything.  May block. */
void dm_chain_metadata_close(struct dm_chain_metadata *cmd);

/*
 * Re-read the active layer's device size (it may have grown) and reload
 * the index if another table changed any layer since open (a live
 * snapshot swaps tables after this one was built).  May block; the target
 * must be suspended.
 */
int dm_chain_metadata_refresh(struct dm_chain_metadata *cmd);

/* Resolve a virtual cluster.  Any context, lockless. */
u64 dm_chain_lookup(struct dm_chain_metadata *cmd, u64 vcluster);

/*
 * What a cluster no layer holds shows (CHAIN_RAW of layer 0, or
 * CHAIN_NONE), and whether every cluster of vcluster's leaf shows it: a
 * walk may then go on at dm_chain_leaf_end().  A leaf that is not empty
 * now was made before anything was published in it (dm_chain_prepare()).
 * Any context, lockless.
 */
u64 dm_chain_background(struct dm_chain_metadata *cmd);
bool dm_chain_leaf_empty(struct dm_chain_metadata *cmd, u64 vcluster);
u64 dm_chain_leaf_end(struct dm_chain_metadata *cmd, u64 vcluster);

/* True if the active layer holds vcluster's data.  Any context. */
bool dm_chain_owned(struct dm_chain_metadata *cmd, u64 vcluster);

/*
 * What the top layer itself holds for vcluster: CHAIN_MAPPED (host set),
 * CHAIN_ZERO, or CHAIN_NONE when a lower layer or nothing shows it.
 * Any context.
 */
enum chain_kind dm_chain_top_kind(struct dm_chain_metadata *cmd,
				  u64 vcluster, u64 *host);

/* Whether any layer below the active one can show data.  Any context. */
bool dm_chain_has_lower(struct dm_chain_metadata *cmd);

/*
 * Take a free host cluster of the active layer's data area, or the next
 * one never used.  Returns -ENOSPC when the device is full, -EROFS unless
 * in write mode, -ENOMEM when the free map cannot grow.  Process context,
 * may sleep.
 */
int dm_chain_alloc_cluster(struct dm_chain_metadata *cmd, u64 *host);

/*
 * Give back a host cluster that dm_chain_set_zero() returned.  Call it
 * only once a commit that started after dm_chain_set_zero() completed,
 * every I/O sent to the cluster before dm_chain_set_zero() completed, and
 * any discard sent to the cluster finished: until then an entry on disk
 * may still point at it, or a late write land in it.  Any context.
 */
void dm_chain_release_cluster(struct dm_chain_metadata *cmd, u64 host);

/*
 * Get vcluster's part of the index ready for dm_chain_set_mapped() and
 * dm_chain_set_zero(), which do not allocate: call it before anything that
 * may publish a change to vcluster.  Returns -ENOMEM when it cannot.
 * Process context, may sleep.
 */
int dm_chain_prepare(struct dm_chain_metadata *cmd, u64 vcluster);

/*
 * Record that the active layer now maps vcluster to host, or holds it as
 * zeros (ZERO if a lower layer could show data, else ABSENT), after
 * dm_chain_prepare() for vcluster.  Marks the table block dirty.
 * dm_chain_set_zero() returns the host cluster the active layer held
 * before, or 0; the caller owns it until it releases it.  Any context
 * (takes an irq-safe spinlock).
 */
void dm_chain_set_mapped(struct dm_chain_metadata *cmd, u64 vcluster,
			 u64 host);
u64 dm_chain_set_zero(struct dm_chain_metadata *cmd, u64 vcluster);

/* True if some change is not on disk yet.  Any context. */
bool dm_chain_dirty(struct dm_chain_metadata *cmd);

/*
 * Make every change recorded so far durable: flush the data, write the
 * changed table blocks, flush, write the header.  When nothing changed it
 * writes nothing, and flushes the device if flush is set (a FLUSH waits
 * on this commit).  Serialised internally; may block.
 */
int dm_chain_commit(struct dm_chain_metadata *cmd, bool flush);

/*
 * Drop to a worse mode after a failed metadata operation: persist
 * needs-check in the header when the device still accepts writes.
 * May block.
 */
void dm_chain_metadata_failed(struct dm_chain_metadata *cmd,
			      const char *op, int r);

enum chain_metadata_mode dm_chain_mode(struct dm_chain_metadata *cmd);
bool dm_chain_needs_check(struct dm_chain_metadata *cmd);

/*
 * The job record in the active layer's header (DM_CHAIN_JOB_SIZE bytes).
 * Setting it marks the metadata dirty; the next commit writes it.  May
 * block.
 */
void dm_chain_get_job(struct dm_chain_metadata *cmd, void *rec);
void dm_chain_set_job(struct dm_chain_metadata *cmd, const void *rec);

/* A layer's UUID (zero for the raw base).  Any context. */
const u8 *dm_chain_layer_uuid(struct dm_chain_metadata *cmd, unsigned int l);

/* Geometry of the chain.  Any context. */
unsigned int dm_chain_cluster_shift(struct dm_chain_metadata *cmd);
u64 dm_chain_nr_clusters(struct dm_chain_metadata *cmd);
void dm_chain_space(struct dm_chain_metadata *cmd, u64 *used, u64 *total);

#endif
