/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-chain target internals shared by the target (dm-chain-target.c) and
 * the block jobs (dm-chain-job.c).
 */
#ifndef DM_CHAIN_TARGET_H
#define DM_CHAIN_TARGET_H

#include <linux/device-mapper.h>
#include <linux/dm-io.h>
#include <linux/dm-kcopyd.h>
#include <linux/mempool.h>
#include <linux/workqueue.h>

#include "dm-chain-metadata.h"

struct chain_job;

#define CELL_HASH_BITS		8
#define MIN_CELLS		64
/* Background syncs a job keeps in flight; a stream's each hold a cell. */
#define JOB_MAX_IN_FLIGHT	64u
/* Epochs of in-flight I/O kept apart (see chain_c.epoch_lock). */
#define NR_EPOCHS		64
#define COMMIT_PERIOD		HZ
#define DEFAULT_NO_SPACE_TIMEOUT 60	/* seconds, as dm-thin */
#define COPY_BUF_SECTORS	(2 << (20 - SECTOR_SHIFT))	/* 2 MiB per device */

/* A cluster the worker is allocating; bios for it wait here. */
struct chain_cell {
	struct hlist_node node;
	struct chain_c *cc;
	struct bio *bio;	/* the bio that started the allocation */
	struct bio_list waiters;
	u64 vcluster;
	u64 host;
};

/*
 * A first write smaller than its cluster, copied up through a buffer: the
 * cluster is read into buf, the write laid over it, and the whole written
 * to the new host cluster (see copy_up()).
 */
struct chain_copy {
	struct list_head free;		/* cc->copies while unused */
	struct chain_cell *cell;	/* its bio is the write */
	struct work_struct work;
	struct dm_io_region to;
	unsigned long error;
	bool writing;			/* the read is done */
	void *buf;			/* one cluster */
};

/*
 * A host cluster freed by a discard.  It waits on cc->freed until every
 * I/O counted in its epoch and the ones before completed (epoch <
 * cc->epoch_swept) and a commit no longer points at it; then the allocator
 * may have it.
 */
struct chain_freed {
	struct list_head list;
	u64 host;
	u64 epoch;			/* chain_free_ticket() */
};

/* Per-bio data. */
struct chain_bio {
	struct chain_cell *publish;	/* publish this cell on completion */
	bool commit_waited;		/* FUA completion already deferred */
	bool mirrored;			/* the job already copied this write */
	bool wide;			/* a write over several clusters */
	int epoch;			/* counted in this epoch slot, or -1 */
	bool needs_flush;		/* written without its FUA flag */
	u64 vcluster;			/* where a write landed, for the job */
	sector_t offset;		/* in the cluster, sectors */
	sector_t len;
};

struct chain_c {
	struct dm_target *ti;
	/*
	 * NULL for a lone raw layer, but a raw view of it while a table
	 * copies it (feature mirror): raw_view.
	 */
	struct dm_chain_metadata *cmd;
	bool raw_view;
	unsigned int nr_layers;
	bool base_raw;
	unsigned int cluster_shift;	/* in sectors */
	sector_t cluster_sectors;

	bool ignore_discard;
	bool discard_passdown;
	bool error_if_no_space;
	unsigned int no_space_timeout;	/* in seconds, 0 = forever */

	/*
	 * Protects the bio lists, the cell hash, out_of_space and
	 * suspending.  Nests outside the metadata's own lock.
	 */
	spinlock_t lock;
	struct bio_list deferred;	/* for the worker */
	struct bio_list commit_waiters;	/* FLUSH and FUA: need a commit */
	struct list_head freed;		/* struct chain_freed, for the commit */
	struct bio_list no_space;	/* queued while the layer is full */
	struct hlist_head cells[1 << CELL_HASH_BITS];
	bool out_of_space;
	unsigned int space_pct;		/* used share last told, space_event() */
	bool suspending;		/* presuspend until resume: park nothing */
	bool commit_due;		/* set by the periodic commit */

