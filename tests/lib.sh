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
#                hold_load_module (tests/kmod/dm-hold.ko, target "hold"),
#                inject_load_module (tests/kmod/chain-inject.ko)
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
_tap_plan=

tap_plan() {
	_tap_plan=$1
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

# Exit with the kselftest code for what was reported so far.  A test that
# reported fewer or more checks than it planned failed, whatever they said.
tap_done() {
	if [ -n "$_tap_plan" ] && [ "$_tap_n" -ne "$_tap_plan" ]; then
		echo "# planned $_tap_plan checks, reported $_tap_n"
		exit 1
	fi
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

# need_tools PATH...: the project's own tools, built by make: a missing
# one is a failure, not a skip.
need_tools() {
	local t
	for t; do
		[ -x "$t" ] || die "$t not built (make -C tests/progs; make -C userspace)"
	done
}

# tap_load_module: load dm-chain.ko (and loop) as a check of its own; the
# test ends there if it cannot.
tap_load_module() {
	if chain_load_module; then
		tap_ok "load dm-chain.ko"
	else
		tap_fail "load dm-chain.ko"
		tap_done
	fi
	modprobe loop 2>/dev/null
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

# test_kmod_load FILE MODULE : the test-only tests/kmod/FILE.ko built for
# the running kernel ($HOLD_KO or $INJECT_KO, else the in-tree build, else
# build/<release>/tests/kmod/FILE.ko), loaded as MODULE; unloaded on exit.
test_kmod_load() {
	local file=$1 mod=$2 rel cand
	grep -q "^$mod " /proc/modules && return 0
	rel=$(uname -r)
	for cand in ${HOLD_KO:-} ${INJECT_KO:-} "$CHAIN_ROOT/tests/kmod/$file.ko" \
		    "$CHAIN_ROOT/build/$rel/tests/kmod/$file.ko"; do
		[ -f "$cand" ] && [ "$(basename "$cand" .ko)" = "$file" ] || continue
		[ "$(modinfo -F vermagic "$cand" 2>/dev/null | cut -d' ' -f1)" = "$rel" ] ||
			continue
		modprobe dm-mod || return 1
		insmod "$cand" || return 1
		on_exit "rmmod $mod"
		return 0
	done
	echo "# no $file.ko built for $rel (make modules-all)" >&2
	return 1
}

# hold_load_module : the test-only target "hold" (tests/kmod/dm-hold.c).
hold_load_module() { test_kmod_load dm-hold dm_hold; }

# inject_load_module : tests/kmod/chain-inject.c (delays and allocation
# failures inside dm-chain, by kretprobes); after dm-chain is loaded.
inject_load_module() { test_kmod_load chain-inject chain_inject; }

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

# ---------------------------------------------------------------- block jobs
#
#   TAP, plan last   tap_begin; ...; tap_end (for tests whose count of checks
#                    depends on how far a case got; exits like tap_done)
#   content          stamp_range / zero_range DEV MODEL ...; write_ops
#   layer headers    layer_json FILE KEY; layer_flags FILE; layer_body_sum FILE
#                    backing_names TOP; dev_layer_names NAME
#                    layer_clean FILE; layer_invalidated FILE
#   job status       job_field NAME FIELD; wait_job_phase NAME SECS PHASE...
#   time             now; elapsed_at_least START END SECS
#   loops            detach_loops DIR
#   fixtures         save_files DIR FILE...; restore_files DIR
#   job tests        jobs_begin VERB [CMD...]; stack_build; stack_layers FIRST;
#                    stack_fresh TOP

CHAINADM=${CHAINADM:-$CHAIN_ROOT/userspace/chainadm}

tap_begin() { echo "TAP version 13"; }

tap_end() {
	echo "1..$_tap_n"
	tap_done
}

# stamp_range DEV MODEL TAG OFFSET LEN : write LEN bytes at byte OFFSET (both
# multiples of 4 KiB) to DEV (O_DIRECT if it is a block device) and the same
# bytes to the reference file MODEL.  Every 4 KiB block starts with
# "TAG block N", N its 4 KiB block on the virtual disk, then spaces: a block
# read from a wrong place, or shifted by any number of sectors, differs.
stamp_range() {
	local dev=$1 model=$2 tag=$3 off=$4 len=$5 direct=''
	local tmp=${TMPDIR:-/tmp}/stamp.$$
	[ -n "${_stamp_tmp:-}" ] || { _stamp_tmp=$tmp; on_exit rm -f "$tmp"; }
	awk -v f=$((off / 4096)) -v n=$((len / 4096)) -v t="$tag" 'BEGIN {
		for (i = f; i < f + n; i++) printf "%-4095s\n", t " block " i
	}' > "$tmp" || return 1
	[ -b "$dev" ] && direct=direct,
	dd if="$tmp" of="$dev" bs=64K seek="$off" oflag=${direct}seek_bytes \
		conv=notrunc status=none &&
	dd if="$tmp" of="$model" bs=64K seek="$off" oflag=seek_bytes \
		conv=notrunc status=none
}

# zero_range DEV MODEL OFFSET LEN [discard] : WRITE_ZEROES (or DISCARD) the
# range of DEV; zeros into MODEL.  Whole clusters read as zeros after both.
zero_range() {
	local dev=$1 model=$2 off=$3 len=$4
	if [ "${5:-}" = discard ]; then
		blkdiscard -o "$off" -l "$len" "$dev" || return 1
	else
		blkdiscard -z -o "$off" -l "$len" "$dev" || return 1
	fi
	dd if=/dev/zero of="$model" bs=64K seek="$off" count="$len" \
		oflag=seek_bytes iflag=count_bytes conv=notrunc status=none
}

# write_ops DEV MODEL TAG CLUSTER_BYTES OP... : apply OPs to DEV and MODEL:
#   d:F:N      stamp whole clusters F .. F+N-1
#   p:C:O:L    stamp L KiB at O KiB into cluster C (a partial write)
#   z:F:N      WRITE_ZEROES whole clusters F .. F+N-1;  x:F:N  DISCARD them
write_ops() {
	local dev=$1 model=$2 tag=$3 cs=$4 op a b c
	shift 4
	for op in "$@"; do
		IFS=: read -r op a b c <<< "$op"
		case $op in
		d) stamp_range "$dev" "$model" "$tag" $((a * cs)) $((b * cs)) ;;
		p) stamp_range "$dev" "$model" "$tag" $((a * cs + b * 1024)) $((c * 1024)) ;;
		z) zero_range "$dev" "$model" $((a * cs)) $((b * cs)) ;;
		x) zero_range "$dev" "$model" $((a * cs)) $((b * cs)) discard ;;
		*) echo "# write_ops: bad op $op" >&2; false ;;
		esac || return 1
	done
}

