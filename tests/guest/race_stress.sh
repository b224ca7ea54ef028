#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A freed host cluster must not be reused while I/O issued to it before the
# free is in flight (DESIGN.md, the correctness contract; dm-thin's deferred
# sets).  Writes and reads of clusters the active layer owns are remapped in
# map() without a cell, and so are partial discards and write-zeroes: a
# whole-cluster discard frees the host cluster under them.
#
# Deterministic part: the active layer sits on the test-only target "hold"
# (tests/kmod/dm-hold.c) over a loop device, which keeps one chosen bio in
# flight until told to release it.  4 KiB clusters.
#
#  W. Write A (owned, host h); hold the next write at h; an O_DIRECT write
#     W to A is remapped to h and held; discard A (whole cluster); flush, so
#     a commit frees h; write B whole (the allocator's first free cluster is
#     h); release W.  B must read B's data; A zeros or W's.
#  R. Likewise with a read of A held at h: after the free, the reuse by B and
#     the release, the read's buffer must hold A's old data or zeros, never B's.
#
# The steps between hold and release run in the background, each with a time
# limit: a fix may make one of them wait for the held bio, and the release
# comes after RACE_STEP_WAIT seconds at most then, so the test cannot hang.
#
# Random part: tests/progs/chain-race over a few clusters of a chain whose
# active layer is small (clusters churn through few host clusters): threads
# write stamped data (whole clusters, partial, crossing clusters), read and
# check, discard and write-zeroes whole and partial clusters, and flush,
# all on the same few clusters; after each round every sector must hold
# zeros, the initial stamps, or a stamp of a write to that very sector that
# is not older than an operation that completed before another began.
# The short form (make check) runs 10 rounds of 1 s; STRESS=1 (make stress)
# the long form, 300 rounds of 2 s; RACE_ROUNDS, RACE_SECS, RACE_THREADS,
# RACE_SEED and RACE_DELAY ("<percent> <max ms>" of bios dm-hold delays
# under the chain, "0 0" for none) override either (see README.md).
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup blkdiscard cmp dd grep awk sync

CHAINADM=$CHAIN_ROOT/userspace/chainadm
RACE=$CHAIN_ROOT/tests/progs/chain-race
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
[ -x "$RACE" ] || skip_all "tests/progs/chain-race not built"

if [ "${STRESS:-0}" = 1 ]; then
	RACE_ROUNDS=${RACE_ROUNDS:-300}
	RACE_SECS=${RACE_SECS:-2}
fi
RACE_ROUNDS=${RACE_ROUNDS:-10}
RACE_SECS=${RACE_SECS:-1}
RACE_SEED=${RACE_SEED:-$(date +%s)}
RACE_STEP_WAIT=${RACE_STEP_WAIT:-20}
RACE_DELAY=${RACE_DELAY:-15 300}	# percent of bios delayed, up to ms
RACE_THREADS=${RACE_THREADS:-8}

tap_plan 14
chain_load_module || die "cannot load dm-chain"
hold_load_module || die "cannot load dm-hold"
modprobe loop
kmsg_mark

work=$(mktemp -d /tmp/race_stress.XXXXXX)
on_exit rm -rf "$work"
on_exit detach_loops "$work"
on_exit dm_remove race_hold
on_exit dm_remove race
cd "$work" || die "no scratch"

CL=4096
CS=8			# sectors per cluster
VSIZE=$((1024 * 1024))
DEV=/dev/mapper/race

# pattern FILE TAG VCLUSTER : one cluster of sectors "TAG sector N", N the
# virtual sector, so a misplaced sector names where it belongs.
pattern() {
	awk -v t="$2" -v f=$(($3 * CS)) 'BEGIN {
		for (i = f; i < f + 8; i++) printf "%-511s\n", t " sector " i
	}' > "$1"
}

# stack LAYER_SIZE : a fresh one-layer chain $DEV over race_hold over a
# loop device on layer.img ($LOOP).
stack() {
	dm_remove race
	dm_remove race_hold
	detach_loops "$work"
	rm -f layer.img
	"$CHAINADM" format -q --size $VSIZE --cluster-size $CL \
		--layer-size "$1" layer.img || return 1
	LOOP=$(losetup -f --show layer.img) || return 1
	dmsetup create race_hold --table "0 $(dev_sectors "$LOOP") hold $LOOP 0" &&
	dmsetup create race --table "0 $((VSIZE / 512)) chain 1 chain /dev/mapper/race_hold"
}

wr() {	# wr VCLUSTER FILE : one whole cluster, direct
	dd if="$2" of=$DEV bs=$CL seek="$1" count=1 oflag=direct conv=notrunc status=none
}
rd() {	# rd VCLUSTER FILE : one cluster, direct
	dd if=$DEV of="$2" bs=$CL skip="$1" count=1 iflag=direct status=none
}
flush() { sync "$DEV"; }
is_zero() { cmp -s -n $CL "$1" /dev/zero; }
shows() { tr -s ' ' < "$1" | sort -u | head -n 3 | paste -sd '|'; }
held() { dmsetup status race_hold | awk '{print $4}'; }

# host_of TAG VCLUSTER : the host cluster of layer.img holding the first
# sector of pattern TAG VCLUSTER, or nothing.
host_of() {
	grep -obaF "$1 sector $(($2 * CS)) " layer.img | head -n 1 |
		awk -F: -v cl=$CL '{ print int($1 / cl) }'
}

