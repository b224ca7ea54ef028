// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device and layer locks; see lock.h for what is locked, in which order
 * and why that cannot deadlock.
 *
 * A lock is an open file description with flock(LOCK_EX): the kernel
 * drops it when the process ends, however it ends, so a killed chainadm
 * never leaves a device locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/dm-ioctl.h>

#include "lock.h"

#define LOCK_HOLDER_LEN	512

bool lock_nowait;

/* "<pid> <command line>\n", written into every lock taken. */
static char holder[LOCK_HOLDER_LEN];

static int dev_fd = -1;
static unsigned int nheld;
static int held_fd[LOCK_LAYERS];
static struct obj_id held_id[LOCK_LAYERS];

void lock_set_command(int argc, char **argv)
{
	size_t n;
	int i;

	/* Room for the newline; a long command line is cut. */
	n = snprintf(holder, sizeof(holder) - 1, "%d chainadm", (int)getpid());
	for (i = 1; i < argc && n < sizeof(holder) - 1; i++)
		n += snprintf(holder + n, sizeof(holder) - 1 - n, " %s", argv[i]);
	holder[strcspn(holder, "\n")] = '\0';	/* one line, whatever the args */
	strcat(holder, "\n");
	/* Exit drops the locks anyway; this empties their files first. */
	atexit(unlock_all);
}

