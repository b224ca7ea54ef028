#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Copying a lone raw device (issue 19): the device a whole-chain merge
# leaves (ext4 on a raw base with an overlay, then commit --active
# --pivot) is copied while fio writes to it with verify, to a new chain
# layer (--pivot), into a raw file of garbage (--reuse-external
# --finish), into a layer prepared by hand with other clusters
# (--reuse-external, after an aborted copy left it marked), and to a new
# raw file (--pivot).  The kernel reads the raw layer through a view that
# holds every cluster in place; a chain destination is marked
# copy-destination until the pivot or finish, and nothing assembles it
# meanwhile.
#
# Every content check is a cmp: the device against what it read before
# the table change, the destination alone against the same, and fio's own
# verify (a crc32c in every block it wrote) through the device and, after
# a pivot, through the destination alone.
. "$(dirname "$0")/../lib.sh"

jobs_begin copy fio
require_cmd mkfs.ext4 fsck.ext4

MIB=$((1 << 20))
SIZE=$((32 * MIB))

refused() { [ "$1" != 0 ] && grep -q -- "$2" <<< "$3"; }

# fio_rand <device> [extra...]: 4 KiB random writes over the first 16 MiB,
# each block once, with a crc32c header; read back and checked at the end.
fio_rand() {
	local dev=$1
	shift
	fio --name=rand --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=4 --size=16M \
		--randseed=1919 --verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=terse "$@"
}

# kernel_refuses TABLE WANT : dmsetup create fails and the kernel says WANT.
kernel_refuses() {
	local n
	n=$(dmesg | wc -l)
	if dmsetup create ${DEV}_k --table "$1" >/dev/null 2>&1; then
		dmsetup remove ${DEV}_k
		return 1
	fi
	dmesg | tail -n +$((n + 1)) | grep -- "$2" | sed 's/^/# /' | grep .
}

# snap <file> : what the device reads now.
snap() { dd if=/dev/mapper/$DEV of="$1" bs=1M iflag=direct status=none; }

