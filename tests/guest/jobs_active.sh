#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Jobs with two phases (active commit, copy) under a guest that never stops
# writing.  Chain base <- sn1 <- cur, 16 MiB, 64 KiB clusters, stamped
# layers; fio owns 8..12 MiB of the disk and writes it at full speed in
# rounds (random writes of 4 KiB to 256 KiB, so some cross clusters and
# are in flight when a job starts; crc32c verify of every block,
# verify_backlog during the writes and a full verify at the end of a
# round), from before
# the job starts until after it ended; the rest of the disk must keep the
# reference file's bytes.  Each case on a fresh chain:
#
#   A1 commit --active --pivot --wait (base: the bottom) -> base
#   A2 commit --active --base sn1 --wait, READY, job --pivot -> base <- sn1
#   B  commit --active --keep-overlay --wait          -> the chain as it was
#   C  copy dest.img --wait, READY, job --pivot        -> dest (full, no backing)
#   D  copy --shallow --reuse-external --pivot --wait  -> base <- sn1 <- dest
#   E  copy --raw --pivot --wait                       -> dest.raw alone, raw
#   F  copy --raw --reuse-external (random bytes) --wait, READY, fio stops,
#      job --finish: the guest stays on the old chain; dest.raw equals the
#      disk of that moment (a dd right after finishing), and later writes
#      do not reach it
#   G  copy dest.img --wait, READY, job --abort        -> the chain as it was
#
# Checked every time: fio finds every block it wrote (no lost or torn
# write across READY and the table swap); READY (the --wait return) comes
# while fio is still writing; the table afterwards; the area fio does not
# own is the reference's; which layers are invalidated and which stay
# valid (and pass chainadm check); and the layers the device stands on
# afterwards, re-created from their files, show exactly the bytes of the
# device once fio stopped (dd).
. "$(dirname "$0")/../lib.sh"

jobs_begin copy blkdiscard fio
on_exit fio_kill

CS=65536
SIZE=$((16 << 20))
FIO_OFF=$((8 << 20))
FIO_LEN=$((4 << 20))
FIO_END=$((FIO_OFF + FIO_LEN))
JOB_TIMEOUT=300
LAYERS=(base sn1 cur)
OPS=(
	"d:0:96 d:128:16 d:200:8"
	"d:32:32 z:70:2 p:80:8:4 d:150:10 d:204:2"
	"d:48:8 p:90:0:4 d:180:4 d:220:4 x:0:1"
)

# ---- fio in rounds until told to stop

FIO_PID=
fio_start() {
	rm -f "$work/fio.stop" "$work/fio.rc" "$work/fio.pid"
	(
		n=0 rc=0
		while [ ! -e "$work/fio.stop" ]; do
			fio --name=round$n --filename=/dev/mapper/$DEV \
				--ioengine=libaio --direct=1 --rw=randwrite --bsrange=4k-256k \
				--iodepth=8 --offset=$FIO_OFF --size=$FIO_LEN \
				--verify=crc32c --verify_fatal=1 --do_verify=1 \
				--verify_backlog=64 --verify_state_save=0 \
				--randrepeat=0 --output="$work/fio.out" &
			echo $! > "$work/fio.pid"
			wait $!
			rc=$?
			[ $rc = 0 ] || { cp "$work/fio.out" "$work/fio.failed"; break; }
			n=$((n + 1))
		done
		echo "$rc $n" > "$work/fio.rc"
	) &
	FIO_PID=$!
	wait_written
}

fio_running() { [ -n "$FIO_PID" ] && [ ! -e "$work/fio.rc" ] && kill -0 "$FIO_PID" 2>/dev/null; }

# fio_stop : let the current round finish (it verifies what it wrote);
# 0 when every round passed.
fio_stop() {
	local rc n
	touch "$work/fio.stop"
	wait "$FIO_PID"
	FIO_PID=
	read -r rc n < "$work/fio.rc"
	log "fio: $n rounds, status $rc"
	[ -f "$work/fio.failed" ] && grep -E "err=|verify|bad" "$work/fio.failed" | head -20 | sed 's/^/# /'
	[ "$rc" = 0 ] && [ "$n" -ge 1 ]
}

fio_kill() {
	[ -n "$FIO_PID" ] || return 0
	touch "$work/fio.stop"
	[ -f "$work/fio.pid" ] && kill "$(cat "$work/fio.pid")" 2>/dev/null
	wait "$FIO_PID" 2>/dev/null
	FIO_PID=
}

# Sectors written to the device so far (field 7 of its stat file).
written() {
	local minor
	minor=$(dmsetup info -c --noheadings -o minor $DEV | tr -d ' ')
	awk '{print $7}' "/sys/block/dm-$minor/stat"
}

