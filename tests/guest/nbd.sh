#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# dm-chain over network block storage (issue 20): qemu-nbd in the guest,
# on loopback, stands for a storage server.
#   1. A golden raw image exported read-only is the shared base of two
#      chain devices at once, each over its own NBD connection (two
#      hosts) with a local overlay, both listed _netdev in a chaintab and
#      brought up by chainadm assemble --all --netdev; fio writes to both,
#      each reads the golden image plus its own writes, the image stays
#      as it was.
#   2. A writable export is the destination of a full raw copy with
#      --pivot while fio writes (storage migration to another host), seen
#      through a dm-linear "path" device.  The server is killed mid-copy:
#      the copy fails cleanly (chainadm exit 4, job failed, last error
#      named), fio's writes to the device all succeed, the chain is kept.
#      The server restarted, a new NBD connection put under the path
#      device, chainadm job --resume and --pivot finish the copy: the
#      device runs on the export and reads what it read, fio verifies,
#      and the server's file is the disk.
. "$(dirname "$0")/../lib.sh"

jobs_begin copy fio qemu-nbd nbd-client ip
tap_plan 14
MIB=$((1 << 20))
SIZE=$((64 * MIB))
export CHAINADM_CHAINTAB=$work/chaintab
ip link set lo up || die "no loopback"
modprobe nbd nbds_max=8 || skip_all "no nbd module"
on_exit 'pkill -f "qemu-nbd .*dm-chain-test" ; sleep 0.5'
for n in 0 1 2 3; do on_exit nbd-client -d /dev/nbd$n; done
on_exit dmsetup remove --retry nbdpath
for d in hosta hostb; do on_exit "$CHAINADM" remove $d; done

# serve PORT NAME FILE [qemu-nbd options] : an export on loopback; the
# description marks it as this test's (for the cleanup's pkill).
serve() {
	local port=$1 name=$2 file=$3
	shift 3
	qemu-nbd -f raw -x "$name" -D dm-chain-test -t --shared=4 \
		--bind 127.0.0.1 -p "$port" "$@" "$file" &
	for _ in $(seq 50); do
		nbd-client -l 127.0.0.1 "$port" 2>/dev/null | grep -q "^$name" && return 0
		sleep 0.1
	done
	return 1
}
# connect PORT NAME DEV [-R] : an NBD connection, the size checked.  The
# 10 s request timeout matters: without one a request in flight when the
# server dies waits forever, and during a copy a guest write waits on the
# destination too.
connect() {
	nbd-client -N "$2" 127.0.0.1 "$1" "$3" -b 4096 -t 10 ${4:+"$4"} >/dev/null 2>&1 &&
	test "$(blockdev --getsize64 "$3")" -gt 0
}
fio_rand() {	# fio_rand DEV SEED MIB [extra...] : 4 KiB blocks, crc32c
	local dev=$1 seed=$2 mib=$3
	shift 3
	fio --name=rand --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=randwrite --bs=4k --iodepth=4 --size="${mib}M" --randseed="$seed" \
		--verify=crc32c --verify_fatal=1 --verify_state_save=0 \
		--output-format=terse "$@"
}

# ---- 1. a read-only golden image, two hosts' overlays over it
head -c $SIZE /dev/urandom > "$work/golden.raw"
golden_sum=$(sha256sum < "$work/golden.raw")
serve 10809 golden "$work/golden.raw" --read-only || die "qemu-nbd golden"
connect 10809 golden /dev/nbd0 -R && connect 10809 golden /dev/nbd1 -R ||
	die "nbd-client golden"
"$CHAINADM" format -q --backing /dev/nbd0 --backing-type raw "$work/a.img" &&
"$CHAINADM" format -q --backing /dev/nbd1 --backing-type raw "$work/b.img" ||
	die "format the overlays"
printf 'hosta %s _netdev\nhostb %s _netdev\n' "$work/a.img" "$work/b.img" > "$CHAINADM_CHAINTAB"
out=$("$CHAINADM" assemble --all 2>&1)
tap_check "assemble --all leaves the _netdev lines alone" \
	eval 'test ! -e /dev/mapper/hosta -a ! -e /dev/mapper/hostb' || echo "$out" | sed 's/^/# /'
tap_check "assemble --all --netdev brings up both hosts' devices over the shared base" \
	eval '"$CHAINADM" assemble --all --netdev > "$work/out" 2>&1 &&
	      cmp /dev/mapper/hosta "$work/golden.raw" && cmp /dev/mapper/hostb "$work/golden.raw"' ||
	sed 's/^/# /' "$work/out"
