// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm map: the picture of a chain, one line per layer and one for
 * what the guest sees, one character per run of clusters:
 *
 *   '-'  absent (falls through to the layer below)
 *   '0'  zero
 *   'A'.. data of layer 0, 1, ... ('#' for a raw layer and beyond 'z')
 *
 * A run shows its "strongest" cluster: data over zero over absent.  The
 * guest line resolves each cluster newest layer first and shows the
 * newest layer that supplies data in the run; '-' there means no layer
 * holds the cluster and it reads as zeros.
 */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "chain.h"
#include "device.h"
#include "loop.h"
#include "output.h"

#define LABEL_MAX	20
#define MIN_BAR		10

/* Per-cluster owner: 0 absent, 1 zero, 2 + layer index for data. */
enum { OWN_ABSENT, OWN_ZERO, OWN_DATA };

struct map {
	uint64_t nr_clusters;
	uint32_t cluster_size;
	uint64_t per_col;	/* clusters per character */
	unsigned int cols;
	unsigned int label_width;
	unsigned char *owner;	/* nr_clusters entries, newest layer wins */
	unsigned char *row;	/* cols entries, strongest owner of the run */
	unsigned char *who;	/* --extents: 1 + the layer owner[] is from */
	unsigned int layer;	/* index of the layer being scanned */
};

static char layer_char(const struct layer *l, unsigned int i)
{
	if (l->raw || i >= 52)
		return '#';
	return i < 26 ? 'A' + i : 'a' + (i - 26);
}

static unsigned char owner_of(unsigned int layer)
{
	/* Beyond 'z' every layer draws '#', so clamping loses nothing. */
	return layer < UCHAR_MAX - OWN_DATA ? OWN_DATA + layer : UCHAR_MAX;
}

static void mark(struct map *m, uint64_t vc, unsigned char own)
{
	unsigned char *cell = &m->row[vc / m->per_col];

	m->owner[vc] = own;
	if (m->who)
		m->who[vc] = m->layer < UCHAR_MAX ? m->layer + 1 : UCHAR_MAX;
	if (own > *cell)
		*cell = own;
}

static int map_chunk(const struct layer *l, const __le64 *entries,
		     uint64_t first, uint64_t count, void *arg)
{
	struct map *m = arg;
	uint64_t i;

	(void)l;
	for (i = 0; i < count && first + i < m->nr_clusters; i++) {
		switch (dm_chain_entry_type(le64_to_cpu(entries[i]))) {
		case DM_CHAIN_ENTRY_MAPPED:
			mark(m, first + i, owner_of(m->layer));
			break;
		case DM_CHAIN_ENTRY_ZERO:
			mark(m, first + i, OWN_ZERO);
			break;
		}
	}
	return 0;
}

static void print_label(const struct map *m, const char *label)
{
	const char *base = strrchr(label, '/');

	base = base && base[1] ? base + 1 : label;
	printf("%-*.*s  ", m->label_width, m->label_width, base);
}

static void print_row(const struct map *m, const struct layer *layers,
		      const unsigned char *row)
{
	unsigned int c;

	for (c = 0; c < m->cols; c++) {
		if (row[c] == OWN_ABSENT)
			putchar('-');
		else if (row[c] == OWN_ZERO)
			putchar('0');
		else
			putchar(layer_char(&layers[row[c] - OWN_DATA],
					   row[c] - OWN_DATA));
	}
	putchar('\n');
}

static int scan_layer(struct map *m, const struct layer *layers, unsigned int i)
{
	const struct layer *l = &layers[i];
	uint64_t vc;

	memset(m->row, OWN_ABSENT, m->cols);
	m->layer = i;
	if (l->raw) {
		/* A raw layer holds every cluster; its content is not read. */
		for (vc = 0; vc < m->nr_clusters; vc++)
			mark(m, vc, owner_of(i));
		return 0;
	}
	return layer_scan_table(l, NULL, NULL, map_chunk, m);
}

static int draw_layer(struct map *m, const struct layer *layers,
		      unsigned int i, const char *label)
{
	if (scan_layer(m, layers, i))
		return -1;
	print_label(m, label);
	print_row(m, layers, m->row);
	return 0;
}

static void draw_guest(struct map *m, const struct layer *layers)
{
	uint64_t vc;

	memset(m->row, OWN_ABSENT, m->cols);
	for (vc = 0; vc < m->nr_clusters; vc++)
		if (m->owner[vc] > m->row[vc / m->per_col])
			m->row[vc / m->per_col] = m->owner[vc];
	print_label(m, "guest sees");
	print_row(m, layers, m->row);
}