# layer_json FILE KEY : field KEY of `chainadm info --json FILE` (its
# libsmartcols table "layers", one line), unquoted; "null" for none.
layer_json() {
	local out
	out=$("$CHAINADM" info --json "$1") || return 1
	printf '%s\n' "$out" | jq -r --arg k "$2" '.layers[0][$k]'
}

# layer_flags FILE : the header's state flags, space-separated ("" if none).
layer_flags() {
	local out
	out=$("$CHAINADM" info --json -o flags "$1") || return 1
	printf '%s\n' "$out" | jq -r '.layers[0].flags | map(select(. != null)) | join(" ")'
}

layer_clean() { [ -z "$(layer_flags "$1")" ] && [ "$(layer_json "$1" job)" = false ]; }

layer_invalidated() { layer_flags "$1" | grep -qw invalidated; }

# layer_body_sum FILE : checksum of a chain layer without its two header
# slots (the cluster table and the data area).
layer_body_sum() { tail -c +8193 "$1" | sha256sum | cut -d' ' -f1; }

# backing_names TOP : basenames of the layers `info --backing-chain` finds
# from TOP down, space-separated, top first.
backing_names() {
	local out
	out=$("$CHAINADM" info --backing-chain --json -o filename "$1") || return 1
	printf '%s\n' "$out" | jq -r '.layers[].filename' |
		xargs -r -n 1 basename | paste -sd ' '
}

# dev_layer_names NAME : basenames of the files behind the device's table
# layers, bottom first, space-separated (status --json: the layers are the
# device's children).
dev_layer_names() {
	local out
	out=$("$CHAINADM" status --json -o name,file "$1") || return 1
	printf '%s\n' "$out" | jq -r '.chaindevices[0].children[].file' |
		xargs -r -n 1 basename | paste -sd ' '
}

# job_field NAME FIELD : one job word of the kernel status line (after the
# six chain words): type phase done total rate bandwidth errors last_error.
job_field() {
	local line n
	line=$(dmsetup status "$1") || return 1
	case $2 in
	type) n=10 ;; phase) n=11 ;; done) n=12 ;; total) n=12 ;;
	rate) n=13 ;; bandwidth) n=14 ;; errors) n=15 ;; last_error) n=16 ;;
	*) return 1 ;;
	esac
	# "0 <len> chain" and six chain words come first.
	echo "$line" | awk -v n=$n -v f="$2" '{
		w = $n
		if (f == "done") sub(/\/.*/, "", w)
		if (f == "total") sub(/.*\//, "", w)
		print w
	}'
}

