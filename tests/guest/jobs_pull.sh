#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# chainadm pull (the stream job) on base <- sn1 <- sn2 <- cur, 16 MiB,
# 64 KiB clusters.  Every layer holds its own stamped sectors in clusters
# of its own and over clusters of the layers below, whole and partial
# (copy-up); sn1, sn2 and cur also zero (WRITE_ZEROES) or discard clusters
# that hold data further down, so a stream that copied a ZERO cluster as
# ABSENT, or skipped it, would show the old data again.  Three pulls, each
# on a fresh chain:
#
#   pull --base sn1    ->  base <- sn1 <- cur     (base named by path)
#   pull --base name[3]->  base <- cur            (base named virsh-style)
#   pull (no base)     ->  cur                    (flatten)
#
# For each: the device shows the same bytes as the reference file (built
# with dd beside every write) before and after; the table and cur's backing
# chain are the expected ones; base, sn1 and sn2 are byte-for-byte
# unchanged (stream writes only the active layer) and still valid; cur
# holds exactly the clusters whose newest state above the base is data,
# and at least the ZERO clusters that hide data at or below the base;
# every layer passes chainadm check; the device re-created from cur.img
# shows the same bytes; and sn2, the newest streamed-out layer, still
# shows the disk of the moment it was frozen.
. "$(dirname "$0")/../lib.sh"

jobs_begin pull blkdiscard jq

CS=65536
SIZE=$((16 << 20))
NCL=$((SIZE / CS))
LAYERS=(base sn1 sn2 cur)
# What each layer writes (write_ops syntax): d whole clusters, p partial
# (cluster:KiB offset:KiB length), z write-zeroes, x discard.
OPS=(
	"d:0:48 d:120:8"
	"d:8:8 p:20:8:4 z:30:2 x:36:1 d:100:4 d:121:1"
	"d:12:8 p:20:40:8 d:31:1 z:10:2 x:40:1 d:102:8"
	"d:14:2 p:5:0:4 d:200:2 p:104:60:4 z:44:1"
)

# ST[layer,cluster]: D data, Z zero; unset: ABSENT in that layer.
declare -A ST

stack_hook() {	# stack_hook L : ST gets what layer L holds
	local l=$1 op a b c i
	for op in ${OPS[$l]}; do
		IFS=: read -r op a b c <<< "$op"
		case $op in
		d) for ((i = a; i < a + b; i++)); do ST[$l,$i]=D; done ;;
		p) ST[$l,$a]=D ;;
		z|x) for ((i = a; i < a + b; i++)); do ST[$l,$i]=Z; done ;;
		esac
	done
}

