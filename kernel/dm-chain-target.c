// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-chain: one virtual disk over a stack of layers.
 *
 * The table lists the layers bottom-up; the last one is the active layer
 * and the only one written.  Reads go to the newest layer holding the
 * cluster (one lookup in the metadata index, no metadata I/O).  Writes to a
 * cluster the active layer holds are remapped in place from map().  Any
 * other write goes to the worker, which takes a per-cluster cell so that
 * concurrent bios on one cluster are ordered, allocates the next host
 * cluster of the active layer and either lets a write covering the whole
 * cluster land there (the mapping is published when it completes) or
 * copies the cluster up: reads it into a buffer, lays the write over it and
 * writes the whole at once (with every buffer busy, dm-kcopyd copies it
 * and the write is remapped after).
 *
 * Crash argument (the metadata side is in dm-chain-metadata.c): a mapping
 * is published in memory only after the data it points to was written;
 * the commit copies the table blocks, flushes data, then writes the copies
 * and then the header.  A FLUSH completes only after a commit covering
 * every write that completed before it, and that commit flushes the active
 * layer (and a job's destination) even when no metadata changed, since
 * writes to clusters the active layer holds went there in place; a FUA
 * write that depends on an uncommitted mapping completes only after such a
 * commit.  So the device behaves like a disk with a volatile write cache:
 * what was flushed survives a crash.
 *
 * Reuse: reads, writes, partial discards and partial write-zeroes to a
 * cluster the active layer holds are sent there without a cell, so a
 * whole-cluster discard may free the host cluster while they are in
 * flight.  Each such bio is counted in an epoch before its final lookup
 * (lookup_for_io()); a freed host cluster waits until every bio counted up
 * to its free completed, then for a commit that no longer points at it,
 * and only then goes back to the allocator.  A late write can therefore
 * never land in a cluster that holds another virtual cluster's data, nor a
 * read return it.
 *
 * Suspend: from presuspend until resume nothing is parked on a full active
 * layer (no_space()), so a suspend never waits on writes that wait for
 * space; postsuspend commits, so a suspended device is consistent on disk.
 */
#include <linux/device-mapper.h>
#include <linux/dm-kcopyd.h>
#include <linux/blkdev.h>
#include <linux/hash.h>
#include <linux/module.h>
#include <linux/mempool.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/version.h>
#include <linux/wait_bit.h>
#include <linux/workqueue.h>

#include "dm-chain-target.h"
#include "dm-chain-release.h"

#define DM_MSG_PREFIX "chain"

/* ---- Helpers ---- */

static u64 bio_cluster(struct chain_c *cc, struct bio *bio)
{
	return bio->bi_iter.bi_sector >> cc->cluster_shift;
}

static sector_t cluster_offset(struct chain_c *cc, struct bio *bio)
{
	return bio->bi_iter.bi_sector & (cc->cluster_sectors - 1);
}

static bool bio_covers_cluster(struct chain_c *cc, struct bio *bio)
{
	return !cluster_offset(cc, bio) &&
	       bio_sectors(bio) == cluster_len(cc, bio_cluster(cc, bio));
}

static void wake_worker(struct chain_c *cc)
{
	queue_work(cc->wq, &cc->worker);
}

void chain_wake_worker(struct chain_c *cc)
{
	wake_worker(cc);
}

static void defer_bio(struct chain_c *cc, struct bio *bio)
{
	unsigned long flags;

	spin_lock_irqsave(&cc->lock, flags);
	bio_list_add(&cc->deferred, bio);
	spin_unlock_irqrestore(&cc->lock, flags);
	wake_worker(cc);
}

static bool can_pass_discard(struct chain_c *cc)
{
	return cc->discard_passdown &&
	       bdev_max_discard_sectors(active_dev(cc)->bdev);
}

static void remap_to_layer(struct chain_c *cc, struct bio *bio,
			   unsigned int layer, u64 host)
{
	bio_set_dev(bio, cc->devs[layer]->bdev);
	if (cc->base_raw && !layer)
		return;		/* raw: same offset as the virtual sector */
	bio->bi_iter.bi_sector = (host << cc->cluster_shift) +
				 cluster_offset(cc, bio);
}

static void remap_to_active(struct chain_c *cc, struct bio *bio, u64 host)
{
	remap_to_layer(cc, bio, cc->nr_layers - 1, host);
}

/* ---- Epochs: a freed host cluster waits for the I/O sent to it. ---- */

static bool top_mapped(struct chain_c *cc, u64 e)
{
	return chain_entry_kind(e) == CHAIN_MAPPED &&
	       chain_entry_layer(e) == cc->nr_layers - 1;
}

/*
 * Move epoch_seq on when a ticket waits for it and the ring has room, so
 * bios arriving now do not join the epoch a free waits on.  Caller holds
 * epoch_lock.
 */
static void __advance_epoch(struct chain_c *cc)
{
	if (cc->epoch_advance && cc->epoch_seq + 1 - cc->epoch_swept < NR_EPOCHS) {
		cc->epoch_seq++;
		cc->epoch_advance = false;
	}
}

/*
 * Pass over drained epochs.  Returns true if that passed a ticket: a
 * freed cluster became reusable and wants a commit.  Caller holds
 * epoch_lock.
 */
static bool __sweep_epochs(struct chain_c *cc)
{
	u64 from = cc->epoch_swept;

	while (cc->epoch_swept < cc->epoch_seq &&
	       !cc->epoch_count[cc->epoch_swept % NR_EPOCHS])
		cc->epoch_swept++;
	__advance_epoch(cc);
	return cc->epoch_swept != from && cc->epoch_last_ticket >= from;
}

/*
 * Count an I/O about to reach a host cluster without a cell, in *slot.
 * Any context.
 */
void chain_enter_epoch(struct chain_c *cc, int *slot)
{
	unsigned long flags;

	spin_lock_irqsave(&cc->epoch_lock, flags);
	__advance_epoch(cc);
	cc->epoch_count[cc->epoch_seq % NR_EPOCHS]++;
	*slot = cc->epoch_seq % NR_EPOCHS;
	spin_unlock_irqrestore(&cc->epoch_lock, flags);
}

/* The I/O counted in *slot is over (nothing if -1).  Any context. */
void chain_leave_epoch(struct chain_c *cc, int *slot)
{
	unsigned long flags;
	bool passed;

	if (*slot < 0)
		return;
	spin_lock_irqsave(&cc->epoch_lock, flags);
	cc->epoch_count[*slot]--;
	passed = __sweep_epochs(cc);
	spin_unlock_irqrestore(&cc->epoch_lock, flags);
	*slot = -1;
	if (passed)
		chain_request_commit(cc);
}

/*
 * A host cluster (of the active layer, or a job's destination) is freed
 * now: the ticket is the epoch every I/O sent to it so far counted in.
 * Reuse it only once chain_epochs_swept() is past the ticket.  Any
 * context.
 */
u64 chain_free_ticket(struct chain_c *cc)
{
	unsigned long flags;
	u64 ticket;

	spin_lock_irqsave(&cc->epoch_lock, flags);
	ticket = cc->epoch_seq;
	cc->epoch_last_ticket = ticket;
	cc->epoch_advance = true;
	__sweep_epochs(cc);	/* also moves epoch_seq on if it can */
	spin_unlock_irqrestore(&cc->epoch_lock, flags);
	return ticket;
}

u64 chain_epochs_swept(struct chain_c *cc)
{
	unsigned long flags;
	u64 swept;

	spin_lock_irqsave(&cc->epoch_lock, flags);
	__sweep_epochs(cc);
	swept = cc->epoch_swept;
	spin_unlock_irqrestore(&cc->epoch_lock, flags);
	return swept;
}

/*
 * Look up vc for a bio about to be sent where the cluster lives.  When a
 * layer's host cluster holds it, the bio is counted in an epoch first and
 * the entry read again: a discard (or a job) that frees the host cluster
 * either came before (the entry says so now) or waits for the bio.  Any
 * context.
 */
static u64 lookup_for_io(struct chain_c *cc, struct chain_bio *pb, u64 vc)
{
	u64 e = dm_chain_lookup(cc->cmd, vc), again;

	while (chain_entry_kind(e) == CHAIN_MAPPED) {
		chain_enter_epoch(cc, &pb->epoch);	/* orders the lookup after */
		again = dm_chain_lookup(cc->cmd, vc);
		if (again == e)
			break;
		chain_leave_epoch(cc, &pb->epoch);
		e = again;
	}
	return e;
}

void chain_complete_list(struct bio_list *bios, blk_status_t status)
{
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		bio->bi_status = status;
		bio_endio(bio);
	}
}

