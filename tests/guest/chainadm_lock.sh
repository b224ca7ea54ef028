#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# One chainadm operation per device at a time (chainadm(8), LOCKING), under
# a writer that never stops: a Python loop writing stamped 4 KiB to 64 KiB
# runs with O_DIRECT at random places of the 8 MiB disk, and the same
# bytes into a model file.  Real chainadm commands run at once on one
# device:
#
#   A  snapshot + snapshot, three rounds
#   B  snapshot + commit --wait (intermediate)
#   C  snapshot + commit --active --pivot --wait
#   D  snapshot + copy --finish --wait
#   E  an active commit kept running at 1 MiB/s: job --pivot and snapshot
#      are refused, naming the job; then two job --pivot --wait at once
#   F  remove + snapshot (the writer stopped: an open device is not removed)
#   G  --nowait names the command holding the device's lock (one stalled
#      with CHAINADM_TEST_STALL=locked), a command without it waits for
#      the lock; a layer's lock taken through another path to its file
#
# After each case: every command either succeeded with its effect in the
# final table, or failed with a message that says why (never a bare ioctl
# error); an overlay reported taken is in the table or was committed (its
# header invalidated), never formatted and left out; a failed snapshot
# leaves no file; the writer saw no I/O error and the device equals the
# model byte for byte.
. "$(dirname "$0")/../lib.sh"

jobs_begin snapshot python3

SIZE=$((8 << 20))
CS=65536
WRITER=
PIDS=()
on_exit writer_kill

# ---- the writer and its model

cat > "$work/writer.py" <<'EOF'
import mmap, os, random, sys, time

dev, model, stop, started = sys.argv[1:5]
seed, size = int(sys.argv[5]), int(sys.argv[6])
BS = 4096
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
mfd = os.open(model, os.O_WRONLY)
buf = mmap.mmap(-1, 16 * BS)	# page-aligned, as O_DIRECT wants
rng = random.Random(seed)
n = 0
while not os.path.exists(stop):
    count = rng.choice((1, 1, 2, 4, 16))
    first = rng.randrange(size // BS - count + 1)
    data = b"".join(("writer %d write %d block %d" % (seed, n, first + i))
                    .encode().ljust(BS - 1) + b"\n" for i in range(count))
    buf[:len(data)] = data
    os.pwrite(fd, memoryview(buf)[:len(data)], first * BS)
    os.pwrite(mfd, data, first * BS)
    n += 1
    if n == 1:
        open(started, "w").close()
    time.sleep(0.01)	# leave the two vCPUs to the commands
print("%d writes" % n)
EOF

seed=0
writer_start() {
	rm -f "$work/stop" "$work/started"
	seed=$((seed + 1))
	python3 "$work/writer.py" "/dev/mapper/$DEV" "$work/model" "$work/stop" \
		"$work/started" $seed $SIZE > "$work/writer.log" 2>&1 &
	WRITER=$!
	local end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ] && kill -0 $WRITER 2>/dev/null; do
		[ -e "$work/started" ] && return 0
		sleep 0.1
	done
	sed 's/^/# writer: /' "$work/writer.log"
	return 1
}

writer_running() { [ -n "$WRITER" ] && kill -0 $WRITER 2>/dev/null; }

# writer_stop : 0 when the writer ran to the stop without an error.
writer_stop() {
	local rc
	touch "$work/stop"
	wait $WRITER
	rc=$?
	WRITER=
	sed 's/^/# writer: /' "$work/writer.log"
	return $rc
}

writer_kill() {
	[ -n "$WRITER" ] || return 0
	touch "$work/stop"
	wait $WRITER
}

same_as_model() {
	cmp <(dd if="/dev/mapper/$DEV" bs=1M iflag=direct status=none) "$work/model"
}

# end_case LABEL : the writer stops; no I/O error, the device is the model.
end_case() {
	tap_check "$1: the writer saw no I/O error" writer_stop
	tap_check "$1: the device equals the model byte for byte" same_as_model
	log "$1: $((SECONDS - t_case)) s"
	t_case=$SECONDS
}

# ---- commands at once

# run NAME CMD... : chainadm CMD in the background; output in $work/NAME.out,
# exit status in $work/NAME.rc.
run() {
	local name=$1
	shift
	rm -f "$work/$name.rc"
	(
		t0=$SECONDS
		timeout 300 "$CHAINADM" "$@" > "$work/$name.out" 2>&1
		echo $? > "$work/$name.rc"
		echo "$t0 $SECONDS" > "$work/$name.time"
	) &
	PIDS+=($!)
}

wait_runs() {
	wait "${PIDS[@]}"
	PIDS=()
}

