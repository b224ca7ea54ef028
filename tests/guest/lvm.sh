#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Layers on LVM (issue 20): a volume group on two PVs; on the first a raw
# base LV of 128 MiB with data and a thick 8 MiB overlay LV, assembled
# from a chaintab line.  Then, each checked byte for byte against a model
# of the disk:
#   1. a live snapshot onto a new 8 MiB LV (the chaintab line follows);
#   2. an intermediate commit of the first overlay into the base LV (the
#      base LV alone is then the disk of the snapshot's moment);
#   3. writes past the overlay LV's room: they wait (space full), the LV
#      is grown with lvextend, chainadm extend, and the writes complete;
#   4. a full copy onto an LV made beforehand on the second PV with
#      --reuse-external --pivot while fio writes with verify (pvmove by
#      dm-chain); the old LVs are removed, the first PV leaves the VG, and
#      the device assembled again from the chaintab reads the same, fio's
#      blocks verifying.
# LVM runs without udev (tests/lvm/lvm.conf) and scans every block device,
# the chain devices included.
. "$(dirname "$0")/../lib.sh"

jobs_begin assemble fio lvcreate lvextend lvremove vgreduce pvs
tap_plan 17
export LVM_SYSTEM_DIR=$CHAIN_ROOT/tests/lvm
mkdir -p /run/lock/lvm
export CHAINADM_CHAINTAB=$work/chaintab
MIB=$((1 << 20))
# Newest first: the chain device goes before the VG, the VG before its PVs.
on_exit losetup -D
on_exit vgremove -qq -f vgc
on_exit "$CHAINADM" remove $DEV

# rand MIB_OFFSET MIBS : random data, flushed, into the device and model.
rand() {
	head -c $(($2 * MIB)) /dev/urandom > "$work/buf" &&
	dd if="$work/buf" of=/dev/mapper/$DEV bs=1M seek="$1" oflag=direct \
	   conv=fsync status=none &&
	dd if="$work/buf" of="$work/model" bs=1M seek="$1" conv=notrunc status=none
}
space() { dmsetup status "$DEV" | awk '{ print $9 }'; }
top_of() { awk -v n="$1" '$1 == n { print $2 }' "$CHAINADM_CHAINTAB"; }
# fio_rand [extra...] : 4 KiB random writes over the first 16 MiB, each
# block once, with a crc32c header; read back and checked at the end.
fio_rand() {
	fio --name=rand --filename=/dev/mapper/$DEV --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=4 --size=16M --randseed=2020 \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--output-format=terse "$@"
}

truncate -s 320M "$work/pv1.img"
truncate -s 256M "$work/pv2.img"
PV1=$(losetup -f --show "$work/pv1.img")
PV2=$(losetup -f --show "$work/pv2.img")
pvcreate -qq "$PV1" "$PV2" && vgcreate -qq -s 4M vgc "$PV1" "$PV2" &&
	lvcreate -qq -y -L 128M -n base vgc "$PV1" &&
	lvcreate -qq -y -L 8M -n ov1 vgc "$PV1" || die "LVM setup"
head -c $((128 * MIB)) /dev/urandom > "$work/model"
dd if="$work/model" of=/dev/vgc/base bs=1M oflag=direct status=none
"$CHAINADM" format -q --backing /dev/vgc/base --backing-type raw /dev/vgc/ov1 ||
	die "format the overlay LV"
echo "$DEV /dev/vgc/ov1 no-space-timeout=0" > "$CHAINADM_CHAINTAB"
"$CHAINADM" assemble $DEV > /dev/null || die "assemble on LVs"
tap_check "a raw base LV and an 8 MiB overlay LV make a 128 MiB disk that reads the base" \
	eval 'test "$(blockdev --getsize64 /dev/mapper/$DEV)" = $((128 * MIB)) &&
	      cmp /dev/mapper/$DEV "$work/model"'
rand 10 4

# ---- 1. live snapshot onto a new LV
lvcreate -qq -y -L 8M -n ov2 vgc "$PV1" || die "lvcreate ov2"
cp "$work/model" "$work/model.ov1"
tap_check "1 live snapshot onto a new LV; the chaintab line follows it" \
	eval '"$CHAINADM" snapshot $DEV /dev/vgc/ov2 >/dev/null &&
	      test "$(dev_layer_names $DEV)" = "vgc-base vgc-ov1 vgc-ov2" &&
	      test "$(top_of $DEV)" = /dev/vgc/ov2'
