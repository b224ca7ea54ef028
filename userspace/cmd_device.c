// SPDX-License-Identifier: GPL-2.0-only
/*
 * The verbs that act on live chain devices: create, remove, list, status
 * and snapshot.
 *
 * The dm table is the truth about a chain; nothing else is recorded.
 * Files are attached to loop devices with autoclear, so removing the dm
 * device detaches them, and a failed create only has to close its fds.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "chain.h"
#include "device.h"
#include "json.h"
#include "loop.h"

/* Table feature arguments, see Documentation/dm-chain.rst. */
enum {
	OPT_IGNORE_DISCARD = 0x100,
	OPT_NO_DISCARD_PASSDOWN,
	OPT_ERROR_IF_NO_SPACE,
	OPT_NO_SPACE_TIMEOUT,
	OPT_LAYERS,
	OPT_RAW_BASE,
	OPT_JSON,
};

#define FEATURES_MAX	4

struct features {
	unsigned int n;
	char word[FEATURES_MAX][32];
};

static int add_feature(struct features *f, const char *word, const char *arg)
{
	unsigned long secs;
	unsigned int i;

	if (arg && parse_uint("--no-space-timeout", arg, UINT_MAX, &secs))
		return -1;
	for (i = 0; i < f->n; i++)
		if (!strncmp(f->word[i], word, strcspn(word, ":")))
			return usage_error("%s given twice", word);
	if (arg)
		snprintf(f->word[f->n++], sizeof(f->word[0]), "%s:%lu", word, secs);
	else
		snprintf(f->word[f->n++], sizeof(f->word[0]), "%s", word);
	return 0;
}

/* "<#features> <feature>..." or "" */
static void features_str(const struct features *f, char *buf, size_t len)
{
	unsigned int i;
	int n;

	*buf = '\0';
	if (!f->n)
		return;
	n = snprintf(buf, len, "%u", f->n);
	for (i = 0; i < f->n; i++)
		n += snprintf(buf + n, len - n, " %s", f->word[i]);
}

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

static int check_name(const char *name)
{
	if (!*name || strchr(name, '/'))
		return usage_error("'%s' is not a device name (no '/', not empty)",
				   name);
	return 0;
}

