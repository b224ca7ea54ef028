// SPDX-License-Identifier: GPL-2.0
/*
 * lw-replay - list or replay a dm-log-writes log (format in lw-format.h).
 *
 * dm-log-writes logs a write only once the flush that made it durable has
 * completed, so replaying the log up to a FLUSH/FUA entry or a mark gives
 * exactly what a disk could hold after a power cut at that point.  A test
 * replays to each such point in turn and checks the result; --start lets
 * it continue from the previous point instead of starting over, since the
 * replay device already holds entries 0..start-1.
 *
 * Entry indexes count from 0 and include MARK and FLUSH entries, the same
 * numbering that --list prints.
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

const char *progname = "lw-replay";

#define COPY_CHUNK	(1u << 20)
#define NO_LIMIT	UINT64_MAX

struct config {
	const char *log_path;
	const char *replay_path;
	const char *end_mark;
	uint64_t start;
	uint64_t limit;		/* last entry index to replay, inclusive */
	bool list;
};

struct log {
	struct dev dev;
	uint32_t ss;		/* sectorsize of the log and the entries */
	uint64_t nr_entries;
	uint64_t idx;		/* index of the next entry */
	uint64_t pos;		/* byte offset of the next entry */
	unsigned char *blk;	/* one aligned sectorsize block */
};

struct entry {
	uint64_t idx;
	uint64_t sector;
	uint64_t nr_sectors;
	uint64_t flags;
	uint64_t data_pos;	/* byte offset of the data in the log */
	uint64_t data_bytes;
	char mark[LW_MAX_SECTORSIZE];
};

static int log_bad(const struct log *log, const char *what, uint64_t idx)
{
	reportf(log->dev.path, "corrupt log", "entry %" PRIu64 ": %s", idx,
		what);
	return -1;
}

static int log_open(struct log *log, const char *path)
{
	struct lw_super sb;

	if (dev_open(&log->dev, path, O_RDONLY))
		return -1;
	log->blk = alloc_aligned(LW_MAX_SECTORSIZE);
	/* The super fits in the smallest possible block. */
	if (xpread(log->dev.fd, log->blk, SECTOR_SIZE, 0, path))
		return -1;
	memcpy(&sb, log->blk, sizeof(sb));
	if (le64toh(sb.magic) != LW_MAGIC) {
		report(path, "not a dm-log-writes log", 0);
		return -1;
	}
	if (le64toh(sb.version) != LW_VERSION) {
		reportf(path, "unsupported log version", "%" PRIu64,
			le64toh(sb.version));
		return -1;
	}
	log->ss = le32toh(sb.sectorsize);
	if (!is_pow2(log->ss) || log->ss < SECTOR_SIZE ||
	    log->ss > LW_MAX_SECTORSIZE) {
		reportf(path, "bad sectorsize in log super", "%u", log->ss);
		return -1;
	}
	log->nr_entries = le64toh(sb.nr_entries);
	log->idx = 0;
	log->pos = log->ss;
	return 0;
}

static void log_close(struct log *log)
{
	free(log->blk);
	dev_close(&log->dev);
}

/* Size of the data following entry @e, bounds-checked against the log. */
static int entry_data(struct log *log, struct entry *e)
{
	uint64_t room = log->dev.size - e->data_pos;

	e->data_bytes = 0;
	if (e->flags & LW_DISCARD)
		return 0;
	if (e->nr_sectors > room / log->ss)
		return log_bad(log, "data runs past the end of the log",
			       e->idx);
	e->data_bytes = e->nr_sectors * log->ss;
	return 0;
}

/* Read entry log->idx into @e; returns 1, 0 at the end of the log, -1. */
static int log_next(struct log *log, struct entry *e)
{
	struct lw_entry raw;
	uint64_t mark_len;

	if (log->idx >= log->nr_entries)
		return 0;
	if (log->pos > log->dev.size || log->dev.size - log->pos < log->ss)
		return log_bad(log, "header past the end of the log", log->idx);
	if (xpread(log->dev.fd, log->blk, log->ss, log->pos, log->dev.path))
		return -1;
	memcpy(&raw, log->blk, sizeof(raw));
	e->idx = log->idx;
	e->sector = le64toh(raw.sector);
	e->nr_sectors = le64toh(raw.nr_sectors);
	e->flags = le64toh(raw.flags);
	e->data_pos = log->pos + log->ss;
	e->mark[0] = '\0';
	/* Every real entry has a flag or data; a zeroed block means a bad log. */
	if (!e->flags && !e->nr_sectors)
		return log_bad(log, "empty entry (zeroed or torn log?)", e->idx);
	if (e->flags & LW_MARK) {
		mark_len = le64toh(raw.data_len);
		if (mark_len >= log->ss - sizeof(raw))
			return log_bad(log, "mark name too long", e->idx);
		memcpy(e->mark, log->blk + sizeof(raw), mark_len);
		e->mark[mark_len] = '\0';
	}
	if (entry_data(log, e))
		return -1;
	log->pos = e->data_pos + e->data_bytes;
	log->idx++;
	return 1;
}

