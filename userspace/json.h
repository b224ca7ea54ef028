/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A minimal streaming JSON writer for the --json read-outs: indented,
 * strings escaped per RFC 8259.  key is NULL inside arrays and at the top.
 */
#ifndef CHAINADM_JSON_H
#define CHAINADM_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *f;
	int depth;
	bool need_comma;
};

void json_init(struct json *j, FILE *f);
void json_open(struct json *j, const char *key, char bracket);	/* { or [ */
void json_close(struct json *j, char bracket);			/* } or ] */
void json_str(struct json *j, const char *key, const char *val); /* NULL: null */
void json_u64(struct json *j, const char *key, uint64_t val);
void json_bool(struct json *j, const char *key, bool val);

#endif