/* Make every layer a block device; files get a loop device, kept in fds. */
static int attach_layers(const struct chain *c, struct chain_table *t,
			 int *fds)
{
	unsigned int i;
	struct stat st;

	for (i = 0; i < c->n; i++) {
		const struct layer *l = &c->layer[i];

		if (l->blockdev) {
			if (fstat(l->fd, &st)) {
				errmsg(l->path, "cannot stat: %s", strerror(errno));
				return -1;
			}
			t->dev[i] = st.st_rdev;
			continue;
		}
		/* Only the active layer is written. */
		fds[i] = loop_attach(l->path, i != c->n - 1, &t->dev[i]);
		if (fds[i] < 0)
			return -1;
	}
	return 0;
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

static int create_device(const char *name, const struct chain *c,
			 const struct features *f)
{
	struct chain_table t = { .n = c->n, .raw_base = c->layer[0].raw };
	char feat[FEATURES_MAX * 32 + 8], size[SIZE_STR_LEN];
	int fds[DM_CHAIN_MAX_LAYERS];
	char *params = NULL;
	int r = -1;

	memset(fds, -1, sizeof(fds));
	features_str(f, feat, sizeof(feat));
	t.features = feat;
	if (attach_layers(c, &t, fds))
		goto out;
	params = table_format(&t);
	if (!params || dm_op_create(name, chain_sectors(c), params))
		goto out;
	printf("Created /dev/mapper/%s: %s, %u layer%s, active layer %s\n", name,
	       size_str(chain_sectors(c) << 9, size, sizeof(size)), c->n,
	       c->n > 1 ? "s" : "", c->layer[c->n - 1].path);
	r = 0;
out:
	free(params);
	close_fds(fds, c->n);
	return r;
}

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "layers",		 no_argument,	    NULL, OPT_LAYERS },
		{ "raw-base",		 no_argument,	    NULL, OPT_RAW_BASE },
		{ "ignore-discard",	 no_argument,	    NULL, OPT_IGNORE_DISCARD },
		{ "no-discard-passdown", no_argument,	    NULL, OPT_NO_DISCARD_PASSDOWN },
		{ "error-if-no-space",	 no_argument,	    NULL, OPT_ERROR_IF_NO_SPACE },
		{ "no-space-timeout",	 required_argument, NULL, OPT_NO_SPACE_TIMEOUT },
		{ "help",		 no_argument,	    NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool layers = false, raw_base = false;
	struct features f = { .n = 0 };
	struct chain *c;
	int opt, r = 0;

	while (!r && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_LAYERS:
			layers = true;
			break;
		case OPT_RAW_BASE:
			raw_base = true;
			break;
		case OPT_IGNORE_DISCARD:
			r = add_feature(&f, "ignore_discard", NULL);
			break;
		case OPT_NO_DISCARD_PASSDOWN:
			r = add_feature(&f, "no_discard_passdown", NULL);
			break;
		case OPT_ERROR_IF_NO_SPACE:
			r = add_feature(&f, "error_if_no_space", NULL);
			break;
		case OPT_NO_SPACE_TIMEOUT:
			r = add_feature(&f, "no_space_timeout", optarg);
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (r)
		return EXIT_USAGE;
	if (raw_base && !layers)
		return usage_error("--raw-base needs --layers");
	if (layers ? argc - optind < 2 : argc - optind != 2)
		return usage_error("expects a device name and %s",
				   layers ? "the layers, bottom first" : "the top layer");
	if (argc - optind - 1 > (int)DM_CHAIN_MAX_LAYERS)
		return usage_error("more than %u layers", DM_CHAIN_MAX_LAYERS);
	if (check_name(argv[optind]))
		return EXIT_USAGE;

	c = chain_alloc();
	if (!c)
		return EXIT_FAIL;
	r = layers ? chain_from_list(c, argv + optind + 1, argc - optind - 1, raw_base) :
		     chain_discover(c, argv[optind + 1]);
	if (!r)
		r = chain_check_usable(c);
	dm_op_init();
	if (!r)
		r = create_device(argv[optind], c, &f);
	chain_free(c);
	return r ? EXIT_FAIL : EXIT_OK;
}

/* Verbs whose only option is --help, or --json. */
static int parse_simple(int argc, char **argv, bool *json)
{
	static const struct option opts[] = {
		{ "json",	no_argument, NULL, OPT_JSON },
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			print_help();
			return 1;
		}
		if (opt != OPT_JSON || !json) {
			try_help();
			return -1;
		}
		*json = true;
	}
	return 0;
}

int cmd_remove(int argc, char **argv)
{
	struct dm_target_line line;
	struct chain_table t;
	int r = parse_simple(argc, argv, NULL);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (optind != argc - 1)
		return usage_error("expects one device name");
	dm_op_init();
	/* Only ever remove what is a chain device. */
	if (load_chain_device(argv[optind], &line, &t))
		return EXIT_FAIL;
	dm_target_line_free(&line);
	table_free(&t);
	return dm_op_remove(argv[optind]) ? EXIT_FAIL : EXIT_OK;
}

static void layer_label(dev_t dev, char *buf, size_t len)
{
	if (dev_label(dev, buf, len))
		snprintf(buf, len, "%u:%u", major(dev), minor(dev));
}

struct list_ctx {
	struct json *j;		/* NULL: a table for humans */
	unsigned int count;
};

static int list_one(const char *name, void *arg)
{
	struct list_ctx *ctx = arg;
	struct dm_target_line line;
	struct chain_table t;
	char top[PATH_MAX], size[SIZE_STR_LEN];

	if (dm_op_table(name, &line))
		return -1;
	if (!line.type || strcmp(line.type, CHAIN_TARGET) ||
	    table_parse(name, line.params, &t)) {
		dm_target_line_free(&line);
		return 0;
	}
	layer_label(t.dev[t.n - 1], top, sizeof(top));
	if (ctx->j) {
		json_open(ctx->j, NULL, '{');
		json_str(ctx->j, "name", name);
		json_u64(ctx->j, "virtual-size", line.len << 9);
		json_u64(ctx->j, "layers", t.n);
		json_str(ctx->j, "active-layer", top);
		json_close(ctx->j, '}');
	} else {
		if (!ctx->count)
			printf("%-20s %10s %6s  %s\n", "NAME", "SIZE", "LAYERS", "ACTIVE LAYER");
		printf("%-20s %10s %6u  %s\n", name,
		       size_str(line.len << 9, size, sizeof(size)), t.n, top);
	}
	ctx->count++;
	table_free(&t);
	dm_target_line_free(&line);
	return 0;
}

