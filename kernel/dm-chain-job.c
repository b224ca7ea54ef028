// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-chain block jobs: stream (pull), commit, active commit and mirror.
 *
 * A job walks the virtual clusters in order with a cursor and makes the
 * destination show what the source shows, one cluster at a time ("sync"):
 *
 *   stream         source: the layers above the base, below the active
 *                  layer; destination: the active layer itself.
 *   commit         source: the layers base+1..top (a second metadata view
 *                  over layers 0..top); destination: the base, opened as
 *                  the top of a metadata view over layers 0..base.
 *   active commit  source: everything above the base; destination: as for
 *                  commit.  Guest writes keep arriving, see below.
 *   mirror         source: the whole chain (full) or the active layer
 *                  (shallow); destination: the device named in the table,
 *                  a chain layer (opened alone, or over the layers below
 *                  the active one when shallow) or a raw device.
 *
 * A cluster the source does not hold is skipped, a ZERO cluster becomes a
 * ZERO entry (or zeroes on a raw destination), a cluster with data is
 * copied into the cluster the destination holds, or into a newly allocated
 * one that is published when the copy completed.
 *
 * The copy: the walk gathers the clusters it starts whose destination
 * follows on from the previous one's into a batch, reads each source run
 * into the batch's buffer with dm-io and writes the whole with one request
 * (a 1 MiB batch of a deep chain reads its 64 KiB pieces from many layers,
 * but the destination sees one write).  Any other copy (a guest write's, a
 * retry, a cluster too big for a batch) goes to dm-kcopyd.
 *
 * Active commit and mirror: once the cursor passed a cluster, every guest
 * write to it is copied to the destination before the guest sees it
 * complete (write-blocking), so the destination converges whatever the
 * write rate.  Syncs of one cluster are serialised and each reads the
 * source when it starts, so the last one to run copies the newest data.
 *
 * What the destination owes: a cluster whose copy failed for good, a
 * background sync dropped at a suspend, a guest write that completed while
 * the job was failed: each sets the cluster's bit in job->owed, and the
 * walk copies the owed clusters once its cursor reached the end.  The
 * owed bits live in chunks of OWED_CHUNK_BITS clusters, allocated when
 * the first of their clusters is owed and freed when the last is taken,
 * so a job costs memory for what it owes, not for the disk's size; with
 * no memory for a chunk, the walk goes back to the cluster instead.  The job
 * is READY (COMPLETED) only with the cursor at the end, nothing owed and
 * nothing in flight; 'job resume' goes on from there.  An owed cluster
 * weighs in bytes_total again, so bytes_done counts each copy once.
 *
 * Crash safety: the job record (type, layers, cursor, phase) lives in the
 * active layer's header and is written by the target's commit after the
 * destination's own commit, with the cursor taken before that commit: the
 * cursor on disk never passes a cluster whose copy is not durable or is
 * owed.  A stream or commit resumes from it; active commit and mirror copy
 * again from the start after a new activation, whatever phase they were
 * in (ready too), because a crash may have left a write that was never
 * flushed on one side only, and the owed bitmap lives in memory only.
 */
#include <linux/blkdev.h>
#include <linux/dm-io.h>
#include <linux/hash.h>
#include <linux/ktime.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#include "dm-chain-target.h"

#define DM_MSG_PREFIX "chain"

#define SYNC_HASH_BITS		6
#define JOB_IN_FLIGHT_BYTES	(4u << 20)
#define JOB_RETRIES		3
#define JOB_RETRY_DELAY		(HZ / 10)
#define JOB_BATCH_SECTORS	((1u << 20) >> SECTOR_SHIFT)
#define JOB_BATCH_SYNCS		64u
#define JOB_BATCHES		4u
#define JOB_GUEST_BUSY		(HZ / 10)

/* What the source shows for a cluster. */
enum src_state {
	SRC_ABSENT,	/* not held by the layers the job copies */
	SRC_ZERO,
	SRC_DATA,
};

/* One cluster being made equal on the destination. */
struct chain_sync {
	struct hlist_node node;		/* job->syncs while running */
	struct list_head queue;		/* behind a running sync, or retry */
	struct list_head bg;		/* job->bg_syncs: background only */
	struct chain_job *job;
	u64 vc;
	sector_t offset, len;		/* part of the cluster, in sectors */
	struct bio *bio;		/* guest write waiting, or NULL */
	struct chain_cell *cell;	/* stream: the active layer's cell */
	u64 host;			/* destination host cluster */
	bool new_host;			/* publish host when the copy is done */
	u64 bytes;			/* counted as done on success */
	bool redo;			/* an owed cluster: see __owe() */
	int tries;
	int epoch;			/* the source read's epoch slot, or -1 */
};

/* Background syncs copied together: see the top of the file. */
struct job_batch {
	struct list_head free;		/* job->free_batches while unused */
	struct chain_job *job;
	void *buf;			/* JOB_BATCH_SECTORS, vmalloc */
	struct dm_io_region to;		/* grows with each sync */
	unsigned int nr_syncs, nr_reads;
	bool written;
	atomic_t pending;		/* reads or the write in flight, + 1 */
	unsigned long error;		/* BATCH_READ_ERR, BATCH_WRITE_ERR */
	struct work_struct work;
	struct chain_sync *syncs[JOB_BATCH_SYNCS];
	struct dm_io_region reads[JOB_BATCH_SYNCS];
};

#define BATCH_READ_ERR		0
#define BATCH_WRITE_ERR		1

struct chain_job {
	struct chain_c *cc;
	struct dm_target *ti;
	struct dm_dev *dest_dev;	/* mirror destination, or NULL */

	/* Set when the job starts; fixed while it exists. */
	enum dm_chain_job_type type;
	unsigned int top, base;		/* table indexes; base NO_LAYER */
	int lo;				/* sync layers above lo only */
	bool shallow;
	bool dest_zeroed;		/* cleared when the walk goes back */
	struct dm_chain_metadata *src;	/* source view, or cc->cmd */
	struct dm_chain_metadata *dest;	/* chain destination, or NULL */
	struct block_device *dest_bdev;	/* what the job writes */
	u64 nr_clusters;
	unsigned int max_in_flight;

	/* Protected by lock. */
	spinlock_t lock;
	enum dm_chain_job_phase phase;
	bool paused;
	bool cancelled;
	bool stopped;			/* suspended or being torn down */
	u64 cursor;			/* next cluster to look at */
	struct xarray owed;		/* chunks of clusters to copy again */
	u64 nr_owed;			/* bits set in owed */
	u64 owed_from;			/* no bit set below */
	unsigned int in_flight;		/* background syncs */
	unsigned int guest_syncs;	/* guest writes the job holds */
	unsigned int batches_out;	/* taken from free_batches */
	unsigned int batch_limit;	/* how many may be out now */
	bool round_busy;		/* the guest was busy when it began */
	ktime_t round_start;		/* in_flight last left 0 */
	ktime_t rest_until;		/* no new round before, if busy */
	struct hlist_head syncs[1 << SYNC_HASH_BITS];
	struct list_head retry;		/* background syncs to start again */
	struct list_head bg_syncs;	/* every background sync not done */
	struct bio_list bios;		/* guest writes to copy */
	bool event_after_commit;	/* a phase changed: tell after commit */
	struct list_head freed;		/* destination clusters to release */
	u64 bytes_done, bytes_total;
	unsigned int errors;
	int last_error;
	u64 bandwidth;			/* bytes/s, 0 = unlimited */
	ktime_t bw_start;
	u64 bw_issued;
	ktime_t rate_start;
	u64 rate_bytes, rate;
	unsigned int percent;
	bool event;

	wait_queue_head_t idle;		/* a sync left: see job_idle() */
	struct list_head free_batches;	/* protected by lock */
	struct job_batch *batches;	/* JOB_BATCHES, or NULL */
	struct dm_io_client *io;	/* the batches' reads and writes */
	struct delayed_work work;
	struct work_struct event_work;
	mempool_t sync_pool;
	struct dm_chain_job_record written;	/* handed to the last commit */
	struct chain_job *retired;	/* cc->retired_jobs list */
};

/* A destination host cluster freed, reusable as struct chain_freed is. */
struct dest_freed {
	struct list_head list;
	u64 host;
	u64 epoch;			/* chain_free_ticket() */
};

static const char * const type_names[] = {
	[DM_CHAIN_JOB_NONE] = "none",
	[DM_CHAIN_JOB_STREAM] = "stream",
	[DM_CHAIN_JOB_COMMIT] = "commit",
	[DM_CHAIN_JOB_ACTIVE_COMMIT] = "active-commit",
	[DM_CHAIN_JOB_MIRROR] = "mirror",
};

static const char *dev_name_of(struct chain_job *job)
{
	return dm_device_name(dm_table_get_md(job->ti->table));
}

static bool is_mirroring_type(enum dm_chain_job_type type)
{
	return type == DM_CHAIN_JOB_ACTIVE_COMMIT ||
	       type == DM_CHAIN_JOB_MIRROR;
}

/* Raise a dm event from process context. */
static void do_event(struct work_struct *ws)
{
	struct chain_job *job = container_of(ws, struct chain_job, event_work);

	dm_table_event(job->ti->table);
}

static void job_event(struct chain_job *job)
{
	queue_work(job->cc->wq, &job->event_work);
}

/* Run the walk after delay, or sooner if it is due sooner already. */
static void kick(struct chain_job *job, unsigned long delay)
{
	if (delay)
		queue_delayed_work(job->cc->wq, &job->work, delay);
	else
		mod_delayed_work(job->cc->wq, &job->work, 0);
}

/* ---- What the source shows, what the destination holds ---- */

/* What the source shows for vc, as the index entry e says. */
static enum src_state src_entry_state(struct chain_job *job, u64 vc, u64 e,
				      struct dm_io_region *from)
{
	struct chain_c *cc = job->cc;
	unsigned int layer = chain_entry_layer(e);

