// SPDX-License-Identifier: GPL-2.0
/*
 * lw-explore - crash-state explorer over dm-log-writes logs (the idea of
 * CrashMonkey): build the disk states a power cut may leave, not only the
 * prefixes of the log, and run a check command on each.
 *
 * The crash model (Documentation/dm-chain.rst, DESIGN.md): a disk with a
 * volatile write cache may lose any subset of the writes completed since
 * the last completed flush, in any order.
 *
 * What a log says (drivers/md/dm-log-writes.c, checked in 6.1): a plain
 * write or a DISCARD is put on an "unflushed" list when it completes and is
 * logged only when a later FLUSH bio is mapped (the list is spliced onto
 * it), right before that FLUSH's own entry, which is logged when the FLUSH
 * completes.  A FUA write without PREFLUSH is logged at its completion.  A
 * mark is logged when its message arrives.  At table teardown the
 * unflushed list is logged, then the mark "dm-log-writes-end".  So, with
 * F(k) the k-th FLUSH entry (any entry with the FLUSH flag), the entries
 * between F(k-1) and F(k) are one *epoch*: writes that completed before
 * F(k) was issued and after F(k-1) was; F(k) made them durable.
 *
 * Crash points and the states explored at each:
 *
 *  epoch mode (one log; --points epochs, the default for one log): one
 *  point per FLUSH entry F(k), "just before F(k) completed", and one at the
 *  end of the log.  State = every entry up to F(k-1) applied, plus a subset
 *  of the epoch's candidates.  Candidates: the plain writes and discards of
 *  the epoch, and F(k)'s own data when it carries any (a PREFLUSH|FUA
 *  header write that had not completed may or may not be on disk).  A FUA
 *  write without PREFLUSH inside the epoch had completed, so it is durable
 *  and always applied: dropping it would contradict its acknowledgement.
 *  Marks logged before F(k) were sent before the crash instant, so the
 *  check gets the last of them (LWX_MARK, LWX_K, LWX_PHASE below).
 *
 *  mark mode (several logs, one per written device; --points marks): the
 *  test sends every mark to every log one right after the other, so a mark
 *  name is a common crash instant T.  In each log, with m its mark and
 *  F(k-1) < m < F(k) the flush entries around it: entries up to F(k-1) are
 *  applied (that flush completed before T), and the plain writes and
 *  discards between F(k-1) and F(k) are candidates (some completed before
 *  T, some after; a state that holds a later one is a state of a slightly
 *  later crash on that device, which the checks accept since they take
 *  any journaled write).  F(k) itself is never applied: it completed after
 *  T.  FUA-only entries before m are applied, after m are candidates.  The
 *  candidates of all logs form one set and subsets are taken over it, so a
 *  state may keep a write on one device and drop its mirror on the other.
 *
 * Subsets per point, n candidates: none, all; every subset when n <= 4;
 * otherwise each single candidate dropped when n <= --single-max, and K
 * random subsets (each drawn with its own keep probability in 10..90%, so
 * both nearly-empty and nearly-full subsets come up).  K is --random, or
 * derived from --states N so the total reaches N.  Random subsets come
 * from a seeded splitmix64 (common.c): the seed is printed, and --seed
 * replays the same states in the same order.  Entries are always applied
 * in log order (their completion order), discards as zeros.
 *
 * Efficiency: each replay file is kept at the current point's applied
 * prefix; a state's entries are written over it after saving what they
 * cover, the check runs, and the saved bytes are written back in reverse
 * order.  Moving to the next point applies the next durable entries for
 * good.  The replay targets should be files (the check reads them through
 * read-only loop devices: the kernel sees our writes through the page
 * cache, and a check cannot write into the state); --invalidate DEV drops
 * DEV's buffer cache before each check (BLKFLSBUF) for checks that read a
 * block device with buffered I/O.
 *
 * The check command runs with /bin/sh -c and this environment:
 *   LWX_STATE  state number (1-based), LWX_POINT point number,
 *   LWX_MARK   last mark at or before the crash instant ("" if none),
 *   LWX_K      the number K of the last mark named "flush-K" (0 if none),
 *   LWX_PHASE  the last mark "phase-NAME", without "phase-" ("" if none),
 *   LWX_BEGIN  the last mark "begin-NAME" after that phase mark ("" if
 *              none): a table change was under way,
 *   LWX_DESC   a one-line description of the state.
 * Exit 0 passes; anything else fails the state.  The first failure is
 * printed with its epoch's entries (which were dropped) and exploration
 * stops, unless --keep-going.
 */
#define _GNU_SOURCE
#include "common.h"
#include "lw-format.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

const char *progname = "lw-explore";

#define MAX_LOGS	8
#define MAX_INVAL	16
#define EXHAUSTIVE_MAX	4	/* every subset up to this many candidates */

struct entry {
	uint64_t sector;	/* in the log's sectorsize units */
	uint64_t nr;
	uint64_t flags;
	uint64_t data_pos;	/* byte offset of the data in the log */
	char *mark;		/* NULL unless LW_MARK */
};

struct lwlog {
	const char *path;
	const char *replay_path;
	struct dev dev;
	struct dev rep;
	uint32_t ss;
	struct entry *e;
	uint64_t n;
	uint64_t applied;	/* entries [0, applied) are in the replay */
};

/* One candidate or always-applied entry of a point's window. */
struct wentry {
	unsigned int log;
	uint64_t idx;
	bool candidate;
	bool keep;		/* in the current state */
};

struct point {
	uint64_t durable[MAX_LOGS];	/* apply [0, durable) for good */
	struct wentry *w;		/* the window, in log order per log */
	uint64_t nw;
	uint64_t ncand;
	const char *mark, *phase, *begin;
	uint64_t k;
	char what[160];
};

struct config {
	unsigned int nr_logs;
	struct lwlog logs[MAX_LOGS];
	const char *exec;
	const char *inval[MAX_INVAL];
	unsigned int nr_inval;
	bool marks_mode;
	bool seeded;
	bool keep_going;
	bool list;
	uint64_t seed;
	uint64_t random_k;
	bool random_set;
	uint64_t target;
	uint64_t max_states;
	uint64_t single_max;
	/* The built-in chain check (--tables), see chain_check(). */
	const char *tables_path;
	const char *phase0;
	const char *stamp_cmd;
	const char *chainadm;
	const char *dm_name;
	uint64_t meta_bytes;
};

struct table {
	char *phase;
	char *layers;		/* space-separated chain layer devices */
	uint64_t start, len;
	char type[16];
	char *params;
};

