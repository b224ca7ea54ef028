#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Smoke test: a one-layer chain over a raw device behaves like the device.
# Load dm-chain.ko (chainadm --version names its release), map "chain 1
# raw <dev>" (bash completion offers it as a device), read it back byte
# for byte against the layer, write through it and read back (the write
# lands in the raw layer in place), remove it, unload, and no kernel
# warning.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup blockdev cmp dd

MIB=16
tap_plan 12
kmsg_mark

if chain_load_module; then
	tap_ok "load dm-chain.ko"
else
	tap_fail "load dm-chain.ko"
	tap_done
fi
dmsetup targets | grep -qw chain && tap_ok "chain target registered" ||
	tap_fail "chain target registered" "$(dmsetup targets | tr '\n' ' ')"
rel=$(sed -n 's/^#define DM_CHAIN_RELEASE "\(.*\)"$/\1/p' \
	"$CHAIN_ROOT/kernel/dm-chain-release.h")
ver=$("$CHAIN_ROOT/userspace/chainadm" --version 2>&1)
log "$ver"
tap_check "chainadm --version shows the loaded module's release, $rel" \
	eval 'test -n "$rel" && grep -qx "dm-chain module $rel" <<< "$ver"'

brd_setup 1 $MIB || die "cannot set up brd"
dev=${BRD_DEVS[0]}
sectors=$(dev_sectors "$dev")
pattern_file /tmp/smoke.base $MIB base
dd if=/tmp/smoke.base of="$dev" bs=1M oflag=direct status=none || die "cannot fill $dev"

on_exit dm_remove c0
if dmsetup create c0 --table "0 $sectors chain 1 raw $dev"; then
	tap_ok "create c0: 0 $sectors chain 1 raw $dev"
else
	tap_fail "create c0: 0 $sectors chain 1 raw $dev"
	tap_done
fi
log "table: $(dmsetup table c0)"
log "status: $(dmsetup status c0)"

tap_check "c0 reads back the raw layer byte for byte" \
	cmp /dev/mapper/c0 /tmp/smoke.base

# bash completion offers the chain device where a verb wants one.
completes_c0() {
	local bc=/usr/share/bash-completion/bash_completion
	[ -r $bc ] || return 1
	bash --norc --noprofile -c '. "$1"; . "$2"; PATH=$3:$PATH
		COMP_LINE="chainadm job c"; COMP_POINT=${#COMP_LINE}
		COMP_WORDS=(chainadm job c); COMP_CWORD=2
		_chainadm chainadm c job; printf "%s\n" "${COMPREPLY[@]}"' _ $bc \
		"$CHAIN_ROOT/userspace/chainadm.bash-completion" \
		"$CHAIN_ROOT/userspace" | grep -qx c0
}
tap_check "bash completion of 'chainadm job c' offers c0" completes_c0

# Overwrite 3 MiB in the middle, plus one unaligned 4 KiB write.
pattern_file /tmp/smoke.new 3 new
cp /tmp/smoke.base /tmp/smoke.expect
dd if=/tmp/smoke.new of=/tmp/smoke.expect bs=1M seek=5 conv=notrunc status=none
dd if=/tmp/smoke.new of=/tmp/smoke.expect bs=512 count=8 skip=3 seek=20001 conv=notrunc status=none
write_through() {
	dd if=/tmp/smoke.new of=/dev/mapper/c0 bs=1M seek=5 oflag=direct status=none &&
	dd if=/tmp/smoke.new of=/dev/mapper/c0 bs=512 count=8 skip=3 seek=20001 \
		oflag=direct status=none &&
	blockdev --flushbufs /dev/mapper/c0
}
tap_check "write through c0" write_through
tap_check "c0 reads back what was written" \
	cmp /dev/mapper/c0 /tmp/smoke.expect
blockdev --flushbufs "$dev"
tap_check "the write landed in the raw layer in place" \
	cmp "$dev" /tmp/smoke.expect

tap_check "remove c0" dmsetup remove c0
tap_check "unload dm-chain" chain_unload_module
tap_check "kernel log clean" kmsg_check
tap_done
