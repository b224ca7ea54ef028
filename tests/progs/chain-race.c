// SPDX-License-Identifier: GPL-2.0
/*
 * chain-race - race stress on a few clusters of a block device.
 *
 * Threads write stamped data, read and check it, discard and write-zeroes
 * (whole clusters and parts of them) and flush, all on the same few
 * clusters, for a number of rounds.  Between rounds everything is
 * quiesced and every sector is read back and judged:
 *
 *  - zeros, the initial stamp of that sector (id 0), or the stamp of a
 *    write to that very sector: never another sector's stamp, never a
 *    torn or unknown one;
 *  - and not stale: the value must come from an operation covering the
 *    sector that no other operation covering it superseded, i.e. none
 *    that began after it completed wrote, zeroed or discarded the whole
 *    cluster.  A partial discard is advisory: it may leave zeros or the
 *    old data.  (The value found at the end of the previous round counts
 *    as an operation that completed before the round began.)
 *
 * Reads during a round check the first rule only (where concurrent ops
 * leave any of several values).
 *
 * The stamp is chain-stamp's (each 512-byte sector starts with crc32c,
 * magic, sector, write id and run, and the rest is filler derived from
 * sector and id), so a sector found at the wrong place names its origin.
 * Writes carry run 1, the initial fill run 0 and id 0.
 *
 * Exit status: 0 clean, 1 a bad sector seen, 2 usage or I/O error.
 */
#define _GNU_SOURCE
#include "common.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *progname = "chain-race";

#define STAMP_MAGIC	0x504d415453434d44ULL	/* "DMCSTAMP", as chain-stamp */
#define MAX_THREADS	64
#define MAX_REPORTS	20

struct stamp {
	uint32_t csum;		/* crc32c of bytes 4..511 of the sector */
	uint32_t reserved;
	uint64_t magic;
	uint64_t sector;	/* 512-byte sector of the device */
	uint64_t id;		/* write id; 0 for the initial fill */
	uint64_t run;		/* 1 for writes, 0 for the initial fill */
} __attribute__((packed));

_Static_assert(sizeof(struct stamp) == 40, "stamp layout");

enum op_kind { OP_WRITE, OP_READ, OP_DISCARD, OP_ZERO, OP_FLUSH, OP_KINDS };

static const char *const kind_names[OP_KINDS] = {
	"write", "read", "discard", "zero", "flush",
};

/* One operation of the current round; its id is its index + id_base. */
struct op {
	uint64_t sect;		/* device sector */
	uint32_t nr;		/* sectors */
	uint8_t kind;
	atomic_uint_fast64_t start;	/* sequence number before issue */
	atomic_uint_fast64_t end;	/* after completion; 0 while in flight */
};

/* What a sector showed at the last check. */
#define VAL_ZERO	UINT64_MAX
#define VAL_INIT	0

struct config {
	const char *dev_path;
	uint64_t first;		/* first cluster under stress */
	uint64_t clusters;
	uint64_t cluster;	/* bytes */
	uint64_t rounds;
	uint64_t secs;		/* per round */
	uint64_t threads;
	uint64_t seed;
	uint64_t max_ops;	/* per round, all threads */
	bool no_init;
	bool no_free;		/* no discard or zeroes of a whole cluster */
};

static struct config cfg;
static struct dev dev;
static uint64_t sect0, nr_sect, cl_sect;	/* the stressed range */

static struct op *ops;		/* this round's operations */
static atomic_uint_fast64_t nr_ops;
static uint64_t id_base;	/* ids of this round are id_base + 1 .. */
static atomic_uint_fast64_t seq;
static atomic_bool stop;
static atomic_uint_fast64_t read_bad, io_errors;
static uint64_t count[OP_KINDS];
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec deadline;

static uint64_t *cur;		/* per sector: value seen at the last check */
static uint64_t round_start;	/* seq when the round began */
static uint64_t reports;