struct undo {
	unsigned int log;
	uint64_t off;
	uint64_t len;
	unsigned char *old;
};

struct run {
	struct config *c;
	struct rng rng;
	uint64_t states, failed, points, first_fail;
	struct undo *undo;
	uint64_t nr_undo, cap_undo;
	unsigned char *buf;
	uint64_t buf_len;
	/* built-in check */
	struct table *tables;
	unsigned int nr_tables;
	FILE *to_stamp, *from_stamp;
	pid_t stamp_pid;
	int ctl;			/* /dev/mapper/control */
	char node[64];			/* our node of the check device */
	uint64_t *meta_seen;		/* metadata states chainadm passed */
	uint64_t nr_meta_seen;
	uint64_t nr_chainadm, nr_skipped, nr_recover;
	uint64_t us_create, us_stamp, us_remove, us_chainadm;	/* time spent */
};

static uint64_t now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

/* ---- the logs */

static int bad(const struct lwlog *l, uint64_t idx, const char *what)
{
	reportf(l->path, "corrupt log", "entry %" PRIu64 ": %s", idx, what);
	return -1;
}

static int load_entry(struct lwlog *l, uint64_t idx, uint64_t *pos,
		      unsigned char *blk)
{
	struct entry *e = &l->e[idx];
	struct lw_entry raw;
	uint64_t len;

	if (*pos > l->dev.size || l->dev.size - *pos < l->ss)
		return bad(l, idx, "header past the end of the log");
	if (xpread(l->dev.fd, blk, l->ss, *pos, l->path))
		return -1;
	memcpy(&raw, blk, sizeof(raw));
	e->sector = le64toh(raw.sector);
	e->nr = le64toh(raw.nr_sectors);
	e->flags = le64toh(raw.flags);
	e->data_pos = *pos + l->ss;
	e->mark = NULL;
	if (!e->flags && !e->nr)
		return bad(l, idx, "empty entry (zeroed or torn log?)");
	if (e->flags & LW_MARK) {
		len = le64toh(raw.data_len);
		if (len >= l->ss - sizeof(raw))
			return bad(l, idx, "mark name too long");
		e->mark = strndup((char *)blk + sizeof(raw), len);
		if (!e->mark)
			return bad(l, idx, "out of memory");
	}
	len = e->flags & LW_DISCARD ? 0 : e->nr;
	if (len > (l->dev.size - e->data_pos) / l->ss)
		return bad(l, idx, "data runs past the end of the log");
	*pos = e->data_pos + len * l->ss;
	return 0;
}

static int log_load(struct lwlog *l)
{
	struct lw_super sb;
	unsigned char *blk;
	uint64_t i, pos;
	int ret = -1;

	if (dev_open(&l->dev, l->path, O_RDONLY))
		return -1;
	blk = alloc_aligned(LW_MAX_SECTORSIZE);
	if (xpread(l->dev.fd, blk, SECTOR_SIZE, 0, l->path))
		goto out;
	memcpy(&sb, blk, sizeof(sb));
	if (le64toh(sb.magic) != LW_MAGIC || le64toh(sb.version) != LW_VERSION) {
		report(l->path, "not a dm-log-writes log (version 1)", 0);
		goto out;
	}
	l->ss = le32toh(sb.sectorsize);
	l->n = le64toh(sb.nr_entries);
	if (!is_pow2(l->ss) || l->ss < SECTOR_SIZE || l->ss > LW_MAX_SECTORSIZE) {
		reportf(l->path, "bad sectorsize in log super", "%u", l->ss);
		goto out;
	}
	l->e = calloc(l->n ? l->n : 1, sizeof(*l->e));
	if (!l->e) {
		report(l->path, "cannot allocate the entry index", ENOMEM);
		goto out;
	}
	for (i = 0, pos = l->ss; i < l->n; i++)
		if (load_entry(l, i, &pos, blk))
			goto out;
	if (dev_open(&l->rep, l->replay_path, O_RDWR))
		goto out;
	/*
	 * Buffered: the check reads the state through loop devices of the
	 * same files, i.e. through their page cache.
	 */
	if (l->rep.direct) {
		int fl = fcntl(l->rep.fd, F_GETFL);

		if (fl < 0 || fcntl(l->rep.fd, F_SETFL, fl & ~O_DIRECT)) {
			report(l->replay_path, "cannot drop O_DIRECT", errno);
			goto out;
		}
		l->rep.direct = false;
	}
	ret = 0;
out:
	free(blk);
	return ret;
}

static bool has_data(const struct entry *e)
{
	return e->nr && !(e->flags & LW_MARK);
}

static bool is_flush(const struct entry *e)
{
	return e->flags & LW_FLUSH;
}

static bool fua_only(const struct entry *e)
{
	return (e->flags & LW_FUA) && !(e->flags & LW_FLUSH);
}

/* ---- marks: what the check is told about the crash instant */

static void note_mark(struct point *p, const char *m)
{
	uint64_t k;

	p->mark = m;
	if (!strncmp(m, "flush-", 6) && !parse_u64(m + 6, &k))
		p->k = k;
	else if (!strncmp(m, "phase-", 6)) {
		p->phase = m + 6;
		p->begin = "";
	} else if (!strncmp(m, "begin-", 6))
		p->begin = m + 6;
}

/* Marks of log 0 in [from, to), in order, carried over from @prev. */
static void scan_marks(const struct lwlog *l, uint64_t from, uint64_t to,
		       struct point *p)
{
	uint64_t i;

	for (i = from; i < to && i < l->n; i++)
		if (l->e[i].mark)
			note_mark(p, l->e[i].mark);
}

/* ---- points */

static int window_add(struct point *p, unsigned int log, uint64_t idx,
		      bool candidate)
{
	struct wentry *w = reallocarray(p->w, p->nw + 1, sizeof(*w));

	if (!w) {
		report("memory", "cannot grow a window", ENOMEM);
		return -1;
	}
	p->w = w;
	w[p->nw++] = (struct wentry){ .log = log, .idx = idx,
				      .candidate = candidate, .keep = true };
	p->ncand += candidate;
	return 0;
}

/*
 * Epoch mode: the point just before the flush entry @cur completed (or
 * the end of the log, @cur == n), the previous flush entry being @prev
 * (UINT64_MAX: none).
 */
static int epoch_point(const struct lwlog *l, uint64_t prev, uint64_t cur,
		       struct point *p)
{
	uint64_t i, first = prev == UINT64_MAX ? 0 : prev + 1;