	if (chain_entry_kind(e) == CHAIN_NONE || (int)layer <= job->lo)
		return SRC_ABSENT;
	if (job->type == DM_CHAIN_JOB_STREAM && layer >= cc->nr_layers - 1)
		return SRC_ABSENT;	/* the active layer has it already */
	if (job->shallow && layer != cc->nr_layers - 1)
		return SRC_ABSENT;
	if (chain_entry_kind(e) == CHAIN_ZERO)
		return SRC_ZERO;
	from->bdev = cc->devs[layer]->bdev;
	from->sector = chain_entry_kind(e) == CHAIN_RAW ?
		       vc << cc->cluster_shift :
		       chain_entry_host(e) << cc->cluster_shift;
	from->count = cluster_len(cc, vc);
	return SRC_DATA;
}

static enum src_state src_state(struct chain_job *job, u64 vc,
				struct dm_io_region *from)
{
	return src_entry_state(job, vc, dm_chain_lookup(job->src, vc), from);
}

/* The destination's own entry for vc (not a lower layer's). */
static enum chain_kind dest_kind(struct chain_job *job, u64 vc, u64 *host)
{
	if (!job->dest)
		return CHAIN_NONE;
	return dm_chain_top_kind(job->dest, vc, host);
}

/* ---- Syncs ---- */

static struct hlist_head *sync_bucket(struct chain_job *job, u64 vc)
{
	return &job->syncs[hash_64(vc, SYNC_HASH_BITS)];
}

static struct chain_sync *__find_sync(struct chain_job *job, u64 vc)
{
	struct chain_sync *s;

	hlist_for_each_entry(s, sync_bucket(job, vc), node)
		if (s->vc == vc)
			return s;
	return NULL;
}

static struct chain_sync *new_sync(struct chain_job *job, u64 vc,
				   struct bio *bio, sector_t offset,
				   sector_t len)
{
	struct chain_sync *s = mempool_alloc(&job->sync_pool, GFP_NOIO);

	memset(s, 0, sizeof(*s));
	INIT_LIST_HEAD(&s->queue);
	INIT_LIST_HEAD(&s->bg);
	s->job = job;
	s->vc = vc;
	s->bio = bio;
	s->offset = offset;
	s->len = len;
	s->epoch = -1;
	return s;
}

static void start_sync(struct chain_sync *s, struct job_batch **open);
static bool __fail(struct chain_job *job, int error);
static void tell_failed(struct chain_job *job, int error);

/* The bytes an owed cluster weighs in bytes_done/bytes_total. */
static u64 owed_bytes(struct chain_job *job, u64 vc)
{
	return (u64)cluster_len(job->cc, vc) << SECTOR_SHIFT;
}

/*
 * The owed bitmap is cut in chunks of OWED_CHUNK_BITS clusters (512 bytes),
 * kept in job->owed by vc >> OWED_CHUNK_SHIFT.  No bit is set below
 * owed_from, and bits are taken lowest first, so a chunk is freed when its
 * last bit is taken.
 */
#define OWED_CHUNK_SHIFT	12
#define OWED_CHUNK_BITS		BIT(OWED_CHUNK_SHIFT)

/*
 * The destination did not get what the source shows for vc (a copy that
 * failed, a guest write while the job was failed, a sync dropped): the
 * walk copies it again once the cursor reached the end.  The cluster
 * weighs a whole cluster in bytes_total, of which counted (a background
 * sync's bytes, never done) was there already, so bytes_done counts each
 * copy once and bytes_total never goes down.  job->lock held, any context.
 *
 * Without memory for its chunk, the cluster is not noted: the walk goes
 * back to it, as after a failed commit (walk_back()), and looks at every
 * cluster from there again.  Copying a cluster again is always safe.
 */
static void __owe(struct chain_job *job, u64 vc, u64 counted)
{
	unsigned long idx = vc >> OWED_CHUNK_SHIFT;
	unsigned long *chunk = xa_load(&job->owed, idx);
	u64 bytes = owed_bytes(job, vc);

	if (!chunk) {
		chunk = bitmap_zalloc(OWED_CHUNK_BITS, GFP_ATOMIC | __GFP_NOWARN);
		if (chunk && xa_is_err(xa_store(&job->owed, idx, chunk,
						GFP_ATOMIC | __GFP_NOWARN))) {
			bitmap_free(chunk);
			chunk = NULL;
		}
	}
	if (!chunk) {
		if (vc < job->cursor) {
			job->cursor = vc;
			WRITE_ONCE(job->dest_zeroed, false);
		}
	} else if (!__test_and_set_bit(vc & (OWED_CHUNK_BITS - 1), chunk)) {
		job->nr_owed++;
		job->owed_from = min(job->owed_from, vc);
	} else {
		return;		/* owed already */
	}
	job->bytes_total += bytes - min(counted, bytes);
}

/* The lowest owed cluster, left owed; false if none.  job->lock held. */
static bool __next_owed(struct chain_job *job, u64 *vc)
{
	unsigned long idx, bit, *chunk;
	u64 base;

	if (!job->nr_owed)
		return false;
	xa_for_each_start(&job->owed, idx, chunk,
			  job->owed_from >> OWED_CHUNK_SHIFT) {
		base = (u64)idx << OWED_CHUNK_SHIFT;
		bit = find_next_bit(chunk, OWED_CHUNK_BITS,
				    job->owed_from > base ? job->owed_from - base : 0);
		if (bit < OWED_CHUNK_BITS) {
			*vc = base + bit;
			return true;
		}
	}
	WARN_ON_ONCE(1);	/* nr_owed counts a bit that is not there */
	job->nr_owed = 0;
	return false;
}

/* The next owed cluster, taken off the bitmap; false if none.  Locked. */
static bool __take_owed(struct chain_job *job, u64 *vc)
{
	unsigned long idx, *chunk;

	if (!__next_owed(job, vc))
		return false;
	idx = *vc >> OWED_CHUNK_SHIFT;
	chunk = xa_load(&job->owed, idx);
	__clear_bit(*vc & (OWED_CHUNK_BITS - 1), chunk);
	job->nr_owed--;
	job->owed_from = *vc + 1;
	/* nothing below owed_from: the chunk is empty once past its last bit */
	if (find_next_bit(chunk, OWED_CHUNK_BITS,
			  (*vc & (OWED_CHUNK_BITS - 1)) + 1) >= OWED_CHUNK_BITS) {
		xa_erase(&job->owed, idx);
		bitmap_free(chunk);
	}
	return true;
}

/* Forget what is owed.  No sync may be running. */
static void free_owed(struct chain_job *job)
{
	unsigned long idx, *chunk;

	xa_for_each(&job->owed, idx, chunk)
		bitmap_free(chunk);
	xa_destroy(&job->owed);
	job->nr_owed = 0;
}

/*
 * A sync left the job: the last thing end_sync() and friends do, so that
 * quiesce() (which sees the job idle only under job->lock) never frees
 * the job under them.  Any context.
 */
static void sync_gone(struct chain_job *job, bool background, bool walk)
{
	unsigned long flags;

	spin_lock_irqsave(&job->lock, flags);
	if (!background) {
		job->guest_syncs--;
	} else if (!--job->in_flight && job->round_busy) {
		ktime_t now = ktime_get();

		job->rest_until = ktime_add(now, ktime_sub(now, job->round_start));
	}
	if (walk)
		kick(job, 0);
	wake_up(&job->idle);
	spin_unlock_irqrestore(&job->lock, flags);
}

/*
 * s left the running set to be tried later: whatever queued behind it
 * goes to the retry list too, keeping its order.  Process context.
 */
static void requeue_next(struct chain_sync *s)
{
	struct chain_job *job = s->job;

	spin_lock_irq(&job->lock);
	list_splice_tail_init(&s->queue, &job->retry);
	spin_unlock_irq(&job->lock);
}

/*
 * Give up a background sync that waits on the retry list: its cluster is
 * owed.  job->lock held; the caller frees s and wakes job->idle.
 */
static void __drop_background(struct chain_job *job, struct chain_sync *s)
{
	list_del_init(&s->queue);
	list_del(&s->bg);
	job->in_flight--;
	if (!job->cancelled)
		__owe(job, s->vc, s->bytes);
}

/*
 * A sync finished (or gave up): complete its bio, count it, and start the
 * next sync queued on the same cluster.  Process context.
 */
static void end_sync(struct chain_sync *s, int error)
{
	struct chain_job *job = s->job;
	struct chain_sync *next = NULL;
	struct bio *bio = s->bio;
	bool background = !bio;
	bool requeued = false, failed = false, event = false;
	unsigned int percent;

	chain_leave_epoch(job->cc, &s->epoch);
	spin_lock_irq(&job->lock);
	hlist_del(&s->node);
	if (job->cancelled) {
		/* run_retries() completes what waited, uncopied */
		requeued = !list_empty(&s->queue);
		list_splice_tail_init(&s->queue, &job->retry);
	} else if (!list_empty(&s->queue)) {
		next = list_first_entry(&s->queue, struct chain_sync, queue);
		list_del_init(&s->queue);
		/* the rest of the queue follows next */
		list_splice_init(&s->queue, &next->queue);
		hlist_add_head(&next->node, sync_bucket(job, next->vc));
	}
	if (error && !job->cancelled) {
		/*
		 * The destination lacks what the source shows, and the job is
		 * failed before the guest's write completes: a suspend that
		 * waited for it never finds the job ready and owing.
		 */
		__owe(job, s->vc, background ? s->bytes : 0);
		failed = __fail(job, error);
	}
	if (background) {
		list_del(&s->bg);
		if (!error) {
			job->bytes_done = min(job->bytes_done + s->bytes,
					      job->bytes_total);
			job->rate_bytes += s->bytes;
			percent = job->bytes_total ?
				  div64_u64(job->bytes_done * 100,
					    job->bytes_total) : 100;
			event = percent != job->percent;
			job->percent = percent;
		}
	}
	spin_unlock_irq(&job->lock);

	if (bio) {
		/* The guest's write reached the active layer either way. */
		bio_endio(bio);
	}
	mempool_free(s, &job->sync_pool);
	if (failed)
		tell_failed(job, error);
	if (event)
		job_event(job);
	if (next)
		start_sync(next, NULL);
	sync_gone(job, background, background || requeued);
}

