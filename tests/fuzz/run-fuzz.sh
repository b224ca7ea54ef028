#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# tests/fuzz/run-fuzz.sh - run libFuzzer targets one after another.
#
#   run-fuzz.sh [--seconds S] [--runs N] [--corpus DIR] TARGET...
#
# Each target (fuzz_header, fuzz_entries, fuzz_job, fuzz_layer; built by
# `make -C tests/fuzz`) runs for S seconds, then on until it has made N
# executions (either may be left out), starting from its seeds in
# tests/fuzz/corpus/<target>/ (read only) and what earlier runs kept in
# DIR/<target>/ (default build/fuzz/corpus), where new inputs go.
# Prints one line per target:
#
#   fuzz_header: 40000 executions in 12 s (3333/s), 25 new inputs, seed 42
#
# and, for a crash, a leak, a sanitizer report, a broken invariant or a
# hang (-timeout, 10 s), the end of the report and where the input was
# saved: build/fuzz/crashes/<target>-<kind>-<sha1>.  Exits 1 if any
# target failed.  FUZZ_SEED=N passes -seed=N (the seed of every run is
# printed).  Replay one input with: build/fuzz/<target> <file>.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=$top/build/fuzz
corpus=$bin/corpus
seconds=0
runs=0

while [ $# -gt 0 ]; do
	case "$1" in
	--runs)		runs=$2; shift 2 ;;
	--seconds)	seconds=$2; shift 2 ;;
	--corpus)	corpus=$2; shift 2 ;;
	-h|--help)	sed -n '3,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*)		echo "run-fuzz.sh: unknown option $1" >&2; exit 2 ;;
	*)		break ;;
	esac
done
if [ "$seconds$runs" = 00 ] || [ $# -eq 0 ]; then
	echo "usage: run-fuzz.sh [--seconds S] [--runs N] [--corpus DIR] TARGET..." >&2
	exit 2
fi

# Longest input per target: the input formats of the targets' comments.
max_len() {
	case "$1" in
	fuzz_header)	echo 8201 ;;		# 9 bytes, two 4 KiB slots
	fuzz_entries)	echo 16416 ;;		# 32 bytes, 2048 entries
	fuzz_job)	echo 258 ;;		# the record, 2 bytes
	fuzz_layer)	echo 73728 ;;		# the 64 KiB seed and some
	esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
sym=/usr/lib/llvm-14/bin/llvm-symbolizer
[ -x "$sym" ] && export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$sym}

# fuzz TARGET LIMIT: one libFuzzer process; its output in $log, the
# executions it made in $made.
fuzz() {
	local t=$1 limit=$2 rc n

	# -close_fd_mask=3: chainadm's own messages stay out of the log,
	# sanitizer reports do not.
	"$bin/$t" "$limit" -max_len="$(max_len "$t")" -timeout=10 \
		-close_fd_mask=3 -print_final_stats=1 \
		-artifact_prefix="$bin/crashes/$t-" \
		${FUZZ_SEED:+-seed=$FUZZ_SEED} \
		"$corpus/$t" "$here/corpus/$t" > "$log" 2>&1
	rc=$?
	made=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	made=${made:-0}
	n=$(sed -n 's/^stat::new_units_added: *//p' "$log")
	added=$((added + ${n:-0}))
	seeds="$seeds $(sed -n 's/.*Seed: \([0-9]*\).*/\1/p' "$log" | head -n 1)"
	return $rc
}

mkdir -p "$bin/crashes"
failed=0
for t in "$@"; do
	if [ ! -x "$bin/$t" ] || [ -z "$(max_len "$t")" ]; then
		echo "$t: no such target in $bin (make -C tests/fuzz)"
		failed=1
		continue
	fi
	mkdir -p "$corpus/$t"
	log=$bin/$t.log
	start=$(date +%s)
	total=0 added=0 seeds=
	# One process at a time: first for the time, then for what is
	# missing of the executions.
	rc=0
	if [ "$seconds" != 0 ]; then
		fuzz "$t" -max_total_time="$seconds"
		rc=$?
		total=$made
	fi
	if [ $rc -eq 0 ] && [ "$total" -lt "$runs" ]; then
		fuzz "$t" -runs=$((runs - total))
		rc=$?
		total=$((total + made))
	fi
	secs=$(( $(date +%s) - start ))
	if [ $rc -ne 0 ]; then
		echo "$t: FAILED (exit $rc) after ${secs} s, seed$seeds; the report:"
		grep -v '^#[0-9]' "$log" | tail -n 60 | sed 's/^/    /'
		failed=1
		continue
	fi
	echo "$t: $total executions in ${secs} s ($(( total / (secs > 0 ? secs : 1) ))/s), $added new inputs, seed$seeds"
done
exit $failed
