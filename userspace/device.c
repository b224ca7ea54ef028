// SPDX-License-Identifier: GPL-2.0-only
/*
 * Live chain devices; see device.h.
 *
 * The dm table is the truth about a chain; nothing else is recorded.
 * Files are attached to loop devices with autoclear, so removing the dm
 * device detaches them, and a failed create only has to close its fds.
 *
 * Headers of live layers are written only while the device is suspended:
 * suspend makes the target flush and commit, after which it writes nothing
 * until resume, and the next table reads the headers afresh in its
 * constructor.  A file layer is written through its own path, never
 * through the loop device (lower layers are attached read-only), after
 * checking that the file is the one behind the loop device.
 *
 * Whatever changes a device does so under its lock and those of its
 * layers (lock.h), taken before the table is read: live_lock() for a
 * live device, chain_open_locked() for one being assembled.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "device.h"
#include "job.h"
#include "lock.h"

int load_chain_device(const char *name, struct dm_target_line *line,
		      struct chain_table *t)
{
	if (dm_op_table(name, line))
		return -1;
	if (!line->type || strcmp(line->type, CHAIN_TARGET)) {
		errmsg(name, "not a chain device (target %s)",
		       line->type ? line->type : "none: no table loaded");
		dm_target_line_free(line);
		return -1;
	}
	if (table_parse(name, line->params, t)) {
		dm_target_line_free(line);
		return -1;
	}
	return 0;
}

void layer_label(dev_t dev, char *buf, size_t len)
{
	if (dev_label(dev, buf, len))
		snprintf(buf, len, "%u:%u", major(dev), minor(dev));
}

void resume_or_report(const char *name)
{
	if (dm_op_resume(name))
		errmsg(name, "the device stays suspended: resume it with 'dmsetup resume %s'",
		       name);
}

/*
 * Suspend flushes the active layer and queues new I/O, resume swaps the
 * tables and replays it: the user of the disk sees a pause, never an
 * error.  If the swap fails the old table is brought back.
 */
int swap_table(const char *name, uint64_t sectors, const char *params)
{
	if (dm_op_load(name, sectors, params))
		return -1;
	if (dm_op_suspend(name)) {
		dm_op_clear(name);
		return -1;
	}
	if (!dm_op_resume(name))
		return 0;
	dm_op_clear(name);
	resume_or_report(name);
	return -1;
}

int attach_path(const char *path, bool read_only, dev_t *dev, int *fd)
{
	struct stat st;

	*fd = -1;
	if (stat(path, &st)) {
		errmsg(path, "cannot stat: %s", strerror(errno));
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		*dev = st.st_rdev;
		return 0;
	}
	*fd = loop_attach(path, read_only, dev);
	return *fd < 0 ? -1 : 0;
}

int format_over(const char *path, uint64_t layer_size, uint64_t sectors,
		uint32_t cluster_size, const struct chain_table *t,
		unsigned int idx)
{
	char node[PATH_MAX], hint[PATH_MAX];
	struct format_req req = {
		.path = path,
		.virtual_size = sectors << 9,
		.cluster_size = cluster_size,
		.layer_size = layer_size,
		.backing = node,
		/* From the table, never probed: a raw disk may hold anything. */
		.backing_type = !idx && t->raw_base ? DM_CHAIN_BACKING_RAW :
						      DM_CHAIN_BACKING_CHAIN,
		.hint = hint,
		.quiet = true,
	};

	if (dev_path(t->dev[idx], node, sizeof(node)) ||
	    dev_label(t->dev[idx], hint, sizeof(hint)))
		return -1;
	return format_layer(&req);
}