static unsigned int terminal_width(void)
{
	struct winsize ws;
	const char *cols = getenv("COLUMNS");

	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col)
		return ws.ws_col;
	if (cols && atoi(cols) > 0)
		return atoi(cols);
	return 80;
}

static int map_setup(struct map *m, const struct layer *layers, unsigned int n,
		     char *const *labels, unsigned int width)
{
	const struct layer *top = &layers[n - 1];
	unsigned int i, bar;

	memset(m, 0, sizeof(*m));
	/* A chain of one raw device has no clusters: draw it at the default. */
	m->cluster_size = top->raw ? DM_CHAIN_DEFAULT_CLUSTER_SIZE :
				     top->info.cluster_size;
	m->nr_clusters = top->raw ?
		(top->size + m->cluster_size - 1) / m->cluster_size :
		top->info.nr_clusters;
	m->label_width = strlen("guest sees");
	for (i = 0; i < n; i++) {
		const char *base = strrchr(labels[i], '/');
		size_t len = strlen(base && base[1] ? base + 1 : labels[i]);

		if (len > m->label_width)
			m->label_width = len < LABEL_MAX ? len : LABEL_MAX;
	}
	bar = width > m->label_width + 2 + MIN_BAR ?
	      width - m->label_width - 2 : MIN_BAR;
	m->per_col = (m->nr_clusters + bar - 1) / bar;
	if (!m->per_col)
		m->per_col = 1;
	m->cols = (m->nr_clusters + m->per_col - 1) / m->per_col;
	m->owner = calloc(m->nr_clusters ? m->nr_clusters : 1, 1);
	m->row = calloc(m->cols ? m->cols : 1, 1);
	if (!m->owner || !m->row) {
		errmsg(labels[n - 1], "cannot draw the map: out of memory");
		return -1;
	}
	return 0;
}

/* Layers bottom first, labels as the user knows them. */
static int draw(const char *what, const struct layer *layers, unsigned int n,
		char *const *labels, unsigned int width)
{
	char cs[SIZE_STR_LEN];
	struct map m;
	unsigned int i;
	int r = -1;

	if (map_setup(&m, layers, n, labels, width))
		goto out;
	printf("%s: %u layer%s, %llu clusters of %s, %llu per column ('-' absent, '0' zero, letter data)\n",
	       what, n, n > 1 ? "s" : "", (unsigned long long)m.nr_clusters,
	       size_str(m.cluster_size, cs, sizeof(cs)),
	       (unsigned long long)m.per_col);
	for (i = 0; i < n; i++)
		if (draw_layer(&m, layers, i, labels[i]))
			goto out;
	draw_guest(&m, layers);
	r = 0;
out:
	free(m.owner);
	free(m.row);
	return r;
}

/*
 * --extents: what the guest reads, as runs of clusters from one layer,
 * in the manner of qemu-img map: START and LENGTH in bytes, DEPTH 0 for
 * the active layer (the number of layers where none holds the run and it
 * reads zeros), DATA and ZERO as the run reads.
 */
static const struct out_col map_cols[] = {
	{ "START",	"offset of the run in the disk",	OUT_SIZE, 8 },
	{ "LENGTH",	"length of the run",			OUT_SIZE, 8 },
	{ "DEPTH",	"layers above the one that holds it (0: active)", OUT_NUM, 3 },
	{ "DATA",	"the run is data of that layer",	OUT_BOOL, 5 },
	{ "ZERO",	"the run reads zeros",			OUT_BOOL, 5 },
	{ "LAYER",	"the layer's file or device, - if none", OUT_STR, 0.5 },
};
#define MAP_DEFAULT	"START,LENGTH,DEPTH,DATA,ZERO,LAYER"

void map_help(void)
{
	out_help_columns(map_cols, sizeof(map_cols) / sizeof(map_cols[0]),
			 MAP_DEFAULT);
}

