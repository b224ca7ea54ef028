// SPDX-License-Identifier: GPL-2.0-only
/*
 * fuzz_header: the header code dm-chain.ko and chainadm share
 * (kernel/dm-chain-format.c): dm_chain_header_unpack() of each slot,
 * dm_chain_header_read() of both, dm_chain_header_pack().
 *
 * Input:
 *   bytes 0..7   device size, little-endian (any value: nothing is read
 *                from the device here, the size only enters the checks)
 *   byte 8       bit 0: keep slot 0's stored checksum, bit 1: slot 1's
 *                (otherwise the right one is written in, so mutations
 *                reach the checks behind the checksum); bits 2..7: the
 *                error buffer is 4 * (bits 2..7) + 1 bytes, on the heap,
 *                so that a message written past it is caught
 *   bytes 9..    the two 4 KiB slots, cut or zero-padded to 8 KiB
 *
 * Besides no crash and no sanitizer report, every input must keep:
 *   - a slot that unpacks satisfies every rule of dm-chain-format.rst
 *     (fuzz_check_info(), written apart from the code under test);
 *   - a refused slot comes with -EINVAL and a message;
 *   - dm_chain_header_read() takes the valid slot, or of two valid ones
 *     the higher generation (slot 0 on a tie), and refuses with slot 0's
 *     message when neither is valid or the device is under 8 KiB;
 *   - pack(unpack(slot)) unpacks again and packs to the same bytes;
 *   - chainadm's CRC32C of the input is the CPU's (fuzz.h).
 */
#include "fuzz.h"

#define PREFIX	9

/* Two unpacked headers carry the same fields (compared packed). */
static bool same_header(const struct dm_chain_layer_info *a,
			const struct dm_chain_layer_info *b)
{
	static __u8 pa[DM_CHAIN_BLOCK_SIZE], pb[DM_CHAIN_BLOCK_SIZE];

	dm_chain_header_pack(a, pa);
	dm_chain_header_pack(b, pb);
	return !memcmp(pa, pb, sizeof(pa));
}

/* pack(info) unpacks again to a header that packs to the same bytes. */
static void check_roundtrip(const struct dm_chain_layer_info *info,
			    __u64 dev_size)
{
	static __u8 block[DM_CHAIN_BLOCK_SIZE];
	struct dm_chain_layer_info again;
	char err[256];
	int r;

	dm_chain_header_pack(info, block);
	r = dm_chain_header_unpack(block, dev_size, &again, err, sizeof(err));
	FUZZ_ASSERT(!r, "a packed header does not unpack: %s", err);
	fuzz_check_info(&again, dev_size);
	FUZZ_ASSERT(same_header(info, &again),
		    "pack(unpack(pack(header))) differs from pack(header)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static __u8 blocks[DM_CHAIN_TABLE_OFFSET];
	static struct dm_chain_layer_info slot[2], info;
	__u64 dev_size = fuzz_le(data, size, 0, 8);
	unsigned int ctl = size > 8 ? data[8] : 0;
	size_t err_len = 4 * (ctl >> 2) + 1, n;
	char *err0, *err1, *err;
	int r[2], rr, s, want;

	fuzz_check_crc32c(data, size);
	memset(blocks, 0, sizeof(blocks));
	n = size > PREFIX ? size - PREFIX : 0;
	memcpy(blocks, data + PREFIX, n < sizeof(blocks) ? n : sizeof(blocks));
	for (s = 0; s < 2; s++)
		if (!(ctl & (1u << s)))
			fuzz_fix_csum(blocks + s * DM_CHAIN_BLOCK_SIZE);

	err0 = malloc(err_len);
	err1 = malloc(err_len);
	err = malloc(err_len);
	FUZZ_ASSERT(err0 && err1 && err, "out of memory");
	for (s = 0; s < 2; s++) {
		r[s] = dm_chain_header_unpack(blocks + s * DM_CHAIN_BLOCK_SIZE,
					      dev_size, &slot[s],
					      s ? err1 : err0, err_len);
		if (r[s]) {
			FUZZ_ASSERT(r[s] == -EINVAL, "slot %d: error %d", s, r[s]);
			FUZZ_ASSERT(strlen(s ? err1 : err0) || err_len == 1,
				    "slot %d refused without a message", s);
			continue;
		}
		fuzz_check_info(&slot[s], dev_size);
		check_roundtrip(&slot[s], dev_size);
	}

	rr = dm_chain_header_read(blocks, dev_size, &info, err, err_len);
	if (dev_size < DM_CHAIN_TABLE_OFFSET) {
		FUZZ_ASSERT(rr == -EINVAL, "a %llu-byte device was accepted",
			    (unsigned long long)dev_size);
		goto out;
	}
	if (r[0] && r[1]) {
		FUZZ_ASSERT(rr == r[0] && !strcmp(err, err0),
			    "both slots invalid, read says %d '%s', slot 0 '%s'",
			    rr, err, err0);
		goto out;
	}
	FUZZ_ASSERT(!rr, "a valid slot was refused: %s", err);
	if (r[0])
		want = 1;
	else if (r[1])
		want = 0;
	else
		want = slot[1].generation > slot[0].generation;
	FUZZ_ASSERT(info.slot == want, "took slot %d, generations %llu %llu",
		    info.slot, (unsigned long long)slot[0].generation,
		    (unsigned long long)slot[1].generation);
	fuzz_check_info(&info, dev_size);
	FUZZ_ASSERT(same_header(&info, &slot[want]),
		    "the header read is not slot %d as unpacked", want);
out:
	free(err0);
	free(err1);
	free(err);
	return 0;
}