/* ---- Cells: one per cluster being allocated. ---- */

static struct hlist_head *cell_bucket(struct chain_c *cc, u64 vc)
{
	return &cc->cells[hash_64(vc, CELL_HASH_BITS)];
}

/* Caller holds cc->lock. */
static struct chain_cell *__find_cell(struct chain_c *cc, u64 vc)
{
	struct chain_cell *cell;

	hlist_for_each_entry(cell, cell_bucket(cc, vc), node)
		if (cell->vcluster == vc)
			return cell;
	return NULL;
}

/*
 * Release a cell: optionally publish its mapping first, atomically with
 * the release so that a waiter sees either the cell or the mapping.  The
 * waiters (and the starting bio if requeue) go back to the worker.
 * Any context.
 */
void chain_release_cell(struct chain_cell *cell, bool publish, bool requeue)
{
	struct chain_c *cc = cell->cc;
	unsigned long flags;

	spin_lock_irqsave(&cc->lock, flags);
	if (publish)
		dm_chain_set_mapped(cc->cmd, cell->vcluster, cell->host);
	hlist_del(&cell->node);
	if (requeue && cell->bio)
		bio_list_add(&cc->deferred, cell->bio);
	bio_list_merge(&cc->deferred, &cell->waiters);
	spin_unlock_irqrestore(&cc->lock, flags);
	mempool_free(cell, &cc->cell_pool);
	wake_worker(cc);
}

/* Fail a cell's bios, e.g. when its copy-up failed. */
static void fail_cell(struct chain_cell *cell, blk_status_t status)
{
	struct chain_c *cc = cell->cc;
	struct bio_list bios = BIO_EMPTY_LIST;
	unsigned long flags;

	spin_lock_irqsave(&cc->lock, flags);
	hlist_del(&cell->node);
	bio_list_add(&bios, cell->bio);
	bio_list_merge(&bios, &cell->waiters);
	spin_unlock_irqrestore(&cc->lock, flags);
	mempool_free(cell, &cc->cell_pool);
	chain_complete_list(&bios, status);
}

/* ---- Out of space ---- */

/*
 * The active layer is full: park the cell's writes until space comes back,
 * or fail them.  While the device suspends nothing is parked (the suspend
 * would wait for it): a noflush suspend hands the writes back to dm core,
 * which sends them again after resume; any other suspend fails them.
 */
static void no_space(struct chain_cell *cell)
{
	struct chain_c *cc = cell->cc;
	struct bio_list back = BIO_EMPTY_LIST;
	blk_status_t status = BLK_STS_NOSPC;
	struct bio_list *to;
	bool first, park;

	spin_lock_irq(&cc->lock);
	first = !cc->out_of_space;
	cc->out_of_space = true;
	park = !cc->error_if_no_space && !cc->suspending;
	if (cc->suspending && !cc->error_if_no_space &&
	    dm_noflush_suspending(cc->ti))
		status = BLK_STS_DM_REQUEUE;
	hlist_del(&cell->node);
	to = park ? &cc->no_space : &back;
	bio_list_add(to, cell->bio);
	bio_list_merge(to, &cell->waiters);
	/* Under the lock: presuspend cancels the timer after it sets suspending. */
	if (first && park && cc->no_space_timeout)
		queue_delayed_work(cc->wq, &cc->no_space_work,
				   cc->no_space_timeout * HZ);
	spin_unlock_irq(&cc->lock);
	mempool_free(cell, &cc->cell_pool);
	chain_complete_list(&back, status);
	if (!first)
		return;
	DMWARN("%s: active layer is full: %s writes that need a new cluster",
	       dm_device_name(dm_table_get_md(cc->ti->table)),
	       park ? "queueing" : status == BLK_STS_DM_REQUEUE ?
	       "handing back (suspending)" : "failing");
	dm_table_event(cc->ti->table);
}

static void take_no_space(struct chain_c *cc, struct bio_list *bios)
{
	spin_lock_irq(&cc->lock);
	bio_list_merge(bios, &cc->no_space);
	bio_list_init(&cc->no_space);
	cc->out_of_space = false;
	spin_unlock_irq(&cc->lock);
}

/* Space came back: queued writes go to the worker again. */
static void retry_no_space(struct chain_c *cc)
{
	struct bio_list bios = BIO_EMPTY_LIST;

	take_no_space(cc, &bios);
	if (bio_list_empty(&bios))
		return;
	cancel_delayed_work(&cc->no_space_work);
	spin_lock_irq(&cc->lock);
	bio_list_merge(&cc->deferred, &bios);
	spin_unlock_irq(&cc->lock);
	wake_worker(cc);
}

static void do_no_space_timeout(struct work_struct *ws)
{
	struct chain_c *cc = container_of(to_delayed_work(ws), struct chain_c,
					  no_space_work);
	struct bio_list bios = BIO_EMPTY_LIST;

	take_no_space(cc, &bios);
	if (bio_list_empty(&bios))
		return;
	DMERR("%s: active layer still full after %u s: failing queued writes",
	      dm_device_name(dm_table_get_md(cc->ti->table)),
	      cc->no_space_timeout);
	chain_complete_list(&bios, BLK_STS_NOSPC);
}

/* ---- Worker: writes that allocate, discards, write-zeroes, commits. ---- */

static void copy_work(struct work_struct *ws);

/*
 * A copy-up failed: its write fails and its host cluster, which nothing
 * points to, goes back to the allocator.  The bios waiting behind the cell
 * go back to the worker, each to its own copy-up (or whole-cluster write).
 * Any context.
 */
static void copy_failed(struct chain_cell *cell)
{
	struct chain_c *cc = cell->cc;
	struct bio *bio = cell->bio;

	DMERR_LIMIT("%s: copy-up of cluster %llu failed",
		    dm_device_name(dm_table_get_md(cc->ti->table)),
		    cell->vcluster);
	dm_chain_release_cluster(cc->cmd, cell->host);
	cell->bio = NULL;
	chain_release_cell(cell, false, false);
	bio->bi_status = BLK_STS_IOERR;
	bio_endio(bio);
}

static void copy_done(int read_err, unsigned long write_err, void *context)
{
	struct chain_cell *cell = context;

	if (read_err || write_err) {
		copy_failed(cell);
		return;
	}
	chain_release_cell(cell, true, true);
}

/*
 * A buffer for a copy-up: a free one, or a new one while the device has
 * fewer than max_copies.  NULL: dm-kcopyd copies.  The worker only.
 */
static struct chain_copy *get_copy(struct chain_c *cc)
{
	struct chain_copy *cp = NULL;

	spin_lock_irq(&cc->lock);
	if (!list_empty(&cc->copies)) {
		cp = list_first_entry(&cc->copies, struct chain_copy, free);
		list_del(&cp->free);
	} else if (cc->nr_copies < cc->max_copies) {
		cc->nr_copies++;
	} else {
		spin_unlock_irq(&cc->lock);
		return NULL;
	}
	spin_unlock_irq(&cc->lock);
	if (cp)
		return cp;

