#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Metadata write failures on the active layer: the target must drop to
# read-only (or Fail), raise a dm event, keep serving reads, never destroy
# the header a crash needs, and after `chainadm check` (and
# --clear-needs-check) every flushed write must be there.
#
# The active layer (top.img, 64 KiB clusters over a raw base of id-0
# stamps) is seen through a dm-linear "$P-top" with one segment per
# metadata region, so that one region can be swapped for a failing target
# by a table reload while the chain runs:
#
#   sectors 0..7      header slot 0
#   sectors 8..15     header slot 1
#   sectors 16..      the cluster table (up to data_offset)
#   data_offset..     the data area
#
#   /dev/mapper/$P-c    chain 2 raw <base loop> /dev/mapper/$P-top
#
# Every case: write run 1 (chain-stamp, flushes every 10 writes; the last
# flush is K1), break a region, write run 2 (new clusters, flushes every
# 5 writes: its first commit fails), then:
#   - the failure: a dm event, status mode ro (or Fail), needs_check;
#   - reads go on: the live device passes `chain-stamp check --upto-flush
#     K1` (no flushed write lost, nothing misdirected);
#   - after recovery (the region healed or the device rescued, the chain
#     removed, chainadm check, --clear-needs-check, reactivated) the same
#     check passes.
#
# (a) the table region errors: the commit fails in step 2; the needs-check
#     header must reach the disk (the header slots are healthy), the
#     target must refuse the layer until --clear-needs-check.
# (b) step 3, the header write, fails on slot X, the slot not holding the
#     current header (transient error, healed before recovery).  Whether
#     needs-check can reach the disk depends on where the kernel retries;
#     the layer must open at least at the last committed generation.
# (c) as (b), but slot X's sectors are gone for good (an error target that
#     stays: the device is rescued by copying it with slot X unreadable,
#     i.e. zeros, as ddrescue would) and the device tears every write to
#     the other slot Y (dm-flakey corrupt_bio_byte): slot Y holds the only
#     header left, the last committed one.  The kernel must not write it:
#     it must be byte for byte what it was, and the rescued layer must open
#     at that generation with every flushed write.  (The known bug: the
#     generation is bumped before the failed write, so the needs-check
#     write goes to slot Y and the torn write leaves no valid header.)
#
# Cost: under a minute under TCG.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup blockdev dd awk cmp cp truncate timeout python3

PROGS=$CHAIN_ROOT/tests/progs
STAMP=$PROGS/chain-stamp
PATCH=(python3 "$CHAIN_ROOT/tests/layer-patch.py")

SIZE=$((4 << 20))
VSECT=$((SIZE / 512))
CS=65536
P=mdf$$
TOP=$P-top
C=$P-c

modprobe dm-flakey 2>/dev/null
dmsetup targets 2>/dev/null | grep -qw flakey ||
	skip_all "dm-flakey target not available"

tap_plan 19
kmsg_mark

need_tools "$STAMP" "$CHAINADM"
tap_load_module

W=$(mktemp -d /tmp/metadata_fail.XXXXXX) || die "mktemp failed"
on_exit "rm -rf $W"
on_exit detach_loops "$W"
on_exit dm_remove "$TOP"
on_exit dm_remove "$C"

brief() { head -n "${2:-4}" "$1" 2>/dev/null | tr '\n' ' ' | sed 's/ *$//'; }

# Checks of one case: case_ok/case_fail NAME [why]; a fatal step fails the
# rest of the case's checks.
_case_n=0
_case_total=0
_case_label=
case_ok() { _case_n=$((_case_n + 1)); tap_ok "$_case_label: $1"; }
case_fail() { _case_n=$((_case_n + 1)); tap_fail "$_case_label: $1" "${2:-}"; }
case_abort() {
	case_fail "$1" "$2"
	while [ $_case_n -lt $_case_total ]; do
		case_fail "not reached" "an earlier step failed"
	done
	return 1
}