static void sync_retry_or_fail(struct chain_sync *s, int error)
{
	struct chain_job *job = s->job;

	spin_lock_irq(&job->lock);
	job->errors++;
	job->last_error = error;
	spin_unlock_irq(&job->lock);
	DMERR_LIMIT("%s: %s job: copying cluster %llu failed (%d)%s",
		    dev_name_of(job), type_names[job->type], s->vc, error,
		    s->tries < JOB_RETRIES ? ", retrying" : "");
	if (s->new_host && job->dest) {
		dm_chain_release_cluster(job->dest, s->host);
		s->new_host = false;
	}
	chain_leave_epoch(job->cc, &s->epoch);
	if (s->cell) {
		chain_release_cell(s->cell, false, true);
		s->cell = NULL;
	}
	if (s->tries++ < JOB_RETRIES) {
		/* Try again a little later; the cluster stays owed. */
		spin_lock_irq(&job->lock);
		hlist_del(&s->node);
		spin_unlock_irq(&job->lock);
		requeue_next(s);
		spin_lock_irq(&job->lock);
		list_add_tail(&s->queue, &job->retry);
		spin_unlock_irq(&job->lock);
		wake_up(&job->idle);
		kick(job, JOB_RETRY_DELAY);
		return;
	}
	end_sync(s, error);	/* still in the running set: end_sync takes it out */
}

static void copy_done(int read_err, unsigned long write_err, void *context)
{
	struct chain_sync *s = context;
	struct chain_job *job = s->job;

	if (read_err || write_err) {
		sync_retry_or_fail(s, -EIO);
		return;
	}
	if (job->type == DM_CHAIN_JOB_STREAM) {
		/* Publish atomically with the release of the cell. */
		s->cell->host = s->host;
		chain_release_cell(s->cell, true, true);
		s->cell = NULL;
	} else if (s->new_host) {
		dm_chain_set_mapped(job->dest, s->vc, s->host);
	}
	end_sync(s, 0);
}

static void remember_dest_freed(struct chain_job *job, u64 host)
{
	struct dest_freed *f;

	if (!host)
		return;
	f = kmalloc(sizeof(*f), GFP_NOIO);
	if (!f)
		return;		/* leaked until the next activation */
	f->host = host;
	f->epoch = chain_free_ticket(job->cc);	/* guest reads of it drain */
	spin_lock_irq(&job->lock);
	list_add_tail(&f->list, &job->freed);
	spin_unlock_irq(&job->lock);
}

/* Record ZERO (or ABSENT) for vc on the destination. */
static void sync_zero(struct chain_sync *s, bool absent)
{
	struct chain_job *job = s->job;
	struct chain_c *cc = job->cc;
	struct dm_io_region to;
	u64 host;

	if (job->type == DM_CHAIN_JOB_STREAM) {
		if (!absent) {
			int r = dm_chain_prepare(cc->cmd, s->vc);

			if (r) {
				sync_retry_or_fail(s, r);
				return;
			}
			dm_chain_set_zero(cc->cmd, s->vc);
		}
		chain_release_cell(s->cell, false, true);
		s->cell = NULL;
		end_sync(s, 0);
		return;
	}
	if (job->dest) {
		enum chain_kind k = dest_kind(job, s->vc, &host);

		/*
		 * A destination with layers below needs ZERO to hide them; a
		 * shallow copy shows the same layers below, so an absent
		 * source cluster leaves the destination's entry alone.
		 */
		if (!(absent && job->shallow) &&
		    (k == CHAIN_MAPPED || (k == CHAIN_NONE && !absent))) {
			int r = dm_chain_prepare(job->dest, s->vc);

			if (r) {
				sync_retry_or_fail(s, r);
				return;
			}
			remember_dest_freed(job, dm_chain_set_zero(job->dest, s->vc));
		}
		end_sync(s, 0);
		return;
	}
	/* A raw destination: write zeroes, unless it is known to read zeros. */
	if (absent && job->type != DM_CHAIN_JOB_MIRROR) {
		end_sync(s, 0);
		return;
	}
	/* (an owed cluster may hold what the guest wrote before) */
	if (!s->bio && !s->redo && READ_ONCE(job->dest_zeroed)) {
		end_sync(s, 0);
		return;
	}
	to.bdev = job->dest_bdev;
	to.sector = s->vc << cc->cluster_shift;
	to.count = cluster_len(cc, s->vc);
	dm_kcopyd_zero(cc->kc, 1, &to, 0, copy_done, s);
}

static bool batch_add(struct chain_job *job, struct job_batch **open,
		      struct chain_sync *s, struct dm_io_region *from,
		      struct dm_io_region *to);

static void sync_data(struct chain_sync *s, struct dm_io_region *from,
		      struct job_batch **open)
{
	struct chain_job *job = s->job;
	struct chain_c *cc = job->cc;
	struct dm_io_region to = { .bdev = job->dest_bdev };
	bool whole = true;
	int r;

	if (job->type == DM_CHAIN_JOB_STREAM) {
		r = dm_chain_prepare(cc->cmd, s->vc);
		if (r) {
			sync_retry_or_fail(s, r);
			return;
		}
		r = dm_chain_alloc_cluster(cc->cmd, &s->host);
		if (r) {
			chain_release_cell(s->cell, false, true);
			s->cell = NULL;
			end_sync(s, r);
			return;
		}
		s->new_host = true;	/* given back if the copy fails */
		to.sector = s->host << cc->cluster_shift;
	} else if (job->dest) {
		if (dest_kind(job, s->vc, &s->host) == CHAIN_MAPPED) {
			whole = false;
		} else {
			r = dm_chain_prepare(job->dest, s->vc);
			if (r) {
				sync_retry_or_fail(s, r);
				return;
			}
			r = dm_chain_alloc_cluster(job->dest, &s->host);
			if (r) {
				end_sync(s, r);
				return;
			}
			s->new_host = true;
		}
		to.sector = s->host << cc->cluster_shift;
	} else {
		whole = false;
		to.sector = s->vc << cc->cluster_shift;
	}
	to.count = from->count;
	if (!whole && s->len) {
		/* Only the part a guest write touched. */
		from->sector += s->offset;
		to.sector += s->offset;
		from->count = s->len;
		to.count = s->len;
	}
	if (open && batch_add(job, open, s, from, &to))
		return;
	dm_kcopyd_copy(cc->kc, from, 1, &to, 0, copy_done, s);
}

/*
 * Make the destination show what the source shows for s->vc.  open: the
 * walk's batch a copy may join, or NULL.
 */
static void start_sync(struct chain_sync *s, struct job_batch **open)
{
	struct chain_job *job = s->job;
	struct dm_io_region from;

	if (job->type == DM_CHAIN_JOB_STREAM) {
		s->cell = chain_lock_cluster(job->cc, s->vc, NULL);
		if (!s->cell) {
			/* A guest write is allocating it: look again later. */
			spin_lock_irq(&job->lock);
			hlist_del(&s->node);
			spin_unlock_irq(&job->lock);
			requeue_next(s);
			spin_lock_irq(&job->lock);
			list_add_tail(&s->queue, &job->retry);
			spin_unlock_irq(&job->lock);
			kick(job, 1);
			return;
		}
	}
	/* The source read counts like a guest read: see lookup_for_io(). */
	chain_enter_epoch(job->cc, &s->epoch);
	switch (src_state(job, s->vc, &from)) {
	case SRC_ABSENT:
		sync_zero(s, true);
		break;
	case SRC_ZERO:
		sync_zero(s, false);
		break;
	case SRC_DATA:
		sync_data(s, &from, open);
		break;
	}
}

/* Start s now, or queue it behind the sync of its cluster. */
static void submit_sync(struct chain_sync *s, struct job_batch **open)
{
	struct chain_job *job = s->job;
	struct chain_sync *running;

	spin_lock_irq(&job->lock);
	running = __find_sync(job, s->vc);
	if (running) {
		list_add_tail(&s->queue, &running->queue);
		spin_unlock_irq(&job->lock);
		return;
	}
	hlist_add_head(&s->node, sync_bucket(job, s->vc));
	spin_unlock_irq(&job->lock);
	start_sync(s, open);
}

/* ---- Batches ---- */

/* May the walk take a batch now?  job->lock held. */
static bool __batch_free(struct chain_job *job)
{
	return job->batches_out < job->batch_limit &&
	       !list_empty(&job->free_batches);
}

static struct job_batch *get_batch(struct chain_job *job)
{
	struct job_batch *b;

	spin_lock_irq(&job->lock);
	b = NULL;
	if (__batch_free(job)) {
		b = list_first_entry(&job->free_batches, struct job_batch, free);
		list_del_init(&b->free);
		job->batches_out++;
	}
	spin_unlock_irq(&job->lock);
	return b;
}

static bool batch_free(struct chain_job *job)
{
	bool r;

	spin_lock_irq(&job->lock);
	r = __batch_free(job);
	spin_unlock_irq(&job->lock);
	return r;
}

/* A read or the write of b completed.  Any context. */
static void batch_io_done(unsigned long error, void *context)
{
	struct job_batch *b = context;

	if (error)
		set_bit(b->written ? BATCH_WRITE_ERR : BATCH_READ_ERR, &b->error);
	if (atomic_dec_and_test(&b->pending))
		queue_work(b->job->cc->wq, &b->work);
}

static void batch_io(struct job_batch *b, blk_opf_t opf, void *buf,
		     struct dm_io_region *where)
{
	struct dm_io_request req = {
		.bi_opf = opf,
		.mem.type = DM_IO_VMA,
		.mem.ptr.vma = buf,
		.notify.fn = batch_io_done,
		.notify.context = b,
		.client = b->job->io,
	};

	atomic_inc(&b->pending);
	if (dm_io(&req, 1, where, NULL, IOPRIO_DEFAULT))
		batch_io_done(1, b);
}

/* Read every source run of b into its buffer; the write follows. */
static void issue_batch(struct job_batch *b)
{
	sector_t off = 0;
	unsigned int i;

	b->error = 0;
	b->written = false;
	atomic_set(&b->pending, 1);
	for (i = 0; i < b->nr_reads; i++) {
		batch_io(b, REQ_OP_READ, b->buf + (off << SECTOR_SHIFT),
			 &b->reads[i]);
		off += b->reads[i].count;
	}
	batch_io_done(0, b);
}