/* ---- stamps (chain-stamp's format; crc32c in common.c) */

static void make_stamp(unsigned char *sector, uint64_t sect, uint64_t id,
		       uint64_t run)
{
	struct stamp st = {
		.magic = htole64(STAMP_MAGIC),
		.sector = htole64(sect),
		.id = htole64(id),
		.run = htole64(run),
	};
	struct rng r;

	memcpy(sector, &st, sizeof(st));
	rng_seed(&r, sect * 0x100000001b3ULL ^ id * 0xc2b2ae3d27d4eb4fULL);
	rng_fill(&r, sector + sizeof(st), SECTOR_SIZE - sizeof(st));
	st.csum = htole32(crc32c(sector + 4, SECTOR_SIZE - 4));
	memcpy(sector, &st.csum, sizeof(st.csum));
}

static bool is_zero(const unsigned char *p)
{
	return !p[0] && !memcmp(p, p + 1, SECTOR_SIZE - 1);
}

/*
 * Decode sector @s as read: VAL_ZERO, or the id of a well-formed stamp of
 * this very sector (0 for the initial fill); -1 with @why set otherwise.
 */
static int decode(const unsigned char *got, uint64_t s, uint64_t *val,
		  char *why, size_t len)
{
	unsigned char want[SECTOR_SIZE];
	struct stamp st;
	uint64_t id, run;

	if (is_zero(got)) {
		*val = VAL_ZERO;
		return 0;
	}
	memcpy(&st, got, sizeof(st));
	id = le64toh(st.id);
	run = le64toh(st.run);
	if (le64toh(st.magic) != STAMP_MAGIC) {
		snprintf(why, len, "garbage (no stamp magic)");
		return -1;
	}
	if (le32toh(st.csum) != crc32c(got + 4, SECTOR_SIZE - 4)) {
		snprintf(why, len, "torn or corrupt stamp (bad checksum)");
		return -1;
	}
	if (le64toh(st.sector) != s) {
		snprintf(why, len, "stamp of sector %" PRIu64 " id %" PRIu64
			 " (misdirected data)", (uint64_t)le64toh(st.sector), id);
		return -1;
	}
	if (run != (id ? 1 : 0)) {
		snprintf(why, len, "id %" PRIu64 " with run %" PRIu64, id, run);
		return -1;
	}
	make_stamp(want, s, id, run);
	if (memcmp(want, got, SECTOR_SIZE)) {
		snprintf(why, len, "id %" PRIu64 ": filler corrupt", id);
		return -1;
	}
	*val = id;
	return 0;
}

static bool op_covers(const struct op *o, uint64_t s)
{
	return s >= o->sect && s < o->sect + o->nr;
}

/* Does @o replace what every sector of @s's cluster holds? */
static bool op_supersedes(const struct op *o, uint64_t s)
{
	uint64_t c0;

	if (o->kind == OP_WRITE || o->kind == OP_ZERO)
		return true;
	if (o->kind != OP_DISCARD)
		return false;
	c0 = s - (s - sect0) % cl_sect;
	return o->sect <= c0 && c0 + cl_sect <= o->sect + o->nr;
}

static const struct op *op_of(uint64_t id)
{
	if (id <= id_base || id > id_base + atomic_load(&nr_ops))
		return NULL;
	return &ops[id - id_base - 1];
}

/* A well-formed stamp read during a round: a write of this round covering s. */
static const char *judge_read(uint64_t s, uint64_t val)
{
	const struct op *o;

	if (val == VAL_ZERO || val == VAL_INIT || val == cur[s - sect0])
		return NULL;
	o = op_of(val);
	if (!o)
		return "id of no write of this round";
	if (o->kind != OP_WRITE || !op_covers(o, s))
		return "id of an operation that did not write this sector";
	return NULL;
}

