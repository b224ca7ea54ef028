// SPDX-License-Identifier: GPL-2.0
/*
 * chain-iotest - random I/O against a device, checked against a reference
 * model.
 *
 * The model is a plain file of the device's size (on tmpfs in the guest),
 * mapped into memory, that holds what every byte of the device must read
 * as.  Every write, discard and write-zeroes goes to both; every read is
 * compared with the model at once.  The model survives the run, so a test
 * can write, reload or pivot the dm table, and call --verify-only later.
 *
 * Discard is the only operation whose result is not exact: the part of a
 * discard that covers whole clusters must read back as zeros, but a
 * partial cluster at its head or tail may keep its old data or become
 * zeros, per sector, as long as it stays that way.  The sidecar state file
 * MODEL.state holds one byte per 512-byte sector: SECT_EXACT, or
 * SECT_OLD_OR_ZERO where the model holds the old data and zeros are also
 * accepted.  The first read of such a sector pins the model to what it saw,
 * which is what makes "stable" checkable.
 *
 * Instead of random operations, --op lists the operations to do, in
 * order: a test that must keep away from some clusters (a failing one,
 * say) writes exactly where it means to, every write with fresh random
 * data, in one process.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *progname = "chain-iotest";

enum op_type { OP_READ, OP_WRITE, OP_DISCARD, OP_ZERO, NR_OP_TYPES };

static const char *const op_names[NR_OP_TYPES] = {
	"read", "write", "discard", "zero",
};

enum sect_state { SECT_EXACT = 0, SECT_OLD_OR_ZERO = 1 };

#define VERIFY_CHUNK	(1u << 20)
#define MAX_REPORTS	8
#define MAX_LISTED_OPS	64

/* An operation given with --op. */
struct listed_op {
	enum op_type type;
	uint64_t off, len;	/* in bytes */
};

struct config {
	const char *dev_path;
	const char *model_path;
	const char *init_from;
	uint64_t size;
	uint64_t cluster;
	uint64_t seed;
	uint64_t ops;
	uint64_t max_len;
	unsigned int mix[NR_OP_TYPES];
	struct listed_op listed[MAX_LISTED_OPS];
	unsigned int nr_listed;
	bool have_ops;
	bool verify;
	bool verify_only;
	bool loose_discard;
};

struct model {
	const char *path;
	unsigned char *data;	/* size bytes, MAP_SHARED on the model file */
	unsigned char *state;	/* one enum sect_state per sector */
	uint64_t size;
	unsigned int reported;	/* mismatches printed so far */
};

struct stats {
	uint64_t count[NR_OP_TYPES];
	uint64_t bytes[NR_OP_TYPES];
};

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s --dev PATH --model PATH --size BYTES --ops N [options]\n"
" %s --dev PATH --model PATH --size BYTES --verify-only\n"
"\n"
"Random read/write/discard/write-zeroes I/O on a device, checked against a\n"
"reference model file.\n"
"\n"
"Options:\n"
" --dev PATH             device (or file) under test, opened O_DIRECT\n"
" --model PATH           model file, created zero-filled if missing;\n"
"                        PATH.state holds the per-sector discard state\n"
" --size BYTES           bytes of the device to use (K/M/G suffixes)\n"
" --cluster BYTES        cluster size of the device (default 64K)\n"
" --seed N               random seed (default 1)\n"
" --ops N                number of operations\n"
" --mix R:W:D:Z          weights of read, write, discard, write-zeroes\n"
"                        (default 40:40:10:10)\n"
" --max-len BYTES        longest operation (default 4 * cluster)\n"
" --op KIND:OFF:LEN      instead of random operations, this one (repeatable,\n"
"                        done in order): KIND w write fresh random data,\n"
"                        r read and compare, z write-zeroes, d discard;\n"
"                        OFF and LEN in bytes (K/M/G suffixes), multiples\n"
"                        of 512\n"
" --loose-discard        a discarded sector may read old data or zeros even\n"
"                        in whole clusters (discards ignored by the device)\n"
" --verify               compare the whole device with the model at the end\n"
" --verify-only          only compare the whole device with the model\n"
" --init-model-from PATH copy PATH (file or device) into the model first\n"
" -h, --help             display this help\n"
"\n"
"Exit status: 0 success, 1 data mismatch, 2 usage or I/O error.\n",
		progname, progname);
}

