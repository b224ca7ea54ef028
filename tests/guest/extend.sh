#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Growing a full active layer with one command (chainadm extend), and
# before it is full (chainadm monitor), while fio writes with verify:
#
# 1. a file layer filled by fio until writes queue (status full), then
#    `chainadm extend --layer-size +SIZE` by hand: fio finishes without
#    an error and verifies, the rest of the disk is the base's, and the
#    data is still there after the device is assembled again;
# 2. the target's space event: one each time the used share crosses a
#    whole percent, so a monitor hears of a filling layer before it is
#    full; `chainadm monitor --at 50` on a file layer grows it at 50%,
#    with nothing full;
# 3. an LV layer on LVM with its default device scanning (the chain
#    device included), fio writing, and `chainadm monitor --run
#    'lvextend ...'` growing the LV as it fills: no write fails, the LV
#    grew, fio verifies, again after the device is assembled again;
# 4. what extend refuses: a lone raw device, a full LV that did not grow,
#    a file asked to shrink, a suspended device; monitor ends on a lone
#    raw device.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup fio lvcreate lvextend timeout

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
export LVM_SYSTEM_DIR=$CHAIN_ROOT/tests/lvm
mkdir -p /run/lock/lvm

tap_plan 24
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/extend.XXXXXX)
on_exit rm -rf "$work"
on_exit losetup -D
on_exit vgremove -qq -f vgx
on_exit dmsetup remove --retry ev
on_exit dmsetup remove --retry rawchain
on_exit dmsetup remove --retry lvchain
on_exit dmsetup remove --retry filechain
on_exit pkill -f "chainadm monitor"
cd "$work" || die "no work dir"

CL=65536
MiB=1048576
status_word() { dmsetup status "$1" | awk -v n="$(($2 + 3))" '{print $n}'; }
used() { status_word "$1" 3; }
space() { status_word "$1" 6; }
events() { dmsetup info -c --noheadings -o events "$1"; }
# refused <rc> <pattern> <output>: the command failed, saying pattern
refused() { [ "$1" != 0 ] && grep -q -- "$2" <<< "$3"; }
data_offset() { python3 "$CHAIN_ROOT/tests/layer-patch.py" "$1" --get data_offset; }

# fio_job <device> <size> [extra...]: sequential 64 KiB writes with a
# crc32c header in every block, read back and checked at the end.
fio_job() {
	local dev=$1 size=$2
	shift 2
	fio --name=fill --filename="$dev" --ioengine=libaio --direct=1 \
		--rw=write --bs=64k --iodepth=8 --size="$size" \
		--verify=crc32c --verify_fatal=1 --do_verify=1 \
		--output-format=terse "$@"
}

# fio_verified <device> <size> <log>: fio's blocks read back and checked
fio_verified() { fio_job "$1" "$2" --verify_only > "$3" 2>&1; }

# wait_for <seconds> <command...>: until the command succeeds
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}
space_is() { [ "$(space "$1")" = "$2" ]; }
size_is() { [ "$(stat -c %s "$1")" = "$2" ]; }

# ---- 1. a file layer, full, extended by hand
dd if=/dev/urandom of=base.img bs=1M count=128 status=none
$CHAINADM format -q --backing base.img --backing-type raw --layer-size 64M \
	top.img || die "format"
# Room for 8 MiB of data.
truncate -s $(($(data_offset top.img) + 8 * MiB)) top.img
$CHAINADM create --no-space-timeout 0 --layers --raw-base filechain \
	base.img top.img || die "create"
fio_job /dev/mapper/filechain 32M > fio1.out 2>&1 &
fio_pid=$!
tap_check "1 the layer fills up: writes queue, status says full" \
	wait_for 120 space_is filechain full
tap_check "1 fio waits, no write failed" kill -0 $fio_pid
$CHAINADM extend filechain --layer-size +40M > extend.out 2>&1
rc=$?
log "$(cat extend.out)"
tap_check "1 chainadm extend --layer-size +40M succeeds" test $rc = 0
wait $fio_pid
rc=$?
log "fio: $(cut -d';' -f1-5 fio1.out | tail -1)"
tap_check "1 fio wrote 32 MiB through the full layer and verified it" test $rc = 0
tap_check "1 the file grew by 40 MiB" \
	test "$(stat -c %s top.img)" = $(($(data_offset top.img) + 48 * MiB))
tap_check "1 status is ok again" test "$(space filechain)" = ok
tap_check "1 the rest of the disk is the base's" \
	cmp <(tail -c +$((32 * MiB + 1)) /dev/mapper/filechain) \
	<(tail -c +$((32 * MiB + 1)) base.img)
dmsetup remove filechain
$CHAINADM create filechain top.img > /dev/null || die "create again"
tap_check "1 assembled again, fio's data verifies" \
	fio_verified /dev/mapper/filechain 32M fio1v.out

# ---- 2. the space event, and monitor before the layer is full
dmsetup remove filechain
$CHAINADM format -q --backing base.img --backing-type raw --layer-size 64M \
	ev.img || die "format ev"
truncate -s $(($(data_offset ev.img) + 100 * CL)) ev.img
$CHAINADM create --layers --raw-base ev base.img ev.img || die "create ev"
before=$(events ev)
for c in $(seq 0 9); do	# 10 clusters of 100: 10 whole percents
	dd if=/dev/urandom of=/dev/mapper/ev bs=$CL seek=$c count=1 \
		oflag=direct status=none
	sleep 0.2
