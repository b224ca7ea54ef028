/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A thin layer over libdevmapper: one function per dm operation, each
 * building exactly one dm_task.  Every function returns 0 on success or
 * -1 with the error printed (libdm has logged the ioctl failure itself).
 */
#ifndef CHAINADM_DM_H
#define CHAINADM_DM_H

#include <stdint.h>
#include <libdevmapper.h>

#define CHAIN_TARGET	"chain"

/* The single target of a chain device, strings owned by the caller. */
struct dm_target_line {
	uint64_t start;		/* in sectors */
	uint64_t len;		/* in sectors */
	char *type;		/* NULL if the device has no table */
	char *params;
};

/* Call before any other: sets libdm up to make /dev nodes without udev. */
void dm_op_init(void);

int dm_op_create(const char *name, uint64_t sectors, const char *params);
int dm_op_load(const char *name, uint64_t sectors, const char *params);
int dm_op_suspend(const char *name);
int dm_op_resume(const char *name);
int dm_op_clear(const char *name);
int dm_op_remove(const char *name);
int dm_op_message(const char *name, const char *msg, char **response);
int dm_op_info(const char *name, struct dm_info *info);
/* Like dm_op_info, but no such device is no error: info->exists says. */
int dm_op_probe(const char *name, struct dm_info *info);
int dm_op_status(const char *name, struct dm_target_line *line);
int dm_op_table(const char *name, struct dm_target_line *line);
int dm_op_wait_event(const char *name, uint32_t event_nr);
int dm_op_list(int (*fn)(const char *name, void *arg), void *arg);
/* The version of a loaded target type, all zero when none is loaded. */
int dm_op_target_version(const char *target, uint32_t version[3]);

void dm_target_line_free(struct dm_target_line *line);

#endif
