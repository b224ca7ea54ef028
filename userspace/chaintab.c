// SPDX-License-Identifier: GPL-2.0-only
/*
 * /etc/chaintab: reading it, and rewriting one device's line when its top
 * layer changes; see chaintab.h.
 *
 * A rewrite writes the whole file anew beside the old one, syncs it,
 * renames it over the old one and syncs the directory: after a crash the
 * file is the old one or the new one, whole.  Rewrites of two chainadm
 * (two devices) are ordered by a lock of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "chainadm.h"
#include "chaintab.h"
#include "lock.h"

#define SPACE	" \t\r"	/* a line of a file edited elsewhere may end in CR */

const char *chaintab_path(void)
{
	const char *env = getenv("CHAINADM_CHAINTAB");

	return env && *env ? env : CHAINTAB_DEFAULT;
}

int abs_path(const char *path, char *buf, size_t len)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		if (strlen(path) >= len)
			goto too_long;
		strcpy(buf, path);
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd))) {
		errmsg(path, "cannot make the path absolute: %s", strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(buf, len, "%s/%s", strcmp(cwd, "/") ? cwd : "",
			     path) < len)
		return 0;
too_long:
	errmsg(path, "path too long");
	return -1;
}

/* The option words of a line, as create's options name them. */
static const struct {
	const char *opt;
	const char *feature;	/* table feature, NULL: not one */
} options[] = {
	{ "raw", NULL },
	{ "noauto", NULL },
	{ "_netdev", NULL },
	{ "defaults", NULL },
	{ "ignore-discard", "ignore_discard" },
	{ "no-discard-passdown", "no_discard_passdown" },
	{ "error-if-no-space", "error_if_no_space" },
	{ "no-space-timeout", "no_space_timeout" },
};

static int line_error(const struct chaintab *t, unsigned int line,
		      const char *fmt, const char *arg)
{
	char where[PATH_MAX + 16];

	if (t->quiet)
		return -1;
	snprintf(where, sizeof(where), "%s:%u", t->path, line);
	errmsg(where, fmt, arg);
	return -1;
}

/* One option word into e; the features are counted in *nfeat. */
static int parse_option(const struct chaintab *t, struct chaintab_entry *e,
			const char *word, unsigned int *nfeat)
{
	size_t klen = strcspn(word, "=");
	const char *val = word[klen] ? word + klen + 1 : NULL;
	size_t used = strlen(e->features);
	unsigned long secs = 0;
	unsigned int i;
	char *end;

	for (i = 0; i < sizeof(options) / sizeof(options[0]); i++)
		if (strlen(options[i].opt) == klen &&
		    !strncmp(options[i].opt, word, klen))
			break;
	if (i == sizeof(options) / sizeof(options[0]))
		return line_error(t, e->line, "unknown option '%s': the options are raw, noauto, _netdev, ignore-discard, no-discard-passdown, error-if-no-space and no-space-timeout=<seconds>",
				  word);
	if (!strcmp(options[i].opt, "no-space-timeout")) {
		errno = 0;
		secs = val && *val ? strtoul(val, &end, 10) : 0;
		if (!val || !*val || *end || errno || secs > 0xffffffffUL ||
		    *val == '-')
			return line_error(t, e->line, "'%s': no-space-timeout takes a number of seconds (no-space-timeout=60)",
					  word);
	} else if (val) {
		return line_error(t, e->line, "'%s': this option takes no value",
				  word);
	}
	if (!strcmp(word, "raw"))
		e->raw = true;
	else if (!strcmp(word, "noauto"))
		e->noauto = true;
	else if (!strcmp(word, "_netdev"))
		e->netdev = true;
	if (!options[i].feature)
		return 0;
	if (strstr(e->features, options[i].feature))
		return line_error(t, e->line, "option '%s' given twice", word);
	if (val)
		snprintf(e->features + used, sizeof(e->features) - used,
			 " %s:%lu", options[i].feature, secs);
	else
		snprintf(e->features + used, sizeof(e->features) - used, " %s",
			 options[i].feature);
	(*nfeat)++;
	return 0;
}

/* Fields of a line: start and length of up to 4. */
static unsigned int split(const char *s, const char **f, size_t *len)
{
	unsigned int n = 0;

	for (;;) {
		s += strspn(s, SPACE);
		if (!*s || n == 4)
			return n;
		f[n] = s;
		len[n] = strcspn(s, SPACE);
		s += len[n++];
	}
}

