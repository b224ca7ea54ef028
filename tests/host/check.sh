#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# chainadm check: a good layer passes; every corruption is refused with
# exit code 3 and a message that says what is wrong; crash leftovers that
# the format allows are reported without failing.
. "$(dirname "$0")/host-lib.inc"

plan 17

new_layer good
"$POKE" good alloc 3
"$POKE" good alloc 4
"$POKE" good entry 9 4000000000000000		# ZERO

expect "a good layer passes" 0 "no inconsistencies found" "$CHAINADM" check good
expect "check counts entries" 0 "2 mapped, 1 zero, 1021 absent" "$CHAINADM" check good
expect "check --quiet prints nothing on success" 0 "" "$CHAINADM" check --quiet good
[ -z "$OUT$ERR" ] && pass "quiet output is empty" || fail "quiet output is empty" "$OUT$ERR"

# corrupt <name> <command...>: a copy of the good layer, then damage it.
corrupt() {
	cp --sparse=always good "$1"
	shift 1
	"$@" || { echo "Bail out! cannot corrupt: $*"; exit 1; }
}

corrupt magic "$POKE" magic set magic 0
expect "bad magic" 3 "chainadm: magic: header slot 0: bad magic" "$CHAINADM" check magic

corrupt csum sh -c 'printf "\377" | dd of=csum bs=1 seek=100 conv=notrunc 2>/dev/null &&
	printf "\377" | dd of=csum bs=1 seek=4196 conv=notrunc 2>/dev/null'
expect "bad checksum (flipped byte)" 3 "header slot 1: header checksum mismatch" \
	"$CHAINADM" check csum

corrupt incompat "$POKE" incompat set incompat 0x10
expect "unknown incompat bit" 3 "unknown incompatible feature bits 0x10" \
	"$CHAINADM" check incompat

corrupt range "$POKE" range entry 7 80000000000fffff
expect "entry out of range" 3 "entry for cluster 7 points beyond the end of the device" \
	"$CHAINADM" check range

corrupt meta "$POKE" meta entry 7 8000000000000000
expect "entry pointing into metadata" 3 "entry for cluster 7 points into metadata" \
	"$CHAINADM" check meta

corrupt dup "$POKE" dup entry 7 8000000000000001
expect "two entries mapping one host cluster" 3 \
	"entry for cluster 7 maps host cluster 1, which another entry already maps" \
	"$CHAINADM" check dup

corrupt reserved "$POKE" reserved entry 7 8001000000000005
expect "reserved entry bits" 3 "entry for cluster 7 has reserved bits set" \
	"$CHAINADM" check reserved

corrupt trunc truncate -s 100000 trunc
expect "truncated below the allocation end" 3 "device truncated?" "$CHAINADM" check trunc

corrupt tiny truncate -s 4096 tiny
expect "truncated below the header slots" 3 \
	"device is truncated: 4096 bytes, smaller than the two header slots" \
	"$CHAINADM" check tiny

corrupt torn "$POKE" torn set magic 0 1
expect "one torn header slot is a warning, exit 0" 0 \
	"header slot 1 is invalid (bad magic: not a dm-chain layer): a torn header write, slot 0 is used" \
	"$CHAINADM" check torn

corrupt leak "$POKE" leak set data_end 5
expect "unreferenced clusters below the allocation end are free space, exit 0" 0 \
	"2 data clusters below the allocation end are free" \
	"$CHAINADM" check leak

corrupt beyond "$POKE" beyond set data_end 2
expect "entries beyond data_end are reported, exit 0" 0 \
	"1 mapped clusters lie at or beyond the allocation end" "$CHAINADM" check beyond

expect "a missing layer is a runtime failure" 2 "chainadm: nosuch: cannot open" \
	"$CHAINADM" check nosuch

finish
