# SPDX-License-Identifier: GPL-2.0-only
# shellcheck shell=bash
#
# Shared helpers for dm-chain shell tests (source it; bash only).
#
#   TAP          tap_plan N; tap_ok NAME; tap_fail NAME [why]; tap_skip NAME why;
#                tap_check NAME CMD...; tap_done (exits 0 pass, 1 fail)
#                skip_all why (exits 4: a prerequisite is truly absent)
#   cleanup      on_exit CMD...  (run in reverse order when the test exits)
#   module       chain_load_module / chain_unload_module ($CHAIN_KO)
#   devices      brd_setup N MiB (sets BRD_DEVS), loop_setup VAR FILE [opts]
#                dev_sectors DEV
#   kernel log   kmsg_mark NAME; kmsg_check NAME (fails on BUG/WARNING/...)
#
# Tests run as root in the guest (tools/guest-run) with DM_DISABLE_UDEV=1;
# they write only to /tmp and to block devices they create.

CHAIN_ROOT=${CHAIN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export DM_DISABLE_UDEV=${DM_DISABLE_UDEV:-1}
TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}

# Kernel log lines that fail a test (same list as tools/guest-run).
KMSG_BAD='BUG:|WARNING:|Oops|general protection|blocked for more than|UBSAN|KASAN|list_del corruption|refcount_t|Kernel panic|kernel BUG at'

# ---------------------------------------------------------------- TAP

_tap_n=0
_tap_failed=0

tap_plan() {
	echo "TAP version 13"
	echo "1..$1"
}

tap_ok() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1"
}

tap_fail() {
	_tap_n=$((_tap_n + 1))
	_tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	[ $# -gt 1 ] && echo "# $2"
	return 0
}

tap_skip() {
	_tap_n=$((_tap_n + 1))
	echo "ok $_tap_n - $1 # SKIP $2"
}

# tap_check NAME CMD... : one TAP line for the outcome of CMD.
tap_check() {
	local name=$1
	shift
	if "$@"; then
		tap_ok "$name"
	else
		tap_fail "$name" "failed: $*"
	fi
}

# Exit with the kselftest code for what was reported so far.
tap_done() {
	[ $_tap_failed -eq 0 ] && exit 0
	exit 1
}

skip_all() {
	echo "TAP version 13"
	echo "1..0 # SKIP $*"
	exit 4
}

die() {
	echo "# $TEST_NAME: $*"
	tap_fail "$TEST_NAME: fatal" "$*"
	exit 1
}

log() { echo "# $*"; }

require_root() { [ "$(id -u)" = 0 ] || skip_all "needs root"; }

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip_all "$c not installed"
	done
}

# Only meaningful in the guest: the host kernel has no modules.
require_guest() {
	[ -e /proc/modules ] || skip_all "kernel without module support (run in tools/guest-run)"
	[ "${GUEST:-0}" = 1 ] || [ "${CHAIN_ALLOW_HOST:-0}" = 1 ] ||
		skip_all "guest test; run it with tools/guest-run"
}

# ---------------------------------------------------------------- cleanup

_cleanup=()

# on_exit CMD... : run CMD (eval'd) when the test exits, newest first.
on_exit() { _cleanup+=("$*"); }

_run_cleanup() {
	local rc=$? i
	trap - EXIT INT TERM
	for ((i = ${#_cleanup[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup[$i]}" >/dev/null 2>&1 || true
	done
	exit $rc
}
trap _run_cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- module

# The module for the running kernel: $CHAIN_KO, else the in-tree build if
# it was built for this kernel, else build/<release>/kernel/dm-chain.ko.
chain_find_module() {
	local rel cand
	rel=$(uname -r)
	for cand in ${CHAIN_KO:-} "$CHAIN_ROOT/kernel/dm-chain.ko" \
		    "$CHAIN_ROOT/build/$rel/kernel/dm-chain.ko"; do
		[ -f "$cand" ] || continue
		if [ "$(modinfo -F vermagic "$cand" 2>/dev/null | cut -d' ' -f1)" = "$rel" ]; then
			echo "$cand"
			return 0
		fi
	done
	echo "# no dm-chain.ko built for $rel (make KVER=$rel)" >&2
	return 1
}

chain_load_module() {
	local ko dep
	if grep -q '^dm_chain ' /proc/modules; then
		return 0
	fi
	ko=$(chain_find_module) || return 1
	# insmod does not resolve dependencies; modprobe them first.
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep" || return 1
	done
	insmod "$ko" || return 1
	on_exit chain_unload_module
}

chain_unload_module() {
	grep -q '^dm_chain ' /proc/modules || return 0
	rmmod dm_chain
}

# ---------------------------------------------------------------- devices

# brd_setup N MIB : N RAM disks of MIB MiB each, in BRD_DEVS.
brd_setup() {
	local n=$1 mib=$2 i
	if grep -q '^brd ' /proc/modules; then
		rmmod brd || return 1
	fi
	modprobe brd rd_nr="$n" rd_size=$((mib * 1024)) max_part=0 || return 1
	on_exit "rmmod brd"
	BRD_DEVS=()
	for ((i = 0; i < n; i++)); do
		BRD_DEVS+=("/dev/ram$i")
	done
}

# loop_setup VAR FILE [losetup options] : attach FILE, set VAR to the loop
# device, detach it on exit.  (Not $(...): the cleanup would be registered
# in a subshell and lost.)
loop_setup() {
	local var=$1 file=$2 dev
	shift 2
	modprobe loop 2>/dev/null
	dev=$(losetup -f --show "$@" "$file") || return 1
	on_exit "losetup -d $dev"
	printf -v "$var" '%s' "$dev"
}

dev_sectors() { blockdev --getsz "$1"; }

# dm_remove NAME : remove a dm device if it exists (cleanup helper).
dm_remove() {
	dmsetup info "$1" >/dev/null 2>&1 || return 0
	dmsetup remove --retry "$1"
}

# ---------------------------------------------------------------- kernel log

kmsg_mark() {
	echo "dm-chain-test: begin ${1:-$TEST_NAME}" > /dev/kmsg
}

# kmsg_check [NAME] : 0 when the kernel log since kmsg_mark NAME is clean;
# otherwise print the offending lines (as TAP comments) and return 1.
kmsg_check() {
	local name=${1:-$TEST_NAME} since bad
	since=$(dmesg | sed -n "/dm-chain-test: begin ${name//\//\\/}\$/,\$p")
	[ -n "$since" ] || since=$(dmesg)
	bad=$(printf '%s\n' "$since" | grep -E -A 20 "$KMSG_BAD" |
	      grep -v -e 'taints kernel' -e 'module verification failed')
	[ -z "$bad" ] && return 0
	printf '%s\n' "$bad" | sed 's/^/# /'
	return 1
}

# ---------------------------------------------------------------- data

# pattern_file FILE MIB SEED : MIB MiB of stamped data; every 512-byte
# sector names its seed and index, so a misplaced sector identifies itself.
pattern_file() {
	awk -v n=$(($2 * 2048)) -v s="$3" 'BEGIN {
		for (i = 0; i < n; i++) printf "%-511s\n", "seed " s " sector " i
	}' > "$1"
}
