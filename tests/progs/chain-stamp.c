// SPDX-License-Identifier: GPL-2.0
/*
 * chain-stamp - stamped-pattern writer and checker for crash tests.
 *
 * Every 512-byte sector written carries a stamp (struct stamp): a crc32c,
 * a magic, the virtual sector number, the write id and the run id; the rest
 * is filler derived from (sector, id).  So a sector read back tells which
 * write put it there and whether it was meant for this sector.
 *
 * The writer journals, in a plain file, each write's intent before issuing
 * it ("start ID SECTOR NR"), its completion ("ack ID") and each completed
 * device flush ("flush K done after ID").  Because the intent is journaled
 * first, a writer killed at any moment leaves a journal that names every
 * write that may have reached the disk.
 *
 * The checker accepts, per sector: never written (zeros, or an id-0 stamp
 * with --initial stamped), or a stamp for this sector from a journaled write
 * covering it.  With --upto-flush K it also demands that the sector shows
 * at least the newest write covering it that completed before flush K,
 * i.e. no flushed write was lost.
 *
 * With --dsync the writer opens the device O_DSYNC and submits each write
 * through Linux AIO (one at a time): the block layer then sends it as one
 * REQ_FUA write and acknowledges it with no flush after it (a synchronous
 * O_DSYNC pwrite on a block device is followed by a full flush, which
 * would hide what FUA alone does).  Such a run's journal line ends in
 * "dsync"; the checker's --acked-dsync then demands every acked write of
 * such a run, as if each ack had been a flush of that write alone.
 *
 * Journal lines (ids and flush numbers continue across runs on one
 * journal, so a test can write, crash, check and write again):
 *
 *	run R seed S size BYTES [dsync]
 *	start ID SECTOR NR [zero]
 *	ack ID
 *	flush K done after ID
 *
 * "zero" marks a DISCARD or WRITE_ZEROES of whole clusters: dm-chain reads
 * both as zeros once they completed, so the checker treats them as writes
 * of zeros.
 *
 * Concurrent writer (--threads N): N writer threads, each owning one
 * contiguous, cluster-aligned slice of the device (so no two writes in
 * flight ever overlap and the newest id covering a sector is the one the
 * disk must show), issue writes, copy-ups (unaligned writes), and with
 * --discard-pct/--zero-pct whole-cluster DISCARDs and WRITE_ZEROES, while
 * a flusher thread calls fdatasync back to back (--flush-ms apart) and
 * runs --mark-cmd after each.  The flusher journals "flush K done after
 * P" with P the longest prefix of ids all acknowledged before its
 * fdatasync began: a write acked later is not claimed durable by flush K
 * even if its id is lower than one that was.  This races new-cluster
 * allocations and discards against the target's commits, which is what
 * crash-state exploration (lw-explore) needs to see.
 */
#define _GNU_SOURCE
#include "common.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

const char *progname = "chain-stamp";

#define STAMP_MAGIC	0x504d415453434d44ULL	/* "DMCSTAMP" */
#define CHUNK		(1u << 20)
#define MAX_REPORTS	10

/* On-disk stamp at the start of each sector, little endian. */
struct stamp {
	uint32_t csum;		/* crc32c of bytes 4..511 of the sector */
	uint32_t reserved;	/* zero */
	uint64_t magic;
	uint64_t sector;	/* virtual sector number, 512-byte units */
	uint64_t id;		/* write id; 0 for the initial fill */
	uint64_t run;		/* writer run; 0 for the initial fill */
} __attribute__((packed));

_Static_assert(sizeof(struct stamp) == 40, "stamp layout");

struct config {
	const char *dev_path;
	const char *journal_path;
	const char *mark_cmd;
	const char *ack_cmd;
	uint64_t size;
	uint64_t seed;
	uint64_t ops;
	uint64_t max_len;
	uint64_t cluster;
	uint64_t flush_every;
	uint64_t upto_flush;	/* 0: no flush rule */
	uint64_t threads;	/* 0: the sequential writer */
	uint64_t discard_pct;	/* threaded: % of ops that DISCARD clusters */
	uint64_t zero_pct;	/* threaded: % of ops that WRITE_ZEROES */
	uint64_t flush_ms;	/* threaded: pause between flushes */
	bool initial_stamped;
	bool dsync;		/* write: O_DSYNC writes through AIO */
	bool acked_dsync;	/* check: acked writes of dsync runs count */
};

struct jwrite {
	uint64_t sect;
	uint64_t nr;
	uint64_t run;
	bool acked;
	bool dsync;		/* of a --dsync run: durable once acked */
	bool zero;		/* DISCARD or WRITE_ZEROES: reads as zeros */
};

/* The journal, parsed: writes[id] for id 1..nr_ids, flushes 1..nr_flushes. */
struct journal {
	struct jwrite *writes;
	uint64_t nr_ids;
	uint64_t *flush_after;	/* flush_after[k]: last id acked before k */
	uint64_t nr_flushes;
	uint64_t nr_runs;
	bool run_dsync;		/* the current run is a --dsync run */
};

/* ---- stamps */

static void stamp_filler(unsigned char *sector, uint64_t sect, uint64_t id)
{
	struct rng r;

	rng_seed(&r, sect * 0x100000001b3ULL ^ id * 0xc2b2ae3d27d4eb4fULL);
	rng_fill(&r, sector + sizeof(struct stamp),
		 SECTOR_SIZE - sizeof(struct stamp));
}

static void make_stamp(unsigned char *sector, uint64_t sect, uint64_t id,
		       uint64_t run)
{
	struct stamp st = {
		.magic = htole64(STAMP_MAGIC),
		.sector = htole64(sect),
		.id = htole64(id),
		.run = htole64(run),
	};

	memcpy(sector, &st, sizeof(st));
	stamp_filler(sector, sect, id);
	st.csum = htole32(crc32c(sector + 4, SECTOR_SIZE - 4));
	memcpy(sector, &st.csum, sizeof(st.csum));
}