static void report_bad(const char *when, uint64_t s, const char *why)
{
	if (reports++ < MAX_REPORTS)
		fprintf(stderr, "%s: %s: sector %" PRIu64 " (cluster %" PRIu64
			" + %" PRIu64 "): %s\n", progname, when, s,
			s / cl_sect, s % cl_sect, why);
	else if (reports == MAX_REPORTS + 1)
		fprintf(stderr, "%s: more bad sectors not shown\n", progname);
}

/* ---- the workers */

static bool past_deadline(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline.tv_sec ||
	       (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec);
}

/* An extent in the stressed range: whole clusters, part of one, or across two. */
static void pick(struct rng *r, struct op *o)
{
	uint64_t c = rng_below(r, cfg.clusters), off, n;
	unsigned int shape = rng_below(r, 3);

	if (shape == 0 || cfg.clusters < 2) {
		n = 1 + (rng_below(r, 4) == 0 && c + 1 < cfg.clusters);
		o->sect = sect0 + c * cl_sect;
		o->nr = n * cl_sect;
		return;
	}
	if (shape == 1) {
		off = rng_below(r, cl_sect);
		o->sect = sect0 + c * cl_sect + off;
		o->nr = 1 + rng_below(r, cl_sect - off);
		return;
	}
	if (c + 1 == cfg.clusters)
		c--;
	off = 1 + rng_below(r, cl_sect - 1);
	o->sect = sect0 + c * cl_sect + off;
	o->nr = cl_sect - off + 1 + rng_below(r, cl_sect - 1);
}

static enum op_kind pick_kind(struct rng *r)
{
	unsigned int x = rng_below(r, 100);

	if (x < 40)
		return OP_WRITE;
	if (x < 62)
		return OP_READ;
	if (x < 77)
		return OP_DISCARD;
	if (x < 92)
		return OP_ZERO;
	return OP_FLUSH;
}

static void check_read(const unsigned char *buf, const struct op *o)
{
	char why[160];
	const char *bad;
	uint64_t i, val;

	for (i = 0; i < o->nr; i++) {
		bad = why;
		if (!decode(buf + (i << SECTOR_SHIFT), o->sect + i, &val, why,
			    sizeof(why)))
			bad = judge_read(o->sect + i, val);
		if (bad) {
			atomic_fetch_add(&read_bad, 1);
			report_bad("read during the round", o->sect + i, bad);
		}
	}
}

static int do_op(struct op *o, uint64_t id, unsigned char *buf)
{
	uint64_t off = o->sect << SECTOR_SHIFT, len = (uint64_t)o->nr << SECTOR_SHIFT;
	uint64_t i;
	int r = 0;

	if (o->kind == OP_WRITE)
		for (i = 0; i < o->nr; i++)
			make_stamp(buf + (i << SECTOR_SHIFT), o->sect + i, id, 1);
	atomic_store(&o->start, atomic_fetch_add(&seq, 1) + 1);
	switch (o->kind) {
	case OP_WRITE:
		r = xpwrite(dev.fd, buf, len, off, dev.path);
		break;
	case OP_READ:
		r = xpread(dev.fd, buf, len, off, dev.path);
		break;
	case OP_DISCARD:
		r = dev_discard(&dev, off, len);
		break;
	case OP_ZERO:
		r = dev_zeroout(&dev, off, len);
		break;
	case OP_FLUSH:
		r = fdatasync(dev.fd);
		if (r)
			report(dev.path, "fdatasync", errno);
		break;
	}
	atomic_store(&o->end, atomic_fetch_add(&seq, 1) + 1);
	if (!r && o->kind == OP_READ)
		check_read(buf, o);
	return r;
}

