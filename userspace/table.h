/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The chain target's table line and status line, as documented in
 * Documentation/dm-chain.rst:
 *
 *   table:  <#layers> <raw|chain> <dev_0> ... <dev_n-1> [<#features> <feature>...]
 *   status: <#layers> <cluster sectors|-> <allocated>/<data clusters>|-
 *           <rw|ro|Fail> <needs_check|-> <ok|full>
 *           [<type> <phase> <done>/<total> <rate> <bandwidth> <errors>
 *            <last_error>] [more fields...]
 *
 * Layers are bottom first, the last one is the active layer; the second
 * word says whether dev_0 is a raw device or a chain layer.  The seven job
 * fields came with target version 1.1; a status without them is that of
 * a module without block jobs.
 *
 * Job feature words (target 1.1): "mirror <dest> <raw|chain> <full|shallow>"
 * (four words), "dest_zeroed", "bandwidth:<bytes/s>".
 */
#ifndef CHAINADM_TABLE_H
#define CHAINADM_TABLE_H

#include <sys/types.h>

#include "chainadm.h"

struct chain_mirror {
	bool present;
	dev_t dest;
	bool raw;		/* the destination is a raw device */
	bool shallow;
};

struct chain_table {
	unsigned int n;
	bool raw_base;
	dev_t dev[DM_CHAIN_MAX_LAYERS];
	char *features;		/* "<#features> <feature>..." verbatim, or "" */
	struct chain_mirror mirror;	/* parsed from features */
};

struct chain_job_status {
	bool supported;		/* the status has the job fields */
	char type[16];		/* none, stream, commit, active-commit, mirror */
	char phase[16];		/* -, running, paused, ready, completed, ... */
	uint64_t done;		/* in bytes */
	uint64_t total;
	uint64_t rate;		/* in bytes/s */
	uint64_t bandwidth;	/* in bytes/s, 0 unlimited */
	uint64_t errors;
	int last_error;		/* errno, 0 none */
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
	struct chain_job_status job;
};

/* Parse the table line of device name; prints an error naming it. */
int table_parse(const char *name, const char *params, struct chain_table *t);
/* The table line of t, malloc'ed, or NULL. */
char *table_format(const struct chain_table *t);
void table_free(struct chain_table *t);

/*
 * features without its job words, with the words of extra appended
 * (extra may be ""), counted again; malloc'ed, or NULL.
 */
char *features_rebuild(const char *features, const char *extra);

/* "mirror <maj:min> <raw|chain> <full|shallow>" into buf. */
void mirror_words(const struct chain_mirror *m, char *buf, size_t len);

int status_parse(const char *name, const char *params, struct chain_status *s);

#endif
