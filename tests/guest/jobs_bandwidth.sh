#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Bandwidth limits and job control.  Chain base <- sn1 <- cur, 32 MiB,
# 64 KiB clusters: base holds 16 MiB, sn1 6 MiB of its own, cur 256 KiB.
#
# A job limited to L bytes/s that copies S bytes takes at least (S - C)/L
# seconds, C one cluster: the limit is a hard ceiling (by time t at most
# L*t bytes issued), so the last cluster cannot be issued earlier.  A lower
# bound only (a slow guest may take any longer), measured with date around
# `--wait`:
#   pull --base base --bandwidth 1     (6 MiB at 1 MiB/s)
#   commit --top sn1 --bandwidth 1     (6 MiB at 1 MiB/s)
#   copy --bandwidth 4 --wait, then job --finish  (22.25 MiB at 4 MiB/s;
#       the destination equals the disk)
# Then job control on a flatten (22.25 MiB at 1 MiB/s), paused as soon as
# it runs so that the checks do not race its end: the status shows the
# limit in bytes/s; job --pause stops the progress (phase paused); job
# --info and --json describe the job; job --bandwidth changes the limit;
# job --resume restarts it; done/total never goes back; the content is
# the reference's.
. "$(dirname "$0")/../lib.sh"

jobs_begin job
on_exit kill_bg

CS=65536
SIZE=$((32 << 20))
MIB=$((1 << 20))
LAYERS=(base sn1 cur)
OPS=("d:0:128 d:256:128" "d:128:96" "d:460:4")
SN1_BYTES=$((96 * CS))
ALL_BYTES=$(((256 + 96 + 4) * CS))

BG=
kill_bg() { [ -n "$BG" ] && kill "$BG" 2>/dev/null; wait 2>/dev/null; BG=; }


# timed LABEL BYTES MIB_PER_S CMD... : CMD (a --wait job) succeeds and takes
# at least (BYTES - one cluster) / limit seconds.
timed() {
	local label=$1 bytes=$2 mibs=$3 t0 t1 rc min
	shift 3
	stack_fresh cur || { tap_fail "$label: create the device"; return 1; }
	t0=$(now)
	timeout 300 "$CHAINADM" "$@" > "$work/job.out" 2>&1
	rc=$?
	t1=$(now)
	sed 's/^/# /' "$work/job.out"
	min=$(awk -v b=$((bytes - CS)) -v l=$((mibs * MIB)) 'BEGIN { printf "%.2f", b / l }')
	log "$label: $bytes bytes at $mibs MiB/s took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
	tap_check "$label: chainadm $* succeeds" test $rc = 0
	tap_check "$label: it took at least $min s" elapsed_at_least "$t0" "$t1" "$min"
	return $rc
}

stack_build || die "cannot build base <- sn1 <- cur"
tap_ok "the chain base <- sn1 <- cur shows the reference's bytes"

L="pull at 1 MiB/s"
if timed "$L" $SN1_BYTES 1 pull $DEV --base "$work/base.img" --bandwidth 1 --wait; then
	tap_check "$L: the device shows the same bytes" cmp /dev/mapper/$DEV "$work/model"
fi

L="commit at 1 MiB/s"
if timed "$L" $SN1_BYTES 1 commit $DEV --top "$work/sn1.img" --base "$work/base.img" \
	--bandwidth 1 --wait; then
	tap_check "$L: the device shows the same bytes" cmp /dev/mapper/$DEV "$work/model"
fi

L="copy at 4 MiB/s"
if timed "$L" $ALL_BYTES 4 copy $DEV "$work/dest.img" --bandwidth 4 --wait; then
	timeout 300 "$CHAINADM" job $DEV --finish > "$work/job.out" 2>&1
	tap_check "$L: job --finish succeeds" test $? = 0
	sed 's/^/# /' "$work/job.out"
	"$CHAINADM" remove $DEV
	"$CHAINADM" create $DEV "$work/dest.img" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/model"
	tap_check "$L: the destination shows the same bytes" test $? = 0