	p->durable[0] = first;
	for (i = first; i <= cur && i < l->n; i++) {
		const struct entry *e = &l->e[i];

		if (!has_data(e))
			continue;
		/* Completed before the crash instant: durable. */
		if (i < cur && fua_only(e)) {
			if (window_add(p, 0, i, false))
				return -1;
			continue;
		}
		if (window_add(p, 0, i, true))
			return -1;
	}
	snprintf(p->what, sizeof(p->what), "epoch of entries %" PRIu64
		 "..%" PRIu64 "%s", first, cur < l->n ? cur : l->n - 1,
		 cur < l->n ? (l->e[cur].flags & LW_FUA ?
			       " (ends with FLUSH|FUA)" : " (ends with FLUSH)") :
		 " (end of the log)");
	return 0;
}

/* Mark mode: in log @li, the window around its mark at index @m. */
static int mark_window(const struct lwlog *l, unsigned int li, uint64_t m,
		       struct point *p)
{
	uint64_t prev = UINT64_MAX, i, first;

	for (i = m; i-- > 0;)
		if (is_flush(&l->e[i])) {
			prev = i;
			break;
		}
	first = prev == UINT64_MAX ? 0 : prev + 1;
	p->durable[li] = first;
	for (i = first; i < l->n && !(i > m && is_flush(&l->e[i])); i++) {
		const struct entry *e = &l->e[i];

		if (!has_data(e) || is_flush(e))
			continue;
		if (window_add(p, li, i, !(i < m && fua_only(e))))
			return -1;
	}
	return 0;
}

static void point_free(struct point *p)
{
	free(p->w);
	p->w = NULL;
	p->nw = p->ncand = 0;
}

/* ---- applying entries */

static int grow_buf(struct run *r, uint64_t len)
{
	if (len <= r->buf_len)
		return 0;
	free(r->buf);
	r->buf = alloc_aligned(len);
	r->buf_len = len;
	return 0;
}

static int entry_range(const struct lwlog *l, uint64_t idx, uint64_t *off,
		       uint64_t *len)
{
	const struct entry *e = &l->e[idx];
	uint64_t blocks = l->rep.size / l->ss;

	if (e->sector > blocks || e->nr > blocks - e->sector) {
		reportf(l->replay_path, "entry outside the replay target",
			"entry %" PRIu64 ": block %" PRIu64 " + %" PRIu64, idx,
			e->sector, e->nr);
		return -1;
	}
	*off = e->sector * l->ss;
	*len = e->nr * l->ss;
	return 0;
}

/* Write entry @idx of @l to its replay target; save what it covers first. */
static int apply(struct run *r, unsigned int li, uint64_t idx, bool save)
{
	struct lwlog *l = &r->c->logs[li];
	const struct entry *e = &l->e[idx];
	uint64_t off, len;

	if (!has_data(e))
		return 0;
	if (entry_range(l, idx, &off, &len) || grow_buf(r, len))
		return -1;
	if (save) {
		struct undo *u;

		if (r->nr_undo == r->cap_undo) {
			r->cap_undo = r->cap_undo ? 2 * r->cap_undo : 64;
			u = reallocarray(r->undo, r->cap_undo, sizeof(*u));
			if (!u) {
				report("memory", "cannot grow the undo log", ENOMEM);
				return -1;
			}
			r->undo = u;
		}
		u = &r->undo[r->nr_undo];
		u->old = malloc(len);
		if (!u->old) {
			report("memory", "cannot save a range", ENOMEM);
			return -1;
		}
		if (xpread(l->rep.fd, u->old, len, off, l->replay_path)) {
			free(u->old);
			return -1;
		}
		*u = (struct undo){ li, off, len, u->old };
		r->nr_undo++;
	}
	if (e->flags & LW_DISCARD) {
		memset(r->buf, 0, len);
	} else if (xpread(l->dev.fd, r->buf, len, e->data_pos, l->path)) {
		return -1;
	}
	return xpwrite(l->rep.fd, r->buf, len, off, l->replay_path);
}

static int undo_all(struct run *r)
{
	int ret = 0;

	while (r->nr_undo) {
		struct undo *u = &r->undo[--r->nr_undo];
		struct lwlog *l = &r->c->logs[u->log];

		if (xpwrite(l->rep.fd, u->old, u->len, u->off, l->replay_path))
			ret = -1;
		free(u->old);
	}
	return ret;
}

/* Apply every log's entries up to the point's durable prefix, for good. */
static int advance(struct run *r, const struct point *p)
{
	unsigned int li;

	for (li = 0; li < r->c->nr_logs; li++) {
		struct lwlog *l = &r->c->logs[li];

		for (; l->applied < p->durable[li]; l->applied++)
			if (apply(r, li, l->applied, false))
				return -1;
	}
	return 0;
}

/* ---- the built-in chain check (--tables) */

/*
 * The test's check as one process: under TCG every process start costs
 * hundreds of milliseconds (binaries and libraries come over 9p), more
 * than the check itself.  So the explorer assembles the chain with raw
 * device-mapper ioctls, asks a chain-stamp coprocess ("chain-stamp
 * serve") to check the data, and starts `chainadm check` only for a
 * metadata state it has not seen pass before (chainadm reads only the
 * header slots and the table, the first --meta-bytes of a layer, hashed).
 *
 * --tables FILE: one line per table a phase may assemble, tried in order:
 * "PHASE|LAYERS|START LEN TYPE PARAMS", LAYERS the chain layers chainadm
 * must find clean.  The phase is LWX_PHASE (else --phase0; "none": the
 * chain did not exist yet, the state is not counted); inside a table
 * change the tables of the old phase, then those of the new one (LWX_BEGIN)
 * are tried: after a crash there, chainadm assembles one or the other.
 * There the target may refuse both on purpose (a recorded pivot intent,
 * or a layer a completed commit invalidated before the table change: "run
 * chainadm recover"); such a state is counted, not checked, since
 * recover rewrites headers and this check is read-only.
 */
static int load_tables(struct run *r)
{
	FILE *f = fopen(r->c->tables_path, "r");
	char *line = NULL, *a, *b;
	size_t cap = 0;
	ssize_t n;
	struct table *t;
	int used;

	if (!f) {
		report(r->c->tables_path, "open", errno);
		return -1;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		a = strchr(line, '|');
		b = a ? strchr(a + 1, '|') : NULL;
		if (!b)
			continue;
		*a = *b = '\0';
		t = reallocarray(r->tables, r->nr_tables + 1, sizeof(*t));
		if (!t)
			goto bad;
		r->tables = t;
		t = &t[r->nr_tables];
		if (sscanf(b + 1, "%" SCNu64 " %" SCNu64 " %15s %n", &t->start,
			   &t->len, t->type, &used) < 3) {
			reportf(r->c->tables_path, "bad table", "'%s'", b + 1);
			goto bad;
		}
		t->phase = strdup(line);
		t->layers = strdup(a + 1);
		t->params = strdup(b + 1 + used);
		if (!t->phase || !t->layers || !t->params)
			goto bad;
		r->nr_tables++;
	}
	free(line);
	fclose(f);
	return 0;
bad:
	free(line);
	fclose(f);
	return -1;
}

