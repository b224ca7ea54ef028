#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# chainadm on a live device: create by discovery, status, list, map, and
# live external snapshots.
#
# 1. fio writes with verify through three `chainadm snapshot` table swaps:
#    no I/O error and no lost write.
# 2. chain-stamp writes synchronously and takes a snapshot at each flush
#    point (its mark command): the layers below each snapshot, assembled
#    read-only afterwards, show exactly the disk of that moment: every write
#    acknowledged before it, and none issued after it.
# 3. chainadm remove detaches the loop devices it attached.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup fio

CHAINADM=$CHAIN_ROOT/userspace/chainadm
STAMP=$CHAIN_ROOT/tests/progs/chain-stamp
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
[ -x "$STAMP" ] || skip_all "tests/progs not built"

SNAPS=4
tap_plan $((9 + SNAPS))
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/snapshot_live.XXXXXX)
on_exit rm -rf "$work"
on_exit "$CHAINADM" remove live
on_exit "$CHAINADM" remove stamp
on_exit losetup -D
cd "$work" || die "no work dir"

# ---- 1. fio with verify across live snapshots

dd if=/dev/urandom of=base.img bs=1M count=48 status=none
$CHAINADM format -q --backing base.img --backing-type raw top.img ||
	die "format"
tap_check "create discovers the chain from the top layer" \
	"$CHAINADM" create live top.img
tap_check "status shows two layers over a raw base" \
	sh -c "'$CHAINADM' status live | grep -q 'top.img' && \
	       dmsetup table live | grep -q ' chain 2 raw '"
tap_check "list names the device" sh -c "'$CHAINADM' list | grep -qw live"

# Sectors written to the device so far (field 7 of its stat file).
written() {
	local minor
	minor=$(dmsetup info -c --noheadings -o minor live | tr -d ' ')
	awk '{print $7}' "/sys/block/dm-$minor/stat"
}

# Rate-limited so that the swaps land in the middle of the writes.
fio --name=live --filename=/dev/mapper/live --ioengine=libaio --direct=1 \
	--rw=randwrite --bsrange=4k-128k --iodepth=16 --size=48M --rate=4m \
	--verify=crc32c --verify_fatal=1 --do_verify=1 --randrepeat=0 \
	--output="$work/fio.out" &
fio_pid=$!
snap_ok=1
for i in 1 2 3; do
	before=$(written)
	while [ "$(written)" = "$before" ] && kill -0 $fio_pid 2>/dev/null; do
		sleep 0.5
	done
	sleep 1
	$CHAINADM snapshot live "s$i.img" > "snap$i.out" 2>&1 ||
		{ snap_ok=0; sed 's/^/# /' "snap$i.out"; }
done
wait $fio_pid
fio_rc=$?
grep -E "err=|READ:|WRITE:" "$work/fio.out" | sed 's/^/# /'
tap_check "three snapshots taken while fio writes" \
	test $snap_ok = 1 -a "$(grep -c ' [A-Z]' <("$CHAINADM" map --width 40 live))" -ge 4
tap_check "fio verify: no I/O error, no lost write across the snapshots" \
	test $fio_rc = 0
tap_check "the table swaps left five layers" \
	sh -c "dmsetup table live | grep -q ' chain 5 raw '"
$CHAINADM map --width 60 live | sed 's/^/# /'
tap_check "map draws the live device" \
	sh -c "'$CHAINADM' map --width 60 live | grep -q 'guest sees'"

# ---- 2. every snapshot shows the disk of its moment

truncate -s 16M base2.img
$STAMP fill --dev base2.img --size 16M >/dev/null || die "stamp fill"
$CHAINADM format -q --backing base2.img --backing-type raw t0.img
$CHAINADM create stamp t0.img || die "create stamp"
$STAMP write --dev /dev/mapper/stamp --journal journal --size 16M \
	--ops $((SNAPS * 60)) --flush-every 60 --seed 7 \
	--mark-cmd "$CHAINADM snapshot stamp $work/t%d.img >/dev/null" \
	> write.out 2>&1 || sed 's/^/# /' write.out
base_loop=$(losetup -r -f --show base2.img)
for ((k = 1; k <= SNAPS; k++)); do
	# The disk of snapshot k: base, t0 .. t(k-1), read-only.
	loops=("$base_loop")
	for ((j = 0; j < k; j++)); do
		loops+=("$(losetup -r -f --show "t$j.img")")
	done
	sed "/^flush $k done/q" journal > "journal.$k"
	dmsetup create --readonly "moment$k" --table \
		"0 32768 chain ${#loops[@]} raw ${loops[*]}" &&
	$STAMP check --dev "/dev/mapper/moment$k" --journal "journal.$k" \
		--size 16M --upto-flush "$k" --initial stamped 2>&1 |
		tail -5 | sed 's/^/# /'
	tap_check "snapshot $k shows exactly the writes acknowledged before it" \
		test "${PIPESTATUS[0]}" = 0
	dmsetup remove "moment$k"
	for ((j = 1; j < ${#loops[@]}; j++)); do
		losetup -d "${loops[$j]}"
	done
done
losetup -d "$base_loop"

# ---- 3. remove detaches what create attached

loops_before=$(losetup -a | grep -c "$work/")
tap_check "remove takes the devices down" \
	sh -c "'$CHAINADM' remove live && '$CHAINADM' remove stamp"
sleep 1
loops_after=$(losetup -a | grep -c "$work/")
log "loop devices on our files: $loops_before before remove, $loops_after after"
tap_check "remove detaches the loop devices" test "$loops_after" = 0
tap_done