static void make_stamps(unsigned char *buf, uint64_t sect, uint64_t nr,
			uint64_t id, uint64_t run)
{
	uint64_t i;

	for (i = 0; i < nr; i++)
		make_stamp(buf + (i << SECTOR_SHIFT), sect + i, id, run);
}

/* ---- journal */

static int journal_line(struct journal *j, const char *line)
{
	uint64_t id, sect, nr, k, run, v1, v2;
	struct jwrite *w;

	if (sscanf(line, "run %" SCNu64 " seed %" SCNu64 " size %" SCNu64,
		   &run, &v1, &v2) == 3) {
		j->run_dsync = strstr(line, " dsync") != NULL;
		return run == ++j->nr_runs ? 0 : -1;
	}
	if (sscanf(line, "start %" SCNu64 " %" SCNu64 " %" SCNu64,
		   &id, &sect, &nr) == 3) {
		bool zero = strstr(line, " zero") != NULL;

		if (id != j->nr_ids + 1 || !j->nr_runs || !nr)
			return -1;
		w = reallocarray(j->writes, id + 1, sizeof(*w));
		if (!w)
			return -1;
		j->writes = w;
		w[id] = (struct jwrite){ sect, nr, j->nr_runs, false,
					 j->run_dsync, zero };
		j->nr_ids = id;
		return 0;
	}
	if (sscanf(line, "ack %" SCNu64, &id) == 1) {
		if (!id || id > j->nr_ids)
			return -1;
		j->writes[id].acked = true;
		return 0;
	}
	if (sscanf(line, "flush %" SCNu64 " done after %" SCNu64, &k,
		   &id) == 2) {
		uint64_t *f;

		if (k != j->nr_flushes + 1 || id > j->nr_ids)
			return -1;
		f = reallocarray(j->flush_after, k + 1, sizeof(*f));
		if (!f)
			return -1;
		j->flush_after = f;
		f[k] = id;
		j->nr_flushes = k;
		return 0;
	}
	return -1;
}

/*
 * A missing journal is an empty one.  A last line without its newline was
 * cut by a killed writer and is ignored; any other bad line is an error.
 */
static int journal_load(struct journal *j, const char *path)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	FILE *f;
	int ret = 0;

	memset(j, 0, sizeof(*j));
	f = fopen(path, "r");
	if (!f)
		return errno == ENOENT ? 0 : (report(path, "open", errno), -1);
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[n - 1] != '\n')
			break;
		if (journal_line(j, line)) {
			reportf(path, "bad journal line", "line %lu: %.*s",
				lineno, (int)(n - 1), line);
			ret = -1;
			break;
		}
	}
	if (!ret && ferror(f)) {
		report(path, "read", errno);
		ret = -1;
	}
	free(line);
	fclose(f);
	return ret;
}

static void journal_free(struct journal *j)
{
	free(j->writes);
	free(j->flush_after);
}

