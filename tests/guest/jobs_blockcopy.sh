#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The blockcopy letter diagram of the seed, one 64 KiB cluster per letter
# on an 8-cluster disk:
#
#   base    AAAABBBB                     base    AAAABBBB
#   snap1   --CC-D--         copy        snap1   --CC-D--   (left as it was)
#   guest   AACCBDBB    --shallow -->    dest    --CC-D-E   (E written after
#                         --pivot        guest   AACCBDBE    the pivot)
#
# Shallow: the destination holds exactly the clusters of the old active
# layer plus what the guest writes after the pivot (C C D E), stands on
# the same base, and the old snap1 keeps its table and data (its header
# only loses the job record) and still shows AACCBDBB.  Also with a
# destination formatted by the user (--reuse-external).  Full: the
# destination holds all eight clusters and has no backing; to a chain
# layer (new or prepared) and to a raw file (which then holds exactly the
# letters).  Last, a full copy of a disk with holes into a layer that
# already holds data: the holes must not show the old data.  Every content
# check is a cmp against a file of letters built with dd; which clusters a
# layer holds is read from chainadm map and info.  Last, a shallow copy
# cut short by removing the device resumes when it is created again.
. "$(dirname "$0")/../lib.sh"

jobs_begin copy

CS=65536
NCL=8
SIZE=$((NCL * CS))