static int parse_mix(const char *arg, unsigned int mix[NR_OP_TYPES])
{
	unsigned int sum = 0;
	char tail;
	int i;

	if (sscanf(arg, "%u:%u:%u:%u%c", &mix[0], &mix[1], &mix[2], &mix[3],
		   &tail) != 4)
		goto bad;
	for (i = 0; i < NR_OP_TYPES; i++) {
		if (mix[i] > 1000)
			goto bad;
		sum += mix[i];
	}
	if (sum)
		return 0;
bad:
	reportf("--mix", "invalid mix", "'%s' (want R:W:D:Z weights)", arg);
	return -1;
}

/* --op KIND:OFF:LEN */
static int parse_listed_op(struct config *c, const char *arg)
{
	static const char kinds[NR_OP_TYPES] = {
		[OP_READ] = 'r', [OP_WRITE] = 'w', [OP_DISCARD] = 'd',
		[OP_ZERO] = 'z',
	};
	struct listed_op *op = &c->listed[c->nr_listed];
	char off[32], len[32];
	int i;

	if (c->nr_listed == MAX_LISTED_OPS) {
		reportf("--op", "too many operations", "at most %d",
			MAX_LISTED_OPS);
		return -1;
	}
	if (strlen(arg) < 5 || arg[1] != ':' ||
	    sscanf(arg + 2, "%31[^:]:%31s", off, len) != 2)
		goto bad;
	for (i = 0; i < NR_OP_TYPES && kinds[i] != arg[0]; i++)
		;
	if (i == NR_OP_TYPES || parse_size(off, &op->off) ||
	    parse_size(len, &op->len))
		goto bad;
	op->type = i;
	c->nr_listed++;
	return 0;
bad:
	reportf("--op", "invalid operation", "'%s' (want w|r|z|d:OFF:LEN)", arg);
	return -1;
}

enum {
	OPT_DEV = 256, OPT_MODEL, OPT_SIZE, OPT_CLUSTER, OPT_SEED, OPT_OPS,
	OPT_MIX, OPT_MAX_LEN, OPT_LOOSE, OPT_VERIFY, OPT_VERIFY_ONLY,
	OPT_INIT, OPT_OP,
};

static const struct option long_opts[] = {
	{ "dev",		required_argument, NULL, OPT_DEV },
	{ "model",		required_argument, NULL, OPT_MODEL },
	{ "size",		required_argument, NULL, OPT_SIZE },
	{ "cluster",		required_argument, NULL, OPT_CLUSTER },
	{ "seed",		required_argument, NULL, OPT_SEED },
	{ "ops",		required_argument, NULL, OPT_OPS },
	{ "mix",		required_argument, NULL, OPT_MIX },
	{ "max-len",		required_argument, NULL, OPT_MAX_LEN },
	{ "loose-discard",	no_argument,	   NULL, OPT_LOOSE },
	{ "verify",		no_argument,	   NULL, OPT_VERIFY },
	{ "verify-only",	no_argument,	   NULL, OPT_VERIFY_ONLY },
	{ "init-model-from",	required_argument, NULL, OPT_INIT },
	{ "op",			required_argument, NULL, OPT_OP },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct config *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_DEV:
		c->dev_path = arg;
		return 0;
	case OPT_MODEL:
		c->model_path = arg;
		return 0;
	case OPT_INIT:
		c->init_from = arg;
		return 0;
	case OPT_SIZE:
		return opt_size("--size", arg, &c->size);
	case OPT_CLUSTER:
		return opt_size("--cluster", arg, &c->cluster);
	case OPT_SEED:
		return opt_u64("--seed", arg, &c->seed);
	case OPT_MAX_LEN:
		return opt_size("--max-len", arg, &c->max_len);
	case OPT_MIX:
		return parse_mix(arg, c->mix);
	case OPT_LOOSE:
		c->loose_discard = true;
		return 0;
	case OPT_VERIFY:
		c->verify = true;
		return 0;
	case OPT_VERIFY_ONLY:
		c->verify_only = true;
		return 0;
	case OPT_OPS:
		c->have_ops = true;
		return opt_u64("--ops", arg, &c->ops);
	case OPT_OP:
		return parse_listed_op(c, arg);
	case 'h':
		usage(stdout);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static int check_config(struct config *c)
{
	if (!c->dev_path || !c->model_path || !c->size) {
		report("arguments", "--dev, --model and --size are required", 0);
		return -1;
	}
	unsigned int i;

	if (!c->have_ops && !c->nr_listed && !c->verify_only) {
		report("arguments", "--ops or --op is required unless --verify-only",
		       0);
		return -1;
	}
	if (c->have_ops && c->nr_listed) {
		report("arguments", "--ops and --op exclude each other", 0);
		return -1;
	}
	if (c->size % SECTOR_SIZE) {
		report("--size", "not a multiple of 512", 0);
		return -1;
	}
	if (!is_pow2(c->cluster) || c->cluster < SECTOR_SIZE) {
		report("--cluster", "not a power of two of at least 512", 0);
		return -1;
	}
	if (!c->max_len)
		c->max_len = 4 * c->cluster;
	if (c->max_len % SECTOR_SIZE || c->max_len > c->size) {
		report("--max-len", "not a multiple of 512 no larger than --size",
		       0);
		return -1;
	}
	for (i = 0; i < c->nr_listed; i++) {
		const struct listed_op *op = &c->listed[i];

		if (!op->len || op->off % SECTOR_SIZE || op->len % SECTOR_SIZE ||
		    op->off > c->size || op->len > c->size - op->off) {
			reportf("--op", "bad extent", "%" PRIu64 "+%" PRIu64
				": want multiples of 512 inside --size",
				op->off, op->len);
			return -1;
		}
		if (op->len > c->max_len)
			c->max_len = op->len;
	}
	return 0;
}

static int parse_args(struct config *c, int argc, char **argv)
{
	int opt;

	*c = (struct config) {
		.cluster = 64 << 10, .seed = 1, .mix = { 40, 40, 10, 10 },
	};
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1)
		if (parse_one(c, opt, optarg))
			return -1;
	if (optind < argc) {
		reportf("arguments", "unexpected argument", "'%s'", argv[optind]);
		return -1;
	}
	return check_config(c);
}

