// SPDX-License-Identifier: GPL-2.0-only
/*
 * Offline chain assembly and verification; see chain.h.
 *
 * Both forms build the chain top-down, so that each new (lower) layer is
 * checked against the upper one that names it, then reverse it to the
 * bottom-first order of the kernel table.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chain.h"

struct chain *chain_alloc(void)
{
	struct chain *c = calloc(1, sizeof(*c));

	if (!c)
		errmsg("chain", "out of memory");
	return c;
}

void chain_free(struct chain *c)
{
	unsigned int i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		layer_close(&c->layer[i]);
	free(c);
}

static int check_raw_link(const struct layer *raw, const struct layer *upper)
{
	if (upper->info.backing_type != DM_CHAIN_BACKING_RAW) {
		errmsg(upper->path, "backing type is %s, but %s is given below it as a raw device",
		       backing_type_name(upper->info.backing_type), raw->path);
		return -1;
	}
	if (raw->size < upper->info.virtual_size) {
		errmsg(raw->path, "raw base is %llu bytes, smaller than the virtual size %llu of %s",
		       (unsigned long long)raw->size,
		       (unsigned long long)upper->info.virtual_size, upper->path);
		return -1;
	}
	return 0;
}

static int check_chain_link(const struct layer *lower, const struct layer *upper)
{
	const struct dm_chain_layer_info *li = &lower->info, *ui = &upper->info;
	char want[UUID_STR_LEN], have[UUID_STR_LEN];

	if (ui->backing_type != DM_CHAIN_BACKING_CHAIN) {
		errmsg(upper->path, "backing type is %s, but %s is given below it as a chain layer",
		       backing_type_name(ui->backing_type), lower->path);
		return -1;
	}
	if (memcmp(li->uuid, ui->backing_uuid, DM_CHAIN_UUID_SIZE)) {
		uuid_str(ui->backing_uuid, want);
		uuid_str(li->uuid, have);
		errmsg(upper->path, "backing UUID mismatch: expects %s, but %s has UUID %s: wrong or replaced layer; list the layers with create --layers",
		       want, lower->path, have);
		return -1;
	}
	if (li->cluster_size != ui->cluster_size) {
		errmsg(upper->path, "cluster size %u differs from %u of its backing layer %s: one cluster size per chain",
		       ui->cluster_size, li->cluster_size, lower->path);
		return -1;
	}
	if (li->virtual_size != ui->virtual_size) {
		errmsg(upper->path, "virtual size %llu differs from %llu of its backing layer %s: one size per chain",
		       (unsigned long long)ui->virtual_size,
		       (unsigned long long)li->virtual_size, lower->path);
		return -1;
	}
	return 0;
}

/* A UUID met twice means a loop of backing hints or a layer listed twice. */
static int check_unique(const struct chain *c, const struct layer *l)
{
	char u[UUID_STR_LEN];
	unsigned int i;

	for (i = 0; i < c->n; i++) {
		if (c->layer[i].raw ||
		    memcmp(c->layer[i].info.uuid, l->info.uuid, DM_CHAIN_UUID_SIZE))
			continue;
		uuid_str(l->info.uuid, u);
		errmsg(c->layer[0].path, "backing chain loops: layer UUID %s appears twice (%s and %s)",
		       u, c->layer[i].path, l->path);
		return -1;
	}
	return 0;
}

static int check_link(const struct chain *c, const struct layer *l)
{
	const struct layer *upper;

	if (!c->n)
		return 0;
	upper = &c->layer[c->n - 1];
	if (l->raw)
		return check_raw_link(l, upper);
	return check_chain_link(l, upper) || check_unique(c, l) ? -1 : 0;
}

/* Open path as the layer below the current lowest one and verify it. */
static int push_lower(struct chain *c, const char *path, bool raw)
{
	struct layer *l = &c->layer[c->n];

	if (c->n == DM_CHAIN_MAX_LAYERS) {
		errmsg(c->layer[0].path, "backing chain is deeper than %u layers",
		       DM_CHAIN_MAX_LAYERS);
		return -1;
	}
	if (layer_open(l, path, O_RDONLY))
		return -1;
	l->raw = raw;
	if ((!raw && layer_load_header(l)) || check_link(c, l)) {
		layer_close(l);
		return -1;
	}
	c->n++;
	return 0;
}

static void reverse(struct chain *c)
{
	unsigned int i;

	for (i = 0; i < c->n / 2; i++) {
		struct layer t = c->layer[i];

		c->layer[i] = c->layer[c->n - 1 - i];
		c->layer[c->n - 1 - i] = t;
	}
}

/* A relative hint is relative to the directory of the layer holding it. */
static int resolve_hint(const struct layer *upper, char *path, size_t len)
{
	const char *hint = upper->info.backing_hint;
	const char *slash = strrchr(upper->path, '/');
	int n;

	if (!*hint) {
		errmsg(upper->path, "has a backing layer but no backing hint: list the layers with create --layers");
		return -1;
	}
	if (*hint == '/' || !slash)
		n = snprintf(path, len, "%s", hint);
	else
		n = snprintf(path, len, "%.*s/%s", (int)(slash - upper->path),
			     upper->path, hint);
	if (n < 0 || (size_t)n >= len) {
		errmsg(upper->path, "backing hint is too long");
		return -1;
	}
	return 0;
}