fi

# ---- job control on a running flatten

L="job control"
if stack_fresh cur; then
	timeout 600 "$CHAINADM" pull $DEV --bandwidth 1 --wait \
		> "$work/pull.out" 2>&1 &
	BG=$!
	# type, done and total every 0.2 s until the pull returns.
	(
		while kill -0 $BG 2>/dev/null; do
			# One status line per sample: three calls could straddle the
			# table swap at the end of the pull.
			dmsetup status $DEV | awk '{ split($12, d, "/"); print $10, d[1], d[2] }'
			sleep 0.2
		done
	) > "$work/samples" 2>/dev/null &
	sampler=$!

	wait_job_phase $DEV 60 running paused completed
	tap_check "$L: job --pause" "$CHAINADM" job $DEV --pause
	tap_check "$L: the phase is paused" wait_job_phase $DEV 10 paused
	sleep 0.5	# copies already issued may still land
	d1=$(job_field $DEV "done")
	sleep 2
	d2=$(job_field $DEV "done")
	log "done while paused: $d1 then $d2 of $(job_field $DEV total)"
	tap_check "$L: no progress while paused" test "$d1" = "$d2" -a "$d1" != 0
	tap_check "$L: the status shows the limit, 1048576 bytes/s" \
		test "$(job_field $DEV bandwidth)" = $MIB
	"$CHAINADM" job $DEV --info > "$work/info.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/info.out"
	tap_check "$L: job --info describes the paused stream" \
		eval 'test $rc = 0 && grep -q "type: stream" "$work/info.out" &&
		      grep -q "phase: paused" "$work/info.out"'
	"$CHAINADM" job $DEV --json > "$work/info.json" 2>&1
	rc=$?
	tap_check "$L: job --json describes the paused stream" \
		eval 'test $rc = 0 && grep -q "\"type\": \"stream\"" "$work/info.json" &&
		      grep -q "\"phase\": \"paused\"" "$work/info.json"'
	tap_check "$L: job --bandwidth 512K" "$CHAINADM" job $DEV --bandwidth 512K
	tap_check "$L: the status shows the limit, 524288 bytes/s" \
		test "$(job_field $DEV bandwidth)" = 524288
	out=$("$CHAINADM" job $DEV --bandwidth 5X 2>&1)
	rc=$?
	log "$out"
	tap_check "$L: job --bandwidth 5X is refused, naming the suffixes" \
		eval 'test $rc != 0 && echo "$out" | grep -q "use K, M, G"'
	tap_check "$L: the limit is unchanged, 524288 bytes/s" \
		test "$(job_field $DEV bandwidth)" = 524288
	tap_check "$L: job --bandwidth 4" "$CHAINADM" job $DEV --bandwidth 4
	tap_check "$L: the status shows the new limit, 4194304 bytes/s" \
		test "$(job_field $DEV bandwidth)" = $((4 * MIB))
	tap_check "$L: job --resume" "$CHAINADM" job $DEV --resume
	tap_check "$L: running again" wait_job_phase $DEV 10 running completed -

	wait $BG
	rc=$?
	BG=
	wait $sampler
	sed 's/^/# /' "$work/pull.out"
	tap_check "$L: the pull completes" test $rc = 0
	log "$(wc -l < "$work/samples") samples of type, done, total"
	tap_check "$L: done never goes back, total stays, done <= total" \
		awk '$1 == "stream" && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ {
			if (n++ && ($2 < d || $3 != t)) bad = 1
			if ($2 > $3) bad = 1
			d = $2; t = $3
		} END { exit bad || n < 3 }' "$work/samples"
	tap_check "$L: the device shows the same bytes" cmp /dev/mapper/$DEV "$work/model"
	tap_check "$L: the table is cur.img alone" \
		test "$(dev_layer_names $DEV)" = "cur.img"
else
	tap_fail "$L: create the device"
fi

tap_check "kernel log is clean" kmsg_check
tap_end
