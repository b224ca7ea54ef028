/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A chain assembled offline: layers bottom first, the last one is the
 * active layer.  Every link is verified when it is added: the backing
 * type and UUID the upper layer records must describe the lower one, the
 * cluster and virtual sizes must agree, and no layer may appear twice.
 * Raw content is never probed: whether the bottom is raw comes from the
 * backing type of the layer above it or from the command line.
 */
#ifndef CHAINADM_CHAIN_H
#define CHAINADM_CHAIN_H

#include "layer.h"

struct chain {
	unsigned int n;
	struct layer layer[DM_CHAIN_MAX_LAYERS];
};

struct chain *chain_alloc(void);
void chain_free(struct chain *c);

/* Follow the backing hints down from top. */
int chain_discover(struct chain *c, const char *top);

/* Layers given bottom first; raw_base: paths[0] is a raw device. */
int chain_from_list(struct chain *c, char *const *paths, unsigned int n,
		    bool raw_base);

/* Close layers [from, to] and move the ones above down. */
void chain_remove(struct chain *c, unsigned int from, unsigned int to);

/* Open path as a new layer on top of c, verifying its link to the top. */
int chain_push_top(struct chain *c, const char *path, bool raw);

/*
 * Whether the kernel will accept every layer's flags: refuses (with a
 * message naming the remedy) a needs-check or an invalidated layer.
 * Discovery itself accepts them, so that info can show such a chain.
 */
int chain_check_usable(const struct chain *c);

#endif
