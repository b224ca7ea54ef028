// SPDX-License-Identifier: GPL-2.0
/*
 * lw-mklog - write a synthetic dm-log-writes log, for testing lw-replay
 * where no dm-log-writes target exists (the build host).
 *
 * Besides the log it applies the same operations straight to an in-memory
 * image and saves it at every mark (--snap-prefix) and at the end
 * (--image), so the replay result can be compared with an oracle that never
 * went through the log format.
 */
#define _GNU_SOURCE
#include "common.h"
#include "lw-format.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *progname = "lw-mklog";

struct mklog {
	const char *log_path;
	const char *image_path;
	const char *snap_prefix;
	uint64_t size;
	uint32_t ss;
	int fd;
	uint64_t pos;		/* where the next entry goes */
	uint64_t nr_entries;
	unsigned char *image;
	unsigned char *blk;	/* one sectorsize block */
};

static int save_image(const struct mklog *m, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ret;

	if (fd < 0) {
		report(path, "open", errno);
		return -1;
	}
	ret = xpwrite(fd, m->image, m->size, 0, path);
	close(fd);
	return ret;
}

/* Append one entry block and, unless @data is NULL, its data blocks. */
static int put_entry(struct mklog *m, uint64_t sect, uint64_t nr,
		     uint64_t flags, const char *mark, const void *data)
{
	struct lw_entry e = {
		.sector = htole64(sect),
		.nr_sectors = htole64(nr),
		.flags = htole64(flags),
		.data_len = htole64(mark ? strlen(mark) : 0),
	};

	memset(m->blk, 0, m->ss);
	memcpy(m->blk, &e, sizeof(e));
	if (mark)
		memcpy(m->blk + sizeof(e), mark, strlen(mark));
	if (xpwrite(m->fd, m->blk, m->ss, m->pos, m->log_path))
		return -1;
	m->pos += m->ss;
	if (data) {
		if (xpwrite(m->fd, data, nr * m->ss, m->pos, m->log_path))
			return -1;
		m->pos += nr * m->ss;
	}
	m->nr_entries++;
	return 0;
}

static int put_super(struct mklog *m)
{
	struct lw_super sb = {
		.magic = htole64(LW_MAGIC),
		.version = htole64(LW_VERSION),
		.nr_entries = htole64(m->nr_entries),
		.sectorsize = htole32(m->ss),
	};

	memset(m->blk, 0, m->ss);
	memcpy(m->blk, &sb, sizeof(sb));
	return xpwrite(m->fd, m->blk, m->ss, 0, m->log_path);
}

static int op_mark(struct mklog *m, const char *name)
{
	char *path;
	int ret;

	if (!*name || strlen(name) >= m->ss - sizeof(struct lw_entry) ||
	    strchr(name, '/')) {
		reportf(name, "invalid mark name", "empty, too long or has '/'");
		return -1;
	}
	if (put_entry(m, 0, 0, LW_MARK, name, NULL))
		return -1;
	if (!m->snap_prefix)
		return 0;
	if (asprintf(&path, "%s.%s", m->snap_prefix, name) < 0) {
		report("memory", "cannot allocate path", ENOMEM);
		return -1;
	}
	ret = save_image(m, path);
	free(path);
	return ret;
}