/* 1: the line is an entry (in e), 0: blank or comment, -1: refused. */
static int parse_line(const struct chaintab *t, char *text, unsigned int line,
		      struct chaintab_entry *e)
{
	const char *f[4];
	size_t len[4];
	unsigned int n, nfeat = 0;
	char opts[512], *word, *save;
	char feat[CHAINTAB_FEATURES_LEN];

	text[strcspn(text, "\n")] = '\0';
	n = split(text, f, len);
	if (!n || f[0][0] == '#')
		return 0;
	memset(e, 0, sizeof(*e));
	e->line = line;
	if (n < 2)
		return line_error(t, line, "'%s' names no top layer: a line is '<name> <top-layer> [<options>]'",
				  text + strspn(text, SPACE));
	if (n > 3)
		return line_error(t, line, "more than three fields from '%s': a line is '<name> <top-layer> [<options>]'; a path cannot hold spaces",
				  f[3]);	/* the rest of the line */
	if (len[0] >= sizeof(e->name) || memchr(f[0], '/', len[0])) {
		snprintf(opts, sizeof(opts), "%.*s", (int)len[0], f[0]);
		return line_error(t, line, "'%s' is not a device name (no '/', at most 127 bytes)",
				  opts);
	}
	memcpy(e->name, f[0], len[0]);
	if (f[1][0] != '/' || len[1] >= sizeof(e->top)) {
		snprintf(opts, sizeof(opts), "%.*s", (int)len[1], f[1]);
		return line_error(t, line, "the top layer must be an absolute path, not '%s'",
				  opts);
	}
	memcpy(e->top, f[1], len[1]);
	if (n == 3) {
		if (len[2] >= sizeof(opts))
			return line_error(t, line, "the options are longer than %s bytes",
					  "511");
		memcpy(opts, f[2], len[2]);
		opts[len[2]] = '\0';
		for (word = strtok_r(opts, ",", &save); word;
		     word = strtok_r(NULL, ",", &save))
			if (parse_option(t, e, word, &nfeat))
				return -1;
	}
	if (nfeat) {
		snprintf(feat, sizeof(feat), "%u%s", nfeat, e->features);
		strcpy(e->features, feat);
	}
	return 1;
}

int chaintab_read(struct chaintab *t)
{
	struct chaintab_entry e, *grown;
	unsigned int line = 0, i;
	char *text = NULL;
	size_t cap = 0;
	FILE *f;
	int r;

	memset(t, 0, sizeof(*t));
	t->path = chaintab_path();
	f = fopen(t->path, "re");
	if (!f) {
		if (errno == ENOENT) {
			t->missing = true;
			return 0;
		}
		errmsg(t->path, "cannot open: %s", strerror(errno));
		return -1;
	}
	while (getline(&text, &cap, f) > 0) {
		r = parse_line(t, text, ++line, &e);
		if (r < 0)
			t->bad = true;
		if (r <= 0)
			continue;
		for (i = 0; i < t->n; i++)
			if (!strcmp(t->e[i].name, e.name))
				break;
		if (i < t->n) {
			char other[32];

			snprintf(other, sizeof(other), "%u", t->e[i].line);
			line_error(t, line, "names a device already listed on line %s: one line per device",
				   other);
			t->bad = true;
			continue;
		}
		grown = realloc(t->e, (t->n + 1) * sizeof(*t->e));
		if (!grown) {
			errmsg(t->path, "out of memory");
			t->bad = true;
			break;
		}
		t->e = grown;
		t->e[t->n++] = e;
	}
	free(text);
	fclose(f);
	return 0;
}

void chaintab_free(struct chaintab *t)
{
	free(t->e);
	t->e = NULL;
	t->n = 0;
}

/*
 * The line text (no newline) with its top and raw option changed into
 * out; the rest of the line stays as it was.
 */
