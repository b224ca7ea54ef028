/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Tables for the read-outs (list, status, info, job, map --extents, check
 * --json), printed by
 * libsmartcols, util-linux's table library behind lsblk and findmnt, with
 * lsblk's options: -o/--output <columns>, --json, --raw, --noheadings,
 * -b/--bytes.  A verb describes its columns once (struct out_col); the
 * user picks and orders them by name.
 */
#ifndef CHAINADM_OUTPUT_H
#define CHAINADM_OUTPUT_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <libsmartcols.h>

/*
 * Column types: JSON type and alignment.  OUT_LIST is a list of strings,
 * given one a line: a JSON array, or with commas in a table.  A cell left
 * unset is null in JSON (a tree's children leave their parent's cells).
 */
enum { OUT_STR, OUT_NUM, OUT_SIZE, OUT_BOOL, OUT_LIST };

struct out_col {
	const char *name;	/* as given to -o, upper case */
	const char *help;	/* for --help */
	int type;		/* OUT_*: JSON type, and alignment */
	double whint;		/* libsmartcols width hint */
};

struct out_opts {
	const char *columns;	/* -o, or NULL for the verb's default */
	bool json, raw, noheadings, bytes;
};

/* The long options, to put in a verb's table; 'o' and 'b' are short. */
enum { OUT_OPT_JSON = 0x300, OUT_OPT_RAW, OUT_OPT_NOHEADINGS };
#define OUT_LONG_OPTIONS \
	{ "output",	required_argument, NULL, 'o' }, \
	{ "json",	no_argument,	   NULL, OUT_OPT_JSON }, \
	{ "raw",	no_argument,	   NULL, OUT_OPT_RAW }, \
	{ "noheadings",	no_argument,	   NULL, OUT_OPT_NOHEADINGS }, \
	{ "bytes",	no_argument,	   NULL, 'b' }
#define OUT_SHORT_OPTIONS "o:b"
#define OUT_HELP \
	" -o, --output <list>        the columns to print (see below)\n" \
	"     --json                 print JSON\n" \
	"     --raw                  print the table without alignment\n" \
	"     --noheadings           do not print the column names\n" \
	" -b, --bytes                sizes in bytes, not K, M, G...\n"

/* 1: opt was one of the output options (taken into o), 0: not. */
int out_option(struct out_opts *o, int opt, const char *arg);

/* A table: the columns of o->columns (or defaults), in that order. */
struct out_table {
	struct libscols_table *tb;
	const struct out_col *cols;
	unsigned int ncols;
	int sel[48];		/* selected column -> index into cols */
	unsigned int nsel;
	bool bytes, json;
};

/* Whether o asks for a table: -o, --json, --raw or --noheadings. */
bool out_wanted(const struct out_opts *o);
/* Whether o's columns are known (a usage error printed if not). */
int out_columns_ok(const struct out_opts *o, const struct out_col *cols,
		   unsigned int ncols, const char *defaults);
/* defaults NULL: every column. */
int out_begin(struct out_table *t, const struct out_opts *o, const char *name,
	      const struct out_col *cols, unsigned int ncols,
	      const char *defaults);
/* Make it a tree, drawn in the first column: lines may have children. */
void out_tree(struct out_table *t);
struct libscols_line *out_line(struct out_table *t);
struct libscols_line *out_child(struct out_table *t, struct libscols_line *parent);
/* Set cell of column name (as in cols) in line ln, if it is shown. */
void out_str(struct out_table *t, struct libscols_line *ln, const char *col,
	     const char *val);
void out_u64(struct out_table *t, struct libscols_line *ln, const char *col,
	     uint64_t val);
void out_bool(struct out_table *t, struct libscols_line *ln, const char *col,
	      bool val);
/* A list cell: items separated by '\n'. */
void out_list(struct out_table *t, struct libscols_line *ln, const char *col,
	      const char *items);
int out_end(struct out_table *t);	/* print and free */

/* The "Available output columns" part of a verb's help. */
void out_help_columns(const struct out_col *cols, unsigned int ncols,
		      const char *defaults);

#endif
