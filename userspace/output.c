// SPDX-License-Identifier: GPL-2.0-only
/*
 * Read-out tables through libsmartcols; see output.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chainadm.h"
#include "output.h"

int out_option(struct out_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case 'o':
		o->columns = arg;
		return 1;
	case 'b':
		o->bytes = true;
		return 1;
	case OUT_OPT_JSON:
		o->json = true;
		return 1;
	case OUT_OPT_RAW:
		o->raw = true;
		return 1;
	case OUT_OPT_NOHEADINGS:
		o->noheadings = true;
		return 1;
	}
	return 0;
}

static int find_col(const struct out_col *cols, unsigned int ncols,
		    const char *name, size_t len)
{
	unsigned int i;

	for (i = 0; i < ncols; i++)
		if (strlen(cols[i].name) == len &&
		    !strncasecmp(cols[i].name, name, len))
			return i;
	return -1;
}

/* Column names separated by commas into t->sel; a usage error if unknown. */
static int select_cols(struct out_table *t, const char *list)
{
	const char *p = list;
	size_t len;
	int i;

	t->nsel = 0;
	while (*p) {
		len = strcspn(p, ",");
		i = find_col(t->cols, t->ncols, p, len);
		if (i < 0 || t->nsel == sizeof(t->sel) / sizeof(t->sel[0])) {
			usage_error("unknown column '%.*s' (see --help for the columns)",
				    (int)len, p);
			return -1;
		}
		t->sel[t->nsel++] = i;
		p += len;
		if (*p)
			p++;
	}
	if (!t->nsel)
		return usage_error("--output names no column"), -1;
	return 0;
}

bool out_wanted(const struct out_opts *o)
{
	return o->columns || o->json || o->raw || o->noheadings;
}

/* Select every column of t. */
static void select_all(struct out_table *t)
{
	unsigned int i;

	for (i = 0; i < t->ncols && i < sizeof(t->sel) / sizeof(t->sel[0]); i++)
		t->sel[i] = i;
	t->nsel = i;
}

/* The columns o names, or defaults (NULL: all of them). */
static int select_wanted(struct out_table *t, const struct out_opts *o,
			 const char *defaults)
{
	if (o->columns)
		return select_cols(t, o->columns);
	if (defaults)
		return select_cols(t, defaults);
	select_all(t);
	return 0;
}

int out_columns_ok(const struct out_opts *o, const struct out_col *cols,
		   unsigned int ncols, const char *defaults)
{
	struct out_table t = { .cols = cols, .ncols = ncols };

	return select_wanted(&t, o, defaults);
}

int out_begin(struct out_table *t, const struct out_opts *o, const char *name,
	      const struct out_col *cols, unsigned int ncols,
	      const char *defaults)
{
	static const int json_type[] = {
		[OUT_STR] = SCOLS_JSON_STRING, [OUT_NUM] = SCOLS_JSON_NUMBER,
		[OUT_SIZE] = SCOLS_JSON_NUMBER,
		[OUT_BOOL] = SCOLS_JSON_BOOLEAN_OPTIONAL,
		[OUT_LIST] = SCOLS_JSON_ARRAY_STRING,
	};
	struct libscols_column *cl;
	char lower[64];
	unsigned int i, k;
	int flags;

	memset(t, 0, sizeof(*t));
	t->cols = cols;
	t->ncols = ncols;
	/* JSON sizes are numbers: bytes, as lsblk --json --bytes. */
	t->bytes = o->bytes || o->json;
	t->json = o->json;
	if (select_wanted(t, o, defaults))
		return -1;
	t->tb = scols_new_table();
	if (!t->tb) {
		errmsg(name, "out of memory");
		return -1;
	}
	scols_table_set_name(t->tb, name);
	scols_table_enable_json(t->tb, o->json);
	scols_table_enable_raw(t->tb, o->raw);
	scols_table_enable_noheadings(t->tb, o->noheadings);
	for (i = 0; i < t->nsel; i++) {
		const struct out_col *c = &cols[t->sel[i]];

		/* JSON keys in lower case, as lsblk's. */
		for (k = 0; k < sizeof(lower) - 1 && c->name[k]; k++)
			lower[k] = o->json ? tolower((unsigned char)c->name[k]) :
					     c->name[k];
		lower[k] = '\0';
		flags = c->type == OUT_STR ? 0 : SCOLS_FL_RIGHT;
		/* A JSON array takes its items from the lines of the cell. */
		if (c->type == OUT_LIST)
			flags = o->json ? SCOLS_FL_WRAP : 0;
		cl = scols_table_new_column(t->tb, lower, c->whint, flags);
		if (cl && c->type == OUT_LIST && o->json)
			scols_column_set_wrapfunc(cl, scols_wrapnl_chunksize,
						  scols_wrapnl_nextchunk, NULL);
		if (!cl) {
			errmsg(name, "out of memory");
			scols_unref_table(t->tb);
			return -1;
		}
		scols_column_set_json_type(cl, json_type[c->type]);
	}
	return 0;
}