# Shell builtins where it is cheap: under TCG, with the writer and the
# commands busy, every process the checks start costs up to a second.
rc_of() {
	local rc=none
	[ -f "$work/$1.rc" ] && read -r rc < "$work/$1.rc"
	echo "$rc"
}

show() {
	local n t0 t1 line
	for n; do
		t0='' t1=''
		[ -f "$work/$n.time" ] && read -r t0 t1 < "$work/$n.time"
		echo "# $n: exit $(rc_of "$n")${t0:+ (ran from $t0 to $t1 s)}"
		while IFS= read -r line; do
			echo "#   $line"
		done < "$work/$n.out"
	done
}

# The basenames of the device's layers, bottom first.
layers() {
	local f names=()
	while read -r f; do
		names+=("${f##*/}")
	done < <("$CHAINADM" status --json -o name,file "$DEV" |
		 jq -r '.chaindevices[0].children[].file')
	echo "${names[*]}"
}

in_table() { [[ " $(layers) " == *" $1 "* ]]; }

# A failure that says why: refused during a job, the device or the job
# gone (ended by another command); never only a device-mapper ioctl error.
said_why() {
	grep -qE 'no snapshot during a block job|no such device-mapper device|one job at a time|is gone: ended by another chainadm|has no block job' "$1" &&
		! grep -q 'ioctl' "$1"
}

# snap_sound RUN FILE : the snapshot run RUN said it took FILE and FILE is
# in the table or was committed into a lower layer; or it failed saying
# why and left no FILE.
snap_sound() {
	local run=$1 f=$work/$2
	if [ "$(rc_of "$run")" = 0 ]; then
		grep -q "new active layer $f" "$work/$run.out" || return 1
		in_table "$2" && return 0
		[ -e "$f" ] && layer_invalidated "$f" && return 0
		log "$run: $2 reported taken, but it is neither in the table ($(layers)) nor committed"
		return 1
	fi
	said_why "$work/$run.out" || { log "$run: failed without saying why"; return 1; }
	[ ! -e "$f" ] || { log "$run: failed, but left $2 behind"; return 1; }
}

# ---- the device: base <- sn1

"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/base.img" &&
truncate -s $SIZE "$work/model" &&
"$CHAINADM" create "$DEV" "$work/base.img" >/dev/null &&
stamp_range "/dev/mapper/$DEV" "$work/model" base 0 $((2 << 20)) &&
"$CHAINADM" snapshot "$DEV" "$work/sn1.img" >/dev/null &&
stamp_range "/dev/mapper/$DEV" "$work/model" sn1 $((4 << 20)) $((1 << 20)) ||
	die "cannot build base <- sn1"
tap_check "base <- sn1 shows the model" same_as_model
t_case=$SECONDS

# ---- A: snapshot + snapshot, three rounds

L="A snapshot + snapshot"
if writer_start; then
	ok=1 taken=0
	for r in 1 2 3; do
		run a$r "snapshot" "$DEV" "$work/a$r.img"
		run b$r "snapshot" "$DEV" "$work/b$r.img"
		wait_runs
		show a$r b$r
		for n in a$r b$r; do
			snap_sound "$n" "$n.img" || ok=0
			[ "$(rc_of "$n")" = 0 ] && taken=$((taken + 1))
		done
	done
	tap_check "$L: each run took its layer or said why it did not" test $ok = 1
	tap_check "$L: all six took their layer, one after the other" test $taken = 6
	n=$(layers | wc -w)
	tap_check "$L: the table has one layer more per snapshot ($n)" test "$n" = $((2 + taken))
	end_case "$L"
else
	tap_fail "$L: the writer writes"
fi

# ---- B: snapshot + commit

L="B snapshot + commit"
before=$(layers)
top=${before##* }
if writer_start; then
	run snapB snapshot "$DEV" "$work/snapB.img"
	run commitB commit "$DEV" --wait
	wait_runs
	show snapB commitB
	tap_check "$L: the commit completed" \
		eval 'test "$(rc_of commitB)" = 0 && grep -q "Commit complete" "$work/commitB.out"'
	tap_check "$L: the snapshot took its layer or said why not" snap_sound snapB snapB.img
	# The snapshot came first (committed over), or waited out the job.
	now=$(layers)
	case "$(rc_of snapB):$now" in
	0:"base.img snapB.img"|0:"base.img $top snapB.img"|[!0]*:"base.img $top") ok=1 ;;
	*) ok=0 ;;
	esac
	tap_check "$L: the table is the commit's ('$now')" test $ok = 1
	end_case "$L"
else
	tap_fail "$L: the writer writes"
fi

# ---- C: snapshot + active commit with pivot

