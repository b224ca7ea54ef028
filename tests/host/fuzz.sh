#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The fuzz smoke of make check: each libFuzzer target of tests/fuzz
# (README.md, "Fuzzing") runs from its seed corpus for 12 s, then on
# until it has made its share of 100,000 executions, so the smoke takes
# about a minute and never makes fewer (on two cores busy with guests it
# may take longer).  Any crash, leak, sanitizer report or broken
# invariant fails, with the report and the saved input.  tools/deps
# installs clang and libFuzzer, so a missing toolchain fails too: it is
# not a reason to skip.
. "$(dirname "$0")/host-lib.inc"

FUZZ_DIR=$TOP_DIR/tests/fuzz
# Executions per target at least: the whole-layer target costs about ten
# times what the others do per run.
RUNS="fuzz_header:36000 fuzz_entries:30000 fuzz_job:24000 fuzz_layer:10000"
MIN_TOTAL=100000
SECONDS_EACH=${FUZZ_SMOKE_SECONDS:-12}

plan 7

lib=$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null | head -n 1)
if command -v clang-14 >/dev/null && [ -n "$lib" ]; then
	pass "clang-14 and libFuzzer are installed"
else
	fail "clang-14 and libFuzzer are installed" \
		"missing: tools/deps installs clang-14 and libclang-rt-14-dev"
	echo "Bail out! no fuzzing toolchain"
	exit 1
fi

start=$(date +%s)
if run make -s -j2 -C "$FUZZ_DIR"; then
	pass "the fuzz targets build ($(( $(date +%s) - start )) s)"
else
	fail "the fuzz targets build" "$OUT" "$ERR"
	echo "Bail out! cannot build the fuzz targets"
	exit 1
fi

total=0
start=$(date +%s)
for tr in $RUNS; do
	t=${tr%%:*}
	run "$FUZZ_DIR/run-fuzz.sh" --seconds "$SECONDS_EACH" --runs "${tr#*:}" \
		--corpus "$SCRATCH/corpus" "$t"
	if [ "$RC" -eq 0 ]; then
		pass "$OUT"
		n=$(echo "$OUT" | sed -n 's/^[^:]*: \([0-9]*\) executions.*/\1/p')
		total=$((total + ${n:-0}))
	else
		# The report and the saved input, as comments.
		mapfile -t lines <<< "$OUT"
		fail "$t: no crash, leak or sanitizer report" "${lines[@]}" "$ERR"
	fi
done
secs=$(( $(date +%s) - start ))
if [ "$total" -ge "$MIN_TOTAL" ]; then
	pass "$total executions in all in $secs s"
else
	fail "at least $MIN_TOTAL executions in all" "$total in $secs s"
fi
finish