static void print_entry(const struct entry *e)
{
	static const char *const names[LW_NR_FLAGS] = {
		"FLUSH", "FUA", "DISCARD", "MARK", "METADATA",
	};
	char flags[64] = "";
	int i;

	for (i = 0; i < LW_NR_FLAGS; i++) {
		if (!(e->flags & (1u << i)))
			continue;
		if (flags[0])
			strcat(flags, "|");
		strcat(flags, names[i]);
	}
	if (e->flags >> LW_NR_FLAGS)
		snprintf(flags + strlen(flags), sizeof(flags) - strlen(flags),
			 "%s0x%" PRIx64, flags[0] ? "|" : "",
			 e->flags >> LW_NR_FLAGS << LW_NR_FLAGS);
	printf("%" PRIu64 " %s %" PRIu64 " %" PRIu64 " %s\n", e->idx,
	       flags[0] ? flags : "-", e->sector, e->nr_sectors,
	       e->mark[0] ? e->mark : "-");
}

/* Byte range on the replay device of entry @e, bounds-checked. */
static int entry_target(const struct log *log, const struct dev *rep,
			const struct entry *e, uint64_t *off, uint64_t *len)
{
	uint64_t blocks = rep->size / log->ss;

	if (e->sector > blocks || e->nr_sectors > blocks - e->sector) {
		reportf(rep->path, "entry outside the replay device",
			"entry %" PRIu64 ": sector %" PRIu64 " + %" PRIu64
			" (device has %" PRIu64 " blocks of %u bytes)", e->idx,
			e->sector, e->nr_sectors, blocks, log->ss);
		return -1;
	}
	*off = e->sector * log->ss;
	*len = e->nr_sectors * log->ss;
	return 0;
}

static int copy_data(struct log *log, struct dev *rep, const struct entry *e,
		     uint64_t off, unsigned char *buf)
{
	uint64_t done, n;

	for (done = 0; done < e->data_bytes; done += n) {
		n = e->data_bytes - done;
		if (n > COPY_CHUNK)
			n = COPY_CHUNK;
		if (xpread(log->dev.fd, buf, n, e->data_pos + done,
			   log->dev.path) ||
		    xpwrite(rep->fd, buf, n, off + done, rep->path))
			return -1;
	}
	return 0;
}

/* A discard is replayed as zeroes, so replay results are deterministic. */
static int replay_entry(struct log *log, struct dev *rep,
			const struct entry *e, unsigned char *buf)
{
	uint64_t off, len;

	if (!e->nr_sectors)
		return 0;
	if (entry_target(log, rep, e, &off, &len))
		return -1;
	if (e->flags & LW_DISCARD)
		return dev_zeroout(rep, off, len);
	return copy_data(log, rep, e, off, buf);
}

struct progress {
	uint64_t first, last;	/* entries handled, NO_LIMIT if none */
	uint64_t writes, discards, bytes;
	bool mark_seen;
};

/* Returns 1 to go on after entry @e, 0 to stop, -1 on error. */
static int handle_entry(const struct config *c, struct log *log,
			struct dev *rep, const struct entry *e,
			unsigned char *buf, struct progress *p)
{
	if (c->list)
		print_entry(e);
	else if (replay_entry(log, rep, e, buf))
		return -1;
	if (p->first == NO_LIMIT)
		p->first = e->idx;
	p->last = e->idx;
	if (e->nr_sectors && (e->flags & LW_DISCARD))
		p->discards++;
	else if (e->nr_sectors)
		p->writes++;
	if (!(e->flags & LW_DISCARD))
		p->bytes += e->data_bytes;
	if (c->end_mark && (e->flags & LW_MARK) &&
	    !strcmp(e->mark, c->end_mark)) {
		p->mark_seen = true;
		return 0;
	}
	return e->idx < c->limit;
}

static int check_stop(const struct config *c, const struct log *log,
		      const struct progress *p)
{
	if (c->end_mark && !p->mark_seen) {
		reportf(log->dev.path, "end mark not found", "'%s' in entries %"
			PRIu64 "..%" PRIu64, c->end_mark, c->start,
			p->last == NO_LIMIT ? c->start : p->last);
		return -1;
	}
	if (c->limit != NO_LIMIT && p->last != c->limit && !p->mark_seen) {
		reportf(log->dev.path, "no such entry", "--limit %" PRIu64
			": the log has %" PRIu64 " entries", c->limit,
			log->nr_entries);
		return -1;
	}
	return 0;
}

