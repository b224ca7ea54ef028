// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm check: offline consistency check of one layer, in the manner
 * of thin_check.
 *
 * Errors (exit 3) are states the format forbids.  Two states are legal
 * after a crash and only reported: one header slot torn (the other one is
 * current), and clusters mapped at or beyond data_end (their data and
 * table entries were flushed, the header that moves data_end was not).
 * Clusters below the allocation end that no entry maps are free (a discard
 * freed them; the kernel reuses them): counted in a note.  The flags are
 * reported as warnings: needs-check (the kernel saw a metadata error) and
 * invalidated (the layer was committed into the one below it).
 *
 * With --clear-needs-check, and only when the check found no error, the
 * needs-check flag is cleared the way the kernel updates a header: the
 * current header with generation + 1 goes into slot generation % 2, the
 * slot not holding the current header, followed by fsync.  A torn write
 * leaves that slot invalid and the old header (flag still set) current.
 * The layer's lock (lock.h) is held meanwhile, so the rewrite waits for
 * any chainadm command that has the layer in hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "lock.h"
#include "output.h"

enum { OPT_CLEAR_NEEDS_CHECK = 0x100 };

struct check {
	struct layer l;
	bool quiet;
	bool clear_needs_check;
	bool slot_ok[DM_CHAIN_HEADER_SLOTS];
	struct dm_chain_layer_info slot[DM_CHAIN_HEADER_SLOTS];
	char why[DM_CHAIN_HEADER_SLOTS][256];
};

/* --json: every finding a line of the table "check". */
static const struct out_col check_cols[] = {
	{ "SEVERITY",	"error, warning or info",		OUT_STR, 7 },
	{ "LAYER",	"the layer (its path)",			OUT_STR, 0.3 },
	{ "MESSAGE",	"what was found",			OUT_STR, 0.6 },
};
#define CHECK_DEFAULT	"SEVERITY,LAYER,MESSAGE"
static struct out_table *findings;

void check_help(void)
{
	out_help_columns(check_cols, sizeof(check_cols) / sizeof(check_cols[0]),
			 CHECK_DEFAULT);
}

static void finding(const char *severity, const char *object, const char *text)
{
	struct libscols_line *ln = out_line(findings);

	out_str(findings, ln, "SEVERITY", severity);
	out_str(findings, ln, "LAYER", object);
	out_str(findings, ln, "MESSAGE", text);
}

/* Progress and findings that are not errors go to stdout. */
static __attribute__((format(printf, 2, 3)))
void note(const struct check *ck, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (ck->quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (findings)
		finding("info", ck->l.path, text);
	else
		printf("%s: %s\n", ck->l.path, text);
}

/* Unpack each slot on its own, to say precisely what is wrong with it. */
static int check_slots(struct check *ck, const __u8 *blocks)
{
	int s;

	for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++)
		ck->slot_ok[s] = !dm_chain_header_unpack(
			blocks + s * DM_CHAIN_BLOCK_SIZE, ck->l.size,
			&ck->slot[s], ck->why[s], sizeof(ck->why[s]));
	if (!ck->slot_ok[0] && !ck->slot_ok[1]) {
		for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++)
			errmsg(ck->l.path, "header slot %d: %s", s, ck->why[s]);
		errmsg(ck->l.path, "no valid header");
		return -1;
	}
	if (ck->slot_ok[0] && ck->slot_ok[1] &&
	    memcmp(ck->slot[0].uuid, ck->slot[1].uuid, DM_CHAIN_UUID_SIZE)) {
		errmsg(ck->l.path, "the two header slots carry different layer UUIDs");
		return -1;
	}
	for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++) {
		if (ck->slot_ok[s])
			note(ck, "header slot %d: generation %llu", s,
			     (unsigned long long)ck->slot[s].generation);
		else
			warnmsg(ck->l.path, "header slot %d is invalid (%s): a torn header write, slot %d is used",
				s, ck->why[s], !s);
	}
	return 0;
}

static int check_header(struct check *ck)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	char err[256];

	if (layer_read_slots(&ck->l, blocks))
		return -EIO;
	/* Below 8 KiB there are no slots to look at one by one. */
	if (ck->l.size >= DM_CHAIN_TABLE_OFFSET && check_slots(ck, blocks))
		return -EINVAL;
	if (dm_chain_header_read(blocks, ck->l.size, &ck->l.info, err,
				 sizeof(err))) {
		errmsg(ck->l.path, "%s", err);
		return -EINVAL;
	}
	note(ck, "using header slot %d", ck->l.info.slot);
	if ((ck->l.info.flags & DM_CHAIN_FLAG_NEEDS_CHECK) &&
	    !ck->clear_needs_check)
		warnmsg(ck->l.path, "the needs-check flag is set: the kernel saw a metadata error on this layer; if this check finds no error, clear it with --clear-needs-check");
	if (ck->l.info.flags & DM_CHAIN_FLAG_INVALIDATED)
		warnmsg(ck->l.path, "invalidated by a commit into a lower layer; not usable on its own");
	if (ck->l.info.flags & DM_CHAIN_FLAG_COPY_DEST)
		warnmsg(ck->l.path, "the unfinished destination of a copy; not usable until a copy into it finishes");
	return 0;
}

