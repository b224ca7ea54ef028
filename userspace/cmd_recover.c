// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm recover, and create of a chain whose active layer records a
 * block job: the device is assembled as the old chain or the new one,
 * never a mix.
 *
 * The record sits in the header of the top layer given (the active layer
 * of the chain the job ran on).  What it says, and what is done:
 *
 *   pivot (recover only; create refuses and names recover)
 *     The switch was decided: the intent was written while the device was
 *     suspended with the job ready, so the base (active commit) or the
 *     destination (mirror) held all the old chain held.  Roll forward:
 *     active commit: redo the invalidations (a flag already set is left
 *     alone) and assemble the bottom up to the base; mirror: assemble the
 *     new chain on the destination the record names (dest_hint, checked
 *     against dest_uuid), then clear the record in the old top.
 *   completed (recover and create)
 *     The copy is done and committed; only the table change is missing.
 *     Redo its header steps (steps.c, in an order whose every prefix is a
 *     state handled here) and assemble the chain without the layers the
 *     job made redundant.  A commit cut short after relinking layer top+1
 *     shows as a chain without the record's top but with its base at the
 *     recorded index: only the record is left to clear.
 *   running, ready, failed (recover and create)
 *     The old chain, on which the kernel resumes the job: a copy with its
 *     destination from the record, a commit with its base read-write.  A
 *     copy is assembled without dest_zeroed, and the flag is cleared in
 *     the record: writes before a crash may have reached the destination,
 *     which then no longer reads zeros.
 *
 * Like every table change, under the device's lock and those of the
 * chain's layers and of a copy's destination (chain_open_locked()).
 *
 * A roll forward changes the top layer: the device's line in the chaintab
 * follows (chaintab.h) before the old top's record is cleared, so that a
 * crash in between finds the old top, with its record, again.
 *
 * chainadm assemble does what recover does for each device the chaintab
 * lists and that is not there yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "chaintab.h"
#include "device.h"
#include "lock.h"
#include "steps.h"

/* The chain opened offline as a struct stack (steps.c). */
struct offline {
	struct stack s;
	struct chain *c;
	struct txn txn;
};

static struct layer *offline_open(struct stack *s, unsigned int i)
{
	struct offline *off = s->priv;
	struct layer *l = &off->c->layer[i];
	struct obj_id id;

	if (obj_identity(l->fd, l->path, &id))
		return NULL;
	return txn_open(&off->txn, l->path, &id);
}

static int offline_hint(struct stack *s, unsigned int i, char *buf, size_t len)
{
	struct offline *off = s->priv;
	const char *path = off->c->layer[i].path;
	char real[PATH_MAX];

	if (!realpath(path, real)) {
		errmsg(path, "cannot resolve the path: %s", strerror(errno));
		return -1;
	}
	snprintf(buf, len, "%s", real);
	return 0;
}

static void offline_init(struct offline *off, struct chain *c)
{
	memset(&off->s, 0, sizeof(off->s));
	off->c = c;
	txn_init(&off->txn);
	off->s.n = c->n;
	off->s.raw_base = c->layer[0].raw;
	off->s.name = c->layer[c->n - 1].path;
	off->s.txn = &off->txn;
	off->s.open = offline_open;
	off->s.hint = offline_hint;
	off->s.priv = off;
}

/* Write the record of the top layer at path (cleared if !rec->present). */
static int put_record(const char *path, const struct job_record *rec)
{
	struct dm_chain_layer_info info;
	struct layer *l;
	struct txn txn;
	int r = -1;

	txn_init(&txn);
	l = txn_open(&txn, path, NULL);
	if (l) {
		info = l->info;
		job_record_put(rec, &info);
		r = txn_write(&txn, l, &info);
	}
	txn_close(&txn);
	return r;
}

/* The destination a mirror record names, opened read-only and checked. */
static int open_dest(const struct job_record *rec, struct layer *d)
{
	static const __u8 zero[DM_CHAIN_UUID_SIZE];
	char want[UUID_STR_LEN], have[UUID_STR_LEN];

	if (!rec->dest_hint[0]) {
		errmsg("job record", "an unfinished copy names no destination path: load the table with dmsetup, naming the destination in the mirror feature");
		return -1;
	}
	if (layer_open(d, rec->dest_hint, O_RDONLY))
		return -1;
	d->raw = rec->flags & DM_CHAIN_JOB_DEST_RAW;
	if (d->raw)
		return 0;
	if (layer_load_header(d))
		goto fail;
	if (memcmp(rec->dest_uuid, zero, sizeof(zero)) &&
	    memcmp(rec->dest_uuid, d->info.uuid, DM_CHAIN_UUID_SIZE)) {
		uuid_str(rec->dest_uuid, want);
		uuid_str(d->info.uuid, have);
		errmsg(d->path, "is layer %s, but the copy's destination is %s: put that layer at this path",
		       have, want);
		goto fail;
	}
	return 0;
fail:
	layer_close(d);
	return -1;
}