# expect BASE_INDEX : sets EXP_MAPPED (clusters whose newest state above
# the base is data) and EXP_CARRY (newest state above the base is ZERO and
# the chain at or below the base shows data there: the stream must record
# ZERO in cur).  BASE_INDEX -1 = flatten.
expect() {
	local b=$1 top=$((${#LAYERS[@]} - 1)) c l s below
	EXP_MAPPED=0 EXP_CARRY=0
	for ((c = 0; c < NCL; c++)); do
		s=
		for ((l = top; l > b; l--)); do
			s=${ST[$l,$c]:-}
			[ -n "$s" ] && break
		done
		below=
		for ((l = b; l >= 0; l--)); do
			below=${ST[$l,$c]:-}
			[ -n "$below" ] && break
		done
		case $s in
		D) EXP_MAPPED=$((EXP_MAPPED + 1)) ;;
		Z) [ "$below" = D ] && EXP_CARRY=$((EXP_CARRY + 1)) ;;
		esac
	done
}

# The chain, built once: base formatted and written as a one-layer chain,
# then each layer a live snapshot of the one below, then written.
# model.<layer> is the disk at the moment <layer> was frozen.  The layer
# files are saved; every case starts from them.

# run_pull LABEL BASE_INDEX EXPECTED_TABLE EXPECTED_BACKING PULL_ARGS...
run_pull() {
	local label=$1 b=$2 want_table=$3 want_backing=$4 f ok z m
	shift 4
	stack_fresh cur || { tap_fail "$label: create the device"; return; }
	expect "$b"
	log "$label: expect $EXP_MAPPED mapped clusters in cur, $EXP_CARRY carried ZERO"
	for f in base sn1 sn2; do
		sha256sum "$work/$f.img"
	done > "$work/sums"

	# A map before the job leaves the layers' headers in the page cache
	# of their block devices; the map after must not show those.
	"$CHAINADM" map --width 400 $DEV > /dev/null
	timeout 300 "$CHAINADM" pull $DEV "$@" --wait > "$work/pull.out" 2>&1
	ok=$?
	sed 's/^/# /' "$work/pull.out"
	tap_check "$label: chainadm pull $* --wait succeeds" test $ok = 0
	[ $ok = 0 ] || return
	if [[ " $* " == *" --json "* ]]; then
		# The job as it completed, not the device after (no job).
		tap_check "$label: --json shows the completed stream, done = total > 0" \
			jq -e '.blockjobs[0] | .result == "completed" and
			       .type == "stream" and .phase == "completed" and
			       .errors == 0 and .done == .total and .total > 0' \
			"$work/pull.out"
	fi
	tap_check "$label: the device shows the same bytes" \
		cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: the table is now '$want_table'" \
		test "$(dev_layer_names $DEV)" = "$want_table"
	tap_check "$label: no job left in the status" \
		test "$(job_field $DEV type)" = none
	tap_check "$label: base, sn1 and sn2 are byte-for-byte unchanged" \
		sha256sum --quiet -c "$work/sums"
	m=$("$CHAINADM" map --width 400 $DEV | awk '$1 == "cur.img" { print $NF }' |
		tr -d '0-' | tr -d '\n' | wc -c)
	tap_check "$label: chainadm map of the device shows $EXP_MAPPED data clusters in cur" \
		test "$m" = "$EXP_MAPPED"

	"$CHAINADM" remove $DEV || { tap_fail "$label: remove"; return; }
	ok=1
	for f in base sn1 sn2 cur; do
		if ! layer_clean "$work/$f.img"; then
			log "$f.img: flags '$(layer_flags "$work/$f.img")', job $(layer_json "$work/$f.img" job)"
			ok=0
		fi
		"$CHAINADM" check "$work/$f.img" > "$work/check.out" 2>&1 ||
			{ ok=0; sed 's/^/# /' "$work/check.out"; }
	done
	tap_check "$label: every layer is valid (no flag, no job) and passes check" \
		test $ok = 1
	m=$(layer_json "$work/cur.img" mapped-clusters)
	z=$(layer_json "$work/cur.img" zero-clusters)
	log "cur.img: $m mapped, $z zero clusters"
	tap_check "$label: cur holds exactly the $EXP_MAPPED data clusters above the base" \
		test "$m" = $EXP_MAPPED
	tap_check "$label: cur carries the $EXP_CARRY ZERO clusters that hide older data" \
		test "$z" -ge $EXP_CARRY
	tap_check "$label: backing chain of cur.img is '$want_backing'" \
		test "$(backing_names "$work/cur.img")" = "$want_backing"
	if [ "$b" -lt 0 ]; then
		tap_check "$label: cur.img has no backing" \
			test "$(layer_json "$work/cur.img" backing-type)" = none
	else
		tap_check "$label: cur.img's backing UUID is ${LAYERS[b]}'s" \
			test "$(layer_json "$work/cur.img" backing-uuid)" = \
			     "$(layer_json "$work/${LAYERS[b]}.img" uuid)"
	fi

	"$CHAINADM" create $DEV "$work/cur.img" >/dev/null &&
	cmp /dev/mapper/$DEV "$work/model"
	tap_check "$label: re-created from cur.img, the device shows the same bytes" \
		test $? = 0
	"$CHAINADM" remove $DEV >/dev/null 2>&1

	# The newest streamed-out layer is still a valid image of its moment.
	"$CHAINADM" create $CHK "$work/sn2.img" >/dev/null &&
	cmp /dev/mapper/$CHK "$work/model.sn2"
	tap_check "$label: sn2.img still shows the disk of the moment it was frozen" \
		test $? = 0
	"$CHAINADM" remove $CHK >/dev/null 2>&1
}

stack_build || die "cannot build base <- sn1 <- sn2 <- cur"
tap_ok "the chain base <- sn1 <- sn2 <- cur shows the reference's bytes"

run_pull "pull to sn1" 1 "base.img sn1.img cur.img" "cur.img sn1.img base.img" \
	--base "$work/sn1.img"
# name[0] is the active layer, name[3] the bottom of four.
run_pull "pull to base" 0 "base.img cur.img" "cur.img base.img" \
	--base "${DEV}[3]" --json
run_pull "flatten" -1 "cur.img" "cur.img" --verbose

tap_check "kernel log is clean" kmsg_check
tap_end
