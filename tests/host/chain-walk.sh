#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Chain discovery through the backing hints (info --backing-chain, create
# and map share it): every broken link is refused before anything is
# attached, and map draws the chain offline.
. "$(dirname "$0")/host-lib.inc"

plan 19

# link <upper> <lower>: make upper name lower as its chain backing layer.
link() {
	"$POKE" "$1" set backing_type 2 && "$POKE" "$1" set backing_uuid "@$2" &&
		"$POKE" "$1" set hint "$SCRATCH/$2" ||
		{ echo "Bail out! cannot link $1 to $2"; exit 1; }
}

new_layer base
"$CHAINADM" format -q -b base mid
"$CHAINADM" format -q -b mid top
expect "a good chain is walked to its base" 0 "image: $SCRATCH/base" \
	"$CHAINADM" info --backing-chain top

# Replace mid by a different layer at the same path.
new_layer mid2
cp --sparse=always top top-wrong
"$POKE" top-wrong set hint "$SCRATCH/mid2"
expect "wrong backing UUID refused by info" 2 "backing UUID mismatch: expects" \
	"$CHAINADM" info --backing-chain top-wrong
expect "wrong backing UUID names the layer found" 2 "but $SCRATCH/mid2 has UUID" \
	"$CHAINADM" info --backing-chain top-wrong
expect "wrong backing UUID refused by create" 2 "backing UUID mismatch" \
	"$CHAINADM" create vm top-wrong
expect "wrong backing UUID refused by map" 2 "backing UUID mismatch" \
	"$CHAINADM" map --width 40 top-wrong

new_layer c1
"$CHAINADM" format -q -b c1 c2
link c1 c2
expect "a cycle of backing hints is refused" 2 "backing chain loops" \
	"$CHAINADM" info --backing-chain c2
expect "a cycle is refused by create" 2 "backing chain loops" "$CHAINADM" create vm c2

new_layer k1 --cluster-size 128K
new_layer k2
link k2 k1
expect "mismatched cluster size is refused" 2 \
	"cluster size 65536 differs from 131072 of its backing layer" \
	"$CHAINADM" info --backing-chain k2

"$CHAINADM" format -q --size 32M v1
new_layer v2
link v2 v1
expect "mismatched virtual size is refused" 2 \
	"virtual size 67108864 differs from 33554432 of its backing layer" \
	"$CHAINADM" info --backing-chain v2

new_layer nohint
"$POKE" nohint set backing_type 2
"$POKE" nohint set backing_uuid @base
expect "a missing hint asks for the explicit form" 2 "no backing hint" \
	"$CHAINADM" info --backing-chain nohint

# A relative hint is relative to the layer's directory.
mkdir sub
"$CHAINADM" format -q -b base sub/rel
"$POKE" sub/rel set hint ../base
expect "a relative hint resolves against the layer's directory" 0 \
	"image: sub/../base" "$CHAINADM" info --backing-chain sub/rel

expect "create --layers: a bottom with a backing layer is refused" 2 \
	"is listed at the bottom: list every layer" \
	"$CHAINADM" create --layers vm mid top
expect "create --layers: wrong order is refused" 2 "backing UUID mismatch" \
	"$CHAINADM" create --layers vm base top mid
expect "create --raw-base needs --layers" 1 "--raw-base needs --layers" \
	"$CHAINADM" create --raw-base vm top

# map: base holds clusters 0 and 900, mid zeroes 5, top overrides 0.
"$POKE" base alloc 0
"$POKE" base alloc 900
"$POKE" mid entry 5 4000000000000000
"$POKE" top alloc 0
run "$CHAINADM" map --width 1036 top
expect_row() {
	local label=$1 want=$2 row
	row=$(printf '%s\n' "$OUT" | sed -n "s/^$label  *//p")
	[ "$row" = "$want" ] && pass "map: $label row" ||
		fail "map: $label row" "got:  $row" "want: $want"
}
dashes() { printf -- "-%.0s" $(seq "$1"); }
expect_row base "A$(dashes 899)A$(dashes 123)"
expect_row mid "-----0$(dashes 1018)"
expect_row "guest sees" "C----0$(dashes 894)A$(dashes 123)"
# Scaled to the minimum of 10 columns of 103 clusters: data wins over
# zero over absent.
run "$CHAINADM" map --width 20 top
expect_row mid "0---------"
expect_row "guest sees" "C-------A-"

finish