/* A commit cut short after relinking top + 1: only the record is left. */
static bool commit_relinked(const struct chain *c, const struct job_record *rec)
{
	static const __u8 zero[DM_CHAIN_UUID_SIZE];
	const struct layer *base;
	unsigned int i;

	if (rec->type != DM_CHAIN_JOB_COMMIT || rec->base >= c->n - 1)
		return false;
	for (i = 0; i < c->n; i++)
		if (!c->layer[i].raw &&
		    !memcmp(c->layer[i].info.uuid, rec->top_uuid, DM_CHAIN_UUID_SIZE))
			return false;
	base = &c->layer[rec->base];
	return base->raw ? !memcmp(rec->base_uuid, zero, sizeof(zero)) :
			   !memcmp(base->info.uuid, rec->base_uuid, DM_CHAIN_UUID_SIZE);
}

static int finish_completed(const char *name, struct chain *c,
			    const struct job_record *rec,
			    const struct assembly *a)
{
	struct offline off;
	unsigned int from, to;
	bool relinked = commit_relinked(c, rec);
	int r;

	if (rec->type != DM_CHAIN_JOB_STREAM && rec->type != DM_CHAIN_JOB_COMMIT) {
		errmsg(c->layer[c->n - 1].path, "records a completed %s job, which never completes (it pivots or is finished): the record is damaged; check the layer",
		       job_type_name(rec->type));
		return -1;
	}
	offline_init(&off, c);
	if (relinked)
		r = steps_clear_record(&off.s);
	else
		r = steps_check(&off.s, rec) || steps_complete(&off.s, rec) ? -1 : 0;
	txn_close(&off.txn);
	if (r) {
		errmsg(name, "the table change of the completed %s job is not finished: fix the error above and run chainadm recover again",
		       job_type_name(rec->type));
		return -1;
	}
	printf("%s: finished the table change of the completed %s job\n",
	       c->layer[c->n - 1].path, job_type_name(rec->type));
	if (!relinked) {
		from = rec->base == DM_CHAIN_JOB_NO_LAYER ? 0 : rec->base + 1;
		to = rec->type == DM_CHAIN_JOB_STREAM ? c->n - 2 : rec->top;
		chain_remove(c, from, to);
	}
	return chain_check_usable(c) ? -1 : assemble_device(name, a);
}

/* The device's chaintab line names the top of c now. */
static int follow_top(const char *name, const struct chain *c)
{
	const struct layer *top = &c->layer[c->n - 1];
	char path[PATH_MAX];

	if (abs_path(top->path, path, sizeof(path)) ||
	    chaintab_follow(name, path, c->n == 1 && top->raw, 0)) {
		warnmsg(name, "runs the new chain, but the chaintab still names the old top: edit its line to name %s",
			top->path);
		return -1;
	}
	return 0;
}

static int roll_forward_commit(const char *name, struct chain *c,
			       const struct job_record *rec,
			       const struct assembly *a)
{
	struct offline off;
	int r;

	offline_init(&off, c);
	r = steps_check(&off.s, rec) || steps_pivot_commit(&off.s, rec) ? -1 : 0;
	txn_close(&off.txn);
	if (r)
		return -1;
	chain_remove(c, rec->base + 1, c->n - 1);
	if (chain_check_usable(c) || assemble_device(name, a))
		return -1;
	return follow_top(name, c);
}

