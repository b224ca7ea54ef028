/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The header steps that end a block job, shared by the live verbs (on a
 * suspended device, through its table devices) and by recover and create
 * (offline, through the layers' paths).  All writes go through one header
 * transaction, so a live caller can undo them if the table load fails.
 *
 * Order, chosen so that a crash between any two writes leaves a state
 * that recover finishes (see cmd_recover.c):
 *
 *   stream completed   active header: backing = base, record cleared
 *                      (one write)
 *   commit completed   base+1..top marked invalidated; then layer top+1:
 *                      backing = base (record cleared in the same write if
 *                      top+1 is the active layer); then the active header:
 *                      record cleared
 *   active commit      record phase = pivot; base+1..active-1 invalidated;
 *   pivot              the active layer invalidated last, keeping its
 *                      pivot record
 *   mirror pivot       record phase = pivot; after the new table is live,
 *                      the record cleared
 */
#ifndef CHAINADM_STEPS_H
#define CHAINADM_STEPS_H

#include "job.h"
#include "txn.h"

/* The layers of a chain, bottom first, whose headers a step may write. */
struct stack {
	unsigned int n;
	bool raw_base;
	const char *name;	/* for messages: the device or the top layer */
	struct txn *txn;
	/* The header of layer i, opened for writing through txn. */
	struct layer *(*open)(struct stack *s, unsigned int i);
	/* The backing hint that names layer i (an absolute path). */
	int (*hint)(struct stack *s, unsigned int i, char *buf, size_t len);
	void *priv;
};

/*
 * Check that rec (from the active layer's header) describes this chain:
 * its type, indexes in range, the UUIDs of top and base those of the
 * layers at those indexes.
 */
int steps_check(struct stack *s, const struct job_record *rec);

/* The header writes of a completed stream or commit. */
int steps_complete(struct stack *s, const struct job_record *rec);

/* Write rec with phase pivot into the active header. */
int steps_pivot_intent(struct stack *s, struct job_record *rec);

/* The invalidations of an active commit's pivot (after the intent). */
int steps_pivot_commit(struct stack *s, const struct job_record *rec);

/* Clear the record of the active layer. */
int steps_clear_record(struct stack *s);

#endif