static void *worker(void *arg)
{
	uint64_t t = (uintptr_t)arg, n, local[OP_KINDS] = { 0 };
	unsigned char *buf = alloc_aligned(2 * cfg.cluster);
	struct rng r;
	struct op *o;
	int k;

	rng_seed(&r, cfg.seed * 1000003 + t + 1);
	while (!atomic_load(&stop) && !past_deadline()) {
		n = atomic_fetch_add(&nr_ops, 1);
		if (n >= cfg.max_ops) {
			atomic_fetch_sub(&nr_ops, 1);
			break;
		}
		o = &ops[n];
		o->kind = pick_kind(&r);
		if (o->kind == OP_FLUSH) {
			o->sect = 0;
			o->nr = 0;
		} else {
			pick(&r, o);
			if (cfg.no_free && (o->kind == OP_DISCARD ||
					    o->kind == OP_ZERO) &&
			    !((o->sect - sect0) % cl_sect) && o->nr >= cl_sect)
				o->nr = cl_sect - 1;	/* never frees a cluster */
		}
		if (do_op(o, id_base + n + 1, buf)) {
			atomic_fetch_add(&io_errors, 1);
			atomic_store(&stop, true);
		}
		local[o->kind]++;
	}
	free(buf);
	pthread_mutex_lock(&count_lock);
	for (k = 0; k < OP_KINDS; k++)
		count[k] += local[k];
	pthread_mutex_unlock(&count_lock);
	return NULL;
}

/* ---- the check between rounds */

/* Is @val, seen at sector @s, what the round may have left there? */
static const char *judge_final(uint64_t s, uint64_t val, char *why, size_t len)
{
	uint64_t i, n = atomic_load(&nr_ops), sup = 0, zero_end = 0;
	const struct op *o;

	for (i = 0; i < n; i++) {
		o = &ops[i];
		if (!op_covers(o, s))
			continue;
		if (op_supersedes(o, s) && o->start > sup)
			sup = o->start;
		if (o->kind != OP_WRITE && o->kind != OP_READ &&
		    o->end > zero_end)
			zero_end = o->end;
	}
	if (val == cur[s - sect0] && round_start >= sup)
		return NULL;	/* untouched since the last check */
	if (val == VAL_ZERO) {
		if (zero_end && zero_end >= sup)
			return NULL;
		snprintf(why, len, "zeros, but no discard or write-zeroes "
			 "left them%s", zero_end ? " (a later op superseded it)" :
			 "");
		return why;
	}
	o = op_of(val);
	if (!o || o->kind != OP_WRITE || !op_covers(o, s)) {
		snprintf(why, len, "id %" PRIu64 ", which is not a write of this "
			 "round to this sector nor what the last check saw", val);
		return why;
	}
	if (o->end < sup) {
		snprintf(why, len, "id %" PRIu64 " is stale: an operation that "
			 "began after it completed replaced this sector", val);
		return why;
	}
	return NULL;
}

static int check_all(uint64_t round)
{
	size_t len = nr_sect << SECTOR_SHIFT;
	unsigned char *buf = alloc_aligned(len);
	uint64_t i, val, bad = 0;
	const char *verdict;
	char why[200], when[48];

	snprintf(when, sizeof(when), "after round %" PRIu64, round);
	if (xpread(dev.fd, buf, len, sect0 << SECTOR_SHIFT, dev.path)) {
		free(buf);
		return -1;
	}
	for (i = 0; i < nr_sect; i++) {
		verdict = why;
		if (!decode(buf + (i << SECTOR_SHIFT), sect0 + i, &val, why,
			    sizeof(why)))
			verdict = judge_final(sect0 + i, val, why, sizeof(why));
		if (verdict) {
			report_bad(when, sect0 + i, verdict);
			bad++;
			continue;
		}
		cur[i] = val;
	}
	free(buf);
	return bad ? 1 : 0;
}

static int init_fill(void)
{
	size_t len = nr_sect << SECTOR_SHIFT;
	unsigned char *buf = alloc_aligned(len);
	uint64_t i;
	int r = 0;

	for (i = 0; i < nr_sect; i++) {
		make_stamp(buf + (i << SECTOR_SHIFT), sect0 + i, 0, 0);
		cur[i] = VAL_INIT;
	}
	if (xpwrite(dev.fd, buf, len, sect0 << SECTOR_SHIFT, dev.path) ||
	    fdatasync(dev.fd))
		r = -1;
	free(buf);
	return r;
}

