// SPDX-License-Identifier: GPL-2.0-only
/*
 * Table and status lines of the chain target; see table.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "table.h"

#define MIRROR_WORDS	4

static bool is_job_word(const char *w)
{
	return !strcmp(w, "dest_zeroed") || !strncmp(w, "bandwidth:", 10);
}

/*
 * Call fn for every feature word, the count skipped; a mirror is passed
 * as its four words at once (words[0..3]).  Stops at the first non-zero
 * return.
 */
static int for_each_feature(const char *features,
			    int (*fn)(char **words, unsigned int n, void *arg),
			    void *arg)
{
	char *copy = strdup(features), *save = NULL, *w[MIRROR_WORDS];
	unsigned int i, n;
	int r = 0;

	if (!copy)
		return -1;
	/* The first word is the count. */
	w[0] = strtok_r(copy, " ", &save);
	while (!r && w[0] && (w[0] = strtok_r(NULL, " ", &save))) {
		n = strcmp(w[0], "mirror") ? 1 : MIRROR_WORDS;
		for (i = 1; i < n; i++)
			if (!(w[i] = strtok_r(NULL, " ", &save)))
				break;
		r = i < n ? -1 : fn(w, n, arg);
	}
	free(copy);
	return r;
}

static int parse_mirror(char **w, unsigned int n, void *arg)
{
	struct chain_mirror *m = arg;
	unsigned int maj, min;

	if (n != MIRROR_WORDS)
		return 0;
	if (sscanf(w[1], "%u:%u", &maj, &min) != 2 ||
	    (strcmp(w[2], "raw") && strcmp(w[2], "chain")) ||
	    (strcmp(w[3], "full") && strcmp(w[3], "shallow")))
		return -1;
	m->present = true;
	m->dest = makedev(maj, min);
	m->raw = !strcmp(w[2], "raw");
	m->shallow = !strcmp(w[3], "shallow");
	return 0;
}

struct rebuild {
	char *buf;
	size_t len;
	unsigned int count;
};

static void append(struct rebuild *rb, const char *w)
{
	size_t used = strlen(rb->buf);

	snprintf(rb->buf + used, rb->len - used, " %s", w);
	rb->count++;
}

static int keep_word(char **w, unsigned int n, void *arg)
{
	if (n == 1 && !is_job_word(w[0]))
		append(arg, w[0]);
	return 0;
}

char *features_rebuild(const char *features, const char *extra)
{
	struct rebuild rb = { .len = strlen(features) + strlen(extra) + 16 };
	char *words = strdup(extra), *save = NULL, *w, *out;

	rb.buf = calloc(1, rb.len);
	out = malloc(rb.len + 16);
	if (!words || !rb.buf || !out || for_each_feature(features, keep_word, &rb)) {
		errmsg("table", "cannot rebuild the feature arguments '%s'", features);
		free(out);
		out = NULL;
		goto done;
	}
	for (w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
		append(&rb, w);
	if (rb.count)
		snprintf(out, rb.len + 16, "%u%s", rb.count, rb.buf);
	else
		*out = '\0';
done:
	free(words);
	free(rb.buf);
	return out;
}

void mirror_words(const struct chain_mirror *m, char *buf, size_t len)
{
	snprintf(buf, len, "mirror %u:%u %s %s", major(m->dest), minor(m->dest),
		 m->raw ? "raw" : "chain", m->shallow ? "shallow" : "full");
}

int table_parse(const char *name, const char *params, struct chain_table *t)
{
	const char *p = params;
	unsigned int i, maj, min;
	char base[8];
	int off;

	memset(t, 0, sizeof(*t));
	if (sscanf(p, "%u %7s%n", &t->n, base, &off) != 2 ||
	    !t->n || t->n > DM_CHAIN_MAX_LAYERS ||
	    (strcmp(base, "raw") && strcmp(base, "chain")))
		goto bad;
	t->raw_base = !strcmp(base, "raw");
	for (i = 0, p += off; i < t->n; i++, p += off) {
		if (sscanf(p, " %u:%u%n", &maj, &min, &off) != 2)
			goto bad;
		t->dev[i] = makedev(maj, min);
	}
	p += strspn(p, " ");
	t->features = strdup(p);
	if (!t->features) {
		errmsg(name, "out of memory");
		return -1;
	}
	if (for_each_feature(t->features, parse_mirror, &t->mirror)) {
		table_free(t);
		goto bad;
	}
	return 0;
bad:
	errmsg(name, "cannot parse the table '%s': not a chain table of this version",
	       params);
	return -1;
}

char *table_format(const struct chain_table *t)
{
	size_t len = 32 + t->n * 24 + strlen(t->features);
	char *s = malloc(len), *p = s;
	unsigned int i;

	if (!s) {
		errmsg("table", "out of memory");
		return NULL;
	}
	p += sprintf(p, "%u %s", t->n, t->raw_base ? "raw" : "chain");
	for (i = 0; i < t->n; i++)
		p += sprintf(p, " %u:%u", major(t->dev[i]), minor(t->dev[i]));
	if (*t->features)
		sprintf(p, " %s", t->features);
	return s;
}

void table_free(struct chain_table *t)
{
	free(t->features);
	t->features = NULL;
}

/* The seven job fields after the first six, if the kernel has them. */
static int parse_job_fields(const char *p, struct chain_job_status *j)
{
	unsigned long long done, total, rate, bw, errors;
	char last[16];
	int n;

	n = sscanf(p, " %15s %15s %llu/%llu %llu %llu %llu %15s", j->type,
		   j->phase, &done, &total, &rate, &bw, &errors, last);
	if (n == EOF || n <= 0)
		return 0;	/* a module without block jobs */
	if (n != 8)
		return -1;
	j->supported = true;
	j->done = done;
	j->total = total;
	j->rate = rate;
	j->bandwidth = bw;
	j->errors = errors;
	if (strcmp(last, "-")) {
		j->last_error = atoi(last);
		if (j->last_error < 0)
			j->last_error = -j->last_error;
	}
	return 0;
}

/* Fields may be appended by later versions: parse the leading 6 + 7. */
int status_parse(const char *name, const char *params, struct chain_status *s)
{
	char cs[24], alloc[48], check[16], space[8];
	unsigned long long a, b;
	int off;

	memset(s, 0, sizeof(*s));
	if (sscanf(params, "%u %23s %47s %7s %15s %7s%n", &s->n, cs, alloc,
		   s->mode, check, space, &off) != 6 ||
	    parse_job_fields(params + off, &s->job))
		goto bad;
	s->has_clusters = strcmp(cs, "-");
	if (s->has_clusters) {
		if (sscanf(alloc, "%llu/%llu", &a, &b) != 2)
			goto bad;
		s->cluster_sectors = strtoull(cs, NULL, 10);
		s->allocated = a;
		s->total = b;
	}
	s->needs_check = !strcmp(check, "needs_check");
	s->full = !strcmp(space, "full");
	return 0;
bad:
	errmsg(name, "cannot parse the status '%s': not a chain status of this version",
	       params);
	return -1;
}