/* The reads completed: write; the write completed: end the syncs. */
static void batch_work(struct work_struct *ws)
{
	struct job_batch *b = container_of(ws, struct job_batch, work);
	struct chain_sync *syncs[JOB_BATCH_SYNCS];
	struct chain_job *job = b->job;
	unsigned int i, n = b->nr_syncs;
	unsigned long error = b->error;

	if (!b->written && !error) {
		b->written = true;
		atomic_set(&b->pending, 1);
		batch_io(b, REQ_OP_WRITE, b->buf, &b->to);
		batch_io_done(0, b);
		return;
	}
	/* b is free for the walk again before its syncs end. */
	memcpy(syncs, b->syncs, n * sizeof(*syncs));
	b->nr_syncs = 0;
	b->nr_reads = 0;
	spin_lock_irq(&job->lock);
	list_add(&b->free, &job->free_batches);
	job->batches_out--;
	spin_unlock_irq(&job->lock);
	for (i = 0; i < n; i++)
		copy_done(test_bit(BATCH_READ_ERR, &error),
			  test_bit(BATCH_WRITE_ERR, &error), syncs[i]);
}

/*
 * Copy s (from -> to) as part of the walk's open batch, issuing the open
 * one first when s does not follow on from it.  False: no batch is free,
 * dm-kcopyd copies s.  (Batches exist only for clusters smaller than a
 * batch: see alloc_batches().)
 */
static bool batch_add(struct chain_job *job, struct job_batch **open,
		      struct chain_sync *s, struct dm_io_region *from,
		      struct dm_io_region *to)
{
	struct job_batch *b = *open;
	struct dm_io_region *r;

	if (b && (b->to.bdev != to->bdev ||
		  b->to.sector + b->to.count != to->sector ||
		  b->to.count + to->count > JOB_BATCH_SECTORS ||
		  b->nr_syncs == JOB_BATCH_SYNCS)) {
		issue_batch(b);
		*open = b = NULL;
	}
	if (!b) {
		b = get_batch(job);
		if (!b)
			return false;
		*open = b;
		b->to = *to;
		b->to.count = 0;
	}
	r = b->nr_reads ? &b->reads[b->nr_reads - 1] : NULL;
	if (r && r->bdev == from->bdev && r->sector + r->count == from->sector)
		r->count += from->count;
	else
		b->reads[b->nr_reads++] = *from;
	b->syncs[b->nr_syncs++] = s;
	b->to.count += to->count;
	return true;
}

static void free_batches(struct chain_job *job)
{
	unsigned int i;

	if (job->batches)
		for (i = 0; i < JOB_BATCHES; i++)
			vfree(job->batches[i].buf);
	kvfree(job->batches);
	if (job->io)
		dm_io_client_destroy(job->io);
	job->batches = NULL;
	job->io = NULL;
	INIT_LIST_HEAD(&job->free_batches);
}

/*
 * Batches pay off for clusters smaller than a batch; without memory for
 * them every copy goes to dm-kcopyd, which is slower but correct.
 */
static void alloc_batches(struct chain_job *job)
{
	unsigned int i;

	if ((1u << job->cc->cluster_shift) >= JOB_BATCH_SECTORS)
		return;
	job->batches = kvcalloc(JOB_BATCHES, sizeof(*job->batches), GFP_KERNEL);
	job->io = dm_io_client_create();
	if (IS_ERR(job->io))
		job->io = NULL;
	if (!job->batches || !job->io)
		goto fail;
	for (i = 0; i < JOB_BATCHES; i++) {
		struct job_batch *b = &job->batches[i];

		b->buf = vmalloc(JOB_BATCH_SECTORS << SECTOR_SHIFT);
		if (!b->buf)
			goto fail;
		b->job = job;
		INIT_WORK(&b->work, batch_work);
		list_add_tail(&b->free, &job->free_batches);
	}
	return;
fail:
	free_batches(job);
}

/* ---- The background walk ---- */

static bool entry_needs_sync(struct chain_job *job, u64 vc, u64 e,
			     u64 *bytes)
{
	struct dm_io_region from;
	u64 host;

	switch (src_entry_state(job, vc, e, &from)) {
	case SRC_DATA:
		*bytes = (u64)from.count << SECTOR_SHIFT;
		return true;
	case SRC_ZERO:
		*bytes = 0;
		return job->type == DM_CHAIN_JOB_STREAM || job->dest ||
		       !READ_ONCE(job->dest_zeroed);
	case SRC_ABSENT:
	default:
		*bytes = 0;
		if (job->type != DM_CHAIN_JOB_MIRROR || job->shallow)
			return false;
		if (job->dest)
			return dest_kind(job, vc, &host) != CHAIN_NONE;
		return !READ_ONCE(job->dest_zeroed);
	}
}

static bool needs_sync(struct chain_job *job, u64 vc, u64 *bytes)
{
	return entry_needs_sync(job, vc, dm_chain_lookup(job->src, vc), bytes);
}

/*
 * The next cluster the walk looks at after vc, which needs no sync: the
 * end of vc's leaf when the whole leaf shows the source's background, the
 * background needs no sync, and a chain destination holds nothing there
 * either (what the destination holds changes only by this job); else
 * vc + 1.  Called where needs_sync() was, with the same guarantee: a
 * guest write published in the leaf before made it not empty.
 */
static u64 walk_next(struct chain_job *job, u64 vc)
{
	u64 bytes;

	if (!dm_chain_leaf_empty(job->src, vc) ||
	    (job->dest && !dm_chain_leaf_empty(job->dest, vc)) ||
	    entry_needs_sync(job, vc, dm_chain_background(job->src), &bytes))
		return vc + 1;
	return min(dm_chain_leaf_end(job->src, vc), job->nr_clusters);
}

static u64 count_bytes(struct chain_job *job, u64 from, u64 to)
{
	struct chain_c *cc = job->cc;
	u64 vc, bytes, total = 0;

	/*
	 * A raw view holds data in every cluster, and has no empty leaf to
	 * skip: a walk here would take minutes on a large disk.
	 */
	if (job->type == DM_CHAIN_JOB_MIRROR && dm_chain_is_raw_view(job->src)) {
		if (from >= to)
			return 0;
		return (min_t(u64, to << cc->cluster_shift, cc->ti->len) -
			(from << cc->cluster_shift)) << SECTOR_SHIFT;
	}
	for (vc = from; vc < to; vc = walk_next(job, vc)) {
		if (needs_sync(job, vc, &bytes))
			total += bytes;
		if (!(vc & 4095))
			cond_resched();
	}
	return total;
}

/* May the job issue bytes more now?  Else when to look again. */
static bool bandwidth_allows(struct chain_job *job, u64 bytes,
			     unsigned long *delay)
{
	u64 allowed, elapsed;

	if (!job->bandwidth)
		return true;
	elapsed = ktime_to_ns(ktime_sub(ktime_get(), job->bw_start));
	allowed = mul_u64_u64_div_u64(job->bandwidth, elapsed, NSEC_PER_SEC);
	if (job->bw_issued + bytes <= allowed) {
		job->bw_issued += bytes;
		return true;
	}
	*delay = div64_u64((job->bw_issued + bytes - allowed) * HZ,
			   job->bandwidth) + 1;
	return false;
}

static void set_phase(struct chain_job *job, enum dm_chain_job_phase phase)
{
	if (job->phase == phase)
		return;
	job->phase = phase;
	job->event = true;
}

/* Guest writes queued at completion become syncs.  Process context. */
static void take_guest_writes(struct chain_job *job)
{
	struct bio_list bios;
	struct chain_sync *s;
	struct chain_bio *pb;
	struct bio *bio;

	spin_lock_irq(&job->lock);
	bios = job->bios;
	bio_list_init(&job->bios);
	spin_unlock_irq(&job->lock);
	while ((bio = bio_list_pop(&bios))) {
		pb = dm_per_bio_data(bio, sizeof(*pb));
		s = new_sync(job, pb->vcluster, bio, pb->offset,
			     bio_op(bio) == REQ_OP_WRITE ? pb->len : 0);
		spin_lock_irq(&job->lock);
		list_add_tail(&s->queue, &job->retry);
		spin_unlock_irq(&job->lock);
	}
}

/*
 * Start the syncs waiting on the retry list.  Guest writes always go (a
 * suspend waits for them); once the job failed or was cancelled they
 * complete without a copy.  Background syncs wait while stopped.
 */
static void run_retries(struct chain_job *job)
{
	struct chain_sync *s, *tmp;
	LIST_HEAD(list);
	LIST_HEAD(done);
	bool dead;

	spin_lock_irq(&job->lock);
	dead = job->cancelled || job->phase == DM_CHAIN_PHASE_FAILED;
	list_for_each_entry_safe(s, tmp, &job->retry, queue) {
		if (s->bio && dead) {
			/* Failed: owed until 'job resume'; cancelled: moot. */
			if (!job->cancelled)
				__owe(job, s->vc, 0);
			job->guest_syncs--;
			list_move_tail(&s->queue, &done);
		} else if (!s->bio && (dead || job->stopped)) {
			__drop_background(job, s);
			list_add_tail(&s->queue, &done);
		}
	}
	list_splice_init(&job->retry, &list);
	spin_unlock_irq(&job->lock);

	list_for_each_entry_safe(s, tmp, &done, queue) {
		list_del(&s->queue);
		if (s->bio)
			bio_endio(s->bio);
		mempool_free(s, &job->sync_pool);
	}
	if (!list_empty(&done))
		wake_up(&job->idle);
	list_for_each_entry_safe(s, tmp, &list, queue) {
		list_del_init(&s->queue);
		submit_sync(s, NULL);
	}
}

/*
 * Yield to the guest.  While it issues I/O (a bio in the last
 * JOB_GUEST_BUSY) the walk copies in rounds: one batch (or a quarter of
 * the usual syncs), then nothing for as long as that round took, so the
 * job keeps at most half of the device's time and still moves on.  Idle,
 * it copies at full rate.  Returns how many syncs may be in flight, 0 if
 * none may start now (*delay: when to look again, if it is the rest).
 */