done
n=$(($(events ev) - before))
log "10 clusters of 100 written one by one: $n events, used $(used ev)"
tap_check "2 an event for each whole percent crossed (10, got $n)" test $n = 10
$CHAINADM monitor ev --at 50 --layer-size +2M > mon2.out 2>&1 &
mon=$!
sleep 1
for c in $(seq 10 54); do
	dd if=/dev/urandom of=/dev/mapper/ev bs=$CL seek=$c count=1 \
		oflag=direct status=none
	sleep 0.1
done
tap_check "2 monitor --at 50 grew the file by 2 MiB before it was full" \
	wait_for 60 size_is ev.img \
	$(($(data_offset ev.img) + 100 * CL + 2 * MiB))
log "$(cat mon2.out)"
tap_check "2 it acted at 50% with the layer not full" \
	grep -Eq "is 5[0-4]% used \(--at 50%\)$" mon2.out
tap_check "2 status is ok, 55 clusters used of 132" \
	test "$(space ev) $(used ev)" = "ok 55/132"
kill $mon
wait $mon 2>/dev/null
dmsetup remove ev

# ---- 3. an LV layer, monitor running lvextend while fio writes
truncate -s 1G pv.img
PV=$(losetup -f --show pv.img)
pvcreate -qq "$PV" && vgcreate -qq -s 4M vgx "$PV" &&
	lvcreate -qq -y -L 128M -n base vgx &&
	lvcreate -qq -y -L 8M -n top vgx || die "LVM setup"
dd if=base.img of=/dev/vgx/base bs=1M oflag=direct status=none
$CHAINADM format -q --backing /dev/vgx/base --backing-type raw /dev/vgx/top ||
	die "format the LV"
$CHAINADM create --no-space-timeout 0 --layers --raw-base lvchain \
	/dev/vgx/base /dev/vgx/top || die "create on LVs"
$CHAINADM monitor lvchain --at 70 --run 'lvextend -qq -L +16M vgx/top' \
	> mon3.out 2>&1 &
mon=$!
fio_job /dev/mapper/lvchain 96M > fio3.out 2>&1
rc=$?
log "fio: $(cut -d';' -f1-5 fio3.out | tail -1)"
tap_check "3 fio wrote 96 MiB through an 8 MiB LV and verified it" test $rc = 0
kill $mon
wait $mon 2>/dev/null
log "$(cat mon3.out)"
lv_mib=$(lvs --noheadings --units m --nosuffix -o lv_size vgx/top | tr -d ' ')
log "the LV is $lv_mib MiB, the chain uses $(used lvchain);" \
	"$(grep -c 'and full' mon3.out) of $(grep -c running mon3.out) rounds found it full"
tap_check "3 the monitor ran lvextend and extend" \
	grep -q "running lvextend" mon3.out
tap_check "3 the LV grew to hold what fio wrote" test "${lv_mib%.*}" -ge 104
tap_check "3 the rest of the disk is the base's" \
	cmp <(tail -c +$((96 * MiB + 1)) /dev/mapper/lvchain) \
	<(tail -c +$((96 * MiB + 1)) base.img)
dmsetup remove lvchain
$CHAINADM create --layers --raw-base lvchain /dev/vgx/base /dev/vgx/top \
	> /dev/null || die "create again on LVs"
tap_check "3 assembled again, fio's data verifies" \
	fio_verified /dev/mapper/lvchain 96M fio3v.out

# ---- 4. what extend refuses
dmsetup remove lvchain
lvcreate -qq -y -L 4M -n small vgx || die "a small LV"
$CHAINADM format -q --backing /dev/vgx/base --backing-type raw /dev/vgx/small ||
	die "format the small LV"
$CHAINADM create --error-if-no-space --layers --raw-base lvchain \
	/dev/vgx/base /dev/vgx/small > /dev/null || die "create on the small LV"
dd if=/dev/urandom of=/dev/mapper/lvchain bs=$CL count=64 oflag=direct \
	status=none 2> /dev/null
tap_check "4 the small LV is full" test "$(space lvchain)" = full
out=$($CHAINADM extend lvchain 2>&1)
rc=$?
log "$out"
tap_check "4 extend on a full LV that did not grow fails, saying to grow it" \
	refused $rc 'did not grow.*lvextend' "$out"
out=$($CHAINADM extend lvchain --layer-size +8M 2>&1)
rc=$?
log "$out"
tap_check "4 --layer-size +SIZE on an LV is refused, naming lvextend" \
	refused $rc 'lvextend -L +SIZE' "$out"
dmsetup remove lvchain
$CHAINADM create filechain top.img > /dev/null || die "create file again"
out=$($CHAINADM extend filechain --layer-size 1M 2>&1)
rc=$?
log "$out"
tap_check "4 a file is never shrunk" refused $rc 'would shrink' "$out"
dmsetup suspend filechain
out=$($CHAINADM extend filechain --layer-size +1M 2>&1)
rc=$?
dmsetup resume filechain
log "$out"
tap_check "4 a suspended device is refused, naming dmsetup resume" \
	refused $rc 'is suspended: resume it first (dmsetup resume' "$out"
dmsetup remove filechain
R=$(losetup -f --show base.img)
dmsetup create rawchain --table "0 $((128 * MiB / 512)) chain 1 raw $R" ||
	die "lone raw"
out=$($CHAINADM extend rawchain 2>&1)
rc=$?
log "$out"
tap_check "4 a lone raw device is refused" refused $rc 'one raw device' "$out"
out=$(timeout 20 $CHAINADM monitor rawchain 2>&1)
rc=$?
log "$out"
tap_check "4 monitor ends on a lone raw device with status 2" \
	refused $((rc == 2 ? 1 : 0)) 'one raw device' "$out"
dmsetup remove rawchain
tap_done
