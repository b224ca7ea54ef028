// SPDX-License-Identifier: GPL-2.0-only
/*
 * The verbs that act on live chain devices: create, remove, list, status
 * and snapshot.  The shared machinery is in device.c.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "chaintab.h"
#include "device.h"
#include "job.h"
#include "lock.h"
#include "output.h"

/* Table feature arguments, see Documentation/dm-chain.rst. */
enum {
	OPT_IGNORE_DISCARD = 0x100,
	OPT_NO_DISCARD_PASSDOWN,
	OPT_ERROR_IF_NO_SPACE,
	OPT_NO_SPACE_TIMEOUT,
	OPT_LAYERS,
	OPT_RAW_BASE,
};

#define FEATURES_MAX	4
#define FEATURES_LEN	(FEATURES_MAX * 32 + 8)

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

int check_name(const char *name)
{
	if (!*name || strchr(name, '/'))
		return usage_error("'%s' is not a device name (no '/', not empty)",
				   name);
	return 0;
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
	struct chain_source src;
	char feat[FEATURES_LEN];
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

	src.paths = argv + optind + 1;
	src.n = layers ? argc - optind - 1 : 0;
	src.raw_base = raw_base;
	c = chain_alloc();
	if (!c)
		return EXIT_FAIL;
	dm_op_init();
	features_str(&f, feat, sizeof(feat));
	r = lock_device(argv[optind]) || chain_open_locked(c, &src) ||
	    create_with_job(argv[optind], c, feat) ? -1 : 0;
	chain_free(c);
	return r ? EXIT_FAIL : EXIT_OK;
}

/* Verbs whose only option is --help. */
static int parse_simple(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			print_help();
			return 1;
		}
		try_help();
		return -1;
	}
	return 0;
}

int cmd_remove(int argc, char **argv)
{
	struct dm_target_line line;
	struct chain_table t;
	int r = parse_simple(argc, argv);

	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (optind != argc - 1)
		return usage_error("expects one device name");
	dm_op_init();
	if (lock_device(argv[optind]))
		return EXIT_FAIL;
	test_stall("locked");
	/* Only ever remove what is a chain device. */
	if (load_chain_device(argv[optind], &line, &t))
		return EXIT_FAIL;
	dm_target_line_free(&line);
	table_free(&t);
	return dm_op_remove(argv[optind]) ? EXIT_FAIL : EXIT_OK;
}

/*
 * The columns of list and status, as lsblk's: -o picks and orders them.
 * status draws the device's layers (bottom first) as its children; their
 * rows fill NAME (its address, name[N]), MAJ:MIN, TYPE and FILE.
 */
static const struct out_col dev_cols[] = {
	{ "NAME",	"device-mapper name; a layer's address",	OUT_STR,  0.1 },
	{ "MAJ:MIN",	"device number",			OUT_STR,  6 },
	{ "TYPE",	"device, or a layer's format: chain or raw", OUT_STR, 5 },
	{ "FILE",	"a layer's file or device",		OUT_STR,  0.3 },
	{ "SIZE",	"virtual size",				OUT_SIZE, 6 },
	{ "LAYERS",	"number of layers",			OUT_NUM,  3 },
	{ "ACTIVE",	"the active layer (its file or device)", OUT_STR, 0.3 },
	{ "BASE",	"the bottom layer",			OUT_STR,  0.3 },
	{ "SUSPENDED",	"the device is suspended",		OUT_BOOL, 1 },
	{ "OPEN",	"open count",				OUT_NUM,  2 },
	{ "EVENT",	"device-mapper event number",		OUT_NUM,  3 },
	{ "CLUSTER",	"cluster size",				OUT_SIZE, 5 },
	{ "ALLOCATED",	"data clusters of the active layer in use", OUT_NUM, 6 },
	{ "DATA",	"data clusters the active layer has room for", OUT_NUM, 6 },
	{ "USED",	"data clusters of the active layer in use, %", OUT_NUM, 3 },
	{ "SPACE",	"ok, or full (writes wait for room)",	OUT_STR,  4 },
	{ "METADATA",	"rw, ro, or Fail",			OUT_STR,  4 },
	{ "NEEDS-CHECK", "the active layer must be checked offline", OUT_BOOL, 1 },
	{ "FEATURES",	"table features",			OUT_STR,  0.2 },
	{ "MIRROR",	"the destination of a copy",		OUT_STR,  0.3 },
	{ "JOB",	"block job type, or none",		OUT_STR,  6 },
	{ "PHASE",	"job phase (running, ready, failed...)", OUT_STR, 6 },
	{ "PROGRESS",	"job progress, %",			OUT_NUM,  3 },
	JOB_COLS,
};
#define DEV_NCOLS	(sizeof(dev_cols) / sizeof(dev_cols[0]))
#define LIST_DEFAULT	"NAME,SIZE,LAYERS,ACTIVE"
#define STATUS_DEFAULT	"NAME,MAJ:MIN,TYPE,SIZE,FILE,JOB,PHASE,PROGRESS"