L="C snapshot + commit --active --pivot"
if writer_start; then
	run commitC commit "$DEV" --active --pivot --wait
	run snapC snapshot "$DEV" "$work/snapC.img"
	wait_runs
	show commitC snapC
	tap_check "$L: the commit pivoted" \
		eval 'test "$(rc_of commitC)" = 0 && grep -q "Successfully pivoted" "$work/commitC.out"'
	tap_check "$L: the snapshot took its layer or said why not" snap_sound snapC snapC.img
	now=$(layers)
	case "$(rc_of snapC):$now" in
	0:"base.img"|0:"base.img snapC.img"|[!0]*:"base.img") ok=1 ;;
	*) ok=0 ;;
	esac
	tap_check "$L: the table is the pivot's ('$now')" test $ok = 1
	tap_check "$L: writes went on through the pivot" writer_running
	end_case "$L"
else
	tap_fail "$L: the writer writes"
fi

# ---- D: snapshot + copy --finish

L="D snapshot + copy --finish"
before=$(layers)
if writer_start; then
	run copyD copy "$DEV" "$work/destD.img" --finish --wait
	run snapD snapshot "$DEV" "$work/snapD.img"
	wait_runs
	show copyD snapD
	tap_check "$L: the copy finished" \
		eval 'test "$(rc_of copyD)" = 0 && grep -q "Successfully copied" "$work/copyD.out"'
	tap_check "$L: the snapshot took its layer or said why not" snap_sound snapD snapD.img
	now=$(layers)
	want=$before
	[ "$(rc_of snapD)" = 0 ] && want="$before snapD.img"
	tap_check "$L: the table is '$want', without a mirror" \
		eval 'test "$now" = "$want" && ! dmsetup table "$DEV" | grep -qw mirror'
	tap_check "$L: the copy is a sound layer" "$CHAINADM" check -q "$work/destD.img"
	end_case "$L"
else
	tap_fail "$L: the writer writes"
fi

# ---- E: pivot attempts on an active commit

L="E pivot"
# 6 MiB for the job to copy at 1 MiB/s.
"$CHAINADM" snapshot "$DEV" "$work/e1.img" >/dev/null &&
stamp_range "/dev/mapper/$DEV" "$work/model" e1 $((2 << 20)) $((6 << 20)) ||
	tap_fail "$L: snapshot e1 and write 6 MiB"
before=$(layers)
if writer_start && "$CHAINADM" commit "$DEV" --active --bandwidth 1 > "$work/commitE.out" 2>&1; then
	sed 's/^/# /' "$work/commitE.out"
	# 64 KiB/s (below what chainadm's MiB/s can say): at 1 MiB/s the
	# 7 MB were copied before a slow pivot read the status, on a loaded
	# machine.
	dmsetup message "$DEV" 0 job bandwidth 65536
	tap_check "$L: the active commit at 1 MiB/s is running" \
		eval 'test "$(job_field "$DEV" phase)" = running'
	run pivotE0 job "$DEV" --pivot
	wait_runs
	show pivotE0
	tap_check "$L: job --pivot while running is refused, naming the phase and the command" \
		eval 'test "$(rc_of pivotE0)" = 2 &&
		      grep -q "job is running (.*), not ready: not pivoting.*job $DEV --wait --pivot" "$work/pivotE0.out"'
	run snapE snapshot "$DEV" "$work/snapE.img"
	wait_runs
	show snapE
	# (The job may be ready by now.)
	tap_check "$L: a snapshot during the job is refused, naming the job and what to do" \
		eval 'test "$(rc_of snapE)" = 2 && test ! -e "$work/snapE.img" &&
		      grep -qE "the active-commit job is (running|ready): no snapshot during a block job; end it with .chainadm job $DEV --wait --pivot. \(or --finish\), or cancel it with .chainadm job $DEV --abort." "$work/snapE.out"'
	tap_check "$L: the device kept its table and its job, the writer writes" \
		eval 'test "$(layers)" = "$before" && writer_running &&
		      job_field "$DEV" phase | grep -qxE "running|ready"'
	"$CHAINADM" job "$DEV" --bandwidth 0 || tap_fail "$L: job --bandwidth 0"
	run pivotE1 job "$DEV" --pivot --wait
	run pivotE2 job "$DEV" --pivot --wait
	wait_runs
	show pivotE1 pivotE2
	ok=0
	for p in "pivotE1 pivotE2" "pivotE2 pivotE1"; do
		set -- $p
		# The other one waited for the job (exit 5), or for the lock (2).
		[ "$(rc_of $1)" = 0 ] && grep -q "Successfully pivoted" "$work/$1.out" &&
		[ "$(rc_of $2)" != 0 ] && said_why "$work/$2.out" && ok=1
	done
	tap_check "$L: of two job --pivot --wait at once, one pivots, the other says the job is gone" \
		test $ok = 1
	tap_check "$L: the table is the commit's base alone" test "$(layers)" = base.img
	end_case "$L"