static int parse_flags(const char *s, uint64_t *flags)
{
	for (; *s; s++) {
		switch (*s) {
		case 'F':
			*flags |= LW_FLUSH;
			break;
		case 'U':
			*flags |= LW_FUA;
			break;
		case 'M':
			*flags |= LW_METADATA;
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* "w:SECT:NR[:FLAGS]" or "d:SECT:NR", in sectorsize units. */
static int op_range(struct mklog *m, const char *op)
{
	char kind, flagstr[8] = "";
	uint64_t sect, nr, flags = 0, off, len;
	struct rng r;
	int n;

	n = sscanf(op, "%c:%" SCNu64 ":%" SCNu64 ":%7s", &kind, &sect, &nr,
		   flagstr);
	if (n < 3 || !nr || parse_flags(flagstr, &flags) ||
	    (kind == 'd' && flags) ||
	    sect > m->size / m->ss || nr > m->size / m->ss - sect) {
		reportf(op, "invalid operation", "bad syntax, flags or range");
		return -1;
	}
	off = sect * m->ss;
	len = nr * m->ss;
	if (kind == 'd') {
		memset(m->image + off, 0, len);
		return put_entry(m, sect, nr, LW_DISCARD, NULL, NULL);
	}
	/* Data depends on the entry index, so every write is distinct. */
	rng_seed(&r, m->nr_entries * 0x9e3779b97f4a7c15ULL + 7);
	rng_fill(&r, m->image + off, len);
	return put_entry(m, sect, nr, flags, NULL, m->image + off);
}

static int do_op(struct mklog *m, const char *op)
{
	if (!strcmp(op, "f"))
		return put_entry(m, 0, 0, LW_FLUSH, NULL, NULL);
	if (!strncmp(op, "m:", 2))
		return op_mark(m, op + 2);
	if (!strncmp(op, "w:", 2) || !strncmp(op, "d:", 2))
		return op_range(m, op);
	reportf(op, "invalid operation", "want w:S:N[:FUM], d:S:N, f or "
		"m:NAME");
	return -1;
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s --log PATH --size BYTES [options] OP...\n"
"\n"
"Write a synthetic dm-log-writes log (test helper for lw-replay).\n"
"\n"
"Options:\n"
" --log PATH          log file to create\n"
" --size BYTES        size of the logged device\n"
" --sectorsize N      log block size (default 512)\n"
" --image PATH        save the expected device content at the end\n"
" --snap-prefix P     save the expected content at each mark as P.NAME\n"
" -h, --help          display this help\n"
"\n"
"Operations (sector and count in sectorsize units):\n"
" w:SECT:NR[:FLAGS]   write NR blocks of pseudo-random data; FLAGS any of\n"
"                     F (flush), U (FUA), M (metadata)\n"
" d:SECT:NR           discard (reads back as zeroes after replay)\n"
" f                   empty flush\n"
" m:NAME              mark\n"
"A final '" LW_END_MARK "' mark is added, like the target does.\n",
		progname);
}

static const struct option long_opts[] = {
	{ "log",	 required_argument, NULL, 'l' },
	{ "size",	 required_argument, NULL, 's' },
	{ "sectorsize",	 required_argument, NULL, 'b' },
	{ "image",	 required_argument, NULL, 'i' },
	{ "snap-prefix", required_argument, NULL, 'p' },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_args(struct mklog *m, int argc, char **argv)
{
	uint64_t ss = SECTOR_SIZE;
	int opt, err = 0;

	while (!err && (opt = getopt_long(argc, argv, "h", long_opts,
					  NULL)) != -1) {
		switch (opt) {
		case 'l':
			m->log_path = optarg;
			break;
		case 'i':
			m->image_path = optarg;
			break;
		case 'p':
			m->snap_prefix = optarg;
			break;
		case 's':
			err = opt_size("--size", optarg, &m->size);
			break;
		case 'b':
			err = opt_size("--sectorsize", optarg, &ss);
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		default:
			err = -1;
		}
	}
	if (err)
		return -1;
	if (!m->log_path || !m->size) {
		report("arguments", "--log and --size are required", 0);
		return -1;
	}
	if (!is_pow2(ss) || ss < SECTOR_SIZE || ss > LW_MAX_SECTORSIZE ||
	    m->size % ss) {
		report("--sectorsize", "not a power of two in 512..64K "
		       "dividing --size", 0);
		return -1;
	}
	m->ss = ss;
	return 0;
}

int main(int argc, char **argv)
{
	struct mklog m = { .fd = -1 };
	int i;

	if (parse_args(&m, argc, argv)) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
		return EXIT_USAGE;
	}
	m.image = calloc(1, m.size);
	m.blk = alloc_aligned(m.ss);
	if (!m.image) {
		report("memory", "cannot allocate image", ENOMEM);
		return EXIT_USAGE;
	}
	m.fd = open(m.log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (m.fd < 0) {
		report(m.log_path, "open", errno);
		return EXIT_USAGE;
	}
	m.pos = m.ss;
	for (i = optind; i < argc; i++)
		if (do_op(&m, argv[i]))
			return EXIT_USAGE;
	if (op_mark(&m, LW_END_MARK) || put_super(&m) ||
	    (m.image_path && save_image(&m, m.image_path)))
		return EXIT_USAGE;
	close(m.fd);
	free(m.image);
	free(m.blk);
	return EXIT_OK;
}