/* The device's own line of list and status. */
static void device_cells(struct out_table *t, struct libscols_line *ln,
			 const struct live *lv)
{
	const struct chain_status *s = &lv->s;
	char label[PATH_MAX], dev[32];
	bool job;

	snprintf(dev, sizeof(dev), "%u:%u", lv->info.major, lv->info.minor);
	out_str(t, ln, "NAME", lv->name);
	out_str(t, ln, "MAJ:MIN", dev);
	out_str(t, ln, "TYPE", "device");
	out_u64(t, ln, "SIZE", lv->line.len << 9);
	out_u64(t, ln, "LAYERS", lv->t.n);
	layer_label(lv->t.dev[lv->t.n - 1], label, sizeof(label));
	out_str(t, ln, "ACTIVE", label);
	layer_label(lv->t.dev[0], label, sizeof(label));
	out_str(t, ln, "BASE", label);
	out_bool(t, ln, "SUSPENDED", lv->info.suspended);
	out_u64(t, ln, "OPEN", lv->info.open_count);
	out_u64(t, ln, "EVENT", lv->info.event_nr);
	if (s->has_clusters) {
		out_u64(t, ln, "CLUSTER", s->cluster_sectors << 9);
		out_u64(t, ln, "ALLOCATED", s->allocated);
		out_u64(t, ln, "DATA", s->total);
		if (s->total)
			out_u64(t, ln, "USED", s->allocated * 100 / s->total);
	}
	out_str(t, ln, "SPACE", s->has_clusters ? (s->full ? "full" : "ok") : "-");
	out_str(t, ln, "METADATA", s->mode);
	out_bool(t, ln, "NEEDS-CHECK", s->needs_check);
	out_str(t, ln, "FEATURES", *lv->t.features ? lv->t.features : "-");
	if (lv->t.mirror.present) {
		layer_label(lv->t.mirror.dest, label, sizeof(label));
		out_str(t, ln, "MIRROR", label);
	}
	job = s->job.supported && job_is_active(&s->job);
	out_str(t, ln, "JOB", job ? s->job.type : "none");
	out_str(t, ln, "PHASE", job ? s->job.phase : "-");
	if (job) {
		out_u64(t, ln, "PROGRESS", job_percent(&s->job));
		job_cells(t, ln, &s->job);
	}
}

static int list_one(const char *name, void *arg)
{
	struct out_table *t = arg;
	struct libscols_line *ln;
	struct dm_target_line line;
	struct live lv;
	bool chain;

	/* Only chain devices, and those that vanish meanwhile are skipped. */
	if (dm_op_table(name, &line))
		return 0;
	chain = line.type && !strcmp(line.type, CHAIN_TARGET);
	dm_target_line_free(&line);
	if (!chain || live_open(&lv, name))
		return 0;
	ln = out_line(t);
	if (ln)
		device_cells(t, ln, &lv);
	live_close(&lv);
	if (!ln) {
		errmsg(name, "out of memory");
		return -1;
	}
	return 0;
}

void list_help(void)
{
	out_help_columns(dev_cols, DEV_NCOLS, LIST_DEFAULT);
}