static unsigned int job_limits(struct chain_job *job, bool *busy,
			       unsigned long *delay)
{
	unsigned long last = READ_ONCE(job->cc->guest_io);
	unsigned int max = job->max_in_flight;
	ktime_t now;
	s64 rest;

	*busy = time_in_range_open(jiffies, last, last + JOB_GUEST_BUSY);
	spin_lock_irq(&job->lock);
	job->batch_limit = JOB_BATCHES;
	if (*busy) {
		job->batch_limit = 1;
		max = max(1u, max / JOB_BATCHES);
		if (job->in_flight) {
			max = 0;	/* the round goes on */
		} else {
			now = ktime_get();
			rest = ktime_to_ns(ktime_sub(job->rest_until, now));
			if (rest > 0) {
				*delay = max_t(unsigned long, 1, nsecs_to_jiffies(rest));
				max = 0;
			}
		}
	}
	spin_unlock_irq(&job->lock);
	return max;
}

/* Phase changes reach the disk before userspace hears of them. */
static void tell_after_commit(struct chain_job *job)
{
	spin_lock_irq(&job->lock);
	job->event_after_commit = true;
	spin_unlock_irq(&job->lock);
	chain_request_commit(job->cc);
}

static void do_job(struct work_struct *ws)
{
	struct chain_job *job = container_of(to_delayed_work(ws),
					     struct chain_job, work);
	struct job_batch *open = NULL;
	unsigned long delay = 0;
	unsigned int max_in_flight;
	struct chain_sync *s;
	u64 vc, bytes;
	bool event, busy, owed;

	take_guest_writes(job);
	run_retries(job);
	max_in_flight = job_limits(job, &busy, &delay);

	for (;;) {
		spin_lock_irq(&job->lock);
		if (job->stopped || job->paused || job->cancelled ||
		    job->phase != DM_CHAIN_PHASE_RUNNING ||
		    job->in_flight >= max_in_flight) {
			spin_unlock_irq(&job->lock);
			break;
		}
		vc = job->cursor;
		owed = vc >= job->nr_clusters;
		if (owed) {
			/* The walk is done: copy what is owed, then ready. */
			if (!job->nr_owed) {
				if (!job->in_flight && list_empty(&job->retry)) {
					/* all copied, whatever was counted */
					job->bytes_done = job->bytes_total;
					set_phase(job, is_mirroring_type(job->type) ?
						  DM_CHAIN_PHASE_READY :
						  DM_CHAIN_PHASE_COMPLETED);
				}
				spin_unlock_irq(&job->lock);
				break;
			}
			if (!__next_owed(job, &vc)) {
				spin_unlock_irq(&job->lock);
				continue;
			}
			bytes = owed_bytes(job, vc);
		} else if (!needs_sync(job, vc, &bytes)) {
			/*
			 * Looked at and passed under the lock: a guest write
			 * that completes after this is copied, one that
			 * completed before is what needs_sync() saw.
			 */
			job->cursor = walk_next(job, vc);
			spin_unlock_irq(&job->lock);
			if (!(vc & 1023))
				cond_resched();
			continue;
		}
		spin_unlock_irq(&job->lock);

		/* Data waits for a batch while all are busy. */
		if (bytes && job->batches && !open && !batch_free(job))
			break;
		spin_lock_irq(&job->lock);
		if (!bandwidth_allows(job, bytes, &delay)) {
			spin_unlock_irq(&job->lock);
			break;
		}
		if (owed ? !__take_owed(job, &vc) : job->cursor != vc) {
			spin_unlock_irq(&job->lock);
			continue;	/* moved meanwhile: look again */
		}
		if (owed)
			bytes = owed_bytes(job, vc);
		else
			job->cursor++;
		if (!job->in_flight++) {
			job->round_start = ktime_get();
			job->round_busy = busy;
		}
		spin_unlock_irq(&job->lock);

		s = new_sync(job, vc, NULL, 0, 0);
		s->bytes = bytes;
		s->redo = owed;
		spin_lock_irq(&job->lock);
		list_add_tail(&s->bg, &job->bg_syncs);
		spin_unlock_irq(&job->lock);
		submit_sync(s, &open);
	}
	if (open)
		issue_batch(open);

	spin_lock_irq(&job->lock);
	event = job->event;
	job->event = false;
	spin_unlock_irq(&job->lock);
	if (event)
		tell_after_commit(job);
	if (delay)
		kick(job, delay);
}

/* Fail the job; true if it was not failed yet.  job->lock held. */
static bool __fail(struct chain_job *job, int error)
{
	if (job->phase == DM_CHAIN_PHASE_FAILED)
		return false;
	job->phase = DM_CHAIN_PHASE_FAILED;
	job->last_error = error;
	return true;
}

/* Tell of a job __fail() failed. */
static void tell_failed(struct chain_job *job, int error)
{
	DMERR("%s: %s job stopped: error %d; the status shows it, 'job resume' retries",
	      dev_name_of(job), type_names[job->type], error);
	tell_after_commit(job);
}

static void job_failed(struct chain_job *job, int error)
{
	bool first;

	spin_lock_irq(&job->lock);
	first = __fail(job, error);
	spin_unlock_irq(&job->lock);
	if (first)
		tell_failed(job, error);
}

/* ---- Guest writes while an active commit or a mirror runs ---- */

bool chain_job_mirroring(struct chain_c *cc)
{
	struct chain_job *job = cc->job;

	return job && is_mirroring_type(job->type) && !READ_ONCE(job->cancelled) &&
	       (READ_ONCE(job->phase) == DM_CHAIN_PHASE_RUNNING ||
		READ_ONCE(job->phase) == DM_CHAIN_PHASE_READY);
}

/*
 * Does the job (of any phase) copy guest writes?  map() keeps writes to one
 * cluster while it may: see chain_c.wide_writes.
 */
bool chain_job_may_mirror(struct chain_c *cc)
{
	struct chain_job *job = READ_ONCE(cc->job);

	return job && is_mirroring_type(job->type);
}

/*
 * Called at a guest write's first completion.  If the job already synced
 * its cluster, copy what the write changed and complete the write after
 * that (returns true: the bio is the job's now).  Any context.
 */
bool chain_job_end_io(struct chain_c *cc, struct bio *bio,
		      struct chain_bio *pb)
{
	struct chain_job *job = READ_ONCE(cc->job);
	unsigned long flags;
	bool synced = false;

	/*
	 * An empty FLUSH (dm core sends a flush with data as two bios) carries
	 * no data: the commit covers the destination.  Not bio_sectors(): a
	 * completed bio's iterator has been advanced to its end.
	 */
	if (pb->mirrored || (bio->bi_opf & REQ_PREFLUSH) || !job ||
	    !is_mirroring_type(job->type))
		return false;
	if (bio_op(bio) != REQ_OP_WRITE && bio_op(bio) != REQ_OP_DISCARD &&
	    bio_op(bio) != REQ_OP_WRITE_ZEROES)
		return false;
	pb->mirrored = true;
	spin_lock_irqsave(&job->lock, flags);
	/* Cancelled, or not walked yet (the walk copies it): nothing to do. */
	if (!job->cancelled && pb->vcluster < job->cursor) {
		if (job->phase == DM_CHAIN_PHASE_FAILED) {
			__owe(job, pb->vcluster, 0);	/* after 'job resume' */
		} else if (job->phase == DM_CHAIN_PHASE_RUNNING ||
			   job->phase == DM_CHAIN_PHASE_READY) {
			/* kcopyd and the allocator want process context. */
			bio_list_add(&job->bios, bio);
			job->guest_syncs++;
			synced = true;
		}
	}
	spin_unlock_irqrestore(&job->lock, flags);
	if (synced)
		kick(job, 0);
	return synced;
}

/* ---- The job record ---- */

static void fill_record(struct chain_job *job, struct dm_chain_job_record *rec,
			u64 cursor)
{
	struct chain_c *cc = job->cc;

	memset(rec, 0, sizeof(*rec));
	rec->magic = cpu_to_le32(DM_CHAIN_JOB_MAGIC);
	rec->type = job->type;
	rec->phase = job->phase;
	rec->flags = (job->shallow ? DM_CHAIN_JOB_SHALLOW : 0) |
		     (job->paused ? DM_CHAIN_JOB_PAUSED : 0) |
		     (job->dest_zeroed ? DM_CHAIN_JOB_DEST_ZEROED : 0) |
		     (job->type == DM_CHAIN_JOB_MIRROR && !job->dest ?
		      DM_CHAIN_JOB_DEST_RAW : 0);
	rec->top = cpu_to_le32(job->top);
	rec->base = cpu_to_le32(job->base);
	rec->cursor = cpu_to_le64(cursor);
	rec->bandwidth = cpu_to_le64(job->bandwidth);
	rec->bytes_done = cpu_to_le64(job->bytes_done);
	rec->bytes_total = cpu_to_le64(job->bytes_total);
	memcpy(rec->top_uuid, dm_chain_layer_uuid(cc->cmd, job->top),
	       DM_CHAIN_UUID_SIZE);
	if (job->base != DM_CHAIN_JOB_NO_LAYER)
		memcpy(rec->base_uuid, dm_chain_layer_uuid(cc->cmd, job->base),
		       DM_CHAIN_UUID_SIZE);
	if (job->type == DM_CHAIN_JOB_MIRROR && job->dest)
		memcpy(rec->dest_uuid,
		       dm_chain_layer_uuid(job->dest,
					   job->shallow ? cc->nr_layers - 1 : 0),
		       DM_CHAIN_UUID_SIZE);
	/* chainadm's hint for the destination's path survives */
	memcpy(rec->dest_hint, job->written.dest_hint, DM_CHAIN_JOB_HINT_SIZE);
	rec->hint_len = job->written.hint_len;
}

/*
 * Copy again from cluster from on; bytes_total grows by what the walk
 * passed since.  May block.
 */
static void walk_back(struct chain_job *job, u64 from)
{
	u64 to;

	spin_lock_irq(&job->lock);
	to = job->cursor;
	if (from < to) {
		job->cursor = from;
		WRITE_ONCE(job->dest_zeroed, false);
	}
	spin_unlock_irq(&job->lock);
	if (from >= to)
		return;
	to = count_bytes(job, from, to);
	spin_lock_irq(&job->lock);
	job->bytes_total += to;
	spin_unlock_irq(&job->lock);
}

