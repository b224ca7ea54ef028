/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One chainadm operation per device at a time, as LVM takes a lock per
 * volume group: flock(2) on files in /run/lock/chainadm,
 *
 *   dev-<name>                  a dm device, by its name
 *   layer-<maj>:<min>           a layer that is a block device (st_rdev)
 *   layer-<maj>:<min>-<ino>     a layer that is a file (st_dev, st_ino)
 *
 * so that every path to a layer, and the loop device a table reaches a
 * file through, name one lock; two devices that share a base share its
 * lock.
 *
 * Every verb that suspends, loads or resumes a table, or writes a header,
 * takes the device lock first, holding nothing else, then reads what it
 * acts on, then the locks of every layer it touches in one batch, in the
 * order of their identity.  Nobody waits for a device lock while holding
 * a lock, and layer locks are waited for in ascending order only, so no
 * two commands can wait for each other.  The locks are held across
 * suspend, header writes, load and resume, and released while a command
 * waits for a job's progress: the end of the job takes them again and
 * reads the device again.
 *
 * The holder writes "<pid> <command line>" into the file, so that a
 * command run with --nowait can say who holds it.  The files are never
 * removed (a waiter may have one open), and /run is cleared at boot.
 */
#ifndef CHAINADM_LOCK_H
#define CHAINADM_LOCK_H

#include "loop.h"
#include "chainadm.h"

#define LOCK_DIR	"/run/lock/chainadm"

/* --nowait: fail at once, naming the holder, instead of waiting. */
extern bool lock_nowait;

/* Record the command line written into the lock files. */
void lock_set_command(int argc, char **argv);

/* Take the lock of dm device name; at most one per process. */
int lock_device(const char *name);

/* Layers to lock, each with how to name it in a message. */
#define LOCK_LAYERS	(DM_CHAIN_MAX_LAYERS + 2)	/* + a copy's destination */

struct lock_layer {
	struct obj_id id;
	dev_t dev;		/* a table device, or 0 */
	const char *path;	/* or a path, borrowed */
};

struct lockset {
	unsigned int n;
	struct lock_layer l[LOCK_LAYERS];
};

void lockset_init(struct lockset *s);
/* Add a table device (a loop device stands for its file). */
int lockset_add_dev(struct lockset *s, dev_t dev);
/* Add the layer at path; a path that does not exist is nothing to lock. */
int lockset_add_path(struct lockset *s, const char *path);
/* Add an object already identified; path names it in messages. */
int lockset_add_id(struct lockset *s, const struct obj_id *id,
		   const char *path);

/* Take the locks of s, in ascending order; none may be held yet. */
int lock_layers(const struct lockset *s);
/* Whether every layer of s is locked by this process. */
bool lock_holds(const struct lockset *s);
void unlock_layers(void);
/* The lock of the one layer at path, for an offline header rewrite. */
int lock_layer_path(const char *path);

/* Release every lock this process holds. */
/* A lock of its own around one short step, taken last (lock.c). */
int lock_brief(const char *file, const char *object);
int lock_brief_timed(const char *file, const char *object, unsigned int ms);
void lock_brief_release(int fd);

void unlock_all(void);

#endif
