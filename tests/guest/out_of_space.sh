#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A full active layer: with error_if_no_space a write that needs a new
# cluster fails with ENOSPC at once, writes in place still work, status
# says full and an event is raised; with queueing the write waits, the
# layer is grown (noflush suspend, bigger file, resume) and the write
# completes with its data intact; with a short timeout it fails after it.
# Freed clusters are reused: discarding and rewriting never runs out.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"

tap_plan 11
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/out_of_space.XXXXXX)
on_exit rm -rf "$work"
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
tap_done
