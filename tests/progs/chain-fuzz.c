// SPDX-License-Identifier: GPL-2.0
/*
 * chain-fuzz - feed the dm-chain constructor and message handler mutated
 * inputs, in one process (each process start costs 0.3-1 s under TCG).
 *
 *   chain-fuzz --seeds DIR --scratch FILE=LOOP... [--seed N] [--inputs N]
 *              [--only I] [--dm-name NAME] [--verbose]
 *
 * DIR holds seed sets made by tests/guest/fuzz_ctr.sh, one directory each:
 * "layers" ("<#layers> raw|chain"), the layer images 0.img (bottom) ..,
 * and "expect", what the device shows.  DIR/dest.img, if present, is an
 * empty chain layer with the sets' geometry, a mirror destination.  The
 * --scratch pairs are files attached to loop devices (at least one more
 * than the deepest set, for a mirror destination): every input is written
 * into them afresh, so whatever the target writes lands on copies.
 *
 * Input I (seeded with N and I: --only I with the same --seed replays
 * it) takes a seed set, applies zero or more layer mutations (bit flips,
 * boundary values in header fields, truncation, swapped or torn header
 * slots, table entries into metadata or past the end, job records of
 * every type, broken links between layers) and zero or more table line
 * mutations (layer count, base type, devices, feature arguments, target
 * length), then creates the device (DM_DEV_CREATE, DM_TABLE_LOAD,
 * resume).  A refusal must leave a "device-mapper:" line in the kernel
 * log that names the reason.  An accepted device is read end to end
 * (EIO is allowed where corruption points), gets random and malformed
 * messages (each refusal with a log line), a few writes when it fails
 * at once on a full layer, another read, and is removed.  An input whose
 * layers were not mutated and whose table names them in order must read
 * exactly "expect".  Any kernel log line of KMSG_BAD (tests/lib.sh), a
 * refusal without a message or a wrong read ends the run with exit 1 and
 * the input's replay line.  At the end: how many inputs, how each ended,
 * by mutation kind.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <getopt.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

const char *progname = "chain-fuzz";

#define BLOCK		4096u
#define MAX_SETS	16
#define MAX_LAYERS	8
#define MAX_SCRATCH	8
#define LINE_MAX_LEN	2048
#define JOB_OFF		128	/* job[] in the header */
#define JOB_MAGIC	0x31424f4aU
#define NO_LAYER	0xffffffffU
#define READ_CHUNK	(64u << 10)

/* Header field offsets (Documentation/dm-chain-format.rst). */
struct field {
	const char *name;
	unsigned int off, width;
};

static const struct field fields[] = {
	{ "flags", 4, 4 }, { "magic", 24, 8 }, { "version", 32, 4 },
	{ "cluster_size", 36, 4 }, { "generation", 40, 8 },
	{ "incompat_features", 48, 8 }, { "compat_features", 56, 8 },
	{ "virtual_size", 64, 8 }, { "table_offset", 72, 8 },
	{ "table_size", 80, 8 }, { "data_offset", 88, 8 },
	{ "data_end", 96, 8 }, { "backing_type", 104, 4 },
	{ "hint_len", 108, 4 }, { "map_offset", 1408, 8 },
	{ "map_size", 1416, 8 },
};

struct img {
	uint8_t *buf;
	size_t len, cap;
};

struct seedset {
	char name[256];
	unsigned int n;
	bool raw;
	struct img layer[MAX_LAYERS];
	uint8_t *expect;
	uint64_t size;		/* virtual size in bytes */
};

struct scratch {
	const char *file, *loop;
	int ffd;
};

/* Mutation kinds, counted per outcome. */
enum mkind {
	M_NONE, M_BITFLIP, M_FIELD, M_TRUNCATE, M_SLOTS, M_TABLE, M_JOB,
	M_LINK, M_DATA, T_COUNT, T_BASE, T_DEVS, T_FEATURES, T_LENGTH,
	T_GARBAGE, M_DEST, NR_KINDS
};

static const char *const kind_names[NR_KINDS] = {
	"none", "bitflip", "field", "truncate", "slots", "table", "job",
	"link", "data", "line-count", "line-base", "line-devs",
	"line-features", "line-length", "line-garbage", "mirror-dest",
};

enum outcome {
	O_REFUSED, O_RESUME_REFUSED, O_READ_OK, O_READ_EIO, NR_OUTCOMES
};

static const char *const outcome_names[NR_OUTCOMES] = {
	"refused with a message", "refused at resume with a message",
	"accepted, read end to end", "accepted, read hit EIO",
};

struct config {
	const char *seeds, *dm_name;
	struct scratch scratch[MAX_SCRATCH];
	unsigned int nr_scratch;
	uint64_t seed, inputs, only;
	bool have_only, verbose;
};

struct run {
	struct config *c;
	struct seedset sets[MAX_SETS];
	unsigned int nr_sets;
	struct img dest;	/* empty chain layer for a mirror, or none */
	int ctl, kmsg;
	regex_t bad;
	char node[256];
	dev_t dm_dev;
	uint8_t *rbuf;
	/* Per input. */
	struct rng rng;
	uint64_t input;
	struct img work[MAX_LAYERS + 1];
	char line[LINE_MAX_LEN];
	uint64_t len_sect;
	bool layers_pristine, line_valid;
	bool no_space_errors;
	unsigned int kinds;	/* bitmask of enum mkind */
	/* Totals. */
	uint64_t outcome[NR_OUTCOMES];
	uint64_t by_kind[NR_KINDS][NR_OUTCOMES];
	uint64_t msgs_ok, msgs_refused, writes, eio_chunks, pristine_checked;
};

static volatile sig_atomic_t cur_input = -1;

static void on_alarm(int sig)
{
	char msg[128];
	int n;

	(void)sig;
	n = snprintf(msg, sizeof(msg),
		     "chain-fuzz: input %d: no progress for 300 s (hang)\n",
		     (int)cur_input);
	if (write(2, msg, n) < 0)
		_exit(1);
	_exit(1);
}

/* ---------------------------------------------------------------- files */

static int read_file(const char *path, struct img *im)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st)) {
		report(path, "open", errno);
		return -1;
	}
	im->len = st.st_size;
	im->cap = im->len + (1u << 20);
	im->buf = calloc(1, im->cap);
	if (!im->buf || xpread(fd, im->buf, im->len, 0, path)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int load_set(struct run *r, const char *dir, const char *name)
{
	struct seedset *s = &r->sets[r->nr_sets];
	char path[512], kind[16];
	struct img ex = { 0 };
	unsigned int i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/layers", dir, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%u %15s", &s->n, kind) != 2 || !s->n ||
	    s->n > MAX_LAYERS || s->n + 1 > r->c->nr_scratch) {
		fclose(f);
		reportf(path, "parse", "want '<#layers> raw|chain', at most %u",
			r->c->nr_scratch - 1);
		return -1;
	}
	fclose(f);
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->raw = !strcmp(kind, "raw");
	for (i = 0; i < s->n; i++) {
		snprintf(path, sizeof(path), "%s/%s/%u.img", dir, name, i);
		if (read_file(path, &s->layer[i]))
			return -1;
	}
	snprintf(path, sizeof(path), "%s/%s/expect", dir, name);
	if (read_file(path, &ex))
		return -1;
	s->expect = ex.buf;
	s->size = ex.len;
	r->nr_sets++;
	return 0;
}

