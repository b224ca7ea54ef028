// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm pull, commit, copy and job: block jobs on a live chain device,
 * in the words of virsh blockpull, blockcommit, blockcopy and blockjob.
 *
 * The kernel runs the job (a message starts a stream or a commit; a table
 * with the mirror feature starts a copy) and reports it in the status
 * line, raising a dm event on every phase change and every whole percent.
 * chainadm waits on those events, and does what the kernel leaves to it:
 * the table change at the end of a job.  That change always has the same
 * shape (change_begin() in device.c):
 *
 *   suspend            the target flushes and commits, then writes nothing
 *   read the record    the active layer's header says what the job did
 *   write headers      steps.c, through one transaction
 *   load, resume       the new table; if the load or the resume fails,
 *                      every header written is restored and the old table
 *                      resumed, so the device is as before
 *
 * Every verb here holds the device's lock and its layers' (lock.h) from
 * before it reads the device until it is done, except while it waits for
 * a job's progress: then it holds none, and takes them again and reads
 * the device again for the table change at the end.  A pivot and the end
 * of a copy happen only from ready, as the kernel reports it while the
 * device is suspended for the switch and as the active layer's record
 * says then.
 *
 * Layer indexes: the table counts from the bottom (0), users count virsh
 * style from the active layer (name[0]); live_find_layer() converts.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "chaintab.h"
#include "device.h"
#include "lock.h"
#include "steps.h"

/* Every option of the four verbs; a verb names the ones it takes. */
enum {
	O_BASE, O_TOP, O_ACTIVE, O_PIVOT, O_KEEP_OVERLAY, O_FINISH, O_WAIT,
	O_VERBOSE, O_BANDWIDTH, O_FORCE, O_JSON, O_SHALLOW, O_RAW,
	O_REUSE_EXTERNAL, O_INFO, O_ABORT, O_PAUSE, O_RESUME,
};

#define OPT(o)		(1u << (o))
#define OPT_VAL		0x100

static const struct option job_options[] = {
	{ "base",	    required_argument, NULL, OPT_VAL + O_BASE },
	{ "top",	    required_argument, NULL, OPT_VAL + O_TOP },
	{ "active",	    no_argument,       NULL, OPT_VAL + O_ACTIVE },
	{ "pivot",	    no_argument,       NULL, OPT_VAL + O_PIVOT },
	{ "keep-overlay",   no_argument,       NULL, OPT_VAL + O_KEEP_OVERLAY },
	{ "finish",	    no_argument,       NULL, OPT_VAL + O_FINISH },
	{ "wait",	    no_argument,       NULL, OPT_VAL + O_WAIT },
	{ "verbose",	    no_argument,       NULL, OPT_VAL + O_VERBOSE },
	{ "bandwidth",	    required_argument, NULL, OPT_VAL + O_BANDWIDTH },
	{ "force",	    no_argument,       NULL, OPT_VAL + O_FORCE },
	{ "json",	    no_argument,       NULL, OPT_VAL + O_JSON },
	{ "shallow",	    no_argument,       NULL, OPT_VAL + O_SHALLOW },
	{ "raw",	    no_argument,       NULL, OPT_VAL + O_RAW },
	{ "reuse-external", no_argument,       NULL, OPT_VAL + O_REUSE_EXTERNAL },
	{ "info",	    no_argument,       NULL, OPT_VAL + O_INFO },
	{ "abort",	    no_argument,       NULL, OPT_VAL + O_ABORT },
	{ "pause",	    no_argument,       NULL, OPT_VAL + O_PAUSE },
	{ "resume",	    no_argument,       NULL, OPT_VAL + O_RESUME },
	{ "help",	    no_argument,       NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

struct job_opts {
	unsigned int given;	/* OPT() bits */
	const char *base;
	const char *top;
	uint64_t bandwidth;	/* bytes/s */
	FILE *progress;		/* --verbose: where the progress line goes */
};

#define HAS(o, x)	((o)->given & OPT(x))

/*
 * --bandwidth: a plain number is MiB/s, as virsh takes it; with a K, M or G
 * suffix it is that many bytes per second (512K), for limits under 1 MiB/s.
 */
static int parse_bandwidth(const char *s, uint64_t *bw)
{
	unsigned long mib;
	size_t n = strlen(s);

	if (n && isdigit((unsigned char)s[n - 1])) {
		if (parse_uint("--bandwidth", s, ULONG_MAX >> 20, &mib))
			return -1;
		*bw = (uint64_t)mib << 20;
		return 0;
	}
	return parse_size("--bandwidth", s, bw);
}

/* 0, 1 after --help, or -1 after a usage error. */
static int parse_job_opts(int argc, char **argv, unsigned int allowed,
			  struct job_opts *o)
{
	int c, bit;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "h", job_options, NULL)) != -1) {
		if (c == 'h') {
			print_help();
			return 1;
		}
		bit = c - OPT_VAL;
		if (c < OPT_VAL || bit > O_RESUME) {
			try_help();
			return -1;
		}
		if (!(allowed & OPT(bit))) {
			usage_error("--%s does not apply to %s",
				    job_options[bit].name, current_verb->name);
			return -1;
		}
		o->given |= OPT(bit);
		if (bit == O_BASE)
			o->base = optarg;
		else if (bit == O_TOP)
			o->top = optarg;
		else if (bit == O_BANDWIDTH) {
			if (parse_bandwidth(optarg, &o->bandwidth))
				return -1;
		}
	}
	if (HAS(o, O_VERBOSE))
		o->progress = HAS(o, O_JSON) ? stderr : stdout;
	return 0;
}