	/*
	 * Epochs of bios sent to host clusters without a cell (dm-thin's
	 * deferred set is the model): a bio counts in the epoch it entered;
	 * a freed host cluster takes a ticket, the epoch then current, and
	 * may be reused once every epoch up to its ticket drained.  Protects
	 * the epoch_ fields; nests inside nothing.
	 */
	spinlock_t epoch_lock;
	u64 epoch_seq;			/* the epoch bios enter now */
	u64 epoch_swept;		/* every epoch before it drained */
	u64 epoch_last_ticket;		/* the newest ticket handed out */
	bool epoch_advance;		/* a ticket waits for epoch_seq to move */
	unsigned int epoch_count[NR_EPOCHS];	/* by epoch % NR_EPOCHS */

	/*
	 * Held by every commit, and while a new job replaces cc->job and the
	 * old one's views close: a commit sees one job, whole.
	 */
	struct mutex commit_lock;
	/*
	 * Held by messages and by the index reload at preresume: a message
	 * that starts a job reads the index, which the reload frees and
	 * builds again.
	 */
	struct mutex message_lock;

	struct workqueue_struct *wq;
	struct work_struct worker;
	struct delayed_work commit_work;
	struct delayed_work no_space_work;
	struct dm_kcopyd_client *kc;
	struct dm_io_client *io;	/* copy-ups through a buffer */
	struct list_head copies;	/* free struct chain_copy, under lock */
	unsigned int nr_copies;		/* allocated, at most max_copies */
	unsigned int max_copies;
	mempool_t cell_pool;
	struct chain_job *job;		/* NULL when no job was ever started */
	/*
	 * Writes in flight that map() let span several clusters.  The job
	 * code copies guest writes one cluster at a time, so none may be in
	 * flight once an active commit or a mirror starts: it waits for
	 * this to drop to zero (chain_wait_wide_writes()).
	 */
	atomic_t wide_writes;
	struct chain_job *retired_jobs;	/* replaced jobs, freed at dtr */

	/* A mirror destination named in the table (feature "mirror"). */
	struct dm_dev *mirror_dev;
	bool mirror_raw;
	bool mirror_shallow;
	bool dest_zeroed;
	u64 bandwidth;			/* bytes/s from the table, 0 = none */
	unsigned long guest_io;		/* jiffies of the last guest bio */

	struct dm_dev *devs[];		/* bottom first; last is active */
};

static inline struct dm_dev *active_dev(struct chain_c *cc)
{
	return cc->devs[cc->nr_layers - 1];
}

/* Sectors of virtual cluster vc; the last one may be short. */
static inline sector_t cluster_len(struct chain_c *cc, u64 vc)
{
	sector_t start = vc << cc->cluster_shift;

	return min_t(sector_t, cc->cluster_sectors, cc->ti->len - start);
}

void chain_wake_worker(struct chain_c *cc);
void chain_complete_list(struct bio_list *bios, blk_status_t status);
struct chain_cell *chain_lock_cluster(struct chain_c *cc, u64 vc,
				      struct bio *bio);
void chain_release_cell(struct chain_cell *cell, bool publish, bool requeue);
void chain_request_commit(struct chain_c *cc);
void chain_enter_epoch(struct chain_c *cc, int *slot);
void chain_leave_epoch(struct chain_c *cc, int *slot);
u64 chain_free_ticket(struct chain_c *cc);
u64 chain_epochs_swept(struct chain_c *cc);
void chain_commit_now(struct chain_c *cc);
void chain_wait_wide_writes(struct chain_c *cc);

/* Block jobs: dm-chain-job.c */
int chain_job_ctr(struct chain_c *cc, char *err, size_t err_len);
void chain_job_dtr(struct chain_c *cc);
int chain_job_message(struct chain_c *cc, unsigned int argc, char **argv);
unsigned int chain_job_status(struct chain_c *cc, char *result,
			      unsigned int maxlen, unsigned int sz);
bool chain_job_end_io(struct chain_c *cc, struct bio *bio,
		      struct chain_bio *pb);
bool chain_job_mirroring(struct chain_c *cc);
bool chain_job_may_mirror(struct chain_c *cc);
int chain_job_commit(struct chain_c *cc);
void chain_job_committed(struct chain_c *cc);
bool chain_job_wants_commit(struct chain_c *cc);
void chain_job_presuspend(struct chain_c *cc);
void chain_job_postsuspend(struct chain_c *cc);
void chain_job_resume(struct chain_c *cc);

#endif