	cp = kzalloc(sizeof(*cp), GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (cp)
		cp->buf = __vmalloc(cc->cluster_sectors << SECTOR_SHIFT,
				    GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (!cp || !cp->buf) {
		kfree(cp);
		spin_lock_irq(&cc->lock);
		cc->nr_copies--;
		spin_unlock_irq(&cc->lock);
		return NULL;
	}
	INIT_WORK(&cp->work, copy_work);
	return cp;
}

static void free_copies(struct chain_c *cc)
{
	struct chain_copy *cp, *tmp;

	list_for_each_entry_safe(cp, tmp, &cc->copies, free) {
		vfree(cp->buf);
		kfree(cp);
	}
}

/* The buffer's write ended, or its read failed.  Any context. */
static void copy_end(struct chain_c *cc, struct chain_copy *cp)
{
	struct chain_cell *cell = cp->cell;
	struct bio *bio = cell->bio;
	unsigned long error = cp->error, flags;

	spin_lock_irqsave(&cc->lock, flags);
	list_add(&cp->free, &cc->copies);
	spin_unlock_irqrestore(&cc->lock, flags);
	if (error) {
		copy_failed(cell);
		return;
	}
	/* The write is on disk with the cluster: publish, then complete. */
	cell->bio = NULL;
	chain_release_cell(cell, true, false);
	bio_endio(bio);
}

static void copy_buf_io_done(unsigned long error, void *context)
{
	struct chain_copy *cp = context;
	struct chain_c *cc = cp->cell->cc;

	cp->error |= error;
	if (cp->error || cp->writing) {
		copy_end(cc, cp);
		return;
	}
	/* dm_io() may sleep: the write is issued from the workqueue. */
	queue_work(cc->wq, &cp->work);
}

/* I/O for cp's write, with the guest write's priority and REQ_SYNC. */
static void copy_buf_io(struct chain_copy *cp, blk_opf_t opf,
			struct dm_io_region *where)
{
	struct bio *bio = cp->cell->bio;
	struct dm_io_request req = {
		.bi_opf = opf | (bio->bi_opf & REQ_SYNC),
		.mem.type = DM_IO_VMA,
		.mem.ptr.vma = cp->buf,
		.notify.fn = copy_buf_io_done,
		.notify.context = cp,
		.client = cp->cell->cc->io,
	};

	if (dm_io(&req, 1, where, NULL, bio_prio(bio)))
		copy_buf_io_done(1, cp);
}

/*
 * The cluster is in the buffer: lay the write (or the zeros of a partial
 * WRITE_ZEROES) over it and write it all.
 */
static void copy_work(struct work_struct *ws)
{
	struct chain_copy *cp = container_of(ws, struct chain_copy, work);
	struct chain_c *cc = cp->cell->cc;
	struct bio *bio = cp->cell->bio;
	char *p = cp->buf + (cluster_offset(cc, bio) << SECTOR_SHIFT);
	struct bvec_iter iter;
	struct bio_vec bv;

	if (bio_op(bio) == REQ_OP_WRITE_ZEROES) {
		memset(p, 0, bio->bi_iter.bi_size);
	} else {
		bio_for_each_segment(bv, bio, iter) {
			memcpy_from_bvec(p, &bv);
			p += bv.bv_len;
		}
	}
	cp->writing = true;
	copy_buf_io(cp, REQ_OP_WRITE, &cp->to);
}

static void start_copy(struct chain_copy *cp, struct chain_cell *cell,
		       struct dm_io_region *to)
{
	cp->cell = cell;
	cp->to = *to;
	cp->error = 0;
	cp->writing = false;
}

/*
 * Fill the new host cluster with what the cluster shows now.  Through a
 * buffer the write is part of it and cell->bio completes when it lands;
 * through dm-kcopyd cell->bio is requeued and remapped after the copy.
 */
static void copy_up(struct chain_c *cc, struct chain_cell *cell)
{
	u64 e = dm_chain_lookup(cc->cmd, cell->vcluster);
	sector_t len = cluster_len(cc, cell->vcluster);
	struct dm_io_region from, to = {
		.bdev = active_dev(cc)->bdev,
		.sector = cell->host << cc->cluster_shift,
		.count = len,
	};
	struct chain_copy *cp = get_copy(cc);

	switch (chain_entry_kind(e)) {
	case CHAIN_MAPPED:
		from.bdev = cc->devs[chain_entry_layer(e)]->bdev;
		from.sector = chain_entry_host(e) << cc->cluster_shift;
		break;
	case CHAIN_RAW:
		from.bdev = cc->devs[0]->bdev;
		from.sector = cell->vcluster << cc->cluster_shift;
		break;
	default:
		if (cp) {
			start_copy(cp, cell, &to);
			memset(cp->buf, 0, len << SECTOR_SHIFT);
			copy_work(&cp->work);
			return;
		}
		dm_kcopyd_zero(cc->kc, 1, &to, 0, copy_done, cell);
		return;
	}
	from.count = len;
	if (cp) {
		start_copy(cp, cell, &to);
		copy_buf_io(cp, REQ_OP_READ, &from);
		return;
	}
	dm_kcopyd_copy(cc->kc, &from, 1, &to, 0, copy_done, cell);
}

/*
 * Take the cell for cluster vc, or park bio (if any) behind the cell that
 * exists.  Returns the new cell, or NULL when it exists already.  Process
 * context.
 */
struct chain_cell *chain_lock_cluster(struct chain_c *cc, u64 vc,
				      struct bio *bio)
{
	struct chain_cell *cell, *new;

	new = mempool_alloc(&cc->cell_pool, GFP_NOIO);
	spin_lock_irq(&cc->lock);
	cell = __find_cell(cc, vc);
	if (cell) {
		if (bio)
			bio_list_add(&cell->waiters, bio);
		spin_unlock_irq(&cc->lock);
		mempool_free(new, &cc->cell_pool);
		return NULL;
	}
	new->cc = cc;
	new->bio = bio;
	new->vcluster = vc;
	new->host = 0;
	bio_list_init(&new->waiters);
	hlist_add_head(&new->node, cell_bucket(cc, vc));
	spin_unlock_irq(&cc->lock);
	return new;
}

/* Remap bio in place if the active layer holds its cluster. */
static bool remap_if_owned(struct chain_c *cc, struct bio *bio)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	u64 e = lookup_for_io(cc, pb, bio_cluster(cc, bio));

	if (!top_mapped(cc, e)) {
		chain_leave_epoch(cc, &pb->epoch);
		return false;
	}
	remap_to_active(cc, bio, chain_entry_host(e));
	submit_bio_noacct(bio);
	return true;
}

static bool freed_pending(struct chain_c *cc)
{
	bool pending;

	spin_lock_irq(&cc->lock);
	pending = !list_empty(&cc->freed);
	spin_unlock_irq(&cc->lock);
	return pending;
}

static void commit_and_complete(struct chain_c *cc);

static void process_write(struct chain_c *cc, struct bio *bio)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	struct chain_cell *cell;
	int r;

	if (remap_if_owned(cc, bio))
		return;
	cell = chain_lock_cluster(cc, bio_cluster(cc, bio), bio);
	if (!cell)
		return;
	/* The cluster may have been published before we took the cell. */
	if (dm_chain_owned(cc->cmd, cell->vcluster)) {
		chain_release_cell(cell, false, true);
		return;
	}
	r = dm_chain_prepare(cc->cmd, cell->vcluster);
	if (r) {
		DMERR_LIMIT("%s: no memory for the index of cluster %llu: failing the write",
			    dm_device_name(dm_table_get_md(cc->ti->table)),
			    cell->vcluster);
		fail_cell(cell, BLK_STS_RESOURCE);
		return;
	}
	r = dm_chain_alloc_cluster(cc->cmd, &cell->host);
	if (r == -ENOSPC && freed_pending(cc)) {
		/* Clusters freed since the last commit become usable by one. */
		commit_and_complete(cc);
		r = dm_chain_alloc_cluster(cc->cmd, &cell->host);
	}
	if (r == -ENOSPC) {
		no_space(cell);
		return;
	}
	if (r) {
		fail_cell(cell, BLK_STS_IOERR);
		return;
	}
	if (bio_covers_cluster(cc, bio)) {
		/* Nothing below needs reading: publish when the write lands. */
		pb->publish = cell;
		remap_to_active(cc, bio, cell->host);
		submit_bio_noacct(bio);
		return;
	}
	copy_up(cc, cell);
}

/*
 * Keep a freed host cluster from the allocator until the I/O sent to it
 * drained and a commit no longer points at it (commit_and_complete()).  Without memory it is
 * leaked until the next activation, which finds it free again.
 */
static void remember_freed(struct chain_c *cc, u64 host)
{
	struct chain_freed *f = kmalloc(sizeof(*f), GFP_NOIO);

	if (!f)
		return;
	f->host = host;
	f->epoch = chain_free_ticket(cc);
	spin_lock_irq(&cc->lock);
	list_add_tail(&f->list, &cc->freed);
	spin_unlock_irq(&cc->lock);
}

/*
 * The commit no longer points at these host clusters: discard them on the
 * device and only then let the allocator have them, so a discard can never
 * land on new data.  May block.
 */