static int walk(const struct config *c, struct log *log, struct dev *rep)
{
	struct progress p = { .first = NO_LIMIT, .last = NO_LIMIT };
	unsigned char *buf = alloc_aligned(COPY_CHUNK);
	struct entry *e = malloc(sizeof(*e));
	int ret = -1, r = 1;

	if (!e) {
		report("memory", "cannot allocate entry", ENOMEM);
		goto out;
	}
	if (c->list)
		printf("# sectorsize %u entries %" PRIu64 "\n", log->ss,
		       log->nr_entries);
	while (r > 0 && (r = log_next(log, e)) > 0)
		if (e->idx >= c->start)
			r = handle_entry(c, log, rep, e, buf, &p);
	if (r < 0 || check_stop(c, log, &p))
		goto out;
	if (!c->list && fdatasync(rep->fd)) {
		report(rep->path, "fdatasync", errno);
		goto out;
	}
	if (!c->list && p.first == NO_LIMIT)
		printf("%s: nothing to replay from entry %" PRIu64 "\n",
		       progname, c->start);
	else if (!c->list)
		printf("%s: replayed entries %" PRIu64 "..%" PRIu64 ": %" PRIu64
		       " writes (%" PRIu64 " bytes), %" PRIu64 " discards\n",
		       progname, p.first, p.last, p.writes, p.bytes,
		       p.discards);
	ret = 0;
out:
	free(e);
	free(buf);
	return ret;
}

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s --log PATH --replay PATH [--start N] [--limit N] [--end-mark NAME]\n"
" %s --log PATH --list [--start N] [--limit N] [--end-mark NAME]\n"
"\n"
"Replay (or list) the entries of a dm-log-writes log, in log order.\n"
"\n"
"Options:\n"
" --log PATH       log device or file written by dm-log-writes\n"
" --replay PATH    device or file to apply the writes to; discards are\n"
"                  applied as zeroes\n"
" --start N        first entry to handle; entries before it are assumed\n"
"                  replayed already (default 0)\n"
" --limit N        last entry to handle, inclusive (must exist)\n"
" --end-mark NAME  stop after the mark NAME (it must be found)\n"
" --list           print 'index flags sector nr_sectors mark' per entry\n"
"                  instead of replaying; sector and nr_sectors are in\n"
"                  units of the sectorsize in the '# sectorsize' header\n"
" -h, --help       display this help\n"
"\n"
"Entries are numbered from 0.  Exit status: 0 success, 2 usage, I/O\n"
"error, corrupt log or missing mark/entry.\n",
		progname, progname);
}

enum {
	OPT_LOG = 256, OPT_REPLAY, OPT_START, OPT_LIMIT, OPT_END_MARK, OPT_LIST,
};

static const struct option long_opts[] = {
	{ "log",	required_argument, NULL, OPT_LOG },
	{ "replay",	required_argument, NULL, OPT_REPLAY },
	{ "start",	required_argument, NULL, OPT_START },
	{ "limit",	required_argument, NULL, OPT_LIMIT },
	{ "end-mark",	required_argument, NULL, OPT_END_MARK },
	{ "list",	no_argument,	   NULL, OPT_LIST },
	{ "help",	no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct config *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_LOG:
		c->log_path = arg;
		return 0;
	case OPT_REPLAY:
		c->replay_path = arg;
		return 0;
	case OPT_END_MARK:
		c->end_mark = arg;
		return 0;
	case OPT_LIST:
		c->list = true;
		return 0;
	case OPT_START:
		return opt_u64("--start", arg, &c->start);
	case OPT_LIMIT:
		return opt_u64("--limit", arg, &c->limit);
	case 'h':
		usage(stdout);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static int parse_args(struct config *c, int argc, char **argv)
{
	int opt;

	*c = (struct config) { .limit = NO_LIMIT };
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		if (parse_one(c, opt, optarg))
			return -1;
	if (optind < argc) {
		reportf("arguments", "unexpected argument", "'%s'", argv[optind]);
		return -1;
	}
	if (!c->log_path || (!c->replay_path && !c->list)) {
		report("arguments", "--log and one of --replay or --list are "
		       "required", 0);
		return -1;
	}
	if (c->limit < c->start) {
		report("arguments", "--limit is before --start", 0);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct dev rep = { .fd = -1 };
	struct log log = { .dev = { .fd = -1 } };
	struct config c;
	int ret = EXIT_USAGE;

	if (parse_args(&c, argc, argv)) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
		return EXIT_USAGE;
	}
	if (log_open(&log, c.log_path))
		goto out_log;
	if (!c.list && dev_open(&rep, c.replay_path, O_RDWR))
		goto out_log;
	if (!walk(&c, &log, &rep))
		ret = EXIT_OK;
	dev_close(&rep);
out_log:
	log_close(&log);
	return ret;
}