/* The lowest cluster whose copy may not be durable yet.  job->lock held. */
static u64 __durable_cursor(struct chain_job *job)
{
	u64 low = job->nr_owed ? min(job->cursor, job->owed_from) : job->cursor;
	struct chain_sync *s;

	list_for_each_entry(s, &job->bg_syncs, bg)
		low = min(low, s->vc);
	return low;
}

static void release_dest_freed(struct chain_job *job, struct list_head *list,
			       bool committed)
{
	struct dest_freed *f, *tmp;

	list_for_each_entry_safe(f, tmp, list, list) {
		if (committed)
			dm_chain_release_cluster(job->dest, f->host);
		list_del(&f->list);
		kfree(f);
	}
}

/* Take the freed destination clusters no I/O can reach any more. */
static void take_dest_freed(struct chain_job *job, struct list_head *list)
{
	u64 swept = chain_epochs_swept(job->cc);
	struct dest_freed *f, *tmp;

	spin_lock_irq(&job->lock);
	list_for_each_entry_safe(f, tmp, &job->freed, list)
		if (f->epoch < swept)
			list_move_tail(&f->list, list);
	spin_unlock_irq(&job->lock);
}

/*
 * Part of every commit of the target: make the destination durable, then
 * hand the job record (with the cursor taken before) to the active layer's
 * metadata.  May block.
 */
int chain_job_commit(struct chain_c *cc)
{
	struct chain_job *job = cc->job;
	struct dm_chain_job_record rec;
	LIST_HEAD(freed);
	u64 cursor;
	int r = 0;

	if (!job)
		return 0;
	take_dest_freed(job, &freed);
	spin_lock_irq(&job->lock);
	cursor = __durable_cursor(job);
	spin_unlock_irq(&job->lock);

	/*
	 * Always flush the destination: copies into clusters it already
	 * held change no metadata, and the cursor written below passes them.
	 */
	if (job->dest && job->dest != cc->cmd)
		r = dm_chain_commit(job->dest, true);
	else if (job->dest_bdev && job->type != DM_CHAIN_JOB_STREAM)
		r = blkdev_issue_flush(job->dest_bdev);
	if (job->dest && job->dest != cc->cmd)
		release_dest_freed(job, &freed, !r);
	if (r) {
		/*
		 * The destination failed, the chain did not: it commits on.
		 * Nothing copied since the last good commit is known to be
		 * on the destination: the record keeps its cursor, and the
		 * walk goes back to it (a mirroring job to the start: guest
		 * writes went anywhere below the cursor).
		 */
		if (le32_to_cpu(job->written.magic) == DM_CHAIN_JOB_MAGIC)
			cursor = min(cursor, le64_to_cpu(job->written.cursor));
		else
			cursor = 0;
		walk_back(job, is_mirroring_type(job->type) ? 0 : cursor);
		job_failed(job, r);
	}
	spin_lock_irq(&job->lock);
	if (job->cancelled)
		memset(&rec, 0, sizeof(rec));
	else
		fill_record(job, &rec, cursor);
	spin_unlock_irq(&job->lock);
	job->written = rec;
	dm_chain_set_job(cc->cmd, &rec);
	return 0;
}

/* After the target's commit: phase changes may be told now. */
void chain_job_committed(struct chain_c *cc)
{
	struct chain_job *job = cc->job;
	bool event;

	if (!job)
		return;
	spin_lock_irq(&job->lock);
	event = job->event_after_commit;
	job->event_after_commit = false;
	spin_unlock_irq(&job->lock);
	if (event)
		dm_table_event(cc->ti->table);
}

/* Whether the job has something for the periodic commit. */
bool chain_job_wants_commit(struct chain_c *cc)
{
	struct chain_job *job = cc->job;

	return job && !job->cancelled &&
	       (job->phase == DM_CHAIN_PHASE_RUNNING ||
		job->phase == DM_CHAIN_PHASE_READY ||
		(job->dest && job->dest != cc->cmd && dm_chain_dirty(job->dest)));
}

/* ---- Starting, resuming, stopping ---- */

static struct chain_job *alloc_job(struct chain_c *cc)
{
	struct chain_job *job = kzalloc(sizeof(*job), GFP_KERNEL);

	if (!job)
		return NULL;
	if (mempool_init_kmalloc_pool(&job->sync_pool, JOB_MAX_IN_FLIGHT,
				      sizeof(struct chain_sync))) {
		kfree(job);
		return NULL;
	}
	job->cc = cc;
	job->ti = cc->ti;
	spin_lock_init(&job->lock);
	INIT_LIST_HEAD(&job->retry);
	INIT_LIST_HEAD(&job->bg_syncs);
	bio_list_init(&job->bios);
	INIT_LIST_HEAD(&job->freed);
	INIT_LIST_HEAD(&job->free_batches);
	init_waitqueue_head(&job->idle);
	INIT_DELAYED_WORK(&job->work, do_job);
	INIT_WORK(&job->event_work, do_event);
	job->base = DM_CHAIN_JOB_NO_LAYER;
	job->lo = -1;
	job->src = cc->cmd;
	job->nr_clusters = dm_chain_nr_clusters(cc->cmd);
	xa_init(&job->owed);
	job->max_in_flight = clamp_t(unsigned int,
				     JOB_IN_FLIGHT_BYTES >> (cc->cluster_shift + SECTOR_SHIFT),
				     1, JOB_MAX_IN_FLIGHT);
	job->bandwidth = cc->bandwidth;
	job->bw_start = ktime_get();
	job->rate_start = job->bw_start;
	alloc_batches(job);
	return job;
}

static bool job_idle(struct chain_job *job)
{
	bool r;

	spin_lock_irq(&job->lock);
	r = !job->in_flight && !job->guest_syncs;
	spin_unlock_irq(&job->lock);
	return r;
}

/*
 * Stop issuing and wait for every sync, the guest's too: nothing of the
 * job touches the destination afterwards.  May block.
 */
static void quiesce(struct chain_job *job)
{
	unsigned int i;

	spin_lock_irq(&job->lock);
	job->stopped = true;
	spin_unlock_irq(&job->lock);
	/*
	 * The walk starts nothing now; it drops background syncs that wait
	 * for a retry and runs the guest's (completed uncopied once the job
	 * was cancelled or failed).  A failing copy may land on the retry
	 * list while we wait.
	 */
	do {
		kick(job, 0);
	} while (!wait_event_timeout(job->idle, job_idle(job), HZ / 10));
	/* The last batch may still be ending its syncs, and kick the walk. */
	if (job->batches)
		for (i = 0; i < JOB_BATCHES; i++)
			flush_work(&job->batches[i].work);
	cancel_delayed_work_sync(&job->work);
}

static void free_job(struct chain_job *job)
{
	struct chain_sync *s, *tmp;

	quiesce(job);
	flush_work(&job->event_work);
	list_for_each_entry_safe(s, tmp, &job->retry, queue) {
		list_del(&s->queue);
		if (s->bio)
			bio_endio(s->bio);
		mempool_free(s, &job->sync_pool);
	}
	if (job->dest && job->dest != job->cc->cmd) {
		release_dest_freed(job, &job->freed, false);
		dm_chain_metadata_close(job->dest);
	}
	if (job->src != job->cc->cmd)
		dm_chain_metadata_close(job->src);
	free_batches(job);
	free_owed(job);
	mempool_exit(&job->sync_pool);
	kfree(job);
}

/* A metadata view over layers 0..last, or over those below top + dev. */
static struct dm_chain_metadata *open_view(struct chain_c *cc,
					   unsigned int nr,
					   struct block_device *extra,
					   char *err, size_t err_len)
{
	struct dm_chain_metadata *cmd;
	struct block_device **bdevs;
	unsigned int l, n = nr + !!extra;

	bdevs = kmalloc_array(n, sizeof(*bdevs), GFP_KERNEL);
	if (!bdevs) {
		snprintf(err, err_len, "Cannot allocate a layer list");
		return ERR_PTR(-ENOMEM);
	}
	for (l = 0; l < nr; l++)
		bdevs[l] = cc->devs[l]->bdev;
	if (extra)
		bdevs[nr] = extra;
	cmd = dm_chain_metadata_open(bdevs, n,
				     (nr && cc->base_raw ? DM_CHAIN_OPEN_RAW_BASE : 0) |
				     (extra ? DM_CHAIN_OPEN_COPY_DEST : 0),
				     (u64)cc->ti->len << SECTOR_SHIFT,
				     err, err_len);
	kfree(bdevs);
	return cmd;
}

/*
 * Say which layer of a copy's view the destination is: the view's own
 * message counts its layers from 0, the destination last.
 */
static void dest_view_error(unsigned int dest_layer, char *err, size_t err_len)
{
	char *why = kstrdup(err, GFP_KERNEL);

	if (!why)
		return;
	if (dest_layer)
		snprintf(err, err_len,
			 "Copy destination (layer %u of the copy's view, above the chain's layers 0-%u): %s",
			 dest_layer, dest_layer - 1, why);
	else
		snprintf(err, err_len, "Copy destination (layer 0 of the copy's view): %s",
			 why);
	kfree(why);
}

/* Is dest the destination the active layer's job record names? */
static bool resuming_dest(struct chain_job *job, struct dm_chain_metadata *dest)
{
	const struct dm_chain_job_record *rec = &job->written;

	return le32_to_cpu(rec->magic) == DM_CHAIN_JOB_MAGIC &&
	       rec->type == DM_CHAIN_JOB_MIRROR &&
	       (rec->flags & DM_CHAIN_JOB_SHALLOW) &&
	       !memcmp(rec->dest_uuid,
		       dm_chain_layer_uuid(dest, job->cc->nr_layers - 1),
		       DM_CHAIN_UUID_SIZE);
}

