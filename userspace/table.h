/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The chain target's table line and status line, as documented in
 * Documentation/dm-chain.rst:
 *
 *   table:  <#layers> <raw|chain> <dev_0> ... <dev_n-1> [<#features> <feature>...]
 *   status: <#layers> <cluster sectors|-> <allocated>/<data clusters>|-
 *           <rw|ro|Fail> <needs_check|-> <ok|full> [more fields...]
 *
 * Layers are bottom first, the last one is the active layer; the second
 * word says whether dev_0 is a raw device or a chain layer.
 */
#ifndef CHAINADM_TABLE_H
#define CHAINADM_TABLE_H

#include <sys/types.h>

#include "chainadm.h"

struct chain_table {
	unsigned int n;
	bool raw_base;
	dev_t dev[DM_CHAIN_MAX_LAYERS];
	char *features;		/* "<#features> <feature>..." verbatim, or "" */
};

struct chain_status {
	unsigned int n;
	bool has_clusters;	/* false for a chain of one raw device */
	uint64_t cluster_sectors;
	uint64_t allocated;	/* data clusters of the active layer */
	uint64_t total;
	char mode[8];		/* rw, ro or Fail */
	bool needs_check;
	bool full;
};

/* Parse the table line of device name; prints an error naming it. */
int table_parse(const char *name, const char *params, struct chain_table *t);
/* The table line of t, malloc'ed, or NULL. */
char *table_format(const struct chain_table *t);
void table_free(struct chain_table *t);

int status_parse(const char *name, const char *params, struct chain_status *s);

#endif