static int rewrite_line(const char *text, const char *top, bool raw,
			char *out, size_t len)
{
	const char *f[4];
	size_t flen[4];
	char opts[512] = "", copy[512], *word, *save;
	unsigned int n = split(text, f, flen);
	bool had_raw = false;
	size_t used = 0;

	if (n == 3) {
		snprintf(copy, sizeof(copy), "%.*s", (int)flen[2], f[2]);
		for (word = strtok_r(copy, ",", &save); word;
		     word = strtok_r(NULL, ",", &save)) {
			if (!strcmp(word, "raw")) {
				had_raw = true;
				continue;
			}
			if (!strcmp(word, "defaults"))
				continue;
			used += snprintf(opts + used, sizeof(opts) - used, "%s%s",
					 used ? "," : "", word);
		}
	}
	if (raw == had_raw)	/* the options stay as written */
		return snprintf(out, len, "%.*s%s%s", (int)(f[1] - text), text,
				top, f[1] + flen[1]) < (int)len ? 0 : -1;
	return snprintf(out, len, "%.*s%s%s%s%s%s", (int)(f[1] - text), text,
			top, raw || used ? " " : "", raw ? "raw" : "",
			raw && used ? "," : "", opts) < (int)len ? 0 : -1;
}

/* Write content as the new path: a new file, synced, renamed over it. */
static int replace_file(const char *path, const struct stat *st,
			const char *content, size_t size)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, dfd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.chainadm-XXXXXX", path) >=
	    sizeof(tmp)) {
		errmsg(path, "path too long");
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		errmsg(tmp, "cannot create the new chaintab beside the old one: %s",
		       strerror(errno));
		return -1;
	}
	if (fchmod(fd, st->st_mode & 07777) ||
	    (fchown(fd, st->st_uid, st->st_gid) && errno != EPERM) ||
	    write(fd, content, size) != (ssize_t)size || fsync(fd)) {
		errmsg(tmp, "cannot write the new chaintab: %s", strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if (rename(tmp, path)) {
		errmsg(path, "cannot replace it by %s: %s", tmp, strerror(errno));
		goto out;
	}
	/* Renamed: the new line is what a reader finds; make it durable. */
	snprintf(dir, sizeof(dir), "%s", path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd))
		warnmsg(path, "rewritten, but its directory cannot be synced (%s): a crash may bring back the old file",
			strerror(errno));
	if (dfd >= 0)
		close(dfd);
	return 0;
out:
	unlink(tmp);
	return -1;
}

/* Whether block device dev is busy or stands on it (its slaves, down). */
static bool stands_on(dev_t dev, dev_t busy, unsigned int depth)
{
	char dir[64], path[PATH_MAX], text[32];
	unsigned int maj, min;
	struct dirent *d;
	bool found = false;
	DIR *sd;
	FILE *f;

	if (dev == busy)
		return true;
	if (depth > 16)
		return false;
	snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u/slaves", major(dev),
		 minor(dev));
	sd = opendir(dir);
	if (!sd)
		return false;
	while (!found && (d = readdir(sd))) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/block/%s/dev", d->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(text, sizeof(text), f) &&
		    sscanf(text, "%u:%u", &maj, &min) == 2)
			found = stands_on(makedev(maj, min), busy, depth + 1);
		fclose(f);
	}
	closedir(sd);
	return found;
}

/*
 * Refuse to write a file on the device the caller holds suspended, or on
 * a device stacked on it (LVM, dm-crypt, a partition): the write would
 * wait for the resume that comes after it.  A file system on no block
 * device of its own (btrfs, tmpfs: major 0) is not followed.
 */
static int check_not_on(const char *path, dev_t busy)
{
	char dir[PATH_MAX];
	struct stat st;

	if (!busy)
		return 0;
	snprintf(dir, sizeof(dir), "%s", path);
	if (stat(dirname(dir), &st) || !stands_on(st.st_dev, busy, 0))
		return 0;	/* replace_file() says what else fails */
	errmsg(path, "is on the device being switched, which is suspended: it cannot be rewritten now; keep the chaintab on another file system");
	return -1;
}

/*
 * Whether text (one line of the file) is the entry of name, in e: 1 yes,
 * 0 no, -1 it names the device but does not parse (reported).
 */
static int entry_of(struct chaintab *probe, const char *text, unsigned int nr,
		    const char *name, struct chaintab_entry *e)
{
	size_t nlen = strlen(name), skip = strspn(text, SPACE);
	char *copy;
	int r;

	/* Only a line whose first field is name can be its entry. */
	if (strncmp(text + skip, name, nlen) ||
	    (text[skip + nlen] && !strchr(SPACE "\n", text[skip + nlen])))
		return 0;
	copy = strdup(text);
	if (!copy) {
		errmsg(probe->path, "out of memory");
		return -1;
	}
	r = parse_line(probe, copy, nr, e);
	free(copy);
	if (r == 1)
		return 1;
	if (r == 0)
		return 0;	/* a comment */
	probe->quiet = false;
	copy = strdup(text);
	if (copy)
		parse_line(probe, copy, nr, e);	/* now say why */
	free(copy);
	probe->quiet = true;
	errmsg(probe->path, "line %u names %s but is refused (see above): fix it to name its top layer",
	       nr, name);
	return -1;
}