# Return once fio's writes reach the device.
wait_written() {
	local before i
	before=$(written)
	for ((i = 0; i < 300; i++)); do
		[ "$(written)" != "$before" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- chain and checks

# fresh : the device over the saved chain, no destination file, fio stopped.
fresh() {
	fio_kill
	rm -f "$work/after"
	stack_fresh cur
}

# static_same A B : A and B agree outside fio's area.
static_same() { cmp -n $FIO_OFF "$1" "$2" && cmp -i $FIO_END "$1" "$2"; }

# start LABEL : a fresh chain with fio writing to it.
start() {
	fresh || { tap_fail "$1: create the device"; return 1; }
	fio_start || { tap_fail "$1: fio does not write"; return 1; }
}

# job LABEL CMD... : run a chainadm job command (bounded), one TAP line.
job() {
	local label=$1 rc
	shift
	timeout $JOB_TIMEOUT "$CHAINADM" "$@" > "$work/job.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/job.out"
	tap_check "$label: chainadm $* succeeds" test $rc = 0
	return $rc
}

# ready LABEL : the job is READY, fio still writes, and READY holds for two
# seconds of writes at full speed.
ready() {
	tap_check "$1: READY while fio writes" \
		eval 'test "$(job_field $DEV phase)" = ready && fio_running'
	sleep 2
	tap_check "$1: still READY two seconds later, fio still writing" \
		eval 'test "$(job_field $DEV phase)" = ready && fio_running'
}

# finish LABEL TABLE : stop fio (sleep first so that it writes on the new
# table), take the reference image, check the table, remove the device.
finish() {
	# shellcheck disable=SC2034	# seen by the eval in tap_check
	local want=$2

	sleep 1
	tap_check "$1: fio verified every block it wrote" fio_stop
	dd if=/dev/mapper/$DEV of="$work/after" bs=1M iflag=direct status=none
	tap_check "$1: the table is '$2', no mirror, no job running" \
		eval 'test "$(dev_layer_names $DEV)" = "$want" &&
		      ! dmsetup table $DEV | grep -qw mirror &&
		      ! echo "$(job_field $DEV phase)" | grep -qE "running|ready"'
	tap_check "$1: outside fio's area the disk is the reference" \
		static_same "$work/after" "$work/model"
	"$CHAINADM" remove $DEV
}

# flags LABEL INVALIDATED_FILES... -- VALID_FILES... : the first are marked
# invalidated, the others are valid (no flag, no job record) and pass check.
flags() {
	local label=$1 ok=1 f mode=inv inv=() val=()
	shift
	for f in "$@"; do
		[ "$f" = -- ] && { mode=ok; continue; }
		if [ $mode = inv ]; then
			inv+=("$f")
			layer_invalidated "$work/$f" && continue
		else
			val+=("$f")
			layer_clean "$work/$f" &&
			"$CHAINADM" check "$work/$f" > "$work/check.out" 2>&1 &&
				continue
			sed 's/^/# /' "$work/check.out"
		fi
		log "$f: flags '$(layer_flags "$work/$f")', job $(layer_json "$work/$f" job)"
		ok=0
	done
	tap_check "$label: invalidated: ${inv[*]:-none}; valid: ${val[*]:-none}" \
		test $ok = 1
}

# recreate LABEL CREATE_ARGS... : the device from its files shows the
# bytes taken once fio stopped.
recreate() {
	local label=$1
	shift
	"$CHAINADM" create $DEV "$@" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/after"
	tap_check "$label: re-created from the files, exactly the final bytes" test $? = 0
	"$CHAINADM" remove $DEV >/dev/null 2>&1
}

stack_build || die "cannot build base <- sn1 <- cur"
tap_ok "the chain base <- sn1 <- cur shows the reference's bytes"

# ---- A1: active commit into the bottom, pivot in one command

L="A1 active commit --pivot"
if start "$L"; then
	job "$L" commit $DEV --active --pivot --wait --verbose
	tap_check "$L: fio was still writing when the pivot returned" fio_running
	finish "$L" "base.img"
	flags "$L" sn1.img cur.img -- base.img
	recreate "$L" "$work/base.img"
fi

# ---- A2: active commit into sn1, READY, then job --pivot

L="A2 active commit to sn1"
if start "$L"; then
	if job "$L" commit $DEV --active --base "$work/sn1.img" --wait; then
		ready "$L"
		job "$L" job $DEV --pivot
	fi
	finish "$L" "base.img sn1.img"
	flags "$L" cur.img -- base.img sn1.img
	recreate "$L" "$work/sn1.img"
fi

# ---- B: active commit, keep the overlay

L="B active commit --keep-overlay"
if start "$L"; then
	job "$L" commit $DEV --active --keep-overlay --wait
	tap_check "$L: fio was still writing when the job ended" fio_running
	finish "$L" "base.img sn1.img cur.img"
	flags "$L" -- base.img sn1.img cur.img
	recreate "$L" "$work/cur.img"
fi

# ---- C: full copy to a new chain layer, READY, job --pivot

L="C copy full"
if start "$L"; then
	if job "$L" copy $DEV "$work/dest.img" --wait; then
		ready "$L"
		job "$L" job $DEV --pivot
	fi
	finish "$L" "dest.img"
	tap_check "$L: dest.img has no backing" \
		test "$(layer_json "$work/dest.img" backing-type)" = none
	flags "$L" -- base.img sn1.img cur.img dest.img
	recreate "$L" "$work/dest.img"
	# The old chain is the point-in-time image of the pivot.
	"$CHAINADM" create $CHK "$work/cur.img" >/dev/null &&
	static_same /dev/mapper/$CHK "$work/model"
	tap_check "$L: the old chain still assembles, its static area intact" test $? = 0
	"$CHAINADM" remove $CHK >/dev/null 2>&1
fi

# ---- D: shallow copy to a layer prepared by the user

L="D copy --shallow --reuse-external"
if start "$L"; then
	"$CHAINADM" format -q --backing "$work/sn1.img" "$work/dest.img" ||
		tap_fail "$L: format dest.img over sn1.img"
	job "$L" copy $DEV "$work/dest.img" --shallow --reuse-external --pivot --wait
	tap_check "$L: fio was still writing when the pivot returned" fio_running
	finish "$L" "base.img sn1.img dest.img"
	tap_check "$L: dest.img's backing is sn1" \
		test "$(layer_json "$work/dest.img" backing-uuid)" = \
		     "$(layer_json "$work/sn1.img" uuid)"
	flags "$L" -- base.img sn1.img cur.img dest.img
	recreate "$L" "$work/dest.img"
fi

# ---- E: full copy to a raw file, pivot

L="E copy --raw"
if start "$L"; then
	job "$L" copy $DEV "$work/dest.raw" --raw --pivot --wait
	tap_check "$L: fio was still writing when the pivot returned" fio_running
	finish "$L" "dest.raw"
	tap_check "$L: dest.raw holds exactly the final bytes" \
		cmp "$work/dest.raw" "$work/after"
	flags "$L" -- base.img sn1.img cur.img
	recreate "$L" --layers --raw-base "$work/dest.raw"
fi

# ---- F: copy to a raw file full of random bytes, finish

L="F copy --finish"
if fresh && dd if=/dev/urandom of="$work/dest.raw" bs=1M \
		count=$((SIZE >> 20)) status=none && fio_start; then
	if job "$L" copy $DEV "$work/dest.raw" --raw --reuse-external --wait; then
		ready "$L"
	fi
	tap_check "$L: fio verified every block it wrote" fio_stop
	job "$L" job $DEV --finish
	dd if=/dev/mapper/$DEV of="$work/after" bs=1M iflag=direct status=none
	tap_check "$L: dest.raw is the disk at the moment of finishing" \
		cmp "$work/dest.raw" "$work/after"
	tap_check "$L: the guest stays on 'base.img sn1.img cur.img', no mirror" \
		eval 'test "$(dev_layer_names $DEV)" = "base.img sn1.img cur.img" &&
		      ! dmsetup table $DEV | grep -qw mirror'
	sha256sum "$work/dest.raw" > "$work/sums"
	stamp_range /dev/mapper/$DEV "$work/after" later 0 $((4 * CS)) &&
	cmp /dev/mapper/$DEV "$work/after" &&
	sha256sum --quiet -c "$work/sums"
	tap_check "$L: writes after finishing reach the device, not dest.raw" test $? = 0
	"$CHAINADM" remove $DEV
	flags "$L" -- base.img sn1.img cur.img
	recreate "$L" "$work/cur.img"
else
	tap_fail "$L: create the device and start fio"
fi

# ---- G: copy, READY, abort

L="G copy --abort"
if start "$L"; then
	if job "$L" copy $DEV "$work/dest.img" --wait; then
		ready "$L"
		job "$L" job $DEV --abort
	fi
	finish "$L" "base.img sn1.img cur.img"
	flags "$L" -- base.img sn1.img cur.img
	recreate "$L" "$work/cur.img"
fi

tap_check "kernel log is clean" kmsg_check
tap_end
