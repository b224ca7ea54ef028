#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Reference model: random reads, writes, discards and write-zeroes, aligned
# and not, crossing cluster boundaries, on chains of depth 1, 2, 8 and 64
# (make stress only) over a raw base and over a formatted base.  The chain
# is grown one layer at a time with the table swap of a live snapshot,
# with random I/O before
# every step, so data is spread over every layer.  chain-iotest compares
# every read, and the whole device at the end, with a model file of what
# the guest must see.  Then: the lower layers are byte-for-byte unchanged by
# the writes to the top, every chain layer passes chainadm check, and the
# content survives re-creating the device from the same layers.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup sha256sum

IOTEST=$CHAIN_ROOT/tests/progs/chain-iotest
CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$IOTEST" ] || skip_all "tests/progs not built (make -C tests/progs)"
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"

# base type, depth, cluster size, virtual size.  The 64-layer chains take
# two thirds of the test's time: make stress (STRESS=1) runs them; the
# short form's deepest chain is 8 (deep_chain reads all 255 layers).
SPECS=(
	"raw 1 64K 32M"
	"chain 1 64K 32M"
	"raw 2 64K 32M"
	"chain 2 4K 16M"
	"raw 8 64K 32M"
	"chain 8 2M 32M"
)
[ "${STRESS:-0}" = 1 ] && SPECS+=("raw 64 64K 16M" "chain 64 16K 16M")
# Four checks per chain, three for a chain without lower layers.
plan=0
for spec in "${SPECS[@]}"; do
	# shellcheck disable=SC2086
	set -- $spec
	plan=$((plan + ($2 > 1 ? 4 : 3)))
done
tap_plan $plan
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/chain_model.XXXXXX)
on_exit rm -rf "$work"
DEV=chain_model
on_exit dmsetup remove --retry $DEV

bytes() { numfmt --from=iec "$1"; }

# Attach a file read-only or read-write; prints the loop device.
attach() {
	local l
	l=$(losetup -f --show $2 "$1") || return 1
	on_exit losetup -d "$l"
	echo "$l"
}

# table <base type> <loop devices...>
table() {
	local type=$1
	shift
	echo "0 $VSECT chain $# $type $*"
}

# Add <n> overlays over the active layer by one live table swap.
grow_chain() {
	local i file
	for ((i = 0; i < $1; i++)); do
		file=$work/layer${#FILES[@]}.img
		$CHAINADM format -q --backing "${FILES[-1]}" "$file" || return 1
		LOOPS+=("$(attach "$file")") || return 1
		FILES+=("$file")
	done
	# The old active layer becomes read-only below the new ones.
	dmsetup suspend $DEV &&
	dmsetup load $DEV --table "$(table "$BTYPE" "${LOOPS[@]}")" &&
	dmsetup resume $DEV
}

lower_sums() {
	local f
	for f in "${FILES[@]:0:${#FILES[@]}-1}"; do
		sha256sum "$f"
	done
}

run_spec() {
	local depth=$2 cs=$3 name="depth $2, $1 base, cluster $3" ops seed d f step div
	BTYPE=$1
	VSIZE=$(bytes "$4")
	VSECT=$((VSIZE / 512))
	# A chain that failed half-way must not spoil the next one.
	dmsetup remove $DEV 2>/dev/null
	losetup -D
	rm -rf "${work:?}"/*
	FILES=("$work/layer0.img")
	model=$work/model
	if [ "$BTYPE" = raw ]; then
		dd if=/dev/urandom of="${FILES[0]}" bs=1M count=$((VSIZE >> 20)) status=none
		cp "${FILES[0]}" "$model"
	else
		$CHAINADM format -q --size "$VSIZE" --cluster-size "$cs" "${FILES[0]}"
		truncate -s "$VSIZE" "$model"
	fi
	LOOPS=("$(attach "${FILES[0]}")")
	dmsetup create $DEV --table "$(table "$BTYPE" "${LOOPS[0]}")" ||
		{ tap_fail "$name: create"; return; }

	# A lone raw layer has no clusters: discards are the device's own.
	iocs=$cs
	[ "$BTYPE$depth" = raw1 ] && iocs=4K
	# Deep chains grow eight layers per swap to keep guest time down;
	# every swap still follows a round of I/O, so data lies all through.
	step=$((depth > 8 ? 8 : 1))
	ops=$((1200 * step / depth + 40))
	# Clusters above 256K: fewer operations (up to three clusters each;
	# at 2M a thousand would move gigabytes through a TCG guest).
	div=$(($(bytes "$cs") > 262144 ? $(bytes "$cs") / 262144 : 1))
	[ $div -gt 1 ] && ops=$((ops / div + 8))
	seed=$RANDOM
	log "$name: seed $seed"
	for ((d = 1; d < depth; d += step)); do
		$IOTEST --dev /dev/mapper/$DEV --model "$model" --size "$VSIZE" \
			--cluster "$(bytes $iocs)" --seed $((seed + d)) --ops $ops \
			>/dev/null || { tap_fail "$name: I/O before layer $d"; return; }
		grow_chain $((depth - d < step ? depth - d : step)) ||
			{ tap_fail "$name: growing to layer $d"; return; }
	done
	lower_sums > "$work/sums"

	$IOTEST --dev /dev/mapper/$DEV --model "$model" --size "$VSIZE" \
		--cluster "$(bytes $iocs)" --seed "$seed" --ops $((1000 / div)) \
		--max-len $((3 * $(bytes "$cs"))) --verify 2>&1 | head -20 | sed 's/^/# /'
	tap_check "$name: random I/O matches the model" test "${PIPESTATUS[0]}" = 0
	if [ "$depth" -gt 1 ]; then
		tap_check "$name: lower layers unchanged by writes to the top" \
			sha256sum --quiet -c "$work/sums"
	fi

	dmsetup remove $DEV || { tap_fail "$name: remove"; return; }
	local bad=0
	for f in "${FILES[@]}"; do
		[ "$BTYPE" = raw ] && [ "$f" = "${FILES[0]}" ] && continue
		$CHAINADM check "$f" > "$work/check.out" 2>&1 ||
			{ bad=1; sed 's/^/# /' "$work/check.out"; }
	done
	if [ $bad = 0 ]; then
		tap_ok "$name: chainadm check passes on every layer"
	else
		tap_fail "$name: chainadm check passes on every layer"
	fi

	dmsetup create $DEV --table "$(table "$BTYPE" "${LOOPS[@]}")" &&
	$IOTEST --dev /dev/mapper/$DEV --model "$model" --size "$VSIZE" \
		--cluster "$(bytes $iocs)" --verify-only 2>&1 | tail -3 | sed 's/^/# /'
	tap_check "$name: content survives re-creating the device" \
		test "${PIPESTATUS[0]}" = 0
	dmsetup remove $DEV
	for d in "${LOOPS[@]}"; do
		losetup -d "$d"
	done
}

for spec in "${SPECS[@]}"; do
	t0=$SECONDS
	# shellcheck disable=SC2086
	run_spec $spec
	log "spec '$spec' took $((SECONDS - t0)) s"
done
tap_done