static int extents(const struct layer *layers, unsigned int n,
		   char *const *labels, const struct out_opts *o)
{
	const struct layer *top = &layers[n - 1];
	uint64_t vsize = top->raw ? top->size : top->info.virtual_size;
	struct libscols_line *ln;
	struct out_table t;
	struct map m;
	uint64_t vc, end, start, len;
	unsigned int i, w;
	int r = -1;

	if (map_setup(&m, layers, n, labels, 80))
		goto out;
	m.who = calloc(m.nr_clusters ? m.nr_clusters : 1, 1);
	if (!m.who) {
		errmsg(labels[n - 1], "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (scan_layer(&m, layers, i))
			goto out;
	if (out_begin(&t, o, "map", map_cols, sizeof(map_cols) / sizeof(map_cols[0]),
		      MAP_DEFAULT))
		goto out;
	for (vc = 0; vc < m.nr_clusters; vc = end) {
		for (end = vc + 1; end < m.nr_clusters &&
		     m.who[end] == m.who[vc] && m.owner[end] == m.owner[vc]; end++)
			;
		start = vc * m.cluster_size;
		len = end * m.cluster_size > vsize ? vsize - start :
						     (end - vc) * m.cluster_size;
		w = m.who[vc];
		ln = out_line(&t);
		out_u64(&t, ln, "START", start);
		out_u64(&t, ln, "LENGTH", len);
		out_u64(&t, ln, "DEPTH", w ? n - w : n);
		out_bool(&t, ln, "DATA", m.owner[vc] >= OWN_DATA);
		out_bool(&t, ln, "ZERO", m.owner[vc] < OWN_DATA);
		out_str(&t, ln, "LAYER", w ? labels[w - 1] : "-");
	}
	r = out_end(&t);
out:
	free(m.owner);
	free(m.row);
	free(m.who);
	return r;
}

struct map_req {
	unsigned int width;
	bool extents;		/* the table of runs, not the picture */
	struct out_opts o;
};

/* The picture or the table of runs of layers, bottom first. */
static int show(const char *what, const struct layer *layers, unsigned int n,
		char *const *labels, const struct map_req *req)
{
	return req->extents ? extents(layers, n, labels, &req->o) :
			      draw(what, layers, n, labels, req->width);
}

static int map_layer(const char *path, const struct map_req *req)
{
	struct chain *c = chain_alloc();
	char *labels[DM_CHAIN_MAX_LAYERS];
	unsigned int i;
	int r = -1;

	if (c && !chain_discover(c, path)) {
		for (i = 0; i < c->n; i++)
			labels[i] = c->layer[i].path;
		r = show(path, c->layer, c->n, labels, req);
	}
	chain_free(c);
	return r;
}

/* Open every layer of a live table through its block device. */
static int open_live_layers(const struct chain_table *t, struct chain *c,
			    char labels[][PATH_MAX])
{
	char node[PATH_MAX];
	struct layer *l;

	for (c->n = 0; c->n < t->n; c->n++) {
		l = &c->layer[c->n];
		if (dev_path(t->dev[c->n], node, sizeof(node)) ||
		    dev_label(t->dev[c->n], labels[c->n], PATH_MAX) ||
		    layer_open(l, node, O_RDONLY))
			return -1;
		l->raw = !c->n && t->raw_base;
		if (!l->raw && layer_load_header(l)) {
			c->n++;
			return -1;
		}
	}
	return 0;
}

static int map_device(const char *name, const struct map_req *req)
{
	static char labels[DM_CHAIN_MAX_LAYERS][PATH_MAX];
	char *label_ptrs[DM_CHAIN_MAX_LAYERS];
	struct dm_target_line line;
	struct chain_table t;
	struct chain *c;
	unsigned int i;
	int r = -1;

	dm_op_init();
	if (load_chain_device(name, &line, &t))
		return -1;
	c = chain_alloc();
	if (c && !open_live_layers(&t, c, labels)) {
		for (i = 0; i < c->n; i++)
			label_ptrs[i] = labels[i];
		r = show(name, c->layer, c->n, label_ptrs, req);
	}
	chain_free(c);
	table_free(&t);
	dm_target_line_free(&line);
	return r;
}

enum { OPT_EXTENTS = 0x100 };

int cmd_map(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "width",	required_argument, NULL, 'w' },
		{ "extents",	no_argument,	   NULL, OPT_EXTENTS },
		OUT_LONG_OPTIONS,
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct map_req req = { .width = 0 };
	unsigned long width = 0;
	struct stat st;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "w:" OUT_SHORT_OPTIONS "h", opts,
				  NULL)) != -1) {
		if (out_option(&req.o, opt, optarg)) {
			req.extents = true;	/* table options: the table */
			continue;
		}
		switch (opt) {
		case 'w':
			if (parse_uint("--width", optarg, 4096, &width))
				return EXIT_USAGE;
			break;
		case OPT_EXTENTS:
			req.extents = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (optind != argc - 1)
		return usage_error("expects a device name or a layer path");
	if (width && req.extents)
		return usage_error("--width draws the picture: not with --extents or the table options");
	if (req.extents &&
	    out_columns_ok(&req.o, map_cols, sizeof(map_cols) / sizeof(map_cols[0]),
			   MAP_DEFAULT))
		return EXIT_USAGE;
	req.width = width ? width : terminal_width();
	/* An existing path is a layer; anything else names a dm device. */
	if (!stat(argv[optind], &st))
		r = map_layer(argv[optind], &req);
	else
		r = map_device(argv[optind], &req);
	return r ? EXIT_FAIL : EXIT_OK;
}