static void release_freed(struct chain_c *cc, struct list_head *freed,
			  bool committed)
{
	struct block_device *bdev = active_dev(cc)->bdev;
	struct chain_freed *f, *tmp;

	if (committed && !list_empty(freed))
		retry_no_space(cc);
	list_for_each_entry_safe(f, tmp, freed, list) {
		if (committed) {
			if (can_pass_discard(cc))
				blkdev_issue_discard(bdev, f->host << cc->cluster_shift,
						     cc->cluster_sectors, GFP_NOIO);
			dm_chain_release_cluster(cc->cmd, f->host);
		}
		list_del(&f->list);
		kfree(f);
	}
}

/* A discard or write-zeroes bio covering a whole cluster. */
static void zero_cluster(struct chain_c *cc, struct bio *bio)
{
	u64 vc = bio_cluster(cc, bio), e, old;
	struct chain_cell *cell;

	cell = chain_lock_cluster(cc, bio_cluster(cc, bio), bio);
	if (!cell)
		return;
	e = dm_chain_lookup(cc->cmd, vc);
	if (dm_chain_mode(cc->cmd) != CHAIN_MODE_WRITE) {
		fail_cell(cell, BLK_STS_IOERR);
		return;
	}
	/* Already reads as zeros: nothing to record. */
	if (chain_entry_kind(e) == CHAIN_NONE ||
	    chain_entry_kind(e) == CHAIN_ZERO) {
		cell->bio = NULL;
		chain_release_cell(cell, false, false);
		bio_endio(bio);
		return;
	}
	if (dm_chain_prepare(cc->cmd, vc)) {
		fail_cell(cell, BLK_STS_RESOURCE);
		return;
	}
	old = dm_chain_set_zero(cc->cmd, vc);
	cell->bio = NULL;
	chain_release_cell(cell, false, false);
	if (old)
		remember_freed(cc, old);
	bio_endio(bio);
}

static void process_discard(struct chain_c *cc, struct bio *bio)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));

	/* A raw layer cannot drop a cluster: its discards are advisory. */
	if (bio_covers_cluster(cc, bio) && !cc->raw_view) {
		zero_cluster(cc, bio);
		return;
	}
	/* Part of a cluster: advisory, pass down only where we own it. */
	if (can_pass_discard(cc) && remap_if_owned(cc, bio))
		return;
	/* Nothing changed: no job needs to copy the cluster again. */
	pb->mirrored = true;
	bio_endio(bio);
}

static void zero_range_done(int read_err, unsigned long write_err,
			    void *context)
{
	struct bio *bio = context;

	bio->bi_status = read_err || write_err ? BLK_STS_IOERR : BLK_STS_OK;
	bio_endio(bio);
}

/*
 * Part of a cluster the active layer holds: kcopyd zeroes it with
 * WRITE_ZEROES where the device has it and zero pages where it has not.
 */
static void zero_range(struct chain_c *cc, struct bio *bio, u64 e)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	struct dm_io_region to = {
		.bdev = active_dev(cc)->bdev,
		.sector = (chain_entry_host(e) << cc->cluster_shift) +
			  cluster_offset(cc, bio),
		.count = bio_sectors(bio),
	};

	pb->needs_flush = true;	/* kcopyd drops REQ_FUA */
	dm_kcopyd_zero(cc->kc, 1, &to, 0, zero_range_done, bio);
}

static void process_write_zeroes(struct chain_c *cc, struct bio *bio)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	u64 e;

	if (bio_covers_cluster(cc, bio) && !cc->raw_view) {
		zero_cluster(cc, bio);
		return;
	}
	e = lookup_for_io(cc, pb, bio_cluster(cc, bio));
	if (top_mapped(cc, e)) {
		zero_range(cc, bio, e);
		return;
	}
	chain_leave_epoch(cc, &pb->epoch);
	process_write(cc, bio);	/* copy-up: see copy_up() */
}

static void process_bio(struct chain_c *cc, struct bio *bio)
{
	switch (bio_op(bio)) {
	case REQ_OP_DISCARD:
		process_discard(cc, bio);
		break;
	case REQ_OP_WRITE_ZEROES:
		process_write_zeroes(cc, bio);
		break;
	default:
		process_write(cc, bio);
	}
}

static void process_deferred_bios(struct chain_c *cc)
{
	struct bio_list bios;
	struct bio *bio;

	spin_lock_irq(&cc->lock);
	bios = cc->deferred;
	bio_list_init(&cc->deferred);
	spin_unlock_irq(&cc->lock);

	while ((bio = bio_list_pop(&bios)))
		process_bio(cc, bio);
}

/*
 * Commit, then complete the FLUSH and FUA bios that waited for it and
 * release the host clusters the commit stopped pointing at and no I/O can
 * reach.  The lists are taken before the commit, so everything they
 * depend on was recorded before the commit began.  May block.
 */
static void commit_and_complete(struct chain_c *cc)
{
	u64 swept = chain_epochs_swept(cc);
	struct chain_freed *f, *tmp;
	struct bio_list waiters;
	LIST_HEAD(freed);
	int r;

	mutex_lock(&cc->commit_lock);
	spin_lock_irq(&cc->lock);
	waiters = cc->commit_waiters;
	bio_list_init(&cc->commit_waiters);
	/* Only what no I/O can reach any more; the rest waits. */
	list_for_each_entry_safe(f, tmp, &cc->freed, list)
		if (f->epoch < swept)
			list_move_tail(&f->list, &freed);
	cc->commit_due = false;
	spin_unlock_irq(&cc->lock);

	/*
	 * The job's destination first: the record names what it holds.  A
	 * FLUSH waiting here is owed a flush of the active layer even when no
	 * metadata changed: its writes to owned clusters went there in place.
	 */
	r = chain_job_commit(cc);
	if (!r)
		r = dm_chain_commit(cc->cmd, !bio_list_empty(&waiters));
	if (r)
		dm_table_event(cc->ti->table);
	chain_complete_list(&waiters, r ? BLK_STS_IOERR : BLK_STS_OK);
	release_freed(cc, &freed, !r);
	if (!r)
		chain_job_committed(cc);
	mutex_unlock(&cc->commit_lock);
}

void chain_commit_now(struct chain_c *cc)
{
	commit_and_complete(cc);
}

/* Ask the worker for a commit soon.  Any context. */
void chain_request_commit(struct chain_c *cc)
{
	unsigned long flags;

	spin_lock_irqsave(&cc->lock, flags);
	cc->commit_due = true;
	spin_unlock_irqrestore(&cc->lock, flags);
	wake_worker(cc);
}

/* The active layer's used share, in whole percent. */
static unsigned int used_pct(struct dm_chain_metadata *cmd)
{
	u64 used, total;

	dm_chain_space(cmd, &used, &total);
	return total ? div64_u64(used * 100, total) : 100;
}

/*
 * Raise an event each time the active layer's used share crosses a whole
 * percent, up as it fills or down after it grew: a monitor waiting on
 * events (chainadm monitor) can then grow the layer before it is full.
 * The worker and the commit tick, which may run at once; may block.
 */
static void space_event(struct chain_c *cc)
{
	unsigned int pct;

	if (cc->raw_view)
		return;		/* a raw layer's space never changes */
	pct = used_pct(cc->cmd);

	if (xchg(&cc->space_pct, pct) != pct)
		dm_table_event(cc->ti->table);
}

static void do_worker(struct work_struct *ws)
{
	struct chain_c *cc = container_of(ws, struct chain_c, worker);
	bool commit;

	process_deferred_bios(cc);
	space_event(cc);

	spin_lock_irq(&cc->lock);
	commit = cc->commit_due || !bio_list_empty(&cc->commit_waiters);
	spin_unlock_irq(&cc->lock);
	if (commit)
		commit_and_complete(cc);
}

static void do_commit_tick(struct work_struct *ws)
{
	struct chain_c *cc = container_of(to_delayed_work(ws), struct chain_c,
					  commit_work);

	bool due;

	mutex_lock(&cc->commit_lock);	/* the job's views stay open */
	due = dm_chain_dirty(cc->cmd) || chain_job_wants_commit(cc);
	mutex_unlock(&cc->commit_lock);
	if (due) {
		spin_lock_irq(&cc->lock);
		cc->commit_due = true;
		spin_unlock_irq(&cc->lock);
		wake_worker(cc);
	}
	space_event(cc);	/* a job's copies allocate too */
	queue_delayed_work(cc->wq, &cc->commit_work, COMMIT_PERIOD);
}