fio_rand /dev/mapper/hosta 1 8 > "$work/fa.out" 2>&1 &
fa=$!
fio_rand /dev/mapper/hostb 2 8 --offset=32M > "$work/fb.out" 2>&1
fb_rc=$?
wait $fa
fa_rc=$?
tap_check "fio writes to both at once and verifies" test $fa_rc = 0 -a $fb_rc = 0
tap_check "each reads the golden image outside its own writes" \
	eval 'cmp -i $((8 * MIB)) /dev/mapper/hosta "$work/golden.raw" &&
	      cmp -n $((32 * MIB)) /dev/mapper/hostb "$work/golden.raw" &&
	      cmp -i $((40 * MIB)) /dev/mapper/hostb "$work/golden.raw"'
tap_check "the golden image on the server is unchanged" \
	test "$(sha256sum < "$work/golden.raw")" = "$golden_sum"
"$CHAINADM" remove hostb && nbd-client -d /dev/nbd1 >/dev/null

# ---- 2. storage migration of hosta onto a writable export
truncate -s $SIZE "$work/dest.raw"
serve 10810 dest "$work/dest.raw" || die "qemu-nbd dest"
connect 10810 dest /dev/nbd2 || die "nbd-client dest"
dmsetup create nbdpath --table "0 $((SIZE >> 9)) linear /dev/nbd2 0" || die "path device"
fio_rand /dev/mapper/hosta 3 4 --rate=512k > "$work/fio1.out" 2>&1 &
fio_pid=$!
"$CHAINADM" copy hosta /dev/mapper/nbdpath --raw --reuse-external --pivot \
	--wait --bandwidth 2M > "$work/copy1.out" 2>&1 &
copy_pid=$!
sleep 4
pkill -9 -f "qemu-nbd .* -p 10810 "
wait $copy_pid
copy_rc=$?
tap_check "the server killed mid-copy: chainadm copy fails (exit 4), naming the failure" \
	eval 'test $copy_rc = 4 && grep -qi "fail" "$work/copy1.out"' ||
	sed 's/^/# /' "$work/copy1.out"
tap_check "... the job is failed, with the write error as its last error" \
	eval 'test "$(job_field hosta phase)" = failed && test "$(job_field hosta last_error)" != -'
wait $fio_pid
fio_rc=$?
tap_check "... fio's writes to the device all succeeded and verify: the chain is kept" \
	eval 'test $fio_rc = 0 && test "$(dev_layer_names hosta)" = "nbd0 a.img"' ||
	tail -3 "$work/fio1.out" | sed 's/^/# /'
snap=$work/snap
dd if=/dev/mapper/hosta of="$snap" bs=1M iflag=direct status=none
serve 10810 dest "$work/dest.raw" || die "qemu-nbd dest again"
connect 10810 dest /dev/nbd3 || die "nbd-client dest again"
dmsetup suspend nbdpath && dmsetup load nbdpath --table "0 $((SIZE >> 9)) linear /dev/nbd3 0" &&
	dmsetup resume nbdpath || die "re-point the path device"
nbd-client -d /dev/nbd2 >/dev/null
tap_check "the server back, a new connection under the path device: job --resume" \
	eval '"$CHAINADM" job hosta --resume && "$CHAINADM" job hosta --bandwidth 8M'
fio_rand /dev/mapper/hosta 4 4 --offset=40M --rate=512k > "$work/fio2.out" 2>&1 &
fio_pid=$!
"$CHAINADM" job hosta --pivot --wait > "$work/pivot.out" 2>&1
pivot_rc=$?
wait $fio_pid
fio_rc=$?
dd if=/dev/mapper/hosta of="$snap" bs=1M skip=40 seek=40 count=4 iflag=direct \
   conv=notrunc status=none
tap_check "... the copy finishes and pivots: the device runs on the export" \
	eval 'test $pivot_rc = 0 && test "$(dev_layer_names hosta)" = nbdpath' ||
	sed 's/^/# /' "$work/pivot.out"
tap_check "... fio verified its writes through the resumed copy and the pivot" \
	test $fio_rc = 0
tap_check "... the device reads what it read before, plus fio's writes" \
	cmp /dev/mapper/hosta "$snap"
"$CHAINADM" remove hosta
tap_check "the server's file is the disk, whole" cmp "$work/dest.raw" "$snap"
tap_check "the kernel log is clean" kmsg_check
tap_done
