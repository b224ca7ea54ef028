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

/* What a user calls dev: the backing file of a loop device, or /dev/NAME. */
int dev_label(dev_t dev, char *buf, size_t len);

/* The /dev node of dev, checked to be that device. */
int dev_path(dev_t dev, char *path, size_t len);

#endif
