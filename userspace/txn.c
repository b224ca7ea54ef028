// SPDX-License-Identifier: GPL-2.0-only
/*
 * Header transactions; see txn.h.
 *
 * Why restoring the saved slot is right: before a transaction the current
 * header G sits in slot G % 2 and the other slot holds an older header or
 * garbage.  The first write puts G + 1 into the other slot; putting that
 * slot's old bytes back makes G current again, exactly as before, and the
 * kernel (whose old table still believes in G) goes on writing G + 1 there
 * next.  A second write to the same layer (G + 2 over slot G % 2) is undone
 * first, restoring G, then the first.  A crash during the undo leaves one
 * of the states the transaction passed through, each of which chainadm
 * recover resolves (see cmd_recover.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "txn.h"

void txn_init(struct txn *x)
{
	memset(x, 0, sizeof(*x));
}

static struct txn_layer *find(struct txn *x, const struct obj_id *id)
{
	unsigned int i;

	for (i = 0; i < x->n; i++)
		if (same_obj(&x->layer[i]->id, id))
			return x->layer[i];
	return NULL;
}

struct layer *txn_open(struct txn *x, const char *path,
		       const struct obj_id *expect)
{
	struct txn_layer *tl, *old;

	if (x->n == TXN_LAYERS) {
		errmsg(path, "too many layers in one header transaction");
		return NULL;
	}
	tl = calloc(1, sizeof(*tl));
	if (!tl) {
		errmsg(path, "out of memory");
		return NULL;
	}
	if (layer_open(&tl->l, path, O_RDWR | O_DIRECT)) {
		free(tl);
		return NULL;
	}
	if (obj_identity(tl->l.fd, path, &tl->id))
		goto fail;
	if (expect && !same_obj(expect, &tl->id)) {
		errmsg(path, "is not the file the device uses (renamed or replaced since it was attached?): not writing its header");
		goto fail;
	}
	old = find(x, &tl->id);
	if (old) {
		layer_close(&tl->l);
		free(tl);
		return &old->l;
	}
	if (layer_read_slots(&tl->l, tl->orig) || layer_load_header(&tl->l))
		goto fail;
	x->layer[x->n++] = tl;
	return &tl->l;
fail:
	layer_close(&tl->l);
	free(tl);
	return NULL;
}

int txn_write(struct txn *x, struct layer *l, struct dm_chain_layer_info *info)
{
	struct txn_layer *tl = (struct txn_layer *)l;
	int r;

	if (x->nlog == sizeof(x->log) / sizeof(x->log[0])) {
		errmsg(l->path, "too many header writes in one transaction");
		return -1;
	}
	r = layer_write_header(l, info);
	/* A failed write may have torn the slot: undo rewrites it too. */
	if (r != -EINVAL) {
		x->log[x->nlog].tl = tl;
		x->log[x->nlog].slot = info->slot;
		x->nlog++;
	}
	return r ? -1 : 0;
}

int txn_set_flag(struct txn *x, struct layer *l, __u32 flag)
{
	struct dm_chain_layer_info info = l->info;

	if (info.flags & flag)
		return 0;
	info.flags |= flag;
	return txn_write(x, l, &info);
}

int txn_undo(struct txn *x)
{
	struct txn_write *w;
	int r = 0;

	while (x->nlog) {
		w = &x->log[--x->nlog];
		if (layer_write_slot(&w->tl->l, w->slot,
				     w->tl->orig + w->slot * DM_CHAIN_BLOCK_SIZE)) {
			errmsg(w->tl->l.path, "cannot restore header slot %d: the layer may keep the new header; check it with chainadm info before using it",
			       w->slot);
			r = -1;
		}
	}
	return r;
}

void txn_close(struct txn *x)
{
	unsigned int i;

	for (i = 0; i < x->n; i++) {
		layer_close(&x->layer[i]->l);
		free(x->layer[i]);
	}
	x->n = 0;
	x->nlog = 0;
}