# wait_held N SECS : until race_hold holds N bios.
wait_held() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(held)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# steps_then_release NAME CMD... : run CMD (the steps that free and reuse
# the held bio's cluster) in the background; release the held bio when it
# is done, or after RACE_STEP_WAIT seconds.  0 if the steps finished before
# the release and all succeeded.
steps_then_release() {
	local name=$1 pid i rc=0 late=0
	shift
	"$@" > "$name.steps" 2>&1 &
	pid=$!
	for ((i = 0; i < RACE_STEP_WAIT * 10; i++)); do
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 $pid 2>/dev/null; then
		log "$name: the steps did not finish with the bio held; releasing it"
		late=1
	fi
	dmsetup message race_hold 0 release
	wait $pid || rc=$?
	sed 's/^/# /' "$name.steps"
	[ $rc = 0 ] && [ $late = 0 ]
}

# ---- W: a held write to a freed and reused cluster

variant_w_steps() {
	blkdiscard -o $((10 * CL)) -l $CL $DEV && flush && wr 20 B && flush
}

variant_w() {
	local h pid ok=0 b a
	pattern A A 10; pattern W W 10; pattern B B 20
	stack 256K || return 1
	wr 10 A && flush || return 1
	h=$(host_of A 10)
	log "W: cluster A (10) is at host cluster $h"
	[ -n "$h" ] || return 1
	dmsetup message race_hold 0 arm $((h * CS)) write || return 1
	wr 10 W &
	pid=$!
	wait_held 1 10 || { log "W: the write to A was not held at $h"; return 1; }
	steps_then_release W variant_w_steps || ok=1
	wait $pid || { log "W: the held write failed"; ok=1; }
	log "W: B's data (20) is intact at host cluster: $(host_of B 20)${h:+ (A was at $h)}"
	rd 20 b.out && rd 10 a.out || return 1
	cmp -s b.out B || log "W: B shows: $(shows b.out)"
	tap_check "W: B reads its own data after a held write to the freed cluster" \
		cmp -s b.out B
	cmp -s a.out W || is_zero a.out || log "W: A shows: $(shows a.out)"
	tap_check "W: A reads zeros or W" eval "cmp -s a.out W || is_zero a.out"
	return $ok
}

# ---- R: a held read of a freed and reused cluster

variant_r_steps() {
	blkdiscard -o $((30 * CL)) -l $CL $DEV && flush && wr 40 Q && flush
}

variant_r() {
	local h pid ok=0
	pattern R R 30; pattern Q Q 40
	stack 256K || return 1
	wr 30 R && flush || return 1
	h=$(host_of R 30)
	log "R: cluster A (30) is at host cluster $h"
	[ -n "$h" ] || return 1
	dmsetup message race_hold 0 arm $((h * CS)) read || return 1
	rd 30 r.out &
	pid=$!
	wait_held 1 10 || { log "R: the read of A was not held at $h"; return 1; }
	steps_then_release R variant_r_steps || ok=1
	wait $pid || { log "R: the held read failed"; ok=1; }
	log "R: B (40) is at host cluster $(host_of Q 40)"
	cmp -s r.out R || is_zero r.out || log "R: the read shows: $(shows r.out)"
	tap_check "R: a held read returns A's old data or zeros" \
		eval "cmp -s r.out R || is_zero r.out"
	rd 40 q.out || return 1
	tap_check "R: B reads its own data" cmp -s q.out Q
	return $ok
}

# run_variant NAME : its two data checks (failed if it stopped before
# them), then whether its steps ran to the end without waiting.
run_variant() {
	local n=$_tap_n rc
	"variant_${1,,}"
	rc=$?
	while [ $((_tap_n - n)) -lt 2 ]; do
		tap_fail "$1: data checks" "the variant stopped before its checks"
	done
	tap_check "$1: no step waited for the held bio, none failed" test $rc = 0
}

t0=$(date +%s)
run_variant W
run_variant R
log "the held-bio variants took $(($(date +%s) - t0)) s"
tap_check "dm-hold: nothing left held" test "$(held)" = 0
dm_remove race
tap_check "chainadm check after the held-bio variants" "$CHAINADM" check -q layer.img

# ---- the random stress

NCL=${RACE_CLUSTERS:-4}	# clusters under stress
stack $(((4 + 3 * NCL) * CL)) || die "cannot build the stress chain"
# Bios complete out of order under the chain, as on a disk with a queue.
# shellcheck disable=SC2086
dmsetup message race_hold 0 delay $RACE_DELAY || die "cannot set delays"
log "chain-race: seed $RACE_SEED, $RACE_ROUNDS rounds of $RACE_SECS s, $NCL clusters, $RACE_THREADS threads, delays $RACE_DELAY"
start=$(date +%s)
"$RACE" --dev $DEV --clusters $NCL --cluster-size $CL --first 16 \
	--rounds "$RACE_ROUNDS" --secs "$RACE_SECS" --seed "$RACE_SEED" \
	--threads "$RACE_THREADS" > race.log 2>&1
rc=$?
sed 's/^/# /' race.log | tail -n 40
log "chain-race took $(($(date +%s) - start)) s"
tap_check "chain-race: every sector holds its own stamp after every round" test $rc = 0
tap_check "chain-race: it ran all its rounds" grep -q "rounds done: $RACE_ROUNDS" race.log
tap_check "chain-race: every operation kind ran" \
	grep -q "ops: .*write [1-9].*read [1-9].*discard [1-9].*zero [1-9].*flush [1-9]" race.log
dmsetup status race_hold | sed 's/^/# race_hold: /'
tap_check "dm-hold passed every stress bio through" \
	sh -c "dmsetup message race_hold 0 delay 0 0 && sleep 1 &&
	       dmsetup status race_hold | awk '{ exit \$4 + \$7 != 0 }'"
dm_remove race
tap_check "chainadm check after the stress" "$CHAINADM" check -q layer.img
tap_check "kernel log is clean" kmsg_check
tap_done
