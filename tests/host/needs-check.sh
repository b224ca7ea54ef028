#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# The header flags offline: check warns about needs-check and names
# --clear-needs-check, which clears the flag (generation + 1 into the other
# slot) only when the check found no error; an invalidated layer is a
# warning; create refuses either flag before touching device-mapper.
. "$(dirname "$0")/host-lib.inc"

plan 16

# create would create this device if the flag checks were missing.
DEV=chainadm-hosttest-$$
trap '"$CHAINADM" remove "$DEV" >/dev/null 2>&1; rm -rf "$SCRATCH"' EXIT

# field <layer> <label>: the value of one "label: value" line of info.
field() { "$CHAINADM" info "$1" | sed -n "s/^$2: *//p"; }

new_layer nc
"$POKE" nc alloc 3
"$POKE" nc set flags 1
expect "check warns about needs-check and names the option" 0 \
	"the needs-check flag is set: the kernel saw a metadata error on this layer; if this check finds no error, clear it with --clear-needs-check" \
	"$CHAINADM" check nc
expect "check without the option leaves the flag" 0 "needs-check" \
	"$CHAINADM" info nc
expect "create refuses a needs-check layer" 2 \
	"chainadm: nc: marked needs-check: run chainadm check --clear-needs-check nc" \
	"$CHAINADM" create "$DEV" nc

gen=$(field nc generation)
expect "check --clear-needs-check clears the flag" 0 \
	"needs-check flag cleared: generation 4 written to header slot 0" \
	"$CHAINADM" check --clear-needs-check nc
expect "the flag is gone" 0 "flags: none" "$CHAINADM" info nc
[ "$gen" = "3 (header slot 1)" ] && [ "$(field nc generation)" = "4 (header slot 0)" ] &&
	pass "the new header is generation + 1 in slot generation % 2 (was $gen)" ||
	fail "the new header is generation + 1 in slot generation % 2" \
		"before: $gen" "after: $(field nc generation)"
expect "the cleared layer checks clean, mapping kept" 0 "1 mapped" \
	"$CHAINADM" check nc
[ -z "$ERR" ] && pass "no warning after clearing" || fail "no warning after clearing" "$ERR"

# The next clear goes into slot 1: the slots alternate.
"$POKE" nc set flags 1 0
expect "a second clear writes slot 1" 0 \
	"generation 5 written to header slot 1" \
	"$CHAINADM" check --clear-needs-check nc

expect "clearing a layer without the flag changes nothing" 0 \
	"the needs-check flag is not set: nothing to clear" \
	"$CHAINADM" check --clear-needs-check nc

# A layer with an error keeps its flag.
new_layer bad
"$POKE" bad alloc 3
"$POKE" bad entry 7 8000000000000000		# into metadata
"$POKE" bad set flags 1
expect "an inconsistent layer is not cleared" 3 \
	"not clearing the needs-check flag: the check found errors" \
	"$CHAINADM" check --clear-needs-check bad
expect "its flag stays" 3 "the needs-check flag is set" "$CHAINADM" check bad

# A torn current header would make slot parity lie: refuse, do not write.
new_layer odd
"$POKE" odd set generation 3 0			# slot 0 holds generation 3
"$POKE" odd set flags 1
expect "a header against the generation mod 2 rule is not rewritten" 3 \
	"against the generation mod 2 rule" \
	"$CHAINADM" check --clear-needs-check odd

new_layer inv
"$POKE" inv set flags 2
expect "an invalidated layer is a warning, exit 0" 0 \
	"invalidated by a commit into a lower layer; not usable on its own" \
	"$CHAINADM" check inv
expect "create refuses an invalidated layer" 2 \
	"chainadm: inv: invalidated by a commit into a lower layer: drop it from the chain" \
	"$CHAINADM" create "$DEV" inv

# Below a clean top layer, found by discovery.
new_layer top --backing inv
expect "create refuses an invalidated layer found through a hint" 2 \
	"invalidated by a commit into a lower layer: drop it from the chain" \
	"$CHAINADM" create "$DEV" top

finish
