// SPDX-License-Identifier: GPL-2.0-only
/*
 * libdevmapper operations; see dm.h.
 *
 * Inside this file libdm's own convention holds (1 success, 0 failure);
 * the exported functions translate to chainadm's 0/-1 at their return.
 * Every task is destroyed on every path.
 *
 * Without udev (the test guest has none) libdm must create and remove the
 * /dev/mapper nodes itself: dm_op_init() then sets DM_DISABLE_UDEV and
 * turns udev synchronisation off.  Create, resume and remove always use a
 * cookie: with udev it waits for the rules, without it the same call
 * performs the queued node operations.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chainadm.h"
#include "dm.h"

void dm_op_init(void)
{
	if (access("/run/udev/control", F_OK)) {
		setenv("DM_DISABLE_UDEV", "1", 0);
		dm_udev_set_sync_support(0);
	}
}

static struct dm_task *task_new(int type, const char *name, const char *what)
{
	struct dm_task *dmt = dm_task_create(type);

	if (!dmt) {
		errmsg(name ? name : "device-mapper", "%s: cannot set up a device-mapper task: is device-mapper available (modprobe dm-mod)?",
		       what);
		return NULL;
	}
	if (name && !dm_task_set_name(dmt, name)) {
		errmsg(name, "%s: invalid device name", what);
		dm_task_destroy(dmt);
		return NULL;
	}
	return dmt;
}

static int task_run(struct dm_task *dmt, const char *name, const char *what)
{
	if (dm_task_run(dmt))
		return 1;
	errmsg(name ? name : "device-mapper", "%s failed: see the kernel log (dmesg) for the reason",
	       what);
	return 0;
}

/* Run a task that changes /dev nodes, synchronised by a udev cookie. */
static int task_run_cookie(struct dm_task *dmt, const char *name,
			   const char *what)
{
	uint32_t cookie = 0;
	int r;

	if (!dm_task_set_cookie(dmt, &cookie, 0)) {
		errmsg(name, "%s: cannot set a udev cookie", what);
		return 0;
	}
	r = task_run(dmt, name, what);
	if (!(r ? dm_udev_wait(cookie) : dm_udev_complete(cookie)))
		errmsg(name, "%s: waiting for udev failed", what);
	return r;
}