/*
 * Map @path with exactly @size bytes, creating it zero-filled if it is new
 * or empty.  *@created tells the caller the old content is meaningless.
 */
static void *map_file(const char *path, uint64_t size, bool *created)
{
	struct stat st;
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		report(path, "open", errno);
		return NULL;
	}
	if (fstat(fd, &st)) {
		report(path, "fstat", errno);
		goto out_close;
	}
	*created = st.st_size == 0;
	if (*created && ftruncate(fd, size)) {
		report(path, "ftruncate", errno);
		goto out_close;
	}
	if (!*created && (uint64_t)st.st_size != size) {
		reportf(path, "size mismatch", "%jd bytes, expected %" PRIu64
			" (stale model from another test?)",
			(intmax_t)st.st_size, size);
		goto out_close;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		report(path, "mmap", errno);
		goto out_close;
	}
	close(fd);
	return p;
out_close:
	close(fd);
	return NULL;
}

static int copy_into_model(struct model *m, const char *src_path)
{
	struct dev src;
	uint64_t off, len;
	void *buf;
	int ret = -1;

	if (dev_open(&src, src_path, O_RDONLY))
		return -1;
	if (dev_check_size(&src, m->size))
		goto out_close;
	buf = alloc_aligned(VERIFY_CHUNK);
	for (off = 0; off < m->size; off += len) {
		len = m->size - off < VERIFY_CHUNK ? m->size - off : VERIFY_CHUNK;
		if (xpread(src.fd, buf, len, off, src_path))
			goto out_free;
		memcpy(m->data + off, buf, len);
	}
	memset(m->state, SECT_EXACT, m->size >> SECTOR_SHIFT);
	ret = 0;
out_free:
	free(buf);
out_close:
	dev_close(&src);
	return ret;
}

static int model_open(struct model *m, const struct config *c)
{
	uint64_t nr_sect = c->size >> SECTOR_SHIFT;
	bool model_new, state_new;
	char *state_path;

	m->path = c->model_path;
	m->size = c->size;
	m->reported = 0;
	m->data = map_file(c->model_path, c->size, &model_new);
	if (!m->data)
		return -1;
	if (asprintf(&state_path, "%s.state", c->model_path) < 0) {
		report("memory", "cannot allocate state path", ENOMEM);
		return -1;
	}
	m->state = map_file(state_path, nr_sect, &state_new);
	free(state_path);
	if (!m->state)
		return -1;
	/* A fresh model is all exact zeros, whatever an old sidecar said. */
	if (model_new)
		memset(m->state, SECT_EXACT, nr_sect);
	if (c->init_from)
		return copy_into_model(m, c->init_from);
	return 0;
}

