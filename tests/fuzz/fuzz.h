/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the libFuzzer targets in tests/fuzz (see README.md,
 * "Fuzzing"), in fuzz-common.c.  A target is its own file, these helpers
 * and the code under test, all built with -fsanitize=fuzzer,address,
 * undefined (see the Makefile).
 *
 * A broken invariant is a crash: FUZZ_ASSERT prints what broke on a copy
 * of stderr taken before libFuzzer's -close_fd_mask=2 silences the code
 * under test, then aborts, so libFuzzer saves the input like any other
 * crash.
 */
#ifndef DM_CHAIN_FUZZ_H
#define DM_CHAIN_FUZZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm-chain-format.h"

/* The libFuzzer entry points; fuzz-common.c has LLVMFuzzerInitialize(). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A target's own set-up, run by LLVMFuzzerInitialize() (none by default). */
void fuzz_setup(void);

void fuzz_fail(const char *file, int line, const char *cond,
	       const char *fmt, ...)
	__attribute__((format(printf, 4, 5), noreturn));

#define FUZZ_ASSERT(cond, ...) do {					\
	if (!(cond))							\
		fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);	\
} while (0)

/* Little-endian reads from the fuzz input; bytes past len read as zero. */
uint64_t fuzz_le(const uint8_t *data, size_t len, size_t off, size_t bytes);

/*
 * dm_chain_crc32c() is the CPU's crc32 instruction here (chainadm's table
 * costs most of a run); this checks chainadm's against it on data.
 */
void fuzz_check_crc32c(const void *data, size_t len);

/* Store the right checksum into a 4 KiB header slot. */
void fuzz_fix_csum(void *slot);

/* Whether a 4 KiB slot carries the magic but a wrong checksum. */
bool fuzz_csum_wrong(const void *slot);

/*
 * The rules of Documentation/dm-chain-format.rst that an unpacked header
 * must satisfy, checked independently of dm-chain-format.c (aborts).
 */
void fuzz_check_info(const struct dm_chain_layer_info *info, __u64 dev_size);

#endif