/* ---- Target methods ---- */

/*
 * Construct a chain device:
 *
 *   chain <#layers> <base type> <layer dev>{#layers}
 *         [<#feature args> <feature arg>*]
 *
 *   <#layers>    1..255
 *   <base type>  raw | chain: what the bottom layer is
 *   <layer dev>  bottom first; the last one is the active layer
 *
 * Feature args:
 *   ignore_discard             do not accept discards
 *   no_discard_passdown        do not pass discards down to the active layer
 *   error_if_no_space          fail writes when the active layer is full
 *   no_space_timeout:<secs>    else queue them this long (default 60, 0 =
 *                              forever) and raise an event
 *   mirror <dev> <raw|chain> <full|shallow>
 *                              copy the device to dev (four words): the
 *                              mirror job starts with the table
 *   dest_zeroed                the raw mirror destination reads zeros
 *   bandwidth:<bytes/s>        the job's initial bandwidth limit
 */

/*
 * ctr errors need a formatted message that outlives the constructor: dm
 * prints ti->error right after we return.  A small ring of buffers keeps
 * each message valid for that long even with concurrent loads.
 */
#define ERR_SLOTS	8
#define ERR_LEN		192
static char ctr_errors[ERR_SLOTS][ERR_LEN];
static atomic_t ctr_error_next = ATOMIC_INIT(0);

static char *ctr_error_buf(void)
{
	return ctr_errors[atomic_inc_return(&ctr_error_next) % ERR_SLOTS];
}

static __printf(2, 3) int ctr_fail(struct dm_target *ti, const char *fmt, ...)
{
	char *buf = ctr_error_buf();
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, ERR_LEN, fmt, args);
	va_end(args);
	ti->error = buf;
	return -EINVAL;
}

static int parse_timeout(struct dm_target *ti, const char *arg,
			 unsigned int *seconds)
{
	if (kstrtouint(arg, 10, seconds))
		return ctr_fail(ti, "Invalid no_space_timeout '%s': want seconds",
				arg);
	return 0;
}

static int parse_mirror(struct dm_arg_set *as, unsigned int *argc,
			struct chain_c *cc, struct dm_target *ti)
{
	const char *path, *type, *mode;
	int r;

	if (*argc < 3 || cc->mirror_dev)
		return ctr_fail(ti, cc->mirror_dev ? "Feature 'mirror' given twice" :
				"Feature 'mirror' wants <dev> <raw|chain> <full|shallow>");
	path = dm_shift_arg(as);
	type = dm_shift_arg(as);
	mode = dm_shift_arg(as);
	*argc -= 3;
	if (!strcasecmp(type, "raw"))
		cc->mirror_raw = true;
	else if (strcasecmp(type, "chain"))
		return ctr_fail(ti, "Invalid mirror type '%s': want raw or chain", type);
	if (!strcasecmp(mode, "shallow"))
		cc->mirror_shallow = true;
	else if (strcasecmp(mode, "full"))
		return ctr_fail(ti, "Invalid mirror mode '%s': want full or shallow", mode);
	if (cc->mirror_raw && cc->mirror_shallow)
		return ctr_fail(ti, "A raw mirror destination cannot be shallow: it has no backing layer");
	if (cc->mirror_shallow && cc->nr_layers < 2)
		return ctr_fail(ti, "A shallow mirror needs a layer below the active one");
	r = dm_get_device(ti, path, dm_table_get_mode(ti->table), &cc->mirror_dev);
	if (r) {
		ctr_fail(ti, "Mirror destination: cannot open device '%s' (%d)", path, r);
		return r;
	}
	return 0;
}

static int parse_bandwidth(struct dm_target *ti, const char *arg, u64 *bw)
{
	if (kstrtou64(arg, 10, bw))
		return ctr_fail(ti, "Invalid bandwidth '%s': want bytes per second",
				arg);
	return 0;
}

static int parse_features(struct dm_arg_set *as, struct chain_c *cc,
			  struct dm_target *ti)
{
	static const struct dm_arg _args[] = {
		{0, 10, "Invalid number of feature arguments"},
	};
	unsigned int argc;
	const char *arg;
	int r;

	cc->discard_passdown = true;
	cc->no_space_timeout = DEFAULT_NO_SPACE_TIMEOUT;
	if (!as->argc)
		return 0;
	r = dm_read_arg_group(_args, as, &argc, &ti->error);
	if (r)
		return r;
	while (argc--) {
		arg = dm_shift_arg(as);
		if (!strcasecmp(arg, "ignore_discard"))
			cc->ignore_discard = true;
		else if (!strcasecmp(arg, "no_discard_passdown"))
			cc->discard_passdown = false;
		else if (!strcasecmp(arg, "error_if_no_space"))
			cc->error_if_no_space = true;
		else if (!strncasecmp(arg, "no_space_timeout:", 17))
			r = parse_timeout(ti, arg + 17, &cc->no_space_timeout);
		else if (!strcasecmp(arg, "mirror"))
			r = parse_mirror(as, &argc, cc, ti);
		else if (!strcasecmp(arg, "dest_zeroed"))
			cc->dest_zeroed = true;
		else if (!strncasecmp(arg, "bandwidth:", 10))
			r = parse_bandwidth(ti, arg + 10, &cc->bandwidth);
		else
			r = ctr_fail(ti, "Unknown feature argument '%s'", arg);
		if (r)
			return r;
	}
	return 0;
}

static int parse_layers(struct dm_arg_set *as, struct chain_c *cc,
			struct dm_target *ti)
{
	dev_t self = disk_devt(dm_disk(dm_table_get_md(ti->table)));
	unsigned int l, m;
	const char *path;
	int r;

	for (l = 0; l < cc->nr_layers; l++) {
		path = dm_shift_arg(as);
		/* A commit writes into a lower layer: open all like the top. */
		r = dm_get_device(ti, path, dm_table_get_mode(ti->table),
				  &cc->devs[l]);
		if (r) {
			/* dm core refuses the device's own number on newer kernels. */
			ctr_fail(ti,
				 "Layer %u: cannot open device '%s' (%d): missing, in use, or this device itself",
				 l, path, r);
			return r;
		}
		if (cc->devs[l]->bdev->bd_dev == self)
			return ctr_fail(ti, "Layer %u is this device itself", l);
		for (m = 0; m < l; m++)
			if (cc->devs[m]->bdev == cc->devs[l]->bdev)
				return ctr_fail(ti, "Device %s is listed twice (layers %u and %u)",
						path, m, l);
	}
	return 0;
}

static int parse_table(struct dm_arg_set *as, struct chain_c *cc,
		       struct dm_target *ti)
{
	const char *type;
	int r;

	type = dm_shift_arg(as);
	if (!strcasecmp(type, "raw"))
		cc->base_raw = true;
	else if (strcasecmp(type, "chain"))
		return ctr_fail(ti, "Invalid base type '%s': want raw or chain",
				type);
	if (as->argc < cc->nr_layers)
		return ctr_fail(ti, "Table names %u layers but lists only %u devices",
				cc->nr_layers, as->argc);
	r = parse_layers(as, cc, ti);
	if (r)
		return r;
	r = parse_features(as, cc, ti);
	if (r)
		return r;
	if (cc->mirror_dev) {
		dev_t self = disk_devt(dm_disk(dm_table_get_md(ti->table)));
		unsigned int l;

		if (cc->mirror_dev->bdev->bd_dev == self)
			return ctr_fail(ti, "The mirror destination is this device itself");
		for (l = 0; l < cc->nr_layers; l++)
			if (cc->devs[l]->bdev == cc->mirror_dev->bdev)
				return ctr_fail(ti, "The mirror destination is layer %u of the chain",
						l);
	}
	if (as->argc)
		return ctr_fail(ti,
				"Unexpected argument '%s' after the feature arguments",
				as->argv[0]);
	return 0;
}

/*
 * The view a copy of a lone raw layer reads through: clusters of the
 * chain destination's size (the job walks both by one cluster number), or
 * 64 KiB for a raw destination.  A full copy: parse_features() refuses a
 * shallow one, with no layer below the active one.
 */