static void model_close(struct model *m)
{
	munmap(m->data, m->size);
	munmap(m->state, m->size >> SECTOR_SHIFT);
}

static bool is_zero(const unsigned char *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

static void report_mismatch(struct model *m, const char *dev, uint64_t sect,
			    const unsigned char *got, const char *ctx)
{
	const unsigned char *exp = m->data + (sect << SECTOR_SHIFT);
	bool either = m->state[sect] == SECT_OLD_OR_ZERO;
	unsigned int i = 0;

	if (m->reported++ >= MAX_REPORTS)
		return;
	while (i < SECTOR_SIZE - 1 && exp[i] == got[i])
		i++;
	reportf(dev, "data mismatch", "%s: byte offset %" PRIu64
		" (sector %" PRIu64 "): expected 0x%02x%s, found 0x%02x",
		ctx, (sect << SECTOR_SHIFT) + i, sect, exp[i],
		either ? " (old data; a sector of zeros is also fine)" : "",
		got[i]);
}

/*
 * Is @got what sector @sect may read as?  An old-or-zero sector is pinned
 * to whichever it showed, so the next read must show the same.
 */
static bool sector_matches(struct model *m, uint64_t sect,
			   const unsigned char *got)
{
	unsigned char *exp = m->data + (sect << SECTOR_SHIFT);

	if (!memcmp(exp, got, SECTOR_SIZE)) {
		m->state[sect] = SECT_EXACT;
		return true;
	}
	if (m->state[sect] == SECT_OLD_OR_ZERO && is_zero(got, SECTOR_SIZE)) {
		memset(exp, 0, SECTOR_SIZE);
		m->state[sect] = SECT_EXACT;
		return true;
	}
	return false;
}

/* Compare @len bytes read at @off with the model; returns bad sectors. */
static uint64_t check_range(struct model *m, const char *dev,
			    const unsigned char *buf, uint64_t off,
			    uint64_t len, const char *ctx)
{
	uint64_t sect = off >> SECTOR_SHIFT;
	uint64_t i, bad = 0;

	for (i = 0; i < len >> SECTOR_SHIFT; i++, sect++) {
		const unsigned char *got = buf + (i << SECTOR_SHIFT);

		if (sector_matches(m, sect, got))
			continue;
		report_mismatch(m, dev, sect, got, ctx);
		bad++;
	}
	return bad;
}

/* The cluster-aligned middle of a discard reads as zeros; the rest may not. */
static void model_discard(struct model *m, const struct config *c,
			  uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	uint64_t mid_start = (off + c->cluster - 1) & ~(c->cluster - 1);
	uint64_t mid_end = end & ~(c->cluster - 1);
	bool has_mid = !c->loose_discard && mid_start < mid_end;
	uint64_t s;

	for (s = off; s < end; s += SECTOR_SIZE) {
		if (has_mid && s >= mid_start && s < mid_end) {
			memset(m->data + s, 0, SECTOR_SIZE);
			m->state[s >> SECTOR_SHIFT] = SECT_EXACT;
		} else {
			m->state[s >> SECTOR_SHIFT] = SECT_OLD_OR_ZERO;
		}
	}
}

static void model_set(struct model *m, const void *data, uint64_t off,
		      uint64_t len)
{
	if (data)
		memcpy(m->data + off, data, len);
	else
		memset(m->data + off, 0, len);
	memset(m->state + (off >> SECTOR_SHIFT), SECT_EXACT,
	       len >> SECTOR_SHIFT);
}

static enum op_type pick_op(struct rng *r, const unsigned int mix[])
{
	unsigned int sum = 0, x;
	int i;

	for (i = 0; i < NR_OP_TYPES; i++)
		sum += mix[i];
	x = rng_below(r, sum);
	for (i = 0; i < NR_OP_TYPES - 1; i++) {
		if (x < mix[i])
			break;
		x -= mix[i];
	}
	return i;
}

/* Returns 0, or the exit code for a mismatch or an I/O error. */
static int exec_op(struct dev *d, struct model *m, const struct config *c,
		   struct rng *r, uint64_t idx, enum op_type type,
		   uint64_t off, uint64_t len, unsigned char *buf,
		   struct stats *st)
{
	char ctx[96];

	st->count[type]++;
	st->bytes[type] += len;

	switch (type) {
	case OP_READ:
		if (xpread(d->fd, buf, len, off, d->path))
			return EXIT_USAGE;
		snprintf(ctx, sizeof(ctx), "op %" PRIu64 " read offset %"
			 PRIu64 " length %" PRIu64, idx, off, len);
		if (check_range(m, d->path, buf, off, len, ctx))
			return EXIT_VERIFY;
		break;
	case OP_WRITE:
		rng_fill(r, buf, len);
		if (xpwrite(d->fd, buf, len, off, d->path))
			return EXIT_USAGE;
		model_set(m, buf, off, len);
		break;
	case OP_DISCARD:
		if (dev_discard(d, off, len))
			return EXIT_USAGE;
		model_discard(m, c, off, len);
		break;
	case OP_ZERO:
		if (dev_zeroout(d, off, len))
			return EXIT_USAGE;
		model_set(m, NULL, off, len);
		break;
	default:
		break;
	}
	return 0;
}

static int do_op(struct dev *d, struct model *m, const struct config *c,
		 struct rng *r, uint64_t idx, unsigned char *buf,
		 struct stats *st)
{
	enum op_type type = pick_op(r, c->mix);
	struct extent e;

	pick_extent(r, c->size >> SECTOR_SHIFT, c->max_len >> SECTOR_SHIFT,
		    c->cluster >> SECTOR_SHIFT, &e);
	return exec_op(d, m, c, r, idx, type, e.sect << SECTOR_SHIFT,
		       e.nr << SECTOR_SHIFT, buf, st);
}

static int verify_all(struct dev *d, struct model *m, unsigned char *buf)
{
	uint64_t off, len, bad = 0;

	for (off = 0; off < m->size; off += len) {
		len = m->size - off;
		if (len > VERIFY_CHUNK)
			len = VERIFY_CHUNK;
		if (xpread(d->fd, buf, len, off, d->path))
			return EXIT_USAGE;
		bad += check_range(m, d->path, buf, off, len, "verify");
	}
	if (!bad)
		return 0;
	reportf(d->path, "verify failed", "%" PRIu64 " of %" PRIu64
		" sectors differ from model %s", bad, m->size >> SECTOR_SHIFT,
		m->path);
	return EXIT_VERIFY;
}

static void print_summary(const struct config *c, const struct stats *st)
{
	int i;

	if (c->verify_only) {
		printf("%s: verify ok: %" PRIu64 " bytes match model\n",
		       progname, c->size);
		return;
	}
	printf("%s: seed %" PRIu64 ": %" PRIu64 " ops:", progname, c->seed,
	       c->nr_listed ? c->nr_listed : c->ops);
	for (i = 0; i < NR_OP_TYPES; i++)
		printf(" %s %" PRIu64 " (%" PRIu64 " bytes)", op_names[i],
		       st->count[i], st->bytes[i]);
	printf("%s\n", c->verify ? "; verify ok" : "");
}

static int run(struct dev *d, struct model *m, const struct config *c)
{
	size_t buf_len = c->max_len > VERIFY_CHUNK ? c->max_len : VERIFY_CHUNK;
	unsigned char *buf = alloc_aligned(buf_len);
	struct stats st = { 0 };
	struct rng r;
	uint64_t i;
	int ret = 0;

	rng_seed(&r, c->seed);
	for (i = 0; !c->verify_only && i < c->nr_listed && !ret; i++)
		ret = exec_op(d, m, c, &r, i, c->listed[i].type,
			      c->listed[i].off, c->listed[i].len, buf, &st);
	for (i = 0; !c->verify_only && i < c->ops && !ret; i++)
		ret = do_op(d, m, c, &r, i, buf, &st);
	if (!ret && (c->verify || c->verify_only))
		ret = verify_all(d, m, buf);
	if (!ret)
		print_summary(c, &st);
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	struct config c;
	struct model m;
	struct dev d;
	int ret;

	if (parse_args(&c, argc, argv)) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			progname);
		return EXIT_USAGE;
	}
	if (dev_open(&d, c.dev_path, O_RDWR))
		return EXIT_USAGE;
	if (dev_check_size(&d, c.size) || model_open(&m, &c)) {
		dev_close(&d);
		return EXIT_USAGE;
	}
	ret = run(&d, &m, &c);
	model_close(&m);
	dev_close(&d);
	return ret;
}
