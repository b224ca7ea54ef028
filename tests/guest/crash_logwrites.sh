#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Crash consistency by power-cut replay: dm-log-writes under the active
# layer, replayed to every FLUSH/FUA point (and every mark).  At each point
# `chainadm check` passes, every write acknowledged before the last flush
# that completed reads back, and no sector shows data that was never
# written to that virtual sector.
#
# Stack, once with 64 KiB and once with 4 KiB clusters:
#
#   /dev/mapper/$P-c    0 32768 chain 2 raw <base loop> /dev/mapper/$P-lw
#   /dev/mapper/$P-lw   log-writes <top loop> <log loop>
#
# base.img is a raw 16 MiB disk full of id-0 stamps (chain-stamp fill, so
# checks use --initial stamped); top.img is a chain layer over it; before
# the log starts top.img is copied to replay.img, the state the log starts
# from.
#
# Workload, all on one chain-stamp journal:
#   idle 1   rewrite 4 KiB of a cluster nothing touched yet with the data
#            it already holds (a copy-up or a new cluster, so a table
#            change) without any flush, sleep 2 s (the target commits on
#            its own within 1 s), then mark idle-1;
#   run 1    OPS stamped writes, fdatasync every 20, mark flush-K after
#            flush K;
#   idle 2   as idle 1, on clusters run 1 did not touch;
#   run 2    OPS more writes, flush numbers continuing.
# The rewrites write back what the sector shows, so they need no journal
# entry.  The log must show a header write between mark flush-N (end of
# run 1) and mark idle-2: a commit nobody flushed for.
#
# Replay: `lw-replay --list` gives every entry; each FLUSH or FUA entry and
# each mark is a point.  Replaying the log incrementally onto a loop device
# of replay.img, at each point:
#   (a) chainadm check replay.img exits 0 (leaks are only warnings);
#   (b) a read-only chain over base + replay passes `chain-stamp check
#       --initial stamped --upto-flush K`, K the last flush-K mark at or
#       before the point (no --upto-flush before the first mark).  The
#       journal given to the check is cut before the line of flush K+1:
#       a write journaled after that was issued after mark K+1, so the
#       state at a point before mark K+1 cannot hold it.
# A point whose state and K equal the previous point's (no data entry in
# between) gets the same verdict and is not checked twice.
#
# Then the whole log replayed must equal top.img byte for byte (the log
# captured every write), and three negative controls on copies of the
# final state prove the checks can fail: a MAPPED entry set ABSENT (the
# last write's cluster) must be reported as lost writes; two MAPPED
# entries swapped must be reported as misdirected data; two entries
# mapping one host cluster must fail chainadm check.
#
# Environment: CLW_OPS (writes per run, default 100), CLW_CLUSTERS
# (default "65536 4096"), CLW_KEEP=DIR (debugging: copy lists, journals
# and outputs there at exit, e.g. a tools/guest-run --outdir).
#
# Cost: about 60 points per cluster size, each a replay step, a chainadm
# check and a chain device read end to end; under TCG about 3 minutes for
# both sizes on an idle machine, several times that on a loaded one.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup blockdev dd od awk cmp cp truncate python3

PROGS=$CHAIN_ROOT/tests/progs
STAMP=$PROGS/chain-stamp
LWREPLAY=$PROGS/lw-replay
CHAINADM=$CHAIN_ROOT/userspace/chainadm
PATCH=(python3 "$CHAIN_ROOT/tests/layer-patch.py")

SIZE=$((16 << 20))
VSECT=$((SIZE / 512))
OPS=${CLW_OPS:-100}
FLUSH_EVERY=20
# make check: 64 KiB clusters (crash_states explores 4 KiB ones);
# make stress (STRESS=1): both sizes.
CLUSTERS=${CLW_CLUSTERS:-65536}
[ "${STRESS:-0}" = 1 ] && CLUSTERS=${CLW_CLUSTERS:-"65536 4096"}
CASE_TESTS=9
P=clw$$

modprobe dm-log-writes 2>/dev/null
dmsetup targets 2>/dev/null | grep -qw log-writes ||
	skip_all "dm-log-writes target not available"

nr_cases=$(echo $CLUSTERS | wc -w)
tap_plan $((2 + nr_cases * CASE_TESTS))
kmsg_mark

need_tools "$STAMP" "$LWREPLAY" "$CHAINADM"
tap_load_module