/* After the table holds them, or on failure: autoclear detaches unused. */
static void close_fds(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static uint64_t chain_sectors(const struct chain *c)
{
	const struct layer *top = &c->layer[c->n - 1];

	return (top->raw ? top->size : top->info.virtual_size) >> 9;
}

/* fds[n] is the mirror destination's. */
static int attach_assembly(const struct assembly *a, struct chain_table *t,
			   int *fds, char *mirror, size_t len)
{
	const struct chain *c = a->c;
	struct chain_mirror m = { .present = true };
	unsigned int i;

	for (i = 0; i < c->n; i++)
		/* Only the active layer (and a commit's base) is written. */
		if (attach_path(c->layer[i].path,
				i != c->n - 1 && i != a->rw_layer,
				&t->dev[i], &fds[i]))
			return -1;
	*mirror = '\0';
	if (!a->dest)
		return 0;
	if (attach_path(a->dest->path, false, &m.dest, &fds[c->n]))
		return -1;
	m.raw = a->dest->raw;
	m.shallow = a->dest_shallow;
	mirror_words(&m, mirror, len);
	return 0;
}

int assemble_device(const char *name, const struct assembly *a)
{
	const struct chain *c = a->c;
	struct chain_table t = { .n = c->n, .raw_base = c->layer[0].raw };
	uint64_t sectors = a->sectors ? a->sectors : chain_sectors(c);
	int fds[DM_CHAIN_MAX_LAYERS + 1];
	char size[SIZE_STR_LEN], mirror[64];
	char *params = NULL;
	int r = -1;

	memset(fds, -1, sizeof(fds));
	t.features = NULL;
	if (attach_assembly(a, &t, fds, mirror, sizeof(mirror)))
		goto out;
	t.features = features_rebuild(a->features, mirror);
	params = t.features ? table_format(&t) : NULL;
	if (!params || dm_op_create(name, sectors, params))
		goto out;
	printf("Created /dev/mapper/%s: %s, %u layer%s, active layer %s", name,
	       size_str(sectors << 9, size, sizeof(size)), c->n,
	       c->n > 1 ? "s" : "", c->layer[c->n - 1].path);
	if (a->dest)
		printf(", copying to %s", a->dest->path);
	putchar('\n');
	r = 0;
out:
	free(params);
	free(t.features);
	close_fds(fds, c->n + 1);
	return r;
}

static int chain_build(struct chain *c, const struct chain_source *src)
{
	return src->n ? chain_from_list(c, src->paths, src->n, src->raw_base) :
			chain_discover(c, src->paths[0]);
}

/* The layers of c and the destination of a copy its top records. */
static int chain_lockset(const struct chain *c, struct lockset *ls,
			 char *dest)
{
	const struct layer *top = &c->layer[c->n - 1];
	struct job_record rec = { .present = false };
	struct obj_id id;
	unsigned int i;

	lockset_init(ls);
	for (i = 0; i < c->n; i++)
		if (obj_identity(c->layer[i].fd, c->layer[i].path, &id) ||
		    lockset_add_id(ls, &id, c->layer[i].path))
			return -1;
	if (!top->raw && job_record_get(&top->info, top->path, &rec))
		return -1;
	if (!rec.present || rec.type != DM_CHAIN_JOB_MIRROR || !rec.dest_hint[0])
		return 0;
	strcpy(dest, rec.dest_hint);
	return lockset_add_path(ls, dest);
}

/*
 * Read the chain, lock what it names, read it again: done when what was
 * read under the locks is what they cover (a concurrent table change of
 * another device may have relinked the layers before they were locked).
 */
#define CHAIN_LOCK_TRIES	5

int chain_open_locked(struct chain *c, const struct chain_source *src)
{
	char dest[DM_CHAIN_JOB_HINT_SIZE + 1];
	struct lockset ls;
	unsigned int tries;

	for (tries = 0;; tries++) {
		if (chain_build(c, src) || chain_lockset(c, &ls, dest))
			return -1;
		if (tries && lock_holds(&ls))
			break;
		if (tries == CHAIN_LOCK_TRIES) {
			errmsg(src->paths[0], "the chain changed %u times while chainadm read it (other chainadm commands are changing its layers): try again",
			       tries);
			return -1;
		}
		unlock_layers();
		if (lock_layers(&ls))
			return -1;
		chain_remove(c, 0, c->n - 1);
	}
	test_stall("locked");
	return 0;
}

int live_open(struct live *lv, const char *name)
{
	struct dm_target_line sline;
	int r;

	memset(lv, 0, sizeof(*lv));
	lv->name = name;
	if (dm_op_info(name, &lv->info) ||
	    load_chain_device(name, &lv->line, &lv->t))
		return -1;
	r = dm_op_status(name, &sline);
	if (!r && !sline.type) {
		errmsg(name, "has no live table");
		r = -1;
	}
	if (!r)
		r = status_parse(name, sline.params, &lv->s);
	dm_target_line_free(&sline);
	if (r)
		live_close(lv);
	return r;
}

void live_close(struct live *lv)
{
	dm_target_line_free(&lv->line);
	table_free(&lv->t);
}

int live_require_jobs(const struct live *lv)
{
	if (lv->s.job.supported)
		return 0;
	errmsg(lv->name, "the loaded dm-chain module has no block jobs (its status lacks the job fields of target version 1.1): load a newer dm-chain.ko");
	return -1;
}

int live_lock(struct live *lv, const char *name, const char *extra)
{
	struct lockset ls;
	unsigned int i;

	if (lock_device(name))
		return -1;
	if (live_open(lv, name))
		goto fail;
	lockset_init(&ls);
	for (i = 0; i < lv->t.n; i++)
		if (lockset_add_dev(&ls, lv->t.dev[i]))
			goto fail;
	if ((lv->t.mirror.present && lockset_add_dev(&ls, lv->t.mirror.dest)) ||
	    (extra && lockset_add_path(&ls, extra)) || lock_layers(&ls))
		goto fail;
	test_stall("locked");
	return 0;
fail:
	live_close(lv);
	unlock_all();
	return -1;
}

int live_relock(struct live *lv)
{
	const char *name = lv->name;

	live_close(lv);
	unlock_all();
	return live_lock(lv, name, NULL);
}

/* The commands that end the job js of device name. */
static void job_advice(const struct chain_job_status *js, const char *name,
		       char *buf, size_t len)
{
	if (!strcmp(js->phase, "completed"))
		snprintf(buf, len, "apply its table change with 'chainadm job %s --wait'",
			 name);
	else if (!strcmp(js->phase, "failed"))
		snprintf(buf, len, "retry it with 'chainadm job %s --resume --wait', or cancel it with 'chainadm job %s --abort'",
			 name, name);
	else if (!strcmp(js->phase, "paused"))
		snprintf(buf, len, "go on with 'chainadm job %s --resume --wait', or cancel it with 'chainadm job %s --abort'",
			 name, name);
	else if (job_has_ready(js->type))
		snprintf(buf, len, "end it with 'chainadm job %s --wait --pivot' (or --finish), or cancel it with 'chainadm job %s --abort'",
			 name, name);
	else
		snprintf(buf, len, "wait until it completes with 'chainadm job %s --wait', or cancel it with 'chainadm job %s --abort'",
			 name, name);
}

int live_require_idle(const struct live *lv, const char *refused)
{
	const struct chain_job_status *js = &lv->s.job;
	char advice[512];

	if (job_is_active(js)) {
		job_advice(js, lv->name, advice, sizeof(advice));
		errmsg(lv->name, "the %s job is %s: %s; %s", js->type, js->phase,
		       refused, advice);
		return -1;
	}
	if (lv->t.mirror.present) {
		errmsg(lv->name, "the table still names the destination of a cancelled copy: %s; end the copy with 'chainadm job %s --abort'",
		       refused, lv->name);
		return -1;
	}
	return 0;
}

/* "name[N]": 1 with *idx set, 0 if spec has not that form, -1. */
static int find_by_index(const struct live *lv, const char *spec,
			 const char *opt, unsigned int *idx)
{
	size_t len = strlen(spec), open = strcspn(spec, "[");
	unsigned long n;
	char *end;

	if (!len || spec[len - 1] != ']' || open == len)
		return 0;
	if (open != strlen(lv->name) || strncmp(spec, lv->name, open)) {
		errmsg(lv->name, "%s %s: names another device than %s; use %s[N] or a layer path",
		       opt, spec, lv->name, lv->name);
		return -1;
	}
	errno = 0;
	n = strtoul(spec + open + 1, &end, 10);
	if (errno || end == spec + open + 1 || end != spec + len - 1 ||
	    spec[open + 1] == '-') {
		errmsg(lv->name, "%s %s: the index is not a number: use %s[N], N = 0 for the active layer",
		       opt, spec, lv->name);
		return -1;
	}
	if (n >= lv->t.n) {
		errmsg(lv->name, "%s %s: the device has %u layer%s, %s[0] (active) to %s[%u] (bottom)",
		       opt, spec, lv->t.n, lv->t.n > 1 ? "s" : "", lv->name,
		       lv->name, lv->t.n - 1);
		return -1;
	}
	*idx = lv->t.n - 1 - n;
	return 1;
}

int live_find_layer(const struct live *lv, const char *spec, const char *opt,
		    unsigned int *idx)
{
	struct obj_id want, have;
	unsigned int i;
	int r = find_by_index(lv, spec, opt, idx);

	if (r)
		return r < 0 ? -1 : 0;
	if (obj_identity(-1, spec, &want)) {
		errmsg(lv->name, "%s %s: give the path of a layer or %s[N] (0 = active layer)",
		       opt, spec, lv->name);
		return -1;
	}
	for (i = 0; i < lv->t.n; i++) {
		if (dev_identity(lv->t.dev[i], &have))
			return -1;
		if (same_obj(&want, &have)) {
			*idx = i;
			return 0;
		}
	}
	errmsg(lv->name, "%s %s: is not a layer of this device: see chainadm status %s",
	       opt, spec, lv->name);
	return -1;
}

void live_describe(const struct live *lv, unsigned int idx, char *buf,
		   size_t len)
{
	char label[PATH_MAX];

	layer_label(lv->t.dev[idx], label, sizeof(label));
	snprintf(buf, len, "%s[%u] (%s)", lv->name, lv->t.n - 1 - idx, label);
}

int live_make_writable(struct live *lv, unsigned int idx, int *fd)
{
	char path[LAYER_DESC_LEN];
	struct obj_id id, now;
	dev_t dev;
	int ro = dev_read_only(lv->t.dev[idx]);

	*fd = -1;
	if (ro <= 0)
		return ro;
	if (dev_identity(lv->t.dev[idx], &id))
		return -1;
	live_describe(lv, idx, path, sizeof(path));
	if (!id.file) {
		errmsg(lv->name, "%s is a read-only block device and the job writes into it: make it writable (blockdev --setrw)",
		       path);
		return -1;
	}
	if (dev_label(lv->t.dev[idx], path, sizeof(path)))
		return -1;
	*fd = loop_attach(path, false, &dev);
	if (*fd < 0)
		return -1;
	if (dev_identity(dev, &now) || !same_obj(&id, &now)) {
		errmsg(path, "is not the file the device uses (renamed or replaced since it was attached?)");
		close(*fd);
		*fd = -1;
		return -1;
	}
	lv->t.dev[idx] = dev;
	return 0;
}

struct user_search {
	const char *self;
	const struct obj_id *id;
	char *who;
	size_t len;
	bool found;
};

static bool table_uses(const struct chain_table *t, const struct obj_id *id)
{
	struct obj_id have;
	unsigned int i;

	for (i = 0; i <= t->n; i++) {
		if (i == t->n && !t->mirror.present)
			break;
		if (!dev_identity(i < t->n ? t->dev[i] : t->mirror.dest, &have) &&
		    same_obj(&have, id))
			return true;
	}
	return false;
}

static int search_one(const char *name, void *arg)
{
	struct user_search *us = arg;
	struct dm_target_line line;
	struct chain_table t;

	if (!strcmp(name, us->self) || dm_op_table(name, &line))
		return 0;
	if (line.type && !strcmp(line.type, CHAIN_TARGET) &&
	    !table_parse(name, line.params, &t)) {
		if (table_uses(&t, us->id)) {
			snprintf(us->who, us->len, "%s", name);
			us->found = true;
		}
		table_free(&t);
	}
	dm_target_line_free(&line);
	return us->found;	/* non-zero stops the walk */
}

int find_other_user(const char *name, const struct obj_id *id, char *who,
		    size_t len)
{
	struct user_search us = { .self = name, .id = id, .who = who, .len = len };

	if (dm_op_list(search_one, &us) && !us.found)
		return -1;
	return us.found;
}

int change_begin(struct change *ch, struct live *lv)
{
	struct dm_target_line line;
	int same;

	memset(ch, 0, sizeof(*ch));
	ch->lv = lv;
	ch->fd = -1;
	txn_init(&ch->txn);
	if (dm_op_suspend(lv->name))
		return -1;
	/*
	 * Under the locks no chainadm swaps the table since we read it, but
	 * dmsetup may have.
	 */
	if (dm_op_table(lv->name, &line)) {
		resume_or_report(lv->name);
		return -1;
	}
	same = line.params && !strcmp(line.params, lv->line.params);
	dm_target_line_free(&line);
	if (!same) {
		errmsg(lv->name, "the table changed while chainadm worked on it (dmsetup by hand?): nothing done; look at chainadm status %s",
		       lv->name);
		resume_or_report(lv->name);
		return -1;
	}
	return 0;
}

/* Where to read and write the header of a table device: its file or node. */
static int header_path(dev_t dev, char *path, size_t len, struct obj_id *id)
{
	if (dev_identity(dev, id))
		return -1;
	return id->file ? dev_label(dev, path, len) : dev_path(dev, path, len);
}

int live_read_header(dev_t dev, struct layer *l)
{
	char path[PATH_MAX];
	struct obj_id id, have;

	if (header_path(dev, path, sizeof(path), &id) ||
	    layer_open(l, path, O_RDONLY | O_DIRECT))
		return -1;
	if (obj_identity(l->fd, path, &have) || !same_obj(&id, &have)) {
		errmsg(path, "is not the file the device uses (renamed or replaced since it was attached?)");
		layer_close(l);
		return -1;
	}
	if (layer_load_header(l)) {
		layer_close(l);
		return -1;
	}
	return 0;
}

struct layer *change_layer(struct change *ch, dev_t dev)
{
	char path[PATH_MAX];
	struct obj_id id;

	if (header_path(dev, path, sizeof(path), &id))
		return NULL;
	return txn_open(&ch->txn, path, &id);
}

static void change_cancel(struct change *ch)
{
	bool wrote = ch->txn.nlog;

	if (ch->on_cancel)
		ch->on_cancel(ch);
	if (txn_undo(&ch->txn) || dm_op_resume(ch->lv->name)) {
		errmsg(ch->lv->name, "the device may stay suspended: check it with chainadm status %s and resume it with 'dmsetup resume %s'",
		       ch->lv->name, ch->lv->name);
		return;
	}
	if (wrote)
		errmsg(ch->lv->name, "nothing changed: the headers written were restored and the old table resumed");
}

int change_commit(struct change *ch)
{
	const char *name = ch->lv->name;

	/* No new table: a step failed (and said why). */
	if (!ch->params || dm_op_load(name, ch->lv->line.len, ch->params)) {
		change_cancel(ch);
		return -1;
	}
	if (dm_op_resume(name)) {
		dm_op_clear(name);
		change_cancel(ch);
		return -1;
	}
	return 0;
}

void change_end(struct change *ch)
{
	txn_close(&ch->txn);
	free(ch->params);
	ch->params = NULL;
	if (ch->fd >= 0)
		close(ch->fd);
	ch->fd = -1;
}

char *table_without(const struct live *lv, unsigned int keep_low,
		    unsigned int keep_high, const char *extra_features)
{
	const struct chain_table *old = &lv->t;
	struct chain_table t = { .n = 0 };
	unsigned int i;
	char *params;

	for (i = 0; i < old->n; i++)
		if ((keep_low != NO_LAYER && i <= keep_low) || i >= keep_high)
			t.dev[t.n++] = old->dev[i];
	t.raw_base = old->raw_base && keep_low != NO_LAYER;
	t.features = features_rebuild(old->features, extra_features);
	if (!t.features)
		return NULL;
	params = table_format(&t);
	free(t.features);
	return params;
}