void out_tree(struct out_table *t)
{
	struct libscols_column *cl = scols_table_get_column(t->tb, 0);

	if (cl)
		scols_column_set_flags(cl, scols_column_get_flags(cl) | SCOLS_FL_TREE);
}

struct libscols_line *out_line(struct out_table *t)
{
	return scols_table_new_line(t->tb, NULL);
}

struct libscols_line *out_child(struct out_table *t, struct libscols_line *parent)
{
	return scols_table_new_line(t->tb, parent);
}

/* The cell index of column col, or -1 if it is not shown. */
static int cell_of(const struct out_table *t, const char *col)
{
	unsigned int i;

	for (i = 0; i < t->nsel; i++)
		if (!strcmp(t->cols[t->sel[i]].name, col))
			return i;
	return -1;
}

void out_str(struct out_table *t, struct libscols_line *ln, const char *col,
	     const char *val)
{
	int i = cell_of(t, col);

	if (i >= 0 && ln)
		scols_line_set_data(ln, i, val);
}

/* lsblk's form: 512B, 64K, 1.5G (one word, for --raw). */
static void short_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "BKMGTPE";
	unsigned int i = 0;

	while (i < 6 && bytes >> (10 * (i + 1)))
		i++;
	if (!i || !(bytes & ((1ULL << (10 * i)) - 1)))
		snprintf(buf, len, "%llu%c", (unsigned long long)(bytes >> (10 * i)),
			 units[i]);
	else
		snprintf(buf, len, "%.1f%c",
			 (double)bytes / (double)(1ULL << (10 * i)), units[i]);
}

void out_u64(struct out_table *t, struct libscols_line *ln, const char *col,
	     uint64_t val)
{
	char buf[SIZE_STR_LEN];
	int i = cell_of(t, col);

	if (i < 0 || !ln)
		return;
	if (t->cols[t->sel[i]].type == OUT_SIZE && !t->bytes)
		short_size(val, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)val);
	scols_line_set_data(ln, i, buf);
}

void out_bool(struct out_table *t, struct libscols_line *ln, const char *col,
	      bool val)
{
	/* As lsblk's RO: 1 or 0; JSON true or false. */
	out_str(t, ln, col, val ? "1" : "0");
}

void out_list(struct out_table *t, struct libscols_line *ln, const char *col,
	      const char *items)
{
	char *s, *p;

	if (t->json) {
		out_str(t, ln, col, items);
		return;
	}
	/* In a table: one cell, the items separated by commas. */
	s = strdup(items);
	if (!s)
		return;
	for (p = s; *p; p++)
		if (*p == '\n')
			*p = ',';
	out_str(t, ln, col, s);
	free(s);
}

int out_end(struct out_table *t)
{
	int r = scols_print_table(t->tb);

	scols_unref_table(t->tb);
	t->tb = NULL;
	if (r)
		errmsg("output", "cannot print the table");
	return r ? -1 : 0;
}

void out_help_columns(const struct out_col *cols, unsigned int ncols,
		      const char *defaults)
{
	unsigned int i;
	int w = 12;

	for (i = 0; i < ncols; i++)
		if ((int)strlen(cols[i].name) > w)
			w = strlen(cols[i].name);
	printf("\nAvailable output columns:\n");
	for (i = 0; i < ncols; i++)
		printf(" %*s  %s\n", w, cols[i].name, cols[i].help);
	printf("\nDefault: %s.\n", defaults ? defaults : "all of them");
}
