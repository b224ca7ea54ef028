/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Lets dm-chain-format.c build both in the kernel and in chainadm, so the
 * two can never disagree about what a valid layer is.
 */
#ifndef DM_CHAIN_COMPAT_H
#define DM_CHAIN_COMPAT_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include <linux/errno.h>
#include <linux/bitops.h>
#include <linux/overflow.h>
#include <linux/log2.h>
#include <asm/byteorder.h>
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <endian.h>
#include <limits.h>
#include <linux/types.h>

#define le32_to_cpu(x)	le32toh(x)
#define le64_to_cpu(x)	le64toh(x)
#define cpu_to_le32(x)	((__le32)htole32(x))
#define cpu_to_le64(x)	((__le64)htole64(x))
#define check_add_overflow(a, b, d)	__builtin_add_overflow(a, b, d)
#define check_mul_overflow(a, b, d)	__builtin_mul_overflow(a, b, d)
#define DIV_ROUND_UP_ULL(n, d)	(((n) + (d) - 1) / (d))
#define is_power_of_2(n)	((n) != 0 && (((n) & ((n) - 1)) == 0))
#define BITS_PER_LONG		(sizeof(long) * CHAR_BIT)
#define __packed		__attribute__((__packed__))

static inline int __test_and_set_bit(unsigned long nr, unsigned long *map)
{
	unsigned long mask = 1UL << (nr % BITS_PER_LONG);
	unsigned long *p = map + nr / BITS_PER_LONG;
	int old = (*p & mask) != 0;

	*p |= mask;
	return old;
}

static inline unsigned int ilog2(unsigned long long n)
{
	return 63 - __builtin_clzll(n);
}
#endif

#endif