/* One write() per record, so an O_APPEND journal never interleaves. */
static int journal_append(int fd, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int journal_append(int fd, const char *path, const char *fmt, ...)
{
	char buf[160];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return xwrite_all(fd, buf, n, path);
}

/* ---- write */

/* Run --mark-cmd with every "%d" replaced by the flush number. */
static int run_mark_cmd(const char *tmpl, uint64_t k)
{
	char num[24], *cmd, *out;
	const char *p;
	size_t len;
	int status;

	snprintf(num, sizeof(num), "%" PRIu64, k);
	len = strlen(tmpl) + 1;
	for (p = tmpl; (p = strstr(p, "%d")); p += 2)
		len += strlen(num);
	cmd = malloc(len);
	if (!cmd) {
		report("--mark-cmd", "cannot allocate command", ENOMEM);
		return -1;
	}
	out = cmd;
	for (p = tmpl; *p; ) {
		if (p[0] == '%' && p[1] == 'd') {
			out = stpcpy(out, num);
			p += 2;
		} else {
			*out++ = *p++;
		}
	}
	*out = '\0';
	fflush(stdout);
	status = system(cmd);
	if (status)
		reportf(cmd, "mark command failed", "status %d", status);
	free(cmd);
	return status ? -1 : 0;
}

static int cmd_write_threads(const struct config *c);

struct writer {
	const struct config *c;
	struct dev dev;
	int jfd;
	aio_context_t aio;	/* --dsync */
	uint64_t run;
	uint64_t next_id;
	uint64_t next_flush;
	unsigned char *buf;
};

static int writer_flush(struct writer *w)
{
	uint64_t k = w->next_flush++;

	if (fdatasync(w->dev.fd)) {
		reportf(w->dev.path, "fdatasync failed", "flush %" PRIu64 ": %s",
			k, strerror(errno));
		return -1;
	}
	/* Journaled before the mark: the flush is done once fdatasync is. */
	if (journal_append(w->jfd, w->c->journal_path,
			   "flush %" PRIu64 " done after %" PRIu64 "\n", k,
			   w->next_id - 1))
		return -1;
	return w->c->mark_cmd ? run_mark_cmd(w->c->mark_cmd, k) : 0;
}

/*
 * One write through AIO and wait for it: on an O_DSYNC block device file
 * it goes down as a single REQ_FUA bio and nothing flushes after it.
 */
static int aio_pwrite(struct writer *w, const void *buf, size_t len,
		      uint64_t off)
{
	struct iocb cb = {
		.aio_lio_opcode = IOCB_CMD_PWRITE,
		.aio_fildes = w->dev.fd,
		.aio_buf = (uintptr_t)buf,
		.aio_nbytes = len,
		.aio_offset = off,
	};
	struct iocb *cbs[1] = { &cb };
	struct io_event ev;
	long n;

	if (syscall(SYS_io_submit, w->aio, 1L, cbs) != 1) {
		report(w->dev.path, "io_submit", errno);
		return -1;
	}
	do {
		n = syscall(SYS_io_getevents, w->aio, 1L, 1L, &ev, NULL);
	} while (n < 0 && errno == EINTR);
	if (n != 1) {
		report(w->dev.path, "io_getevents", errno);
		return -1;
	}
	if (ev.res < 0) {
		reportf(w->dev.path, "O_DSYNC write", "offset %" PRIu64 ": %s",
			off, strerror(-ev.res));
		return -1;
	}
	if ((uint64_t)ev.res != len) {
		reportf(w->dev.path, "O_DSYNC write", "offset %" PRIu64
			": short write (%lld of %zu bytes)", off,
			(long long)ev.res, len);
		return -1;
	}
	return 0;
}

static int writer_one(struct writer *w, struct rng *r)
{
	const struct config *c = w->c;
	uint64_t id = w->next_id++;
	struct extent e;
	int ret;

	pick_extent(r, c->size >> SECTOR_SHIFT, c->max_len >> SECTOR_SHIFT,
		    c->cluster >> SECTOR_SHIFT, &e);
	if (journal_append(w->jfd, c->journal_path, "start %" PRIu64 " %"
			   PRIu64 " %" PRIu64 "\n", id, e.sect, e.nr))
		return -1;
	make_stamps(w->buf, e.sect, e.nr, id, w->run);
	if (c->dsync)
		ret = aio_pwrite(w, w->buf, e.nr << SECTOR_SHIFT,
				 e.sect << SECTOR_SHIFT);
	else
		ret = xpwrite(w->dev.fd, w->buf, e.nr << SECTOR_SHIFT,
			      e.sect << SECTOR_SHIFT, w->dev.path);
	if (ret || journal_append(w->jfd, c->journal_path, "ack %" PRIu64 "\n",
				  id))
		return -1;
	/* Journaled before the command: the write is acked once it returns. */
	return c->ack_cmd ? run_mark_cmd(c->ack_cmd, id) : 0;
}

static int writer_loop(struct writer *w)
{
	const struct config *c = w->c;
	uint64_t i, unflushed = 0;
	struct rng r;

	rng_seed(&r, c->seed);
	for (i = 0; i < c->ops; i++) {
		if (writer_one(w, &r))
			return -1;
		if (++unflushed == c->flush_every) {
			if (writer_flush(w))
				return -1;
			unflushed = 0;
		}
	}
	/* Leave everything durable, so a clean run checks with --upto-flush. */
	return unflushed || w->next_flush == 1 ? writer_flush(w) : 0;
}

static int cmd_write(const struct config *c)
{
	struct writer w = { .c = c };
	struct journal j;
	int ret = EXIT_USAGE;

	if (c->threads)
		return cmd_write_threads(c);
	if (journal_load(&j, c->journal_path))
		return EXIT_USAGE;
	w.run = j.nr_runs + 1;
	w.next_id = j.nr_ids + 1;
	w.next_flush = j.nr_flushes + 1;
	journal_free(&j);

	w.jfd = open(c->journal_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		     0644);
	if (w.jfd < 0) {
		report(c->journal_path, "open", errno);
		return EXIT_USAGE;
	}
	if (dev_open(&w.dev, c->dev_path, O_RDWR | (c->dsync ? O_DSYNC : 0)))
		goto out_journal;
	if (dev_check_size(&w.dev, c->size))
		goto out_dev;
	if (c->dsync && (!w.dev.direct || !w.dev.is_blk)) {
		report(c->dev_path, "--dsync needs a block device that takes "
		       "O_DIRECT", 0);
		goto out_dev;
	}
	if (c->dsync && syscall(SYS_io_setup, 1L, &w.aio)) {
		report("io_setup", "cannot set up AIO", errno);
		goto out_dev;
	}
	w.buf = alloc_aligned(c->max_len);
	if (journal_append(w.jfd, c->journal_path, "run %" PRIu64 " seed %"
			   PRIu64 " size %" PRIu64 "%s\n", w.run, c->seed,
			   c->size, c->dsync ? " dsync" : "") ||
	    writer_loop(&w))
		goto out_buf;
	printf("%s: run %" PRIu64 ": %" PRIu64 " writes (ids %" PRIu64
	       "..%" PRIu64 "), last flush %" PRIu64 "\n", progname, w.run,
	       c->ops, w.next_id - c->ops, w.next_id - 1, w.next_flush - 1);
	ret = EXIT_OK;
out_buf:
	free(w.buf);
	if (c->dsync)
		syscall(SYS_io_destroy, w.aio);
out_dev:
	dev_close(&w.dev);
out_journal:
	close(w.jfd);
	return ret;
}

/* ---- concurrent write (--threads) */

struct shared {
	const struct config *c;
	struct dev dev;
	int jfd;
	uint64_t run;
	pthread_mutex_t lock;	/* protects everything below, and the journal */
	uint64_t next_id;
	uint64_t first_id;	/* first id of this run */
	uint64_t acked_prefix;	/* every id <= this is acked */
	bool *acked;		/* by id - first_id */
	uint64_t next_flush;
	uint64_t writers_left;
	bool failed;
};

struct wthread {
	struct shared *sh;
	pthread_t tid;
	uint64_t first_sect, nr_sect;	/* the slice this thread owns */
	uint64_t ops;
	uint64_t seed;
	unsigned char *buf;
};

static uint64_t jstart(struct shared *sh, uint64_t sect, uint64_t nr,
		       bool zero)
{
	uint64_t id;

	pthread_mutex_lock(&sh->lock);
	id = sh->next_id++;
	if (journal_append(sh->jfd, sh->c->journal_path, "start %" PRIu64 " %"
			   PRIu64 " %" PRIu64 "%s\n", id, sect, nr,
			   zero ? " zero" : ""))
		sh->failed = true;
	pthread_mutex_unlock(&sh->lock);
	return id;
}

static void jack(struct shared *sh, uint64_t id)
{
	pthread_mutex_lock(&sh->lock);
	sh->acked[id - sh->first_id] = true;
	while (sh->acked_prefix + 1 < sh->next_id &&
	       sh->acked[sh->acked_prefix + 1 - sh->first_id])
		sh->acked_prefix++;
	if (journal_append(sh->jfd, sh->c->journal_path, "ack %" PRIu64 "\n",
			   id))
		sh->failed = true;
	pthread_mutex_unlock(&sh->lock);
}

/* Whole clusters (1 to 4) of the slice, DISCARDed or zeroed out. */
static int thread_zero_op(struct wthread *t, struct rng *r, bool discard)
{
	struct shared *sh = t->sh;
	uint64_t cs = sh->c->cluster >> SECTOR_SHIFT;
	uint64_t ncl = t->nr_sect / cs, first, n, id;
	int ret;

	first = rng_below(r, ncl);
	n = 1 + rng_below(r, 4);
	if (first + n > ncl)
		n = ncl - first;
	id = jstart(sh, t->first_sect + first * cs, n * cs, true);
	if (discard)
		ret = dev_discard(&sh->dev, (t->first_sect + first * cs) <<
				  SECTOR_SHIFT, (n * cs) << SECTOR_SHIFT);
	else
		ret = dev_zeroout(&sh->dev, (t->first_sect + first * cs) <<
				  SECTOR_SHIFT, (n * cs) << SECTOR_SHIFT);
	if (ret)
		return -1;
	jack(sh, id);
	return 0;
}

static int thread_write_op(struct wthread *t, struct rng *r)
{
	struct shared *sh = t->sh;
	const struct config *c = sh->c;
	struct extent e;
	uint64_t id;

	pick_extent(r, t->nr_sect, c->max_len >> SECTOR_SHIFT,
		    c->cluster >> SECTOR_SHIFT, &e);
	e.sect += t->first_sect;
	id = jstart(sh, e.sect, e.nr, false);
	make_stamps(t->buf, e.sect, e.nr, id, sh->run);
	if (xpwrite(sh->dev.fd, t->buf, e.nr << SECTOR_SHIFT,
		    e.sect << SECTOR_SHIFT, sh->dev.path))
		return -1;
	jack(sh, id);
	return 0;
}

static void *writer_thread(void *arg)
{
	struct wthread *t = arg;
	struct shared *sh = t->sh;
	uint64_t i, pick;
	struct rng r;
	int ret = 0;

	rng_seed(&r, t->seed);
	for (i = 0; i < t->ops && !ret && !sh->failed; i++) {
		pick = rng_below(&r, 100);
		if (pick < sh->c->discard_pct)
			ret = thread_zero_op(t, &r, true);
		else if (pick < sh->c->discard_pct + sh->c->zero_pct)
			ret = thread_zero_op(t, &r, false);
		else
			ret = thread_write_op(t, &r);
	}
	pthread_mutex_lock(&sh->lock);
	if (ret)
		sh->failed = true;
	sh->writers_left--;
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/* One flush: fdatasync, then "flush K done after P", then the mark. */
static int flush_once(struct shared *sh)
{
	uint64_t k, p;

	pthread_mutex_lock(&sh->lock);
	p = sh->acked_prefix;
	k = sh->next_flush++;
	pthread_mutex_unlock(&sh->lock);
	if (fdatasync(sh->dev.fd)) {
		reportf(sh->dev.path, "fdatasync failed", "flush %" PRIu64
			": %s", k, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&sh->lock);
	if (journal_append(sh->jfd, sh->c->journal_path, "flush %" PRIu64
			   " done after %" PRIu64 "\n", k, p))
		sh->failed = true;
	pthread_mutex_unlock(&sh->lock);
	return sh->c->mark_cmd ? run_mark_cmd(sh->c->mark_cmd, k) : 0;
}

static int flusher_loop(struct shared *sh)
{
	struct timespec ts = {
		.tv_sec = sh->c->flush_ms / 1000,
		.tv_nsec = (sh->c->flush_ms % 1000) * 1000000,
	};
	bool more = true;

	while (more) {
		if (flush_once(sh))
			return -1;
		pthread_mutex_lock(&sh->lock);
		more = sh->writers_left > 0 && !sh->failed;
		pthread_mutex_unlock(&sh->lock);
		if (more && sh->c->flush_ms)
			nanosleep(&ts, NULL);
	}
	/* Every write is acked now: a last flush makes the run durable. */
	return sh->failed ? -1 : flush_once(sh);
}

static int run_threads(struct shared *sh)
{
	const struct config *c = sh->c;
	uint64_t n = c->threads, cs = c->cluster >> SECTOR_SHIFT;
	uint64_t per = (c->size >> SECTOR_SHIFT) / cs / n * cs, i;
	struct wthread *t = calloc(n, sizeof(*t));
	int ret;

	if (!t || !per) {
		report("--threads", "too many threads for the device", 0);
		free(t);
		return -1;
	}
	sh->writers_left = n;
	for (i = 0; i < n; i++) {
		t[i] = (struct wthread){ .sh = sh, .first_sect = i * per,
			.nr_sect = per, .ops = c->ops / n + (i < c->ops % n),
			.seed = c->seed * 1000003 + i,
			.buf = alloc_aligned(c->max_len) };
		if (pthread_create(&t[i].tid, NULL, writer_thread, &t[i])) {
			report("pthread_create", "cannot start a writer", 0);
			exit(EXIT_USAGE);
		}
	}
	ret = flusher_loop(sh);
	for (i = 0; i < n; i++) {
		pthread_join(t[i].tid, NULL);
		free(t[i].buf);
	}
	free(t);
	return ret || sh->failed ? -1 : 0;
}

static int cmd_write_threads(const struct config *c)
{
	struct shared sh = { .c = c };
	struct journal j;
	int ret = EXIT_USAGE;

	if (journal_load(&j, c->journal_path))
		return EXIT_USAGE;
	sh.run = j.nr_runs + 1;
	sh.next_id = sh.first_id = j.nr_ids + 1;
	sh.acked_prefix = j.nr_ids;
	sh.next_flush = j.nr_flushes + 1;
	journal_free(&j);
	pthread_mutex_init(&sh.lock, NULL);
	sh.acked = calloc(c->ops + 1, sizeof(*sh.acked));
	sh.jfd = open(c->journal_path, O_WRONLY | O_APPEND | O_CREAT |
		      O_CLOEXEC, 0644);
	if (sh.jfd < 0 || !sh.acked) {
		report(c->journal_path, "open", errno);
		free(sh.acked);
		return EXIT_USAGE;
	}
	if (dev_open(&sh.dev, c->dev_path, O_RDWR))
		goto out_journal;
	if (dev_check_size(&sh.dev, c->size))
		goto out_dev;
	if (journal_append(sh.jfd, c->journal_path, "run %" PRIu64 " seed %"
			   PRIu64 " size %" PRIu64 "\n", sh.run, c->seed,
			   c->size) || run_threads(&sh))
		goto out_dev;
	printf("%s: run %" PRIu64 ": %" PRIu64 " ops in %" PRIu64
	       " threads (ids %" PRIu64 "..%" PRIu64 "), last flush %" PRIu64
	       "\n", progname, sh.run, c->ops, c->threads, sh.first_id,
	       sh.next_id - 1, sh.next_flush - 1);
	ret = EXIT_OK;
out_dev:
	dev_close(&sh.dev);
out_journal:
	close(sh.jfd);
	free(sh.acked);
	return ret;
}

/* ---- fill */

static int cmd_fill(const struct config *c)
{
	uint64_t off, len;
	unsigned char *buf;
	struct dev d;
	int ret = EXIT_USAGE;

	if (dev_open(&d, c->dev_path, O_RDWR))
		return EXIT_USAGE;
	if (dev_check_size(&d, c->size))
		goto out_dev;
	buf = alloc_aligned(CHUNK);
	for (off = 0; off < c->size; off += len) {
		len = c->size - off < CHUNK ? c->size - off : CHUNK;
		make_stamps(buf, off >> SECTOR_SHIFT, len >> SECTOR_SHIFT, 0, 0);
		if (xpwrite(d.fd, buf, len, off, d.path))
			goto out_buf;
	}
	if (fdatasync(d.fd)) {
		report(d.path, "fdatasync", errno);
		goto out_buf;
	}
	printf("%s: filled %" PRIu64 " sectors with id-0 stamps\n", progname,
	       c->size >> SECTOR_SHIFT);
	ret = EXIT_OK;
out_buf:
	free(buf);
out_dev:
	dev_close(&d);
	return ret;
}

/* ---- check */

struct checker {
	const struct config *c;
	struct journal j;
	uint64_t *required;	/* per sector: id that must be seen or newer */
	uint64_t flush_last;	/* last id acked before flush --upto-flush */
	uint64_t *zmax;		/* per sector: newest zero write covering it */
	uint64_t bad;
	uint64_t written;	/* sectors showing a journaled write */
};

/*
 * The newest write covering each sector among those that must be durable:
 * acked before flush K, or (--acked-dsync) acked in a --dsync run.
 */
static int build_required(struct checker *ck)
{
	uint64_t nr_sect = ck->c->size >> SECTOR_SHIFT;
	uint64_t id, s, last;

	if (ck->c->upto_flush > ck->j.nr_flushes) {
		reportf(ck->c->journal_path, "no such flush", "flush %" PRIu64
			" not in journal (last is %" PRIu64 ")",
			ck->c->upto_flush, ck->j.nr_flushes);
		return -1;
	}
	ck->required = calloc(nr_sect, sizeof(*ck->required));
	if (!ck->required) {
		report("memory", "cannot allocate per-sector table", ENOMEM);
		return -1;
	}
	last = ck->c->upto_flush ? ck->j.flush_after[ck->c->upto_flush] : 0;
	ck->flush_last = last;
	for (id = 1; id <= ck->j.nr_ids; id++) {
		const struct jwrite *w = &ck->j.writes[id];

		if (id > last && !(ck->c->acked_dsync && w->dsync && w->acked))
			continue;
		for (s = w->sect; s < w->sect + w->nr && s < nr_sect; s++)
			ck->required[s] = id;
	}
	return 0;
}

/* The newest DISCARD/WRITE_ZEROES covering each sector, acked or not. */
static int build_zmax(struct checker *ck)
{
	uint64_t nr_sect = ck->c->size >> SECTOR_SHIFT;
	uint64_t id, s;

	ck->zmax = calloc(nr_sect, sizeof(*ck->zmax));
	if (!ck->zmax) {
		report("memory", "cannot allocate per-sector table", ENOMEM);
		return -1;
	}
	for (id = 1; id <= ck->j.nr_ids; id++) {
		const struct jwrite *w = &ck->j.writes[id];

		if (!w->zero)
			continue;
		for (s = w->sect; s < w->sect + w->nr && s < nr_sect; s++)
			ck->zmax[s] = id;
	}
	return 0;
}

static uint64_t required_id(const struct checker *ck, uint64_t s)
{
	return ck->required ? ck->required[s] : 0;
}

/* Why write @req had to be durable, for a "lost write" report. */
static const char *durable_why(const struct checker *ck, uint64_t req,
			       char *buf, size_t len)
{
	if (req > ck->flush_last)
		snprintf(buf, len, "acked with O_DSYNC");
	else
		snprintf(buf, len, "acked before flush %" PRIu64,
			 ck->c->upto_flush);
	return buf;
}

static bool is_zero(const unsigned char *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/*
 * Is @got the exact stamp (@sect, @id, @run) would write?  The caller has
 * checked the magic, the sector, the id and the run in @got's header and
 * its checksum over bytes 4..511, so the reserved word and the filler are
 * what is left to compare (the checksum then matches too).
 */
static bool stamp_exact(const unsigned char *got, uint64_t sect, uint64_t id,
			uint64_t run)
{
	unsigned char want[SECTOR_SIZE];
	uint32_t reserved;

	(void)run;
	memcpy(&reserved, got + offsetof(struct stamp, reserved),
	       sizeof(reserved));
	if (reserved)
		return false;
	stamp_filler(want, sect, id);
	return !memcmp(want + sizeof(struct stamp), got + sizeof(struct stamp),
		       SECTOR_SIZE - sizeof(struct stamp));
}

/* Format a verdict into @why and return it, for one-line early returns. */
static const char *say(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static const char *say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return why;
}

static uint64_t stamp_id(const unsigned char *got)
{
	uint64_t id;

	memcpy(&id, got + offsetof(struct stamp, id), sizeof(id));
	return le64toh(id);
}

/* Explain why sector @s holding stamp @st is not acceptable, or NULL. */
static const char *judge_stamp(const struct checker *ck, uint64_t s,
			       const struct stamp *st, const unsigned char *got,
			       char *why, size_t len)
{
	uint64_t id = le64toh(st->id), run = le64toh(st->run);
	uint64_t req = required_id(ck, s);
	const struct jwrite *w;

	if (le64toh(st->sector) != s)
		return say(why, len, "stamp of sector %" PRIu64 " id %" PRIu64
			   " (misdirected data)", le64toh(st->sector), id);
	if (id == 0 && (!ck->c->initial_stamped || run))
		return say(why, len, "id-0 stamp of run %" PRIu64 " but %s",
			   run, ck->c->initial_stamped ? "run must be 0" :
			   "no --initial stamped");
	if (id > ck->j.nr_ids)
		return say(why, len, "id %" PRIu64 " not in journal (last %"
			   PRIu64 ")", id, ck->j.nr_ids);
	w = id ? &ck->j.writes[id] : NULL;
	if (w && (s < w->sect || s >= w->sect + w->nr))
		return say(why, len, "id %" PRIu64 " wrote sectors %" PRIu64
			   "+%" PRIu64 ", not this one", id, w->sect, w->nr);
	if (w && run != w->run)
		return say(why, len, "id %" PRIu64 " from run %" PRIu64
			   ", journal says run %" PRIu64, id, run, w->run);
	if (!stamp_exact(got, s, id, run))
		return say(why, len, "id %" PRIu64 " filler corrupt", id);
	if (id < req) {
		char d[64];

		return say(why, len, "id %" PRIu64 ", but id %" PRIu64
			   " was %s (lost write)", id, req,
			   durable_why(ck, req, d, sizeof(d)));
	}
	return NULL;
}

static const char *judge_sector(const struct checker *ck, uint64_t s,
				const unsigned char *got, char *why, size_t len)
{
	uint64_t req = required_id(ck, s);
	struct stamp st;

	if (is_zero(got, SECTOR_SIZE)) {
		char d[64];

		/* A zero write at least as new as the required one. */
		if (ck->zmax[s] && ck->zmax[s] >= req)
			return NULL;
		if (req)
			return say(why, len, "zeros, but id %" PRIu64 " was "
				   "%s (lost write)", req,
				   durable_why(ck, req, d, sizeof(d)));
		if (ck->c->initial_stamped)
			return say(why, len, "zeros, expected an id-0 stamp");
		return NULL;
	}
	memcpy(&st, got, sizeof(st));
	if (le64toh(st.magic) != STAMP_MAGIC)
		return say(why, len, "garbage (no stamp magic)");
	if (le32toh(st.csum) != crc32c(got + 4, SECTOR_SIZE - 4))
		return say(why, len, "torn or corrupt (bad checksum), id %"
			   PRIu64, le64toh(st.id));
	return judge_stamp(ck, s, &st, got, why, len);
}

static void check_chunk(struct checker *ck, const unsigned char *buf,
			uint64_t sect, uint64_t nr)
{
	char why[160];
	uint64_t i;

	for (i = 0; i < nr; i++) {
		const unsigned char *got = buf + (i << SECTOR_SHIFT);

		if (!judge_sector(ck, sect + i, got, why, sizeof(why))) {
			ck->written += !is_zero(got, SECTOR_SIZE) &&
				       stamp_id(got);
			continue;
		}
		if (ck->bad++ < MAX_REPORTS)
			reportf(ck->c->dev_path, "bad sector", "sector %" PRIu64
				": %s", sect + i, why);
	}
}

static int check_device(struct checker *ck)
{
	const struct config *c = ck->c;
	uint64_t off, len;
	unsigned char *buf;
	struct dev d;
	int ret = EXIT_USAGE;

	if (dev_open(&d, c->dev_path, O_RDONLY))
		return EXIT_USAGE;
	if (dev_check_size(&d, c->size))
		goto out_dev;
	buf = alloc_aligned(CHUNK);
	for (off = 0; off < c->size; off += len) {
		len = c->size - off < CHUNK ? c->size - off : CHUNK;
		if (xpread(d.fd, buf, len, off, d.path))
			goto out_buf;
		check_chunk(ck, buf, off >> SECTOR_SHIFT, len >> SECTOR_SHIFT);
	}
	ret = EXIT_OK;
out_buf:
	free(buf);
out_dev:
	dev_close(&d);
	return ret;
}

static int cmd_check(const struct config *c)
{
	struct checker ck = { .c = c };
	uint64_t nr_sect = c->size >> SECTOR_SHIFT;
	int ret = EXIT_USAGE;

	if (journal_load(&ck.j, c->journal_path))
		return EXIT_USAGE;
	if (build_zmax(&ck) ||
	    ((c->upto_flush || c->acked_dsync) && build_required(&ck)))
		goto out;
	ret = check_device(&ck);
	if (ret)
		goto out;
	if (ck.bad) {
		reportf(c->dev_path, "check failed", "%" PRIu64 " of %" PRIu64
			" sectors bad", ck.bad, nr_sect);
		ret = EXIT_VERIFY;
		goto out;
	}
	printf("%s: check ok: %" PRIu64 " sectors, %" PRIu64
	       " from journaled writes, %" PRIu64 " ids, %" PRIu64
	       " flushes%s%s\n", progname, nr_sect, ck.written, ck.j.nr_ids,
	       ck.j.nr_flushes, c->upto_flush ? ", no flushed write lost" : "",
	       c->acked_dsync ? ", no O_DSYNC-acked write lost" : "");
out:
	free(ck.required);
	free(ck.zmax);
	journal_free(&ck.j);
	return ret;
}

/*
 * serve: the checker as a coprocess, for a crash-state explorer that
 * checks thousands of states and cannot afford a process start for each
 * (several hundred ms under TCG).  The journal is loaded once; every
 * request line "DEV K" checks DEV with --upto-flush K (0: no flush rule)
 * and is answered with one line: "ok", "fail N" (N bad sectors) or
 * "error" (usage or I/O error), after the lines that report bad sectors
 * as check does (stderr goes to stdout, so they come in order).
 */
static int cmd_serve(const struct config *c)
{
	struct config req = *c;
	struct checker ck = { .c = &req };
	uint64_t k, last_k = UINT64_MAX;
	char *line = NULL, dev[4096];
	size_t cap = 0;
	int ret = EXIT_USAGE;

	if (journal_load(&ck.j, c->journal_path) || build_zmax(&ck))
		goto out;
	fflush(stderr);
	dup2(1, 2);
	while (getline(&line, &cap, stdin) > 0) {
		if (sscanf(line, "%4095s %" SCNu64, dev, &k) != 2) {
			printf("error\n");
			fflush(stdout);
			continue;
		}
		req.dev_path = dev;
		req.upto_flush = k;
		if (k != last_k) {
			free(ck.required);
			ck.required = NULL;
			last_k = UINT64_MAX;
			if (k && build_required(&ck)) {
				printf("error\n");
				fflush(stdout);
				continue;
			}
			last_k = k;
		}
		ck.bad = ck.written = 0;
		if (check_device(&ck))
			printf("error\n");
		else if (ck.bad)
			printf("fail %" PRIu64 "\n", ck.bad);
		else
			printf("ok\n");
		fflush(stdout);
	}
	ret = EXIT_OK;
out:
	free(line);
	free(ck.required);
	free(ck.zmax);
	journal_free(&ck.j);
	return ret;
}

/* ---- command line */

static void usage(FILE *out)
{
	fprintf(out,
"Usage:\n"
" %s write --dev PATH --journal PATH --size BYTES --ops N [options]\n"
" %s check --dev PATH --journal PATH --size BYTES [--upto-flush K]\n"
"             [--acked-dsync] [--initial zero|stamped]\n"
" %s fill  --dev PATH --size BYTES\n"
" %s serve --journal PATH --size BYTES [--initial zero|stamped]\n"
"\n"
"Write sectors stamped with their sector number and write id, journal\n"
"every write, and check a device (after a crash or a log replay) against\n"
"the journal.\n"
"\n"
"Write options:\n"
" --seed N             random seed (default 1)\n"
" --max-len BYTES      longest write (default 64K)\n"
" --cluster BYTES      cluster size, to aim writes at boundaries (64K)\n"
" --flush-every N      fdatasync the device every N writes (default: only\n"
"                      once at the end)\n"
" --mark-cmd CMD       run CMD after each flush, %%d replaced by the flush\n"
"                      number, e.g. 'dmsetup message lw 0 mark flush-%%d'\n"
" --dsync              open the device O_DSYNC and write through AIO, one\n"
"                      write at a time: each write is one FUA write, acked\n"
"                      with no flush after it\n"
" --ack-cmd CMD        run CMD after each acked write, %%d replaced by its\n"
"                      id, e.g. 'dmsetup message lw 0 mark ack-%%d'\n"
" --threads N          N concurrent writers on disjoint slices and a\n"
"                      flusher thread (fdatasync back to back)\n"
" --flush-ms MS        with --threads: pause between flushes (default 0)\n"
" --discard-pct P      with --threads: P%% of ops DISCARD 1-4 clusters\n"
" --zero-pct P         with --threads: P%% of ops WRITE_ZEROES 1-4 clusters\n"
"\n"
"Check options:\n"
" --upto-flush K       every write acknowledged before flush K must be\n"
"                      visible (or overwritten by a newer write)\n"
" --acked-dsync        every acknowledged write of a --dsync run must be\n"
"                      visible (or overwritten by a newer write)\n"
" --initial zero|stamped  what never-written sectors hold (default zero)\n"
"\n"
" -h, --help           display this help\n"
"\n"
"serve checks, for each line \"DEV K\" on stdin, DEV with --upto-flush K\n"
"and answers \"ok\", \"fail N\" or \"error\" on stdout (a coprocess for\n"
"lw-explore).\n"
"\n"
"Exit status: 0 success, 1 bad sectors found, 2 usage or I/O error.\n",
		progname, progname, progname, progname);
}

enum {
	OPT_DEV = 256, OPT_JOURNAL, OPT_SIZE, OPT_SEED, OPT_OPS, OPT_MAX_LEN,
	OPT_CLUSTER, OPT_FLUSH_EVERY, OPT_MARK_CMD, OPT_UPTO, OPT_INITIAL,
	OPT_DSYNC, OPT_ACK_CMD, OPT_ACKED_DSYNC,
	OPT_THREADS, OPT_FLUSH_MS, OPT_DISCARD_PCT, OPT_ZERO_PCT,
};

static const struct option long_opts[] = {
	{ "dev",	 required_argument, NULL, OPT_DEV },
	{ "journal",	 required_argument, NULL, OPT_JOURNAL },
	{ "size",	 required_argument, NULL, OPT_SIZE },
	{ "seed",	 required_argument, NULL, OPT_SEED },
	{ "ops",	 required_argument, NULL, OPT_OPS },
	{ "max-len",	 required_argument, NULL, OPT_MAX_LEN },
	{ "cluster",	 required_argument, NULL, OPT_CLUSTER },
	{ "flush-every", required_argument, NULL, OPT_FLUSH_EVERY },
	{ "mark-cmd",	 required_argument, NULL, OPT_MARK_CMD },
	{ "upto-flush",	 required_argument, NULL, OPT_UPTO },
	{ "initial",	 required_argument, NULL, OPT_INITIAL },
	{ "dsync",	 no_argument,	    NULL, OPT_DSYNC },
	{ "ack-cmd",	 required_argument, NULL, OPT_ACK_CMD },
	{ "acked-dsync", no_argument,	    NULL, OPT_ACKED_DSYNC },
	{ "threads",	 required_argument, NULL, OPT_THREADS },
	{ "flush-ms",	 required_argument, NULL, OPT_FLUSH_MS },
	{ "discard-pct", required_argument, NULL, OPT_DISCARD_PCT },
	{ "zero-pct",	 required_argument, NULL, OPT_ZERO_PCT },
	{ "help",	 no_argument,	    NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_initial(struct config *c, const char *arg)
{
	if (!strcmp(arg, "zero") || !strcmp(arg, "stamped")) {
		c->initial_stamped = arg[0] == 's';
		return 0;
	}
	reportf("--initial", "invalid value", "'%s' (zero or stamped)", arg);
	return -1;
}

static int parse_one(struct config *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_DEV:
		c->dev_path = arg;
		return 0;
	case OPT_JOURNAL:
		c->journal_path = arg;
		return 0;
	case OPT_MARK_CMD:
		c->mark_cmd = arg;
		return 0;
	case OPT_ACK_CMD:
		c->ack_cmd = arg;
		return 0;
	case OPT_DSYNC:
		c->dsync = true;
		return 0;
	case OPT_ACKED_DSYNC:
		c->acked_dsync = true;
		return 0;
	case OPT_SIZE:
		return opt_size("--size", arg, &c->size);
	case OPT_SEED:
		return opt_u64("--seed", arg, &c->seed);
	case OPT_OPS:
		return opt_u64("--ops", arg, &c->ops);
	case OPT_MAX_LEN:
		return opt_size("--max-len", arg, &c->max_len);
	case OPT_CLUSTER:
		return opt_size("--cluster", arg, &c->cluster);
	case OPT_FLUSH_EVERY:
		return opt_u64("--flush-every", arg, &c->flush_every);
	case OPT_UPTO:
		return opt_u64("--upto-flush", arg, &c->upto_flush);
	case OPT_INITIAL:
		return parse_initial(c, arg);
	case OPT_THREADS:
		return opt_u64("--threads", arg, &c->threads);
	case OPT_FLUSH_MS:
		return opt_u64("--flush-ms", arg, &c->flush_ms);
	case OPT_DISCARD_PCT:
		return opt_u64("--discard-pct", arg, &c->discard_pct);
	case OPT_ZERO_PCT:
		return opt_u64("--zero-pct", arg, &c->zero_pct);
	case 'h':
		usage(stdout);
		exit(EXIT_OK);
	default:
		return -1;
	}
}

static int check_config(const char *cmd, struct config *c)
{
	bool need_journal = strcmp(cmd, "fill");
	bool need_dev = strcmp(cmd, "serve");

	if ((need_dev && !c->dev_path) || !c->size ||
	    (need_journal && !c->journal_path)) {
		reportf(cmd, "missing arguments", "--dev, --size%s required",
			need_journal ? ", --journal" : "");
		return -1;
	}
	if (c->size % SECTOR_SIZE || c->max_len % SECTOR_SIZE ||
	    c->max_len > c->size) {
		report(cmd, "--size and --max-len must be multiples of 512, "
		       "--max-len no larger than --size", 0);
		return -1;
	}
	if (c->discard_pct + c->zero_pct > 100) {
		report(cmd, "--discard-pct plus --zero-pct above 100", 0);
		return -1;
	}
	if (!is_pow2(c->cluster) || c->cluster < SECTOR_SIZE) {
		report("--cluster", "not a power of two of at least 512", 0);
		return -1;
	}
	return 0;
}

static int parse_args(struct config *c, int argc, char **argv)
{
	int opt;

	*c = (struct config) { .seed = 1, .max_len = 64 << 10,
			       .cluster = 64 << 10 };
	while ((opt = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1)
		if (parse_one(c, opt, optarg))
			return -1;
	if (optind < argc) {
		reportf("arguments", "unexpected argument", "'%s'", argv[optind]);
		return -1;
	}
	if (c->size && c->max_len > c->size)
		c->max_len = c->size & ~(uint64_t)(SECTOR_SIZE - 1);
	return check_config(argv[0], c);
}

static const struct command {
	const char *name;
	int (*fn)(const struct config *c);
} commands[] = {
	{ "write", cmd_write },
	{ "check", cmd_check },
	{ "fill",  cmd_fill },
	{ "serve", cmd_serve },
};

int main(int argc, char **argv)
{
	struct config c;
	size_t i;

	crc32c_init();
	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return EXIT_OK;
	}
	for (i = 0; argc > 1 && i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (parse_args(&c, argc - 1, argv + 1))
			break;
		return commands[i].fn(&c);
	}
	if (argc < 2)
		report("arguments", "missing command (write, check or fill)", 0);
	else if (i == ARRAY_SIZE(commands))
		reportf("arguments", "unknown command", "'%s'", argv[1]);
	fprintf(stderr, "Try '%s --help' for more information.\n", progname);
	return EXIT_USAGE;
}