static int start_stamp(struct run *r)
{
	int in[2], out[2];

	if (pipe(in) || pipe(out)) {
		report("pipe", "cannot start the stamp checker", errno);
		return -1;
	}
	r->stamp_pid = fork();
	if (r->stamp_pid < 0) {
		report("fork", "cannot start the stamp checker", errno);
		return -1;
	}
	if (!r->stamp_pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/bin/sh", "sh", "-c", r->c->stamp_cmd, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	r->to_stamp = fdopen(in[1], "w");
	r->from_stamp = fdopen(out[0], "r");
	return r->to_stamp && r->from_stamp ? 0 : -1;
}

static void dm_remove(struct run *r)
{
	struct dm_ioctl io;
	int i;

	unlink(r->node);
	/* Whoever else opened the node (none should) may hold it briefly. */
	for (i = 0; i < 50; i++) {
		dm_ioctl_init(&io, sizeof(io), r->c->dm_name, 0);
		if (!ioctl(r->ctl, DM_DEV_REMOVE, &io) || errno == ENXIO)
			return;
		if (errno != EBUSY)
			break;
		usleep(100000);
	}
	report(r->c->dm_name, "DM_DEV_REMOVE", errno);
}

/* Create the check device with table @t, read-only; 0 or -errno. */
static int dm_create(struct run *r, const struct table *t)
{
	size_t size = sizeof(struct dm_ioctl) + sizeof(struct dm_target_spec) +
		      strlen(t->params) + 1;
	struct dm_ioctl *io = calloc(1, size + 8);
	struct dm_target_spec *sp;
	dev_t dev;
	int err = 0;

	if (!io)
		return -ENOMEM;
	dm_ioctl_init(io, sizeof(*io), r->c->dm_name, 0);
	if (ioctl(r->ctl, DM_DEV_CREATE, io)) {
		err = -errno;
		report(r->c->dm_name, "DM_DEV_CREATE", errno);
		goto out;
	}
	dev = (dev_t)io->dev;
	dm_ioctl_init(io, size, r->c->dm_name, DM_READONLY_FLAG);
	io->target_count = 1;
	sp = (struct dm_target_spec *)(io + 1);
	sp->sector_start = t->start;
	sp->length = t->len;
	snprintf(sp->target_type, sizeof(sp->target_type), "%s", t->type);
	strcpy((char *)(sp + 1), t->params);
	if (ioctl(r->ctl, DM_TABLE_LOAD, io)) {
		err = -errno;
		goto out_remove;
	}
	dm_ioctl_init(io, sizeof(*io), r->c->dm_name, 0);
	if (ioctl(r->ctl, DM_DEV_SUSPEND, io)) {	/* no SUSPEND flag: resume */
		err = -errno;
		goto out_remove;
	}
	unlink(r->node);
	if (mknod(r->node, S_IFBLK | 0600, makedev(major(dev), minor(dev)))) {
		err = -errno;
		report(r->node, "mknod", errno);
		goto out_remove;
	}
	goto out;
out_remove:
	dm_remove(r);
out:
	free(io);
	return err;
}

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len--)
		h = (h ^ *b++) * 0x100000001b3ULL;
	return h;
}

/* Hash of the first --meta-bytes of every layer of @t; 0 on error. */
static uint64_t meta_hash(struct run *r, const struct table *t)
{
	char *list = strdup(t->layers), *save, *l;
	uint64_t h = 0xcbf29ce484222325ULL;
	struct dev d;

	if (!list || grow_buf(r, r->c->meta_bytes))
		return 0;
	for (l = strtok_r(list, " ", &save); l; l = strtok_r(NULL, " ", &save)) {
		if (dev_open(&d, l, O_RDONLY)) {
			h = 0;
			break;
		}
		if (xpread(d.fd, r->buf, r->c->meta_bytes, 0, l)) {
			dev_close(&d);
			h = 0;
			break;
		}
		dev_close(&d);
		h = fnv(fnv(h, l, strlen(l)), r->buf, r->c->meta_bytes);
	}
	free(list);
	return h;
}

/* chainadm check -q on each layer of @t; 0 clean, 1 not. */
static int run_chainadm(struct run *r, const struct table *t)
{
	char *list = strdup(t->layers), *save, *l;
	int ret = 0, status, fd;
	pid_t pid;

	for (l = list ? strtok_r(list, " ", &save) : NULL; l && !ret;
	     l = strtok_r(NULL, " ", &save)) {
		/* chainadm reads through the buffer cache. */
		fd = open(l, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ioctl(fd, BLKFLSBUF, 0);
			close(fd);
		}
		r->nr_chainadm++;
		fflush(stdout);
		pid = fork();
		if (!pid) {
			execl(r->c->chainadm, "chainadm", "check", "-q", l,
			      (char *)NULL);
			_exit(127);
		}
		if (pid < 0 || waitpid(pid, &status, 0) < 0 ||
		    !WIFEXITED(status) || WEXITSTATUS(status)) {
			printf("# chainadm check %s failed (status %d)\n", l,
			       pid < 0 ? -1 : status);
			ret = 1;
		}
	}
	free(list);
	return ret;
}

/*
 * Did the last table the kernel refused say that only chainadm recover can
 * assemble these layers (a pivot intent recorded, or a layer a completed
 * commit invalidated before the table change)?  That is the designed
 * answer inside a table change: chainadm recover rolls it back or forward.
 */
static bool refused_for_recover(unsigned int attempts)
{
	static char log[1 << 17];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, log, sizeof(log) - 1);
	const char *key = "device-mapper: table:";
	char *p, *eol;

	if (n <= 0)
		return false;
	log[n] = '\0';
	/* The last @attempts refusals are this state's, one per table. */
	for (p = log + n; attempts && p > log; attempts--) {
		while (p > log && (p - log < 21 || memcmp(p - 21, key, 21)))
			p--;
		if (p == log)
			break;
		eol = strchrnul(p, '\n');
		if (memmem(p, eol - p, "chainadm recover", 16) ||
		    memmem(p, eol - p, "invalidated by a commit", 23))
			return true;
		p -= 21;
	}
	return false;
}

