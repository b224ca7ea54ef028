/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Loop devices for layers that are files, and the names of the block
 * devices a live table refers to.  Functions print their own errors.
 */
#ifndef CHAINADM_LOOP_H
#define CHAINADM_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Attach file to a free loop device with direct I/O and autoclear.
 * Returns an open fd of the loop device: autoclear detaches the device
 * on its last close, so keep the fd open until a dm table holds it.
 */
int loop_attach(const char *file, bool read_only, dev_t *dev);

/*
 * What a user calls dev: the backing file of a loop device, /dev/mapper/NAME
 * for a dm device, or /dev/NAME.
 */
int dev_label(dev_t dev, char *buf, size_t len);

/* The /dev node of dev, checked to be that device. */
int dev_path(dev_t dev, char *path, size_t len);

/*
 * What a layer is, whatever names it: a block device (by device number)
 * or a file (by file system and inode), also when it is seen through a
 * loop device.  Paths, table devices and loop backing files compare equal
 * when they are the same object.
 */
struct obj_id {
	bool file;
	dev_t dev;		/* block device, or the file's file system */
	ino_t ino;		/* file only */
};

/* Of the open fd, or with fd < 0 of path. */
int obj_identity(int fd, const char *path, struct obj_id *id);
/* dev itself, or for a loop device the file behind it. */
int dev_identity(dev_t dev, struct obj_id *id);
bool same_obj(const struct obj_id *a, const struct obj_id *b);

/* 1 if dev is read-only (a loop device attached read-only), 0, -1. */
int dev_read_only(dev_t dev);

#endif