/* A human message on stdout, unless --json owns stdout. */
static __attribute__((format(printf, 2, 3)))
void say(const struct job_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (HAS(o, O_JSON))
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static __attribute__((format(printf, 2, 3)))
int send_msg(const struct live *lv, const char *fmt, ...)
{
	char msg[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dm_op_message(lv->name, msg, NULL);
}

static int reload(struct live *lv)
{
	const char *name = lv->name;

	live_close(lv);
	return live_open(lv, name);
}

/* ---- the chain as a struct stack (steps.c) through the live table */

static struct layer *live_stack_open(struct stack *s, unsigned int i)
{
	struct change *ch = s->priv;

	return change_layer(ch, ch->lv->t.dev[i]);
}

static int live_stack_hint(struct stack *s, unsigned int i, char *buf,
			   size_t len)
{
	struct change *ch = s->priv;

	return dev_label(ch->lv->t.dev[i], buf, len);
}

static void live_stack(struct stack *s, struct change *ch)
{
	memset(s, 0, sizeof(*s));
	s->n = ch->lv->t.n;
	s->raw_base = ch->lv->t.raw_base;
	s->name = ch->lv->name;
	s->txn = &ch->txn;
	s->open = live_stack_open;
	s->hint = live_stack_hint;
	s->priv = ch;
}

/* The record of the active layer, which must be a job of type want. */
static int active_record(struct stack *s, struct job_record *rec,
			 unsigned int want, unsigned int want2)
{
	struct layer *act = s->open(s, s->n - 1);

	if (!act || job_record_get(&act->info, act->path, rec))
		return -1;
	if (!rec->present) {
		errmsg(s->name, "%s records no job although the kernel reports one: not changing the table; end the job with 'chainadm job %s --abort'",
		       act->path, s->name);
		return -1;
	}
	if (rec->type != want && rec->type != want2) {
		errmsg(s->name, "%s records a %s job, not the %s job expected: not changing the table; see chainadm info %s",
		       act->path, job_type_name(rec->type), job_type_name(want),
		       act->path);
		return -1;
	}
	return steps_check(s, rec);
}

/* ---- ending a job */

/* Completed, or ready for a job that has a ready phase. */
static bool job_arrived(const struct chain_job_status *js)
{
	return !strcmp(js->phase, "completed") ||
	       (job_has_ready(js->type) && !strcmp(js->phase, "ready"));
}

/* Why the job js cannot be pivoted or finished (what) now; opt: how. */
static void not_ready(const char *name, const struct chain_job_status *js,
		      const char *what, const char *opt)
{
	if (!strcmp(js->phase, "failed"))
		errmsg(name, "the %s job failed: not %s; retry it with 'chainadm job %s --resume', then %s with 'chainadm job %s --wait --%s', or cancel it with 'chainadm job %s --abort'",
		       js->type, what, name, opt, name, opt, name);
	else
		errmsg(name, "the %s job is %s (%u %%), not ready: not %s; wait until it is ready and %s with 'chainadm job %s --wait --%s'",
		       js->type, js->phase, job_percent(js), what, opt, name, opt);
}

/*
 * Under change_begin(): the kernel reports a ready commit or copy now
 * (the device is suspended: it stays so until the resume); what and opt
 * as for not_ready().
 */
static int ready_now(struct change *ch, const char *what, const char *opt)
{
	const char *name = ch->lv->name;
	struct dm_target_line line;
	struct chain_status st;
	int r;

	if (dm_op_status(name, &line))
		return -1;
	r = line.type && !strcmp(line.type, CHAIN_TARGET) ?
	    status_parse(name, line.params, &st) : -1;
	dm_target_line_free(&line);
	if (r)
		return -1;
	if (!job_is_active(&st.job) || !job_has_ready(st.job.type)) {
		errmsg(name, "has no active commit or copy any more (ended by someone else?): not %s; see chainadm status %s",
		       what, name);
		return -1;
	}
	if (strcmp(st.job.phase, "ready")) {
		not_ready(name, &st.job, what, opt);
		return -1;
	}
	return 0;
}

/*
 * ready_now(), and the record of the active layer says ready too (the
 * suspend committed it).  rec gets the record.
 */
static int ready_suspended(struct change *ch, struct stack *s,
			   struct job_record *rec, unsigned int want,
			   unsigned int want2, const char *what, const char *opt)
{
	const char *name = ch->lv->name;

	if (ready_now(ch, what, opt) ||
	    active_record(s, rec, want, want2))
		return -1;
	if (rec->phase != DM_CHAIN_PHASE_READY) {
		errmsg(name, "the kernel reports the job ready, but the record of the active layer says %s (not written yet: the metadata is read-only?): not %s; see chainadm status %s",
		       job_phase_name(rec->phase), what, name);
		return -1;
	}
	return 0;
}

/* A completed stream or commit: drop the layers it made redundant. */
static int complete(struct live *lv)
{
	struct change ch;
	struct stack s;
	struct job_record rec;
	unsigned int keep_low, keep_high;
	int r;

	if (change_begin(&ch, lv))
		return -1;
	live_stack(&s, &ch);
	r = active_record(&s, &rec, DM_CHAIN_JOB_STREAM, DM_CHAIN_JOB_COMMIT);
	if (!r && rec.phase != DM_CHAIN_PHASE_COMPLETED) {
		errmsg(lv->name, "the job record says %s, not completed: not changing the table; try again",
		       job_phase_name(rec.phase));
		r = -1;
	}
	if (!r)
		r = steps_complete(&s, &rec);
	if (!r) {
		test_stall("complete-headers");
		keep_low = rec.base;
		keep_high = rec.type == DM_CHAIN_JOB_STREAM ? lv->t.n - 1 : rec.top + 1;
		ch.params = table_without(lv, keep_low, keep_high, "");
	}
	r = change_commit(&ch);
	change_end(&ch);
	return r;
}

/* The table after a mirror's pivot: the destination replaces the top. */
static char *mirror_table(const struct live *lv)
{
	const struct chain_mirror *m = &lv->t.mirror;
	struct chain_table t = lv->t;
	char *params;

	if (!m->present) {
		errmsg(lv->name, "the table names no mirror destination: cannot pivot; end the copy with chainadm job %s --abort",
		       lv->name);
		return NULL;
	}
	if (m->shallow) {
		t.dev[t.n - 1] = m->dest;
	} else {
		t.n = 1;
		t.raw_base = m->raw;
		t.dev[0] = m->dest;
	}
	t.features = features_rebuild(lv->t.features, "");
	if (!t.features)
		return NULL;
	params = table_format(&t);
	free(t.features);
	return params;
}

/*
 * What the chaintab calls a device: its file or node (layer_label()), or
 * for a disk the kernel names in order of discovery (/dev/sdc), its
 * /dev/disk/by-id name where udev made one: sdc may be another disk after
 * a reboot.
 */
static void lasting_name(dev_t dev, char *buf, size_t len)
{
	char path[PATH_MAX], best[NAME_MAX + 1] = "";
	struct dirent *d;
	struct stat st;
	DIR *dir;

	layer_label(dev, buf, len);
	if (strncmp(buf, "/dev/", 5) || !strncmp(buf, "/dev/mapper/", 12))
		return;
	dir = opendir("/dev/disk/by-id");
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		snprintf(path, sizeof(path), "/dev/disk/by-id/%s", d->d_name);
		if (d->d_name[0] != '.' && !stat(path, &st) &&
		    S_ISBLK(st.st_mode) && st.st_rdev == dev &&
		    (!*best || strcmp(d->d_name, best) < 0))
			snprintf(best, sizeof(best), "%s", d->d_name);
	}
	closedir(dir);
	if (*best)
		snprintf(buf, len, "/dev/disk/by-id/%s", best);
}

/*
 * The device's chaintab line (if any) names table device dev as the top
 * now; busy: the caller holds the device suspended.
 */
static int follow_dev(const struct live *lv, dev_t dev, bool raw, bool busy)
{
	char label[PATH_MAX];

	lasting_name(dev, label, sizeof(label));
	return chaintab_follow(lv->name, label, raw,
			       busy ? makedev(lv->info.major, lv->info.minor) : 0);
}

/* A lone copy's pivot cancelled: the line goes back before the flag does. */
static void unfollow_lone(struct change *ch)
{
	if (follow_dev(ch->lv, ch->lv->t.dev[0], true, true))
		errmsg(ch->lv->name, "runs on its source still, but the chaintab names the destination, which is marked unfinished again: edit the line back to the source");
}

/* A lone raw device: no header of its own to record a job in. */
static bool lone_raw(const struct live *lv)
{
	return lv->t.n == 1 && lv->t.raw_base;
}

/*
 * A ready copy of a lone raw device: pivot to its destination, or finish
 * (the device goes on alone).  Under the suspend a chain destination's
 * copy-destination flag is cleared, then the table swapped: from the
 * clear on, the destination is a whole image of this moment.  The flag
 * comes back if the swap fails.
 */
static int end_lone_copy(struct live *lv, bool finish)
{
	const struct chain_mirror *m = &lv->t.mirror;
	struct dm_chain_layer_info info;
	struct layer *dl;
	struct change ch;
	int r;

	if (change_begin(&ch, lv))
		return -1;
	r = ready_now(&ch, finish ? "finishing" : "pivoting",
		      finish ? "finish" : "pivot");
	if (!r && !m->raw) {
		dl = change_layer(&ch, m->dest);
		if (dl) {
			info = dl->info;
			info.flags &= ~DM_CHAIN_FLAG_COPY_DEST;
			r = txn_write(&ch.txn, dl, &info);
		} else {
			r = -1;
		}
		if (!r)
			test_stall("copy-dest-cleared");
	}
	/*
	 * Both sides are the same disk now, the source has no record: the
	 * chaintab must name the destination before the swap, or a crash
	 * after it would bring back the source without the writes since.
	 */
	if (!r && !finish) {
		r = follow_dev(lv, m->dest, m->raw, true);
		if (!r)
			ch.on_cancel = unfollow_lone;
	}
	if (!r && finish)
		r = dm_op_message(lv->name, "job cancel", NULL);
	if (!r)
		ch.params = finish ? table_without(lv, 0, 1, "") :
				     mirror_table(lv);
	r = change_commit(&ch);
	if (!r)
		test_stall("copy-swapped");
	change_end(&ch);
	return r;
}

/*
 * A ready active commit or mirror: switch to the base or the destination.
 * The pivot intent goes first, so that a crash from here on is rolled
 * forward by recover.
 */
static int pivot(struct live *lv)
{
	struct change ch;
	struct stack s;
	struct job_record rec = { .present = false };
	struct layer *act = NULL;
	struct dm_chain_layer_info info;
	bool mirror;
	int r;

	if (lone_raw(lv))
		return end_lone_copy(lv, false);
	if (change_begin(&ch, lv))
		return -1;
	live_stack(&s, &ch);
	r = ready_suspended(&ch, &s, &rec, DM_CHAIN_JOB_ACTIVE_COMMIT,
			    DM_CHAIN_JOB_MIRROR, "pivoting", "pivot");
	mirror = rec.type == DM_CHAIN_JOB_MIRROR;
	if (!r) {
		r = steps_pivot_intent(&s, &rec);
		test_stall("pivot-intent");
	}
	if (!r && !mirror)
		r = steps_pivot_commit(&s, &rec) ||
		    live_make_writable(lv, rec.base, &ch.fd);
	if (!r) {
		test_stall("pivot-headers");
		ch.params = mirror ? mirror_table(lv) :
				     table_without(lv, rec.base, lv->t.n, "");
		act = s.open(&s, s.n - 1);
	}
	r = change_commit(&ch);
	if (!r)
		test_stall("pivot-swapped");
	/*
	 * The chaintab follows while the old top still records the pivot:
	 * a crash before finds the old top and rolls forward.
	 */
	if (!r && follow_dev(lv, mirror ? lv->t.mirror.dest : lv->t.dev[rec.base],
			     mirror ? lv->t.mirror.raw && !lv->t.mirror.shallow :
				      !rec.base && lv->t.raw_base, false)) {
		warnmsg(lv->name, "runs the new chain, but the chaintab names the old top, whose pivot record makes chainadm assemble roll forward: edit the line to name the new top");
		mirror = false;	/* keep the record */
	}
	/* The old chain stays a valid image of the moment of the pivot. */
	if (!r && mirror) {
		info = act->info;
		memset(info.job, 0, sizeof(info.job));
		if (layer_write_header(act, &info))
			warnmsg(act->path, "the device runs the new chain, but this layer keeps its pivot record: 'chainadm recover' with it assembles the new chain; 'chainadm create' refuses it");
	}
	change_end(&ch);
	return r;
}

/* --finish of a ready copy: the destination keeps the disk of now. */
static int finish_mirror(struct live *lv)
{
	struct change ch;
	struct stack s;
	struct job_record rec;
	int r;

	if (lone_raw(lv))
		return end_lone_copy(lv, true);
	if (change_begin(&ch, lv))
		return -1;
	live_stack(&s, &ch);
	if (!ready_suspended(&ch, &s, &rec, DM_CHAIN_JOB_MIRROR,
			     DM_CHAIN_JOB_MIRROR, "finishing", "finish") &&
	    !dm_op_message(lv->name, "job cancel", NULL))
		ch.params = table_without(lv, lv->t.n - 1, lv->t.n, "");
	r = change_commit(&ch);
	change_end(&ch);
	return r;
}

/* Cancel; a mirror's table loses its mirror feature too. */
static int abort_job(struct live *lv)
{
	char *params;
	int r;

	if (job_is_active(&lv->s.job) && send_msg(lv, "job cancel"))
		return -1;
	if (!lv->t.mirror.present)
		return 0;
	params = table_without(lv, lv->t.n - 1, lv->t.n, "");
	r = params ? swap_table(lv->name, lv->line.len, params) : -1;
	free(params);
	if (r)
		errmsg(lv->name, "the copy is cancelled, but the table still names its destination: run 'chainadm job %s --abort' again",
		       lv->name);
	return r;
}

/* ---- read-outs */

/* top, base and destination of the job, from the record and the table. */
struct job_layers {
	char top[LAYER_DESC_LEN];
	char base[LAYER_DESC_LEN];
	char dest[PATH_MAX];
};

static void job_layers(const struct live *lv, struct job_layers *jl)
{
	struct job_record rec = { .present = false };
	struct layer act;

	memset(jl, 0, sizeof(*jl));
	if (lv->t.mirror.present)
		layer_label(lv->t.mirror.dest, jl->dest, sizeof(jl->dest));
	/* A lone raw device's copy: no record, its one layer is the top. */
	if (lone_raw(lv) && lv->t.mirror.present)
		live_describe(lv, 0, jl->top, sizeof(jl->top));
	if (!(lv->t.n > 1 || !lv->t.raw_base) ||
	    live_read_header(lv->t.dev[lv->t.n - 1], &act))
		return;
	if (!job_record_get(&act.info, act.path, &rec) && rec.present) {
		if (rec.type != DM_CHAIN_JOB_STREAM && rec.top < lv->t.n)
			live_describe(lv, rec.top, jl->top, sizeof(jl->top));
		else
			live_describe(lv, lv->t.n - 1, jl->top, sizeof(jl->top));
		if (rec.base < lv->t.n)
			live_describe(lv, rec.base, jl->base, sizeof(jl->base));
		if (!*jl->dest && rec.dest_hint[0])
			snprintf(jl->dest, sizeof(jl->dest), "%s", rec.dest_hint);
	}
	layer_close(&act);
}

/* --json: a table of one job, as QMP's query-block-jobs lists them. */
static const struct out_col job_cols[] = {
	{ "DEVICE",	"device name",				OUT_STR,  0.1 },
	{ "RESULT",	"what the verb did (started, ready, ...)", OUT_STR, 6 },
	{ "TYPE",	"block job type, or none",		OUT_STR,  6 },
	{ "PHASE",	"job phase",				OUT_STR,  6 },
	{ "PROGRESS",	"job progress, %",			OUT_NUM,  3 },
	JOB_COLS,
	{ "TOP",	"the top layer of the job",		OUT_STR,  0.2 },
	{ "BASE",	"the base layer of the job",		OUT_STR,  0.2 },
	{ "DESTINATION", "the destination of a copy",		OUT_STR,  0.2 },
};

static void print_json(const char *name, const struct chain_job_status *js,
		       const struct job_layers *jl, const char *result)
{
	struct out_opts o = { .json = true };
	struct libscols_line *ln;
	struct out_table t;

	if (out_begin(&t, &o, "blockjobs", job_cols,
		      sizeof(job_cols) / sizeof(job_cols[0]), NULL))
		return;
	ln = out_line(&t);
	if (ln) {
		out_str(&t, ln, "DEVICE", name);
		if (result)
			out_str(&t, ln, "RESULT", result);
		out_str(&t, ln, "TYPE", js->type);
		if (strcmp(js->phase, "-"))
			out_str(&t, ln, "PHASE", js->phase);
		out_u64(&t, ln, "PROGRESS", job_percent(js));
		job_cells(&t, ln, js);
		if (*jl->top)
			out_str(&t, ln, "TOP", jl->top);
		if (*jl->base)
			out_str(&t, ln, "BASE", jl->base);
		if (*jl->dest)
			out_str(&t, ln, "DESTINATION", jl->dest);
	} else {
		errmsg(name, "out of memory");
	}
	out_end(&t);
}

static void print_info(const struct live *lv, bool json, const char *result)
{
	const struct chain_job_status *js = &lv->s.job;
	struct job_layers jl;

	job_layers(lv, &jl);
	if (json) {
		print_json(lv->name, js, &jl, result);
		return;
	}
	if (!job_is_active(js)) {
		printf("No current block job for %s\n", lv->name);
		return;
	}
	printf("%s: [%3u %%]\n", job_label(js->type), job_percent(js));
	job_print_human(js, "");
	if (*jl.top)
		printf("top: %s\n", jl.top);
	if (*jl.base)
		printf("base: %s\n", jl.base);
	else if (!strcmp(js->type, "stream"))
		printf("base: none (flatten)\n");
	if (*jl.dest)
		printf("destination: %s\n", jl.dest);
}

/* --json after a verb: the job as it is now, and what was done. */
static int finish_json(struct live *lv, const struct job_opts *o,
		       const char *result, int rc)
{
	if (HAS(o, O_JSON) && !reload(lv))
		print_info(lv, true, result);
	return rc;
}

/* ---- waiting, then ending the job as asked */

/*
 * Wait until the job completes (stream, commit) or is ready (active
 * commit, copy), without the locks: a long job must not keep other
 * commands from the device.  Then take them again and read the device
 * again: 0 when the job is still there and has arrived, else an exit
 * code (with --json, the job printed).
 */
static int wait_arrived(struct live *lv, const struct job_opts *o)
{
	struct chain_job_status js = lv->s.job;
	char type[sizeof(js.type)];
	int rc;

	snprintf(type, sizeof(type), "%s", js.type);
	for (;;) {
		unlock_all();
		rc = job_wait(lv->name, o->progress, &js);
		if (rc)
			return finish_json(lv, o, rc == EXIT_JOB_GONE ? "gone" : "failed",
					   rc);
		if (live_relock(lv))
			return EXIT_FAIL;
		js = lv->s.job;
		if (!job_is_active(&js) || strcmp(js.type, type)) {
			errmsg(lv->name, "the %s job is gone: ended by another chainadm while this one waited; see chainadm status %s",
			       type, lv->name);
			return finish_json(lv, o, "gone", EXIT_JOB_GONE);
		}
		if (job_arrived(&js))
			return 0;
		/* It moved on between the wait and the locks: wait again. */
	}
}

/*
 * With --wait, wait for the job to complete or be ready; then, under the
 * locks: apply a completion; pivot, finish or keep the overlay if asked
 * (refused unless the job is ready); otherwise leave the ready job
 * running.
 */
static int conclude(struct live *lv, const struct job_opts *o)
{
	const struct chain_job_status *js = &lv->s.job;
	struct chain_job_status was;
	struct job_layers jl;
	const char *result;
	bool copy = !strcmp(js->type, "mirror");
	int rc;

	if (HAS(o, O_WAIT)) {
		rc = wait_arrived(lv, o);
		if (rc)
			return rc;
	}
	/*
	 * --json shows the job as it arrived (its counters, errors too), not
	 * the device after the job was ended.
	 */
	was = *js;
	job_layers(lv, &jl);
	if (!strcmp(js->phase, "completed")) {
		if (complete(lv))
			return EXIT_FAIL;
		say(o, "%s complete", strcmp(js->type, "stream") ? "Commit" : "Pull");
		result = "completed";
	} else if (strcmp(js->phase, "ready")) {
		/* job --pivot or --finish without --wait */
		not_ready(lv->name, js, HAS(o, O_PIVOT) ? "pivoting" : "finishing",
			  HAS(o, O_PIVOT) ? "pivot" : "finish");
		return EXIT_FAIL;
	} else if (HAS(o, O_PIVOT)) {
		if (pivot(lv))
			return EXIT_FAIL;
		say(o, "Successfully pivoted");
		result = "pivoted";
	} else if (copy && HAS(o, O_FINISH)) {
		if (finish_mirror(lv))
			return EXIT_FAIL;
		say(o, "Successfully copied");
		result = "finished";
	} else if (HAS(o, O_FINISH) || HAS(o, O_KEEP_OVERLAY)) {
		if (send_msg(lv, "job cancel"))
			return EXIT_FAIL;
		say(o, "Commit complete, overlay image kept");
		result = "overlay-kept";
	} else {
		say(o, copy ? "Now in mirroring phase" : "Now in synchronized phase");
		return finish_json(lv, o, "ready", EXIT_OK);
	}
	if (HAS(o, O_JSON))
		print_json(lv->name, &was, &jl, result);
	return EXIT_OK;
}

/* After the job was started: wait, or say that it runs. */
static int started(struct live *lv, const struct job_opts *o, const char *what)
{
	if (reload(lv))
		return EXIT_FAIL;
	if (!job_is_active(&lv->s.job)) {
		errmsg(lv->name, "the job ended at once: cancelled by someone else? see chainadm status %s",
		       lv->name);
		return EXIT_JOB_GONE;
	}
	if (!HAS(o, O_WAIT))
		say(o, "%s started", what);
	if (!HAS(o, O_WAIT))
		return finish_json(lv, o, "started", EXIT_OK);
	return conclude(lv, o);
}

/*
 * Open the device for a new job, under its locks (and extra's, a layer
 * the job will use): jobs supported, none there.
 */
static int open_idle(struct live *lv, const char *name, const char *extra)
{
	dm_op_init();
	if (live_lock(lv, name, extra))
		return -1;
	if (!live_require_jobs(lv) && !live_require_idle(lv, "one job at a time"))
		return 0;
	live_close(lv);
	return -1;
}

static int set_bandwidth(const struct live *lv, const struct job_opts *o)
{
	if (!HAS(o, O_BANDWIDTH))
		return 0;
	return send_msg(lv, "job bandwidth %llu", (unsigned long long)o->bandwidth);
}

/*
 * Send the message that starts a stream or a commit.  With --bandwidth
 * the device is suspended around it: a job started on a suspended device
 * waits for the resume, so the limit holds from the first byte (the
 * kernel has several MiB in flight at once otherwise).
 */
static int start_job(const struct live *lv, const struct job_opts *o,
		     const char *msg)
{
	int r;

	if (!HAS(o, O_BANDWIDTH))
		return dm_op_message(lv->name, msg, NULL);
	if (dm_op_suspend(lv->name))
		return -1;
	r = dm_op_message(lv->name, msg, NULL);
	if (!r && set_bandwidth(lv, o))
		errmsg(lv->name, "the job runs without the bandwidth limit: set it with 'chainadm job %s --bandwidth'",
		       lv->name);
	resume_or_report(lv->name);
	return r;
}

/* ---- pull */

/* The table index pull keeps below the active layer, NO_LAYER: none. */
static int pull_base(const struct live *lv, const char *spec,
		     unsigned int *base)
{
	*base = NO_LAYER;
	if (lv->t.n < 2) {
		errmsg(lv->name, "has one layer: there is nothing below it to pull");
		return -1;
	}
	if (!spec)
		return 0;
	if (live_find_layer(lv, spec, "--base", base))
		return -1;
	if (*base == lv->t.n - 1) {
		errmsg(lv->name, "--base %s is the active layer: name a layer below it, or no --base to flatten",
		       spec);
		return -1;
	}
	if (*base == lv->t.n - 2) {
		errmsg(lv->name, "--base %s is directly below the active layer: there is nothing to pull",
		       spec);
		return -1;
	}
	return 0;
}

int cmd_pull(int argc, char **argv)
{
	struct job_opts o;
	struct live lv;
	unsigned int base;
	char msg[32] = "stream";
	int r = parse_job_opts(argc, argv, OPT(O_BASE) | OPT(O_BANDWIDTH) |
			       OPT(O_WAIT) | OPT(O_VERBOSE) | OPT(O_JSON), &o);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (argc - optind != 1)
		return usage_error("expects one device name");
	if (open_idle(&lv, argv[optind], NULL))
		return EXIT_FAIL;
	r = pull_base(&lv, o.base, &base);
	if (!r && base != NO_LAYER)
		snprintf(msg, sizeof(msg), "stream %u", base);
	if (!r)
		r = start_job(&lv, &o, msg);
	r = r ? EXIT_FAIL : started(&lv, &o, "Block Pull");
	live_close(&lv);
	return r;
}

/* ---- commit */

/* Refuse a base another chain device stands on, naming it. */
static int check_base_shared(const struct live *lv, unsigned int base,
			     const struct job_opts *o)
{
	char who[256], desc[LAYER_DESC_LEN];
	struct obj_id id;
	int r;

	if (HAS(o, O_FORCE))
		return 0;
	if (dev_identity(lv->t.dev[base], &id))
		return -1;
	r = find_other_user(lv->name, &id, who, sizeof(who));
	if (r <= 0)
		return r;
	live_describe(lv, base, desc, sizeof(desc));
	errmsg(lv->name, "the base %s is also a layer of device %s: committing into it would change what %s shows; remove %s first, or give --force",
	       desc, who, who, who);
	return -1;
}

/* The base of a commit must be writable: the kernel writes into it. */
static int writable_base(struct live *lv, unsigned int base)
{
	char *params;
	int fd, r;

	if (live_make_writable(lv, base, &fd))
		return -1;
	if (fd < 0)
		return 0;
	params = table_format(&lv->t);
	r = params ? swap_table(lv->name, lv->line.len, params) : -1;
	free(params);
	close(fd);	/* the table holds the new loop device */
	return r ? r : reload(lv);
}

static int commit_layers(const struct live *lv, const struct job_opts *o,
			 unsigned int *top, unsigned int *base)
{
	unsigned int active = lv->t.n - 1;
	char desc[LAYER_DESC_LEN];

	if (lv->t.n < 2) {
		errmsg(lv->name, "has one layer: there is nothing to commit it into");
		return -1;
	}
	*top = HAS(o, O_ACTIVE) ? active : active - 1;
	if (o->top && live_find_layer(lv, o->top, "--top", top))
		return -1;
	if (*top == active && !HAS(o, O_ACTIVE)) {
		errmsg(lv->name, "--top %s is the active layer: give --active (then the job ends with --pivot or --keep-overlay)",
		       o->top);
		return -1;
	}
	if (*top != active && HAS(o, O_ACTIVE)) {
		live_describe(lv, *top, desc, sizeof(desc));
		errmsg(lv->name, "--active commits the active layer, but --top names %s: drop one of them",
		       desc);
		return -1;
	}
	*base = 0;
	if (o->base && live_find_layer(lv, o->base, "--base", base))
		return -1;
	if (*base >= *top) {
		live_describe(lv, *top, desc, sizeof(desc));
		errmsg(lv->name, "the base must be below the top %s: name a lower layer with --base",
		       desc);
		return -1;
	}
	return 0;
}

int cmd_commit(int argc, char **argv)
{
	struct job_opts o;
	struct live lv;
	unsigned int top, base;
	char msg[32];
	int r = parse_job_opts(argc, argv, OPT(O_TOP) | OPT(O_BASE) |
			       OPT(O_ACTIVE) | OPT(O_PIVOT) |
			       OPT(O_KEEP_OVERLAY) | OPT(O_WAIT) |
			       OPT(O_VERBOSE) | OPT(O_BANDWIDTH) | OPT(O_FORCE) |
			       OPT(O_JSON), &o);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (argc - optind != 1)
		return usage_error("expects one device name");
	if (HAS(&o, O_PIVOT) && HAS(&o, O_KEEP_OVERLAY))
		return usage_error("--pivot and --keep-overlay exclude each other");
	/* As in virsh: either implies an active commit that is waited for. */
	if (HAS(&o, O_PIVOT) || HAS(&o, O_KEEP_OVERLAY))
		o.given |= OPT(O_ACTIVE) | OPT(O_WAIT);
	if (open_idle(&lv, argv[optind], NULL))
		return EXIT_FAIL;
	r = commit_layers(&lv, &o, &top, &base) ||
	    check_base_shared(&lv, base, &o) || writable_base(&lv, base) ? -1 : 0;
	if (!r) {
		snprintf(msg, sizeof(msg), "commit %u %u", top, base);
		r = start_job(&lv, &o, msg);
	}
	r = r ? EXIT_FAIL : started(&lv, &o, top == lv.t.n - 1 ?
				    "Active Block Commit" : "Block Commit");
	live_close(&lv);
	return r;
}

/* ---- copy */

struct dest {
	const char *path;
	char hint[PATH_MAX];	/* absolute path, for the record */
	bool raw;
	bool shallow;
	bool zeroed;		/* a sparse file created here */
	bool created;		/* a file created here: removed on failure */
	__u8 uuid[DM_CHAIN_UUID_SIZE];
};

/* A lone raw device has no clusters: a new destination gets 64 KiB. */
static uint32_t live_cluster_size(const struct live *lv)
{
	return lone_raw(lv) ? DM_CHAIN_DEFAULT_CLUSTER_SIZE :
			      lv->s.cluster_sectors << 9;
}

/* An existing chain destination must be able to take the copy. */
static int check_chain_dest(const struct live *lv, struct dest *d,
			    struct layer *l)
{
	const struct dm_chain_layer_info *info = &l->info;
	struct entry_counts counts;
	struct layer below;
	char desc[LAYER_DESC_LEN], want[PATH_MAX];
	struct job_record rec;
	int r = -1;

	snprintf(want, sizeof(want), "chainadm format --size %llu --cluster-size %u%s",
		 (unsigned long long)(lv->line.len << 9), live_cluster_size(lv),
		 d->shallow ? " --backing <the layer below the active one>" : "");
	/* The copy of a lone raw device takes the destination's clusters. */
	if ((!lone_raw(lv) && info->cluster_size != live_cluster_size(lv)) ||
	    info->virtual_size != lv->line.len << 9) {
		errmsg(d->path, "--reuse-external: cluster size %u and virtual size %llu differ from %u and %llu of %s: prepare it with %s",
		       info->cluster_size, (unsigned long long)info->virtual_size,
		       live_cluster_size(lv), (unsigned long long)(lv->line.len << 9),
		       lv->name, want);
		return -1;
	}
	/*
	 * The destination of a copy of a lone raw device cut short may take
	 * such a copy again; only that copy's pivot or finish clears the mark.
	 */
	if ((info->flags & DM_CHAIN_FLAG_COPY_DEST) && !lone_raw(lv)) {
		errmsg(d->path, "--reuse-external: marked copy-destination (a copy of a raw device into it was cut short): only a copy of a lone raw device takes it again; format a new one");
		return -1;
	}
	if (info->flags & ~DM_CHAIN_FLAG_COPY_DEST) {
		errmsg(d->path, "--reuse-external: marked %s: not usable as a destination; format a new one",
		       info->flags & DM_CHAIN_FLAG_NEEDS_CHECK ? "needs-check" : "invalidated");
		return -1;
	}
	if (job_record_get(info, d->path, &rec))
		return -1;
	if (rec.present) {
		errmsg(d->path, "--reuse-external: records a %s job: it is the active layer of another chain, not a destination",
		       job_type_name(rec.type));
		return -1;
	}
	if (!d->shallow) {
		if (info->backing_type == DM_CHAIN_BACKING_NONE)
			return 0;
		errmsg(d->path, "--reuse-external: has a backing layer (%s), but a full copy needs a layer without one: prepare it with %s, or give --shallow",
		       info->backing_hint, want);
		return -1;
	}
	live_describe(lv, lv->t.n - 2, desc, sizeof(desc));
	if (lv->t.n == 2 && lv->t.raw_base) {
		r = info->backing_type == DM_CHAIN_BACKING_RAW ? 0 : -1;
	} else if (!live_read_header(lv->t.dev[lv->t.n - 2], &below)) {
		r = info->backing_type == DM_CHAIN_BACKING_CHAIN &&
		    !memcmp(info->backing_uuid, below.info.uuid, DM_CHAIN_UUID_SIZE) ?
		    0 : -1;
		layer_close(&below);
	} else {
		return -1;
	}
	if (r) {
		errmsg(d->path, "--reuse-external --shallow: its backing layer must be %s, the layer below the active one: prepare it with chainadm format --backing <that layer>",
		       desc);
		return -1;
	}
	if (layer_count_entries(l, NULL, NULL, &counts))
		return -1;
	if (counts.mapped || counts.zero) {
		errmsg(d->path, "--reuse-external --shallow: holds %llu clusters, but a shallow copy needs an empty layer: format a new one",
		       (unsigned long long)(counts.mapped + counts.zero));
		return -1;
	}
	return 0;
}

/* Check an existing destination; a chain one gives its UUID. */
static int check_dest(const struct live *lv, struct dest *d)
{
	struct layer l;
	int r;

	if (layer_open(&l, d->path, O_RDONLY))
		return -1;
	if (d->raw) {
		r = l.size < lv->line.len << 9 ? -1 : 0;
		if (r)
			errmsg(d->path, "is %llu bytes, smaller than the virtual size %llu of %s",
			       (unsigned long long)l.size,
			       (unsigned long long)(lv->line.len << 9), lv->name);
	} else if (layer_load_header(&l)) {
		errmsg(d->path, "is not a usable dm-chain layer: give --raw to copy to it as a raw device, or prepare it with chainadm format");
		r = -1;
	} else {
		r = check_chain_dest(lv, d, &l);
		memcpy(d->uuid, l.info.uuid, DM_CHAIN_UUID_SIZE);
	}
	layer_close(&l);
	return r;
}

/* The destination must be nobody's layer: not this chain's, not another's. */
static int check_dest_unused(const struct live *lv, const struct dest *d)
{
	struct obj_id id, have;
	char who[256];
	unsigned int i;
	int r;

	if (obj_identity(-1, d->path, &id))
		return -1;
	for (i = 0; i < lv->t.n; i++) {
		if (dev_identity(lv->t.dev[i], &have))
			return -1;
		if (same_obj(&id, &have)) {
			errmsg(d->path, "is a layer of %s itself: copy to a new file or device",
			       lv->name);
			return -1;
		}
	}
	r = find_other_user(lv->name, &id, who, sizeof(who));
	if (r > 0)
		errmsg(d->path, "is used by device %s: copy to a new file or device",
		       who);
	return r ? -1 : 0;
}

static int create_raw(const struct live *lv, struct dest *d)
{
	int fd = open(d->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);

	if (fd < 0) {
		errmsg(d->path, "cannot create: %s", strerror(errno));
		return -1;
	}
	d->created = true;
	if (ftruncate(fd, lv->line.len << 9)) {
		errmsg(d->path, "cannot size the file to %llu bytes: %s",
		       (unsigned long long)(lv->line.len << 9), strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* A new destination: sparse raw file, or a layer formatted here. */
static int create_dest(const struct live *lv, struct dest *d, bool blockdev)
{
	struct format_req req = {
		.path = d->path,
		.virtual_size = lv->line.len << 9,
		.cluster_size = live_cluster_size(lv),
		.quiet = true,
	};
	int r;

	if (d->raw) {
		/* A block device is used as it is: nothing known about it. */
		if (blockdev)
			return check_dest(lv, d);
		d->zeroed = true;
		return create_raw(lv, d);
	}
	r = d->shallow ? format_over(d->path, 0, lv->line.len,
				     live_cluster_size(lv), &lv->t, lv->t.n - 2) :
			 format_layer(&req);
	d->created = !r && !blockdev;
	return r ? r : check_dest(lv, d);
}

static int prepare_dest(const struct live *lv, struct dest *d, bool reuse)
{
	struct stat st;
	bool exists = !stat(d->path, &st);

	if (reuse && !exists) {
		errmsg(d->path, "--reuse-external: cannot stat: %s: create it first, or drop --reuse-external",
		       strerror(errno));
		return -1;
	}
	if (!reuse && exists && !S_ISBLK(st.st_mode)) {
		errmsg(d->path, "exists: give --reuse-external to copy into it, or remove it");
		return -1;
	}
	if (exists && check_dest_unused(lv, d))
		return -1;
	if (reuse ? check_dest(lv, d) : create_dest(lv, d, exists))
		return -1;
	if (!realpath(d->path, d->hint)) {
		errmsg(d->path, "cannot resolve the path: %s", strerror(errno));
		return -1;
	}
	if (strlen(d->hint) > DM_CHAIN_JOB_HINT_SIZE) {
		errmsg(d->hint, "path is longer than %u bytes, which the job record cannot hold: use a shorter path",
		       DM_CHAIN_JOB_HINT_SIZE);
		return -1;
	}
	return 0;
}

/*
 * A lone raw device has no header for the copy's record: the kernel keeps
 * it in memory, and a chain destination is marked copy-destination until
 * the pivot or finish, so that nothing assembles it half copied.  A raw
 * destination carries no mark: it is scratch until the pivot.
 */
static int start_lone_copy(struct live *lv, const struct dest *d, dev_t dest,
			   const char *extra)
{
	struct layer *dl;
	struct change ch;
	int r = 0;

	if (change_begin(&ch, lv))
		return -1;
	if (!d->raw) {
		dl = change_layer(&ch, dest);
		r = dl ? txn_set_flag(&ch.txn, dl, DM_CHAIN_FLAG_COPY_DEST) : -1;
	}
	if (!r)
		ch.params = table_without(lv, 0, 1, extra);
	r = change_commit(&ch);
	change_end(&ch);
	return r;
}

/* Record the copy in the active header, then load the mirror table. */
static int start_mirror(struct live *lv, const struct dest *d, dev_t dest,
			const struct job_opts *o)
{
	struct chain_mirror m = { .present = true, .dest = dest, .raw = d->raw,
				  .shallow = d->shallow };
	struct job_record rec = {
		.present = true,
		.type = DM_CHAIN_JOB_MIRROR,
		.phase = DM_CHAIN_PHASE_RUNNING,
		.flags = (d->shallow ? DM_CHAIN_JOB_SHALLOW : 0) |
			 (d->raw ? DM_CHAIN_JOB_DEST_RAW : 0) |
			 (d->zeroed ? DM_CHAIN_JOB_DEST_ZEROED : 0),
		.top = lv->t.n - 1,
		.base = DM_CHAIN_JOB_NO_LAYER,
		.bandwidth = o->bandwidth,
	};
	struct dm_chain_layer_info info;
	struct job_record old;
	struct layer *act;
	struct change ch;
	char extra[128];
	int n, r;

	memcpy(rec.dest_uuid, d->uuid, DM_CHAIN_UUID_SIZE);
	snprintf(rec.dest_hint, sizeof(rec.dest_hint), "%s", d->hint);
	mirror_words(&m, extra, sizeof(extra));
	n = strlen(extra);
	if (d->zeroed)
		n += snprintf(extra + n, sizeof(extra) - n, " dest_zeroed");
	if (o->bandwidth)
		snprintf(extra + n, sizeof(extra) - n, " bandwidth:%llu",
			 (unsigned long long)o->bandwidth);
	if (lone_raw(lv))
		return start_lone_copy(lv, d, dest, extra);
	if (change_begin(&ch, lv))
		return -1;
	act = change_layer(&ch, lv->t.dev[lv->t.n - 1]);
	r = act ? job_record_get(&act->info, act->path, &old) : -1;
	if (!r && old.present) {
		errmsg(act->path, "already records a %s job: end it first (chainadm job %s)",
		       job_type_name(old.type), lv->name);
		r = -1;
	}
	if (!r) {
		memcpy(rec.top_uuid, act->info.uuid, DM_CHAIN_UUID_SIZE);
		info = act->info;
		job_record_put(&rec, &info);
		r = txn_write(&ch.txn, act, &info);
	}
	if (!r)
		ch.params = table_without(lv, lv->t.n - 1, lv->t.n, extra);
	r = change_commit(&ch);
	change_end(&ch);
	return r;
}

/* Copies of a lone raw device came with target version 1.3. */
static bool kernel_copies_raw(const char *name)
{
	uint32_t v[3];

	if (dm_op_target_version(CHAIN_TARGET, v) || v[0] > 1 ||
	    (v[0] == 1 && v[1] >= 3))
		return true;
	errmsg(name, "is one raw device, and the loaded dm-chain module (target version %u.%u) cannot copy one: load dm-chain 1.3 or later, or take a snapshot first (chainadm snapshot)",
	       v[0], v[1]);
	return false;
}

int cmd_copy(int argc, char **argv)
{
	struct job_opts o;
	struct live lv;
	struct dest d = { .path = NULL };
	dev_t dest;
	int fd = -1;
	int r = parse_job_opts(argc, argv, OPT(O_SHALLOW) | OPT(O_RAW) |
			       OPT(O_REUSE_EXTERNAL) | OPT(O_PIVOT) |
			       OPT(O_FINISH) | OPT(O_WAIT) | OPT(O_VERBOSE) |
			       OPT(O_BANDWIDTH) | OPT(O_JSON), &o);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (argc - optind != 2)
		return usage_error("expects a device name and the destination");
	if (HAS(&o, O_PIVOT) && HAS(&o, O_FINISH))
		return usage_error("--pivot and --finish exclude each other");
	if (HAS(&o, O_RAW) && HAS(&o, O_SHALLOW))
		return usage_error("--raw copies the whole disk: it excludes --shallow");
	if (HAS(&o, O_PIVOT) || HAS(&o, O_FINISH))
		o.given |= OPT(O_WAIT);
	d.path = argv[optind + 1];
	d.raw = HAS(&o, O_RAW);
	if (open_idle(&lv, argv[optind], d.path))
		return EXIT_FAIL;
	r = -1;
	if (lone_raw(&lv) && HAS(&o, O_SHALLOW)) {
		errmsg(lv.name, "is one raw device: there is no layer below it for a shallow copy to stand on; copy it in full (without --shallow)");
		goto out;
	}
	if (lone_raw(&lv) && !kernel_copies_raw(lv.name))
		goto out;
	if (lone_raw(&lv) && (lv.line.len << 9) % DM_CHAIN_BLOCK_SIZE) {
		errmsg(lv.name, "is %llu bytes, not a multiple of %u: a raw device is copied in whole %u-byte blocks",
		       (unsigned long long)(lv.line.len << 9), DM_CHAIN_BLOCK_SIZE,
		       DM_CHAIN_BLOCK_SIZE);
		goto out;
	}
	/* Over no backing layer, shallow and full are the same copy. */
	d.shallow = HAS(&o, O_SHALLOW) && lv.t.n > 1;
	if (prepare_dest(&lv, &d, HAS(&o, O_REUSE_EXTERNAL)) ||
	    attach_path(d.path, false, &dest, &fd))
		goto out;
	r = start_mirror(&lv, &d, dest, &o);
out:
	if (fd >= 0)
		close(fd);	/* the table holds the loop device, or nothing does */
	if (r && d.created)
		unlink(d.path);
	r = r ? EXIT_FAIL : started(&lv, &o, "Block Copy");
	live_close(&lv);
	return r;
}

/* ---- job */

#define JOB_ACTIONS	(OPT(O_INFO) | OPT(O_ABORT) | OPT(O_PIVOT) | \
			 OPT(O_FINISH) | OPT(O_PAUSE) | OPT(O_RESUME))

static int check_job_actions(struct job_opts *o)
{
	unsigned int actions;

	/* virsh: --abort --pivot pivots. */
	if (HAS(o, O_ABORT) && HAS(o, O_PIVOT))
		o->given &= ~OPT(O_ABORT);
	actions = o->given & JOB_ACTIONS;
	if (actions & (actions - 1))
		return usage_error("give one of --info, --abort, --pivot, --finish, --pause, --resume");
	if (HAS(o, O_INFO) && (o->given & (OPT(O_BANDWIDTH) | OPT(O_WAIT))))
		return usage_error("--info shows the job: it takes no other option but --json");
	if ((HAS(o, O_PAUSE) || HAS(o, O_ABORT)) && HAS(o, O_WAIT))
		return usage_error("--wait applies to a running job: not with --pause or --abort");
	if (!(o->given & (JOB_ACTIONS | OPT(O_BANDWIDTH) | OPT(O_WAIT))))
		o->given |= OPT(O_INFO);
	/* As virsh blockjob: --pivot and --finish want a ready job. */
	return 0;
}

static int job_action(struct live *lv, const struct job_opts *o)
{
	const char *type = lv->s.job.type;

	/* A cancelled copy whose table still names the destination. */
	if (HAS(o, O_ABORT) && lv->t.mirror.present && !job_is_active(&lv->s.job))
		return abort_job(lv) ? EXIT_FAIL : EXIT_OK;
	if (!job_is_active(&lv->s.job)) {
		errmsg(lv->name, "has no block job: start one with chainadm pull, commit or copy");
		return EXIT_FAIL;
	}
	if ((HAS(o, O_PIVOT) || HAS(o, O_FINISH)) && !job_has_ready(type)) {
		errmsg(lv->name, "the %s job has no pivot and no finish: it completes by itself; wait for it with 'chainadm job %s --wait'",
		       type, lv->name);
		return EXIT_FAIL;
	}
	if (set_bandwidth(lv, o))
		return EXIT_FAIL;
	if (HAS(o, O_PAUSE))
		return send_msg(lv, "job pause") ? EXIT_FAIL : EXIT_OK;
	if (HAS(o, O_RESUME) && send_msg(lv, "job resume"))
		return EXIT_FAIL;
	if (HAS(o, O_ABORT)) {
		if (abort_job(lv))
			return EXIT_FAIL;
		say(o, "%s aborted", job_label(type));
		return finish_json(lv, o, "aborted", EXIT_OK);
	}
	if (HAS(o, O_WAIT) || HAS(o, O_PIVOT) || HAS(o, O_FINISH))
		return reload(lv) ? EXIT_FAIL : conclude(lv, o);
	return EXIT_OK;
}

int cmd_job(int argc, char **argv)
{
	struct job_opts o;
	struct live lv;
	int r = parse_job_opts(argc, argv, JOB_ACTIONS | OPT(O_BANDWIDTH) |
			       OPT(O_WAIT) | OPT(O_VERBOSE) | OPT(O_JSON), &o);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (argc - optind != 1)
		return usage_error("expects one device name");
	if (check_job_actions(&o))
		return EXIT_USAGE;
	dm_op_init();
	/* A read-out takes no lock: it never waits for another command. */
	if (HAS(&o, O_INFO) ? live_open(&lv, argv[optind]) :
			      live_lock(&lv, argv[optind], NULL))
		return EXIT_FAIL;
	if (live_require_jobs(&lv))
		r = EXIT_FAIL;
	else if (HAS(&o, O_INFO))
		print_info(&lv, HAS(&o, O_JSON), NULL);
	else
		r = job_action(&lv, &o);
	live_close(&lv);
	return r;
}
