// SPDX-License-Identifier: GPL-2.0-only
/*
 * chain-poke: test helper that damages and fills layers in precise ways,
 * so the host tests can check that chainadm refuses each corruption with
 * the right message.  Not installed, not part of chainadm.
 *
 *   chain-poke crc <string>                   print crc32c(string)
 *   chain-poke <layer> set <field> <value> [<slot>]
 *        patch a header field in both slots (or one) and re-checksum;
 *        fields: magic version incompat flags cluster_size virtual_size
 *        table_size data_offset data_end generation backing_type hint
 *        backing_uuid (value: @<layer> copies that layer's UUID)
 *   chain-poke <layer> entry <cluster> <hex>  write a raw table entry (and
 *                                             mark its block in the map)
 *   chain-poke <layer> alloc <cluster>        append a data cluster, map it
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "chainadm.h"

const struct verb *current_verb;

static void die(const char *what)
{
	fprintf(stderr, "chain-poke: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(2);
}

static int open_layer(const char *path, __u8 *blocks, uint64_t *size)
{
	struct stat st;
	int fd = open(path, O_RDWR);

	if (fd < 0 || fstat(fd, &st))
		die(path);
	if (pread(fd, blocks, DM_CHAIN_TABLE_OFFSET, 0) != DM_CHAIN_TABLE_OFFSET)
		die(path);
	*size = st.st_size;
	return fd;
}

static void load_info(const char *path, struct dm_chain_layer_info *info,
		      int *fdp, __u8 *blocks)
{
	char err[256];
	uint64_t size;
	int fd = open_layer(path, blocks, &size);

	if (dm_chain_header_read(blocks, size, info, err, sizeof(err))) {
		fprintf(stderr, "chain-poke: %s: %s\n", path, err);
		exit(2);
	}
	if (fdp)
		*fdp = fd;
	else
		close(fd);
}

static void set_uuid(__u8 *dst, const char *val)
{
	struct dm_chain_layer_info other;
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];

	if (val[0] != '@') {
		errno = EINVAL;
		die("backing_uuid value must be @<layer>");
	}
	load_info(val + 1, &other, NULL, blocks);
	memcpy(dst, other.uuid, DM_CHAIN_UUID_SIZE);
}

static void set_field(struct dm_chain_disk_header *h, const char *f,
		      const char *val)
{
	uint64_t v = strtoull(val, NULL, 0);

	if (!strcmp(f, "magic"))
		h->magic = cpu_to_le64(v);
	else if (!strcmp(f, "version"))
		h->version = cpu_to_le32(v);
	else if (!strcmp(f, "incompat"))
		h->incompat_features = cpu_to_le64(v);
	else if (!strcmp(f, "flags"))
		h->flags = cpu_to_le32(v);
	else if (!strcmp(f, "cluster_size"))
		h->cluster_size = cpu_to_le32(v);
	else if (!strcmp(f, "virtual_size"))
		h->virtual_size = cpu_to_le64(v);
	else if (!strcmp(f, "table_size"))
		h->table_size = cpu_to_le64(v);
	else if (!strcmp(f, "data_offset"))
		h->data_offset = cpu_to_le64(v);
	else if (!strcmp(f, "data_end"))
		h->data_end = cpu_to_le64(v);
	else if (!strcmp(f, "generation"))
		h->generation = cpu_to_le64(v);
	else if (!strcmp(f, "backing_type"))
		h->backing_type = cpu_to_le32(v);
	else if (!strcmp(f, "backing_uuid"))
		set_uuid(h->backing_uuid, val);
	else if (!strcmp(f, "hint")) {
		memset(h->backing_hint, 0, DM_CHAIN_HINT_SIZE);
		memcpy(h->backing_hint, val, strlen(val));
		h->hint_len = cpu_to_le32(strlen(val));
	} else {
		errno = EINVAL;
		die(f);
	}
}

static void write_slots(int fd, const __u8 *blocks)
{
	if (pwrite(fd, blocks, DM_CHAIN_TABLE_OFFSET, 0) != DM_CHAIN_TABLE_OFFSET)
		die("write header");
}

static void cmd_set(const char *path, int argc, char **argv)
{
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	uint64_t size;
	int fd = open_layer(path, blocks, &size), s;

	for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++) {
		struct dm_chain_disk_header *h =
			(void *)(blocks + s * DM_CHAIN_BLOCK_SIZE);

		if (argc > 2 && atoi(argv[2]) != s)
			continue;
		set_field(h, argv[0], argv[1]);
		h->csum = cpu_to_le32(dm_chain_header_csum(h));
	}
	write_slots(fd, blocks);
	close(fd);
}

/* Write an entry and mark its table block in the table map. */
static void write_entry(int fd, const struct dm_chain_layer_info *info,
			uint64_t vc, uint64_t e)
{
	uint64_t block = vc / DM_CHAIN_ENTRIES_PER_BLOCK;
	__le64 le = cpu_to_le64(e);
	__u8 byte = 0;

	if (pwrite(fd, &le, 8, info->table_offset + vc * 8) != 8)
		die("write entry");
	if (pread(fd, &byte, 1, info->map_offset + block / 8) < 0)
		die("read map");
	byte |= 1u << (block % 8);
	if (pwrite(fd, &byte, 1, info->map_offset + block / 8) != 1)
		die("write map");
}

/* Append a cluster stamped with its virtual number, map it, bump data_end. */
static void cmd_alloc(const char *path, uint64_t vc)
{
	struct dm_chain_layer_info info;
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	char *data;
	__u64 gen;
	int fd, s;

	load_info(path, &info, &fd, blocks);
	data = malloc(info.cluster_size);
	if (!data)
		die("malloc");
	memset(data, 'A' + vc % 26, info.cluster_size);
	if (pwrite(fd, data, info.cluster_size,
		   info.data_end << info.cluster_shift) != info.cluster_size)
		die("write data");
	write_entry(fd, &info, vc,
		    dm_chain_make_entry(DM_CHAIN_ENTRY_MAPPED, info.data_end));
	info.data_end++;
	/* Both slots newer, each keeping generation mod 2 == slot. */
	gen = info.generation;
	for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++) {
		info.generation = gen + 1 + (gen + 1 + s) % 2;
		dm_chain_header_pack(&info, blocks + s * DM_CHAIN_BLOCK_SIZE);
	}
	write_slots(fd, blocks);
	free(data);
	close(fd);
}

int main(int argc, char **argv)
{
	struct dm_chain_layer_info info;
	__u8 blocks[DM_CHAIN_TABLE_OFFSET];
	int fd;

	if (argc == 3 && !strcmp(argv[1], "crc")) {
		printf("%08x\n", dm_chain_crc32c(~0u, argv[2], strlen(argv[2])) ^ ~0u);
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[2], "set")) {
		cmd_set(argv[1], argc - 3, argv + 3);
	} else if (argc == 5 && !strcmp(argv[2], "entry")) {
		load_info(argv[1], &info, &fd, blocks);
		write_entry(fd, &info, strtoull(argv[3], NULL, 0),
			    strtoull(argv[4], NULL, 16));
		close(fd);
	} else if (argc == 4 && !strcmp(argv[2], "alloc")) {
		cmd_alloc(argv[1], strtoull(argv[3], NULL, 0));
	} else {
		fprintf(stderr, "usage: see the comment at the top of chain-poke.c\n");
		return 1;
	}
	return 0;
}
