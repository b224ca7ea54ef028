// SPDX-License-Identifier: GPL-2.0-only
/*
 * Streaming JSON writer; see json.h.
 */
#include "json.h"

void json_init(struct json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->need_comma = false;
}

static void put_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Separator, indentation and key of the next member. */
static void begin_member(struct json *j, const char *key)
{
	if (j->depth)
		fputs(j->need_comma ? ",\n" : "\n", j->f);
	fprintf(j->f, "%*s", 2 * j->depth, "");
	if (key) {
		put_string(j->f, key);
		fputs(": ", j->f);
	}
	j->need_comma = true;
}

void json_open(struct json *j, const char *key, char bracket)
{
	begin_member(j, key);
	fputc(bracket, j->f);
	j->depth++;
	j->need_comma = false;
}

void json_close(struct json *j, char bracket)
{
	bool empty = !j->need_comma;

	j->depth--;
	if (!empty)
		fprintf(j->f, "\n%*s", 2 * j->depth, "");
	fputc(bracket, j->f);
	j->need_comma = true;
	if (!j->depth)
		fputc('\n', j->f);
}

void json_str(struct json *j, const char *key, const char *val)
{
	begin_member(j, key);
	if (val)
		put_string(j->f, val);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	begin_member(j, key);
	fprintf(j->f, "%llu", (unsigned long long)val);
}

void json_bool(struct json *j, const char *key, bool val)
{
	begin_member(j, key);
	fputs(val ? "true" : "false", j->f);
}