static bool tried_phase(const char *want, const char *phase)
{
	return want && *want && !strcmp(want, phase);
}

/* 0 pass, 1 fail, -1 error. */
static int chain_check(struct run *r, const struct point *p)
{
	const char *phase = p->phase && *p->phase ? p->phase : r->c->phase0;
	const char *wants[2] = { phase, p->begin };
	const struct table *t = NULL;
	char answer[256], reps[4][256];
	unsigned int nrep, j;
	uint64_t h, i, t0 = now_us();
	unsigned int w, ti, attempts = 0;
	int err = 0, v;

	for (w = 0; w < 2 && !t; w++)
		for (ti = 0; ti < r->nr_tables && !t; ti++) {
			if (!tried_phase(wants[w], r->tables[ti].phase))
				continue;
			err = dm_create(r, &r->tables[ti]);
			attempts++;
			if (!err)
				t = &r->tables[ti];
		}
	if (!t && p->begin && *p->begin && err == -EINVAL &&
	    refused_for_recover(attempts)) {
		r->nr_recover++;
		return 0;
	}
	if (!t) {
		printf("# no table of phase '%s'%s%s%s assembles (last error %s; "
		       "see the kernel log)\n", phase, p->begin && *p->begin ?
		       " or '" : "", p->begin ? p->begin : "",
		       p->begin && *p->begin ? "'" : "", strerror(-err));
		return 1;
	}
	r->us_create += now_us() - t0;
	t0 = now_us();
	fprintf(r->to_stamp, "%s %" PRIu64 "\n", r->node, p->k);
	fflush(r->to_stamp);
	nrep = 0;
	for (;;) {
		if (!fgets(answer, sizeof(answer), r->from_stamp)) {
			report("chain-stamp serve", "no answer", 0);
			dm_remove(r);
			return -1;
		}
		if (!strncmp(answer, "ok", 2) || !strncmp(answer, "fail", 4) ||
		    !strncmp(answer, "error", 5))
			break;
		/* A bad-sector report: keep the first few for the verdict. */
		if (nrep < ARRAY_SIZE(reps))
			snprintf(reps[nrep++], sizeof(reps[0]), "%s", answer);
	}
	r->us_stamp += now_us() - t0;
	t0 = now_us();
	dm_remove(r);
	r->us_remove += now_us() - t0;
	if (strncmp(answer, "ok", 2)) {
		printf("# table '%s', flush K=%" PRIu64 ": chain-stamp check: %s",
		       t->phase, p->k, answer);
		for (j = 0; j < nrep; j++)
			printf("#   %s", reps[j]);
		return 1;
	}
	h = meta_hash(r, t);
	for (i = 0; h && i < r->nr_meta_seen; i++)
		if (r->meta_seen[i] == h)
			return 0;
	t0 = now_us();
	v = run_chainadm(r, t);
	r->us_chainadm += now_us() - t0;
	if (v)
		return 1;
	if (h) {
		uint64_t *m = reallocarray(r->meta_seen, r->nr_meta_seen + 1,
					   sizeof(*m));
		if (m) {
			r->meta_seen = m;
			m[r->nr_meta_seen++] = h;
		}
	}
	return 0;
}

static int builtin_start(struct run *r)
{
	if (!r->c->tables_path)
		return 0;
	snprintf(r->node, sizeof(r->node), "/tmp/lw-explore.%d.node", getpid());
	r->ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (r->ctl < 0) {
		report("/dev/mapper/control", "open", errno);
		return -1;
	}
	return load_tables(r) || start_stamp(r) ? -1 : 0;
}

static void builtin_stop(struct run *r)
{
	if (!r->c->tables_path)
		return;
	if (r->to_stamp)
		fclose(r->to_stamp);
	if (r->from_stamp)
		fclose(r->from_stamp);
	if (r->stamp_pid > 0)
		waitpid(r->stamp_pid, NULL, 0);
	if (r->ctl >= 0)
		close(r->ctl);
	while (r->nr_tables--) {
		free(r->tables[r->nr_tables].phase);
		free(r->tables[r->nr_tables].layers);
		free(r->tables[r->nr_tables].params);
	}
	free(r->tables);
	free(r->meta_seen);
}

/* ---- one state */

static void describe(const struct run *r, const struct point *p, char *out,
		     size_t len)
{
	size_t n;
	uint64_t i, dropped = 0;

	n = snprintf(out, len, "point %" PRIu64 " (%s", r->points, p->what);
	if (p->mark && n < len)
		n += snprintf(out + n, len - n, ", after mark %s", p->mark);
	if (n < len)
		n += snprintf(out + n, len - n, "): %" PRIu64 " candidates, dropped:",
			      p->ncand);
	for (i = 0; i < p->nw && n < len; i++) {
		if (!p->w[i].candidate || p->w[i].keep)
			continue;
		dropped++;
		if (r->c->nr_logs > 1)
			n += snprintf(out + n, len - n, " %u:%" PRIu64,
				      p->w[i].log, p->w[i].idx);
		else
			n += snprintf(out + n, len - n, " %" PRIu64, p->w[i].idx);
	}
	if (!dropped && n < len)
		snprintf(out + n, len - n, " none");
}

static void print_window(const struct run *r, const struct point *p)
{
	uint64_t i;

	fprintf(stderr, "%s: the window (log:entry flags sector+nr, in "
		"sectorsize units; '-' dropped, '+' kept, '=' durable):\n",
		progname);
	for (i = 0; i < p->nw; i++) {
		const struct wentry *w = &p->w[i];
		const struct entry *e = &r->c->logs[w->log].e[w->idx];

		fprintf(stderr, "  %c %u:%" PRIu64 " %s%s%s%s %" PRIu64 "+%"
			PRIu64 "\n", !w->candidate ? '=' : w->keep ? '+' : '-',
			w->log, w->idx, e->flags & LW_FLUSH ? "FLUSH " : "",
			e->flags & LW_FUA ? "FUA " : "",
			e->flags & LW_DISCARD ? "DISCARD " : "",
			e->flags & (LW_FLUSH | LW_FUA | LW_DISCARD) ? "" : "WRITE",
			e->sector, e->nr);
	}
}

