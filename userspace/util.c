// SPDX-License-Identifier: GPL-2.0-only
/*
 * Messages, number parsing and formatting shared by every verb.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "chainadm.h"

void (*msg_sink)(const char *severity, const char *object, const char *text);

static void vmsg(const char *object, const char *prefix, const char *fmt,
		 va_list ap)
{
	char text[1024];

	if (msg_sink) {
		vsnprintf(text, sizeof(text), fmt, ap);
		msg_sink(*prefix ? "warning" : "error", object, text);
		return;
	}
	fprintf(stderr, "chainadm: %s: %s", object, prefix);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* "chainadm: <object>: <what failed>: <why>" on stderr. */
void errmsg(const char *object, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(object, "", fmt, ap);
	va_end(ap);
}

void warnmsg(const char *object, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(object, "warning: ", fmt, ap);
	va_end(ap);
}

/* After getopt's own message for an unknown option or missing argument. */
int try_help(void)
{
	const char *verb = current_verb ? current_verb->name : NULL;

	fprintf(stderr, "Try 'chainadm %s%s--help' for more information.\n",
		verb ? verb : "", verb ? " " : "");
	return EXIT_USAGE;
}

int usage_error(const char *fmt, ...)
{
	const char *verb = current_verb ? current_verb->name : NULL;
	va_list ap;

	fprintf(stderr, "chainadm%s%s: ", verb ? " " : "", verb ? verb : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return try_help();
}

/* The util-linux shape: usage, one sentence, options, where to read on. */
int print_help(void)
{
	const struct verb *v = current_verb;

	printf("\nUsage:\n chainadm %s %s\n\n%s\n\nOptions:\n%s",
	       v->name, v->args, v->summary, v->options ? v->options : "");
	printf(" -h, --help                 display this help\n");
	if (v->more_help)
		v->more_help();
	printf("\nSee chainadm(8).\n");
	return EXIT_OK;
}

static int shift_for_suffix(const char *suffix)
{
	static const char units[] = "KMGTP";
	const char *u;

	if (!*suffix)
		return 0;
	u = strchr(units, suffix[0] & ~0x20);	/* upper case */
	if (!u || !*u)
		return -1;
	/* Accept "K", "KiB" and "KB": all mean 1024 here, like qemu-img. */
	if (suffix[1] && strcasecmp(suffix + 1, "iB") && strcasecmp(suffix + 1, "B"))
		return -1;
	return 10 * (int)(u - units + 1);
}

/* A byte count with an optional binary suffix; opt names the option. */
int parse_size(const char *opt, const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return usage_error("%s: invalid size '%s'", opt, s);
	shift = shift_for_suffix(end);
	if (shift < 0)
		return usage_error("%s: invalid size suffix in '%s' (use K, M, G, T or P)",
				   opt, s);
	if (shift && v > UINT64_MAX >> shift)
		return usage_error("%s: size '%s' is too large", opt, s);
	*out = (uint64_t)v << shift;
	return 0;
}

int parse_uint(const char *opt, const char *s, unsigned long max,
	       unsigned long *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return usage_error("%s: '%s' is not a number between 0 and %lu",
				   opt, s, max);
	*out = v;
	return 0;
}

/* "64 KiB", "1.5 GiB": exact when it is a whole number of the unit. */
const char *size_str(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	unsigned int i = 0;

	while (i < 6 && bytes >> (10 * (i + 1)))
		i++;
	if (!i)
		snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
	else if (!(bytes & ((1ULL << (10 * i)) - 1)))
		snprintf(buf, len, "%llu %s",
			 (unsigned long long)(bytes >> (10 * i)), units[i]);
	else
		snprintf(buf, len, "%.1f %s",
			 (double)bytes / (double)(1ULL << (10 * i)), units[i]);
	return buf;
}

void uuid_str(const __u8 *u, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 0; i < DM_CHAIN_UUID_SIZE; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*buf++ = '-';
		*buf++ = hex[u[i] >> 4];
		*buf++ = hex[u[i] & 15];
	}
	*buf = '\0';
}

/* A version 4 (random) UUID, RFC 4122. */
int uuid_random(__u8 *uuid)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		errmsg("/dev/urandom", "cannot open: %s", strerror(errno));
		return -1;
	}
	n = read(fd, uuid, DM_CHAIN_UUID_SIZE);
	close(fd);
	if (n != DM_CHAIN_UUID_SIZE) {
		errmsg("/dev/urandom", "cannot read a new layer UUID: %s",
		       n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	uuid[6] = (uuid[6] & 0x0f) | 0x40;
	uuid[8] = (uuid[8] & 0x3f) | 0x80;
	return 0;
}

/*
 * Crash tests need chainadm stopped between two steps of a table change:
 * with CHAINADM_TEST_STALL=<point> it says so on stderr when it reaches
 * that point and waits there until it is killed, so that the machine can
 * be powered off at exactly that step.  The points are listed in
 * chainadm(8), ENVIRONMENT.
 */
void test_stall(const char *point)
{
	const char *want = getenv("CHAINADM_TEST_STALL");

	if (!want || strcmp(want, point))
		return;
	fprintf(stderr, "chainadm: stalled at %s (CHAINADM_TEST_STALL)\n", point);
	for (;;)
		pause();
}