# wait_job_phase NAME SECS PHASE... : poll the status until the job is in
# one of PHASEs; 1 after SECS seconds (the phase it was in is printed).
wait_job_phase() {
	local name=$1 secs=$2 p end want
	shift 2
	end=$(($(date +%s) + secs))
	while :; do
		p=$(job_field "$name" phase)
		for want in "$@"; do
			[ "$p" = "$want" ] && return 0
		done
		if [ "$(date +%s)" -ge $end ]; then
			echo "# $name: job phase '$p' after $secs s, expected: $*"
			return 1
		fi
		sleep 0.2
	done
}

now() { date +%s.%N; }

# elapsed_at_least START END SECS : END - START >= SECS (decimals allowed).
elapsed_at_least() {
	awk -v s="$1" -v e="$2" -v m="$3" 'BEGIN { exit !(e - s >= m) }'
}

# detach_loops DIR : detach the loop devices of files under DIR.
detach_loops() {
	losetup -a | grep -F "($1/" | cut -d: -f1 | xargs -r -n 1 losetup -d
}

# save_files DIR FILE... / restore_files DIR : keep pristine copies of
# layer files (sparse, all from one directory) in DIR and put them back at
# the same paths, so a chain is built once and every case starts from it
# (backing hints stay valid).  Detach the files first: restore writes into
# the same inodes.
save_files() {
	local dir=$1
	shift
	mkdir -p "$dir" && cp --sparse=always "$@" "$dir/" &&
	dirname "$1" > "$dir/.from"
}

restore_files() {
	local from
	read -r from < "$1/.from" && cp --sparse=always "$1"/* "$from/"
}

# jobs_begin VERB [CMD...] : the start of a chainadm job test: root, a
# guest, dmsetup and friends and CMDs, a chainadm that has VERB; TAP
# begun, dm-chain and loop loaded, the kernel log marked.  $work is a
# scratch directory, $DEV and $CHK two device names (the test's name);
# all of them go at exit.
jobs_begin() {
	local verb=$1 name
	shift
	name=$(basename "$0" .sh)
	require_root
	require_guest
	require_cmd dmsetup losetup sha256sum cmp "$@"
	[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
	tap_begin
	chain_load_module || die "cannot load dm-chain"
	"$CHAINADM" "$verb" --help >/dev/null 2>&1 || die "chainadm has no $verb verb"
	modprobe loop
	kmsg_mark
	work=$(mktemp -d "/tmp/$name.XXXXXX")
	DEV=$name
	CHK=${name}_chk
	on_exit rm -rf "$work"
	on_exit detach_loops "$work"
	on_exit "$CHAINADM" remove "$DEV"
	on_exit "$CHAINADM" remove "$CHK"
}

# stack_layers FIRST : live snapshots and writes over $DEV for LAYERS[FIRST..]
# ($work/<layer>.img), each layer's writes being write_ops OPS[l] in
# clusters of $CS, into $work/model too; model.<layer> keeps the disk of the
# moment <layer> was frozen.  A test's stack_hook L, if defined, runs after
# layer L is written.  Ends with the device compared to the model.
stack_layers() {
	local l
	for ((l = $1; l < ${#LAYERS[@]}; l++)); do
		if [ "$l" -gt 0 ]; then
			cp "$work/model" "$work/model.${LAYERS[l - 1]}" &&
			"$CHAINADM" snapshot "$DEV" "$work/${LAYERS[l]}.img" >/dev/null ||
				return 1
		fi
		# shellcheck disable=SC2086	# OPS[l] is a list of ops
		write_ops "/dev/mapper/$DEV" "$work/model" "${LAYERS[l]}" "$CS" ${OPS[$l]} ||
			return 1
		if declare -F stack_hook >/dev/null; then
			stack_hook "$l" || return 1
		fi
	done
	cmp "/dev/mapper/$DEV" "$work/model"
}

# stack_build : the chain LAYERS[0] <- ... (see stack_layers) over a
# formatted base of $SIZE bytes, built once; its files are saved for
# stack_fresh and the device is removed.
stack_build() {
	"$CHAINADM" format -q --size "$SIZE" --cluster-size "$CS" "$work/${LAYERS[0]}.img" &&
	truncate -s "$SIZE" "$work/model" &&
	"$CHAINADM" create "$DEV" "$work/${LAYERS[0]}.img" >/dev/null &&
	stack_layers 0 && "$CHAINADM" remove "$DEV" &&
	save_files "$work/saved" "$work"/*.img
}

# stack_fresh TOP : $DEV over the saved layer files, TOP.img the active
# layer; $CHK and any destination ($work/dest.*) are gone.
stack_fresh() {
	"$CHAINADM" remove "$DEV" >/dev/null 2>&1
	"$CHAINADM" remove "$CHK" >/dev/null 2>&1
	detach_loops "$work"
	rm -f "$work"/dest.*
	restore_files "$work/saved" &&
	"$CHAINADM" create "$DEV" "$work/$1.img" >/dev/null
}