# lone_raw : $DEV over $work/raw.img alone, made the way a user gets it: a
# raw base with ext4 and an overlay, merged by commit --active --pivot;
# then random data over the second half, where fio does not write.
lone_raw() {
	"$CHAINADM" remove $DEV >/dev/null 2>&1
	detach_loops "$work"
	rm -f "$work"/*.img "$work"/*.raw
	truncate -s $SIZE "$work/raw.img" &&
	"$CHAINADM" format -q --backing "$work/raw.img" --backing-type raw \
		"$work/sn1.img" &&
	"$CHAINADM" create $DEV "$work/sn1.img" >/dev/null &&
	mkfs.ext4 -q -F /dev/mapper/$DEV &&
	dd if=/dev/urandom of=/dev/mapper/$DEV bs=1M seek=16 count=16 \
	   oflag=direct status=none &&
	"$CHAINADM" commit $DEV --active --pivot --wait >/dev/null &&
	test "$(dev_layer_names $DEV)" = raw.img
}

# copy_then_end LABEL END COPY_ARGS... : the copy starts at 1 MiB/s (32 s),
# fio writes while it runs; once fio is done, the job goes unlimited and
# ends with job END (pivot or finish): the device then holds what the
# disk held at the end.  Status in copy_rc, fio_rc, end_rc.
copy_then_end() {
	local label=$1 end=$2 fio_pid
	shift 2
	fio_rand /dev/mapper/$DEV > "$work/fio.out" 2>&1 &
	fio_pid=$!
	"$CHAINADM" copy $DEV --bandwidth 1 "$@" > "$work/copy.out" 2>&1
	copy_rc=$?
	sed 's/^/# /' "$work/copy.out"
	[ $copy_rc = 0 ] && log "$label: $(job_field $DEV type) $(job_field $DEV phase) $(job_field $DEV done)"
	wait $fio_pid
	fio_rc=$?
	log "$label: fio: $(cut -d';' -f1-5 "$work/fio.out" | tail -1)"
	timeout 300 "$CHAINADM" job $DEV --bandwidth 0 --$end --wait \
		> "$work/end.out" 2>&1
	end_rc=$?
	sed 's/^/# /' "$work/end.out"
}

tap_plan 53

# ---- refused: shallow, and a size not in whole 4 KiB blocks
if lone_raw; then
	tap_ok "a lone raw device, from commit --active --pivot of raw.img + sn1.img"
else
	tap_fail "a lone raw device, from commit --active --pivot of raw.img + sn1.img"
fi
out=$("$CHAINADM" copy $DEV "$work/x.img" --shallow 2>&1)
rc=$?
log "$out"
tap_check "--shallow is refused: no layer below to stand on" \
	refused $rc "copy it in full" "$out"
tap_check "nothing was created" test ! -e "$work/x.img"
truncate -s $((MIB + 512)) "$work/odd.raw"
"$CHAINADM" create --layers --raw-base ${DEV}_odd "$work/odd.raw" >/dev/null 2>&1
out=$("$CHAINADM" copy ${DEV}_odd "$work/x.img" 2>&1)
rc=$?
log "$out"
tap_check "a raw device of 1 MiB + 512 bytes is refused: not whole 4 KiB blocks" \
	refused $rc "not a multiple of 4096" "$out"
# The kernel refuses the same, with what to do.
odd=$(losetup -j "$work/odd.raw" | cut -d: -f1 | head -n 1)
truncate -s $((2 * MIB)) "$work/k.raw"
kdest=$(losetup -f --show "$work/k.raw")
tap_check "the kernel refuses a copy of 1 MiB + 512 bytes of raw layer" \
	kernel_refuses "0 2049 chain 1 raw $odd 4 mirror $kdest raw full" \
	"needs a size that is a multiple of 4096"
tap_check "the kernel refuses a shallow copy of a lone raw layer" \
	kernel_refuses "0 2048 chain 1 raw $odd 4 mirror $kdest chain shallow" \
	"A shallow mirror needs a layer below the active one"
"$CHAINADM" remove ${DEV}_odd >/dev/null 2>&1
losetup -d "$kdest"

# ---- 1. to a new chain layer, --pivot, fio writing during the copy
L="to a chain layer, --pivot"
snap "$work/before"
fio_rand /dev/mapper/$DEV > "$work/fio.out" 2>&1 &
fio_pid=$!
"$CHAINADM" copy $DEV "$work/dest.img" --bandwidth 1 > "$work/copy.out" 2>&1
rc=$?
sed 's/^/# /' "$work/copy.out"
tap_check "$L: the copy starts (1 MiB/s)" test $rc = 0
tap_check "$L: the kernel runs a mirror job" \
	eval 'test "$(job_field $DEV type)" = mirror && wait_job_phase $DEV 30 running'
tap_check "$L: the job counts the whole disk, $SIZE bytes" \
	test "$(job_field $DEV total)" = $SIZE
"$CHAINADM" job $DEV > "$work/info.out" 2>&1
sed 's/^/# /' "$work/info.out"
tap_check "$L: chainadm job shows the copy, from raw.img to dest.img" \
	eval 'grep -q "^type: mirror" "$work/info.out" &&
	      grep -q "^top: .*raw.img" "$work/info.out" &&
	      grep -q "^destination: .*dest.img" "$work/info.out"'
tap_check "$L: the kernel refuses a stream message: only the copy runs" \
	eval '! dmsetup message $DEV 0 stream 2>/dev/null'
tap_check "$L: dest.img is marked copy-destination" \
	eval 'layer_flags "$work/dest.img" | grep -qw copy-destination'
out=$("$CHAINADM" create ${DEV}_x "$work/dest.img" 2>&1)
rc=$?
log "$out"
tap_check "$L: chainadm create refuses the half-copied dest.img" \
	refused $rc "unfinished destination of a copy" "$out"
out=$(dmsetup create ${DEV}_x --table "0 $((SIZE / 512)) chain 1 chain $(losetup -j "$work/dest.img" | cut -d: -f1)" 2>&1)
rc=$?
log "$out"
tap_check "$L: the kernel refuses dest.img as a chain layer" \
	test $rc != 0 -a ! -e /dev/mapper/${DEV}_x
dmsetup remove ${DEV}_x >/dev/null 2>&1
wait $fio_pid
fio_rc=$?
log "$L: fio: $(cut -d';' -f1-5 "$work/fio.out" | tail -1); the copy: $(job_field $DEV phase) $(job_field $DEV done)"
tap_check "$L: fio wrote and verified every block during the copy" test $fio_rc = 0
timeout 300 "$CHAINADM" job $DEV --bandwidth 0 --pivot --wait > "$work/pivot.out" 2>&1
rc=$?
sed 's/^/# /' "$work/pivot.out"
tap_check "$L: job --pivot --wait succeeds" test $rc = 0
tap_check "$L: the table is dest.img alone" test "$(dev_layer_names $DEV)" = dest.img
tap_check "$L: dest.img's mark is cleared" layer_clean "$work/dest.img"
snap "$work/after"
tap_check "$L: the untouched half reads as before" \
	cmp -s -i $((16 * MIB)) "$work/before" "$work/after"
tap_check "$L: raw.img is the disk of the pivot" cmp "$work/raw.img" "$work/after"
tap_check "$L: chainadm check dest.img" "$CHAINADM" check "$work/dest.img"
"$CHAINADM" remove $DEV
"$CHAINADM" create $DEV "$work/dest.img" >/dev/null
tap_check "$L: dest.img alone reads the disk byte for byte" \
	cmp /dev/mapper/$DEV "$work/after"
tap_check "$L: fio verifies its blocks through dest.img alone" \
	eval 'fio_rand /dev/mapper/$DEV --verify_only > "$work/fiov.out" 2>&1'
"$CHAINADM" remove $DEV

# ---- 2. into a raw file of garbage, --reuse-external, --finish
L="into a raw file of garbage, --finish"
if lone_raw && head -c $SIZE /dev/urandom > "$work/dest.raw"; then
	snap "$work/before"
	copy_then_end "$L" finish "$work/dest.raw" --raw --reuse-external
	tap_check "$L: copy --raw --reuse-external starts" test $copy_rc = 0
	tap_check "$L: fio wrote and verified every block during the copy" test $fio_rc = 0
	tap_check "$L: job --finish --wait succeeds" test $end_rc = 0
	tap_check "$L: the table is raw.img alone, no mirror" \
		eval 'test "$(dev_layer_names $DEV)" = raw.img &&
		      ! dmsetup table $DEV | grep -q mirror'
	snap "$work/after"
	tap_check "$L: dest.raw holds the disk of the finish" cmp "$work/dest.raw" "$work/after"
	tap_check "$L: dest.raw is the device's size" \
		test "$(stat -c %s "$work/dest.raw")" = $SIZE
	tap_check "$L: the untouched half reads as before" \
		cmp -s -i $((16 * MIB)) "$work/before" "$work/after"
	put_ok=0
	dd if=/dev/zero of=/dev/mapper/$DEV bs=1M count=1 seek=20 oflag=direct \
	   status=none && put_ok=1
	tap_check "$L: a write after the finish goes to raw.img only" \
		eval 'test $put_ok = 1 && ! cmp -s "$work/dest.raw" "$work/raw.img"'
else
	tap_fail "$L: prepare the lone raw device"
fi

# ---- 3. aborted into a prepared layer, then --reuse-external with 4 KiB clusters
L="into a prepared 4 KiB-cluster layer, --reuse-external"
if lone_raw && "$CHAINADM" format -q --size $SIZE --cluster-size 4K "$work/prep.img"; then
	"$CHAINADM" copy $DEV "$work/prep.img" --reuse-external --bandwidth 1 \
		> "$work/copy.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/copy.out"
	tap_check "$L: the first copy starts" test $rc = 0
	sleep 2
	tap_check "$L: job --abort" "$CHAINADM" job $DEV --abort
	tap_check "$L: the table is raw.img alone again" \
		eval 'test "$(dev_layer_names $DEV)" = raw.img &&
		      ! dmsetup table $DEV | grep -q mirror'
	tap_check "$L: the aborted prep.img keeps its copy-destination mark" \
		eval 'layer_flags "$work/prep.img" | grep -qw copy-destination'
	out=$("$CHAINADM" create ${DEV}_x "$work/prep.img" 2>&1)
	rc=$?
	tap_check "$L: chainadm create refuses it" \
		refused $rc "unfinished destination of a copy" "$out"
	"$CHAINADM" format -q --size $SIZE --cluster-size 4K "$work/c.img" &&
		"$CHAINADM" create ${DEV}_c "$work/c.img" >/dev/null
	out=$("$CHAINADM" copy ${DEV}_c "$work/prep.img" --reuse-external 2>&1)
	rc=$?
	log "$out"
	tap_check "$L: a copy of a chain device refuses it as its destination" \
		refused $rc "only a copy of a lone raw device takes it again" "$out"
	"$CHAINADM" remove ${DEV}_c >/dev/null 2>&1
	snap "$work/before"
	# fio at 100 writes/s (10 s) outlasts the copy at 8 MiB/s (4 s): the
	# pivot suspends the device under its writes.
	fio_rand /dev/mapper/$DEV --size=4M --rate_iops=100 > "$work/fio.out" 2>&1 &
	fio_pid=$!
	timeout 300 "$CHAINADM" copy $DEV "$work/prep.img" --reuse-external \
		--bandwidth 8 --pivot --wait > "$work/copy.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/copy.out"
	fio_running=0
	kill -0 $fio_pid 2>/dev/null && fio_running=1
	wait $fio_pid
	fio_rc=$?
	log "$L: fio: $(cut -d';' -f1-5 "$work/fio.out" | tail -1)"
	tap_check "$L: copy --reuse-external --pivot --wait succeeds" test $rc = 0
	tap_check "$L: fio was still writing after the pivot" test $fio_running = 1
	tap_check "$L: fio wrote and verified every block through the pivot" \
		test $fio_rc = 0
	tap_check "$L: the table is prep.img alone" \
		test "$(dev_layer_names $DEV)" = prep.img
	tap_check "$L: prep.img keeps 4 KiB clusters" \
		test "$(layer_json "$work/prep.img" cluster-size)" = 4096
	tap_check "$L: prep.img's mark is cleared" layer_clean "$work/prep.img"
	snap "$work/after"
	tap_check "$L: the untouched half reads as before" \
		cmp -s -i $((16 * MIB)) "$work/before" "$work/after"
	"$CHAINADM" remove $DEV
	"$CHAINADM" create $DEV "$work/prep.img" >/dev/null
	tap_check "$L: prep.img alone reads the disk byte for byte" \
		cmp /dev/mapper/$DEV "$work/after"
	"$CHAINADM" remove $DEV
else
	tap_fail "$L: prepare the lone raw device and prep.img"
fi

# ---- 4. to a new raw file, --pivot
L="to a new raw file, --pivot"
if lone_raw; then
	snap "$work/before"
	copy_then_end "$L" pivot "$work/new.raw" --raw
	tap_check "$L: copy --raw starts" test $copy_rc = 0
	tap_check "$L: fio wrote and verified every block during the copy" test $fio_rc = 0
	tap_check "$L: job --pivot --wait succeeds" test $end_rc = 0
	tap_check "$L: the table is new.raw alone, a raw layer" \
		eval 'test "$(dev_layer_names $DEV)" = new.raw &&
		      dmsetup table $DEV | grep -q " chain 1 raw "'
	snap "$work/after"
	tap_check "$L: new.raw holds the disk" cmp "$work/new.raw" "$work/after"
	tap_check "$L: raw.img is the disk of the pivot" cmp "$work/raw.img" "$work/after"
	tap_check "$L: the untouched half reads as before" \
		cmp -s -i $((16 * MIB)) "$work/before" "$work/after"
	"$CHAINADM" remove $DEV
else
	tap_fail "$L: prepare the lone raw device"
fi

tap_check "kernel log is clean" kmsg_check
tap_end