static int run_check(struct run *r, const struct point *p, const char *desc)
{
	char num[32];
	unsigned int i;
	pid_t pid;
	int status, fd;

	for (i = 0; i < r->c->nr_inval; i++) {
		fd = open(r->c->inval[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0 || ioctl(fd, BLKFLSBUF, 0))
			report(r->c->inval[i], "BLKFLSBUF", errno);
		if (fd >= 0)
			close(fd);
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		report("fork", "cannot run the check", errno);
		return -1;
	}
	if (!pid) {
		snprintf(num, sizeof(num), "%" PRIu64, r->states);
		setenv("LWX_STATE", num, 1);
		snprintf(num, sizeof(num), "%" PRIu64, r->points);
		setenv("LWX_POINT", num, 1);
		snprintf(num, sizeof(num), "%" PRIu64, p->k);
		setenv("LWX_K", num, 1);
		setenv("LWX_MARK", p->mark ? p->mark : "", 1);
		setenv("LWX_PHASE", p->phase ? p->phase : "", 1);
		setenv("LWX_BEGIN", p->begin ? p->begin : "", 1);
		setenv("LWX_DESC", desc, 1);
		execl("/bin/sh", "sh", "-c", r->c->exec, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			report("waitpid", "check", errno);
			return -1;
		}
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : 1;
}

/* Returns 0 to go on, 1 to stop (done or failed), -1 on error. */
static int one_state(struct run *r, struct point *p)
{
	char desc[1024];
	uint64_t i;
	int v;

	if (r->c->max_states && r->states >= r->c->max_states)
		return 1;
	if (r->c->tables_path && !strcmp(p->phase && *p->phase ? p->phase :
					   r->c->phase0, "none")) {
		r->nr_skipped++;
		return 0;
	}
	r->states++;
	for (i = 0; i < p->nw; i++)
		if ((!p->w[i].candidate || p->w[i].keep) &&
		    apply(r, p->w[i].log, p->w[i].idx, true))
			return -1;
	describe(r, p, desc, sizeof(desc));
	v = r->c->tables_path ? chain_check(r, p) :
	    r->c->exec ? run_check(r, p, desc) : 0;
	if (r->c->list || v)
		printf("state %" PRIu64 ": %s: %s\n", r->states, desc,
		       v ? "FAIL" : "listed");
	if (undo_all(r) || v < 0)
		return -1;
	if (!v)
		return 0;
	r->failed++;
	if (!r->first_fail) {
		r->first_fail = r->states;
		printf("%s: first failing state is state %" PRIu64 " (seed %"
		       PRIu64 ", K %" PRIu64 ", phase '%s')\n", progname,
		       r->states, r->c->seed, p->k, p->phase ? p->phase : "");
		print_window(r, p);
	}
	return r->c->keep_going ? 0 : 1;
}

static void set_all(struct point *p, bool keep)
{
	uint64_t i;

	for (i = 0; i < p->nw; i++)
		p->w[i].keep = keep || !p->w[i].candidate;
}

/* Candidate number @c (0-based) of the window. */
static struct wentry *cand(struct point *p, uint64_t c)
{
	uint64_t i;

	for (i = 0; i < p->nw; i++)
		if (p->w[i].candidate && !c--)
			return &p->w[i];
	return NULL;
}

static uint64_t states_for(const struct config *c, uint64_t n, uint64_t k)
{
	if (!n)
		return 1;
	if (n <= EXHAUSTIVE_MAX)
		return 1ull << n;
	return 2 + (n <= c->single_max ? n : 0) + k;
}

static int explore_point(struct run *r, struct point *p)
{
	uint64_t n = p->ncand, i, s, keep_pct;
	int v;

	r->points++;
	if (advance(r, p))
		return -1;
	if (n <= EXHAUSTIVE_MAX) {
		for (s = 0; s < (1ull << n); s++) {
			for (i = 0; i < n; i++)
				cand(p, i)->keep = s >> i & 1;
			if ((v = one_state(r, p)))
				return v;
		}
		return 0;
	}
	set_all(p, false);
	if ((v = one_state(r, p)))
		return v;
	set_all(p, true);
	if ((v = one_state(r, p)))
		return v;
	for (i = 0; n <= r->c->single_max && i < n; i++) {
		set_all(p, true);
		cand(p, i)->keep = false;
		if ((v = one_state(r, p)))
			return v;
	}
	for (s = 0; s < r->c->random_k; s++) {
		keep_pct = 10 + rng_below(&r->rng, 81);
		for (i = 0; i < n; i++)
			cand(p, i)->keep = rng_below(&r->rng, 100) < keep_pct;
		if ((v = one_state(r, p)))
			return v;
	}
	return 0;
}

/* ---- walking the points */

/*
 * Calls @fn for every point in order.  Marks and the previous point's
 * verdict context carry over; a point whose window and crash-instant
 * context equal the previous one's (no data, same marks) is skipped.
 */
typedef int (*point_fn)(struct run *r, struct point *p, void *arg);

static int walk_epochs(struct run *r, point_fn fn, void *arg)
{
	const struct lwlog *l = &r->c->logs[0];
	struct point p = { 0 };
	uint64_t prev = UINT64_MAX, cur, scanned = 0, last_k = UINT64_MAX;
	const char *last_mark = NULL;
	int v = 0;

	for (cur = 0; cur <= l->n && !v; cur++) {
		if (cur < l->n && !is_flush(&l->e[cur]))
			continue;
		scan_marks(l, scanned, cur, &p);
		scanned = cur;
		p.w = NULL;
		p.nw = p.ncand = 0;
		if (epoch_point(l, prev, cur, &p)) {
			v = -1;
			break;
		}
		if (p.nw || p.k != last_k || p.mark != last_mark)
			v = fn(r, &p, arg);
		last_k = p.k;
		last_mark = p.mark;
		point_free(&p);
		prev = cur;
	}
	return v < 0 ? -1 : 0;
}

/* Index of mark @name in log @l at or after @from; UINT64_MAX if none. */
static uint64_t find_mark(const struct lwlog *l, const char *name,
			  uint64_t from)
{
	uint64_t i;

	for (i = from; i < l->n; i++)
		if (l->e[i].mark && !strcmp(l->e[i].mark, name))
			return i;
	return UINT64_MAX;
}

static int walk_marks(struct run *r, point_fn fn, void *arg)
{
	struct config *c = r->c;
	const struct lwlog *l0 = &c->logs[0];
	uint64_t from[MAX_LOGS] = { 0 }, at[MAX_LOGS], m, scanned = 0;
	struct point p = { 0 };
	unsigned int li;
	int v = 0;

	for (m = 0; m < l0->n && !v; m++) {
		if (!l0->e[m].mark)
			continue;
		at[0] = m;
		for (li = 1; li < c->nr_logs; li++) {
			at[li] = find_mark(&c->logs[li], l0->e[m].mark, from[li]);
			if (at[li] == UINT64_MAX)
				break;
		}
		scan_marks(l0, scanned, m + 1, &p);
		scanned = m + 1;
		if (li < c->nr_logs)
			continue;	/* not a common crash point */
		p.w = NULL;
		p.nw = p.ncand = 0;
		for (li = 0; li < c->nr_logs && !v; li++) {
			from[li] = at[li] + 1;
			v = mark_window(&c->logs[li], li, at[li], &p);
		}
		snprintf(p.what, sizeof(p.what), "crash at mark %s",
			 l0->e[m].mark);
		if (!v)
			v = fn(r, &p, arg);
		point_free(&p);
	}
	return v < 0 ? -1 : 0;
}

static int walk(struct run *r, point_fn fn, void *arg)
{
	return r->c->marks_mode ? walk_marks(r, fn, arg) : walk_epochs(r, fn, arg);
}

struct count {
	uint64_t fixed;		/* states without random subsets */
	uint64_t randomised;	/* points that take random subsets */
	uint64_t points;
};

static int count_point(struct run *r, struct point *p, void *arg)
{
	struct count *ct = arg;

	ct->points++;
	ct->fixed += states_for(r->c, p->ncand, 0);
	ct->randomised += p->ncand > EXHAUSTIVE_MAX;
	return 0;
}

static int do_point(struct run *r, struct point *p, void *arg)
{
	(void)arg;
	return explore_point(r, p);
}

static int explore(struct config *c)
{
	struct run r = { .c = c, .ctl = -1 };
	struct count ct = { 0 };
	struct timeval t0, t1;
	unsigned int li;
	int v;

	rng_seed(&r.rng, c->seed);
	if (walk(&r, count_point, &ct))
		return EXIT_USAGE;
	if (!c->random_set && c->target > ct.fixed && ct.randomised)
		c->random_k = (c->target - ct.fixed + ct.randomised - 1) /
			      ct.randomised;
	printf("%s: seed %" PRIu64 " (--seed %" PRIu64 " replays); %s mode, %u "
	       "log%s; %" PRIu64 " points, %" PRIu64 " fixed states + %" PRIu64
	       " random subsets at each of %" PRIu64 " points\n", progname,
	       c->seed, c->seed, c->marks_mode ? "mark" : "epoch", c->nr_logs,
	       c->nr_logs > 1 ? "s" : "", ct.points, ct.fixed, c->random_k,
	       ct.randomised);
	for (li = 0; li < c->nr_logs; li++)
		printf("%s: log %u: %s: %" PRIu64 " entries, sectorsize %u\n",
		       progname, li, c->logs[li].path, c->logs[li].n,
		       c->logs[li].ss);
	fflush(stdout);
	if (builtin_start(&r)) {
		builtin_stop(&r);
		return EXIT_USAGE;
	}
	gettimeofday(&t0, NULL);
	v = walk(&r, do_point, NULL);
	gettimeofday(&t1, NULL);
	builtin_stop(&r);
	printf("%s: %" PRIu64 " states at %" PRIu64 " points checked in %ld s,"
	       " %" PRIu64 " failed", progname, r.states, r.points,
	       (long)(t1.tv_sec - t0.tv_sec), r.failed);
	if (r.first_fail)
		printf("; the first failure was state %" PRIu64, r.first_fail);
	if (c->tables_path)
		printf("; chainadm check run %" PRIu64 " times (new metadata"
		       " states only), %" PRIu64 " states before the chain "
		       "existed skipped, %" PRIu64 " inside a table change "
		       "only chainadm recover assembles; seconds in create %" PRIu64
		       ", stamp check %" PRIu64 ", remove %" PRIu64
		       ", chainadm %" PRIu64, r.nr_chainadm, r.nr_skipped,
		       r.nr_recover,
		       r.us_create / 1000000, r.us_stamp / 1000000,
		       r.us_remove / 1000000, r.us_chainadm / 1000000);
	printf(" (seed %" PRIu64 ")\n", c->seed);
	free(r.undo);
	free(r.buf);
	if (v < 0)
		return EXIT_USAGE;
	return r.failed ? EXIT_VERIFY : EXIT_OK;
}

/* ---- command line */

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s --log LOG --replay FILE [--log LOG --replay FILE]... [options]\n"
" %s --mark NAME DEV...\n"
"\n"
"Explore the crash states of dm-log-writes logs: per flush epoch (one log)\n"
"or per common mark (several logs), everything durable plus subsets of\n"
"what may still have been in a volatile cache, each written onto the\n"
"replay files (which must hold the logged devices' state at the start of\n"
"the logs) and checked by a command.\n"
"\n"
"Options:\n"
" --log PATH          a log (repeatable; the Nth --replay is its target)\n"
" --replay PATH       file the log's writes are applied to\n"
" --exec CMD          check command (sh -c), environment LWX_* (see the\n"
"                     source); without it the states are only counted\n"
" --points epochs|marks  crash points: before each FLUSH completed (one\n"
"                     log, default) or at each mark common to all logs\n"
"                     (default with several logs)\n"
" --seed N            random seed (default: from the clock; printed)\n"
" --random K          random subsets per point with more than 4 candidates\n"
" --states N          choose K so that about N states are checked\n"
" --max-states N      stop after N states\n"
" --single-max N      drop each candidate alone when there are at most N\n"
"                     (default 16)\n"
" --invalidate DEV    drop DEV's buffer cache before each check (repeatable)\n"
"\n"
"Built-in chain check (instead of --exec; see the source):\n"
" --tables FILE       'PHASE|LAYERS|START LEN TYPE PARAMS' per line\n"
" --phase0 NAME       the phase before any phase-NAME mark (none: skip)\n"
" --stamp-server CMD  a 'chain-stamp serve' command line\n"
" --chainadm PATH     chainadm, for 'check -q' on every layer\n"
" --dm-name NAME      name of the check device (default lw-explore-chk)\n"
" --meta-bytes N      bytes at the start of a layer chainadm reads\n"
"                     (default 64K)\n"
" --keep-going        do not stop at the first failing state\n"
" --list             print every state\n"
" -h, --help          display this help\n"
"\n"
"--mark sends 'mark NAME' to the dm-log-writes devices DEV (dm names).\n"
"\n"
"Exit status: 0 every state passed, 1 a state failed, 2 usage or I/O error.\n",
		progname, progname);
}

