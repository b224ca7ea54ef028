// SPDX-License-Identifier: GPL-2.0-only
/*
 * chainadm info: what a layer is, in the manner of qemu-img info.
 */
#include <fcntl.h>
#include <getopt.h>

#include "chain.h"
#include "job.h"
#include "json.h"

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

static void print_record_json(struct json *j, const struct layer *l)
{
	struct job_record rec;
	char u[UUID_STR_LEN];

	if (!job_recorded(&l->info) ||
	    job_record_get(&l->info, l->path, &rec) || !rec.present)
		return;
	json_open(j, "job-record", '{');
	json_str(j, "type", job_type_name(rec.type));
	json_str(j, "phase", job_phase_name(rec.phase));
	if (rec.top != DM_CHAIN_JOB_NO_LAYER)
		json_u64(j, "top-index", rec.top);
	else
		json_str(j, "top-index", NULL);
	if (rec.base != DM_CHAIN_JOB_NO_LAYER)
		json_u64(j, "base-index", rec.base);
	else
		json_str(j, "base-index", NULL);
	json_u64(j, "cursor", rec.cursor);
	json_u64(j, "bytes-done", rec.done);
	json_u64(j, "bytes-total", rec.total);
	json_u64(j, "bandwidth", rec.bandwidth);
	json_bool(j, "shallow", rec.flags & DM_CHAIN_JOB_SHALLOW);
	json_bool(j, "paused", rec.flags & DM_CHAIN_JOB_PAUSED);
	if (rec.type == DM_CHAIN_JOB_MIRROR) {
		json_str(j, "destination", rec.dest_hint[0] ? rec.dest_hint : NULL);
		json_bool(j, "destination-raw", rec.flags & DM_CHAIN_JOB_DEST_RAW);
		uuid_str(rec.dest_uuid, u);
		json_str(j, "destination-uuid",
			 rec.flags & DM_CHAIN_JOB_DEST_RAW ? NULL : u);
	}
	json_close(j, '}');
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

static void print_json(struct json *j, const struct layer *l,
		       const struct entry_counts *c)
{
	const struct dm_chain_layer_info *info = &l->info;
	char u[UUID_STR_LEN];
	unsigned int i;

	json_open(j, NULL, '{');
	json_str(j, "filename", l->path);
	json_str(j, "format", l->raw ? "raw" : "dm-chain");
	json_u64(j, "virtual-size", l->raw ? l->size : info->virtual_size);
	json_u64(j, "actual-size", l->disk_bytes);
	if (!l->raw) {
		json_u64(j, "layer-size", l->size);
		json_u64(j, "cluster-size", info->cluster_size);
		uuid_str(info->uuid, u);
		json_str(j, "uuid", u);
		json_u64(j, "generation", info->generation);
		json_u64(j, "header-slot", info->slot);
		json_open(j, "flags", '[');
		for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++)
			if (info->flags & (1u << i))
				json_str(j, NULL, flag_names[i]);
		json_close(j, ']');
		json_str(j, "backing-type", backing_type_name(info->backing_type));
		json_str(j, "backing-filename",
			 info->backing_type ? info->backing_hint : NULL);
		uuid_str(info->backing_uuid, u);
		json_str(j, "backing-uuid",
			 info->backing_type == DM_CHAIN_BACKING_CHAIN ? u : NULL);
		json_open(j, "clusters", '{');
		json_u64(j, "virtual", info->nr_clusters);
		json_u64(j, "mapped", c->mapped);
		json_u64(j, "zero", c->zero);
		json_u64(j, "absent", c->absent);
		json_close(j, '}');
		json_u64(j, "allocated-clusters", allocated_clusters(info));
		json_bool(j, "job", job_recorded(info));
		print_record_json(j, l);
	}
	json_close(j, '}');
}

/* One layer, its header already loaded unless raw. */
static int describe(const struct layer *l, struct json *j, bool first)
{
	struct entry_counts counts = { 0 };

	if (!l->raw && layer_count_entries(l, NULL, NULL, &counts))
		return -1;
	if (j) {
		print_json(j, l, &counts);
		return 0;
	}
	if (!first)
		putchar('\n');
	print_human(l, &counts);
	return 0;
}

static int info_one(const char *path, struct json *j)
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
		r = describe(&l, j, true);
out:
	layer_close(&l);
	return r;
}

static int info_chain(const char *top, struct json *j)
{
	struct chain *c = chain_alloc();
	unsigned int i;
	int r = -1;

	if (!c || chain_discover(c, top))
		goto out;
	if (j)
		json_open(j, NULL, '[');
	for (i = c->n; i-- > 0;)
		if (describe(&c->layer[i], j, i == c->n - 1))
			goto out;
	if (j)
		json_close(j, ']');
	r = 0;
out:
	chain_free(c);
	return r;
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "backing-chain",	no_argument, NULL, 'B' },
		{ "json",		no_argument, NULL, 'J' },
		{ "help",		no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool chain = false, json = false;
	struct json j;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'B':
			chain = true;
			break;
		case 'J':
			json = true;
			break;
		case 'h':
			return print_help();
		default:
			return try_help();
		}
	}
	if (optind != argc - 1)
		return usage_error("expects one layer path");
	json_init(&j, stdout);
	r = chain ? info_chain(argv[optind], json ? &j : NULL) :
		    info_one(argv[optind], json ? &j : NULL);
	return r ? EXIT_FAIL : EXIT_OK;
}
