// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm info: what a layer is, in the manner of qemu-img info.
 */
#include <fcntl.h>
#include <getopt.h>

#include "chain.h"
#include "job.h"
#include "output.h"

static const char *const flag_names[] = {
	"needs-check", "invalidated", "copy-destination"
};

static void print_flags_human(__u32 flags)
{
	unsigned int i;
	const char *sep = "";

	printf("flags:");
	for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
		if (flags & (1u << i)) {
			printf("%s %s", sep, flag_names[i]);
			sep = ",";
		}
	}
	printf("%s\n", flags ? "" : " none");
}

static void print_size_line(const char *key, uint64_t bytes)
{
	char s[SIZE_STR_LEN];

	printf("%s: %s (%llu bytes)\n", key, size_str(bytes, s, sizeof(s)),
	       (unsigned long long)bytes);
}

static bool job_recorded(const struct dm_chain_layer_info *info)
{
	unsigned int i;

	for (i = 0; i < DM_CHAIN_JOB_SIZE; i++)
		if (info->job[i])
			return true;
	return false;
}

/* A table index of the record, as text: "none" for NO_LAYER. */
static void index_str(uint32_t idx, char *buf, size_t len)
{
	if (idx == DM_CHAIN_JOB_NO_LAYER)
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%u", idx);
}

static void print_record_human(const struct layer *l)
{
	struct job_record rec;
	char top[16], base[16], dest[UUID_STR_LEN];

	if (!job_recorded(&l->info)) {
		printf("job: none\n");
		return;
	}
	if (job_record_get(&l->info, l->path, &rec) || !rec.present) {
		printf("job: recorded, unreadable\n");
		return;
	}
	index_str(rec.top, top, sizeof(top));
	index_str(rec.base, base, sizeof(base));
	printf("job: %s, phase %s, table index top %s, base %s, %llu of %llu bytes done\n",
	       job_type_name(rec.type), job_phase_name(rec.phase), top, base,
	       (unsigned long long)rec.done, (unsigned long long)rec.total);
	if (rec.type == DM_CHAIN_JOB_MIRROR) {
		uuid_str(rec.dest_uuid, dest);
		printf("job destination: %s (%s%s%s)\n",
		       rec.dest_hint[0] ? rec.dest_hint : "-",
		       rec.flags & DM_CHAIN_JOB_DEST_RAW ? "raw" : dest,
		       rec.flags & DM_CHAIN_JOB_SHALLOW ? ", shallow" : "",
		       rec.flags & DM_CHAIN_JOB_DEST_ZEROED ? ", zeroed" : "");
	}
}

/*
 * The columns of info as a table (-o, --json...): a line a layer.  The
 * names are qemu-img info's where it has the field; the job record's
 * fields start with JOB-.
 */
static const struct out_col info_cols[] = {
	{ "FILENAME",	"the layer's file or device",		OUT_STR,  0.3 },
	{ "FORMAT",	"dm-chain or raw",			OUT_STR,  8 },
	{ "VIRTUAL-SIZE", "size of the disk",			OUT_SIZE, 6 },
	{ "ACTUAL-SIZE", "bytes the file takes on its file system", OUT_SIZE, 6 },
	{ "LAYER-SIZE",	"size of the file or device",		OUT_SIZE, 6 },
	{ "CLUSTER-SIZE", "cluster size",			OUT_SIZE, 5 },
	{ "UUID",	"the layer's uuid",			OUT_STR,  36 },
	{ "GENERATION",	"header generation",			OUT_NUM,  3 },
	{ "HEADER-SLOT", "header slot in use, 0 or 1",		OUT_NUM,  1 },
	{ "FLAGS",	"needs-check, invalidated, copy-destination", OUT_LIST, 0.1 },
	{ "BACKING-TYPE", "none, chain or raw",			OUT_STR,  5 },
	{ "BACKING-FILENAME", "the backing hint",		OUT_STR,  0.3 },
	{ "BACKING-UUID", "uuid of a chain backing layer",	OUT_STR,  36 },
	{ "VIRTUAL-CLUSTERS", "clusters of the disk",		OUT_NUM,  6 },
	{ "MAPPED-CLUSTERS", "clusters whose data is in the layer", OUT_NUM, 6 },
	{ "ZERO-CLUSTERS", "clusters the layer marks zero",	OUT_NUM,  6 },
	{ "ABSENT-CLUSTERS", "clusters read from below",	OUT_NUM,  6 },
	{ "ALLOCATED-CLUSTERS", "data clusters in use",		OUT_NUM,  6 },
	{ "JOB",	"a job record is there",		OUT_BOOL, 1 },
	{ "JOB-TYPE",	"the recorded job's type",		OUT_STR,  6 },
	{ "JOB-PHASE",	"its phase",				OUT_STR,  6 },
	{ "JOB-TOP-INDEX", "table index of its top layer",	OUT_NUM,  2 },
	{ "JOB-BASE-INDEX", "table index of its base (null: none)", OUT_NUM, 2 },
	{ "JOB-CURSOR",	"the cluster it goes on from",		OUT_NUM,  6 },
	{ "JOB-DONE",	"bytes done",				OUT_NUM,  6 },
	{ "JOB-TOTAL",	"bytes in all",				OUT_NUM,  6 },
	{ "JOB-BANDWIDTH", "rate limit, bytes/s",		OUT_NUM,  6 },
	{ "JOB-SHALLOW", "a shallow copy",			OUT_BOOL, 1 },
	{ "JOB-PAUSED",	"paused",				OUT_BOOL, 1 },
	{ "JOB-DESTINATION", "a copy's destination (its hint)",	OUT_STR,  0.2 },
	{ "JOB-DESTINATION-RAW", "the destination is raw",	OUT_BOOL, 1 },
	{ "JOB-DESTINATION-UUID", "uuid of a chain destination", OUT_STR, 36 },
};
#define INFO_NCOLS	(sizeof(info_cols) / sizeof(info_cols[0]))
#define INFO_DEFAULT	"FILENAME,FORMAT,VIRTUAL-SIZE,ACTUAL-SIZE,BACKING-FILENAME"