/* Whether a line of the file starts with name (the file as it is now). */
static bool listed(const char *path, const char *name)
{
	size_t nlen = strlen(name), cap = 0, skip;
	bool found = false;
	char *text = NULL;
	FILE *f = fopen(path, "re");

	if (!f)
		return errno != ENOENT;	/* let the rewrite say what is wrong */
	while (!found && getline(&text, &cap, f) > 0) {
		skip = strspn(text, SPACE);
		found = !strncmp(text + skip, name, nlen) &&
			(!text[skip + nlen] || strchr(SPACE "\n", text[skip + nlen]));
	}
	free(text);
	fclose(f);
	return found;
}

/* The same file or block device. */
static bool same_object(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) || stat(b, &sb))
		return false;
	if (S_ISBLK(sa.st_mode) || S_ISBLK(sb.st_mode))
		return S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode) &&
		       sa.st_rdev == sb.st_rdev;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int chaintab_follow(const char *name, const char *top, bool raw, dev_t busy)
{
	char path[PATH_MAX], line[PATH_MAX + 1024], *buf = NULL, *text = NULL;
	struct chaintab probe = { .path = path, .quiet = true };
	struct chaintab_entry e;
	size_t cap = 0, size = 0, len;
	unsigned int nr = 0;
	bool found = false, same = false, nl;
	const char *put;
	struct stat st;
	char *grown;
	ssize_t n;
	FILE *f;
	int lfd, got, r = -1;

	/* A symbolic link is followed: the file it names is rewritten. */
	if (!realpath(chaintab_path(), path)) {
		if (errno == ENOENT)
			return 0;
		snprintf(path, sizeof(path), "%s", chaintab_path());
	}
	/* Most devices have no line: then no lock, and nothing to wait for. */
	if (!listed(path, name))
		return 0;
	lfd = busy ? lock_brief_timed("chaintab", path, 10000) :
		     lock_brief("chaintab", path);
	if (lfd < 0)
		return -1;
	f = fopen(path, "re");
	if (!f) {
		r = errno == ENOENT ? 0 : -1;
		if (r)
			errmsg(path, "cannot open: %s", strerror(errno));
		goto unlock;
	}
	if (fstat(fileno(f), &st)) {
		errmsg(path, "cannot stat: %s", strerror(errno));
		goto close;
	}
	/* The whole file again, with the line of name replaced. */
	while ((n = getline(&text, &cap, f)) > 0) {
		put = text;
		len = n;
		nr++;
		got = found ? 0 : entry_of(&probe, text, nr, name, &e);
		if (got < 0)
			goto close;
		if (got) {
			found = true;
			same = (!strcmp(e.top, top) || same_object(e.top, top)) &&
			       e.raw == raw;
			if (same)
				break;
			if (strpbrk(top, SPACE "\n") || top[0] != '/') {
				errmsg(top, "cannot be written in %s: the top layer there is an absolute path without blanks",
				       path);
				goto close;
			}
			nl = text[len - 1] == '\n';
			text[len - nl] = '\0';
			if (rewrite_line(text, top, raw, line, sizeof(line) - 1)) {
				errmsg(path, "line %u would be too long", nr);
				goto close;
			}
			if (nl)
				strcat(line, "\n");
			put = line;
			len = strlen(line);
		}
		grown = realloc(buf, size + len);
		if (!grown) {
			errmsg(path, "out of memory");
			goto close;
		}
		buf = grown;
		memcpy(buf + size, put, len);
		size += len;
	}
	if (!same && ferror(f)) {
		errmsg(path, "cannot read: %s", strerror(errno));
		goto close;
	}
	if (!found || same) {
		r = 0;	/* not listed, or listed with this top already */
		goto close;
	}
	r = check_not_on(path, busy) || replace_file(path, &st, buf, size) ?
	    -1 : 0;
	if (!r)
		printf("%s: %s now starts at %s%s\n", path, name, top,
		       raw ? " (a lone raw device)" : "");
close:
	fclose(f);
unlock:
	lock_brief_release(lfd);
	free(text);
	free(buf);
	return r;
}
