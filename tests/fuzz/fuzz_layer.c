// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_layer: chainadm's whole layer-reading path, what `chainadm check`
 * and `chainadm info [--json]` do to a file: cmd_check() and cmd_info()
 * themselves, from the open through the header and the table scan to the
 * report, on a layer fed from memory.
 *
 * Input: a whole layer file, byte for byte (a corpus file can be given
 * to chainadm as it is).  It is written into a memfd once per run and the
 * verbs open it as /proc/self/fd/<n>: no file on disk per execution.  An
 * input whose slot carries the magic but a wrong checksum is run a
 * second time with the checksums put right, so that mutations reach past
 * the checksum into the geometry, the table and the job record.
 *
 * Besides no crash, no leak and no sanitizer report:
 *   - check exits 0 (clean) or 3 (inconsistent), never 2: there is no
 *     I/O error to be had on a memfd, so 2 means a read past the end;
 *   - info exits 0 or 2, and info --json the same as info;
 *   - a layer check passes is one info reads.
 * chainadm's own output goes to stdout and stderr as usual: run with
 * -close_fd_mask=3 to keep it out of the fuzzer's log.
 *
 * layer_load_header() reads a header that fails to parse again after a
 * millisecond, for a live layer whose header a commit may be rewriting;
 * a memfd nobody writes gives the same bytes again at once, so the sleep
 * is only time (most of each run): usleep() below stands in for libc's.
 */
#include <getopt.h>
#include <sys/mman.h>

#include "fuzz.h"
#include "../../userspace/chainadm.h"

const struct verb *current_verb;

static int memfd = -1;
static char path[64];

void fuzz_setup(void)
{
	memfd = memfd_create("fuzz-layer", MFD_CLOEXEC);
	FUZZ_ASSERT(memfd >= 0, "memfd_create: %m");
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
}

int usleep(useconds_t usec)
{
	(void)usec;
	return 0;
}

static void load(const uint8_t *data, size_t size)
{
	FUZZ_ASSERT(!ftruncate(memfd, 0), "ftruncate: %m");
	FUZZ_ASSERT(pwrite(memfd, data, size, 0) == (ssize_t)size, "pwrite: %m");
}

/* Run a verb on the memfd the way main() does: argv[0] is the verb. */
static int run(int (*verb)(int, char **), const char *name, const char *opt)
{
	char *argv[4];
	int argc = 0;

	argv[argc++] = (char *)name;
	if (opt)
		argv[argc++] = (char *)opt;
	argv[argc++] = path;
	argv[argc] = NULL;
	optind = 0;		/* a fresh getopt scan each time */
	return verb(argc, argv);
}

static void check_layer(const uint8_t *data, size_t size)
{
	int check, info, json;

	load(data, size);
	check = run(cmd_check, "check", NULL);
	info = run(cmd_info, "info", NULL);
	json = run(cmd_info, "info", "--json");
	fflush(stdout);
	FUZZ_ASSERT(check == EXIT_OK || check == EXIT_INCONSISTENT,
		    "check exited %d", check);
	FUZZ_ASSERT(info == EXIT_OK || info == EXIT_FAIL, "info exited %d", info);
	FUZZ_ASSERT(json == info, "info exited %d, info --json %d", info, json);
	FUZZ_ASSERT(check != EXIT_OK || info == EXIT_OK,
		    "check passes a layer info cannot read");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	int s;

	check_layer(data, size);
	if (size < DM_CHAIN_TABLE_OFFSET ||
	    (!fuzz_csum_wrong(data) &&
	     !fuzz_csum_wrong(data + DM_CHAIN_BLOCK_SIZE)))
		return 0;
	fixed = malloc(size);
	FUZZ_ASSERT(fixed, "out of memory");
	memcpy(fixed, data, size);
	for (s = 0; s < DM_CHAIN_HEADER_SLOTS; s++)
		if (fuzz_csum_wrong(fixed + s * DM_CHAIN_BLOCK_SIZE))
			fuzz_fix_csum(fixed + s * DM_CHAIN_BLOCK_SIZE);
	check_layer(fixed, size);
	free(fixed);
	return 0;
}
