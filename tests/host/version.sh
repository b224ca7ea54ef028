#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# One release string: kernel/dm-chain-release.h gives it to the module
# (MODULE_VERSION) and to chainadm --version; dkms.conf and the install
# commands in dkms.conf and the README must name the same release.
. "$(dirname "$0")/host-lib.inc"

TOP=$TOP_DIR
V=$(sed -n 's/^#define DM_CHAIN_RELEASE "\(.*\)"$/\1/p' "$TOP/kernel/dm-chain-release.h")

plan 6

if [ -n "$V" ]; then
	pass "kernel/dm-chain-release.h gives the release: $V"
else
	fail "kernel/dm-chain-release.h gives the release" "no DM_CHAIN_RELEASE line"
	V=none
fi
run "$CHAINADM" --version
if [ $RC = 0 ] && [ "$(head -n 1 <<< "$OUT")" = "chainadm $V" ]; then
	pass "chainadm --version says chainadm $V"
else
	fail "chainadm --version says chainadm $V" "exit $RC: $OUT $ERR"
fi
KO=$TOP/kernel/dm-chain.ko
if [ -f "$KO" ] && [ "$(modinfo -F version "$KO")" = "$V" ]; then
	pass "the module's version (modinfo) is $V"
else
	fail "the module's version (modinfo) is $V" "$KO: '$(modinfo -F version "$KO" 2>&1)'"
fi
if grep -qx "PACKAGE_VERSION=\"$V\"" "$TOP/dkms.conf"; then
	pass "dkms.conf's PACKAGE_VERSION is $V"
else
	fail "dkms.conf's PACKAGE_VERSION is $V" "$(grep PACKAGE_VERSION "$TOP/dkms.conf")"
fi
bad=$(grep -ho 'dm-chain[-/][0-9][0-9.]*[0-9]' "$TOP/dkms.conf" "$TOP/README.md" |
	grep -vx "dm-chain[-/]$V" | sort -u)
if [ -z "$bad" ]; then
	pass "the dkms commands in dkms.conf and the README name dm-chain $V"
else
	fail "the dkms commands in dkms.conf and the README name dm-chain $V" "found: $bad"
fi
expect "chainadm --version says whether the module is loaded" 0 "dm-chain module" \
	"$CHAINADM" --version
finish