enum {
	OPT_LOG = 256, OPT_REPLAY, OPT_EXEC, OPT_POINTS, OPT_SEED, OPT_RANDOM,
	OPT_STATES, OPT_MAX_STATES, OPT_SINGLE_MAX, OPT_INVAL, OPT_KEEP_GOING,
	OPT_LIST, OPT_TABLES, OPT_PHASE0, OPT_STAMP, OPT_CHAINADM, OPT_DM_NAME,
	OPT_META_BYTES,
};

static const struct option long_opts[] = {
	{ "log",	required_argument, NULL, OPT_LOG },
	{ "replay",	required_argument, NULL, OPT_REPLAY },
	{ "exec",	required_argument, NULL, OPT_EXEC },
	{ "points",	required_argument, NULL, OPT_POINTS },
	{ "seed",	required_argument, NULL, OPT_SEED },
	{ "random",	required_argument, NULL, OPT_RANDOM },
	{ "states",	required_argument, NULL, OPT_STATES },
	{ "max-states",	required_argument, NULL, OPT_MAX_STATES },
	{ "single-max",	required_argument, NULL, OPT_SINGLE_MAX },
	{ "invalidate",	required_argument, NULL, OPT_INVAL },
	{ "keep-going",	no_argument,	   NULL, OPT_KEEP_GOING },
	{ "list",	no_argument,	   NULL, OPT_LIST },
	{ "tables",	required_argument, NULL, OPT_TABLES },
	{ "phase0",	required_argument, NULL, OPT_PHASE0 },
	{ "stamp-server", required_argument, NULL, OPT_STAMP },
	{ "chainadm",	required_argument, NULL, OPT_CHAINADM },
	{ "dm-name",	required_argument, NULL, OPT_DM_NAME },
	{ "meta-bytes",	required_argument, NULL, OPT_META_BYTES },
	{ "help",	no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct config *c, int opt, const char *arg,
		     unsigned int *nr_replay, int *points)
{
	switch (opt) {
	case OPT_LOG:
		if (c->nr_logs == MAX_LOGS) {
			report("--log", "too many logs", 0);
			return -1;
		}
		c->logs[c->nr_logs++].path = arg;
		return 0;
	case OPT_REPLAY:
		if (*nr_replay == MAX_LOGS) {
			report("--replay", "too many replay targets", 0);
			return -1;
		}
		c->logs[(*nr_replay)++].replay_path = arg;
		return 0;
	case OPT_EXEC:
		c->exec = arg;
		return 0;
	case OPT_POINTS:
		if (strcmp(arg, "epochs") && strcmp(arg, "marks")) {
			reportf("--points", "invalid value", "'%s'", arg);
			return -1;
		}
		*points = arg[0] == 'm';
		return 0;
	case OPT_SEED:
		c->seeded = true;
		return opt_u64("--seed", arg, &c->seed);
	case OPT_RANDOM:
		c->random_set = true;
		return opt_u64("--random", arg, &c->random_k);
	case OPT_STATES:
		return opt_u64("--states", arg, &c->target);
	case OPT_MAX_STATES:
		return opt_u64("--max-states", arg, &c->max_states);
	case OPT_SINGLE_MAX:
		return opt_u64("--single-max", arg, &c->single_max);
	case OPT_INVAL:
		if (c->nr_inval == MAX_INVAL) {
			report("--invalidate", "too many devices", 0);
			return -1;
		}
		c->inval[c->nr_inval++] = arg;
		return 0;
	case OPT_KEEP_GOING:
		c->keep_going = true;
		return 0;
	case OPT_LIST:
		c->list = true;
		return 0;
	case OPT_TABLES:
		c->tables_path = arg;
		return 0;
	case OPT_PHASE0:
		c->phase0 = arg;
		return 0;
	case OPT_STAMP:
		c->stamp_cmd = arg;
		return 0;
	case OPT_CHAINADM:
		c->chainadm = arg;
		return 0;
	case OPT_DM_NAME:
		c->dm_name = arg;
		return 0;
	case OPT_META_BYTES:
		return opt_size("--meta-bytes", arg, &c->meta_bytes);
	case 'h':
		usage(stdout);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static int parse_args(struct config *c, int argc, char **argv)
{
	unsigned int nr_replay = 0;
	int opt, points = -1;
	struct timeval tv;

	*c = (struct config){ .single_max = 16, .phase0 = "",
			      .dm_name = "lw-explore-chk",
			      .meta_bytes = 64 << 10 };
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		if (parse_one(c, opt, optarg, &nr_replay, &points))
			return -1;
	if (optind < argc) {
		reportf("arguments", "unexpected argument", "'%s'", argv[optind]);
		return -1;
	}
	if (!c->nr_logs || nr_replay != c->nr_logs) {
		report("arguments", "one --replay per --log is required", 0);
		return -1;
	}
	c->marks_mode = points < 0 ? c->nr_logs > 1 : points;
	if (c->tables_path && (!c->stamp_cmd || !c->chainadm)) {
		report("--tables", "needs --stamp-server and --chainadm", 0);
		return -1;
	}
	if (!c->marks_mode && c->nr_logs > 1) {
		report("--points", "epochs take exactly one log", 0);
		return -1;
	}
	if (!c->seeded) {
		gettimeofday(&tv, NULL);
		c->seed = (uint64_t)tv.tv_sec * 1000003 ^ tv.tv_usec ^ getpid();
	}
	return 0;
}

/*
 * lw-explore --mark NAME DEV...: send "mark NAME" to dm-log-writes devices
 * DEV (dm names), one right after the other: a common crash point for
 * mark mode, at a fraction of the cost of one dmsetup per device.
 */
static int send_marks(int argc, char **argv)
{
	char buf[sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + 256];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	struct dm_target_msg *msg = (struct dm_target_msg *)(io + 1);
	int ctl, i, ret = EXIT_OK;

	if (argc < 4) {
		report("--mark", "usage: --mark NAME DEV...", 0);
		return EXIT_USAGE;
	}
	ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		report("/dev/mapper/control", "open", errno);
		return EXIT_USAGE;
	}
	for (i = 3; i < argc; i++) {
		dm_ioctl_init(io, sizeof(buf), argv[i], 0);
		msg->sector = 0;
		snprintf(msg->message, sizeof(buf) - sizeof(*io) - sizeof(*msg),
			 "mark %s", argv[2]);
		if (ioctl(ctl, DM_TARGET_MSG, io)) {
			report(argv[i], "mark", errno);
			ret = EXIT_USAGE;
		}
	}
	close(ctl);
	return ret;
}

int main(int argc, char **argv)
{
	struct config c;
	unsigned int i;

	if (argc > 1 && !strcmp(argv[1], "--mark"))
		return send_marks(argc, argv);
	if (parse_args(&c, argc, argv)) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
		return EXIT_USAGE;
	}
	for (i = 0; i < c.nr_logs; i++)
		if (log_load(&c.logs[i]))
			return EXIT_USAGE;
	return explore(&c);
}