/* Fill in source and destination for the job's type and layers. */
static int setup_job(struct chain_job *job, char *err, size_t err_len)
{
	struct chain_c *cc = job->cc;
	unsigned int active = cc->nr_layers - 1;
	struct dm_chain_metadata *v;

	switch (job->type) {
	case DM_CHAIN_JOB_STREAM:
		job->lo = job->base == DM_CHAIN_JOB_NO_LAYER ? -1 : job->base;
		job->top = active;
		job->dest = cc->cmd;
		job->dest_bdev = active_dev(cc)->bdev;
		return 0;
	case DM_CHAIN_JOB_COMMIT:
		v = open_view(cc, job->top + 1, NULL, err, err_len);
		if (IS_ERR(v))
			return PTR_ERR(v);
		job->src = v;
		fallthrough;
	case DM_CHAIN_JOB_ACTIVE_COMMIT:
		job->lo = job->base;
		job->dest_bdev = cc->devs[job->base]->bdev;
		if (cc->base_raw && !job->base)
			return 0;
		v = open_view(cc, job->base + 1, NULL, err, err_len);
		if (IS_ERR(v))
			return PTR_ERR(v);
		job->dest = v;
		return 0;
	case DM_CHAIN_JOB_MIRROR:
		job->top = active;
		job->dest_bdev = cc->mirror_dev->bdev;
		job->shallow = cc->mirror_shallow;
		job->dest_zeroed = cc->dest_zeroed;
		if (cc->mirror_raw) {
			if (bdev_nr_sectors(job->dest_bdev) < cc->ti->len) {
				snprintf(err, err_len,
					 "Raw mirror destination is too small: %llu sectors, the device has %llu",
					 (u64)bdev_nr_sectors(job->dest_bdev),
					 (u64)cc->ti->len);
				return -EINVAL;
			}
			return 0;
		}
		v = open_view(cc, job->shallow ? active : 0, job->dest_bdev,
			      err, err_len);
		if (IS_ERR(v)) {
			dest_view_error(job->shallow ? active : 0, err, err_len);
			return PTR_ERR(v);
		}
		/*
		 * A full copy's view holds the destination alone, so nothing
		 * has compared its clusters with the chain's: the walk indexes
		 * the destination's table by the chain's cluster numbers.
		 */
		if (dm_chain_cluster_shift(v) != dm_chain_cluster_shift(cc->cmd)) {
			snprintf(err, err_len,
				 "Mirror destination has %u-byte clusters, the chain %u-byte ones: format it with the chain's cluster size",
				 1u << dm_chain_cluster_shift(v),
				 1u << dm_chain_cluster_shift(cc->cmd));
			dm_chain_metadata_close(v);
			return -EINVAL;
		}
		job->dest = v;
		/*
		 * A shallow copy starts from an empty layer; one the active
		 * layer records as this copy's destination is being resumed
		 * (after a crash or a reload) and may hold what it copied: the
		 * walk copies every cluster the active layer holds again, and
		 * an active layer's cluster never goes back to ABSENT.
		 */
		if (job->shallow && !resuming_dest(job, v)) {
			u64 used, total;

			dm_chain_space(v, &used, &total);
			if (used) {
				snprintf(err, err_len,
					 "Shallow copy destination already holds %llu clusters: it must be an empty layer",
					 used);
				return -EINVAL;
			}
		}
		return 0;
	default:
		snprintf(err, err_len, "Unknown job type %u", job->type);
		return -EINVAL;
	}
}

/*
 * Start the walk at cursor; done and total are a restarted job's recorded
 * figures (copies past its recorded cursor are counted again: total grows
 * to match).
 */
static void begin(struct chain_job *job, u64 cursor, u64 done, u64 total)
{
	job->cursor = cursor;
	job->bytes_done = min(done, total);
	job->bytes_total = max(total, job->bytes_done +
				      count_bytes(job, cursor, job->nr_clusters));
	job->percent = job->bytes_total ?
		       div64_u64(job->bytes_done * 100, job->bytes_total) : 0;
	if (job->phase == DM_CHAIN_PHASE_NONE)
		job->phase = DM_CHAIN_PHASE_RUNNING;
}

/*
 * The phase a recorded job starts again in.  Whatever the destination was
 * owed died with the last activation: a stream or a commit goes on from
 * the recorded cursor (which never passes an owed cluster), an active
 * commit or a mirror copies everything again (begin()), so a job that was
 * ready or completed but has work again is running.  A failed job stays
 * failed until 'job resume'; a paused one stays paused.
 */
static void restart_phase(struct chain_job *job,
			  const struct dm_chain_job_record *rec)
{
	job->paused = rec->flags & DM_CHAIN_JOB_PAUSED;
	if (rec->phase == DM_CHAIN_PHASE_FAILED)
		job->phase = DM_CHAIN_PHASE_FAILED;
	else if (rec->phase == DM_CHAIN_PHASE_COMPLETED &&
		 !is_mirroring_type(job->type) &&
		 le64_to_cpu(rec->cursor) >= job->nr_clusters)
		job->phase = DM_CHAIN_PHASE_COMPLETED;
	else
		job->phase = DM_CHAIN_PHASE_RUNNING;
}

/* Check a recorded layer index and UUID against the table. */
static bool same_layer(struct chain_c *cc, u32 l, const u8 *uuid)
{
	return l < cc->nr_layers &&
	       !memcmp(dm_chain_layer_uuid(cc->cmd, l), uuid,
		       DM_CHAIN_UUID_SIZE);
}

/*
 * At construction: pick up a job recorded in the active layer's header,
 * or start the mirror the table names.  May block.
 */
int chain_job_ctr(struct chain_c *cc, char *err, size_t err_len)
{
	struct dm_chain_job_record rec;
	struct chain_job *job;
	bool recorded;
	int r;

	if (!cc->cmd)
		return 0;	/* a lone raw layer copied has a raw view */
	dm_chain_get_job(cc->cmd, &rec);
	recorded = le32_to_cpu(rec.magic) == DM_CHAIN_JOB_MAGIC;
	if (!recorded && !cc->mirror_dev)
		return 0;
	if (recorded && rec.phase == DM_CHAIN_PHASE_PIVOT) {
		snprintf(err, err_len,
			 "A pivot was cut short (the active layer records it): run chainadm recover");
		return -EINVAL;
	}
	if (recorded && rec.type == DM_CHAIN_JOB_MIRROR && !cc->mirror_dev) {
		snprintf(err, err_len,
			 "An unfinished copy to '%.*s' is recorded in the active layer: name its destination in the table (chainadm create does), or run chainadm job --abort",
			 min_t(int, rec.hint_len, DM_CHAIN_JOB_HINT_SIZE),
			 rec.dest_hint);
		return -EINVAL;
	}
	if (recorded && rec.type != DM_CHAIN_JOB_MIRROR && cc->mirror_dev) {
		snprintf(err, err_len,
			 "The active layer records a %s job: finish or abort it before starting a copy",
			 rec.type < ARRAY_SIZE(type_names) ?
			 type_names[rec.type] : "unknown");
		return -EINVAL;
	}

	job = alloc_job(cc);
	if (!job) {
		snprintf(err, err_len, "Cannot allocate the job");
		return -ENOMEM;
	}
	if (recorded)
		job->written = rec;
	if (cc->mirror_dev) {
		job->type = DM_CHAIN_JOB_MIRROR;
		if (recorded && rec.bandwidth && !cc->bandwidth)
			job->bandwidth = le64_to_cpu(rec.bandwidth);
	} else {
		job->type = rec.type;
		job->top = le32_to_cpu(rec.top);
		job->base = le32_to_cpu(rec.base);
		job->bandwidth = le64_to_cpu(rec.bandwidth);
		if (job->type < DM_CHAIN_JOB_STREAM ||
		    job->type > DM_CHAIN_JOB_ACTIVE_COMMIT ||
		    /* a commit writes into its base: it must name one */
		    (job->type != DM_CHAIN_JOB_STREAM &&
		     job->base == DM_CHAIN_JOB_NO_LAYER) ||
		    !same_layer(cc, job->top, rec.top_uuid) ||
		    (job->base != DM_CHAIN_JOB_NO_LAYER &&
		     (!same_layer(cc, job->base, rec.base_uuid) ||
		      job->base >= job->top)) ||
		    (job->type == DM_CHAIN_JOB_ACTIVE_COMMIT &&
		     job->top != cc->nr_layers - 1) ||
		    (job->type == DM_CHAIN_JOB_COMMIT &&
		     job->top >= cc->nr_layers - 1)) {
			snprintf(err, err_len,
				 "The active layer records a %s job over other layers than the table's: run chainadm recover, or chainadm job --abort",
				 rec.type < ARRAY_SIZE(type_names) ?
				 type_names[rec.type] : "unknown");
			r = -EINVAL;
			goto bad;
		}
	}
	r = setup_job(job, err, err_len);
	if (r)
		goto bad;
	if (recorded && rec.type == job->type)
		restart_phase(job, &rec);
	if (job->type == DM_CHAIN_JOB_STREAM || job->type == DM_CHAIN_JOB_COMMIT)
		begin(job, le64_to_cpu(rec.cursor), le64_to_cpu(rec.bytes_done),
		      le64_to_cpu(rec.bytes_total));
	else
		begin(job, 0, 0, 0);	/* copy everything again, see top */
	job->stopped = true;		/* until resume */
	cc->job = job;
	return 0;
bad:
	free_job(job);
	return r;
}

/*
 * A finished job makes way for next: nothing of it runs any more (its
 * guest copies too) before its views close, and no commit is between
 * the two.  I/O completions may still look at the old cc->job, so it
 * stays allocated (idle, its views closed) until the target goes.  May
 * block.
 */
static void replace_job(struct chain_c *cc, struct chain_job *next)
{
	struct chain_job *job = cc->job;

	if (job) {
		spin_lock_irq(&job->lock);
		job->cancelled = true;	/* it takes no more guest writes */
		spin_unlock_irq(&job->lock);
		quiesce(job);
		flush_work(&job->event_work);
	}
	mutex_lock(&cc->commit_lock);
	WRITE_ONCE(cc->job, next);
	mutex_unlock(&cc->commit_lock);
	if (!job)
		return;
	if (job->dest && job->dest != cc->cmd) {
		release_dest_freed(job, &job->freed, false);
		dm_chain_metadata_close(job->dest);
	}
	if (job->src != cc->cmd)
		dm_chain_metadata_close(job->src);
	job->dest = NULL;
	job->src = cc->cmd;
	free_batches(job);
	free_owed(job);
	job->retired = cc->retired_jobs;
	cc->retired_jobs = job;
}