static int run_round(uint64_t round)
{
	pthread_t tid[MAX_THREADS];
	uint64_t t;
	int err;

	atomic_store(&nr_ops, 0);
	round_start = atomic_load(&seq);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += cfg.secs;
	for (t = 0; t < cfg.threads; t++) {
		err = pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t);
		if (err) {
			report("pthread_create", "cannot start a thread", err);
			atomic_store(&stop, true);
			cfg.threads = t;
		}
	}
	for (t = 0; t < cfg.threads; t++)
		pthread_join(tid[t], NULL);
	if (atomic_load(&io_errors))
		return -1;
	err = check_all(round);
	id_base += atomic_load(&nr_ops);
	if (err)
		return err;
	return atomic_load(&read_bad) ? 1 : 0;
}

/* ---- command line */

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s --dev PATH [options]\n"
"\n"
"Race writes, reads, discards, write-zeroes and flushes on a few clusters\n"
"of a device; after each round, check that every sector holds zeros, its\n"
"initial stamp or a stamp written to it, and nothing stale.\n"
"\n"
"Options:\n"
" --clusters N         clusters under stress (default 8)\n"
" --cluster-size BYTES cluster size (default 4K)\n"
" --first N            first cluster under stress (default 0)\n"
" --rounds N           rounds (default 10)\n"
" --secs N             seconds per round (default 2)\n"
" --threads N          threads (default 4)\n"
" --max-ops N          operations per round at most (default 200000)\n"
" --seed N             random seed (default 1)\n"
" --no-init            keep the clusters' content (default: fill them with\n"
"                      id-0 stamps first; without, they must read as zeros)\n"
" --no-free            never discard or zero a whole cluster (nothing is\n"
"                      freed: a control run for the checker)\n"
" -h, --help           display this help\n"
"\n"
"Exit status: 0 success, 1 bad sectors found, 2 usage or I/O error.\n",
		progname);
}

enum {
	OPT_DEV = 256, OPT_CLUSTERS, OPT_CLUSTER_SIZE, OPT_FIRST, OPT_ROUNDS,
	OPT_SECS, OPT_THREADS, OPT_MAX_OPS, OPT_SEED, OPT_NO_INIT, OPT_NO_FREE,
};