static int roll_forward_mirror(const char *name, struct chain *c,
			       const struct job_record *rec,
			       const struct assembly *a)
{
	struct job_record none = { .present = false };
	struct layer d;
	char *old_top;
	int r = -1;

	if (open_dest(rec, &d))
		return -1;
	layer_close(&d);
	old_top = strdup(c->layer[c->n - 1].path);
	if (!old_top) {
		errmsg(name, "out of memory");
		return -1;
	}
	if (rec->flags & DM_CHAIN_JOB_SHALLOW)
		chain_remove(c, c->n - 1, c->n - 1);
	else
		chain_remove(c, 0, c->n - 1);
	if (!chain_push_top(c, rec->dest_hint, rec->flags & DM_CHAIN_JOB_DEST_RAW) &&
	    !chain_check_usable(c))
		r = assemble_device(name, a);
	/* Not cleared if the chaintab names the old top still: see above. */
	if (!r && follow_top(name, c))
		r = -1;
	/* The old chain stays a valid image of the moment of the pivot. */
	if (!r && put_record(old_top, &none))
		warnmsg(old_top, "still records the pivot: the device runs the new chain; clear it with chainadm recover again");
	free(old_top);
	return r;
}

static int resume_recorded(const char *name, struct chain *c,
			   struct job_record *rec, struct assembly *a)
{
	const char *top = c->layer[c->n - 1].path;
	struct layer d = { .fd = -1 };
	int r;

	if (chain_check_usable(c))
		return -1;
	if ((rec->type == DM_CHAIN_JOB_COMMIT ||
	     rec->type == DM_CHAIN_JOB_ACTIVE_COMMIT) && rec->base < c->n)
		a->rw_layer = rec->base;
	if (rec->type == DM_CHAIN_JOB_MIRROR) {
		if (open_dest(rec, &d))
			return -1;
		a->dest = &d;
		a->dest_shallow = rec->flags & DM_CHAIN_JOB_SHALLOW;
		if (rec->flags & DM_CHAIN_JOB_DEST_ZEROED) {
			rec->flags &= ~DM_CHAIN_JOB_DEST_ZEROED;
			if (put_record(top, rec)) {
				layer_close(&d);
				return -1;
			}
		}
	}
	printf("%s: a %s job is recorded (%s): it resumes; follow it with 'chainadm job %s'\n",
	       top, job_type_name(rec->type), job_phase_name(rec->phase), name);
	r = assemble_device(name, a);
	if (d.fd >= 0)
		layer_close(&d);
	return r;
}

/* See the top of the file; recover: whether a pivot may be rolled forward. */
static int assemble_recorded(const char *name, struct chain *c,
			     const char *features, bool recover)
{
	struct layer *top = &c->layer[c->n - 1];
	struct assembly a = { .c = c, .features = features, .rw_layer = NO_LAYER };
	struct job_record rec = { .present = false };

	if (!top->raw && job_record_get(&top->info, top->path, &rec))
		return -1;
	if (!rec.present) {
		if (recover)
			printf("%s: no job recorded: assembling the chain as it is\n",
			       top->path);
		return chain_check_usable(c) ? -1 : assemble_device(name, &a);
	}
	a.sectors = top->info.virtual_size >> 9;
	switch (rec.phase) {
	case DM_CHAIN_PHASE_PIVOT:
		if (!recover) {
			errmsg(top->path, "the pivot of the %s job was cut short: run 'chainadm recover %s %s' to finish it",
			       job_type_name(rec.type), name, top->path);
			return -1;
		}
		printf("%s: finishing the pivot of the %s job\n", top->path,
		       job_type_name(rec.type));
		if (rec.type == DM_CHAIN_JOB_ACTIVE_COMMIT)
			return roll_forward_commit(name, c, &rec, &a);
		if (rec.type == DM_CHAIN_JOB_MIRROR)
			return roll_forward_mirror(name, c, &rec, &a);
		errmsg(top->path, "records the pivot of a %s job, which has no pivot: the record is damaged; check the layer",
		       job_type_name(rec.type));
		return -1;
	case DM_CHAIN_PHASE_COMPLETED:
		return finish_completed(name, c, &rec, &a);
	default:
		return resume_recorded(name, c, &rec, &a);
	}
}

int create_with_job(const char *name, struct chain *c, const char *features)
{
	return assemble_recorded(name, c, features, false);
}