# top_table [REGION TABLE_LINE_REST]... : the dm-linear table of $TOP with
# regions hdr0, hdr1, table, data; a named region gets the given target
# ("error", "flakey ...") instead of linear.
top_table() {
	local -A over=()
	while [ $# -gt 0 ]; do over[$1]=$2; shift 2; done
	local r start len
	while read -r r start len; do
		if [ -n "${over[$r]:-}" ]; then
			echo "$start $len ${over[$r]//@/$start}"
		else
			echo "$start $len linear $TLOOP $start"
		fi
	done <<- EOF
		hdr0 0 8
		hdr1 8 8
		table 16 $((DOFS / 512 - 16))
		data $((DOFS / 512)) $((TSECT - DOFS / 512))
	EOF
}

# reload_top [REGION TARGET]... : swap $TOP's table live.
reload_top() {
	top_table "$@" | dmsetup load "$TOP" &&
	dmsetup suspend "$TOP" && dmsetup resume "$TOP"
}

chain_up() {
	dmsetup create "$C" --table "0 $VSECT chain 2 raw $BLOOP /dev/mapper/$TOP"
}

status_field() { dmsetup status "$C" | awk -v f="$1" '{ print $f }'; }
events() { dmsetup info -c --noheadings -o events "$C" | tr -d ' '; }

# stamp_check DEV : every write flushed in run 1 reads back (run 2's writes
# may or may not show), nothing misdirected.
stamp_check() {
	"$STAMP" check --dev "$1" --journal "$J" --size $SIZE \
		--initial stamped --upto-flush "$K1"
}

# setup : fresh base, top, $TOP and $C, and run 1 written and flushed.
setup() {
	D=$W/$1
	J=$D/journal
	mkdir -p "$D"
	truncate -s $SIZE "$D/base.img" && loop_setup BLOOP "$D/base.img" &&
		"$STAMP" fill --dev "$BLOOP" --size $SIZE >/dev/null &&
		"$CHAINADM" format -q --cluster-size $CS --backing "$D/base.img" \
			--backing-type raw "$D/top.img" &&
		loop_setup TLOOP "$D/top.img" || return 1
	DOFS=$("${PATCH[@]}" "$D/top.img" --get data_offset) || return 1
	TSECT=$(blockdev --getsz "$TLOOP")
	top_table | dmsetup create "$TOP" && chain_up || return 1
	"$STAMP" write --dev "/dev/mapper/$C" --journal "$J" --size $SIZE \
		--ops 30 --seed 1 --cluster $CS --flush-every 10 || return 1
	K1=$(awk '$1 == "flush" { k = $2 } END { print k + 0 }' "$J")
	GEN=$(layer_json "$D/top.img" generation) &&
	SLOT=$(layer_json "$D/top.img" header-slot) || return 1
	echo "run 1: flush $K1; header generation $GEN in slot $SLOT"
}

# fail_run2 : run 2 against the broken region: new clusters, a flush
# every 5 writes; the writer must see an error (its flush or a write).
# Then wait for the dm event.
fail_run2() {
	local ev0 rc
	ev0=$(events)
	"$STAMP" write --dev "/dev/mapper/$C" --journal "$J" --size $SIZE \
		--ops 20 --seed 2 --cluster $CS --flush-every 5 >"$D/run2.out" 2>&1
	rc=$?
	[ $rc -ne 0 ] || { echo "run 2 saw no error"; return 1; }
	timeout 20 dmsetup wait "$C" "$ev0" >/dev/null ||
		{ echo "no dm event after the failure (event $ev0 -> $(events))"; return 1; }
	echo "run 2: $(brief "$D/run2.out" 2); event $ev0 -> $(events)"
}

# teardown_case : remove the chain and $TOP, detach the loops.
teardown_case() {
	dm_remove "$C"
	dm_remove "$TOP"
	losetup -d "$BLOOP" "$TLOOP" 2>/dev/null
}

# recover IMG : the layer in IMG (chain and $TOP removed): the target must
# refuse it while needs-check is set; chainadm check, --clear-needs-check,
# then a chain over base + IMG; prints what it saw.
recover() {
	local img=$1 flags loop
	flags=$(layer_flags "$img") || { echo "chainadm info: layer does not open"; return 1; }
	loop=$(losetup -f --show "$img") || return 1
	if [[ " $flags " == *" needs-check "* ]] &&
	   dmsetup create "$C" --table "0 $VSECT chain 2 raw $BLOOP $loop" 2>/dev/null; then
		echo "the target accepted a layer marked needs-check"
		return 1
	fi
	"$CHAINADM" check "$img" >"$D/check.out" 2>&1 ||
		{ echo "chainadm check: $(brief "$D/check.out")"; return 1; }
	"$CHAINADM" check --clear-needs-check "$img" >"$D/clear.out" 2>&1 ||
		{ echo "chainadm check --clear-needs-check: $(brief "$D/clear.out")"; return 1; }
	flags=$(layer_flags "$img")
	[[ " $flags " != *" needs-check "* ]] || { echo "needs-check still set"; return 1; }
	dmsetup create "$C" --table "0 $VSECT chain 2 raw $BLOOP $loop" ||
		{ echo "cannot reactivate"; return 1; }
	echo "recovered: $(grep -m1 -i 'needs-check' "$D/check.out" || echo 'no needs-check warning')"
}

after_recover_check() {
	stamp_check "/dev/mapper/$C" >"$D/final.out" 2>&1
	local r=$?
	dm_remove "$C"
	[ $r -eq 0 ] && "$CHAINADM" check -q "$1" >>"$D/final.out" 2>&1
}

# ---------------------------------------------------------------- (a)
case_a() {
	_case_label="(a) table write fails"
	_case_n=0
	_case_total=6
	if setup a >"$W/a.setup" 2>&1; then
		case_ok "run 1 written and flushed ($(tail -n 1 "$W/a.setup"))"
	else
		case_abort "setup" "$(brief "$W/a.setup")"
		return
	fi
	reload_top table error || { case_abort "break the table region" "reload failed"; return; }
	if fail_run2 >"$D/fail.out" 2>&1 && [ "$(status_field 7)" = ro ] &&
	   [ "$(status_field 8)" = needs_check ]; then
		case_ok "commit fails: event, mode ro, needs_check ($(tail -n 1 "$D/fail.out"))"
	else
		case_fail "commit fails: event, mode ro, needs_check" \
			"$(brief "$D/fail.out"); status: $(dmsetup status "$C")"
	fi
	if stamp_check "/dev/mapper/$C" >"$D/read.out" 2>&1; then
		case_ok "reads go on: every flushed write reads back"
	else
		case_fail "reads go on" "$(brief "$D/read.out")"
	fi
	local flags
	flags=$(layer_flags "$D/top.img")
	if [[ " $flags " == *" needs-check "* ]]; then
		case_ok "needs-check is on disk (generation $(layer_json "$D/top.img" generation))"
	else
		case_fail "needs-check is on disk" "flags: '$flags'"
	fi
	reload_top
	dm_remove "$C"
	if recover "$D/top.img" >"$D/recover.out" 2>&1; then
		case_ok "refused until chainadm check --clear-needs-check; reactivated"
	else
		case_abort "recovery" "$(brief "$D/recover.out")"
		teardown_case
		return
	fi
	if after_recover_check "$D/top.img"; then
		case_ok "after recovery every flushed write is intact, chainadm check clean"
	else
		case_fail "after recovery every flushed write is intact" "$(brief "$D/final.out")"
	fi
	teardown_case
}

# ---------------------------------------------------------------- (b), (c)
# header_case b|c
header_case() {
	local kind=$1 x y mode flags
	_case_n=0
	if [ "$kind" = b ]; then
		_case_label="(b) header write fails"
		_case_total=5
	else
		_case_label="(c) header write fails, other slot tears"
		_case_total=6
	fi
	if setup "$kind" >"$W/$kind.setup" 2>&1; then
		case_ok "run 1 written and flushed ($(tail -n 1 "$W/$kind.setup"))"
	else
		case_abort "setup" "$(brief "$W/$kind.setup")"
		return
	fi
	y=$SLOT
	x=$((1 - SLOT))
	dd if="$D/top.img" of="$D/slot$y.before" bs=4096 skip="$y" count=1 status=none
	if [ "$kind" = b ]; then
		reload_top "hdr$x" error
	else
		reload_top "hdr$x" error "hdr$y" "flakey $TLOOP @ 0 1 5 corrupt_bio_byte 2001 w 255 0"
	fi || { case_abort "break header slot $x" "reload failed"; return; }
	fail_run2 >"$D/fail.out" 2>&1
	local r=$?
	mode=$(status_field 7)
	if [ $r -eq 0 ] && { [ "$mode" = ro ] || [ "$mode" = Fail ]; } &&
	   [ "$(status_field 8)" = needs_check ]; then
		case_ok "header write to slot $x fails: event, mode $mode, needs_check ($(tail -n 1 "$D/fail.out"))"
	else
		case_fail "header write to slot $x fails: event, mode ro or Fail, needs_check" \
			"$(brief "$D/fail.out"); status: $(dmsetup status "$C")"
	fi
	if stamp_check "/dev/mapper/$C" >"$D/read.out" 2>&1; then
		case_ok "reads go on: every flushed write reads back"
	else
		case_fail "reads go on" "$(brief "$D/read.out")"
	fi
	dm_remove "$C"
	local img=$D/top.img
	if [ "$kind" = c ]; then
		# Slot Y holds the only header left: it must be untouched.
		if dd if="$D/top.img" bs=4096 skip="$y" count=1 status=none |
		   cmp -s - "$D/slot$y.before"; then
			case_ok "slot $y, the last committed header (generation $GEN), was not rewritten"
		else
			case_fail "slot $y, the last committed header (generation $GEN), was not rewritten" \
				"the kernel wrote slot $y after the write to slot $x failed, and the device tore it"
		fi
		# The rescue: slot X unreadable, so zeros in the copy.
		cp --sparse=always "$D/top.img" "$D/rescued.img" &&
			dd if=/dev/zero of="$D/rescued.img" bs=4096 seek="$x" count=1 \
				conv=notrunc status=none
		img=$D/rescued.img
	fi
	reload_top
	local gen
	if gen=$(layer_json "$img" generation 2>"$D/info.err") && [ "$gen" -ge "$GEN" ] &&
	   recover "$img" >"$D/recover.out" 2>&1; then
		case_ok "the layer opens at generation $gen (committed: $GEN); check, --clear-needs-check, reactivated"
	else
		case_fail "the layer opens at generation >= $GEN and recovers" \
			"generation '${gen:-none}': $(brief "$D/info.err") $(brief "$D/recover.out")"
		case_abort "after recovery every flushed write is intact" \
			"the layer cannot be recovered: its flushed writes are lost"
		teardown_case
		return
	fi
	if after_recover_check "$img"; then
		case_ok "after recovery every flushed write is intact, chainadm check clean"
	else
		case_fail "after recovery every flushed write is intact" "$(brief "$D/final.out")"
	fi
	teardown_case
}

case_a
header_case b
header_case c

tap_check "kernel log clean" kmsg_check
tap_done