static int load_sets(struct run *r)
{
	struct dirent **names;
	char path[512];
	int n, i, err = 0;

	n = scandir(r->c->seeds, &names, NULL, alphasort);
	if (n < 0) {
		report(r->c->seeds, "scandir", errno);
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (!err && names[i]->d_name[0] != '.' && r->nr_sets < MAX_SETS)
			err = load_set(r, r->c->seeds, names[i]->d_name);
		free(names[i]);
	}
	free(names);
	if (err)
		return -1;
	if (!r->nr_sets) {
		reportf(r->c->seeds, "load", "no seed sets");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/dest.img", r->c->seeds);
	if (!access(path, R_OK) && read_file(path, &r->dest))
		return -1;
	return 0;
}

/* Put @im into scratch @i and tell its loop device the new size. */
static int put_scratch(struct run *r, unsigned int i, const struct img *im)
{
	struct scratch *sc = &r->c->scratch[i];
	int fd;

	if (ftruncate(sc->ffd, 0) || ftruncate(sc->ffd, im->len)) {
		report(sc->file, "ftruncate", errno);
		return -1;
	}
	if (im->len && xpwrite(sc->ffd, im->buf, im->len, 0, sc->file))
		return -1;
	fd = open(sc->loop, O_RDONLY);
	if (fd < 0 || ioctl(fd, LOOP_SET_CAPACITY, 0)) {
		report(sc->loop, "LOOP_SET_CAPACITY", errno);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------- kmsg */

/*
 * Read the kernel log records that arrived since the last call into
 * @out (NUL-separated lines, at most @len bytes); fail on a KMSG_BAD line.
 */
static int kmsg_drain(struct run *r, char *out, size_t len, const char *when)
{
	char rec[8192];
	size_t used = 0;
	int bad = 0;
	ssize_t n;

	if (out && len)
		out[0] = '\0';
	for (;;) {
		char *text, *nl;

		n = read(r->kmsg, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;	/* overwritten records: go on */
		if (n <= 0)
			break;
		rec[n] = '\0';
		text = strchr(rec, ';');
		text = text ? text + 1 : rec;
		nl = strchr(text, '\n');
		if (nl)
			*nl = '\0';
		if (!regexec(&r->bad, text, 0, NULL, 0)) {
			printf("# input %" PRIu64 ": kernel log after %s: %s\n",
			       r->input, when, text);
			bad = 1;
		}
		if (out && used + strlen(text) + 2 < len) {
			strcpy(out + used, text);
			used += strlen(text) + 1;
			out[used] = '\0';
		}
	}
	return bad ? -1 : 0;
}

/* The first line in @lines (from kmsg_drain) containing @needle. */
static const char *kmsg_find(const char *lines, const char *needle)
{
	for (; *lines; lines += strlen(lines) + 1)
		if (strstr(lines, needle))
			return lines;
	return NULL;
}

/* ---------------------------------------------------------------- dm */

static int dm_remove(struct run *r)
{
	struct dm_ioctl io;
	int i;

	for (i = 0; i < 100; i++) {
		dm_ioctl_init(&io, sizeof(io), r->c->dm_name, 0);
		if (!ioctl(r->ctl, DM_DEV_REMOVE, &io) || errno == ENXIO)
			return 0;
		if (errno != EBUSY)
			break;
		usleep(100000);
	}
	report(r->c->dm_name, "DM_DEV_REMOVE", errno);
	return -1;
}

static int dm_create_empty(struct run *r)
{
	struct dm_ioctl io;

	dm_ioctl_init(&io, sizeof(io), r->c->dm_name, 0);
	if (ioctl(r->ctl, DM_DEV_CREATE, &io)) {
		report(r->c->dm_name, "DM_DEV_CREATE", errno);
		return -1;
	}
	r->dm_dev = (dev_t)io.dev;
	return 0;
}

/* Load r->line; 0, or -errno of the ioctl. */
static int dm_load(struct run *r)
{
	size_t size = sizeof(struct dm_ioctl) + sizeof(struct dm_target_spec) +
		      strlen(r->line) + 8;
	struct dm_target_spec *sp;
	struct dm_ioctl *io = calloc(1, size);
	int err = 0;

	if (!io)
		return -ENOMEM;
	dm_ioctl_init(io, size, r->c->dm_name, 0);
	io->target_count = 1;
	sp = (struct dm_target_spec *)(io + 1);
	sp->sector_start = 0;
	sp->length = r->len_sect;
	snprintf(sp->target_type, sizeof(sp->target_type), "chain");
	strcpy((char *)(sp + 1), r->line);
	if (ioctl(r->ctl, DM_TABLE_LOAD, io))
		err = -errno;
	free(io);
	return err;
}

static int dm_resume(struct run *r)
{
	struct dm_ioctl io;

	dm_ioctl_init(&io, sizeof(io), r->c->dm_name, 0);
	return ioctl(r->ctl, DM_DEV_SUSPEND, &io) ? -errno : 0;
}

static int dm_message(struct run *r, const char *msg)
{
	char buf[sizeof(struct dm_ioctl) + sizeof(struct dm_target_msg) + 512];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	struct dm_target_msg *m = (struct dm_target_msg *)(io + 1);

	dm_ioctl_init(io, sizeof(buf), r->c->dm_name, 0);
	m->sector = 0;
	snprintf(m->message, sizeof(buf) - sizeof(*io) - sizeof(*m), "%s", msg);
	return ioctl(r->ctl, DM_TARGET_MSG, io) ? -errno : 0;
}

/*
 * The status line: the job's done/total (the second a/b field) must have
 * done <= total, the allocated/total of the active layer too.
 */
static int dm_check_status(struct run *r, char *out, size_t len)
{
	char buf[sizeof(struct dm_ioctl) + 4096];
	struct dm_ioctl *io = (struct dm_ioctl *)buf;
	struct dm_target_spec *sp = (struct dm_target_spec *)(io + 1);
	unsigned long long a, b;
	const char *p;
	size_t n;

	dm_ioctl_init(io, sizeof(buf), r->c->dm_name, 0);
	if (ioctl(r->ctl, DM_TABLE_STATUS, io)) {
		snprintf(out, len, "DM_TABLE_STATUS: %s", strerror(errno));
		return -1;
	}
	if (io->flags & DM_BUFFER_FULL_FLAG || io->target_count != 1) {
		snprintf(out, len, "DM_TABLE_STATUS: no status line");
		return -1;
	}
	p = (const char *)(sp + 1);
	n = strnlen(p, len - 1);
	memcpy(out, p, n);
	out[n] = '\0';
	for (; *p; p++) {
		if (*p != ' ' && (p == (const char *)(sp + 1) || p[-1] == ' ') &&
		    sscanf(p, "%llu/%llu", &a, &b) == 2 && a > b)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- layers */

static uint64_t get_le(const uint8_t *p, unsigned int width)
{
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < width; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, unsigned int width, uint64_t v)
{
	unsigned int i;

	for (i = 0; i < width; i++)
		p[i] = v >> (8 * i);
}

static bool is_chain_layer(const struct run *r, const struct seedset *s,
			   unsigned int l)
{
	(void)r;
	return !(s->raw && l == 0);
}

/* The current header slot (higher generation) of @im. */
static unsigned int cur_slot(const struct img *im)
{
	if (im->len < 2 * BLOCK)
		return 0;
	return get_le(im->buf + BLOCK + 40, 8) > get_le(im->buf + 40, 8);
}

static void fix_csum(struct img *im, unsigned int slot)
{
	uint8_t *b = im->buf + slot * BLOCK;

	if (im->len < (slot + 1) * BLOCK)
		return;
	put_le(b, 4, crc32c(b + 4, BLOCK - 4));
}

static uint64_t hdr(const struct img *im, const char *name)
{
	unsigned int i, s = cur_slot(im);

	for (i = 0; i < ARRAY_SIZE(fields); i++)
		if (!strcmp(fields[i].name, name) && im->len >= 2 * BLOCK)
			return get_le(im->buf + s * BLOCK + fields[i].off,
				      fields[i].width);
	return 0;
}

static uint64_t pick(struct rng *g, const uint64_t *v, size_t n)
{
	return v[rng_below(g, n)];
}

/* A value at or near a boundary for a field of @width bytes. */
static uint64_t boundary(struct run *r, uint64_t orig, unsigned int width,
			 uint64_t near)
{
	uint64_t max = width == 8 ? UINT64_MAX : (1ULL << (8 * width)) - 1;
	uint64_t v[] = { 0, 1, max, max - 1, orig - 1, orig + 1, near,
			 near - 1, near + 1, orig * 2, orig / 2,
			 1ULL << (8 * width - 1), rng_next(&r->rng) & max,
			 4096, 4095, 2u << 20, (2u << 20) + 1 };

	return pick(&r->rng, v, ARRAY_SIZE(v)) & max;
}

static void mut_bitflip(struct run *r, struct img *im)
{
	unsigned int flips = 1 + rng_below(&r->rng, 8), slot, i;
	uint64_t area = rng_below(&r->rng, 3);

	slot = rng_below(&r->rng, 2);
	for (i = 0; i < flips; i++) {
		uint64_t off;

		if (area == 0)		/* the fields */
			off = rng_below(&r->rng, 128);
		else if (area == 1)	/* the job record */
			off = JOB_OFF + rng_below(&r->rng, 256);
		else
			off = rng_below(&r->rng, BLOCK);
		off += slot * BLOCK;
		if (off < im->len)
			im->buf[off] ^= 1u << rng_below(&r->rng, 8);
	}
	if (rng_below(&r->rng, 4))
		fix_csum(im, slot);
}

static void mut_field(struct run *r, struct img *im)
{
	const struct field *f = &fields[rng_below(&r->rng, ARRAY_SIZE(fields))];
	unsigned int s = cur_slot(im), both = rng_below(&r->rng, 3) == 0, i;
	uint64_t near = im->len;

	if (!strcmp(f->name, "data_end"))
		near = im->len / (hdr(im, "cluster_size") ?: 1);
	else if (!strcmp(f->name, "virtual_size"))
		near = hdr(im, "table_size") * 8 * hdr(im, "cluster_size") / 8;
	for (i = 0; i < 2; i++) {
		uint8_t *b;
		unsigned int slot = both ? i : s;

		if (!both && i)
			break;
		if (im->len < (slot + 1) * BLOCK)
			break;
		b = im->buf + slot * BLOCK + f->off;
		put_le(b, f->width, boundary(r, get_le(b, f->width), f->width,
					     near));
		if (rng_below(&r->rng, 8))
			fix_csum(im, slot);
	}
}

static void mut_truncate(struct run *r, struct img *im)
{
	uint64_t cs = hdr(im, "cluster_size") ?: 65536;
	uint64_t doff = hdr(im, "data_offset");
	uint64_t v[] = { 0, 512, BLOCK, 2 * BLOCK - 1, 2 * BLOCK,
			 2 * BLOCK + 4095, doff, doff + 1, doff + cs - 512,
			 im->len - BLOCK, im->len - cs, im->len - 512,
			 rng_below(&r->rng, im->len + 1), im->len + cs };
	uint64_t len = pick(&r->rng, v, ARRAY_SIZE(v));

	if (len > im->cap)
		len = im->cap;
	if (len > im->len)
		memset(im->buf + im->len, 0, len - im->len);
	im->len = len & ~511ULL;
}

static void mut_slots(struct run *r, struct img *im)
{
	uint8_t tmp[BLOCK];
	unsigned int s = cur_slot(im), o = !s;
	uint64_t gen = get_le(im->buf + s * BLOCK + 40, 8);

	if (im->len < 2 * BLOCK)
		return;
	switch (rng_below(&r->rng, 7)) {
	case 0:		/* swapped */
		memcpy(tmp, im->buf, BLOCK);
		memcpy(im->buf, im->buf + BLOCK, BLOCK);
		memcpy(im->buf + BLOCK, tmp, BLOCK);
		break;
	case 1:		/* torn current slot: a prefix of a new write */
		memcpy(im->buf + s * BLOCK + 512 * (1 + rng_below(&r->rng, 7)),
		       im->buf + o * BLOCK, 512);
		break;
	case 2:		/* the older slot claims to be newer */
		put_le(im->buf + o * BLOCK + 40, 8, gen + 1);
		fix_csum(im, o);
		break;
	case 3:		/* same generation in both */
		put_le(im->buf + o * BLOCK + 40, 8, gen);
		fix_csum(im, o);
		break;
	case 4:		/* current slot zeroed */
		memset(im->buf + s * BLOCK, 0, BLOCK);
		break;
	case 5:		/* both slots zeroed */
		memset(im->buf, 0, 2 * BLOCK);
		break;
	default:	/* generation wraps */
		put_le(im->buf + s * BLOCK + 40, 8, UINT64_MAX);
		put_le(im->buf + o * BLOCK + 40, 8, 0);
		fix_csum(im, s);
		fix_csum(im, o);
		break;
	}
}

/* Set table block b's bit in the table map, if the map holds it. */
static void mark_block(struct img *im, uint64_t b)
{
	uint64_t moff = hdr(im, "map_offset");

	if (moff < im->len && b / 8 < im->len - moff &&
	    b / 8 < hdr(im, "map_size"))
		im->buf[moff + b / 8] |= 1u << (b % 8);
}

static void mut_table(struct run *r, struct img *im)
{
	uint64_t cs = hdr(im, "cluster_size"), toff = hdr(im, "table_offset");
	uint64_t nr = cs ? hdr(im, "virtual_size") / cs : 0;
	uint64_t doff = hdr(im, "data_offset"), devc, i, e, host, j;
	unsigned int n = 1 + rng_below(&r->rng, 3);

	if (!cs || !nr || toff + 8 * nr > im->len)
		return;
	devc = im->len / cs;
	while (n--) {
		uint64_t hosts[] = { 0, 1, doff / cs - 1, toff / cs, devc - 1,
				     devc, devc + 1, 0xffffffffffffULL,
				     hdr(im, "data_end"),
				     hdr(im, "data_end") - 1 };

		i = rng_below(&r->rng, 4) ? rng_below(&r->rng, nr) : nr - 1;
		host = pick(&r->rng, hosts, ARRAY_SIZE(hosts));
		switch (rng_below(&r->rng, 7)) {
		case 0:		/* mapped to a boundary host cluster */
			e = (2ULL << 62) | (host & 0xffffffffffffULL);
			break;
		case 1:		/* two entries, one host cluster */
			j = rng_below(&r->rng, nr);
			e = get_le(im->buf + toff + 8 * j, 8);
			if (e >> 62 != 2)
				e = (2ULL << 62) | (doff / cs);
			break;
		case 2:		/* type 3 */
			e = (3ULL << 62) | host;
			break;
		case 3:		/* reserved bits */
			e = get_le(im->buf + toff + 8 * i, 8) |
			    (1ULL << (48 + rng_below(&r->rng, 14)));
			break;
		case 4:		/* ZERO or ABSENT with a host */
			e = (rng_below(&r->rng, 2) << 62) | (host ?: 1);
			break;
		case 5:		/* a bit flip */
			e = get_le(im->buf + toff + 8 * i, 8) ^
			    (1ULL << rng_below(&r->rng, 64));
			break;
		default:
			e = rng_next(&r->rng);
			break;
		}
		put_le(im->buf + toff + 8 * i, 8, e);
		/* Marked in the table map (else never read), mostly. */
		if (rng_below(&r->rng, 4))
			mark_block(im, i / 512);
	}
	/* Now and then a map bit anywhere, past the table too. */
	if (!rng_below(&r->rng, 4))
		mark_block(im, rng_below(&r->rng, 8 * 4096));
}

/* A job record of any type, fields at boundaries, in the active layer. */
static void mut_job(struct run *r, struct img *im, const struct seedset *s)
{
	uint8_t *j;
	unsigned int slot = cur_slot(im), n = s->n;
	uint64_t cs = hdr(im, "cluster_size") ?: 1, nr = s->size / cs;
	uint64_t layers[] = { 0, 1, n - 2, n - 1, n, NO_LAYER, 255,
			      rng_next(&r->rng) & 0xffffffff };
	uint64_t cursors[] = { 0, 1, nr - 1, nr, nr + 1, UINT64_MAX,
			       rng_below(&r->rng, nr + 1) };
	uint64_t bws[] = { 0, 1, 4096, UINT64_MAX };
	uint64_t bytes[] = { 0, s->size, s->size + 1, UINT64_MAX };

	if (im->len < 2 * BLOCK)
		return;
	j = im->buf + slot * BLOCK + JOB_OFF;
	memset(j, 0, 256);
	put_le(j, 4, rng_below(&r->rng, 10) ? JOB_MAGIC : rng_next(&r->rng));
	j[4] = rng_below(&r->rng, 8) ? 1 + rng_below(&r->rng, 4) :
				       rng_below(&r->rng, 256);
	j[5] = rng_below(&r->rng, 8) ? rng_below(&r->rng, 6) :
				       rng_below(&r->rng, 256);
	j[6] = rng_below(&r->rng, 4) ? 0 : rng_below(&r->rng, 256);
	j[7] = pick(&r->rng, (const uint64_t[]){ 0, 5, 128, 129, 255 }, 5);
	put_le(j + 8, 4, pick(&r->rng, layers, ARRAY_SIZE(layers)));
	put_le(j + 12, 4, pick(&r->rng, layers, ARRAY_SIZE(layers)));
	put_le(j + 16, 8, pick(&r->rng, cursors, ARRAY_SIZE(cursors)));
	put_le(j + 24, 8, pick(&r->rng, bws, ARRAY_SIZE(bws)));
	put_le(j + 32, 8, pick(&r->rng, bytes, ARRAY_SIZE(bytes)));
	put_le(j + 40, 8, pick(&r->rng, bytes, ARRAY_SIZE(bytes)));
	/* top, base, dest uuids: the layers' own, mostly, else random */
	{
		unsigned int t = get_le(j + 8, 4), b = get_le(j + 12, 4);

		if (t < n && is_chain_layer(r, s, t) && rng_below(&r->rng, 4))
			memcpy(j + 48, r->work[t].buf + cur_slot(&r->work[t]) *
			       BLOCK + 8, 16);
		else if (rng_below(&r->rng, 2))
			rng_fill(&r->rng, j + 48, 16);
		if (b < n && is_chain_layer(r, s, b) && rng_below(&r->rng, 4))
			memcpy(j + 64, r->work[b].buf + cur_slot(&r->work[b]) *
			       BLOCK + 8, 16);
		else if (rng_below(&r->rng, 2))
			rng_fill(&r->rng, j + 64, 16);
	}
	if (r->dest.len >= BLOCK && rng_below(&r->rng, 2))
		memcpy(j + 80, r->dest.buf + 8, 16);
	rng_fill(&r->rng, j + 96, j[7] < 128 ? j[7] : 128);
	if (rng_below(&r->rng, 10))
		fix_csum(im, slot);
}

static void mut_link(struct run *r, struct img *im, const struct seedset *s)
{
	unsigned int slot = cur_slot(im), other = rng_below(&r->rng, s->n);
	uint8_t *b = im->buf + slot * BLOCK;
	const struct img *o = &r->work[other];
	const uint8_t *ouuid = o->len >= 2 * BLOCK ?
			       o->buf + cur_slot(o) * BLOCK + 8 : NULL;

	switch (rng_below(&r->rng, 5)) {
	case 0:
		put_le(b + 104, 4, rng_below(&r->rng, 5));
		break;
	case 1:		/* backing uuid: another layer's, maybe itself */
		if (ouuid)
			memmove(b + 112, ouuid, 16);
		break;
	case 2:		/* own uuid: a duplicate of another layer's */
		if (ouuid)
			memmove(b + 8, ouuid, 16);
		break;
	case 3:
		put_le(b + 108, 4, pick(&r->rng, (const uint64_t[]){
			0, 1023, 1024, 1025, UINT32_MAX }, 5));
		break;
	default:
		rng_fill(&r->rng, b + 112, 16);
		break;
	}
	if (rng_below(&r->rng, 8))
		fix_csum(im, slot);
}

static void mut_data(struct run *r, struct img *im)
{
	uint64_t doff = hdr(im, "data_offset"), off;

	if (doff >= im->len)
		return;
	off = doff + rng_below(&r->rng, im->len - doff);
	im->buf[off] ^= 0xff;
}

/* ---------------------------------------------------------------- line */

static void add(char *line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add(char *line, const char *fmt, ...)
{
	size_t used = strlen(line);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + used, LINE_MAX_LEN - used, fmt, ap);
	va_end(ap);
}

static const char *const numbers[] = {
	"0", "1", "-1", "2", "254", "255", "256", "4294967295", "4294967296",
	"18446744073709551615", "18446744073709551616", "x", "0x10", "+1", "",
	"1.5", "99999999999999999999999",
};

static const char *rnum(struct run *r)
{
	return numbers[rng_below(&r->rng, ARRAY_SIZE(numbers))];
}

/* Feature words, valid and not; @dest is the mirror destination loop. */
static void add_feature(struct run *r, char *f, unsigned int *nr,
			const char *dest, bool valid)
{
	static const char *const words[] = {
		"ignore_discard", "no_discard_passdown", "error_if_no_space",
		"dest_zeroed", "IGNORE_DISCARD", "discard", "mirror", "bandwidth",
	};
	unsigned int w = rng_below(&r->rng, valid ? 5 : 10);

	switch (w) {
	case 0: case 1: case 2:
		add(f, " %s", words[w]);
		(*nr)++;
		return;
	case 3:
		add(f, " no_space_timeout:%s", valid ? "1" : rnum(r));
		(*nr)++;
		return;
	case 4:
		add(f, " bandwidth:%s", valid ? "1048576" : rnum(r));
		(*nr)++;
		return;
	case 5:		/* mirror with 0..4 words */
		{
			unsigned int k = rng_below(&r->rng, 5), i;
			static const char *const mw[] = {
				"raw", "chain", "full", "shallow", "RAW", "x",
			};

			add(f, " mirror");
			(*nr)++;
			if (k >= 1) {
				add(f, " %s", rng_below(&r->rng, 3) ? dest :
				    "/dev/nonexistent");
				(*nr)++;
			}
			for (i = 1; i < k; i++) {
				add(f, " %s", mw[rng_below(&r->rng, 6)]);
				(*nr)++;
			}
		}
		return;
	case 6:
		add(f, " no_space_timeout%s", rng_below(&r->rng, 2) ? ":" : "");
		(*nr)++;
		return;
	default:
		add(f, " %s", words[3 + rng_below(&r->rng, 5)]);
		(*nr)++;
		return;
	}
}

static const char *scratch_loop(struct run *r, unsigned int i)
{
	return r->c->scratch[i].loop;
}

/*
 * Build the table line for set @s (layers in scratch 0..n-1, a mirror
 * destination in scratch n), with line mutations @tkinds (bitmask).
 */
static void build_line(struct run *r, const struct seedset *s,
		       unsigned int tkinds, bool mirror, int mirror_raw)
{
	char feat[LINE_MAX_LEN] = "", *line = r->line;
	unsigned int nfeat = 0, i, n = s->n;
	const char *devs[MAX_LAYERS + 2];
	unsigned int ndevs = n;

	for (i = 0; i < n; i++)
		devs[i] = scratch_loop(r, i);
	line[0] = '\0';
	r->len_sect = s->size / 512;
	r->no_space_errors = false;

	if (tkinds & (1u << T_COUNT))
		add(line, "%s", rnum(r));
	else
		add(line, "%u", n);
	if (tkinds & (1u << T_BASE)) {
		static const char *const b[] = { "raw", "chain", "RAW", "none",
						 "", "rawx", "Chain" };

		add(line, " %s", b[rng_below(&r->rng, ARRAY_SIZE(b))]);
	} else {
		add(line, " %s", s->raw ? "raw" : "chain");
	}
	if (tkinds & (1u << T_DEVS)) {
		char self[32];
		unsigned int a = rng_below(&r->rng, n), b2 = rng_below(&r->rng, n);
		const char *t;

		snprintf(self, sizeof(self), "%u:%u", major(r->dm_dev),
			 minor(r->dm_dev));
		switch (rng_below(&r->rng, 6)) {
		case 0:		/* one missing */
			ndevs = n - 1;
			for (i = a; i < ndevs; i++)
				devs[i] = devs[i + 1];
			break;
		case 1:		/* one twice */
			devs[a] = devs[b2 == a ? (a + 1) % n : b2];
			break;
		case 2:		/* two swapped */
			t = devs[a];
			devs[a] = devs[b2];
			devs[b2] = t;
			break;
		case 3:
			devs[a] = "/dev/nonexistent";
			break;
		case 4:		/* the device itself */
			devs[a] = strdup(self);
			break;
		default:	/* one extra: the mirror scratch */
			devs[ndevs++] = scratch_loop(r, n);
			break;
		}
	}
	for (i = 0; i < ndevs; i++)
		add(line, " %s", devs[i]);

	if (mirror) {
		bool shallow = !rng_below(&r->rng, 4);

		add(feat, " mirror %s %s %s", scratch_loop(r, n),
		    mirror_raw ? "raw" : "chain", shallow ? "shallow" : "full");
		/*
		 * A raw destination takes full only; dest.img (64 KiB
		 * clusters, no backing) takes a full copy of a 64 KiB chain.
		 */
		if (shallow || (!mirror_raw &&
				hdr(&r->work[n - 1], "cluster_size") != 65536))
			r->line_valid = false;
		nfeat += 4;
		if (mirror_raw && rng_below(&r->rng, 2)) {
			add(feat, " dest_zeroed");
			nfeat++;
		}
	}
	if (tkinds & (1u << T_FEATURES)) {
		unsigned int k = 1 + rng_below(&r->rng, 4);

		while (k--)
			add_feature(r, feat, &nfeat, scratch_loop(r, n), false);
	} else if (rng_below(&r->rng, 3) == 0) {
		add_feature(r, feat, &nfeat, scratch_loop(r, n), true);
	}
	/* Writes are sent only when a full layer fails them at once. */
	if (rng_below(&r->rng, 2)) {
		add(feat, " error_if_no_space");
		nfeat++;
		r->no_space_errors = !(tkinds & (1u << T_FEATURES));
	}
	if (nfeat || rng_below(&r->rng, 4) == 0) {
		if ((tkinds & (1u << T_FEATURES)) && rng_below(&r->rng, 2))
			add(line, " %s%s", rnum(r), feat);
		else
			add(line, " %u%s", nfeat, feat);
	}
	if (tkinds & (1u << T_LENGTH)) {
		uint64_t v[] = { 8, r->len_sect - 8, r->len_sect + 8,
				 r->len_sect * 2, r->len_sect + 1, 1 };

		r->len_sect = pick(&r->rng, v, ARRAY_SIZE(v));
	}
	if (tkinds & (1u << T_GARBAGE)) {
		size_t len = strlen(line);
		unsigned int k = 1 + rng_below(&r->rng, 3);

		while (k--) {
			switch (rng_below(&r->rng, 3)) {
			case 0:		/* cut the line */
				line[rng_below(&r->rng, len + 1)] = '\0';
				break;
			case 1:		/* a random word appended */
				add(line, " %s", rnum(r));
				break;
			default:	/* a printable byte replaced */
				if (len)
					line[rng_below(&r->rng, len)] =
						33 + rng_below(&r->rng, 94);
				break;
			}
			len = strlen(line);
		}
	}
}

/* ---------------------------------------------------------------- I/O */

/* Read the device end to end; count EIO chunks; compare if @expect. */
static int read_all(struct run *r, const uint8_t *expect, uint64_t *eio)
{
	uint64_t off, size;
	int fd = open(r->node, O_RDONLY | O_DIRECT);

	if (fd < 0) {
		report(r->node, "open", errno);
		return -1;
	}
	if (ioctl(fd, BLKGETSIZE64, &size)) {
		report(r->node, "BLKGETSIZE64", errno);
		close(fd);
		return -1;
	}
	for (off = 0; off < size; off += READ_CHUNK) {
		size_t len = size - off < READ_CHUNK ? size - off : READ_CHUNK;
		ssize_t n = pread(fd, r->rbuf, len, off);

		if (n < 0 && errno == EIO) {
			(*eio)++;
			continue;
		}
		if (n != (ssize_t)len) {
			reportf(r->node, "read", "offset %" PRIu64 ": %zd of %zu: %s",
				off, n, len, n < 0 ? strerror(errno) : "short");
			close(fd);
			return -1;
		}
		if (expect && memcmp(r->rbuf, expect + off, len)) {
			reportf(r->node, "read", "offset %" PRIu64 ": not what the layers hold",
				off);
			close(fd);
			return -1;
		}
	}
	close(fd);
	return 0;
}

/* A few stamped writes, whole and partial clusters; EIO/ENOSPC allowed. */
static int write_some(struct run *r, uint64_t size)
{
	unsigned int k = 1 + rng_below(&r->rng, 3);
	int fd = open(r->node, O_RDWR | O_DIRECT);

	if (fd < 0) {
		report(r->node, "open", errno);
		return -1;
	}
	while (k-- && size >= BLOCK) {
		uint64_t off = rng_below(&r->rng, size / BLOCK) * BLOCK;
		size_t len = BLOCK * (1 + rng_below(&r->rng, 16));

		if (off + len > size)
			len = size - off;
		rng_fill(&r->rng, r->rbuf, len);
		if (pwrite(fd, r->rbuf, len, off) < 0 && errno != EIO &&
		    errno != ENOSPC) {
			report(r->node, "write", errno);
			close(fd);
			return -1;
		}
		r->writes++;
	}
	if (fsync(fd) && errno != EIO && errno != ENOSPC) {
		report(r->node, "fsync", errno);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void random_message(struct run *r, unsigned int n, char *msg,
			   size_t len)
{
	char a[16], b[16];

	snprintf(a, sizeof(a), "%u", (unsigned int)rng_below(&r->rng, n + 2));
	snprintf(b, sizeof(b), "%u", (unsigned int)rng_below(&r->rng, n + 1));
	switch (rng_below(&r->rng, 14)) {
	case 0: snprintf(msg, len, "stream"); break;
	case 1: snprintf(msg, len, "stream %s", rng_below(&r->rng, 2) ? b : rnum(r)); break;
	case 2: snprintf(msg, len, "commit %s %s", a, b); break;
	case 3: snprintf(msg, len, "commit %s %s", rnum(r), rnum(r)); break;
	case 4: snprintf(msg, len, "job pause"); break;
	case 5: snprintf(msg, len, "job resume"); break;
	case 6: snprintf(msg, len, "job cancel"); break;
	case 7: snprintf(msg, len, "job bandwidth %s", rnum(r)); break;
	case 8: snprintf(msg, len, "job"); break;
	case 9: snprintf(msg, len, "job %s", rnum(r)); break;
	case 10: snprintf(msg, len, "commit %s", a); break;
	case 11: snprintf(msg, len, "stream %s %s", b, rnum(r)); break;
	case 12: snprintf(msg, len, "JOB Pause extra"); break;
	default: snprintf(msg, len, "%s", rng_below(&r->rng, 2) ? "mark x" : rnum(r)); break;
	}
	if (!msg[0])
		snprintf(msg, len, "x");
}

/* ---------------------------------------------------------------- input */

static int fail(struct run *r, const char *what)
{
	printf("# input %" PRIu64 " failed: %s\n# table: %s (length %" PRIu64
	       " sectors)\n# replay: FUZZ_SEED=%" PRIu64 " FUZZ_ONLY=%" PRIu64
	       " (chain-fuzz --seed %" PRIu64 " --only %" PRIu64 ")\n",
	       r->input, what, r->line, r->len_sect, r->c->seed, r->input,
	       r->c->seed, r->input);
	return -1;
}

/* Fail input r->input with its device (created, maybe loaded) removed. */
static int fail_removed(struct run *r, const char *what)
{
	unlink(r->node);
	dm_remove(r);
	return fail(r, what);
}

/* The kernel log clean and the status sane after @when; else fail. */
static int check_device(struct run *r, const char *when)
{
	char status[256], what[128];

	snprintf(what, sizeof(what), "kernel warning at %s", when);
	if (kmsg_drain(r, NULL, 0, when))
		return fail_removed(r, what);
	if (dm_check_status(r, status, sizeof(status))) {
		printf("# status: %s\n", status);
		return fail_removed(r, "status shows more done than in total");
	}
	return 0;
}

static void count(struct run *r, enum outcome o)
{
	unsigned int k;

	r->outcome[o]++;
	for (k = 0; k < NR_KINDS; k++)
		if (r->kinds & (1u << k))
			r->by_kind[k][o]++;
}

/*
 * The table load or the resume failed with @err: the kernel log since
 * (@klog) must say why, and the input must have been invalid.
 */
static int refused(struct run *r, int err, const char *klog, enum outcome o)
{
	const char *why = kmsg_find(klog, "device-mapper:");

	dm_remove(r);
	if (!why || strstr(why, "Unknown error")) {
		printf("# %s: %s; kernel log: %s\n", outcome_names[o],
		       strerror(-err), why ? why : "(nothing)");
		return fail(r, "refused without a message");
	}
	if (r->layers_pristine && r->line_valid) {
		printf("# %s\n", why);
		return fail(r, "a valid table was refused");
	}
	if (r->c->verbose)
		printf("#   %s: %s\n", outcome_names[o], why);
	count(r, o);
	return kmsg_drain(r, NULL, 0, "the remove") ?
	       fail(r, "kernel warning at the remove") : 0;
}

static int one_input(struct run *r)
{
	static char klog[65536];
	const struct seedset *s;
	unsigned int i, n, tk = 0, nm, l;
	bool mirror = false;
	int mirror_raw = 0, err;
	uint64_t eio = 0, eio2 = 0;
	char msg[256], desc[512] = "";

	rng_seed(&r->rng, r->c->seed * 0x100000001b3ULL ^ (r->input + 1) *
		 0x9e3779b97f4a7c15ULL);
	cur_input = r->input;
	alarm(300);
	s = &r->sets[rng_below(&r->rng, r->nr_sets)];
	n = s->n;
	r->kinds = 0;
	for (i = 0; i < n; i++) {
		r->work[i].len = s->layer[i].len;
		memcpy(r->work[i].buf, s->layer[i].buf, s->layer[i].len);
	}

	/* Layer mutations: none (a control), one, or a few. */
	nm = rng_below(&r->rng, 10) == 0 ? 0 : 1 + (rng_below(&r->rng, 4) == 0);
	if (rng_below(&r->rng, 4) == 0)
		nm = 0;		/* table line mutations only */
	for (i = 0; i < nm; i++) {
		enum mkind k = M_BITFLIP + rng_below(&r->rng, M_DATA - M_BITFLIP + 1);
		struct img *im;

		l = rng_below(&r->rng, n);
		if (k == M_JOB)
			l = n - 1;
		if (!is_chain_layer(r, s, l)) {
			/* a raw base: only its size and content can change */
			k = rng_below(&r->rng, 2) ? M_TRUNCATE : M_DATA;
		}
		im = &r->work[l];
		switch (k) {
		case M_BITFLIP: mut_bitflip(r, im); break;
		case M_FIELD: mut_field(r, im); break;
		case M_TRUNCATE: mut_truncate(r, im); break;
		case M_SLOTS: mut_slots(r, im); break;
		case M_TABLE: mut_table(r, im); break;
		case M_JOB:
			if (!is_chain_layer(r, s, l))
				break;
			mut_job(r, im, s);
			{
				uint8_t *j = im->buf + cur_slot(im) * BLOCK +
					     JOB_OFF;

				if (j[4] == 4 && rng_below(&r->rng, 4)) {
					mirror = true;
					mirror_raw = (j[6] & 2) != 0;
				}
			}
			break;
		case M_LINK: mut_link(r, im, s); break;
		default:
			if (is_chain_layer(r, s, l))
				mut_data(r, im);
			else if (im->len)
				im->buf[rng_below(&r->rng, im->len)] ^= 0x5a;
			break;
		}
		r->kinds |= 1u << k;
		snprintf(desc + strlen(desc), sizeof(desc) - strlen(desc),
			 "%s%s@%u", i ? "," : "", kind_names[k], l);
	}
	r->layers_pristine = !nm;

	/* Table line mutations, on a third of the inputs. */
	if (rng_below(&r->rng, 3) == 0) {
		tk = 1u << (T_COUNT + rng_below(&r->rng, T_GARBAGE - T_COUNT + 1));
		if (rng_below(&r->rng, 4) == 0)
			tk |= 1u << (T_COUNT + rng_below(&r->rng, T_GARBAGE - T_COUNT + 1));
	}
	/* A valid mirror job from the table, now and then. */
	if (!mirror && rng_below(&r->rng, 8) == 0) {
		mirror = true;
		mirror_raw = rng_below(&r->rng, 2);
	}
	r->kinds |= tk;
	if (!r->kinds)
		r->kinds = 1u << M_NONE;
	r->line_valid = !tk;

	/* Mirror destination in scratch n: a zeroed raw file or dest.img. */
	if (mirror && (mirror_raw || !r->dest.len)) {
		mirror_raw = 1;
		r->work[n].len = s->size;
		memset(r->work[n].buf, 0, s->size);
	} else if (mirror) {
		r->work[n].len = r->dest.len;
		memcpy(r->work[n].buf, r->dest.buf, r->dest.len);
		/* the destination's header and table get mutated too */
		r->kinds |= 1u << M_DEST;
		switch (rng_below(&r->rng, 12)) {
		case 0: mut_bitflip(r, &r->work[n]); break;
		case 1: mut_field(r, &r->work[n]); break;
		case 2: mut_truncate(r, &r->work[n]); break;
		case 3: mut_table(r, &r->work[n]); break;
		default: r->kinds &= ~(1u << M_DEST); break;
		}
		if (r->kinds & (1u << M_DEST)) {
			r->kinds &= ~(1u << M_NONE);
			r->line_valid = false;
		}
	} else {
		r->work[n].len = 0;
	}
	for (i = 0; i <= n; i++)
		if (put_scratch(r, i, &r->work[i]))
			return fail(r, "cannot prepare the scratch files");

	if (dm_create_empty(r))
		return fail(r, "DM_DEV_CREATE");
	build_line(r, s, tk, mirror, mirror_raw);
	if (r->c->verbose)
		printf("# input %" PRIu64 ": set %s, %s%s: %s\n", r->input,
		       s->name, desc[0] ? desc : "layers as made",
		       tk ? ", line mutated" : "", r->line);
	if (kmsg_drain(r, NULL, 0, "the layers were written"))
		return fail(r, "kernel warning");

	err = dm_load(r);
	if (kmsg_drain(r, klog, sizeof(klog), "the table load"))
		return fail(r, "kernel warning at the table load");
	if (err)
		return refused(r, err, klog, O_REFUSED);
	err = dm_resume(r);
	if (kmsg_drain(r, klog, sizeof(klog), "the resume"))
		return fail(r, "kernel warning at the resume");
	if (err)
		return refused(r, err, klog, O_RESUME_REFUSED);

	unlink(r->node);
	if (mknod(r->node, S_IFBLK | 0600, r->dm_dev)) {
		report(r->node, "mknod", errno);
		return fail_removed(r, "mknod");
	}
	/*
	 * The layers as made, named in order, must read as made (a mirror
	 * or a job only copies).  Only an accepted line with the right
	 * length qualifies; a mangled line may name another scratch device,
	 * and a chain layer named raw reads as the bytes it holds.
	 */
	{
		const uint8_t *expect = NULL;

		if (r->layers_pristine && r->len_sect == s->size / 512 &&
		    (tk & ~((1u << T_FEATURES) | (1u << T_COUNT))) == 0) {
			expect = s->expect;
			r->pristine_checked++;
		}
		if (read_all(r, expect, &eio))
			return fail_removed(r, expect ? "accepted but wrong" :
					    "read failed other than by EIO");
		if (expect && eio)
			return fail_removed(r, "the layers as made hit EIO");
	}
	if (check_device(r, "the read"))
		return -1;

	/* Messages, valid and not; every refusal says why. */
	nm = rng_below(&r->rng, 4);
	for (i = 0; i < nm; i++) {
		random_message(r, n, msg, sizeof(msg));
		err = dm_message(r, msg);
		if (kmsg_drain(r, klog, sizeof(klog), msg))
			return fail_removed(r, "kernel warning at a message");
		if (r->c->verbose)
			printf("#   message '%s': %s\n", msg,
			       err ? strerror(-err) : "accepted");
		if (!err) {
			r->msgs_ok++;
			continue;
		}
		r->msgs_refused++;
		if (!kmsg_find(klog, "device-mapper:")) {
			printf("# message '%s': %s, no kernel log line\n", msg,
			       strerror(-err));
			return fail_removed(r, "message refused without a message");
		}
	}
	if (r->no_space_errors && rng_below(&r->rng, 2) &&
	    write_some(r, r->len_sect * 512))
		return fail_removed(r, "write failed other than by EIO or ENOSPC");
	if (nm && read_all(r, NULL, &eio2))
		return fail_removed(r, "read failed other than by EIO");
	if (check_device(r, "the messages and writes"))
		return -1;
	unlink(r->node);
	if (dm_remove(r))
		return fail(r, "the device cannot be removed");
	if (kmsg_drain(r, NULL, 0, "the remove"))
		return fail(r, "kernel warning at the remove");
	r->eio_chunks += eio;
	count(r, eio ? O_READ_EIO : O_READ_OK);
	return 0;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: chain-fuzz --seeds DIR --scratch FILE=LOOP... [--seed N]\n"
		"                  [--inputs N] [--only I] [--dm-name NAME] [--verbose]\n"
		"Feed the dm-chain constructor mutated layers, table lines and\n"
		"messages; see the comment at the top of chain-fuzz.c.\n");
}

static int parse_args(struct config *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seeds", required_argument, NULL, 'd' },
		{ "scratch", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "inputs", required_argument, NULL, 'n' },
		{ "only", required_argument, NULL, 'o' },
		{ "dm-name", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (o) {
		case 'd': c->seeds = optarg; break;
		case 's': {
			char *eq = strchr(optarg, '=');

			if (!eq || c->nr_scratch == MAX_SCRATCH) {
				reportf(optarg, "--scratch", "want FILE=LOOP, at most %u",
					MAX_SCRATCH);
				return -1;
			}
			*eq = '\0';
			c->scratch[c->nr_scratch].file = optarg;
			c->scratch[c->nr_scratch++].loop = eq + 1;
			break;
		}
		case 'S':
			if (opt_u64("--seed", optarg, &c->seed))
				return -1;
			break;
		case 'n':
			if (opt_u64("--inputs", optarg, &c->inputs))
				return -1;
			break;
		case 'o':
			if (opt_u64("--only", optarg, &c->only))
				return -1;
			c->have_only = true;
			break;
		case 'm': c->dm_name = optarg; break;
		case 'v': c->verbose = true; break;
		case 'h': usage(stdout); exit(EXIT_OK);
		default: usage(stderr); return -1;
		}
	}
	if (!c->seeds || c->nr_scratch < 2 || optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static void summary(const struct run *r, uint64_t done, double secs)
{
	unsigned int k, o;

	printf("# %" PRIu64 " inputs in %.0f s (seed %" PRIu64 "):", done, secs,
	       r->c->seed);
	for (o = 0; o < NR_OUTCOMES; o++)
		printf("%s %" PRIu64 " %s", o ? "," : "", r->outcome[o],
		       outcome_names[o]);
	printf("\n# %" PRIu64 " accepted inputs with the layers as made read back exactly;"
	       " %" PRIu64 " EIO chunks; %" PRIu64 " messages accepted, %" PRIu64
	       " refused with a message; %" PRIu64 " writes\n",
	       r->pristine_checked, r->eio_chunks, r->msgs_ok, r->msgs_refused,
	       r->writes);
	for (k = 0; k < NR_KINDS; k++) {
		printf("#   %-14s", kind_names[k]);
		for (o = 0; o < NR_OUTCOMES; o++)
			printf(" %6" PRIu64, r->by_kind[k][o]);
		printf("   (refused, refused at resume, read ok, read EIO)\n");
	}
}

int main(int argc, char **argv)
{
	static struct config c = { .dm_name = "chain_fuzz", .inputs = 300 };
	static struct run r;
	struct timespec t0, t1;
	uint64_t done = 0, first, last;
	unsigned int i;
	int ret = EXIT_OK;

	crc32c_init();
	if (parse_args(&c, argc, argv))
		return EXIT_USAGE;
	r.c = &c;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	if (load_sets(&r))
		return EXIT_USAGE;
	for (i = 0; i < c.nr_scratch; i++) {
		c.scratch[i].ffd = open(c.scratch[i].file, O_RDWR);
		if (c.scratch[i].ffd < 0) {
			report(c.scratch[i].file, "open", errno);
			return EXIT_USAGE;
		}
	}
	for (i = 0; i < MAX_LAYERS + 1; i++) {
		size_t cap = 0;
		unsigned int s;

		for (s = 0; s < r.nr_sets; s++) {
			if (i < r.sets[s].n && r.sets[s].layer[i].cap > cap)
				cap = r.sets[s].layer[i].cap;
			if (r.sets[s].size > cap)
				cap = r.sets[s].size;
		}
		if (r.dest.cap > cap)
			cap = r.dest.cap;
		r.work[i].cap = cap;
		r.work[i].buf = calloc(1, cap);
		if (!r.work[i].buf)
			return EXIT_USAGE;
	}
	r.rbuf = alloc_aligned(READ_CHUNK);
	snprintf(r.node, sizeof(r.node), "/tmp/%s.node", c.dm_name);
	if (regcomp(&r.bad, "BUG:|WARNING:|Oops|general protection|blocked for more than|UBSAN|KASAN|list_del corruption|refcount_t|Kernel panic|kernel BUG at",
		    REG_EXTENDED | REG_NOSUB))
		return EXIT_USAGE;
	r.ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (r.ctl < 0) {
		report("/dev/mapper/control", "open", errno);
		return EXIT_USAGE;
	}
	r.kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (r.kmsg < 0 || lseek(r.kmsg, 0, SEEK_END) < 0) {
		report("/dev/kmsg", "open", errno);
		return EXIT_USAGE;
	}
	printf("# chain-fuzz: seed %" PRIu64 ", %u seed sets, %" PRIu64 " inputs\n",
	       c.seed, r.nr_sets, c.have_only ? 1 : c.inputs);
	first = c.have_only ? c.only : 0;
	last = c.have_only ? c.only + 1 : c.inputs;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (r.input = first; r.input < last; r.input++) {
		if (one_input(&r)) {
			ret = EXIT_VERIFY;
			break;
		}
		done++;
		if (!c.verbose && done % 500 == 0)
			printf("# %" PRIu64 " inputs\n", done);
	}
	alarm(0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	summary(&r, done, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	unlink(r.node);
	return ret;
}