/* A task with no arguments but the name: clear. */
static int simple(int type, const char *name, const char *what)
{
	struct dm_task *dmt = task_new(type, name, what);
	int r;

	if (!dmt)
		return -1;
	r = task_run(dmt, name, what);
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

static int with_table(int type, const char *name, uint64_t sectors,
		      const char *params, const char *what)
{
	struct dm_task *dmt = task_new(type, name, what);
	int r;

	if (!dmt)
		return -1;
	r = dm_task_add_target(dmt, 0, sectors, CHAIN_TARGET, params);
	if (!r)
		errmsg(name, "%s: cannot add the table", what);
	else if (type == DM_DEVICE_CREATE)
		r = task_run_cookie(dmt, name, what);
	else
		r = task_run(dmt, name, what);
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

/* One task: libdm creates the device, loads the table and resumes it. */
int dm_op_create(const char *name, uint64_t sectors, const char *params)
{
	return with_table(DM_DEVICE_CREATE, name, sectors, params,
			  "creating the device");
}

/* Into the inactive slot; the live table is untouched until resume. */
int dm_op_load(const char *name, uint64_t sectors, const char *params)
{
	return with_table(DM_DEVICE_RELOAD, name, sectors, params,
			  "loading the table");
}

/*
 * Noflush: writes the target cannot place (a full active layer) go back
 * to dm-core and are sent again, to the new table, after resume, instead
 * of failing.  Everything else still completes before the suspend does,
 * and the target commits its metadata in postsuspend.
 */
int dm_op_suspend(const char *name)
{
	const char *what = "suspending the device";
	struct dm_task *dmt = task_new(DM_DEVICE_SUSPEND, name, what);
	int r;

	if (!dmt)
		return -1;
	r = dm_task_no_flush(dmt);
	if (!r)
		errmsg(name, "%s: cannot ask for a noflush suspend", what);
	else
		r = task_run(dmt, name, what);
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

static int cookie_op(int type, const char *name, const char *what)
{
	struct dm_task *dmt = task_new(type, name, what);
	int r;

	if (!dmt)
		return -1;
	/* A remove may race with a short-lived opener (blkid, udev). */
	r = type != DM_DEVICE_REMOVE || dm_task_retry_remove(dmt);
	if (!r)
		errmsg(name, "%s: cannot set retry", what);
	else
		r = task_run_cookie(dmt, name, what);
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

int dm_op_resume(const char *name)
{
	return cookie_op(DM_DEVICE_RESUME, name, "resuming the device");
}

int dm_op_remove(const char *name)
{
	return cookie_op(DM_DEVICE_REMOVE, name, "removing the device");
}

int dm_op_clear(const char *name)
{
	return simple(DM_DEVICE_CLEAR, name, "clearing the inactive table");
}

int dm_op_message(const char *name, const char *msg, char **response)
{
	struct dm_task *dmt = task_new(DM_DEVICE_TARGET_MSG, name, "message");
	const char *resp;
	char what[128];
	int r;

	if (!dmt)
		return -1;
	snprintf(what, sizeof(what), "message '%s'", msg);
	r = dm_task_set_sector(dmt, 0) && dm_task_set_message(dmt, msg);
	if (!r)
		errmsg(name, "%s: cannot set up the task", what);
	else
		r = task_run(dmt, name, what);
	if (r && response) {
		resp = dm_task_get_message_response(dmt);
		*response = strdup(resp ? resp : "");
		r = !!*response;
	}
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

/* info->exists says whether there is such a device. */
static int get_info(const char *name, struct dm_info *info)
{
	struct dm_task *dmt = task_new(DM_DEVICE_INFO, name, "info");
	int r;

	if (!dmt)
		return 0;
	r = task_run(dmt, name, "info") && dm_task_get_info(dmt, info);
	dm_task_destroy(dmt);
	return r;
}

int dm_op_info(const char *name, struct dm_info *info)
{
	if (!get_info(name, info))
		return -1;
	if (!info->exists) {
		errmsg(name, "no such device-mapper device: see chainadm list");
		return -1;
	}
	return 0;
}

int dm_op_probe(const char *name, struct dm_info *info)
{
	return get_info(name, info) ? 0 : -1;
}

/* The first (for chain: only) target of the live table. */
static int get_target(int type, const char *name, struct dm_target_line *line,
		      const char *what)
{
	struct dm_task *dmt = task_new(type, name, what);
	char *ttype = NULL, *params = NULL;
	int r;

	memset(line, 0, sizeof(*line));
	if (!dmt)
		return -1;
	r = dm_task_no_open_count(dmt) && task_run(dmt, name, what);
	if (r)
		dm_get_next_target(dmt, NULL, &line->start, &line->len, &ttype,
				   &params);
	if (r && ttype) {
		line->type = strdup(ttype);
		line->params = strdup(params ? params : "");
		r = line->type && line->params;
	}
	dm_task_destroy(dmt);
	if (!r)
		dm_target_line_free(line);
	return r ? 0 : -1;
}

int dm_op_status(const char *name, struct dm_target_line *line)
{
	return get_target(DM_DEVICE_STATUS, name, line, "status");
}

int dm_op_table(const char *name, struct dm_target_line *line)
{
	return get_target(DM_DEVICE_TABLE, name, line, "table");
}

void dm_target_line_free(struct dm_target_line *line)
{
	free(line->type);
	free(line->params);
	line->type = line->params = NULL;
}

/* Block until the device's event counter passes event_nr. */
int dm_op_wait_event(const char *name, uint32_t event_nr)
{
	struct dm_task *dmt = task_new(DM_DEVICE_WAITEVENT, name, "wait");
	int r;

	if (!dmt)
		return -1;
	r = dm_task_set_event_nr(dmt, event_nr) && task_run(dmt, name, "wait");
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

int dm_op_list(int (*fn)(const char *name, void *arg), void *arg)
{
	struct dm_task *dmt = task_new(DM_DEVICE_LIST, NULL, "list");
	struct dm_names *names;
	unsigned int next = 0;
	int r;

	if (!dmt)
		return -1;
	r = task_run(dmt, NULL, "list");
	names = r ? dm_task_get_names(dmt) : NULL;
	if (r && !names) {
		errmsg("device-mapper", "list: no names returned");
		r = 0;
	}
	/* An empty list is one entry with dev 0. */
	if (r && names->dev) {
		do {
			names = (struct dm_names *)((char *)names + next);
			r = !fn(names->name, arg);
			next = names->next;
		} while (r && next);
	}
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}

/* The version of a loaded target type, all zero when none is loaded. */
int dm_op_target_version(const char *target, uint32_t version[3])
{
	struct dm_task *dmt = task_new(DM_DEVICE_LIST_VERSIONS, NULL,
				       "target versions");
	struct dm_versions *v, *last;
	int r;

	version[0] = version[1] = version[2] = 0;
	if (!dmt)
		return -1;
	r = task_run(dmt, NULL, "target versions");
	v = r ? dm_task_get_versions(dmt) : NULL;
	while (v) {
		if (!strcmp(v->name, target)) {
			memcpy(version, v->version, sizeof(v->version));
			break;
		}
		last = v;
		v = (struct dm_versions *)((char *)v + v->next);
		if (v == last)
			break;
	}
	dm_task_destroy(dmt);
	return r ? 0 : -1;
}
