/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * chainadm: shared declarations of the command-line tool.
 *
 * Every verb lives in its own cmd_*.c file and returns one of the exit
 * codes below.  Helpers print their own error message at the point of
 * failure (they know the object and the reason) and return -1, so that
 * callers only propagate the failure.
 */
#ifndef CHAINADM_H
#define CHAINADM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "dm-chain-format.h"

/* Exit codes, documented in chainadm(8). */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 1,		/* bad command line */
	EXIT_FAIL = 2,		/* an operation failed */
	EXIT_INCONSISTENT = 3,	/* check found an inconsistency */
	EXIT_JOB_FAILED = 4,	/* the block job failed (I/O error) */
	EXIT_JOB_GONE = 5,	/* the job was cancelled by someone else or vanished */
};

struct verb {
	const char *name;
	const char *args;	/* synopsis after "chainadm <name>" */
	const char *summary;	/* one sentence */
	const char *options;	/* option lines of --help, may be NULL */
	int (*handler)(int argc, char **argv);
	void (*more_help)(void);	/* after the options, or NULL */
};

extern const struct verb *current_verb;

/* util.c */
/*
 * If set, errmsg() and warnmsg() hand their message here (severity
 * "error" or "warning") instead of printing it: check --json.
 */
extern void (*msg_sink)(const char *severity, const char *object,
			const char *text);
void errmsg(const char *object, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void warnmsg(const char *object, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int try_help(void);
int print_help(void);
int parse_size(const char *opt, const char *s, uint64_t *out);
int parse_uint(const char *opt, const char *s, unsigned long max,
	       unsigned long *out);
const char *size_str(uint64_t bytes, char *buf, size_t len);
void uuid_str(const __u8 *uuid, char *buf);	/* buf: 37 bytes */
int uuid_random(__u8 *uuid);
void test_stall(const char *point);

#define SIZE_STR_LEN	32
#define UUID_STR_LEN	37

/* crc32c.c: dm_chain_crc32c() is declared in dm-chain-format.h. */

/* Verb handlers. */
int cmd_format(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_remove(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_commit(int argc, char **argv);
int cmd_copy(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_recover(int argc, char **argv);
int cmd_assemble(int argc, char **argv);

/* The column lists of the verbs with tables (output.h). */
void list_help(void);
void status_help(void);
void info_help(void);
void map_help(void);
void check_help(void);
int cmd_extend(int argc, char **argv);
int cmd_monitor(int argc, char **argv);

#endif
