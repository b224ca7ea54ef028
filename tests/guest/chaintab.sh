#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Chains that come back after a reboot (issue 20): a chaintab lists four
# devices, a chain of files with table features, a lone raw device, a
# noauto one and a _netdev one.  chainadm assemble creates what --all
# selects, twice without harm, a named one and the _netdev ones on
# request.  Then every command that changes a device's top layer
# (snapshot, copy --pivot, commit --active --pivot, the copy of a lone
# raw device) must leave the device's line naming the new top, and
# nothing else in the file changed: each time the device is removed and
# assembled again from the chaintab, and must read what it read before.
# A device left on another top by dmsetup is reported; a line whose layer
# is gone fails alone.  Power cuts during jobs and pivots, and assemble
# after them, are in crash_jobs (a host test).
. "$(dirname "$0")/../lib.sh"

jobs_begin assemble jq
tap_plan 33

MIB=$((1 << 20))
SIZE=$((32 * MIB))
export CHAINADM_CHAINTAB=$work/chaintab
CT=$CHAINADM_CHAINTAB
for d in ct1 ct2 ct3 ct4; do on_exit "$CHAINADM" remove $d; done

# snap NAME FILE : what the device reads now.
snap() { dd if=/dev/mapper/$1 of="$2" bs=1M iflag=direct status=none; }
# write NAME MIB_OFFSET MIBS : random data, flushed.
write() {
	dd if=/dev/urandom of=/dev/mapper/$1 bs=1M seek="$2" count="$3" \
	   oflag=direct conv=fsync status=none
}
# top_of NAME : the top layer the chaintab's line names.
top_of() { awk -v n="$1" '$1 == n { print $2 }' "$CT"; }
opts_of() { awk -v n="$1" '$1 == n { print $3 }' "$CT"; }
# again NAME : removed and assembled from the chaintab alone, it reads
# what it read before, and its top is the line's.
again() {
	local name=$1
	snap "$name" "$work/$name.before" &&
	"$CHAINADM" remove "$name" &&
	"$CHAINADM" assemble "$name" > "$work/assemble.out" &&
	cmp "/dev/mapper/$name" "$work/$name.before" &&
	test "$(dev_layer_names "$name" | awk '{ print $NF }')" = "$(basename "$(top_of "$name")")"
}
# rest_same : every line but those of ct1 and ct2 is as written.
rest_same() { diff <(grep -v '^ct[12][[:space:]]' "$CT") <(grep -v '^ct[12][[:space:]]' "$work/chaintab.orig"); }

# ct1: a raw base file with data, an overlay with more; ct2: a raw file.
truncate -s $SIZE "$work/base.raw"
dd if=/dev/urandom of="$work/base.raw" bs=1M count=8 conv=notrunc status=none
"$CHAINADM" format -q --backing "$work/base.raw" --backing-type raw "$work/sn1.img"
"$CHAINADM" format -q --backing "$work/sn1.img" "$work/act.img"
dd if=/dev/urandom of="$work/lone.raw" bs=1M count=32 status=none
for n in 3 4; do "$CHAINADM" format -q --size 16M "$work/ct$n.img"; done
cat > "$CT" <<EOF
# dm-chain devices, assembled at boot by chainadm assemble --all
# <name>  <top-layer>  [<options>]

ct1	$work/act.img	ignore-discard,no-space-timeout=30
ct2	$work/lone.raw	raw
ct3 $work/ct3.img noauto
   ct4 $work/ct4.img _netdev
EOF
cp "$CT" "$work/chaintab.orig"

out=$("$CHAINADM" assemble --all 2>&1)
tap_check "assemble --all creates ct1 and ct2" \
	test -b /dev/mapper/ct1 -a -b /dev/mapper/ct2
tap_check "... not the noauto and _netdev devices" \
	test ! -e /dev/mapper/ct3 -a ! -e /dev/mapper/ct4
tap_check "ct1 is base <- sn1 <- act, with the line's table features" \
	eval 'test "$(dev_layer_names ct1)" = "base.raw sn1.img act.img" &&
	      dmsetup table ct1 | grep -q "2 ignore_discard no_space_timeout:30\$"'