else
	sed 's/^/# /' "$work/commitE.out"
	tap_fail "$L: start the writer and the active commit"
fi

# ---- F: remove + snapshot

L="F remove + snapshot"
"$CHAINADM" snapshot "$DEV" "$work/f1.img" >/dev/null || tap_fail "$L: snapshot f1"
run removeF remove "$DEV"
run snapF snapshot "$DEV" "$work/snapF.img"
wait_runs
show removeF snapF
tap_check "$L: the device is removed" \
	eval 'test "$(rc_of removeF)" = 0 && ! dmsetup info "$DEV" >/dev/null 2>&1'
if [ "$(rc_of snapF)" = 0 ]; then
	grep -q "new active layer" "$work/snapF.out" &&
	"$CHAINADM" create "$DEV" "$work/snapF.img" >/dev/null && same_as_model
	tap_check "$L: the snapshot came first: the chain from its layer is the model" test $? = 0
else
	said_why "$work/snapF.out" && test ! -e "$work/snapF.img" &&
	"$CHAINADM" create "$DEV" "$work/f1.img" >/dev/null && same_as_model
	tap_check "$L: the snapshot found no device, said so, left no file" test $? = 0
fi

# ---- G: --nowait, and waiting for the lock

L="G lock holder"
# stalled RUN PID : wait until RUN says it is stalled (holding its locks).
stalled() {
	local end=$((SECONDS + 30)) out
	while [ $SECONDS -lt $end ] && kill -0 "$2" 2>/dev/null; do
		out=$(< "$work/$1.out")
		[[ $out == *"stalled at locked"* ]] && return 0
		sleep 0.1
	done
	return 1
}
if writer_start; then
	CHAINADM_TEST_STALL=locked "$CHAINADM" snapshot "$DEV" "$work/held.img" \
		> "$work/held.out" 2>&1 &
	holder=$!
	if stalled held $holder; then
		"$CHAINADM" --nowait snapshot "$DEV" "$work/now.img" > "$work/now.out" 2>&1
		rc=$?
		echo $rc > "$work/now.rc"
		show now
		tap_check "$L: --nowait fails at once, naming the holder's pid and command" \
			eval 'test $rc = 2 && test ! -e "$work/now.img" &&
			      grep -qF "held by pid $holder, '\''chainadm snapshot $DEV $work/held.img'\''" "$work/now.out"'
		run waiter snapshot "$DEV" "$work/waited.img"
		sleep 2
		tap_check "$L: without --nowait a snapshot waits for the lock" \
			eval 'test "$(rc_of waiter)" = none && test ! -e "$work/waited.img"'
		kill $holder
		wait $holder
		wait_runs
		show waiter
		tap_check "$L: once the holder is gone, the waiting snapshot is taken" \
			eval 'test "$(rc_of waiter)" = 0 && test "$(layers | awk "{ print \$NF }")" = waited.img &&
			      test ! -e "$work/held.img"'
	else
		sed 's/^/# /' "$work/held.out"
		tap_fail "$L: a snapshot stalls holding the lock"
		kill $holder
		wait $holder
	fi
	# A layer's lock, taken through a symbolic link to its file.
	ln -s "$work/base.img" "$work/alias.img"
	CHAINADM_TEST_STALL=locked "$CHAINADM" check --clear-needs-check \
		"$work/alias.img" > "$work/held2.out" 2>&1 &
	holder=$!
	if stalled held2 $holder; then
		"$CHAINADM" --nowait snapshot "$DEV" "$work/now2.img" > "$work/now2.out" 2>&1
		rc=$?
		echo $rc > "$work/now2.rc"
		show now2
		tap_check "$L: a layer locked through another path to its file holds the device's commands off" \
			eval 'test $rc = 2 && test ! -e "$work/now2.img" &&
			      grep -qF "held by pid $holder, '\''chainadm check --clear-needs-check $work/alias.img'\''" "$work/now2.out"'
	else
		sed 's/^/# /' "$work/held2.out"
		tap_fail "$L: check --clear-needs-check stalls holding the layer's lock"
	fi
	kill $holder
	wait $holder
	end_case "$L"
else
	tap_fail "$L: the writer writes"
fi

# ---- teardown: the final chain checks clean offline

final=$(layers)
"$CHAINADM" remove "$DEV"
ok=1
for f in $final; do
	"$CHAINADM" check -q "$work/$f" || ok=0
done
tap_check "the final chain ($final) checks clean" test $ok = 1
tap_check "kernel log is clean" kmsg_check
tap_end