void chain_job_dtr(struct chain_c *cc)
{
	struct chain_job *job;

	if (cc->job)
		free_job(cc->job);
	cc->job = NULL;
	while ((job = cc->retired_jobs)) {
		cc->retired_jobs = job->retired;
		mempool_exit(&job->sync_pool);
		kfree(job);
	}
}

void chain_job_presuspend(struct chain_c *cc)
{
	struct chain_job *job = cc->job;

	if (!job)
		return;
	spin_lock_irq(&job->lock);
	job->stopped = true;
	spin_unlock_irq(&job->lock);
}

/* Guest bios have drained; background syncs must too.  May block. */
void chain_job_postsuspend(struct chain_c *cc)
{
	if (cc->job)
		quiesce(cc->job);
}

void chain_job_resume(struct chain_c *cc)
{
	struct chain_job *job = cc->job;

	if (!job)
		return;
	spin_lock_irq(&job->lock);
	job->stopped = false;
	job->bw_start = ktime_get();
	job->rate_start = job->bw_start;
	job->bw_issued = 0;
	spin_unlock_irq(&job->lock);
	kick(job, 0);
}

/* ---- Messages ---- */

static bool job_active(struct chain_job *job)
{
	return job && !job->cancelled &&
	       (job->phase == DM_CHAIN_PHASE_RUNNING ||
		job->phase == DM_CHAIN_PHASE_READY ||
		job->phase == DM_CHAIN_PHASE_FAILED ||
		job->phase == DM_CHAIN_PHASE_COMPLETED);
}

static int parse_layer(struct chain_c *cc, const char *arg, unsigned int *l)
{
	if (kstrtouint(arg, 10, l) || *l >= cc->nr_layers) {
		DMWARN("%s: invalid layer index '%s': want 0..%u (0 is the bottom)",
		       dm_device_name(dm_table_get_md(cc->ti->table)), arg,
		       cc->nr_layers - 1);
		return -EINVAL;
	}
	return 0;
}

static int start_message_job(struct chain_c *cc, enum dm_chain_job_type type,
			     unsigned int top, unsigned int base)
{
	const char *name = dm_device_name(dm_table_get_md(cc->ti->table));
	struct chain_job *job;
	char err[192];
	int r;

	if (job_active(cc->job)) {
		DMWARN("%s: a %s job exists: cancel it first ('job cancel')",
		       name, type_names[cc->job->type]);
		return -EBUSY;
	}
	if (dm_chain_mode(cc->cmd) != CHAIN_MODE_WRITE) {
		DMWARN("%s: the metadata is not writable: no job can start", name);
		return -EROFS;
	}
	job = alloc_job(cc);
	if (!job)
		return -ENOMEM;
	job->type = type;
	job->top = top;
	job->base = base;
	r = setup_job(job, err, sizeof(err));
	if (r) {
		DMWARN("%s: cannot start the %s job: %s", name,
		       type_names[type], err);
		free_job(job);
		return r;
	}
	begin(job, 0, 0, 0);
	job->stopped = dm_suspended(cc->ti);
	replace_job(cc, job);
	if (is_mirroring_type(type))
		chain_wait_wide_writes(cc);
	DMINFO("%s: %s job started: %llu bytes to copy", name,
	       type_names[type], job->bytes_total);
	job->event = true;
	kick(job, 0);
	return 0;
}

static int message_stream(struct chain_c *cc, unsigned int argc, char **argv)
{
	unsigned int base = DM_CHAIN_JOB_NO_LAYER;

	if (argc > 2)
		return -EINVAL;
	if (argc == 2 && strcmp(argv[1], "-") && parse_layer(cc, argv[1], &base))
		return -EINVAL;
	if (base != DM_CHAIN_JOB_NO_LAYER && base + 1 >= cc->nr_layers) {
		DMWARN("%s: stream: base %u must be below the active layer",
		       dm_device_name(dm_table_get_md(cc->ti->table)), base);
		return -EINVAL;
	}
	return start_message_job(cc, DM_CHAIN_JOB_STREAM, cc->nr_layers - 1,
				 base);
}

static int message_commit(struct chain_c *cc, unsigned int argc, char **argv)
{
	unsigned int top, base;

	if (argc != 3 || parse_layer(cc, argv[1], &top) ||
	    parse_layer(cc, argv[2], &base))
		return -EINVAL;
	if (base >= top) {
		DMWARN("%s: commit: base %u must be below top %u",
		       dm_device_name(dm_table_get_md(cc->ti->table)), base, top);
		return -EINVAL;
	}
	return start_message_job(cc, top == cc->nr_layers - 1 ?
				 DM_CHAIN_JOB_ACTIVE_COMMIT : DM_CHAIN_JOB_COMMIT,
				 top, base);
}

/* Stop the job for good and clear its record.  May block. */
static int cancel_job(struct chain_c *cc)
{
	struct chain_job *job = cc->job;

	spin_lock_irq(&job->lock);
	job->cancelled = true;
	spin_unlock_irq(&job->lock);
	quiesce(job);
	kick(job, 0);		/* guest writes waiting complete uncopied */
	flush_workqueue(cc->wq);
	chain_commit_now(cc);
	dm_table_event(cc->ti->table);
	DMINFO("%s: %s job cancelled",
	       dm_device_name(dm_table_get_md(cc->ti->table)),
	       type_names[job->type]);
	return 0;
}

static int message_job(struct chain_c *cc, unsigned int argc, char **argv)
{
	struct chain_job *job = cc->job;
	u64 bw;

	if (argc < 2)
		return -EINVAL;
	if (!job_active(job)) {
		DMWARN("%s: no job to '%s'",
		       dm_device_name(dm_table_get_md(cc->ti->table)), argv[1]);
		return -ENOENT;
	}
	if (!strcasecmp(argv[1], "cancel") && argc == 2)
		return cancel_job(cc);
	if (!strcasecmp(argv[1], "pause") && argc == 2) {
		spin_lock_irq(&job->lock);
		job->paused = true;
		job->event = true;
		spin_unlock_irq(&job->lock);
		kick(job, 0);
		return 0;
	}
	if (!strcasecmp(argv[1], "resume") && argc == 2) {
		spin_lock_irq(&job->lock);
		job->paused = false;
		/* The walk goes on, and copies what is owed at its end. */
		if (job->phase == DM_CHAIN_PHASE_FAILED)
			job->phase = DM_CHAIN_PHASE_RUNNING;
		job->event = true;
		spin_unlock_irq(&job->lock);
		kick(job, 0);
		return 0;
	}
	if (!strcasecmp(argv[1], "bandwidth") && argc == 3) {
		if (kstrtou64(argv[2], 10, &bw)) {
			DMWARN("%s: invalid bandwidth '%s': want bytes per second",
			       dm_device_name(dm_table_get_md(cc->ti->table)),
			       argv[2]);
			return -EINVAL;
		}
		spin_lock_irq(&job->lock);
		job->bandwidth = bw;
		job->bw_start = ktime_get();
		job->bw_issued = 0;
		spin_unlock_irq(&job->lock);
		kick(job, 0);
		return 0;
	}
	return -EINVAL;
}

int chain_job_message(struct chain_c *cc, unsigned int argc, char **argv)
{
	int r = -EINVAL;

	if (!cc->cmd) {
		DMWARN("%s: a lone raw layer runs no jobs",
		       dm_device_name(dm_table_get_md(cc->ti->table)));
		return -EINVAL;
	}
	/* A lone raw layer copied by its table: 'job' messages only. */
	if (cc->raw_view && strcasecmp(argv[0], "job")) {
		DMWARN("%s: a lone raw layer has no layers to pull or commit: only its copy runs",
		       dm_device_name(dm_table_get_md(cc->ti->table)));
		return -EINVAL;
	}
	if (!strcasecmp(argv[0], "stream"))
		r = message_stream(cc, argc, argv);
	else if (!strcasecmp(argv[0], "commit"))
		r = message_commit(cc, argc, argv);
	else if (!strcasecmp(argv[0], "job"))
		r = message_job(cc, argc, argv);
	if (r == -EINVAL)
		DMWARN("%s: invalid message '%s%s%s': want 'stream [<base>]', 'commit <top> <base>' or 'job pause|resume|cancel|bandwidth <bytes/s>'",
		       dm_device_name(dm_table_get_md(cc->ti->table)), argv[0],
		       argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
	return r;
}

/* ---- Status ---- */

static const char *phase_name(struct chain_job *job)
{
	if (job->cancelled)
		return "cancelled";
	switch (job->phase) {
	case DM_CHAIN_PHASE_RUNNING:
		return job->paused ? "paused" : "running";
	case DM_CHAIN_PHASE_READY:
		return "ready";
	case DM_CHAIN_PHASE_COMPLETED:
		return "completed";
	case DM_CHAIN_PHASE_FAILED:
		return "failed";
	default:
		return "-";
	}
}

unsigned int chain_job_status(struct chain_c *cc, char *result,
			      unsigned int maxlen, unsigned int sz)
{
	struct chain_job *job = cc->job;
	unsigned long flags;
	s64 elapsed;

	if (!job) {
		DMEMIT(" none - 0/0 0 0 0 -");
		return sz;
	}
	spin_lock_irqsave(&job->lock, flags);
	elapsed = ktime_to_ns(ktime_sub(ktime_get(), job->rate_start));
	if (elapsed >= NSEC_PER_SEC) {
		job->rate = div64_u64(job->rate_bytes * NSEC_PER_SEC, elapsed);
		job->rate_bytes = 0;
		job->rate_start = ktime_get();
	}
	DMEMIT(" %s %s %llu/%llu %llu %llu %u", type_names[job->type],
	       phase_name(job), job->bytes_done, job->bytes_total,
	       job->phase == DM_CHAIN_PHASE_RUNNING ? job->rate : 0,
	       job->bandwidth, job->errors);
	if (job->last_error)
		DMEMIT(" %d", -job->last_error);
	else
		DMEMIT(" -");
	spin_unlock_irqrestore(&job->lock, flags);
	return sz;
}