/* file: "dev-<name>" or "layer-<id>", at most 16 + DM_NAME_LEN bytes. */
static int open_lock(const char *file, const char *object)
{
	char path[sizeof(LOCK_DIR) + 16 + DM_NAME_LEN];
	int fd;

	if ((mkdir("/run/lock", 0755) && errno != EEXIST) ||
	    (mkdir(LOCK_DIR, 0700) && errno != EEXIST)) {
		errmsg(LOCK_DIR, "cannot create the lock directory: %s",
		       strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", LOCK_DIR, file);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		errmsg(object, "cannot open the lock file %s: %s", path,
		       strerror(errno));
	return fd;
}

/* Who holds the lock of fd, from what it wrote into the file. */
static void describe_holder(int fd, char *buf, size_t len)
{
	char text[LOCK_HOLDER_LEN];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	char *end;
	long pid;

	if (n <= 0) {
		snprintf(buf, len, "a process that wrote no command line (not a chainadm, or one that has just taken it)");
		return;
	}
	text[n] = '\0';
	text[strcspn(text, "\n")] = '\0';
	pid = strtol(text, &end, 10);
	if (end == text || *end != ' ' || pid <= 0)
		snprintf(buf, len, "'%s'", text);
	else if (kill(pid, 0) && errno == ESRCH)
		snprintf(buf, len, "a process that wrote no command line (the last chainadm that did, pid %ld, was killed)",
			 pid);
	else
		snprintf(buf, len, "pid %ld, '%s'", pid, end + 1);
}

/* Lock fd, waiting unless --nowait; what names the lock in messages. */
static int take(int fd, const char *object, const char *what)
{
	char who[LOCK_HOLDER_LEN + 128];
	int r;

	r = flock(fd, LOCK_EX | LOCK_NB);
	if (r && errno == EWOULDBLOCK && lock_nowait) {
		describe_holder(fd, who, sizeof(who));
		errmsg(object, "%s is held by %s: not waiting (--nowait); try again when that command is done",
		       what, who);
		return -1;
	}
	while (r && (errno == EWOULDBLOCK || errno == EINTR))
		r = flock(fd, LOCK_EX);
	if (r) {
		errmsg(object, "cannot take %s: %s", what, strerror(errno));
		return -1;
	}
	/* Only for the messages of others: a failed write is no failure. */
	if (ftruncate(fd, 0) ||
	    pwrite(fd, holder, strlen(holder), 0) != (ssize_t)strlen(holder))
		warnmsg(object, "cannot record this command in %s: %s", what,
			strerror(errno));
	return 0;
}

/* Empty the file first: it never names a command that is done. */
static void release(int fd)
{
	if (ftruncate(fd, 0))
		warnmsg(LOCK_DIR, "cannot empty a lock file: %s", strerror(errno));
	close(fd);
}

int lock_device(const char *name)
{
	char file[16 + DM_NAME_LEN];
	int fd;

	if (dev_fd >= 0 || nheld) {
		errmsg(name, "internal error: a device lock is taken after other locks");
		return -1;
	}
	if (!*name || strchr(name, '/') || strlen(name) >= DM_NAME_LEN) {
		errmsg(name, "is not a device-mapper device name");
		return -1;
	}
	snprintf(file, sizeof(file), "dev-%s", name);
	fd = open_lock(file, name);
	if (fd < 0)
		return -1;
	if (take(fd, name, "the device's lock")) {
		close(fd);
		return -1;
	}
	dev_fd = fd;
	return 0;
}

void lockset_init(struct lockset *s)
{
	s->n = 0;
}

static int add(struct lockset *s, const struct obj_id *id, dev_t dev,
	       const char *path)
{
	unsigned int i;

	for (i = 0; i < s->n; i++)
		if (same_obj(&s->l[i].id, id))
			return 0;
	if (s->n == LOCK_LAYERS) {
		errmsg(path ? path : "lock", "internal error: more than %u layers to lock",
		       LOCK_LAYERS);
		return -1;
	}
	s->l[s->n].id = *id;
	s->l[s->n].dev = dev;
	s->l[s->n].path = path;
	s->n++;
	return 0;
}

int lockset_add_id(struct lockset *s, const struct obj_id *id,
		   const char *path)
{
	return add(s, id, 0, path);
}

int lockset_add_dev(struct lockset *s, dev_t dev)
{
	struct obj_id id;

	if (dev_identity(dev, &id))
		return -1;
	return add(s, &id, dev, NULL);
}

int lockset_add_path(struct lockset *s, const char *path)
{
	struct obj_id id;
	struct stat st;

	if (stat(path, &st) && errno == ENOENT)
		return 0;	/* created by this command, with O_EXCL */
	if (obj_identity(-1, path, &id))
		return -1;
	return lockset_add_id(s, &id, path);
}

static int cmp_id(const struct obj_id *a, const struct obj_id *b)
{
	if (a->file != b->file)
		return a->file ? 1 : -1;
	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return 0;
}

static int cmp_layer(const void *a, const void *b)
{
	return cmp_id(&((const struct lock_layer *)a)->id,
		      &((const struct lock_layer *)b)->id);
}

static int take_layer(const struct lock_layer *l)
{
	char file[80], label[PATH_MAX];
	const struct obj_id *id = &l->id;
	int fd;

	if (id->file)
		snprintf(file, sizeof(file), "layer-%u:%u-%llu", major(id->dev),
			 minor(id->dev), (unsigned long long)id->ino);
	else
		snprintf(file, sizeof(file), "layer-%u:%u", major(id->dev),
			 minor(id->dev));
	if (l->path)
		snprintf(label, sizeof(label), "%s", l->path);
	else if (!l->dev || dev_label(l->dev, label, sizeof(label)))
		snprintf(label, sizeof(label), "layer %s", file + 6);
	fd = open_lock(file, label);
	if (fd < 0)
		return -1;
	if (take(fd, label, "the layer's lock")) {
		close(fd);
		return -1;
	}
	held_fd[nheld] = fd;
	held_id[nheld] = *id;
	nheld++;
	return 0;
}

int lock_layers(const struct lockset *s)
{
	struct lockset sorted = *s;
	unsigned int i;

	if (nheld) {
		errmsg("lock", "internal error: layer locks taken in two batches");
		return -1;
	}
	qsort(sorted.l, sorted.n, sizeof(sorted.l[0]), cmp_layer);
	for (i = 0; i < sorted.n; i++) {
		if (take_layer(&sorted.l[i])) {
			unlock_layers();
			return -1;
		}
	}
	return 0;
}

bool lock_holds(const struct lockset *s)
{
	unsigned int i, j;

	for (i = 0; i < s->n; i++) {
		for (j = 0; j < nheld; j++)
			if (same_obj(&held_id[j], &s->l[i].id))
				break;
		if (j == nheld)
			return false;
	}
	return true;
}

void unlock_layers(void)
{
	while (nheld)
		release(held_fd[--nheld]);
}

int lock_layer_path(const char *path)
{
	struct lockset ls;

	lockset_init(&ls);
	if (lockset_add_path(&ls, path) || lock_layers(&ls))
		return -1;
	test_stall("locked");
	return 0;
}

/*
 * Held for a moment around one file rewrite (the chaintab's), with no
 * other lock taken under it: it always waits, even with --nowait.
 */
int lock_brief(const char *file, const char *object)
{
	int fd = open_lock(file, object);
	int r;

	if (fd < 0)
		return -1;
	do
		r = flock(fd, LOCK_EX);
	while (r && errno == EINTR);
	if (r) {
		errmsg(object, "cannot take the lock %s/%s: %s", LOCK_DIR, file,
		       strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The same, waiting at most ms milliseconds: for a caller that holds a
 * device suspended, whose holder might wait on that device.  -1, having
 * said so, if another still holds it then.
 */
int lock_brief_timed(const char *file, const char *object, unsigned int ms)
{
	int fd = open_lock(file, object);
	unsigned int waited;

	if (fd < 0)
		return -1;
	for (waited = 0; flock(fd, LOCK_EX | LOCK_NB); waited += 10) {
		if (waited >= ms || (errno != EWOULDBLOCK && errno != EINTR)) {
			errmsg(object, "another chainadm holds its lock (%s/%s) for more than %u ms: not waiting longer while a device is suspended; try again",
			       LOCK_DIR, file, ms);
			close(fd);
			return -1;
		}
		usleep(10000);
	}
	return fd;
}

void lock_brief_release(int fd)
{
	close(fd);
}

void unlock_all(void)
{
	unlock_layers();
	if (dev_fd >= 0)
		release(dev_fd);
	dev_fd = -1;
}