static struct dm_chain_metadata *open_raw_view(struct chain_c *cc,
					       struct dm_target *ti, char *err)
{
	struct block_device *dest = cc->mirror_dev->bdev;
	u64 size = (u64)ti->len << SECTOR_SHIFT;
	unsigned int shift = ilog2(DM_CHAIN_DEFAULT_CLUSTER_SIZE);
	struct dm_chain_metadata *v;

	if (!cc->mirror_raw) {
		v = dm_chain_metadata_open(&dest, 1, DM_CHAIN_OPEN_COPY_DEST,
					   size, err, ERR_LEN);
		if (IS_ERR(v))
			return v;
		shift = dm_chain_cluster_shift(v);
		dm_chain_metadata_close(v);
	}
	return dm_chain_raw_view_open(cc->devs[0]->bdev, shift, size, err,
				      ERR_LEN);
}

static int open_metadata(struct chain_c *cc, struct dm_target *ti)
{
	struct dm_chain_metadata *cmd;
	struct block_device **bdevs;
	char *err = ctr_error_buf();
	unsigned int l;

	if (cc->nr_layers == 1 && cc->base_raw) {
		if (bdev_nr_sectors(cc->devs[0]->bdev) < ti->len)
			return ctr_fail(ti,
					"Raw layer is truncated: %llu sectors, target length %llu",
					(u64)bdev_nr_sectors(cc->devs[0]->bdev),
					(u64)ti->len);
		/* A lone raw layer is written in place, like dm-linear... */
		if (!cc->mirror_dev)
			return 0;
		/* ...and through a view of it while it is copied. */
		cmd = open_raw_view(cc, ti, err);
	} else {
		bdevs = kmalloc_array(cc->nr_layers, sizeof(*bdevs),
				      GFP_KERNEL);
		if (!bdevs) {
			ti->error = "Cannot allocate the layer list";
			return -ENOMEM;
		}
		for (l = 0; l < cc->nr_layers; l++)
			bdevs[l] = cc->devs[l]->bdev;
		cmd = dm_chain_metadata_open(bdevs, cc->nr_layers,
					     cc->base_raw ? DM_CHAIN_OPEN_RAW_BASE : 0,
					     (u64)ti->len << SECTOR_SHIFT, err,
					     ERR_LEN);
		kfree(bdevs);
	}
	if (IS_ERR(cmd)) {
		ti->error = err;
		return PTR_ERR(cmd);
	}
	cc->cmd = cmd;
	cc->raw_view = dm_chain_is_raw_view(cmd);
	cc->space_pct = used_pct(cmd);
	cc->cluster_shift = dm_chain_cluster_shift(cmd) - SECTOR_SHIFT;
	cc->cluster_sectors = 1 << cc->cluster_shift;
	/*
	 * Each copy holds a cell until copy_work(), on cc->wq, has run: leave
	 * half of the cells' reserve to the worker on that queue.
	 */
	cc->max_copies = clamp(COPY_BUF_SECTORS >> cc->cluster_shift, 1,
			       MIN_CELLS / 2);
	return 0;
}

static int create_workers(struct chain_c *cc, struct dm_target *ti)
{
	int r;

	/* A stream holds a cell for each of its syncs in flight. */
	r = mempool_init_kmalloc_pool(&cc->cell_pool,
				      MIN_CELLS + JOB_MAX_IN_FLIGHT,
				      sizeof(struct chain_cell));
	if (r) {
		ti->error = "Cannot allocate the cell pool";
		return r;
	}
	cc->wq = alloc_workqueue("dm-" DM_MSG_PREFIX, WQ_MEM_RECLAIM, 0);
	if (!cc->wq) {
		ti->error = "Cannot allocate the workqueue";
		return -ENOMEM;
	}
	cc->kc = dm_kcopyd_client_create(NULL);
	if (IS_ERR(cc->kc)) {
		r = PTR_ERR(cc->kc);
		cc->kc = NULL;
		ti->error = "Cannot create the kcopyd client";
		return r;
	}
	cc->io = dm_io_client_create();
	if (IS_ERR(cc->io)) {
		r = PTR_ERR(cc->io);
		cc->io = NULL;
		ti->error = "Cannot create the dm-io client";
		return r;
	}
	return 0;
}

static int set_target_limits(struct chain_c *cc, struct dm_target *ti)
{
	ti->per_io_data_size = sizeof(struct chain_bio);
	ti->num_flush_bios = 1;
	ti->flush_supported = true;
	ti->num_discard_bios = cc->ignore_discard ? 0 : 1;
	ti->num_write_zeroes_bios = 1;
	if (cc->cmd)
		ti->discards_supported = !cc->ignore_discard;
	return 0;
}

static void chain_free(struct chain_c *cc)
{
	unsigned int l;

	cancel_delayed_work_sync(&cc->commit_work);
	cancel_delayed_work_sync(&cc->no_space_work);
	chain_job_dtr(cc);
	if (cc->kc)
		dm_kcopyd_client_destroy(cc->kc);
	if (cc->io)
		dm_io_client_destroy(cc->io);
	free_copies(cc);
	if (cc->wq)
		destroy_workqueue(cc->wq);
	mempool_exit(&cc->cell_pool);
	if (cc->cmd) {
		release_freed(cc, &cc->freed, false);
		dm_chain_metadata_close(cc->cmd);
	}
	for (l = 0; l < cc->nr_layers; l++)
		if (cc->devs[l])
			dm_put_device(cc->ti, cc->devs[l]);
	if (cc->mirror_dev)
		dm_put_device(cc->ti, cc->mirror_dev);
	kfree(cc);
}

static int chain_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	static const struct dm_arg _args[] = {
		{1, DM_CHAIN_MAX_LAYERS, "Invalid number of layers: want 1..255"},
	};
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	unsigned int nr;
	struct chain_c *cc;
	char *err;
	int r;

	if (argc < 3) {
		ti->error = "Too few arguments: want <#layers> <raw|chain> <dev>...";
		return -EINVAL;
	}
	r = dm_read_arg(_args, &as, &nr, &ti->error);
	if (r)
		return r;
	cc = kzalloc(struct_size(cc, devs, nr), GFP_KERNEL);
	if (!cc) {
		ti->error = "Cannot allocate chain context";
		return -ENOMEM;
	}
	cc->ti = ti;
	cc->nr_layers = nr;
	spin_lock_init(&cc->lock);
	spin_lock_init(&cc->epoch_lock);
	mutex_init(&cc->commit_lock);
	mutex_init(&cc->message_lock);
	cc->epoch_seq = 1;	/* tickets start at 1: 0 means none yet */
	cc->epoch_swept = 1;
	bio_list_init(&cc->deferred);
	bio_list_init(&cc->commit_waiters);
	INIT_LIST_HEAD(&cc->freed);
	INIT_LIST_HEAD(&cc->copies);
	bio_list_init(&cc->no_space);
	INIT_WORK(&cc->worker, do_worker);
	INIT_DELAYED_WORK(&cc->commit_work, do_commit_tick);
	INIT_DELAYED_WORK(&cc->no_space_work, do_no_space_timeout);

	r = parse_table(&as, cc, ti);
	if (r)
		goto bad;
	r = open_metadata(cc, ti);
	if (r)
		goto bad;
	r = create_workers(cc, ti);
	if (r)
		goto bad;
	err = ctr_error_buf();
	r = chain_job_ctr(cc, err, ERR_LEN);
	if (r) {
		ti->error = err;
		goto bad;
	}
	r = set_target_limits(cc, ti);
	if (r)
		goto bad;
	ti->private = cc;
	return 0;

bad:
	chain_free(cc);
	return r;
}

static void chain_dtr(struct dm_target *ti)
{
	chain_free(ti->private);
}

/*
 * Does index entry next, n clusters after entry e, continue e's extent:
 * the same layer at the host cluster n further on, or zeros alike?
 */
static bool extent_continues(u64 e, u64 next, u64 n)
{
	enum chain_kind kind = chain_entry_kind(e);

	switch (kind) {
	case CHAIN_NONE:
	case CHAIN_ZERO:
		return chain_entry_kind(next) == CHAIN_NONE ||
		       chain_entry_kind(next) == CHAIN_ZERO;
	case CHAIN_RAW:
		return chain_entry_kind(next) == CHAIN_RAW;
	default:
		return chain_entry_kind(next) == kind &&
		       chain_entry_layer(next) == chain_entry_layer(e) &&
		       chain_entry_host(next) == chain_entry_host(e) + n;
	}
}

