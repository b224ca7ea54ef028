/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * /etc/chaintab: the chain devices to bring back after a reboot, one a
 * line, in the manner of crypttab(5):
 *
 *   <name> <top-layer> [<option>[,<option>...]]
 *
 * See chainadm(8), "CHAINTAB".  The environment variable CHAINADM_CHAINTAB
 * names another file (tests, a root file system that is read-only).
 *
 * A line names the top layer only: the chain below it comes from the
 * backing hints.  Snapshot and pivot change a device's top, so chainadm
 * rewrites the line of such a device (chaintab_follow()) at the point of
 * the table change where either top is the whole disk; see the callers.
 */
#ifndef CHAINADM_CHAINTAB_H
#define CHAINADM_CHAINTAB_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#define CHAINTAB_DEFAULT	"/etc/chaintab"
#define CHAINTAB_NAME_LEN	128	/* DM_NAME_LEN */
#define CHAINTAB_FEATURES_LEN	160

struct chaintab_entry {
	unsigned int line;
	char name[CHAINTAB_NAME_LEN];
	char top[PATH_MAX];
	bool raw;		/* the top is a lone raw device */
	bool noauto;		/* not assembled by --all */
	bool netdev;		/* assembled by --all --netdev only */
	char features[CHAINTAB_FEATURES_LEN];	/* "<#> <word>..." or "" */
};

struct chaintab {
	const char *path;
	bool missing;		/* no such file: no entries */
	bool bad;		/* some line was refused (and reported) */
	bool quiet;		/* do not report refused lines */
	unsigned int n;
	struct chaintab_entry *e;
};

/* The file: $CHAINADM_CHAINTAB or /etc/chaintab. */
const char *chaintab_path(void);

/* Read and check every line; a refused line is reported and skipped. */
int chaintab_read(struct chaintab *t);
void chaintab_free(struct chaintab *t);

/*
 * The top layer of device name is now top (raw: a lone raw device): if
 * the chaintab has a line for name, rewrite it (a new file renamed over
 * the old one, both synced).  No file, or no line: nothing to do.  busy,
 * if not 0, is a device suspended by the caller: refused if the
 * chaintab's file system is on it.
 */
int chaintab_follow(const char *name, const char *top, bool raw, dev_t busy);

/* path made absolute against the working directory, symlinks kept. */
int abs_path(const char *path, char *buf, size_t len);

#endif
