// SPDX-License-Identifier: GPL-2.0-only
/*
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) for the header
 * checksum.  Like the kernel's crc32c() it returns the raw register: no
 * final inversion, the caller seeds with ~0 and inverts the result, as
 * dm_chain_header_csum() does.
 */
#include "dm-chain-format.h"

#define CRC32C_POLY	0x82F63B78u

static __u32 crc_table[256];

static void crc32c_init(void)
{
	__u32 i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c >> 1) ^ (c & 1 ? CRC32C_POLY : 0);
		crc_table[i] = c;
	}
}

__u32 dm_chain_crc32c(__u32 crc, const void *data, size_t len)
{
	const __u8 *p = data;

	/* Entry 1 is never zero once the table is built. */
	if (!crc_table[1])
		crc32c_init();
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}