rand 40 4
tap_check "1 the disk is the model" cmp /dev/mapper/$DEV "$work/model"

# ---- 2. intermediate commit into the base LV
"$CHAINADM" commit $DEV --top /dev/vgc/ov1 --base /dev/vgc/base --wait \
	> "$work/commit.out" 2>&1
tap_check "2 commit of ov1 into the base LV: the chain is base <- ov2" \
	eval 'test "$(dev_layer_names $DEV)" = "vgc-base vgc-ov2"' ||
	sed 's/^/# /' "$work/commit.out"
tap_check "2 the disk is the model" cmp /dev/mapper/$DEV "$work/model"
tap_check "2 the base LV alone is the disk of the snapshot's moment" \
	cmp /dev/vgc/base "$work/model.ov1"

# ---- 3. out of space, the LV grown, the writes complete
head -c $((12 * MIB)) /dev/urandom > "$work/big"
dd if="$work/big" of=/dev/mapper/$DEV bs=1M seek=64 oflag=direct conv=fsync \
   status=none 2> "$work/dd.err" &
dd_pid=$!
for _ in $(seq 600); do [ "$(space)" = full ] && break; sleep 0.2; done
tap_check "3 writes past the 8 MiB LV's room wait: the layer is full, the writer still runs" \
	eval 'test "$(space)" = full && kill -0 $dd_pid'
lvextend -qq -L +16M vgc/ov2 > /dev/null
"$CHAINADM" extend $DEV > "$work/extend.out" 2>&1
wait $dd_pid
dd_rc=$?
dd if="$work/big" of="$work/model" bs=1M seek=64 conv=notrunc status=none
tap_check "3 lvextend and chainadm extend: the waiting writes complete without error" \
	eval 'test $dd_rc = 0 -a "$(space)" = ok' || sed 's/^/# /' "$work/dd.err" "$work/extend.out"
tap_check "3 the disk is the model" cmp /dev/mapper/$DEV "$work/model"

# ---- 4. pvmove by dm-chain: a full copy onto a pre-made LV on PV2
lvcreate -qq -y -L 160M -n moved vgc "$PV2" || die "lvcreate moved"
"$CHAINADM" format -q --size 128M /dev/vgc/moved || die "format the moved LV"
fio_rand --rate=1m > "$work/fio.out" 2>&1 &
fio_pid=$!
sleep 2
"$CHAINADM" copy $DEV /dev/vgc/moved --reuse-external --pivot --wait \
	> "$work/copy.out" 2>&1
copy_rc=$?
kill -0 $fio_pid 2>/dev/null && log "fio still wrote when the copy pivoted"
wait $fio_pid
fio_rc=$?
tap_check "4 copy --reuse-external --pivot onto the LV on PV2 while fio writes" \
	eval 'test $copy_rc = 0 && test "$(dev_layer_names $DEV)" = vgc-moved' ||
	sed 's/^/# /' "$work/copy.out"
tap_check "4 fio verified every block it wrote through the pivot" test $fio_rc = 0 ||
	tail -5 "$work/fio.out" | sed 's/^/# /'
tap_check "4 past fio's 16 MiB, the disk is the model" \
	cmp -i $((16 * MIB)) /dev/mapper/$DEV "$work/model"
tap_check "4 the chaintab line names the LV the device now runs on" \
	test "$(top_of $DEV)" = /dev/mapper/vgc-moved
dd if=/dev/mapper/$DEV of="$work/model" bs=1M count=16 iflag=direct conv=notrunc status=none
lvremove -qq -y vgc/base vgc/ov1 vgc/ov2 > /dev/null && vgreduce -qq vgc "$PV1" > /dev/null
tap_check "4 the old LVs removed, PV1 leaves the VG while the device runs" \
	eval 'test "$(pvs --noheadings -o vg_name "$PV1" | tr -d " ")" = "" &&
	      cmp /dev/mapper/$DEV "$work/model"'
"$CHAINADM" remove $DEV
"$CHAINADM" assemble $DEV > /dev/null
tap_check "4 assembled again from the chaintab: the LV alone, the same disk" \
	eval 'test "$(dev_layer_names $DEV)" = vgc-moved && cmp /dev/mapper/$DEV "$work/model"'
tap_check "4 ... and fio's blocks verify" eval 'fio_rand --verify_only=1 > "$work/fio2.out" 2>&1'
tap_check "the kernel log is clean" kmsg_check
tap_done