int cmd_list(int argc, char **argv)
{
	static const struct option opts[] = {
		OUT_LONG_OPTIONS,
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct out_opts o = { .columns = NULL };
	struct out_table t;
	int opt, r;

	while ((opt = getopt_long(argc, argv, OUT_SHORT_OPTIONS "h", opts, NULL)) != -1) {
		if (out_option(&o, opt, optarg))
			continue;
		return opt == 'h' ? print_help() : try_help();
	}
	if (optind != argc)
		return usage_error("takes no arguments");
	if (out_begin(&t, &o, "chaindevices", dev_cols, DEV_NCOLS, LIST_DEFAULT))
		return EXIT_USAGE;
	dm_op_init();
	r = dm_op_list(list_one, &t);
	return out_end(&t) || r ? EXIT_FAIL : EXIT_OK;
}

static void status_human(const struct live *st)
{
	/* addr: "name[N]", a dm name has at most 127 bytes */
	char size[SIZE_STR_LEN], label[PATH_MAX], addr[160];
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
	printf("layers: %u (bottom first: table index, name[N], type, device, file)\n",
	       st->t.n);
	for (i = 0; i < st->t.n; i++) {
		layer_label(st->t.dev[i], label, sizeof(label));
		snprintf(addr, sizeof(addr), "%s[%u]", st->name, st->t.n - 1 - i);
		printf("  %u %s %-5s %u:%u %s%s\n", i, addr,
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
	if (st->t.mirror.present) {
		layer_label(st->t.mirror.dest, label, sizeof(label));
		printf("mirror: %s (%s, %s)\n", label,
		       st->t.mirror.raw ? "raw" : "chain",
		       st->t.mirror.shallow ? "shallow" : "full");
	}
	if (st->s.job.supported)
		job_print_human(&st->s.job, "job ");
}

/* status as a table: the device's line, its layers as children. */
static int status_table(const struct live *lv, const struct out_opts *o)
{
	char label[PATH_MAX], dev[32], addr[160];
	struct libscols_line *ln;
	struct out_table t;
	unsigned int i;

	/* JSON holds every column, a table the usual ones. */
	if (out_begin(&t, o, "chaindevices", dev_cols, DEV_NCOLS,
		      o->json ? NULL : STATUS_DEFAULT))
		return EXIT_USAGE;
	out_tree(&t);
	ln = out_line(&t);
	if (ln)
		device_cells(&t, ln, lv);
	for (i = 0; ln && i < lv->t.n; i++) {
		struct libscols_line *child = out_child(&t, ln);

		if (!child)
			break;
		layer_label(lv->t.dev[i], label, sizeof(label));
		snprintf(dev, sizeof(dev), "%u:%u", major(lv->t.dev[i]),
			 minor(lv->t.dev[i]));
		snprintf(addr, sizeof(addr), "%s[%u]", lv->name, lv->t.n - 1 - i);
		out_str(&t, child, "NAME", addr);
		out_str(&t, child, "MAJ:MIN", dev);
		out_str(&t, child, "TYPE", !i && lv->t.raw_base ? "raw" : "chain");
		out_str(&t, child, "FILE", label);
	}
	if (!ln || i < lv->t.n)
		errmsg(lv->name, "out of memory");
	return out_end(&t) || !ln || i < lv->t.n ? EXIT_FAIL : EXIT_OK;
}

void status_help(void)
{
	out_help_columns(dev_cols, DEV_NCOLS,
			 STATUS_DEFAULT "; with --json, all of them");
}

int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		OUT_LONG_OPTIONS,
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct out_opts o = { .columns = NULL };
	struct live lv;
	int opt, r;

	while ((opt = getopt_long(argc, argv, OUT_SHORT_OPTIONS "h", opts, NULL)) != -1) {
		if (out_option(&o, opt, optarg))
			continue;
		return opt == 'h' ? print_help() : try_help();
	}
	if (optind != argc - 1)
		return usage_error("expects one device name");
	if (out_columns_ok(&o, dev_cols, DEV_NCOLS, o.json ? NULL : STATUS_DEFAULT))
		return EXIT_USAGE;
	dm_op_init();
	if (live_open(&lv, argv[optind]))
		return EXIT_FAIL;
	r = EXIT_OK;
	if (out_wanted(&o))
		r = status_table(&lv, &o);
	else
		status_human(&lv);
	live_close(&lv);
	return r;
}

/*
 * Refused during a block job: the new table would start the job again
 * while the old one still runs it, over a view of its destination read
 * before the swap.  Checked under the device's lock, so that no job
 * started by another chainadm slips in before the swap.
 */
static int snapshot(const char *name, const char *overlay, uint64_t layer_size)
{
	char old_top[PATH_MAX], new_top[PATH_MAX];
	bool old_raw, followed, reverted;
	struct chain_table *t;
	struct live lv;
	char *params = NULL;
	struct stat st;
	int fd = -1, r = -1;

	if (live_lock(&lv, name, NULL))
		return -1;
	t = &lv.t;
	if (live_require_idle(&lv, "no snapshot during a block job"))
		goto out;
	if (t->n == DM_CHAIN_MAX_LAYERS) {
		errmsg(name, "already has %u layers: commit or pull first",
		       DM_CHAIN_MAX_LAYERS);
		goto out;
	}
	if (format_over(overlay, layer_size, lv.line.len, 0, t, t->n - 1))
		goto out;
	layer_label(t->dev[t->n - 1], old_top, sizeof(old_top));
	old_raw = t->n == 1 && t->raw_base;
	if (!attach_path(overlay, false, &t->dev[t->n], &fd)) {
		t->n++;
		params = table_format(t);
	}
	/*
	 * The chaintab names the new overlay before the swap: until the
	 * swap the overlay is empty, so either top is the disk.
	 */
	if (params && (abs_path(overlay, new_top, sizeof(new_top)) ||
		       chaintab_follow(name, new_top, false, 0))) {
		free(params);
		params = NULL;
	}
	followed = params;
	if (params) {
		test_stall("snapshot-chaintab");
		r = swap_table(name, lv.line.len, params);
	}
	reverted = !r || !followed || !chaintab_follow(name, old_top, old_raw, 0);
	if (!reverted)
		errmsg(name, "runs its old top layer still, but the chaintab names %s (kept: empty, over the old top, it is the same disk): edit the line back to %s",
		       overlay, old_top);
	/* A file this call created, never used, unless the chaintab names it. */
	if (r && reverted && !stat(overlay, &st) && !S_ISBLK(st.st_mode))
		unlink(overlay);
	if (!r)
		printf("%s: new active layer %s\n", name, overlay);
	if (fd >= 0)
		close(fd);	/* the live table holds the loop device now */
out:
	free(params);
	live_close(&lv);
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
