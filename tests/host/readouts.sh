#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The table read-outs through libsmartcols, offline: map --extents and
# map --json list what the guest reads as runs (start, length, depth,
# data, zero, layer) over a chain built with known clusters, and check
# --json reports every finding (info, warning, error) as a line; -o picks
# and orders columns, --raw and --noheadings shape the table, an unknown
# column is refused.  list, which needs live devices, is checked in the
# guest (chaintab).
. "$(dirname "$0")/host-lib.inc"

plan 9
command -v jq >/dev/null || { echo "Bail out! no jq (tools/deps installs it)"; exit 1; }
truncate -s 4M base.raw
"$CHAINADM" format -q --backing base.raw --backing-type raw s1 &&
	"$CHAINADM" format -q --backing s1 s2 || { echo "Bail out! format"; exit 1; }
"$POKE" s1 alloc 3 >/dev/null && "$POKE" s2 alloc 5 >/dev/null &&
	"$POKE" s2 entry 7 4000000000000000 >/dev/null || { echo "Bail out! chain-poke"; exit 1; }

# base 0-2, s1 3, base 4, s2 5, base 6, zero 7 (s2), base 8-63
want='0 196608 2 true false base.raw
196608 65536 1 true false s1
262144 65536 2 true false base.raw
327680 65536 0 true false s2
393216 65536 2 true false base.raw
458752 65536 0 false true s2
524288 3670016 2 true false base.raw'
run "$CHAINADM" map --json s2
got=$(jq -r '.map[] | "\(.start) \(.length) \(.depth) \(.data) \(.zero) \(.layer | split("/") | last)"' <<< "$OUT" 2>&1)
if [ $RC = 0 ] && [ "$got" = "$want" ]; then
	pass "map --json: the runs the guest reads, with depth, data, zero and layer"
else
	fail "map --json: the runs the guest reads" "exit $RC $ERR" "$got"
fi
run "$CHAINADM" map --extents --raw --noheadings -b -o depth,start s2
if [ $RC = 0 ] && [ "$OUT" = "$(awk '{ print $3, $1 }' <<< "$want")" ]; then
	pass "map -o depth,start --raw --noheadings -b: those columns, in that order, bare"
else
	fail "map -o depth,start --raw --noheadings -b" "exit $RC $ERR" "$OUT"
fi
run "$CHAINADM" map --extents s2
if [ $RC = 0 ] && [ "$(head -1 <<< "$OUT" | tr -s ' ' | sed 's/^ //')" = "START LENGTH DEPTH DATA ZERO LAYER" ] &&
   grep -q '^ *512K *3.5M *2 *1 *0 .*base.raw$' <<< "$OUT"; then
	pass "map --extents: a table with headings and short sizes"
else
	fail "map --extents: a table with headings and short sizes" "exit $RC $ERR" "$OUT"
fi
run "$CHAINADM" map -o start,nosuch s2
if [ $RC = 1 ] && grep -q "unknown column 'nosuch'" <<< "$ERR"; then
	pass "an unknown column is refused, naming it (exit 1)"
else
	fail "an unknown column is refused, naming it (exit 1)" "exit $RC $ERR"
fi
run "$CHAINADM" map --width 40 --json s2
if [ $RC = 1 ] && grep -q "width draws the picture" <<< "$ERR"; then
	pass "--width with a table option is refused"
else
	fail "--width with a table option is refused" "exit $RC $ERR"
fi

run "$CHAINADM" check --json s2
if [ $RC = 0 ] && [ -z "$ERR" ] &&
   [ "$(jq -r '.check[-1] | "\(.severity) \(.message)"' <<< "$OUT")" = "info no inconsistencies found" ] &&
   [ "$(jq -r '[.check[].layer] | unique | .[]' <<< "$OUT")" = s2 ]; then
	pass "check --json of a sound layer: info lines, the last one says so, exit 0"
else
	fail "check --json of a sound layer" "exit $RC $ERR" "$OUT"
fi
cp --sparse=always s1 bad
"$POKE" bad entry 9 8000000000ffffff >/dev/null
run "$CHAINADM" check --json bad
if [ $RC = 3 ] && [ -z "$ERR" ] &&
   jq -e '.check[] | select(.severity == "error" and (.message | test("cluster 9 points beyond")))' <<< "$OUT" >/dev/null; then
	pass "check --json of a damaged layer: the error is a line of the JSON, nothing on stderr, exit 3"
else
	fail "check --json of a damaged layer" "exit $RC" "$ERR" "$OUT"
fi
"$POKE" s1 set flags 1 >/dev/null
run "$CHAINADM" check --json -q s1
if [ $RC = 0 ] && [ "$(jq -r '.check[] | .severity' <<< "$OUT")" = warning ] &&
   jq -e '.check[0].message | test("needs-check")' <<< "$OUT" >/dev/null; then
	pass "check --json -q: only the warning (needs-check set), no info lines"
else
	fail "check --json -q: only the warning" "exit $RC $ERR" "$OUT"
fi
run "$CHAINADM" check --raw --noheadings -o severity bad
if [ $RC = 3 ] && [ "$(tail -1 <<< "$OUT")" = error ]; then
	pass "check --raw -o severity: one word a finding"
else
	fail "check --raw -o severity: one word a finding" "exit $RC $ERR" "$OUT"
fi
finish