int cmd_list(int argc, char **argv)
{
	bool json = false;
	struct json j;
	struct list_ctx ctx = { .j = NULL };
	int r = parse_simple(argc, argv, &json);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (optind != argc)
		return usage_error("takes no arguments");
	dm_op_init();
	if (json) {
		json_init(&j, stdout);
		ctx.j = &j;
		json_open(&j, NULL, '[');
	}
	r = dm_op_list(list_one, &ctx);
	if (json)
		json_close(&j, ']');
	return r ? EXIT_FAIL : EXIT_OK;
}

struct status_report {
	const char *name;
	struct dm_info info;
	struct dm_target_line line;
	struct chain_table t;
	struct chain_status s;
};

static void status_human(const struct status_report *st)
{
	char size[SIZE_STR_LEN], label[PATH_MAX];
	unsigned int i;

	printf("name: %s\ndevice: /dev/mapper/%s (%u:%u)\nstate: %s\n"
	       "open count: %d\nevent: %u\nvirtual size: %s (%llu sectors)\n",
	       st->name, st->name, st->info.major, st->info.minor,
	       st->info.suspended ? "suspended" : "active", st->info.open_count,
	       st->info.event_nr, size_str(st->line.len << 9, size, sizeof(size)),
	       (unsigned long long)st->line.len);
	if (st->s.has_clusters)
		printf("cluster size: %s\n",
		       size_str(st->s.cluster_sectors << 9, size, sizeof(size)));
	printf("layers: %u (bottom first)\n", st->t.n);
	for (i = 0; i < st->t.n; i++) {
		layer_label(st->t.dev[i], label, sizeof(label));
		printf("  %u %-5s %u:%u %s%s\n", i,
		       !i && st->t.raw_base ? "raw" : "chain",
		       major(st->t.dev[i]), minor(st->t.dev[i]), label,
		       i == st->t.n - 1 ? " (active)" : "");
	}
	if (st->s.has_clusters)
		printf("active layer: %llu of %llu data clusters allocated\n",
		       (unsigned long long)st->s.allocated,
		       (unsigned long long)st->s.total);
	printf("metadata: %s\nneeds check: %s\nspace: %s\nfeatures: %s\n",
	       st->s.mode, st->s.needs_check ? "yes" : "no",
	       st->s.full ? "full" : "ok", *st->t.features ? st->t.features : "none");
}

static void status_json(const struct status_report *st)
{
	char label[PATH_MAX], dev[32];
	struct json j;
	unsigned int i;

	json_init(&j, stdout);
	json_open(&j, NULL, '{');
	json_str(&j, "name", st->name);
	json_u64(&j, "major", st->info.major);
	json_u64(&j, "minor", st->info.minor);
	json_bool(&j, "suspended", st->info.suspended);
	json_u64(&j, "open-count", st->info.open_count);
	json_u64(&j, "event", st->info.event_nr);
	json_u64(&j, "virtual-size", st->line.len << 9);
	if (st->s.has_clusters) {
		json_u64(&j, "cluster-size", st->s.cluster_sectors << 9);
		json_u64(&j, "allocated-clusters", st->s.allocated);
		json_u64(&j, "data-clusters", st->s.total);
	}
	json_open(&j, "layers", '[');
	for (i = 0; i < st->t.n; i++) {
		layer_label(st->t.dev[i], label, sizeof(label));
		snprintf(dev, sizeof(dev), "%u:%u", major(st->t.dev[i]),
			 minor(st->t.dev[i]));
		json_open(&j, NULL, '{');
		json_str(&j, "type", !i && st->t.raw_base ? "raw" : "chain");
		json_str(&j, "device", dev);
		json_str(&j, "filename", label);
		json_close(&j, '}');
	}
	json_close(&j, ']');
	json_str(&j, "metadata", st->s.mode);
	json_bool(&j, "needs-check", st->s.needs_check);
	json_bool(&j, "space-full", st->s.full);
	json_str(&j, "features", st->t.features);
	json_close(&j, '}');
}

