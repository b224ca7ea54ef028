#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A full active layer: with error_if_no_space a write that needs a new
# cluster fails with ENOSPC at once, writes in place still work, status
# says full and an event is raised; with queueing the write waits, the
# layer is grown (noflush suspend, bigger file, resume) and the write
# completes with its data intact; with a short timeout it fails after it.
# Freed clusters are reused: discarding and rewriting never runs out.
# A suspend never waits on writes that wait for space: a write that
# reaches the worker after presuspend (held behind a slow commit here) is
# handed back to dm core by a noflush suspend and completes after the
# layer grew.  A whole-cluster first write that fails gives its new host
# cluster back: the layer still holds as many clusters as it has room for.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup timeout sync

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"

tap_plan 16
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/out_of_space.XXXXXX)
on_exit rm -rf "$work"
on_exit dmsetup remove oos-lower
on_exit dmsetup remove full
on_exit losetup -D
cd "$work" || die "no work dir"

CL=65536
dd if=/dev/urandom of=base.img bs=1M count=8 status=none
# Room for four data clusters only.
$CHAINADM format -q --backing base.img --backing-type raw top.img || die "format"
data=$(python3 "$CHAIN_ROOT/tests/layer-patch.py" top.img --get data_offset)
truncate -s $((data + 4 * CL)) top.img
B=$(losetup -r -f --show base.img)
T=$(losetup -f --show top.img)

wr() {	# wr <cluster> <file>: one whole cluster, direct
	dd if="$2" of=/dev/mapper/full bs=$CL seek="$1" count=1 \
		oflag=direct conv=notrunc status=none
}
events() { dmsetup info -c --noheadings -o events full; }

for i in 0 1 2 3 4; do
	dd if=/dev/urandom of="c$i" bs=$CL count=1 status=none
done

# ---- error_if_no_space
dmsetup create full --table "0 16384 chain 2 raw $B $T 1 error_if_no_space" ||
	die "create"
for i in 0 1 2 3; do wr "$i" "c$i"; done
ev=$(events)
out=$(wr 4 c4 2>&1)
rc=$?
log "fifth cluster: $out"
tap_check "error_if_no_space: a write needing a fifth cluster fails" test $rc != 0
tap_check "error_if_no_space: the error is ENOSPC" \
	sh -c "echo '$out' | grep -q 'No space left'"
tap_check "status says full" sh -c "dmsetup status full | awk '{exit \$9 != \"full\"}'"
tap_check "an event was raised" test "$(events)" -gt "$ev"
tap_check "writes in place still work" wr 1 c4
dd if=/dev/mapper/full of=got bs=$CL skip=1 count=1 iflag=direct status=none
tap_check "and read back" cmp got c4

# ---- freed clusters are reused
blkdiscard -o 0 -l $((4 * CL)) /dev/mapper/full
ok=1
for round in 1 2 3; do
	for i in 0 1 2 3; do wr "$((i + 4))" "c$i" || ok=0; done
	blkdiscard -o $((4 * CL)) -l $((4 * CL)) /dev/mapper/full || ok=0
done
tap_check "discarded clusters are reused: three rounds of rewrite fit" test $ok = 1
dmsetup remove full

# ---- queue, then grow
dmsetup create full --table "0 16384 chain 2 raw $B $T" || die "create queue"
for i in 0 1 2 3; do wr "$i" "c$i"; done
wr 4 c4 &
writer=$!
sleep 3
tap_check "queueing: the write waits while the layer is full" \
	kill -0 $writer
truncate -s $((data + 16 * CL)) top.img
losetup -c "$T"
dmsetup suspend --noflush full && dmsetup resume full
wait $writer
tap_check "after growing the layer the queued write completes" test $? = 0
dd if=/dev/mapper/full of=got bs=$CL skip=4 count=1 iflag=direct status=none
tap_check "with its data" cmp got c4
dmsetup remove full