W=$(mktemp -d /tmp/crash_logwrites.XXXXXX) || die "mktemp failed"
on_exit "rm -rf $W"
# Debugging: CLW_KEEP=DIR (e.g. a tools/guest-run --outdir) receives the
# lists, journals and outputs, not the images.
[ -n "${CLW_KEEP:-}" ] &&
	on_exit "mkdir -p $CLW_KEEP && find $W -type f ! -name '*.img' -exec cp --parents {} $CLW_KEEP/ ';'"

# timed VAR CMD...: run CMD, add its wall time in ms to VAR.
timed() {
	local var=$1 t0=${EPOCHREALTIME/./} r
	shift
	"$@"
	r=$?
	printf -v "$var" '%d' $((${!var} + (${EPOCHREALTIME/./} - t0) / 1000))
	return $r
}

# attach VAR FILE: attach FILE to a loop device (buffered: tmpfs has no
# O_DIRECT), detach it at exit, store the device in VAR.
attach() {
	local dev
	dev=$(losetup -f --show "$2") || return 1
	on_exit "losetup -d $dev"
	printf -v "$1" '%s' "$dev"
}

# dm_create NAME TABLE [ARGS...] (run_case removes its names at exit).
dm_create() {
	local name=$1 table=$2
	shift 2
	dmsetup create "$name" "$@" --table "$table"
}

# Table entry IDX of layer FILE as "TYPE HOST" (TYPE 0 absent, 1 zero,
# 2 mapped, 3 invalid).
entry_of() {
	local v
	v=$(od -An -v -tx8 -j $((8192 + 8 * $2)) -N 8 "$1" | tr -d ' ')
	[ -n "$v" ] || return 1
	echo $(((0x$v >> 62) & 3)) $((0x$v & 0xffffffffffff))
}

# Indexes of the first N MAPPED entries of FILE (NR entries).
mapped_entries() {
	od -An -v -w8 -tx8 -j 8192 -N $((8 * $2)) "$1" |
		awk -v n="$3" '$1 ~ /^[89ab]/ { print NR - 1; if (++k == n) exit }'
}

# ------------------------------------------------------------- one case

_case_n=0
_case_label=

case_ok() { _case_n=$((_case_n + 1)); tap_ok "$_case_label: $1"; }
case_fail() { _case_n=$((_case_n + 1)); tap_fail "$_case_label: $1" "$2"; }

# Fail the rest of this case's TAP lines after a fatal step.
case_abort() {
	case_fail "$1" "$2"
	while [ $_case_n -lt $CASE_TESTS ]; do
		case_fail "not reached" "earlier step failed"
	done
	return 1
}

# First lines of a command's output, as one diagnostic.
brief() { head -n "${2:-4}" "$1" | tr '\n' ' ' | sed 's/ *$//'; }

