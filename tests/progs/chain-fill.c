// SPDX-License-Identifier: GPL-2.0
/*
 * chain-fill - map a run of clusters in a dm-chain layer file, fast.
 *
 *   chain-fill LAYER FIRST COUNT HOST [--swap]
 *
 * Writes MAPPED table entries for virtual clusters FIRST .. FIRST+COUNT-1
 * of LAYER (a layer chainadm formatted, not in use) pointing at the data
 * area's clusters HOST, HOST+1, ... (with --swap, neighbours trade places: HOST+1,
 * HOST, HOST+3, HOST+2, ..., so that no leaf of the index is an extent),
 * and sets the table map bits of the blocks written, in 1 MiB writes.  The
 * data area is not written: the clusters read as whatever the sparse file
 * holds there (zeros).  The header is left alone: activation takes the
 * highest mapped host cluster + 1 as the allocation end.  For the bench's
 * scale section (Documentation/dm-chain-bench.rst), where a table of 2^27
 * entries must be made in seconds, and for tests that need a full layer.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

#define BLOCK		4096u
#define CHUNK		(1u << 20)
#define MAGIC_OFF	24
#define GEN_OFF		40
#define TABLE_OFF	72
#define TABLE_SIZE	80
#define MAP_OFF		1408
#define CLUSTER_OFF	36
#define DATA_OFF	88
#define ENTRY_MAPPED	(2ULL << 62)

const char *progname = "chain-fill";
static const uint64_t magic = 0x314e49414843444dULL;	/* "DMCHAIN1" */

static uint64_t le64_at(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int main(int argc, char **argv)
{
	uint64_t first, count, host, table, tsize, map, i, b, b0, b1;
	unsigned char hdr[2][BLOCK], *mapbuf;
	uint64_t *buf;
	int fd, s, cur = -1;
	bool swap;

	swap = argc == 6 && !strcmp(argv[5], "--swap");
	if ((argc != 5 && !swap) || parse_u64(argv[2], &first) ||
	    parse_u64(argv[3], &count) || parse_u64(argv[4], &host)) {
		fprintf(stderr, "usage: chain-fill LAYER FIRST COUNT HOST [--swap]\n");
		return EXIT_USAGE;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		report(argv[1], "open", errno);
		return EXIT_USAGE;
	}
	if (xpread(fd, hdr, sizeof(hdr), 0, argv[1]))
		return EXIT_USAGE;
	for (s = 0; s < 2; s++)
		if (le64_at(hdr[s] + MAGIC_OFF) == magic &&
		    (cur < 0 || le64_at(hdr[s] + GEN_OFF) > le64_at(hdr[cur] + GEN_OFF)))
			cur = s;
	if (cur < 0) {
		reportf(argv[1], "header", "not a dm-chain layer (no magic)");
		return EXIT_USAGE;
	}
	table = le64_at(hdr[cur] + TABLE_OFF);
	tsize = le64_at(hdr[cur] + TABLE_SIZE);
	map = le64_at(hdr[cur] + MAP_OFF);
	/* The data area's first cluster, counted from the device's start. */
	host += le64_at(hdr[cur] + DATA_OFF) /
		(le64_at(hdr[cur] + CLUSTER_OFF) & 0xffffffffu);
	if ((first + count) * 8 > tsize) {
		reportf(argv[1], "entries", "clusters %" PRIu64 "..%" PRIu64
			" are past the table (%" PRIu64 " entries)",
			first, first + count - 1, tsize / 8);
		return EXIT_USAGE;
	}
	buf = malloc(CHUNK);
	if (!buf) {
		report("buffer", "malloc", ENOMEM);
		return EXIT_USAGE;
	}
	/* Whole table blocks: what the run shares with its neighbours stays. */
	b0 = first * 8 / BLOCK;
	b1 = ((first + count) * 8 + BLOCK - 1) / BLOCK;
	for (b = b0; b < b1; b += CHUNK / BLOCK) {
		uint64_t n = b1 - b < CHUNK / BLOCK ? b1 - b : CHUNK / BLOCK;
		uint64_t c0 = b * BLOCK / 8, c;

		if (xpread(fd, buf, n * BLOCK, table + b * BLOCK, argv[1]))
			return EXIT_USAGE;
		for (c = c0; c < c0 + n * BLOCK / 8; c++) {
			if (c < first || c >= first + count)
				continue;
			i = c - first;
			buf[c - c0] = ENTRY_MAPPED | (host + (swap ? i ^ 1 : i));
		}
		if (xpwrite(fd, buf, n * BLOCK, table + b * BLOCK, argv[1]))
			return EXIT_USAGE;
	}
	/* A table block is written before its bit, as the kernel does. */
	if (fdatasync(fd)) {
		report(argv[1], "fdatasync", errno);
		return EXIT_USAGE;
	}
	mapbuf = calloc(1, (b1 + 7) / 8 - b0 / 8 + 1);
	if (!mapbuf ||
	    xpread(fd, mapbuf, (b1 + 7) / 8 - b0 / 8, map + b0 / 8, argv[1]))
		return EXIT_USAGE;
	for (b = b0; b < b1; b++)
		mapbuf[b / 8 - b0 / 8] |= 1u << (b % 8);
	if (xpwrite(fd, mapbuf, (b1 + 7) / 8 - b0 / 8, map + b0 / 8, argv[1]) ||
	    fdatasync(fd))
		return EXIT_USAGE;
	close(fd);
	return EXIT_OK;
}