tap_check "list --json: both devices, their size, layers and active layer" \
	eval '"$CHAINADM" list --json | jq -e --arg w "$work" "
	      [.chaindevices[] | select(.name == \"ct1\" or .name == \"ct2\")] ==
	      [{name: \"ct1\", size: $SIZE, layers: 3, active: (\$w + \"/act.img\")},
	       {name: \"ct2\", size: $SIZE, layers: 1, active: (\$w + \"/lone.raw\")}]" >/dev/null'
tap_check "list -o NAME,JOB,BASE --raw --noheadings: those columns, bare" \
	eval 'test "$("$CHAINADM" list -o NAME,JOB,BASE --raw --noheadings | grep "^ct")" = "ct1 none $work/base.raw
ct2 none $work/lone.raw"'
tap_check "status --json ct1: the device's line, its three layers its children, bottom first" \
	eval '"$CHAINADM" status --json ct1 | jq -e --arg w "$work" "
	      .chaindevices | length == 1 and (.[0] |
	      .name == \"ct1\" and .type == \"device\" and .size == $SIZE and
	      .layers == 3 and .suspended == false and .job == \"none\" and
	      .features != null and .file == null and
	      ([.children[] | [.name, .type, .file]] ==
	       [[\"ct1[2]\", \"raw\", (\$w + \"/base.raw\")],
	        [\"ct1[1]\", \"chain\", (\$w + \"/sn1.img\")],
	        [\"ct1[0]\", \"chain\", (\$w + \"/act.img\")]]) and
	      ([.children[] | .size, .layers, .suspended] | all(. == null)))" >/dev/null'
tap_check "status -o name,file --noheadings ct2: a tree, the raw file under the device" \
	eval 'test "$(LC_ALL=C "$CHAINADM" status -o name,file --noheadings ct2 | sed "s/ *\$//; s/  */ /g")" = "ct2
\`-ct2[0] $work/lone.raw"'
tap_check "ct2 is the lone raw file, and reads it" \
	eval 'test "$(dev_layer_names ct2)" = lone.raw && cmp /dev/mapper/ct2 "$work/lone.raw"'
write ct1 4 8
write ct2 20 2
snap ct1 "$work/ct1.model"
snap ct2 "$work/ct2.model"
t1=$(dmsetup table ct1) t2=$(dmsetup table ct2)
out=$("$CHAINADM" assemble --all 2>&1)
rc=$?
tap_check "assemble --all again: exit 0, both already assembled, tables unchanged" \
	eval 'test $rc = 0 && test "$(grep -c "already assembled" <<< "$out")" = 2 &&
	      test "$(dmsetup table ct1)" = "$t1" -a "$(dmsetup table ct2)" = "$t2" &&
	      cmp /dev/mapper/ct1 "$work/ct1.model" && cmp /dev/mapper/ct2 "$work/ct2.model"' ||
	echo "$out" | sed 's/^/# /'
tap_check "assemble ct3 creates the noauto device by name" \
	eval '"$CHAINADM" assemble ct3 >/dev/null && test -b /dev/mapper/ct3 -a ! -e /dev/mapper/ct4'
tap_check "assemble --all --netdev creates the _netdev device only" \
	eval '"$CHAINADM" assemble --all --netdev >/dev/null && test -b /dev/mapper/ct4'
"$CHAINADM" remove ct3 && "$CHAINADM" remove ct4
tap_check "nothing above changed the chaintab" cmp "$CT" "$work/chaintab.orig"

# ---- every change of the top layer moves the line with it
"$CHAINADM" snapshot ct1 "$work/sn2.img" > "$work/out" 2>&1
tap_check "snapshot: the line of ct1 names the new overlay, options kept" \
	eval 'test "$(top_of ct1)" = "$work/sn2.img" &&
	      test "$(opts_of ct1)" = ignore-discard,no-space-timeout=30'
tap_check "... and the rest of the file is as it was" rest_same
write ct1 12 4
tap_check "... removed and assembled again, ct1 reads the same" again ct1

"$CHAINADM" copy ct1 "$work/copy.img" --pivot --wait > "$work/out" 2>&1
tap_check "copy --pivot: the line names the destination" \
	eval 'test "$(top_of ct1)" = "$work/copy.img" && rest_same'
write ct1 0 2
tap_check "... assembled again, ct1 is the copy alone and reads the same" \
	eval 'again ct1 && test "$(dev_layer_names ct1)" = copy.img'

"$CHAINADM" snapshot ct1 "$work/sn3.img" >/dev/null
write ct1 16 3
"$CHAINADM" commit ct1 --active --pivot --wait > "$work/out" 2>&1
tap_check "commit --active --pivot: the line names the base again" \
	eval 'test "$(top_of ct1)" = "$work/copy.img" && rest_same'
tap_check "... assembled again, ct1 reads the same" again ct1

"$CHAINADM" copy ct2 "$work/ct2.img" --pivot --wait > "$work/out" 2>&1
tap_check "copy --pivot of the lone raw ct2: the line names the chain layer, raw dropped" \
	eval 'test "$(top_of ct2)" = "$work/ct2.img" && test -z "$(opts_of ct2)" && rest_same' ||
	sed 's/^/# /' "$work/out"
write ct2 2 2
tap_check "... assembled again, ct2 reads the same" again ct2
# ct2 back on its raw file by hand: then a raw copy keeps raw
"$CHAINADM" remove ct2
sed -i "s|^ct2.*|ct2\t$work/lone.raw\traw|" "$CT"
"$CHAINADM" assemble ct2 >/dev/null
write ct2 8 1
"$CHAINADM" copy ct2 "$work/ct2-copy.raw" --raw --pivot --wait > "$work/out" 2>&1
tap_check "copy --raw --pivot of a lone raw device: the line names the raw copy, still raw" \
	eval 'test "$(top_of ct2)" = "$work/ct2-copy.raw" -a "$(opts_of ct2)" = raw'
tap_check "... assembled again, ct2 reads the same" again ct2

# ---- pull and intermediate commit keep the top
"$CHAINADM" snapshot ct1 "$work/sn4.img" >/dev/null
"$CHAINADM" snapshot ct1 "$work/sn5.img" >/dev/null
write ct1 5 1
"$CHAINADM" commit ct1 --top "$work/sn4.img" --wait >/dev/null 2>&1
"$CHAINADM" pull ct1 --wait >/dev/null 2>&1
tap_check "commit and pull leave the line on the same top" \
	eval 'test "$(top_of ct1)" = "$work/sn5.img" && test "$(dev_layer_names ct1)" = sn5.img'
tap_check "... assembled again, ct1 reads the same" again ct1

# ---- a snapshot that fails leaves the line as it was
before=$(cat "$CT")
"$CHAINADM" snapshot ct1 "$work/no-such-dir/sn6.img" > "$work/out" 2>&1
tap_check "a refused snapshot leaves the chaintab as it was" \
	eval 'test "$(cat "$CT")" = "$before"'

# ---- a line of the device that does not parse: no change of top at all
cp "$CT" "$work/ct.good"
sed -i 's/^ct1\(.*\)no-space-timeout=30/ct1\1no-space-timout=30/' "$CT"
tbl=$(dmsetup table ct1)
out=$("$CHAINADM" snapshot ct1 "$work/sn7.img" 2>&1)
rc=$?
tap_check "a snapshot refuses to leave a line it cannot rewrite (a typo in it) behind" \
	eval 'test $rc != 0 && grep -q "names ct1 but is refused" <<< "$out" &&
	      test "$(dmsetup table ct1)" = "$tbl" -a ! -e "$work/sn7.img"' ||
	echo "$out" | sed 's/^/# /'
cp "$work/ct.good" "$CT"

# ---- a device on another top than the line's is named, not touched
"$CHAINADM" format -q --backing "$work/sn5.img" "$work/hand.img"
hand=$(losetup -f --show "$work/hand.img")
tbl=$(dmsetup table ct1)
read -r -a t <<< "$tbl"
n=${t[3]}
dmsetup suspend ct1
dmsetup load ct1 --table "${t[*]:0:3} $((n + 1)) ${t[*]:4:n+1} $(cat /sys/block/${hand#/dev/}/dev) ${t[*]:5+n}"
dmsetup resume ct1
out=$("$CHAINADM" assemble --all 2>&1)
rc=$?
tap_check "a device run on another top (dmsetup): assemble warns, naming both, exit 0" \
	eval 'test $rc = 0 && grep -q "ct1: warning: runs with top layer $work/hand.img, but the chaintab names $work/sn5.img" <<< "$out"' ||
	echo "$out" | sed 's/^/# /'
dmsetup suspend ct1 && dmsetup load ct1 --table "$tbl" && dmsetup resume ct1
losetup -d "$hand"

# ---- a line whose layer is gone fails alone
"$CHAINADM" remove ct2
mv "$work/ct2-copy.raw" "$work/moved.raw"
"$CHAINADM" remove ct1
out=$("$CHAINADM" assemble --all 2>&1)
rc=$?
tap_check "a missing top layer: exit 2, the message names it, ct1 is assembled anyway" \
	eval 'test $rc = 2 && grep -q "ct2-copy.raw" <<< "$out" && test -b /dev/mapper/ct1 -a ! -e /dev/mapper/ct2' ||
	echo "$out" | sed 's/^/# /'
mv "$work/moved.raw" "$work/ct2-copy.raw"
tap_check "assemble --all once the layer is back: ct2 is created, ct1 left alone" \
	eval '"$CHAINADM" assemble --all > "$work/out" 2>&1 && cmp /dev/mapper/ct2 "$work/ct2.before" &&
	      grep -q "ct1: already assembled" "$work/out"'

# ---- the file itself: comments, blank lines and other lines untouched
tap_check "after all of it, the comments, blank line and ct3, ct4 lines are as written" rest_same
tap_check "no temporary file left beside the chaintab" \
	test -z "$(find "$work" -maxdepth 1 -name 'chaintab.chainadm-*')"
tap_check "the kernel log is clean" kmsg_check
tap_done