static void record_cells(struct out_table *t, struct libscols_line *ln,
			 const struct layer *l)
{
	struct job_record rec;

	if (!job_recorded(&l->info) ||
	    job_record_get(&l->info, l->path, &rec) || !rec.present)
		return;
	out_str(t, ln, "JOB-TYPE", job_type_name(rec.type));
	out_str(t, ln, "JOB-PHASE", job_phase_name(rec.phase));
	if (rec.top != DM_CHAIN_JOB_NO_LAYER)
		out_u64(t, ln, "JOB-TOP-INDEX", rec.top);
	if (rec.base != DM_CHAIN_JOB_NO_LAYER)
		out_u64(t, ln, "JOB-BASE-INDEX", rec.base);
	out_u64(t, ln, "JOB-CURSOR", rec.cursor);
	out_u64(t, ln, "JOB-DONE", rec.done);
	out_u64(t, ln, "JOB-TOTAL", rec.total);
	out_u64(t, ln, "JOB-BANDWIDTH", rec.bandwidth);
	out_bool(t, ln, "JOB-SHALLOW", rec.flags & DM_CHAIN_JOB_SHALLOW);
	out_bool(t, ln, "JOB-PAUSED", rec.flags & DM_CHAIN_JOB_PAUSED);
	if (rec.type == DM_CHAIN_JOB_MIRROR) {
		if (rec.dest_hint[0])
			out_str(t, ln, "JOB-DESTINATION", rec.dest_hint);
		out_bool(t, ln, "JOB-DESTINATION-RAW", rec.flags & DM_CHAIN_JOB_DEST_RAW);
		if (!(rec.flags & DM_CHAIN_JOB_DEST_RAW)) {
			char u[UUID_STR_LEN];

			uuid_str(rec.dest_uuid, u);
			out_str(t, ln, "JOB-DESTINATION-UUID", u);
		}
	}
}

static uint64_t allocated_clusters(const struct dm_chain_layer_info *info)
{
	return info->data_end - (info->data_offset >> info->cluster_shift);
}

static void print_human(const struct layer *l, const struct entry_counts *c)
{
	const struct dm_chain_layer_info *info = &l->info;
	char u[UUID_STR_LEN];

	printf("image: %s\nfile format: %s\n", l->path, l->raw ? "raw" : "dm-chain");
	print_size_line("virtual size", l->raw ? l->size : info->virtual_size);
	print_size_line("disk size", l->disk_bytes);
	if (l->raw)
		return;
	print_size_line("layer size", l->size);
	print_size_line("cluster size", info->cluster_size);
	uuid_str(info->uuid, u);
	printf("uuid: %s\ngeneration: %llu (header slot %d)\n", u,
	       (unsigned long long)info->generation, info->slot);
	print_flags_human(info->flags);
	printf("backing type: %s\n", backing_type_name(info->backing_type));
	if (info->backing_type != DM_CHAIN_BACKING_NONE)
		printf("backing file: %s\n", info->backing_hint);
	if (info->backing_type == DM_CHAIN_BACKING_CHAIN) {
		uuid_str(info->backing_uuid, u);
		printf("backing uuid: %s\n", u);
	}
	printf("clusters: %llu (%llu mapped, %llu zero, %llu absent)\n",
	       (unsigned long long)info->nr_clusters,
	       (unsigned long long)c->mapped, (unsigned long long)c->zero,
	       (unsigned long long)c->absent);
	printf("allocated clusters: %llu\n",
	       (unsigned long long)allocated_clusters(info));
	print_record_human(l);
}