int cmd_recover(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct chain_source src = { .n = 0 };
	struct dm_info info;
	struct chain *c;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h')
			return print_help();
		return try_help();
	}
	if (argc - optind != 2)
		return usage_error("expects a device name and the top layer");
	if (check_name(argv[optind]))
		return EXIT_USAGE;
	dm_op_init();
	if (lock_device(argv[optind]) || dm_op_probe(argv[optind], &info))
		return EXIT_FAIL;
	if (info.exists) {
		errmsg(argv[optind], "exists: recover assembles the device from its layers; remove it first (chainadm remove %s), or see chainadm job %s",
		       argv[optind], argv[optind]);
		return EXIT_FAIL;
	}
	src.paths = argv + optind + 1;
	c = chain_alloc();
	if (!c)
		return EXIT_FAIL;
	r = chain_open_locked(c, &src) ||
	    assemble_recorded(argv[optind], c, "", true) ? EXIT_FAIL : EXIT_OK;
	chain_free(c);
	return r;
}

/*
 * A device that is there already: it must be a chain device, and one
 * whose top is the chaintab's (else the line did not follow a change
 * made by hand, which is worth a warning, not a failure).
 */
static int assembled_already(const struct chaintab_entry *e)
{
	struct dm_target_line line;
	struct chain_table t;
	struct obj_id want, have;
	char label[PATH_MAX];
	dev_t top;

	if (load_chain_device(e->name, &line, &t)) {
		errmsg(e->name, "exists, but not as a chain device: not touched; remove it, or rename the chaintab line");
		return -1;
	}
	top = t.dev[t.n - 1];
	layer_label(top, label, sizeof(label));
	if (!obj_identity(-1, e->top, &want) && !dev_identity(top, &have) &&
	    !same_obj(&want, &have))
		warnmsg(e->name, "runs with top layer %s, but the chaintab names %s: was the table changed without chainadm? Edit the line to name the top the device runs",
			label, e->top);
	printf("%s: already assembled (top layer %s)\n", e->name, label);
	table_free(&t);
	dm_target_line_free(&line);
	return 0;
}

static int assemble_entry(const struct chaintab_entry *e)
{
	char *paths[1] = { (char *)e->top };
	struct chain_source src = { .paths = paths, .n = e->raw, .raw_base = e->raw };
	struct dm_info info;
	struct chain *c;
	int r;

	if (lock_device(e->name) || dm_op_probe(e->name, &info)) {
		unlock_all();
		return -1;
	}
	if (info.exists) {
		r = assembled_already(e);
		unlock_all();
		return r;
	}
	c = chain_alloc();
	if (!c) {
		unlock_all();
		return -1;
	}
	r = chain_open_locked(c, &src) ||
	    assemble_recorded(e->name, c, e->features, true) ? -1 : 0;
	chain_free(c);
	unlock_all();
	return r;
}

enum { OPT_ALL = 0x100, OPT_NETDEV };

int cmd_assemble(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all",	no_argument, NULL, OPT_ALL },
		{ "netdev",	no_argument, NULL, OPT_NETDEV },
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool all = false, netdev = false;
	struct chaintab t;
	unsigned int i, done = 0;
	int opt, arg, r = EXIT_OK;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_ALL:
			all = true;
			break;
		case OPT_NETDEV:
			netdev = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (all == (optind < argc))
		return usage_error("expects --all or the names of devices the chaintab lists");
	if (netdev && !all)
		return usage_error("--netdev goes with --all");
	for (arg = optind; arg < argc; arg++)
		if (check_name(argv[arg]))
			return EXIT_USAGE;
	if (chaintab_read(&t))
		return EXIT_FAIL;
	if (t.missing && all) {
		printf("%s: no such file: nothing to assemble\n", t.path);
		return EXIT_OK;
	}
	dm_op_init();
	for (arg = optind; arg < argc; arg++) {
		for (i = 0; i < t.n && strcmp(t.e[i].name, argv[arg]); i++)
			;
		if (i == t.n) {
			errmsg(argv[arg], "is not listed in %s%s: add a line '%s <top-layer> [<options>]'",
			       t.path, t.bad ? " (or its line was refused, see above)" : "",
			       argv[arg]);
			r = EXIT_FAIL;
		} else if (assemble_entry(&t.e[i])) {
			r = EXIT_FAIL;
		}
	}
	for (i = 0; all && i < t.n; i++) {
		if (t.e[i].noauto || t.e[i].netdev != netdev)
			continue;
		done++;
		if (assemble_entry(&t.e[i]))
			r = EXIT_FAIL;
	}
	if (all && t.bad)
		r = EXIT_FAIL;	/* the refused lines were not assembled */
	if (all && !done && !t.bad)
		printf("%s: no %sdevice to assemble\n", t.path,
		       netdev ? "_netdev " : "");
	chaintab_free(&t);
	return r;
}