# idle TAG: a table change nobody flushes, then a mark once the target's
# own periodic commit had time to run.  Rewrites 4 KiB (4 KiB into the
# cluster, or a whole 4 KiB cluster) of one cluster that no journaled write
# and no earlier idle phase touched, with the data it already shows, so the
# journal needs no entry for it.  One dd only: under TCG each process
# start takes long enough for a periodic commit of its own.
idle() {
	local tag=$1 c blk
	c=$(awk -v spc=$((CS / 512)) -v n=$NCL '
		FILENAME ~ /idle$/ { t[$1] = 1; next }
		$1 == "start" {
			for (c = int($3 / spc); c <= int(($3 + $4 - 1) / spc); c++)
				t[c] = 1
		}
		END {
			for (i = 0; i < n; i++) {
				c = (i * 37 + 5) % n
				if (!(c in t)) { print c; exit }
			}
		}' "$D/idle" "$J") && [ -n "$c" ] || return 1
	echo "$c" >> "$D/idle"
	blk=$((c * CS / 4096 + (CS > 4096)))
	dd if="$DEV" of="$DEV" bs=4096 count=1 skip=$blk seek=$blk \
		iflag=direct oflag=direct conv=notrunc status=none || return 1
	sleep 2
	dmsetup message "$LW" 0 mark "idle-$tag"
}

workload() {
	local seed=1 tag
	: > "$J"
	: > "$D/idle"
	for tag in 1 2; do
		idle $tag || { echo "idle $tag failed"; return 1; }
		"$STAMP" write --dev "$DEV" --journal "$J" --size $SIZE \
			--ops $OPS --seed $seed --cluster $CS --max-len 65536 \
			--flush-every $FLUSH_EVERY \
			--mark-cmd "dmsetup message $LW 0 mark flush-%d" || return 1
		seed=$((seed + 1))
	done
}

# Journal for points before mark flush-(K+1): cut before that flush's line.
journal_upto() {
	local k=$1 f=$D/journal.$1
	[ -f "$f" ] || awk -v f="flush $((k + 1)) done " \
		'index($0, f) == 1 { exit } { print }' "$J" > "$f"
	echo "$f"
}

# check_point K: chain-stamp check of base + replay as it is now.
check_point() {
	local k=$1 upto=()
	[ "$k" -gt 0 ] && upto=(--upto-flush "$k")
	dm_create "$CHK" "0 $VSECT chain 2 raw $BLOOP $RLOOP" --readonly ||
		{ echo "cannot create the check device"; return 2; }
	"$STAMP" check --dev "/dev/mapper/$CHK" --journal "$(journal_upto "$k")" \
		--size $SIZE --initial stamped "${upto[@]}"
	local r=$?
	dmsetup remove "$CHK" || { echo "cannot remove $CHK"; r=2; }
	return $r
}

# neg_copy NAME: a fresh copy of the final replay state, attached; sets NLOOP.
neg_copy() {
	cp --sparse=always "$D/replay.img" "$D/$1.img" && attach NLOOP "$D/$1.img"
}

# neg_check NAME PATTERN: chain-stamp check of base + $NLOOP must fail
# with exit 1 and PATTERN in its report.
neg_check() {
	local r
	dm_create "$CHK" "0 $VSECT chain 2 raw $BLOOP $NLOOP" --readonly \
		>"$D/$1.out" 2>&1 || return 2
	"$STAMP" check --dev "/dev/mapper/$CHK" --journal "$J" --size $SIZE \
		--initial stamped --upto-flush "$LASTK" >>"$D/$1.out" 2>&1
	r=$?
	dmsetup remove "$CHK"
	losetup -d "$NLOOP"
	[ $r -eq 1 ] && grep -q "$2" "$D/$1.out"
}

run_case() {
	CS=$1
	NCL=$((SIZE / CS))
	_case_n=0
	_case_label="$((CS / 1024))k clusters"
	D=$W/$((CS / 1024))k
	J=$D/journal
	LW=$P-lw-$((CS / 1024))k
	C=$P-c-$((CS / 1024))k
	CHK=$P-chk
	DEV=/dev/mapper/$C
	mkdir -p "$D"
	on_exit "dm_remove $LW"
	on_exit "dm_remove $C"
	on_exit "dm_remove $CHK"

	# -------- stack
	truncate -s $SIZE "$D/base.img" && attach BLOOP "$D/base.img" &&
		"$STAMP" fill --dev "$BLOOP" --size $SIZE >/dev/null ||
		{ case_abort "stack" "cannot build the stamped base"; return; }
	"$CHAINADM" format -q --cluster-size $CS --backing "$D/base.img" \
		--backing-type raw "$D/top.img" >"$D/format.out" 2>&1 ||
		{ case_abort "stack" "chainadm format: $(brief "$D/format.out")"; return; }
	cp --sparse=always "$D/top.img" "$D/replay.img" &&
		truncate -s 256M "$D/log.img" &&
		attach TLOOP "$D/top.img" && attach LLOOP "$D/log.img" &&
		attach RLOOP "$D/replay.img" ||
		{ case_abort "stack" "cannot set up loop devices"; return; }
	if ! dm_create "$LW" "0 $(blockdev --getsz "$TLOOP") log-writes $TLOOP $LLOOP" ||
	   ! dm_create "$C" "0 $VSECT chain 2 raw $BLOOP /dev/mapper/$LW"; then
		case_abort "stack" "dmsetup create failed"
		return
	fi
	case_ok "stack: chain 2 raw base + top, dm-log-writes under the active layer"

	DOFS=$("${PATCH[@]}" "$D/top.img" --get data_offset) || DOFS=$SIZE
	# -------- workload
	local t0=$SECONDS
	if ! workload >"$D/workload.out" 2>&1; then
		case_abort "workload" "$(brief "$D/workload.out" 6)"
		return
	fi
	if ! dmsetup remove "$C" || ! dmsetup remove "$LW"; then
		case_abort "workload" "cannot remove $C/$LW"
		return
	fi
	LASTK=$(awk '$1 == "flush" { k = $2 } END { print k + 0 }' "$J")
	local nw
	nw=$(grep -c '^ack ' "$J")
	case_ok "workload: $nw stamped writes in 2 runs, $LASTK flushes, 2 idle commits"
	log "workload took $((SECONDS - t0)) s"

	# -------- the log
	if ! "$LWREPLAY" --log "$LLOOP" --list >"$D/list" 2>"$D/list.err"; then
		case_abort "list the log" "$(brief "$D/list.err")"
		return
	fi
	# A header write (slot 0 or 1: 512-byte sectors 0..15) between the
	# last mark of run 1 and mark idle-2.
	local end1
	end1=$(awk '$1 == "run" && $2 == 2 { print k; exit } $1 == "flush" { k = $2 }' "$J")
	if awk -v m="flush-$end1" '
		/^# sectorsize/ { ss = $3 }
		$5 == m { on = 1; next }
		$5 == "idle-2" { exit !hdr }
		on && $4 > 0 && $3 * ss < 8192 && $2 ~ /FUA/ { hdr = 1 }
		END { if (!on) exit 1 }' "$D/list"; then
		case_ok "a commit nobody flushed for (periodic) is in the log"
	else
		case_fail "a commit nobody flushed for (periodic) is in the log" \
			"no header write between mark flush-$end1 and mark idle-2"
	fi

	# Points: "idx K kind data meta".  data=1 when a data entry or K
	# changed since the previous point (else the stamp check would repeat
	# the previous verdict); meta=1 when an entry wrote below data_offset
	# since the previous point (chainadm check reads only the header slots
	# and the table, so otherwise its verdict repeats too).
	awk -v dofs="$DOFS" '
		BEGIN { dchg = 1; mchg = 1; k = 0; last = -1; ss = 512 }
		/^# sectorsize/ { ss = $3; next }
		/^#/ { next }
		{
			if ($4 > 0 && $2 !~ /MARK/) {
				dchg = 1
				if ($3 * ss < dofs) mchg = 1
			}
			kind = ""
			if ($2 ~ /MARK/) {
				if ($5 ~ /^flush-[0-9]+$/) k = substr($5, 7) + 0
				kind = "mark:" $5
			}
			if ($2 ~ /FLUSH|FUA/) kind = kind ($2 ~ /MARK/ ? "," : "") $2
			if (kind == "") next
			if (k != last) dchg = 1
			print $1, k, kind, dchg, mchg
			dchg = 0
			mchg = 0
			last = k
		}' "$D/list" > "$D/points"
	local nflush nmark npts nlog
	nflush=$(awk '$3 ~ /FLUSH|FUA/' "$D/points" | wc -l)
	nmark=$(awk '$3 ~ /^mark:/' "$D/points" | wc -l)
	npts=$(wc -l < "$D/points")
	nlog=$(awk '/^#/ { print $NF }' "$D/list")
	log "log: $nlog entries, $nflush FLUSH/FUA points, $nmark marks"

	# -------- replay to every point
	# Both checks only read the state, so chainadm check runs in the
	# background while the chain device is built and read.
	local idx k kind dchg mchg start=0 nck=0 nst=0 ck_bad=0 st_bad=0
	local rp_err='' ck_first='' st_first='' ms_rp=0 ms_ck=0 ckpid
	t0=$SECONDS
	while read -r -u 3 idx k kind dchg mchg; do
		if ! timed ms_rp "$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" \
			--start $start --limit "$idx" >/dev/null 2>"$D/replay.err"; then
			rp_err="replay to entry $idx failed: $(brief "$D/replay.err")"
			break
		fi
		start=$((idx + 1))
		local t1=${EPOCHREALTIME/./}
		ckpid=
		if [ "$mchg" = 1 ]; then
			nck=$((nck + 1))
			"$CHAINADM" check -q "$D/replay.img" >"$D/ck.out" 2>&1 &
			ckpid=$!
		fi
		if [ "$dchg" = 1 ]; then
			nst=$((nst + 1))
			if ! check_point "$k" >"$D/st.out" 2>&1; then
				st_bad=$((st_bad + 1))
				[ -n "$st_first" ] || st_first="entry $idx ($kind, after flush $k): $(brief "$D/st.out")"
			fi
		fi
		if [ -n "$ckpid" ] && ! wait "$ckpid"; then
			ck_bad=$((ck_bad + 1))
			[ -n "$ck_first" ] || ck_first="entry $idx ($kind, after flush $k): $(brief "$D/ck.out")"
		fi
		ms_ck=$((ms_ck + (${EPOCHREALTIME/./} - t1) / 1000))
	done 3< "$D/points"
	log "replayed to $npts points ($nflush FLUSH/FUA, $nmark marks) in" \
	    "$((SECONDS - t0)) s: lw-replay $((ms_rp / 1000)) s, checks" \
	    "$((ms_ck / 1000)) s (chainadm check on $nck distinct metadata" \
	    "states, chain-stamp check on $nst distinct states)"

	if [ -n "$rp_err" ]; then
		case_fail "chainadm check at all $nflush flush points" "$rp_err"
		case_fail "no lost or misdirected write at all $npts points" "$rp_err"
	else
		if [ $ck_bad -eq 0 ]; then
			case_ok "chainadm check at all $nflush flush points (and $nmark marks)"
		else
			case_fail "chainadm check at all $nflush flush points" \
				"$ck_bad of $nck metadata states fail; first: $ck_first"
		fi
		if [ $st_bad -eq 0 ]; then
			case_ok "no lost or misdirected write at all $npts points"
		else
			case_fail "no lost or misdirected write at all $npts points" \
				"$st_bad of $nst states fail; first: $st_first"
		fi
	fi

	# -------- the whole log
	if "$LWREPLAY" --log "$LLOOP" --replay "$RLOOP" --start $start \
		>/dev/null 2>"$D/replay.err" && cmp -s "$D/replay.img" "$D/top.img"; then
		case_ok "replaying the whole log reproduces top.img"
	else
		case_fail "replaying the whole log reproduces top.img" \
			"$(brief "$D/replay.err") $(cmp "$D/replay.img" "$D/top.img" 2>&1)"
	fi

	# -------- negative controls, on copies of the final state
	local sect cl e a b ha hb r
	sect=$(awk '$1 == "start" { s = $3 } END { print s }' "$J")
	cl=$((sect * 512 / CS))
	e=$(entry_of "$D/replay.img" $cl)
	if [ "${e% *}" != 2 ]; then
		case_fail "negative: an entry set ABSENT shows as lost writes" \
			"entry $cl of the last write (sector $sect) is '$e', not MAPPED"
	elif neg_copy lost && "${PATCH[@]}" "$D/lost.img" --entry $cl=absent:0 &&
	     neg_check lost "lost write"; then
		case_ok "negative: entry $cl set ABSENT shows as lost writes"
		log "$(grep -m1 'lost write' "$D/lost.out")"
	else
		case_fail "negative: an entry set ABSENT shows as lost writes" \
			"entry $cl: $(brief "$D/lost.out")"
	fi

	read -r a b <<< "$(mapped_entries "$D/replay.img" $NCL 2 | tr '\n' ' ')"
	if [ -z "$b" ]; then
		case_fail "negative: two swapped entries show as misdirected data" \
			"fewer than two MAPPED entries"
		case_fail "negative: chainadm check refuses two entries on one host cluster" \
			"fewer than two MAPPED entries"
		return
	fi
	ha=$(entry_of "$D/replay.img" "$a")
	ha=${ha#* }
	hb=$(entry_of "$D/replay.img" "$b")
	hb=${hb#* }
	if neg_copy swap &&
	   "${PATCH[@]}" "$D/swap.img" --entry "$a=mapped:$hb" --entry "$b=mapped:$ha" &&
	   neg_check swap "misdirected"; then
		case_ok "negative: entries $a and $b swapped show as misdirected data"
		log "$(grep -m1 'misdirected' "$D/swap.out")"
	else
		case_fail "negative: two swapped entries show as misdirected data" \
			"entries $a/$b: $(brief "$D/swap.out")"
	fi

	cp --sparse=always "$D/replay.img" "$D/dup.img" &&
		"${PATCH[@]}" "$D/dup.img" --entry "$a=mapped:$hb"
	"$CHAINADM" check -q "$D/dup.img" >"$D/dup.out" 2>&1
	r=$?
	if [ $r -eq 3 ]; then
		case_ok "negative: chainadm check refuses entries $a and $b on one host cluster"
		log "$(brief "$D/dup.out" 1)"
	else
		case_fail "negative: chainadm check refuses two entries on one host cluster" \
			"exit $r: $(brief "$D/dup.out")"
	fi

	# Free this case's devices and memory before the next one.
	losetup -d "$BLOOP" "$TLOOP" "$LLOOP" "$RLOOP" 2>/dev/null
	rm -f "$D"/*.img
}

for cs in $CLUSTERS; do
	run_case "$cs"
done

tap_check "kernel log clean" kmsg_check
tap_done
