/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Live chain devices, shared by the device verbs, the job verbs and map:
 * reading a device's table and status, addressing its layers, assembling
 * a device from layers, and changing its table while it is suspended.
 */
#ifndef CHAINADM_DEVICE_H
#define CHAINADM_DEVICE_H

#include <limits.h>

#include "chain.h"
#include "dm.h"
#include "loop.h"
#include "table.h"
#include "txn.h"

#define NO_LAYER	DM_CHAIN_JOB_NO_LAYER

/* The table of dm device name, which must be a chain device. */
int load_chain_device(const char *name, struct dm_target_line *line,
		      struct chain_table *t);

/* What a user calls dev (its file or node), or "maj:min". */
void layer_label(dev_t dev, char *buf, size_t len);

/* Resume; if that fails, say how the device stays and what to do. */
void resume_or_report(const char *name);

/* Load params, suspend, resume; the old table stays live on failure. */
int swap_table(const char *name, uint64_t sectors, const char *params);

/*
 * path as a block device: its own number, or a new loop device (autoclear)
 * whose fd is returned in *fd (-1 for a block device); keep it open until
 * a table holds the loop device.
 */
int attach_path(const char *path, bool read_only, dev_t *dev, int *fd);

/*
 * Format a new layer at path over layer idx of the live table t
 * (cluster_size 0: the backing layer's, or the default over a raw one).
 */
int format_over(const char *path, uint64_t layer_size, uint64_t sectors,
		uint32_t cluster_size, const struct chain_table *t,
		unsigned int idx);

/* A device to create from layers opened offline. */
struct assembly {
	const struct chain *c;	/* bottom first */
	uint64_t sectors;	/* 0: the chain's own size */
	const char *features;	/* "<#features> <word>..." or "" */
	unsigned int rw_layer;	/* a lower layer attached read-write, or NO_LAYER */
	const struct layer *dest;	/* a mirror destination, or NULL */
	bool dest_shallow;
};

/* Create, load and resume the device in one operation. */
int assemble_device(const char *name, const struct assembly *a);

/* A live chain device, as read before a job verb acts on it. */
struct live {
	const char *name;
	struct dm_info info;
	struct dm_target_line line;	/* the live table */
	struct chain_table t;
	struct chain_status s;
};

int live_open(struct live *lv, const char *name);
void live_close(struct live *lv);

/*
 * live_open() under the locks (lock.h): the device's lock, then those of
 * its layers, of its mirror destination and of extra (a path or NULL; a
 * path that does not exist yet is the caller's to create, with O_EXCL).
 * Nothing another chainadm does changes the device until unlock_all() or
 * the end of the process.
 */
int live_lock(struct live *lv, const char *name, const char *extra);
/* After a wait without the locks: take them again and read the device. */
int live_relock(struct live *lv);
/* Open the header of a table device read-only (O_DIRECT) and load it. */
int live_read_header(dev_t dev, struct layer *l);

/* Refuse a module without block jobs. */
int live_require_jobs(const struct live *lv);
/*
 * Refuse if a job is there (or a copy's destination is still in the
 * table): "<name>: the <type> job is <phase>: <refused>; <what to do>".
 */
int live_require_idle(const struct live *lv, const char *refused);

/*
 * The table index of a layer given as name[N] (N = 0 the active layer,
 * 1 the one below it, ...) or as the path of its file or device; opt
 * names the option in messages.
 */
int live_find_layer(const struct live *lv, const char *spec, const char *opt,
		    unsigned int *idx);
/* "name[N] (file)" for table index idx, into LAYER_DESC_LEN bytes. */
#define LAYER_DESC_LEN	(PATH_MAX + 64)
void live_describe(const struct live *lv, unsigned int idx, char *buf,
		   size_t len);

/*
 * Make table layer idx writable: a loop device attached read-only is
 * replaced in lv->t by a new read-write one on the same file, whose fd is
 * returned in *fd (-1 if nothing changed).
 */
int live_make_writable(struct live *lv, unsigned int idx, int *fd);

/*
 * Whether a chain device other than name uses the object id as a layer or
 * a mirror destination: 1 with its name in who, 0, or -1.
 */
int find_other_user(const char *name, const struct obj_id *id, char *who,
		    size_t len);

/*
 * A table change while the device is suspended:
 *
 *   change_begin()     suspend (flushes; the kernel commits its metadata)
 *   change_layer()     open layer headers, write them through ch->txn
 *   ch->params = ...   the new table, left NULL if a step failed
 *   change_commit()    load it and resume; if there is none, or the load
 *                      or the resume fails, the headers are restored and
 *                      the old table resumed (-1)
 *   change_end()       release everything
 */
struct change {
	struct live *lv;
	struct txn txn;
	char *params;
	int fd;			/* a loop device held until the table has it */
	/* If set, run first when the change is cancelled (still suspended). */
	void (*on_cancel)(struct change *ch);
};

int change_begin(struct change *ch, struct live *lv);
struct layer *change_layer(struct change *ch, dev_t dev);
int change_commit(struct change *ch);
void change_end(struct change *ch);

/* The table lv->t with layers [0, keep_low] and [keep_high, n-1] only. */
char *table_without(const struct live *lv, unsigned int keep_low,
		    unsigned int keep_high, const char *extra_features);

/*
 * For create and recover, with the device's lock held: the chain from
 * its top layer, or from layers listed bottom first, read while the locks
 * of its layers and of a copy destination its top records are held.
 */
struct chain_source {
	char *const *paths;
	unsigned int n;		/* 0: discover the chain from paths[0], its top */
	bool raw_base;		/* a list's paths[0] is a raw device */
};

int chain_open_locked(struct chain *c, const struct chain_source *src);

/* cmd_device.c: refuse what cannot be a dm device name (usage error). */
int check_name(const char *name);

/*
 * cmd_recover.c: create honouring the job record of the top layer of c
 * (a mirror's destination, a commit's writable base; a cut-short pivot
 * is refused with the advice to run recover).
 */
int create_with_job(const char *name, struct chain *c, const char *features);

#endif
