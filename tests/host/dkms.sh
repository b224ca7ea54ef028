#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# DKMS, the way an administrator installs dm-chain: the tracked sources
# go to /usr/src/dm-chain-<release>, and dkms adds, builds and installs
# the module for each kernel in $CHAIN_KERNELS (default 6.1) into
# /lib/modules/<release>/updates/dkms.  The module must be built from
# these sources (its srcversion is the in-tree build's), and a guest of
# the first kernel loads it with modprobe (so through depmod's index) and
# runs the smoke test on it (DKMS_BOOT_ALL=1: a guest of each kernel; in
# make check the others boot their in-tree build).  At the end dkms
# removes it from every kernel.
#
# It installs into the host's /lib/modules while make check's guests run:
# they read it over 9p, and depmod replaces its index files by rename, so
# a guest sees the old index or the new one.  A dm-chain that dkms knows
# already (an administrator's install) is left alone: the test skips.
. "$(dirname "$0")/host-lib.inc"

TOP=$TOP_DIR
V=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$TOP/dkms.conf")
read -r -a kernels <<< "${CHAIN_KERNELS:-${KVER:-6.1}}"
SRC=/usr/src/dm-chain-$V

if ! command -v dkms >/dev/null; then
	plan 1
	fail "dkms is installed (tools/deps installs it)"
	finish
fi
if [ -n "$(dkms status dm-chain 2>/dev/null)" ] || [ -e "$SRC" ]; then
	echo "1..0 # SKIP dm-chain is known to dkms already ($(dkms status dm-chain | head -1)): not touching an administrator's install"
	exit 4
fi
boots=1
[ "${DKMS_BOOT_ALL:-0}" = 1 ] && boots=${#kernels[@]}
plan $((2 + 2 * ${#kernels[@]} + boots))
cleanup() {
	dkms remove "dm-chain/$V" --all >/dev/null 2>&1
	rm -rf "$SRC"
	rm -rf "$SCRATCH"
}
trap cleanup EXIT

mkdir -p "$SRC" &&
	git -C "$TOP" ls-files -z | tar -C "$TOP" --null -T - -c | tar -C "$SRC" -x
run dkms add "dm-chain/$V"
if [ $RC = 0 ] && dkms status "dm-chain/$V" | grep -q added; then
	pass "dkms add dm-chain/$V from $SRC"
else
	fail "dkms add dm-chain/$V from $SRC" "exit $RC" "$OUT" "$ERR"
fi

for k in "${kernels[@]}"; do
	rel=$("$TOP/tools/kver" "$k")
	run bash -c "dkms build 'dm-chain/$V' -k '$rel' && dkms install 'dm-chain/$V' -k '$rel'"
	ko=$(find "/lib/modules/$rel/updates/dkms" -name 'dm-chain.ko*' 2>/dev/null | head -1)
	if [ $RC = 0 ] && [ -n "$ko" ] && dkms status "dm-chain/$V" -k "$rel" | grep -q installed; then
		pass "[$k] dkms build and install for $rel: $ko"
	else
		fail "[$k] dkms build and install for $rel" "exit $RC" "$(tail -5 <<< "$OUT")" "$ERR" \
			"$(tail -20 "/var/lib/dkms/dm-chain/$V/build/make.log" 2>/dev/null)"
		fail "[$k] built from these sources: not run"
		[ $((boots--)) -gt 0 ] && fail "[$k] a guest loads it: not run"
		continue
	fi
	tree=$TOP/kernel/dm-chain.ko
	[ "$k" = "${kernels[0]}" ] && [ "$(modinfo -F vermagic "$tree" | cut -d' ' -f1)" = "$rel" ] ||
		tree=$TOP/build/$rel/kernel/dm-chain.ko
	want=$(modinfo -F srcversion "$tree" 2>/dev/null)
	if [ -n "$want" ] && [ "$(modinfo -F srcversion "$ko")" = "$want" ]; then
		pass "[$k] built from these sources: srcversion $want, as the in-tree build"
	else
		fail "[$k] built from these sources" "dkms: $(modinfo -F srcversion "$ko"), $tree: $want"
	fi
	[ $((boots--)) -gt 0 ] || continue
	"$TOP/tools/guest-run" -k "$k" -t 900 -- bash "$HOST_DIR/dkms.guest" "$want" \
		> "$SCRATCH/guest.$k" 2>&1
	rc=$?
	if [ $rc = 0 ] && grep -q "^dkms.guest: ok" "$SCRATCH/guest.$k"; then
		pass "[$k] a guest loads it with modprobe dm-chain, and smoke passes on it"
	else
		fail "[$k] a guest loads it with modprobe dm-chain, and smoke passes on it (guest-run $rc)" \
			"$(tail -30 "$SCRATCH/guest.$k")"
	fi
done

run dkms remove "dm-chain/$V" --all
left=$(find /lib/modules/*/updates/dkms -name 'dm-chain.ko*' 2>/dev/null)
if [ $RC = 0 ] && [ -z "$left" ] && [ -z "$(dkms status dm-chain)" ]; then
	pass "dkms remove takes it out of every kernel"
else
	fail "dkms remove takes it out of every kernel" "exit $RC" "$ERR" "left: $left"
fi
finish