# letters FILE STRING : one cluster of each letter of STRING ('.' zeros).
letters() {
	local s=$2 i
	: > "$1"
	for ((i = 0; i < ${#s}; i++)); do
		if [ "${s:i:1}" = . ]; then
			head -c $CS /dev/zero >> "$1"
		else
			head -c $CS /dev/zero | tr '\0' "${s:i:1}" >> "$1"
		fi
	done
}

# put LETTER CLUSTER [DEVICE] : write one cluster of LETTER to the device.
put() {
	head -c $CS /dev/zero | tr '\0' "$1" |
		dd of=/dev/mapper/"${3:-$DEV}" bs=$CS seek="$2" oflag=direct \
		   iflag=fullblock conv=notrunc status=none
}

# sees LABEL STRING : the device reads exactly the letters of STRING.
sees() {
	letters "$work/ref" "$2"
	tap_check "$1: the guest sees $2" cmp /dev/mapper/$DEV "$work/ref"
}

# row LAYER_FILE NAME : the map row of NAME in the chain that ends at
# LAYER_FILE, one character per cluster, '#' for data.
row() {
	"$CHAINADM" map --width 80 "$1" |
		awk -v n="$2" '$1 == n { print $NF }' | sed 's/[A-Za-z#]/#/g'
}

# base <- snap1, built once and saved.
build() {
	"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/base.img" &&
	"$CHAINADM" create $DEV "$work/base.img" >/dev/null &&
	put A 0 && put A 1 && put A 2 && put A 3 &&
	put B 4 && put B 5 && put B 6 && put B 7 &&
	"$CHAINADM" snapshot $DEV "$work/snap1.img" >/dev/null &&
	put C 2 && put C 3 && put D 5 &&
	"$CHAINADM" remove $DEV &&
	save_files "$work/saved" "$work/base.img" "$work/snap1.img"
}


# copy_case LABEL DEST SHALLOW(0|1) COPY_ARGS...
copy_case() {
	local label=$1 dest=$2 shallow=$3 name snap1_body rc
	shift 3
	name=$(basename "$dest")
	stack_fresh snap1 || { tap_fail "$label: create the device"; return; }
	sees "$label: before the copy" AACCBDBB
	if [ "$name" = dest.img ] && [[ " $* " == *" --reuse-external "* ]]; then
		if [ "$shallow" = 1 ]; then
			"$CHAINADM" format -q --backing "$work/base.img" "$dest"
		else
			"$CHAINADM" format -q --size $SIZE --cluster-size $CS "$dest"
		fi || { tap_fail "$label: prepare $name"; return; }
	fi
	sha256sum "$work/base.img" > "$work/sums"
	snap1_body=$(layer_body_sum "$work/snap1.img")

	timeout 300 "$CHAINADM" copy $DEV "$dest" "$@" --pivot --wait \
		> "$work/copy.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/copy.out"
	tap_check "$label: chainadm copy $name${*:+ $*} --pivot --wait succeeds" test $rc = 0
	[ $rc = 0 ] || return
	if [ "$shallow" = 1 ]; then
		tap_check "$label: the table is base.img $name" \
			test "$(dev_layer_names $DEV)" = "base.img $name"
	elif [ "$name" = dest.raw ]; then
		tap_check "$label: the table is one raw layer, $name" \
			test "$(dmsetup table $DEV | awk '{print $4, $5}')" = "1 raw" -a \
			     "$(dev_layer_names $DEV)" = "$name"
	else
		tap_check "$label: the table is $name alone" \
			test "$(dev_layer_names $DEV)" = "$name"
	fi
	sees "$label: after the pivot" AACCBDBB
	put E 7
	sees "$label: after writing E" AACCBDBE
	"$CHAINADM" remove $DEV || { tap_fail "$label: remove"; return; }

	if [ "$shallow" = 1 ]; then
		tap_check "$label: $name holds C C D E only (map --##-#-#, 4 allocated)" \
			test "$(row "$dest" "$name")" = "--##-#-#" -a \
			     "$(layer_json "$dest" mapped-clusters)" = 4 -a \
			     "$(layer_json "$dest" allocated-clusters)" = 4
		tap_check "$label: $name stands on base.img" \
			test "$(layer_json "$dest" backing-uuid)" = \
			     "$(layer_json "$work/base.img" uuid)"
		tap_check "$label: the guest sees base, base, dest, dest, base, dest, base, dest" \
			test "$("$CHAINADM" map --width 80 "$dest" | awk '$1 == "guest" { print $NF }')" = AABBABAB
	elif [ "$name" = dest.raw ]; then
		letters "$work/ref" AACCBDBE
		tap_check "$label: $name holds exactly AACCBDBE" cmp "$dest" "$work/ref"
	else
		tap_check "$label: $name holds all eight clusters (map ########, 8 allocated)" \
			test "$(row "$dest" "$name")" = "########" -a \
			     "$(layer_json "$dest" mapped-clusters)" = 8 -a \
			     "$(layer_json "$dest" allocated-clusters)" = 8
		tap_check "$label: $name has no backing" \
			test "$(layer_json "$dest" backing-type)" = none
	fi
	[ "$name" = dest.raw ] ||
		tap_check "$label: $name is valid and passes check" \
			eval 'layer_clean "$dest" && "$CHAINADM" check "$dest" >/dev/null'

	tap_check "$label: base.img is byte-for-byte unchanged" \
		sha256sum --quiet -c "$work/sums"
	tap_check "$label: snap1.img: same table and data, no flag, no job, map --##-#--" \
		test "$(layer_body_sum "$work/snap1.img")" = "$snap1_body" -a \
		     "$(row "$work/snap1.img" snap1.img)" = "--##-#--" -a \
		     -z "$(layer_flags "$work/snap1.img")" -a \
		     "$(layer_json "$work/snap1.img" job)" = false

	if [ "$name" = dest.raw ]; then
		"$CHAINADM" create --layers --raw-base $DEV "$dest" >/dev/null
	else
		"$CHAINADM" create $DEV "$dest" >/dev/null
	fi
	sees "$label: re-created from $name" AACCBDBE
	"$CHAINADM" remove $DEV >/dev/null 2>&1
	letters "$work/ref" AACCBDBB
	"$CHAINADM" create $CHK "$work/snap1.img" >/dev/null &&
	cmp /dev/mapper/$CHK "$work/ref"
	tap_check "$label: the old chain base <- snap1 still shows AACCBDBB" test $? = 0
	"$CHAINADM" remove $CHK >/dev/null 2>&1
}

build || die "cannot build base <- snap1"

copy_case "shallow" "$work/dest.img" 1 --shallow
copy_case "shallow, reuse-external" "$work/dest.img" 1 --shallow --reuse-external
copy_case "full" "$work/dest.img" 0
copy_case "full, reuse-external" "$work/dest.img" 0 --reuse-external
copy_case "full, raw" "$work/dest.raw" 0 --raw

# ---- a full copy into a used layer: clusters the disk does not hold
#
# hole.img alone shows AA..BB.. (clusters 2, 3, 6, 7 held by no layer);
# used.img, formatted without backing, holds XXXXXXXX.  After
# copy --reuse-external --pivot the guest must see AA..BB.., not X.

label="full, reuse-external over a used layer"
"$CHAINADM" remove $DEV >/dev/null 2>&1
detach_loops "$work"
rm -f "$work"/*.img "$work"/dest.*
if "$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/hole.img" &&
   "$CHAINADM" format -q --size $SIZE --cluster-size $CS "$work/used.img" &&
   "$CHAINADM" create $CHK "$work/used.img" >/dev/null &&
   for c in 0 1 2 3 4 5 6 7; do put X $c $CHK || exit 1; done &&
   "$CHAINADM" remove $CHK &&
   "$CHAINADM" create $DEV "$work/hole.img" >/dev/null &&
   put A 0 && put A 1 && put B 4 && put B 5; then
	sees "$label: before the copy" AA..BB..
	timeout 300 "$CHAINADM" copy $DEV "$work/used.img" --reuse-external \
		--pivot --wait > "$work/copy.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/copy.out"
	tap_check "$label: chainadm copy --reuse-external --pivot --wait succeeds" \
		test $rc = 0
	sees "$label: after the pivot" AA..BB..
	"$CHAINADM" remove $DEV
	tap_check "$label: used.img now maps only the four data clusters" \
		test "$(layer_json "$work/used.img" mapped-clusters)" = 4
	"$CHAINADM" create $DEV "$work/used.img" >/dev/null
	sees "$label: re-created from used.img" AA..BB..
	"$CHAINADM" remove $DEV >/dev/null 2>&1
else
	tap_fail "$label: prepare hole.img and used.img"
fi

# ---- a shallow copy cut short, resumed by creating the device again
#
# snap.img holds 64 clusters of random data over an 8 MiB base; the copy
# runs at 64 KiB/s (a cluster a second, a minute in all), is paused after
# three seconds and the device removed, with part of the clusters in
# dest.img (it comes back paused).  chainadm create finds the copy
# recorded in snap.img and loads the same table: the kernel must take
# the destination it records, clusters and all, and finish the copy.

label="shallow, cut short and resumed"
"$CHAINADM" remove $DEV >/dev/null 2>&1
detach_loops "$work"
rm -f "$work"/*.img "$work"/dest.*
if "$CHAINADM" format -q --size $((8 << 20)) --cluster-size $CS "$work/base.img" &&
   "$CHAINADM" create $DEV "$work/base.img" >/dev/null &&
   "$CHAINADM" snapshot $DEV "$work/snap.img" >/dev/null &&
   dd if=/dev/urandom of=/dev/mapper/$DEV bs=$CS count=64 oflag=direct \
      status=none && dd if=/dev/mapper/$DEV of="$work/ref" bs=1M status=none; then
	"$CHAINADM" copy $DEV "$work/dest.img" --shallow --bandwidth 64K \
		> "$work/copy.out" 2>&1
	tap_check "$label: the copy starts" test $? = 0
	sleep 3
	# Paused first, and slow: in a loaded CI guest the pause and the
	# remove have taken four seconds.
	"$CHAINADM" job $DEV --pause
	"$CHAINADM" remove $DEV
	held=$(layer_json "$work/dest.img" mapped-clusters)
	log "$label: dest.img held $held of 64 clusters when the device went"
	tap_check "$label: cut short with part of the clusters copied" \
		test "${held:-0}" -gt 0 -a "${held:-0}" -lt 64
	"$CHAINADM" create $DEV "$work/snap.img" > "$work/create.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/create.out"
	tap_check "$label: create loads the recorded copy onto its destination" test $rc = 0
	"$CHAINADM" job $DEV --bandwidth 0 --resume >/dev/null 2>&1
	timeout 300 "$CHAINADM" job $DEV --pivot --wait > "$work/copy.out" 2>&1
	rc=$?
	sed 's/^/# /' "$work/copy.out"
	tap_check "$label: the resumed copy gets ready and pivots" test $rc = 0
	tap_check "$label: the table is base.img dest.img" \
		test "$(dev_layer_names $DEV)" = "base.img dest.img"
	tap_check "$label: the guest sees what it wrote" cmp /dev/mapper/$DEV "$work/ref"
	"$CHAINADM" remove $DEV >/dev/null 2>&1
else
	tap_fail "$label: prepare base.img and snap.img"
fi

tap_check "kernel log is clean" kmsg_check
tap_end
