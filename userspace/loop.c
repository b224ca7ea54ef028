// SPDX-License-Identifier: GPL-2.0-only
/*
 * Loop devices and device names through sysfs; see loop.h.
 *
 * Files are attached with LO_FLAGS_AUTOCLEAR so that the loop device goes
 * away by itself when the dm device releases it: "remove" needs no record
 * of which loop devices a chain used, and a failed "create" cleans up by
 * closing its fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <linux/loop.h>

#include "chainadm.h"
#include "loop.h"

/* LOOP_CTL_GET_FREE can race with another user of the same device. */
#define LOOP_ATTACH_TRIES	8

static int configure(int ctl, int file_fd, const char *file, bool read_only)
{
	struct loop_config cfg = { .fd = file_fd };
	char node[32];
	int nr, fd;

	cfg.info.lo_flags = LO_FLAGS_DIRECT_IO | LO_FLAGS_AUTOCLEAR |
			    (read_only ? LO_FLAGS_READ_ONLY : 0);
	snprintf((char *)cfg.info.lo_file_name, LO_NAME_SIZE, "%s", file);
	nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	if (nr < 0) {
		errmsg("/dev/loop-control", "cannot get a free loop device: %s",
		       strerror(errno));
		return -1;
	}
	snprintf(node, sizeof(node), "/dev/loop%d", nr);
	fd = open(node, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		errmsg(node, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (!ioctl(fd, LOOP_CONFIGURE, &cfg))
		return fd;
	/* Some kernels refuse direct I/O where the file system lacks it. */
	cfg.info.lo_flags &= ~LO_FLAGS_DIRECT_IO;
	if (errno == EINVAL && !ioctl(fd, LOOP_CONFIGURE, &cfg))
		return fd;
	if (errno == EBUSY) {
		close(fd);
		return -EBUSY;
	}
	errmsg(file, "cannot attach to %s: %s", node, strerror(errno));
	close(fd);
	return -1;
}

int loop_attach(const char *file, bool read_only, dev_t *dev)
{
	int ctl, file_fd, fd = -1, tries;
	struct stat st;

	file_fd = open(file, (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (file_fd < 0) {
		errmsg(file, "cannot open: %s", strerror(errno));
		return -1;
	}
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		errmsg("/dev/loop-control", "cannot open: %s (is the loop module loaded?)",
		       strerror(errno));
	for (tries = 0; ctl >= 0 && tries < LOOP_ATTACH_TRIES; tries++) {
		fd = configure(ctl, file_fd, file, read_only);
		if (fd != -EBUSY)
			break;
	}
	if (fd == -EBUSY)
		errmsg(file, "cannot attach: every free loop device was taken by someone else");
	if (ctl >= 0)
		close(ctl);
	/* The loop device holds its own reference to the file. */
	close(file_fd);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st)) {
		errmsg(file, "cannot stat its loop device: %s", strerror(errno));
		close(fd);
		return -1;
	}
	*dev = st.st_rdev;
	return fd;
}

/* Read one line of a sysfs attribute of dev, without the newline. */
static int read_sysfs(dev_t dev, const char *attr, char *buf, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s",
		 major(dev), minor(dev), attr);
	f = fopen(path, "re");
	if (!f)
		return -1;
	if (!fgets(buf, len, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* /dev/NAME from the DEVNAME line of the uevent attribute. */
static int dev_node(dev_t dev, char *path, size_t len)
{
	char line[256], file[128];
	FILE *f;
	int r = -1;

	snprintf(file, sizeof(file), "/sys/dev/block/%u:%u/uevent",
		 major(dev), minor(dev));
	f = fopen(file, "re");
	if (!f) {
		errmsg(file, "cannot open: %s", strerror(errno));
		return -1;
	}
	while (r && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "DEVNAME=", 8))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, len, "/dev/%s", line + 8);
		r = 0;
	}
	fclose(f);
	if (r)
		errmsg(file, "no DEVNAME");
	return r;
}

/* A dm device by its stable name, not by dm-N. */
static int dm_node(dev_t dev, char *buf, size_t len)
{
	char name[128];

	if (read_sysfs(dev, "dm/name", name, sizeof(name)))
		return -1;
	snprintf(buf, len, "/dev/mapper/%s", name);
	return 0;
}

int dev_label(dev_t dev, char *buf, size_t len)
{
	if (!read_sysfs(dev, "loop/backing_file", buf, len))
		return 0;
	if (!dm_node(dev, buf, len))
		return 0;
	return dev_node(dev, buf, len);
}

int dev_path(dev_t dev, char *path, size_t len)
{
	struct stat st;

	if (dev_node(dev, path, len))
		return -1;
	if (stat(path, &st) || !S_ISBLK(st.st_mode) || st.st_rdev != dev) {
		errmsg(path, "is not the block device %u:%u (is devtmpfs mounted on /dev?)",
		       major(dev), minor(dev));
		return -1;
	}
	return 0;
}

int obj_identity(int fd, const char *path, struct obj_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (fd >= 0 ? fstat(fd, &st) : stat(path, &st)) {
		errmsg(path, "cannot stat: %s", strerror(errno));
		return -1;
	}
	id->file = !S_ISBLK(st.st_mode);
	id->dev = id->file ? st.st_dev : st.st_rdev;
	id->ino = id->file ? st.st_ino : 0;
	return 0;
}

/*
 * The loop driver reports its backing file by device and inode, so a file
 * renamed or deleted since it was attached is still recognised (or not
 * mistaken for a new file of the same name).
 */
int dev_identity(dev_t dev, struct obj_id *id)
{
	struct loop_info64 li;
	char node[PATH_MAX], attr[PATH_MAX];
	int fd, r;

	memset(id, 0, sizeof(*id));
	id->dev = dev;
	if (read_sysfs(dev, "loop/backing_file", attr, sizeof(attr)))
		return 0;	/* not a loop device (or one without a file) */
	if (dev_path(dev, node, sizeof(node)))
		return -1;
	fd = open(node, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errmsg(node, "cannot open: %s", strerror(errno));
		return -1;
	}
	r = ioctl(fd, LOOP_GET_STATUS64, &li);
	if (r)
		errmsg(node, "cannot read the loop device status: %s", strerror(errno));
	close(fd);
	if (r)
		return -1;
	id->file = true;
	id->dev = (dev_t)li.lo_device;
	id->ino = (ino_t)li.lo_inode;
	return 0;
}

bool same_obj(const struct obj_id *a, const struct obj_id *b)
{
	return a->file == b->file && a->dev == b->dev &&
	       (!a->file || a->ino == b->ino);
}

int dev_read_only(dev_t dev)
{
	char val[16];

	if (read_sysfs(dev, "ro", val, sizeof(val))) {
		errmsg("sysfs", "cannot read the ro attribute of %u:%u",
		       major(dev), minor(dev));
		return -1;
	}
	return !strcmp(val, "1");
}
