#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Races whose window is a few instructions wide, made to happen every time
# by tests/kmod/chain-inject.ko (kretprobes in dm-chain: a busy hold at
# one point, or the slab failing dm-chain's mempools).  dm-chain itself has
# no test hooks.  The first two cases failed on the code before their fix:
#
#   walk    issue 16 item 4: the walk decides that cluster X needs no copy
#           (the source does not hold it) and is held there before it moves
#           its cursor past X; the guest writes X meanwhile (a first write:
#           the source now holds it) and the write completes.  A full copy
#           to a chain destination then gets ready and pivots: X must hold
#           the guest's data.  Before the fix the walk looked at X without
#           the job's lock, the write saw X at the cursor ("the walk will
#           copy it") and the walk passed X by: the pivoted disk lost it.
#           The fixed walk looks and moves under the lock, so the write
#           waits for the hold to end and is then copied.
#   flush   issue 15 item 1b: a commit is held after its header write (its
#           last flush) and before it records itself done; the guest writes
#           an owned cluster in place, then sends a FLUSH, which finds the
#           metadata dirty and queues for the worker.  Once the commit
#           ends, nothing is dirty: before the fix the FLUSH completed
#           without reaching the device.  dm-log-writes under the active
#           layer records what was flushed; replayed to a mark set after
#           the FLUSH returned, the layer must show the in-place write.
#   alloc   issue 15 item 6b: every slab allocation of dm-chain's mempools
#           fails, so cells and syncs come from the pools' reserves only,
#           while a stream (pull, 16 KiB clusters, up to 64 copies in
#           flight) runs beside guest writes that copy up.  The stream must
#           complete and the disk match the model.  Before the fix the cell
#           reserve was smaller than what a stream may hold; this case
#           passed there too (a full reserve only slows the copy-ups until
#           the stream's copies give cells back), so it guards the
#           reserves' forward progress rather than showing that bug.
. "$(dirname "$0")/../lib.sh"

jobs_begin pull blkdiscard
require_cmd sync dd
modprobe dm-log-writes 2>/dev/null
inject_load_module || die "cannot load tests/kmod/chain-inject.ko"
P=/sys/module/chain_inject/parameters
LWREPLAY=$CHAIN_ROOT/tests/progs/lw-replay
need_tools "$LWREPLAY"
tap_plan 9

# wait_held N SECS : the injector has begun N holds.
wait_held() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(cat $P/held)" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "# no hold after $2 s (held=$(cat $P/held))"
	return 1
}

# ---------------------------------------------------------------- walk
CS=65536
SIZE=$((8 << 20))
X=20
"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/base.img" &&
	truncate -s $SIZE "$work/model" &&
	"$CHAINADM" create $DEV "$work/base.img" >/dev/null &&
	write_ops /dev/mapper/$DEV "$work/model" base $CS d:0:8 d:40:8 ||
	die "walk: cannot build the chain"
held0=$(cat $P/held)
echo 4000 > $P/hold_ms
echo $X > $P/walk_vc
"$CHAINADM" copy $DEV "$work/dest.img" > "$work/copy.out" 2>&1 ||
	{ sed 's/^/# /' "$work/copy.out"; die "walk: chainadm copy failed"; }
if wait_held $((held0 + 1)) 60; then
	stamp_range /dev/mapper/$DEV "$work/model" late $((X * CS)) $CS
	tap_check "walk: the guest writes cluster $X while the walk is held past it" \
		test $? = 0
	echo 1 > $P/release
else
	echo -1 > $P/walk_vc
	tap_fail "walk: the guest writes cluster $X while the walk is held past it"
fi
timeout 300 "$CHAINADM" job $DEV --pivot --wait > "$work/pivot.out" 2>&1 ||
	sed 's/^/# /' "$work/pivot.out"
tap_check "walk: after ready and pivot, the disk matches the model (cluster $X too)" \
	cmp /dev/mapper/$DEV "$work/model"
"$CHAINADM" remove $DEV >/dev/null
tap_check "walk: the destination alone matches the model" \
	sh -c "'$CHAINADM' create $CHK '$work/dest.img' >/dev/null &&
	       cmp /dev/mapper/$CHK '$work/model'"