static const struct option long_opts[] = {
	{ "dev",	  required_argument, NULL, OPT_DEV },
	{ "clusters",	  required_argument, NULL, OPT_CLUSTERS },
	{ "cluster-size", required_argument, NULL, OPT_CLUSTER_SIZE },
	{ "first",	  required_argument, NULL, OPT_FIRST },
	{ "rounds",	  required_argument, NULL, OPT_ROUNDS },
	{ "secs",	  required_argument, NULL, OPT_SECS },
	{ "threads",	  required_argument, NULL, OPT_THREADS },
	{ "max-ops",	  required_argument, NULL, OPT_MAX_OPS },
	{ "seed",	  required_argument, NULL, OPT_SEED },
	{ "no-init",	  no_argument,	     NULL, OPT_NO_INIT },
	{ "no-free",	  no_argument,	     NULL, OPT_NO_FREE },
	{ "help",	  no_argument,	     NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(int opt, const char *arg)
{
	switch (opt) {
	case OPT_DEV:
		cfg.dev_path = arg;
		return 0;
	case OPT_CLUSTERS:
		return opt_u64("--clusters", arg, &cfg.clusters);
	case OPT_CLUSTER_SIZE:
		return opt_size("--cluster-size", arg, &cfg.cluster);
	case OPT_FIRST:
		return opt_u64("--first", arg, &cfg.first);
	case OPT_ROUNDS:
		return opt_u64("--rounds", arg, &cfg.rounds);
	case OPT_SECS:
		return opt_u64("--secs", arg, &cfg.secs);
	case OPT_THREADS:
		return opt_u64("--threads", arg, &cfg.threads);
	case OPT_MAX_OPS:
		return opt_u64("--max-ops", arg, &cfg.max_ops);
	case OPT_SEED:
		return opt_u64("--seed", arg, &cfg.seed);
	case OPT_NO_INIT:
		cfg.no_init = true;
		return 0;
	case OPT_NO_FREE:
		cfg.no_free = true;
		return 0;
	case 'h':
		usage(stdout);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static int parse_args(int argc, char **argv)
{
	int opt;

	cfg = (struct config){ .clusters = 8, .cluster = 4096, .rounds = 10,
			       .secs = 2, .threads = 4, .seed = 1,
			       .max_ops = 200000 };
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		if (parse_one(opt, optarg))
			return -1;
	if (optind < argc) {
		reportf("arguments", "unexpected argument", "'%s'", argv[optind]);
		return -1;
	}
	if (!cfg.dev_path) {
		report("arguments", "--dev is required", 0);
		return -1;
	}
	if (!is_pow2(cfg.cluster) || cfg.cluster < DIO_ALIGN ||
	    !cfg.clusters || !cfg.threads || cfg.threads > MAX_THREADS ||
	    !cfg.max_ops) {
		report("arguments", "--cluster-size must be a power of two of at "
		       "least 4K, --clusters, --max-ops and --threads (up to 64) "
		       "at least 1", 0);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t round, k;
	int r;

	crc32c_init();
	if (parse_args(argc, argv)) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
		return EXIT_USAGE;
	}
	cl_sect = cfg.cluster >> SECTOR_SHIFT;
	sect0 = cfg.first * cl_sect;
	nr_sect = cfg.clusters * cl_sect;
	if (dev_open(&dev, cfg.dev_path, O_RDWR))
		return EXIT_USAGE;
	if (!dev.direct || !dev.is_blk) {
		report(cfg.dev_path, "needs a block device that takes O_DIRECT", 0);
		return EXIT_USAGE;
	}
	if (dev_check_size(&dev, (sect0 + nr_sect) << SECTOR_SHIFT))
		return EXIT_USAGE;
	ops = calloc(cfg.max_ops, sizeof(*ops));
	cur = calloc(nr_sect, sizeof(*cur));
	if (!ops || !cur) {
		report("memory", "cannot allocate the operation log", ENOMEM);
		return EXIT_USAGE;
	}
	if (!cfg.no_init && init_fill())
		return EXIT_USAGE;
	if (cfg.no_init) {
		for (k = 0; k < nr_sect; k++)
			cur[k] = VAL_ZERO;
		if (check_all(0))
			return EXIT_VERIFY;
	}
	printf("%s: seed %" PRIu64 ", %" PRIu64 " clusters of %" PRIu64
	       " bytes from cluster %" PRIu64 ", %" PRIu64 " threads, %"
	       PRIu64 " rounds of %" PRIu64 " s\n", progname, cfg.seed,
	       cfg.clusters, cfg.cluster, cfg.first, cfg.threads, cfg.rounds,
	       cfg.secs);
	for (round = 1, r = 0; round <= cfg.rounds && !r; round++) {
		r = run_round(round);
		if (r)
			fprintf(stderr, "%s: round %" PRIu64 " (ops %" PRIu64
				"..%" PRIu64 ") failed\n", progname, round,
				id_base - atomic_load(&nr_ops) + 1, id_base);
	}
	printf("%s: rounds done: %" PRIu64 "\n", progname, round - 1 - (r != 0));
	printf("%s: ops:", progname);
	for (k = 0; k < OP_KINDS; k++)
		printf(" %s %" PRIu64, kind_names[k], count[k]);
	printf("\n");
	dev_close(&dev);
	free(ops);
	free(cur);
	if (r < 0)
		return EXIT_USAGE;
	return r ? EXIT_VERIFY : EXIT_OK;
}