/*
 * Trim bio to what one remap can serve: its first cluster and, if wide,
 * the following clusters that continue the first one's extent.  dm-core
 * sends the rest as a new bio.  Sequential I/O through clusters allocated
 * in order then passes whole, as through dm-linear.
 */
static void trim_to_extent(struct chain_c *cc, struct bio *bio, u64 e,
			   bool wide)
{
	sector_t len = cc->cluster_sectors - cluster_offset(cc, bio);
	u64 vc = bio_cluster(cc, bio), n;

	for (n = 1; wide && len < bio_sectors(bio); n++) {
		if (!extent_continues(e, dm_chain_lookup(cc->cmd, vc + n), n))
			break;
		len += cc->cluster_sectors;
	}
	if (len < bio_sectors(bio))
		dm_accept_partial_bio(bio, len);
}

/* Does bio reach past the end of its first cluster? */
static bool spans_clusters(struct chain_c *cc, struct bio *bio)
{
	return cluster_offset(cc, bio) + bio_sectors(bio) > cc->cluster_sectors;
}

void chain_wait_wide_writes(struct chain_c *cc)
{
	smp_mb();	/* cc->job before the count: pairs with map_write() */
	wait_var_event(&cc->wide_writes, !atomic_read(&cc->wide_writes));
}

static void wide_write_done(struct chain_c *cc)
{
	if (atomic_dec_and_test(&cc->wide_writes))
		wake_up_var(&cc->wide_writes);
}

/*
 * A write to a cluster the active layer holds is remapped here, across
 * the following clusters too unless a job copies guest writes (one
 * cluster at a time); any other write goes to the worker.
 */
static int map_write(struct chain_c *cc, struct bio *bio, u64 e)
{
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	bool owned = top_mapped(cc, e);
	bool wide = false;

	if (owned && spans_clusters(cc, bio)) {
		atomic_inc(&cc->wide_writes);
		smp_mb__after_atomic();	/* pairs with chain_wait_wide_writes() */
		wide = !chain_job_may_mirror(cc);
		if (!wide)
			wide_write_done(cc);
	}
	trim_to_extent(cc, bio, e, wide);
	pb->len = bio_sectors(bio);
	if (wide && spans_clusters(cc, bio)) {
		pb->wide = true;
		pb->mirrored = true;	/* no job copies it: see above */
	} else if (wide) {
		wide_write_done(cc);	/* the extent ended in its cluster */
	}
	if (owned) {
		remap_to_active(cc, bio, chain_entry_host(e));
		return DM_MAPIO_REMAPPED;
	}
	chain_leave_epoch(cc, &pb->epoch);	/* the worker looks again */
	defer_bio(cc, bio);
	return DM_MAPIO_SUBMITTED;
}