static int layer_cells(struct out_table *t, const struct layer *l,
		       const struct entry_counts *c)
{
	const struct dm_chain_layer_info *info = &l->info;
	struct libscols_line *ln = out_line(t);
	char u[UUID_STR_LEN], flags[64] = "";
	unsigned int i;

	if (!ln) {
		errmsg(l->path, "out of memory");
		return -1;
	}
	out_str(t, ln, "FILENAME", l->path);
	out_str(t, ln, "FORMAT", l->raw ? "raw" : "dm-chain");
	out_u64(t, ln, "VIRTUAL-SIZE", l->raw ? l->size : info->virtual_size);
	out_u64(t, ln, "ACTUAL-SIZE", l->disk_bytes);
	if (l->raw)
		return 0;
	out_u64(t, ln, "LAYER-SIZE", l->size);
	out_u64(t, ln, "CLUSTER-SIZE", info->cluster_size);
	uuid_str(info->uuid, u);
	out_str(t, ln, "UUID", u);
	out_u64(t, ln, "GENERATION", info->generation);
	out_u64(t, ln, "HEADER-SLOT", info->slot);
	for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
		if (info->flags & (1u << i))
			snprintf(flags + strlen(flags), sizeof(flags) - strlen(flags),
				 "%s%s", *flags ? "\n" : "", flag_names[i]);
	if (*flags)
		out_list(t, ln, "FLAGS", flags);
	out_str(t, ln, "BACKING-TYPE", backing_type_name(info->backing_type));
	if (info->backing_type)
		out_str(t, ln, "BACKING-FILENAME", info->backing_hint);
	if (info->backing_type == DM_CHAIN_BACKING_CHAIN) {
		uuid_str(info->backing_uuid, u);
		out_str(t, ln, "BACKING-UUID", u);
	}
	out_u64(t, ln, "VIRTUAL-CLUSTERS", info->nr_clusters);
	out_u64(t, ln, "MAPPED-CLUSTERS", c->mapped);
	out_u64(t, ln, "ZERO-CLUSTERS", c->zero);
	out_u64(t, ln, "ABSENT-CLUSTERS", c->absent);
	out_u64(t, ln, "ALLOCATED-CLUSTERS", allocated_clusters(info));
	out_bool(t, ln, "JOB", job_recorded(info));
	record_cells(t, ln, l);
	return 0;
}

/* One layer, its header already loaded unless raw: a line of t, or text. */
static int describe(const struct layer *l, struct out_table *t, bool first)
{
	struct entry_counts counts = { 0 };

	if (!l->raw && layer_count_entries(l, NULL, NULL, &counts))
		return -1;
	if (t)
		return layer_cells(t, l, &counts);
	if (!first)
		putchar('\n');
	print_human(l, &counts);
	return 0;
}

static int info_one(const char *path, struct out_table *t)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	struct layer l;
	int r = -1;

	if (layer_open(&l, path, O_RDONLY))
		return -1;
	if (layer_read_slots(&l, blocks))
		goto out;
	/* Without the magic it is plain data, shown as raw like qemu-img. */
	l.raw = !slots_have_magic(blocks);
	if (l.raw || !layer_load_header(&l))
		r = describe(&l, t, true);
out:
	layer_close(&l);
	return r;
}

static int info_chain(const char *top, struct out_table *t)
{
	struct chain *c = chain_alloc();
	unsigned int i;
	int r = -1;

	if (!c || chain_discover(c, top))
		goto out;
	for (i = c->n; i-- > 0;)
		if (describe(&c->layer[i], t, i == c->n - 1))
			goto out;
	r = 0;
out:
	chain_free(c);
	return r;
}

void info_help(void)
{
	out_help_columns(info_cols, INFO_NCOLS,
			 INFO_DEFAULT "; with --json, all of them");
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backing-chain",	no_argument, NULL, 'B' },
		OUT_LONG_OPTIONS,
		{ "help",		no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct out_opts o = { .columns = NULL };
	struct out_table t, *tp = NULL;
	const char *defaults;
	bool chain = false;
	int c, r;

	while ((c = getopt_long(argc, argv, OUT_SHORT_OPTIONS "h", opts, NULL)) != -1) {
		if (out_option(&o, c, optarg))
			continue;
		switch (c) {
		case 'B':
			chain = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (optind != argc - 1)
		return usage_error("expects one layer path");
	/* JSON holds every field, as qemu-img info's; a table the usual ones. */
	defaults = o.json ? NULL : INFO_DEFAULT;
	if (out_wanted(&o)) {
		if (out_begin(&t, &o, "layers", info_cols, INFO_NCOLS, defaults))
			return EXIT_USAGE;
		tp = &t;
	}
	r = chain ? info_chain(argv[optind], tp) : info_one(argv[optind], tp);
	/* A layer that cannot be read prints no table, only its error. */
	if (tp && r)
		scols_unref_table(t.tb);
	else if (tp && out_end(tp))
		r = -1;
	return r ? EXIT_FAIL : EXIT_OK;
}