int cmd_status(int argc, char **argv)
{
	struct status_report st = { .name = NULL };
	struct dm_target_line sline;
	bool json = false;
	int r = parse_simple(argc, argv, &json);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (optind != argc - 1)
		return usage_error("expects one device name");
	st.name = argv[optind];
	dm_op_init();
	if (dm_op_info(st.name, &st.info) ||
	    load_chain_device(st.name, &st.line, &st.t))
		return EXIT_FAIL;
	r = dm_op_status(st.name, &sline);
	if (!r && !sline.type) {
		errmsg(st.name, "has no live table");
		r = -1;
	}
	if (!r)
		r = status_parse(st.name, sline.params, &st.s);
	if (!r && json)
		status_json(&st);
	else if (!r)
		status_human(&st);
	dm_target_line_free(&sline);
	dm_target_line_free(&st.line);
	table_free(&st.t);
	return r ? EXIT_FAIL : EXIT_OK;
}

/*
 * Make the new table live.  Suspend flushes the active layer and queues
 * new I/O, resume swaps the tables and replays it: the user of the disk
 * sees a pause, never an error.  If the swap fails the old table is
 * brought back.
 */
static int swap_table(const char *name, uint64_t sectors, const char *params)
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
	if (dm_op_resume(name))
		errmsg(name, "the device stays suspended: resume it with 'dmsetup resume %s'",
		       name);
	return -1;
}

/* Format overlay over the active layer of the live table t. */
static int format_overlay(const char *overlay, uint64_t layer_size,
			  const struct dm_target_line *line,
			  const struct chain_table *t)
{
	char node[PATH_MAX], hint[PATH_MAX];
	dev_t top = t->dev[t->n - 1];
	struct format_req req = {
		.path = overlay,
		.virtual_size = line->len << 9,
		.layer_size = layer_size,
		.backing = node,
		/* From the table, never probed: a raw disk may hold anything. */
		.backing_type = t->n == 1 && t->raw_base ? DM_CHAIN_BACKING_RAW :
							   DM_CHAIN_BACKING_CHAIN,
		.hint = hint,
		.quiet = true,
	};

	if (dev_path(top, node, sizeof(node)) || dev_label(top, hint, sizeof(hint)))
		return -1;
	return format_layer(&req);
}

/* The new overlay as a block device; a file gets a loop device in *fd. */
static int attach_overlay(const char *overlay, dev_t *dev, int *fd,
			  bool *blockdev)
{
	struct stat st;

	*fd = -1;
	*blockdev = false;
	if (stat(overlay, &st)) {
		errmsg(overlay, "cannot stat: %s", strerror(errno));
		return -1;
	}
	*blockdev = S_ISBLK(st.st_mode);
	if (*blockdev) {
		*dev = st.st_rdev;
		return 0;
	}
	*fd = loop_attach(overlay, false, dev);
	return *fd < 0 ? -1 : 0;
}

static int snapshot(const char *name, const char *overlay, uint64_t layer_size)
{
	struct dm_target_line line;
	struct chain_table t;
	char *params = NULL;
	bool blockdev;
	int fd, r = -1;

	if (load_chain_device(name, &line, &t))
		return -1;
	if (t.n == DM_CHAIN_MAX_LAYERS) {
		errmsg(name, "already has %u layers: commit or pull first",
		       DM_CHAIN_MAX_LAYERS);
		goto out;
	}
	if (format_overlay(overlay, layer_size, &line, &t))
		goto out;
	if (!attach_overlay(overlay, &t.dev[t.n], &fd, &blockdev)) {
		t.n++;
		params = table_format(&t);
	}
	if (params)
		r = swap_table(name, line.len, params);
	if (r && !blockdev)
		unlink(overlay);	/* a file this call created, never used */
	if (!r)
		printf("%s: new active layer %s\n", name, overlay);
	if (fd >= 0)
		close(fd);	/* the live table holds the loop device now */
out:
	free(params);
	table_free(&t);
	dm_target_line_free(&line);
	return r;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "layer-size",	required_argument, NULL, 'l' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	uint64_t layer_size = 0;
	int opt;

	while ((opt = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_size("--layer-size", optarg, &layer_size))
				return EXIT_USAGE;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (argc - optind != 2)
		return usage_error("expects a device name and the new overlay");
	dm_op_init();
	return snapshot(argv[optind], argv[optind + 1], layer_size) ?
	       EXIT_FAIL : EXIT_OK;
}
