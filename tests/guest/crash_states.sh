#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Crash-state exploration (CrashMonkey's idea) over dm-log-writes logs: a
# power cut may lose any subset of the writes since the last completed
# flush, in any order, so for every flush epoch (or common mark) we check
# many states: everything durable plus none, all, each single write
# dropped (small epochs) and K seeded random subsets of the epoch's writes
# (tests/progs/lw-explore.c explains the model and what a log can tell).
# At every state: a read-only chain over the state's layers assembles,
# `chainadm check` is clean on its chain layers, and chain-stamp finds
# every virtual sector showing its last flushed content or a later write
# to that same sector (lw-explore's built-in check: dm ioctls, a
# "chain-stamp serve" coprocess, chainadm check per new metadata state).
#
# Two segments, each with its own logs:
#
#  shared  One dm-log-writes device over one disk, cut into dm-linear
#          slices for every layer (base, l1, l2, l3, dest), so one log
#          holds every layer's writes in their true order and the epoch
#          model is exact.  4 KiB clusters, a 4 MiB virtual disk
#          (CRASH_MIB), a raw stamped base.  Workload, each step with chain-stamp's
#          concurrent writer running (3 writer threads on disjoint
#          slices: new clusters, copy-ups, whole-cluster DISCARDs and
#          WRITE_ZEROES that free host clusters for reuse; a flusher
#          thread doing fdatasync back to back, mark flush-K after each):
#            base <- l1                       writes
#            snapshot l2 (chainadm snapshot)  writes
#            pull (stream l1 into l2)         writes during the job
#            snapshot l3                      writes
#            commit l2 into base              writes during the job
#            copy --shallow to dest, pivot    writes during the job
#            active commit into base, pivot   writes during the job
#          Marks begin-X/phase-X around every table change tell the check
#          which chain to assemble (old or new inside the change).
#          A shared disk hides a missing flush of one layer (flushing any
#          slice flushes them all), hence:
#
#  split   One log per written device: the raw base and the active layer
#          each on its own dm-log-writes device, every flush-K mark sent
#          to both (a common crash instant; lw-explore's mark mode).  The
#          active layer is filled, an active commit reaches ready, then
#          the guest writes (mostly into clusters the active layer already
#          holds) with an fdatasync and a mark after each write.
#
# Size: CRASH_STATES (default 1000) states at least in all, three quarters for
# shared, a quarter for split; lw-explore picks K per point to reach them.
# `make stress` sets CRASH_STATES=50000.  CRASH_SEED=N replays a run (the
# seed is printed; split uses N+1).  CRASH_KEEP_GOING=1 checks every state
# even after a failure (to count them, or to time a full run).  CRASH_KEEP=DIR keeps logs, journals
# and outputs (not the images) for debugging.  A segment stops at its
# first failing state, which is printed with its epoch and the entries
# that were dropped.
#
# Cost under TCG: see README.md (Tests, crash states).
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup blockdev

PROGS=$CHAIN_ROOT/tests/progs
STAMP=$PROGS/chain-stamp
EXPLORE=$PROGS/lw-explore
CHAINADM=$CHAIN_ROOT/userspace/chainadm