int chain_discover(struct chain *c, const char *top)
{
	char path[PATH_MAX];
	const struct layer *upper;

	if (push_lower(c, top, false))
		return -1;
	for (;;) {
		upper = &c->layer[c->n - 1];
		if (upper->raw ||
		    upper->info.backing_type == DM_CHAIN_BACKING_NONE)
			break;
		if (resolve_hint(upper, path, sizeof(path)) ||
		    push_lower(c, path,
			       upper->info.backing_type == DM_CHAIN_BACKING_RAW))
			return -1;
	}
	reverse(c);
	return 0;
}

/* One file or block device, whatever path names it. */
static bool same_object(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return S_ISREG(a->st_mode) && S_ISREG(b->st_mode) &&
	       a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * Refuse a layer listed twice before opening anything, so that the user
 * is told about the duplicate rather than about the broken link it makes.
 * A path that cannot be stat'ed is left to layer_open() to report.
 */
static int check_list_unique(char *const *paths, unsigned int n)
{
	struct stat *st = calloc(n, sizeof(*st));
	bool *ok = calloc(n, sizeof(*ok));
	unsigned int i, j;
	int r = 0;

	if (!st || !ok) {
		errmsg("chain", "out of memory");
		r = -1;
		goto out;
	}
	for (i = 0; i < n; i++)
		ok[i] = !stat(paths[i], &st[i]);
	for (j = 1; j < n && !r; j++)
		for (i = 0; i < j && !r; i++)
			if (ok[i] && ok[j] && same_object(&st[i], &st[j])) {
				errmsg(paths[j], "appears twice in the list (layers %u and %u, as %s and %s): list each layer once",
				       i, j, paths[i], paths[j]);
				r = -1;
			}
out:
	free(st);
	free(ok);
	return r;
}

int chain_from_list(struct chain *c, char *const *paths, unsigned int n,
		    bool raw_base)
{
	const struct layer *bottom;
	unsigned int i;

	if (check_list_unique(paths, n))
		return -1;
	for (i = n; i-- > 0;)
		if (push_lower(c, paths[i], raw_base && !i))
			return -1;
	bottom = &c->layer[c->n - 1];
	if (!bottom->raw && bottom->info.backing_type != DM_CHAIN_BACKING_NONE) {
		errmsg(bottom->path, "has a %s backing layer (hint '%s') but is listed at the bottom: list every layer",
		       backing_type_name(bottom->info.backing_type),
		       bottom->info.backing_hint);
		return -1;
	}
	reverse(c);
	return 0;
}

void chain_remove(struct chain *c, unsigned int from, unsigned int to)
{
	unsigned int i;

	for (i = from; i <= to; i++)
		layer_close(&c->layer[i]);
	memmove(&c->layer[from], &c->layer[to + 1],
		(c->n - to - 1) * sizeof(c->layer[0]));
	c->n -= to - from + 1;
}

int chain_push_top(struct chain *c, const char *path, bool raw)
{
	struct layer *l = &c->layer[c->n];
	const struct layer *lower = c->n ? &c->layer[c->n - 1] : NULL;
	int r = 0;

	if (c->n == DM_CHAIN_MAX_LAYERS) {
		errmsg(path, "the chain would be deeper than %u layers",
		       DM_CHAIN_MAX_LAYERS);
		return -1;
	}
	if (raw && lower) {
		errmsg(path, "a raw device can only be the bottom layer");
		return -1;
	}
	if (layer_open(l, path, O_RDONLY))
		return -1;
	l->raw = raw;
	if (!raw)
		r = layer_load_header(l);
	if (!r && !raw && lower)
		r = lower->raw ? check_raw_link(lower, l) :
		    check_chain_link(lower, l) || check_unique(c, l) ? -1 : 0;
	if (!r && !raw && !lower &&
	    l->info.backing_type != DM_CHAIN_BACKING_NONE) {
		errmsg(path, "has a backing layer (hint '%s') but is the only layer",
		       l->info.backing_hint);
		r = -1;
	}
	if (r) {
		layer_close(l);
		return -1;
	}
	c->n++;
	return 0;
}

int chain_check_usable(const struct chain *c)
{
	unsigned int i;

	for (i = 0; i < c->n; i++) {
		const struct layer *l = &c->layer[i];

		if (l->raw)
			continue;
		if (l->info.flags & DM_CHAIN_FLAG_NEEDS_CHECK) {
			errmsg(l->path, "marked needs-check: run chainadm check --clear-needs-check %s",
			       l->path);
			return -1;
		}
		if (l->info.flags & DM_CHAIN_FLAG_INVALIDATED) {
			errmsg(l->path, "invalidated by a commit into a lower layer: drop it from the chain");
			return -1;
		}
		if (l->info.flags & DM_CHAIN_FLAG_COPY_DEST) {
			errmsg(l->path, "the unfinished destination of a copy (cut short before its pivot or finish): copy into it again with 'chainadm copy --reuse-external', or format it anew");
			return -1;
		}
	}
	return 0;
}
