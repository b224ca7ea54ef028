// SPDX-License-Identifier: GPL-2.0-only
/*
 * Table and status lines of the chain target; see table.h.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "table.h"

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

/* Fields may be appended by later versions: parse the leading six. */
int status_parse(const char *name, const char *params, struct chain_status *s)
{
	char cs[24], alloc[48], check[16], space[8];
	unsigned long long a, b;

	memset(s, 0, sizeof(*s));
	if (sscanf(params, "%u %23s %47s %7s %15s %7s", &s->n, cs, alloc,
		   s->mode, check, space) != 6)
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