STATES=${CRASH_STATES:-1000}
# The shared segment's writer op counts, in percent: an eighth in the
# short form (most of its states are the fixed ones: none, all, each
# single write; the split segment keeps its 210 writes), in full for the
# long form.
OPS_PCT=${CRASH_OPS_PCT:-$((STATES < 5000 ? 12 : 100))}
KEEP_GOING=${CRASH_KEEP_GOING:+1}
SEED=${CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
CS=4096
VSIZE=$((${CRASH_MIB:-4} << 20))
VSECT=$((VSIZE / 512))
LSIZE=$((VSIZE + (1 << 20)))	# a chain layer's slice: header, table, data
P=cst$$

modprobe dm-log-writes 2>/dev/null
dmsetup targets 2>/dev/null | grep -qw log-writes ||
	skip_all "dm-log-writes target not available"

tap_plan 6
kmsg_mark
need_tools "$STAMP" "$EXPLORE" "$CHAINADM"
tap_load_module
log "seed $SEED (CRASH_SEED=$SEED replays), $STATES states"

W=$(mktemp -d /tmp/crash_states.XXXXXX) || die "mktemp failed"
on_exit "rm -rf $W"
[ -n "${CRASH_KEEP:-}" ] &&
	on_exit "mkdir -p $CRASH_KEEP && find $W -type f ! -name '*.img' -exec cp --parents {} $CRASH_KEEP/ ';'"

# attach VAR FILE [losetup options]: a loop device, detached at exit.
attach() {
	local var=$1 file=$2 dev
	shift 2
	dev=$(losetup -f --show "$@" "$file") || return 1
	on_exit "losetup -d $dev"
	printf -v "$var" '%s' "$dev"
}

brief() { head -n "${2:-6}" "$1" | tr '\n' ' ' | sed 's/ *$//'; }

# stamp_threads DIR DEV OPS LOG...: chain-stamp's concurrent writer on DEV,
# journal DIR/journal, mark flush-K on every LOG device after each flush.
stamp_threads() {
	local dir=$1 dev=$2 ops=$3 runs
	shift 3
	runs=$(cat "$dir/journal" 2>/dev/null | grep -c '^run ')
	"$STAMP" write --dev "$dev" --journal "$dir/journal" --size $VSIZE \
		--ops $((ops * OPS_PCT / 100)) --seed $((SEED + runs)) --cluster $CS \
		--max-len 16K --threads 3 --discard-pct 12 --zero-pct 4 \
		--mark-cmd "$EXPLORE --mark flush-%d $*"
}

mark() { "$EXPLORE" --mark "$2" "$1"; }

# explore DIR TARGET SEED PHASE0 -- LW-EXPLORE ARGS: lw-explore with its
# built-in chain check (DIR/tables), summary into DIR/explore.out.
explore() {
	local dir=$1 target=$2 seed=$3 phase0=$4
	shift 4
	"$EXPLORE" "$@" --seed "$seed" --states "$target" ${KEEP_GOING:+--keep-going} \
		--tables "$dir/tables" --phase0 "$phase0" --dm-name "$P-chk" \
		--chainadm "$CHAINADM" --stamp-server "$STAMP serve --journal \
$dir/journal --size $VSIZE --initial stamped" >"$dir/explore.out" 2>&1
}

# meta_bytes LAYER: what chainadm check reads of a layer: its headers,
# table and table map, everything before the data area.
meta_bytes() {
	python3 "$CHAIN_ROOT/tests/layer-patch.py" "$1" --get data_offset 2>/dev/null ||
		echo 65536
}

# geom_meta_bytes: the same for a chain layer of this test's geometry,
# from the format's layout rules.  The shared segment's slices hold
# nothing valid (zeros, garbage) in the replay image until the log formats
# them: asking the image gave 0 bytes (then 4 GiB of garbage), and a
# hash of 0 bytes let chainadm check run once per table, not once per
# metadata state.
geom_meta_bytes() {
	local tbl=$(( (VSIZE / CS * 8 + 4095) / 4096 * 4096 ))
	local map=$(( (tbl / 4096 + 32767) / 32768 * 4096 ))
	echo $(( (8192 + tbl + map + CS - 1) / CS * CS ))
}

# report_explore NAME DIR RC: the TAP line for one segment's exploration.
report_explore() {
	local name=$1 dir=$2 rc=$3 sum
	sed 's/^/# /' "$dir/explore.out" | grep -v '^# lw-explore: log ' | head -n 40
	sum=$(grep -E '^lw-explore: [0-9]+ states' "$dir/explore.out")
	grep -q '^# no table' "$dir/explore.out" &&
		dmesg | grep 'device-mapper: table' | tail -n 3 | sed 's/^/# /'
	if [ "$rc" = 0 ]; then
		tap_ok "$name: every crash state assembles, checks clean, shows flushed data (${sum#lw-explore: })"
	else
		tap_fail "$name: every crash state assembles, checks clean, shows flushed data" \
			"${sum:-lw-explore exit $rc}"
	fi
}

# ------------------------------------------------------------ shared

# Slices of the one logged disk: name, offset, size.
SLICES="base:0:$VSIZE l1:$VSIZE:$LSIZE l2:$((VSIZE + LSIZE)):$LSIZE"
SLICES="$SLICES l3:$((VSIZE + 2 * LSIZE)):$LSIZE dest:$((VSIZE + 3 * LSIZE)):$LSIZE"
DISK=$((VSIZE + 4 * LSIZE))

# garbage_slices IMG: random bytes over the metadata area of every chain
# layer's slice, as a reused LV holds.  chainadm format clears only the
# table map, so a table block is garbage until its first commit writes it
# whole; a map bit that became durable before its block would show the
# garbage to some crash state (an invalid entry, or another cluster's
# data), which a table block of zeros would hide.
garbage_slices() {
	local s name off size
	for s in $SLICES; do
		IFS=: read -r name off size <<< "$s"
		[ "$name" = base ] && continue
		dd if=/dev/urandom of="$1" bs=64k count=1 seek=$((off / 65536)) \
			conv=notrunc status=none || return 1
	done
}

shared_workload() {
	local d=$W/shared dev=/dev/mapper/$P-dev lw=$P-lw s name off size bg
	# The base is stamped before the log starts, through a loop of its own.
	truncate -s $DISK "$d/disk.img" && truncate -s 512M "$d/log.img" &&
	attach BL "$d/disk.img" --sizelimit $VSIZE &&
	"$STAMP" fill --dev "$BL" --size $VSIZE >/dev/null &&
	losetup -d "$BL" && garbage_slices "$d/disk.img" &&
	cp --sparse=always "$d/disk.img" "$d/replay.img" &&
	attach DL "$d/disk.img" && attach LL "$d/log.img" || return 1
	on_exit "dm_remove $lw"
	dmsetup create $lw --table "0 $((DISK / 512)) log-writes $DL $LL" || return 1
	for s in $SLICES; do
		IFS=: read -r name off size <<< "$s"
		on_exit "dm_remove $P-$name"
		dmsetup create $P-$name --table \
			"0 $((size / 512)) linear /dev/mapper/$lw $((off / 512))" || return 1
	done
	local m=/dev/mapper/$P
	"$CHAINADM" format -q --cluster-size $CS --backing $m-base \
		--backing-type raw $m-l1 || return 1
	on_exit "dm_remove $P-dev"
	"$CHAINADM" create --layers --raw-base $P-dev $m-base $m-l1 >/dev/null &&
		mark $lw phase-start || return 1

	step() {	# step NAME CMD...: a table change or job with writes beside it
		local name=$1 rc
		shift
		stamp_threads "$d" $dev 300 $lw & bg=$!
		mark $lw begin-$name
		"$@" > "$d/$name.out" 2>&1
		rc=$?
		mark $lw phase-$name
		wait $bg || { echo "writer during $name failed"; return 1; }
		[ $rc = 0 ] || { echo "$name failed: $(brief "$d/$name.out")"; return 1; }
		echo "$name: ok"
	}
	stamp_threads "$d" $dev 400 $lw || return 1
	step snap "$CHAINADM" snapshot $P-dev $m-l2 || return 1
	step pull "$CHAINADM" pull $P-dev --base $m-base --wait || return 1
	step snap2 "$CHAINADM" snapshot $P-dev $m-l3 || return 1
	step commit "$CHAINADM" commit $P-dev --top $m-l2 --base $m-base --wait || return 1
	step copy "$CHAINADM" copy $P-dev $m-dest --shallow --pivot --wait || return 1
	step active "$CHAINADM" commit $P-dev --active --pivot --wait || return 1
	stamp_threads "$d" $dev 200 $lw || return 1
	dmsetup remove $P-dev || return 1
	for s in $SLICES; do dmsetup remove $P-${s%%:*} || return 1; done
	dmsetup remove $lw
}

shared_tables() {
	local d=$W/shared s name off size
	for s in $SLICES; do
		IFS=: read -r name off size <<< "$s"
		attach "R_$name" "$d/replay.img" -r -o "$off" --sizelimit "$size" ||
			return 1
	done
	local b=$R_base c="0 $VSECT chain" bw="1 bandwidth:1"
	cat > "$d/tables" <<-EOF
	start|$R_l1|$c 2 raw $b $R_l1 $bw
	snap|$R_l1 $R_l2|$c 3 raw $b $R_l1 $R_l2 $bw
	pull|$R_l2|$c 2 raw $b $R_l2 $bw
	snap2|$R_l2 $R_l3|$c 3 raw $b $R_l2 $R_l3 $bw
	commit|$R_l3|$c 2 raw $b $R_l3 $bw
	commit|$R_l3 $R_dest|$c 2 raw $b $R_l3 5 mirror $R_dest chain shallow bandwidth:1
	copy|$R_dest|$c 2 raw $b $R_dest $bw
	active||$c 1 raw $b
	EOF
}

mkdir -p "$W/shared" "$W/split"
t0=$SECONDS
if shared_workload > "$W/shared/workload.out" 2>&1; then
	n=$(grep -c '^ack ' "$W/shared/journal")
	tap_ok "shared: workload on one logged disk: $n writes/discards/zeroes, snapshot, pull, commit, copy, active commit, $((VSIZE >> 20)) MiB disk, $((CS / 1024)) KiB clusters ($((SECONDS - t0)) s)"
	t0=$SECONDS
	if shared_tables; then
		explore "$W/shared" $((STATES * 3 / 4)) "$SEED" none \
			--meta-bytes "$(geom_meta_bytes)" \
			--log "$LL" --replay "$W/shared/replay.img"
		rc=$?
	else
		echo "cannot attach the replay slices" > "$W/shared/explore.out"
		rc=2
	fi
	report_explore shared "$W/shared" $rc
	log "shared: exploration took $((SECONDS - t0)) s"
else
	tap_fail "shared: workload" "$(brief "$W/shared/workload.out" 10)"
	tap_fail "shared: exploration" "not run"
fi

# ------------------------------------------------------------ split

split_workload() {
	local d=$W/split dev=/dev/mapper/$P-sdev lb=$P-lwb lt=$P-lwt
	truncate -s $VSIZE "$d/base.img" &&
	truncate -s 256M "$d/logb.img" && truncate -s 256M "$d/logt.img" &&
	attach SB "$d/base.img" &&
	attach SLB "$d/logb.img" && attach SLT "$d/logt.img" &&
	"$STAMP" fill --dev "$SB" --size $VSIZE >/dev/null &&
	"$CHAINADM" format -q --cluster-size $CS --backing "$d/base.img" \
		--backing-type raw "$d/top.img" && attach ST "$d/top.img" &&
	cp --sparse=always "$d/base.img" "$d/rbase.img" &&
	cp --sparse=always "$d/top.img" "$d/rtop.img" || return 1
	on_exit "dm_remove $lb"
	on_exit "dm_remove $lt"
	on_exit "dm_remove $P-sdev"
	dmsetup create $lb --table "0 $((VSIZE / 512)) log-writes $SB $SLB" &&
	dmsetup create $lt --table "0 $(blockdev --getsz "$ST") log-writes $ST $SLT" &&
	dmsetup create $P-sdev --table \
		"0 $VSECT chain 2 raw /dev/mapper/$lb /dev/mapper/$lt" || return 1
	# The active layer holds about half the disk, flushed.
	"$STAMP" write --dev $dev --journal "$d/journal" --size $VSIZE \
		--ops 150 --seed "$SEED" --cluster $CS --max-len 64K \
		--flush-every 10 --mark-cmd "$EXPLORE --mark flush-%d $lb $lt" ||
		return 1
	dmsetup message $P-sdev 0 commit 1 0 &&
		wait_job_phase $P-sdev 300 ready || return 1
	echo "active commit ready"
	# Ready: every write to both sides, a flush and a mark after each.
	"$STAMP" write --dev $dev --journal "$d/journal" --size $VSIZE \
		--ops 60 --seed $((SEED + 1)) --cluster $CS --max-len 16K \
		--flush-every 1 --mark-cmd "$EXPLORE --mark flush-%d $lb $lt" ||
		return 1
	dmsetup message $P-sdev 0 job cancel && dmsetup remove $P-sdev &&
		dmsetup remove $lt && dmsetup remove $lb
}

t0=$SECONDS
if split_workload > "$W/split/workload.out" 2>&1; then
	n=$(grep -c '^ack ' "$W/split/journal")
	tap_ok "split: active commit ready, base and active layer on separate logs: $n writes, a flush after each ($((SECONDS - t0)) s)"
	t0=$SECONDS
	if attach RB "$W/split/rbase.img" -r && attach RT "$W/split/rtop.img" -r; then
		echo "split|$RT|0 $VSECT chain 2 raw $RB $RT 1 bandwidth:1" > "$W/split/tables"
		explore "$W/split" $((STATES - STATES * 3 / 4)) $((SEED + 1)) split \
			--meta-bytes "$(meta_bytes "$RT")" \
			--log "$SLT" --replay "$W/split/rtop.img" \
			--log "$SLB" --replay "$W/split/rbase.img"
		rc=$?
	else
		echo "cannot attach the replay files" > "$W/split/explore.out"
		rc=2
	fi
	report_explore split "$W/split" $rc
	log "split: exploration took $((SECONDS - t0)) s"
else
	tap_fail "split: workload" "$(brief "$W/split/workload.out" 10)"
	tap_fail "split: exploration" "not run"
fi

tap_check "kernel log clean" kmsg_check
tap_done
