/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Block jobs: the job record of the active layer's header, the job fields
 * of the status line, and waiting for a job through dm events.  See
 * Documentation/chainadm.8 and the kernel interface in
 * Documentation/dm-chain.rst.
 */
#ifndef CHAINADM_JOB_H
#define CHAINADM_JOB_H

#include "output.h"
#include "table.h"

/* struct dm_chain_job_record in CPU byte order. */
struct job_record {
	bool present;		/* the magic is there */
	unsigned int type;	/* enum dm_chain_job_type */
	unsigned int phase;	/* enum dm_chain_job_phase */
	unsigned int flags;	/* DM_CHAIN_JOB_* */
	uint32_t top;		/* table index, bottom = 0 */
	uint32_t base;		/* table index or DM_CHAIN_JOB_NO_LAYER */
	uint64_t cursor;
	uint64_t bandwidth;	/* bytes/s */
	uint64_t done;
	uint64_t total;
	__u8 top_uuid[DM_CHAIN_UUID_SIZE];
	__u8 base_uuid[DM_CHAIN_UUID_SIZE];
	__u8 dest_uuid[DM_CHAIN_UUID_SIZE];
	char dest_hint[DM_CHAIN_JOB_HINT_SIZE + 1];
};

/* The record in info->job; an invalid record is an error naming path. */
int job_record_get(const struct dm_chain_layer_info *info, const char *path,
		   struct job_record *rec);
/* Store rec (or all zero if !rec->present) into info->job. */
void job_record_put(const struct job_record *rec,
		    struct dm_chain_layer_info *info);

const char *job_type_name(unsigned int type);	/* as in the status */
const char *job_phase_name(unsigned int phase);

/* "Block Pull", "Block Commit", "Block Copy" for a status type word. */
const char *job_label(const char *type);
/* A job is there: a type, not cancelled. */
bool job_is_active(const struct chain_job_status *js);
bool job_has_ready(const char *type);	/* active commit and mirror */
unsigned int job_percent(const struct chain_job_status *js);

/* The job fields, one "<prefix><key>: <value>" line each. */
void job_print_human(const struct chain_job_status *js, const char *prefix);
/*
 * The job's counters as table columns (output.h), for the read-outs that
 * show a job: job's own table and list/status.  job_cells() fills them.
 */
#define JOB_COLS \
	{ "DONE",	"bytes the job has copied",		OUT_NUM,  6 }, \
	{ "TOTAL",	"bytes the job copies in all",		OUT_NUM,  6 }, \
	{ "RATE",	"copy rate, bytes/s",			OUT_NUM,  6 }, \
	{ "BANDWIDTH",	"rate limit, bytes/s (0: unlimited)",	OUT_NUM,  6 }, \
	{ "ERRORS",	"I/O errors the job met",		OUT_NUM,  3 }, \
	{ "LAST-ERROR",	"errno of the last one",		OUT_NUM,  3 }, \
	{ "LAST-ERROR-TEXT", "its text",			OUT_STR,  0.2 }
void job_cells(struct out_table *t, struct libscols_line *ln,
	       const struct chain_job_status *js);

/*
 * Wait for the job of device name to end (completed) or, for an active
 * commit or a mirror, to be ready, with a dm event wait between status
 * reads (the kernel raises one on every phase change and every whole
 * percent).  progress: print "Block Pull: [ 45 %]" lines there, or NULL.
 * Returns an exit code: EXIT_OK with the final status in *js, EXIT_JOB_FAILED
 * (failed phase), EXIT_JOB_GONE (cancelled, or the job or the device
 * disappeared) or EXIT_FAIL, each with its message printed.
 */
int job_wait(const char *name, FILE *progress, struct chain_job_status *js);

#endif
