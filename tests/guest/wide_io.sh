#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Bios that cross clusters.  map() remaps a bio whole as far as its
# clusters continue one extent (same layer, consecutive host clusters, or
# zeros alike) and cuts it where they stop.  The active layer's clusters
# 64..127 are allocated in runs of four, last run first, so 1 MiB writes
# and reads over them must be cut at every run's end; a bio carried past a
# run would land in, or read from, the wrong host cluster.  4 KiB reads
# (one cluster each, the plain path) are the reference the large bios are
# checked against, and both against the model; the layer's loop device
# shows that the large bios really passed in runs.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup cmp dd blkdiscard

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"

tap_plan 13
chain_load_module || die "cannot load dm-chain"
modprobe loop
kmsg_mark

work=$(mktemp -d /tmp/wide_io.XXXXXX)
on_exit rm -rf "$work"
on_exit detach_loops "$work"
on_exit "$CHAINADM" remove wide
cd "$work" || die "no work dir"

CL=65536
MIB=16
DEV=/dev/mapper/wide

pattern_file base.img $MIB base
cp base.img model
"$CHAINADM" format -q --backing base.img --backing-type raw top.img &&
	"$CHAINADM" create wide top.img >/dev/null
tap_check "create raw base <- top" test -b $DEV

# put FILE SKIP SEEK LEN [BS]: LEN bytes of FILE at byte SKIP into the
# device and the model at byte SEEK, in direct writes of BS (default: one).
put() {
	local bs=${5:-$4}
	dd if="$1" of=$DEV bs="$bs" skip="$2" seek="$3" count="$4" \
		iflag=skip_bytes,count_bytes oflag=seek_bytes,direct status=none &&
	dd if="$1" of=model bs="$bs" skip="$2" seek="$3" count="$4" \
		iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc status=none
}

# A flush: commits the mappings, so no metadata I/O follows.
flush_dev() { dd if=/dev/null of=$DEV conv=fsync,notrunc status=none; }

# Whole clusters, one write each, so allocation follows this order: runs
# of four ascending clusters, the runs last to first, so no run continues
# into the next one (16 separate extents).
pattern_file own 4 own
own_clusters() {
	local g c
	for ((g = 15; g >= 0; g--)); do
		for ((c = 64 + 4 * g; c < 68 + 4 * g; c++)); do
			put own $(((c - 64) * CL)) $((c * CL)) $CL || return 1
		done
	done
}
tap_check "own clusters 64..127 in runs of four, last run first" own_clusters

# Writes per bio reaching the layer's loop device (ios + merges).
top_loop=$(losetup -j "$work/top.img" | cut -d: -f1)
write_bios() { awk '{print $5 + $6}' "/sys/block/${top_loop#/dev/}/stat"; }
read_bios() { awk '{print $1 + $2}' "/sys/block/${top_loop#/dev/}/stat"; }

flush_dev
pattern_file wide 4 wide
before=$(write_bios)
put wide 0 $((64 * CL)) $((4 << 20)) $((1 << 20))
tap_check "1 MiB writes over the runs" test $? = 0
n=$(($(write_bios) - before))
# 16 runs of 256 KiB; one bio per cluster would be 64.
tap_check "the 1 MiB writes reached the layer as $n bios, one per run (16)" \
	test "$n" -ge 16 -a "$n" -le 20

# Unaligned, across clusters, runs and the raw base; then zeros.
pattern_file odd 1 odd
misc_writes() {
	put odd 0 $((70 * CL + 3584)) $((300 << 10)) &&
	put odd 4096 $((126 * CL + 512)) $((200 << 10)) &&
	blkdiscard -z -o $((140 * CL)) -l $((8 * CL)) $DEV &&
	dd if=/dev/zero of=model bs=$CL seek=140 count=8 conv=notrunc status=none
}
tap_check "unaligned writes across runs, zeroes over eight clusters" misc_writes

# read_as BS: the whole device read in BS bios equals the model.
read_as() {
	dd if=$DEV bs="$1" iflag=direct status=none | cmp - model
}
tap_check "4 KiB reads (one cluster each) match the model" read_as 4k
before=$(read_bios)
tap_check "1 MiB reads match the model" read_as 1M
n=$(($(read_bios) - before))
# Clusters 0..63 and 128..255 are the raw base's; 64..127 are 16 runs in
# the top, so 16 MiB read in 1 MiB bios reach the top in about 16 + 4.
tap_check "1 MiB reads reached the layer as $n bios, one per run (16-24)" \
	test "$n" -ge 16 -a "$n" -le 24

# The runs move below a new active layer: reads still follow them.
"$CHAINADM" snapshot wide "$work/top2.img" >/dev/null
tap_check "after a live snapshot, 1 MiB reads through the lower runs match" \
	read_as 1M
put wide $((1 << 20)) $((96 * CL)) $((2 << 20)) $((1 << 20))
tap_check "1 MiB writes copying up into the new layer, then reads, match" \
	read_as 1M

"$CHAINADM" remove wide && "$CHAINADM" create wide top2.img >/dev/null
both_reads() { read_as 1M && read_as 4k; }
tap_check "re-created from its layers, 1 MiB and 4 KiB reads match" both_reads
check_layers() {
	"$CHAINADM" check top.img >/dev/null && "$CHAINADM" check top2.img >/dev/null
}
tap_check "chainadm check passes on both layers" check_layers
"$CHAINADM" remove wide
tap_check "kernel log clean" kmsg_check
tap_done
