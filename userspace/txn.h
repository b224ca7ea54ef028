/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Header transactions: the header writes of one table change, with undo.
 *
 * Each layer is opened once, read-write (O_DIRECT where possible), and
 * both of its header slots are kept as found.  Every write goes through
 * layer_write_header() (generation + 1 into the other slot, flushed) and
 * is logged; txn_undo() writes the saved slots back, newest write first,
 * so that a table load that fails leaves every header as it was.
 */
#ifndef CHAINADM_TXN_H
#define CHAINADM_TXN_H

#include "layer.h"
#include "loop.h"

#define TXN_LAYERS	(DM_CHAIN_MAX_LAYERS + 1)	/* + a mirror dest */

struct txn_layer {
	struct layer l;		/* first: a struct layer * is a txn_layer * */
	struct obj_id id;
	__u8 orig[DM_CHAIN_TABLE_OFFSET];	/* both slots as found */
};

struct txn_write {
	struct txn_layer *tl;
	int slot;
};

struct txn {
	unsigned int n;
	struct txn_layer *layer[TXN_LAYERS];
	unsigned int nlog;
	struct txn_write log[2 * TXN_LAYERS];
};

void txn_init(struct txn *x);

/*
 * Open path for header writes and load its header; if expect is given,
 * the object opened must be that one (a loop device's file that was
 * replaced is refused).  The same object opened twice is one layer.
 * Returns the layer, owned by x, or NULL.
 */
struct layer *txn_open(struct txn *x, const char *path,
		       const struct obj_id *expect);

/* layer_write_header() on a layer of x, logged for txn_undo(). */
int txn_write(struct txn *x, struct layer *l, struct dm_chain_layer_info *info);

/* Set flag in the header of l unless it is set already. */
int txn_set_flag(struct txn *x, struct layer *l, __u32 flag);

/* Put back every slot written, newest first; 0 or -1 (reported). */
int txn_undo(struct txn *x);

void txn_close(struct txn *x);

#endif