static int map_read(struct chain_c *cc, struct bio *bio, u64 e)
{
	switch (chain_entry_kind(e)) {
	case CHAIN_MAPPED:
	case CHAIN_RAW:
		remap_to_layer(cc, bio, chain_entry_layer(e),
			       chain_entry_host(e));
		return DM_MAPIO_REMAPPED;
	default:
		zero_fill_bio(bio);
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
}

static int map_flush(struct chain_c *cc, struct bio *bio)
{
	unsigned long flags;

	if (!dm_chain_dirty(cc->cmd) && !chain_job_mirroring(cc)) {
		bio_set_dev(bio, active_dev(cc)->bdev);
		return DM_MAPIO_REMAPPED;
	}
	spin_lock_irqsave(&cc->lock, flags);
	bio_list_add(&cc->commit_waiters, bio);
	spin_unlock_irqrestore(&cc->lock, flags);
	wake_worker(cc);
	return DM_MAPIO_SUBMITTED;
}

static int chain_map(struct dm_target *ti, struct bio *bio)
{
	struct chain_c *cc = ti->private;
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	unsigned long now;
	u64 vc, e;

	pb->publish = NULL;
	pb->commit_waited = false;
	pb->mirrored = false;
	pb->wide = false;
	pb->epoch = -1;
	pb->needs_flush = false;
	pb->vcluster = 0;
	pb->offset = 0;
	pb->len = 0;

	if (!cc->cmd) {
		bio_set_dev(bio, cc->devs[0]->bdev);
		if (bio_sectors(bio))
			bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
		return DM_MAPIO_REMAPPED;
	}
	if (bio->bi_opf & REQ_PREFLUSH)
		return map_flush(cc, bio);

	/* Jobs yield to the guest (job_limits()); written once a tick. */
	now = jiffies;
	if (READ_ONCE(cc->guest_io) != now)
		WRITE_ONCE(cc->guest_io, now);
	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	vc = bio_cluster(cc, bio);
	pb->vcluster = vc;
	pb->offset = cluster_offset(cc, bio);
	switch (bio_op(bio)) {
	case REQ_OP_READ:
		e = lookup_for_io(cc, pb, vc);
		trim_to_extent(cc, bio, e, true);
		return map_read(cc, bio, e);
	case REQ_OP_WRITE:
		return map_write(cc, bio, lookup_for_io(cc, pb, vc));
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		/* The worker handles one cluster per bio. */
		trim_to_extent(cc, bio, 0, false);
		pb->len = bio_sectors(bio);
		defer_bio(cc, bio);
		return DM_MAPIO_SUBMITTED;
	default:
		return DM_MAPIO_KILL;
	}
}

static int chain_end_io(struct dm_target *ti, struct bio *bio,
			blk_status_t *error)
{
	struct chain_c *cc = ti->private;
	struct chain_bio *pb = dm_per_bio_data(bio, sizeof(*pb));
	unsigned long flags;

	if (!cc->cmd)
		return DM_ENDIO_DONE;
	if (pb->wide) {
		pb->wide = false;
		wide_write_done(cc);
	}
	if (pb->publish) {
		struct chain_cell *cell = pb->publish;

		pb->publish = NULL;
		cell->bio = NULL;
		/* Nothing points at a cluster whose first write failed. */
		if (*error)
			dm_chain_release_cluster(cc->cmd, cell->host);
		chain_release_cell(cell, !*error, false);
	}
	/*
	 * An active commit or a mirror copies the write before it completes
	 * (reading it back from the active layer: the epoch holds on).
	 */
	if (!*error && chain_job_end_io(cc, bio, pb))
		return DM_ENDIO_INCOMPLETE;
	chain_leave_epoch(cc, &pb->epoch);
	/*
	 * A FUA write is durable only with its mapping committed, or with a
	 * flush when it went down without its FUA flag.
	 */
	if ((bio->bi_opf & REQ_FUA) && !*error && !pb->commit_waited &&
	    (pb->needs_flush || dm_chain_dirty(cc->cmd))) {
		pb->commit_waited = true;
		spin_lock_irqsave(&cc->lock, flags);
		bio_list_add(&cc->commit_waiters, bio);
		spin_unlock_irqrestore(&cc->lock, flags);
		wake_worker(cc);
		return DM_ENDIO_INCOMPLETE;
	}
	return DM_ENDIO_DONE;
}

static void chain_presuspend(struct dm_target *ti)
{
	struct chain_c *cc = ti->private;
	struct bio_list bios = BIO_EMPTY_LIST;

	if (!cc->cmd)
		return;
	chain_job_presuspend(cc);
	/*
	 * Queued no-space bios would block the suspend: hand them back, and
	 * park no more until resume (no_space()).
	 */
	spin_lock_irq(&cc->lock);
	cc->suspending = true;
	spin_unlock_irq(&cc->lock);
	cancel_delayed_work_sync(&cc->no_space_work);
	take_no_space(cc, &bios);
	chain_complete_list(&bios, dm_noflush_suspending(ti) ? BLK_STS_DM_REQUEUE :
			     BLK_STS_NOSPC);
}

static void end_suspending(struct chain_c *cc)
{
	spin_lock_irq(&cc->lock);
	cc->suspending = false;
	spin_unlock_irq(&cc->lock);
}

static void chain_presuspend_undo(struct dm_target *ti)
{
	struct chain_c *cc = ti->private;

	if (!cc->cmd)
		return;
	end_suspending(cc);
	chain_job_resume(cc);
}

static void chain_postsuspend(struct dm_target *ti)
{
	struct chain_c *cc = ti->private;

	if (!cc->cmd)
		return;
	cancel_delayed_work_sync(&cc->commit_work);
	chain_job_postsuspend(cc);
	flush_workqueue(cc->wq);
	commit_and_complete(cc);
	/*
	 * A chain's commit ends with a header written with PREFLUSH; a raw
	 * view has none to write: flush it, so that a suspend leaves the raw
	 * layer as durable as the copy's destination (errors are logged).
	 */
	if (cc->raw_view)
		dm_chain_commit(cc->cmd, true);
}

static int chain_preresume(struct dm_target *ti)
{
	struct chain_c *cc = ti->private;

	int r;

	if (!cc->cmd)
		return 0;
	mutex_lock(&cc->message_lock);
	r = dm_chain_metadata_refresh(cc->cmd);
	mutex_unlock(&cc->message_lock);
	return r;
}

static void chain_resume(struct dm_target *ti)
{
	struct chain_c *cc = ti->private;

	if (!cc->cmd)
		return;
	end_suspending(cc);
	retry_no_space(cc);
	chain_job_resume(cc);
	queue_delayed_work(cc->wq, &cc->commit_work, COMMIT_PERIOD);
}

static void emit_features(struct chain_c *cc, char *result,
			  unsigned int maxlen, unsigned int *szp)
{
	unsigned int sz = *szp, n;
	bool timeout = !cc->error_if_no_space &&
		       cc->no_space_timeout != DEFAULT_NO_SPACE_TIMEOUT;

	n = cc->ignore_discard + !cc->discard_passdown +
	    cc->error_if_no_space + timeout + (cc->mirror_dev ? 4 : 0) +
	    cc->dest_zeroed + !!cc->bandwidth;
	if (n)
		DMEMIT(" %u", n);
	if (cc->ignore_discard)
		DMEMIT(" ignore_discard");
	if (!cc->discard_passdown)
		DMEMIT(" no_discard_passdown");
	if (cc->error_if_no_space)
		DMEMIT(" error_if_no_space");
	if (timeout)
		DMEMIT(" no_space_timeout:%u", cc->no_space_timeout);
	if (cc->mirror_dev)
		DMEMIT(" mirror %s %s %s", cc->mirror_dev->name,
		       cc->mirror_raw ? "raw" : "chain",
		       cc->mirror_shallow ? "shallow" : "full");
	if (cc->dest_zeroed)
		DMEMIT(" dest_zeroed");
	if (cc->bandwidth)
		DMEMIT(" bandwidth:%llu", cc->bandwidth);
	*szp = sz;
}

/*
 * Status:
 *
 *   <#layers> <cluster size> <allocated>/<total> <metadata mode>
 *   <needs_check> <space>
 *
 *   <cluster size>     in 512-byte sectors, '-' for a lone raw layer
 *   <allocated>/<total> active layer data clusters, '-' for a raw layer
 *   <metadata mode>    rw | ro | Fail
 *   <needs_check>      needs_check | -
 *   <space>            ok | full (writes are queued or failed)
 *
 * followed by the block job:
 *
 *   <type> <phase> <done>/<total> <rate> <bandwidth> <errors> <last error>
 *
 *   <type>             none | stream | commit | active-commit | mirror
 *   <phase>            - | running | paused | ready | completed | failed |
 *                      cancelled
 *   <done>/<total>     bytes copied and to copy
 *   <rate>             bytes/s over the last second; <bandwidth> the limit,
 *                      0 = none; <errors> copy errors seen; <last error>
 *                      errno of the last one, or -
 */
static void chain_status(struct dm_target *ti, status_type_t type,
			 unsigned int status_flags, char *result,
			 unsigned int maxlen)
{
	static const char * const modes[] = { "rw", "ro", "Fail" };
	struct chain_c *cc = ti->private;
	unsigned int sz = 0, l;
	u64 used, total;

	switch (type) {
	case STATUSTYPE_INFO:
		if (!cc->cmd || cc->raw_view) {
			DMEMIT("%u - - %s - ok", cc->nr_layers,
			       modes[cc->cmd ? dm_chain_mode(cc->cmd) : 0]);
			sz = chain_job_status(cc, result, maxlen, sz);
			break;
		}
		dm_chain_space(cc->cmd, &used, &total);
		DMEMIT("%u %llu %llu/%llu %s %s %s", cc->nr_layers,
		       (u64)cc->cluster_sectors, used, total,
		       modes[dm_chain_mode(cc->cmd)],
		       dm_chain_needs_check(cc->cmd) ? "needs_check" : "-",
		       READ_ONCE(cc->out_of_space) ? "full" : "ok");
		sz = chain_job_status(cc, result, maxlen, sz);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%u %s", cc->nr_layers, cc->base_raw ? "raw" : "chain");
		for (l = 0; l < cc->nr_layers; l++)
			DMEMIT(" %s", cc->devs[l]->name);
		emit_features(cc, result, maxlen, &sz);
		break;
	default:
		result[0] = '\0';
		break;
	}
}

static int chain_message(struct dm_target *ti, unsigned int argc, char **argv,
			 char *result, unsigned int maxlen)
{
	struct chain_c *cc = ti->private;
	int r;

	if (argc && (!strcasecmp(argv[0], "stream") ||
		     !strcasecmp(argv[0], "commit") ||
		     !strcasecmp(argv[0], "job"))) {
		mutex_lock(&cc->message_lock);
		r = chain_job_message(cc, argc, argv);
		mutex_unlock(&cc->message_lock);
		return r;
	}
	DMWARN("%s: unrecognised message '%s': want stream, commit or job",
	       dm_device_name(dm_table_get_md(ti->table)), argc ? argv[0] : "");
	return -EINVAL;
}

static int chain_iterate_devices(struct dm_target *ti,
				 iterate_devices_callout_fn fn, void *data)
{
	struct chain_c *cc = ti->private;
	unsigned int l;
	int r = 0;

	for (l = 0; !r && l < cc->nr_layers; l++) {
		struct dm_dev *dev = cc->devs[l];
		bool raw = cc->base_raw && !l;

		r = fn(ti, dev, 0, raw ? ti->len : bdev_nr_sectors(dev->bdev),
		       data);
	}
	if (!r && cc->mirror_dev)
		r = fn(ti, cc->mirror_dev, 0,
		       cc->mirror_raw ? ti->len :
		       bdev_nr_sectors(cc->mirror_dev->bdev), data);
	return r;
}

static void chain_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	struct chain_c *cc = ti->private;

	if (!cc->cmd || cc->ignore_discard)
		return;
	limits->discard_granularity = cc->cluster_sectors << SECTOR_SHIFT;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 9, 0)
	limits->max_hw_discard_sectors = cc->cluster_sectors;
#else
	limits->max_discard_sectors = cc->cluster_sectors;
#endif
	limits->max_write_zeroes_sectors = cc->cluster_sectors;
	limits->io_opt = cc->cluster_sectors << SECTOR_SHIFT;
}

static struct target_type chain_target = {
	.name = "chain",
	.version = {1, 3, 0},
	.module = THIS_MODULE,
	.ctr = chain_ctr,
	.dtr = chain_dtr,
	.map = chain_map,
	.end_io = chain_end_io,
	.presuspend = chain_presuspend,
	.presuspend_undo = chain_presuspend_undo,
	.postsuspend = chain_postsuspend,
	.preresume = chain_preresume,
	.resume = chain_resume,
	.status = chain_status,
	.message = chain_message,
	.iterate_devices = chain_iterate_devices,
	.io_hints = chain_io_hints,
};

static int __init dm_chain_init(void)
{
	int r = dm_register_target(&chain_target);

	if (r)
		DMERR("register failed %d", r);
	return r;
}

static void __exit dm_chain_exit(void)
{
	dm_unregister_target(&chain_target);
}

module_init(dm_chain_init);
module_exit(dm_chain_exit);

MODULE_DESCRIPTION(DM_NAME " target presenting a chain of disk-image layers");
MODULE_AUTHOR("dm-chain developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(DM_CHAIN_RELEASE);