# ---- queue with a timeout
truncate -s $((data + 5 * CL)) top.img
losetup -c "$T"
dmsetup create full --table "0 16384 chain 2 raw $B $T 1 no_space_timeout:2" ||
	die "create timeout"
wr 5 c0 2>/dev/null
start=$(date +%s)
wr 6 c1 2>/dev/null
rc=$?
log "timed-out write returned $rc after $(($(date +%s) - start)) s"
tap_check "no_space_timeout: the queued write fails after the timeout" test $rc != 0
dmsetup remove full

# ---- a suspend does not wait on a write parked after presuspend
# The active layer sits on dm-delay: writes and flushes take 2 s, so the
# worker is inside a commit (for the sync) when the fifth cluster's write
# arrives, and it meets the full layer only after presuspend.
$CHAINADM format -q --backing base.img --backing-type raw top2.img || die "format top2"
truncate -s $((data + 4 * CL)) top2.img
T2=$(losetup -f --show top2.img)
lower() {	# lower <table>: (re)load the device under the active layer
	if dmsetup info oos-lower >/dev/null 2>&1; then
		dmsetup suspend oos-lower && dmsetup load oos-lower --table "$1" &&
			dmsetup resume oos-lower
	else
		dmsetup create oos-lower --table "$1"
	fi
}
t2sz=$(blockdev --getsz "$T2")
lower "0 $t2sz delay $T2 0 0 $T2 0 2000" || die "delay"
dmsetup create full --table "0 16384 chain 2 raw $B /dev/mapper/oos-lower 1 no_space_timeout:30" ||
	die "create over delay"
for i in 0 1 2 3; do wr "$i" "c$i"; done
sync /dev/mapper/full &
syncer=$!
sleep 0.5
wr 4 c4 &
writer=$!
sleep 0.5
start=$(date +%s)
timeout 20 dmsetup suspend --noflush full
rc=$?
log "noflush suspend returned $rc after $(($(date +%s) - start)) s"
tap_check "a noflush suspend completes while a write waits for space" test $rc = 0
wait $syncer
truncate -s $((data + 16 * CL)) top2.img
losetup -c "$T2"
t2sz=$(blockdev --getsz "$T2")
lower "0 $t2sz linear $T2 0" || die "linear"
dmsetup resume full
wait $writer
tap_check "the write handed back completes after resume on the grown layer" test $? = 0
dd if=/dev/mapper/full of=got bs=$CL skip=4 count=1 iflag=direct status=none
tap_check "with its data" cmp got c4
dmsetup remove full

# ---- a failed first write gives its cluster back
# The next host cluster is the first of the data area (append-only):
# fail exactly that range under the active layer, write, heal, then the
# layer must still take four clusters.
$CHAINADM format -q --backing base.img --backing-type raw top3.img || die "format top3"
truncate -s $((data + 4 * CL)) top3.img
T3=$(losetup -f --show top3.img)
t3sz=$(blockdev --getsz "$T3")
d=$((data / 512))
c=$((CL / 512))
lower "0 $t3sz linear $T3 0" || die "linear top3"
dmsetup create full --table "0 16384 chain 2 raw $B /dev/mapper/oos-lower 1 error_if_no_space" ||
	die "create over linear"
lower "0 $d linear $T3 0
$d $c error
$((d + c)) $((t3sz - d - c)) linear $T3 $((d + c))" || die "error segment"
wr 0 c0 2>/dev/null
tap_check "the first write to the failing host cluster fails" test $? != 0
lower "0 $t3sz linear $T3 0" || die "heal"
ok=1
for i in 0 1 2 3; do wr "$i" "c$i" || ok=0; done
for i in 0 1 2 3; do
	dd if=/dev/mapper/full of=got bs=$CL skip="$i" count=1 iflag=direct status=none
	cmp -s got "c$i" || ok=0
done
tap_check "after it the layer still holds four clusters, each with its data" test $ok = 1
tap_done