"$CHAINADM" remove $CHK >/dev/null
detach_loops "$work"
rm -f "$work"/*.img "$work/model"

# ---------------------------------------------------------------- flush
# Cluster A is owned by the layer (written and committed before the log
# starts); B is new, so its first write leaves the metadata dirty.
A=3
B=9
LW=${DEV}_lw
"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/top.img" &&
	truncate -s $SIZE "$work/model" &&
	"$CHAINADM" create $DEV "$work/top.img" >/dev/null &&
	write_ops /dev/mapper/$DEV "$work/model" early $CS d:$A:1 &&
	"$CHAINADM" remove $DEV >/dev/null &&
	cp --sparse=always "$work/top.img" "$work/replay.img" &&
	truncate -s 64M "$work/log.img" &&
	TLOOP=$(losetup -f --show "$work/top.img") &&
	LLOOP=$(losetup -f --show "$work/log.img") &&
	dmsetup create $LW --table "0 $(blockdev --getsz "$TLOOP") log-writes $TLOOP $LLOOP" &&
	dmsetup create $DEV --table "0 $((SIZE / 512)) chain 1 chain /dev/mapper/$LW" ||
	die "flush: cannot build the logged chain"
on_exit dmsetup remove $LW
held0=$(cat $P/held)
echo 6000 > $P/hold_ms
echo 1 > $P/commit_hold
stamp_range /dev/mapper/$DEV "$work/model" new $((B * CS)) $CS &&
	{ sync /dev/mapper/$DEV & } ||
	die "flush: cannot write cluster $B"
f1=$!
if wait_held $((held0 + 1)) 60; then
	stamp_range /dev/mapper/$DEV "$work/model" late $((A * CS)) $CS
	tap_check "flush: an in-place write to cluster $A while a commit is held" \
		test $? = 0
	sync /dev/mapper/$DEV &
	f2=$!
	sleep 1		# the FLUSH is queued behind the held commit
	echo 1 > $P/release
	wait $f1 $f2
else
	echo 0 > $P/commit_hold
	tap_fail "flush: an in-place write to cluster $A while a commit is held"
	wait $f1
fi
dmsetup message $LW 0 mark flushed
dmsetup remove $DEV && dmsetup remove $LW ||
	die "flush: cannot remove the logged chain"
RLOOP=$(losetup -f --show "$work/replay.img") &&
	"$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" --end-mark flushed \
		> "$work/replay.out" 2>&1 &&
	dmsetup create $CHK --table "0 $((SIZE / 512)) chain 1 chain $RLOOP"
tap_check "flush: the replayed log assembles" test $? = 0
tap_check "flush: what was flushed holds cluster $A's in-place write (and $B)" \
	cmp /dev/mapper/$CHK "$work/model"
dmsetup remove $CHK
losetup -d "$RLOOP" "$TLOOP" "$LLOOP"
rm -f "$work"/*.img "$work/model"

# ---------------------------------------------------------------- alloc
CS=16384
SIZE=$((16 << 20))
dd if=/dev/urandom of="$work/base.img" bs=1M count=16 status=none &&
	cp "$work/base.img" "$work/model" &&
	"$CHAINADM" format -q --cluster-size $CS --backing "$work/base.img" \
		--backing-type raw "$work/top.img" &&
	"$CHAINADM" create $DEV "$work/top.img" >/dev/null ||
	die "alloc: cannot build the chain"
failed0=$(cat $P/failed)
echo 1 > $P/fail_alloc
"$CHAINADM" pull $DEV > "$work/pull.out" 2>&1 ||
	{ sed 's/^/# /' "$work/pull.out"; echo 0 > $P/fail_alloc; die "alloc: chainadm pull failed"; }
# Partial writes (copy-ups) all over while the stream runs.
ok=1
for ((i = 0; i < 48; i++)); do
	c=$(((i * 331) % (SIZE / CS)))
	stamp_range /dev/mapper/$DEV "$work/model" g$i $((c * CS + 4096)) 4096 || ok=0
done
tap_check "alloc: guest copy-ups while every mempool allocation fails" test $ok = 1
wait_job_phase $DEV 120 completed
r=$?
failed=$(( $(cat $P/failed) - failed0 ))
echo 0 > $P/fail_alloc
log "alloc: $failed allocations failed"
tap_check "alloc: the stream completes on the pools' reserves ($failed failed allocations)" \
	test $r = 0 -a $failed -gt 0
wait_job_phase $DEV 120 completed >/dev/null
tap_check "alloc: the disk matches the model" cmp /dev/mapper/$DEV "$work/model"

tap_done