static void report_allocation(const struct check *ck,
			      const struct entry_counts *c, __u64 max_cluster)
{
	const struct dm_chain_layer_info *info = &ck->l.info;
	uint64_t start = info->data_offset >> info->cluster_shift;
	uint64_t allocated = info->data_end - start;
	uint64_t referenced = c->mapped - c->beyond_end;

	note(ck, "%llu clusters: %llu mapped, %llu zero, %llu absent; %llu data clusters allocated",
	     (unsigned long long)info->nr_clusters, (unsigned long long)c->mapped,
	     (unsigned long long)c->zero, (unsigned long long)c->absent,
	     (unsigned long long)allocated);
	note(ck, "table map: %llu of %llu table blocks marked",
	     (unsigned long long)c->marked_blocks,
	     (unsigned long long)dm_chain_table_blocks(info));
	if (c->beyond_end)
		note(ck, "%llu mapped clusters lie at or beyond the allocation end (host cluster %llu, highest %llu): a commit interrupted before its header write",
		     (unsigned long long)c->beyond_end,
		     (unsigned long long)info->data_end,
		     (unsigned long long)(max_cluster - 1));
	if (referenced < allocated)
		note(ck, "%llu data clusters below the allocation end are free (freed by discards, reused by the next writes)",
		     (unsigned long long)(allocated - referenced));
}

static int check_table(struct check *ck)
{
	const struct dm_chain_layer_info *info = &ck->l.info;
	size_t words = info->dev_clusters / BITS_PER_LONG + 1;
	unsigned long *used = calloc(words, sizeof(*used));
	struct entry_counts counts;
	__u64 max_cluster = 0;
	int r;

	if (!used) {
		errmsg(ck->l.path, "cannot check the table: out of memory");
		return -ENOMEM;
	}
	r = layer_count_entries(&ck->l, used, &max_cluster, &counts);
	if (!r)
		report_allocation(ck, &counts, max_cluster);
	free(used);
	return r;
}

/* Write the current header without the needs-check flag; see the top. */
static int clear_needs_check(struct check *ck)
{
	struct dm_chain_layer_info info = ck->l.info;
	int r;

	if (!(info.flags & DM_CHAIN_FLAG_NEEDS_CHECK)) {
		note(ck, "the needs-check flag is not set: nothing to clear");
		return 0;
	}
	info.flags &= ~DM_CHAIN_FLAG_NEEDS_CHECK;
	r = layer_write_header(&ck->l, &info);
	if (r) {
		errmsg(ck->l.path, "the needs-check flag stays set");
		return r;
	}
	note(ck, "needs-check flag cleared: generation %llu written to header slot %d",
	     (unsigned long long)info.generation, info.slot);
	return 0;
}

static int run_check(struct check *ckp, const char *path);

int cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "clear-needs-check", no_argument, NULL, OPT_CLEAR_NEEDS_CHECK },
		{ "quiet",	no_argument, NULL, 'q' },
		OUT_LONG_OPTIONS,
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct check ck = { .quiet = false };
	struct out_opts o = { .columns = NULL };
	struct out_table t;
	bool table = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "q" OUT_SHORT_OPTIONS "h", opts,
				NULL)) != -1) {
		if (out_option(&o, c, optarg)) {
			table = true;
			continue;
		}
		switch (c) {
		case OPT_CLEAR_NEEDS_CHECK:
			ck.clear_needs_check = true;
			break;
		case 'q':
			ck.quiet = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (optind != argc - 1)
		return usage_error("expects one layer path");
	/* The table options: every message a line of a table, on stdout. */
	if (table) {
		if (out_begin(&t, &o, "check", check_cols,
			      sizeof(check_cols) / sizeof(check_cols[0]),
			      CHECK_DEFAULT))
			return EXIT_USAGE;
		findings = &t;
		msg_sink = finding;
	}
	r = run_check(&ck, argv[optind]);
	if (table) {
		msg_sink = NULL;
		findings = NULL;
		if (out_end(&t) && !r)
			r = -1;
	}
	if (r == -EINVAL)
		return EXIT_INCONSISTENT;
	return r ? EXIT_FAIL : EXIT_OK;
}

static int run_check(struct check *ckp, const char *path)
{
	struct check ck = *ckp;
	int r;

	/* A header rewrite waits for chainadm commands on the layer. */
	if (ck.clear_needs_check && lock_layer_path(path))
		return -1;
	/* O_EXCL: never rewrite the header of a block device in use. */
	if (layer_open(&ck.l, path,
		       ck.clear_needs_check ? O_RDWR | O_EXCL : O_RDONLY))
		return -1;
	r = check_header(&ck);
	if (!r)
		r = check_table(&ck);
	if (!r)
		note(&ck, "no inconsistencies found");
	if (!r && ck.clear_needs_check)
		r = clear_needs_check(&ck);
	else if (r && ck.clear_needs_check &&
		 (ck.l.info.flags & DM_CHAIN_FLAG_NEEDS_CHECK))
		errmsg(ck.l.path, "not clearing the needs-check flag: the check found errors");
	layer_close(&ck.l);
	return r;
}
