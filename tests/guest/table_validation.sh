#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Table validation: every rule of Documentation/dm-chain.rst ("The
# constructor refuses ...") and of dm-chain-format.rst ("Validation
# rules") gets a hand-written table that breaks it.  The load must fail and
# the kernel log must carry the rule's own message (ti->error), with no
# warning or oops.  Where chainadm sees the same problem (layer content:
# chainadm check; chain links: chainadm info --backing-chain or create), it
# must refuse too, naming the problem.  Then the valid chain loads and reads
# back, an unknown message is refused, nothing is left behind and the
# module unloads.
#
# Each case has a directory in /tmp with its layers (16 MiB virtual, 64 KiB
# clusters, sparse files) over one shared raw base:
#
#   base.raw  <-  s1.img  [<-  s2.img  [<-  s3.img]]
#
# copied from a template formatted once by chainadm, backing hints pointing
# into the case directory, then broken with tests/layer-patch.py.  All
# cases are prepared by one python3 process up front (process start-up is
# what costs under TCG), then attached to loop devices (buffered: tmpfs has
# no O_DIRECT) one case at a time.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup blockdev cmp dd python3

MIB=16
SECTORS=$((MIB * 2048))
BYTES=$((MIB << 20))
WORK=/tmp/table_validation
CHAINADM=$CHAIN_ROOT/userspace/chainadm
BAD=tv_bad			# the dm device every refused table goes into

[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built (make -C userspace)"

tap_plan 90
kmsg_mark

# ---------------------------------------------------------------- helpers
#
# Each fork costs under TCG: the helpers run one process per step and read
# its output from a file with builtins.

OUT=$WORK/out			# output of the last command
KLOG=$WORK/klog			# kernel log snapshot

# run CMD...: run CMD with its output in $OUT and its lines in OUT_LINES.
run() {
	local rc
	"$@" >"$OUT" 2>&1
	rc=$?
	mapfile -t OUT_LINES <"$OUT"
	return $rc
}

# find_line NEEDLE LINE...: FOUND is the first LINE containing NEEDLE,
# case-insensitive.
find_line() {
	local needle=${1,,} line
	shift
	for line in "$@"; do
		if [[ ${line,,} == *"$needle"* ]]; then
			FOUND=${line#*] }
			return 0
		fi
	done
	return 1
}

# The kernel log since the latest marker, in KMSG_LINES.
REF=0
kmsg_mark_ref() {
	REF=$((REF + 1))
	echo "dm-chain-test: refusal $REF ;" > /dev/kmsg
}
kmsg_read_ref() {
	local all i
	dmesg >"$KLOG"
	mapfile -t all <"$KLOG"
	for ((i = ${#all[@]} - 1; i >= 0; i--)); do
		[[ ${all[i]} == *"dm-chain-test: refusal $REF ;" ]] && break
	done
	KMSG_LINES=("${all[@]:i+1}")
}
kmsg_bad_ref() {
	local line
	for line in "${KMSG_LINES[@]}"; do
		[[ $line =~ $KMSG_BAD ]] && return 0
	done
	return 1
}

CASE_DIR=
CASE_LOOPS=()

# attach VAR FILE: attach FILE to a loop device, store its path in VAR.
# (Not $(loop_setup): its on_exit would be lost in the subshell.)
attach() {
	losetup -f --show "$2" >"$OUT" || die "cannot attach $2"
	read -r "$1" <"$OUT"
	CASE_LOOPS+=("${!1}")
}

# case_begin NAME N: attach s1..sN of case NAME as L1..LN.
case_begin() {
	local i
	CASE_DIR=$WORK/$1
	for ((i = 1; i <= $2; i++)); do
		attach "L$i" "$CASE_DIR/s$i.img"
	done
}

# case_end: detach the case's loop devices.
case_end() {
	[ ${#CASE_LOOPS[@]} -gt 0 ] && losetup -d "${CASE_LOOPS[@]}"
	CASE_LOOPS=()
}

# detach_all: every loop device still attached to a file of this test.
detach_all() {
	local d
	for d in $(losetup -a 2>/dev/null | grep -F "$WORK/" | cut -d: -f1); do
		losetup -d "$d"
	done
}

# expect_refusal NAME WANT CMD... : CMD (a dmsetup create or load) must
# fail, and the kernel log must show WANT and no warning.  With WANT_ALT
# set, a kernel log that shows WANT_ALT instead passes too (the wording of
# another kernel version).
WANT_ALT=
expect_refusal() {
	local name=$1 want=$2
	shift 2
	kmsg_mark_ref
	if run "$@"; then
		tap_fail "$name" "accepted: $*"
		return 1
	fi
	kmsg_read_ref
	if ! find_line "$want" "${KMSG_LINES[@]}" &&
	   ! { [ -n "$WANT_ALT" ] && find_line "$WANT_ALT" "${KMSG_LINES[@]}"; }; then
		tap_fail "$name" "no '$want' in the kernel log: ${KMSG_LINES[*]}; dmsetup: ${OUT_LINES[*]}"
		return 1
	fi
	if kmsg_bad_ref; then
		tap_fail "$name" "kernel warning: ${KMSG_LINES[*]}"
		return 1
	fi
	tap_ok "$name"
	log "$FOUND"
}

# ctr_refuses NAME WANT TABLE: dmsetup create with TABLE must fail.
ctr_refuses() {
	expect_refusal "ctr refuses $1" "$2" dmsetup create "$BAD" --table "$3" ||
		dm_remove "$BAD" >/dev/null 2>&1
}

# adm_refuses NAME WANT CMD... : a chainadm command must exit non-zero and
# say WANT.
adm_refuses() {
	local name="chainadm refuses $1" want=$2 rc
	shift 2
	run "$@"
	rc=$?
	if [ $rc -eq 0 ]; then
		tap_fail "$name" "exit 0: $*: ${OUT_LINES[*]}"
	elif find_line "$want" "${OUT_LINES[@]}"; then
		tap_ok "$name"
		find_line "chainadm:" "${OUT_LINES[@]}" && log "$FOUND"
	else
		tap_fail "$name" "exit $rc without '$want': ${OUT_LINES[*]}"
	fi
}

# ---------------------------------------------------------------- setup

modprobe dm-mod || die "modprobe dm-mod failed"
modprobe loop || die "modprobe loop failed"
on_exit "rm -rf $WORK"
on_exit detach_all
on_exit "dm_remove $BAD; dm_remove tv_self; dm_remove tv_ok; dm_remove tv_adm"
rm -rf "$WORK"
mkdir -p "$WORK/template" || die "cannot create $WORK"

if chain_load_module; then
	tap_ok "load dm-chain.ko"
else
	tap_fail "load dm-chain.ko"
	tap_done
fi

# The template stack, formatted by chainadm over the shared raw base.
T=$WORK/template
truncate -s ${MIB}M "$WORK/base.raw"
"$CHAINADM" format -q --backing "$WORK/base.raw" --backing-type raw "$T/s1.img" ||
	die "chainadm format s1 failed"
"$CHAINADM" format -q --backing "$T/s1.img" "$T/s2.img" ||
	die "chainadm format s2 failed"
"$CHAINADM" format -q --backing "$T/s2.img" "$T/s3.img" ||
	die "chainadm format s3 failed"

# One directory per case, with s1..sN copied from the template (backing
# hints rewritten to point into the case directory; s1's to the shared
# base unless the case has its own base.raw), then broken as the case says:
# layer-patch.py arguments for a layer, "truncate FILE SIZE", "raw SIZE"
# (a base.raw of its own), "hint FILE TARGET", "pattern FILE MIB SEED
# [STAMP-FILE MIB-OFFSET]".
python3 -S - "$CHAIN_ROOT/tests/layer-patch.py" "$WORK" <<'EOF' || die "cannot prepare the cases"
import importlib.util, os, sys

spec = importlib.util.spec_from_file_location("layer_patch", sys.argv[1])
lp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lp)
W = sys.argv[2]
T = os.path.join(W, "template")
META = 65536		# header slots and table of a 16 MiB layer, 64 KiB clusters

CASES = """
plain 2
magic 1 s1 --slot both magic=0x3f4e49414843444d
csum 1 s1 --keep-csum --raw 2000=ff --raw 6096=ff
incompat 1 s1 --slot both incompat_features=4
version 1 s1 --slot both version=3
version1 1 s1 --slot both version=1
mapbad 1 s1 --raw 12288=02
unmarked 1 s1 --unmarked --entry 3=bad:0 --entry 4=mapped:0
flags8 1 s1 --slot both flags=8
uuid0 1 s1 --slot both uuid=00000000000000000000000000000000
meta 1 s1 --entry 3=mapped:0
beyond 1 s1 --entry 3=mapped:300
dup 1 s1 --entry 3=mapped:5 --entry 4=mapped:5
etype 1 s1 --entry 3=bad:0
truncdata 1 ; truncate s1 32768
trunchdr 1 ; truncate s1 4096
fallback 1 s1 --slot 1 magic=0
needscheck 1 s1 --slot both flags=1
invalid 1 s1 --slot both flags=2
copydest 1 s1 --slot both flags=4
rawshort 1 ; raw 8388608
buuid 2 s2 --slot both backing_uuid=00112233445566778899aabbccddeeff
csize 2 s1 --slot both cluster_size=32768 data_end=2
vsize 2 s1 --slot both virtual_size=8388608
cycledup 3 s3 --slot both uuid=@s1
cycleup 3 s2 --slot both backing_uuid=@s3 ; hint s2 s3
ok 2 ; raw 0 ; pattern base.raw 16 base ; pattern base.orig 16 base ; pattern stamp 1 stamp ; pattern expect 16 base stamp 5
"""

def path(d, name):
    return os.path.join(d, name if "." in name else name + ".img")

def copy_layer(src, dst):
    with open(src, "rb") as f:
        head = f.read(META)
    with open(dst, "wb") as f:
        f.write(head)
        f.truncate(os.path.getsize(src))

def set_hint(path, hint):
    raw = hint.encode()
    with open(path, "r+b") as f:
        for s in (0, 1):
            f.seek(s * lp.BLOCK)
            slot = bytearray(f.read(lp.BLOCK))
            slot[384:384 + 1024] = raw.ljust(1024, b"\0")
            lp.put(slot, "hint_len", len(raw))
            lp.put(slot, "csum", lp.crc32c(bytes(slot[4:])))
            f.seek(s * lp.BLOCK)
            f.write(slot)

def pattern(path, mib, seed, stamp=None, at=0):
    """The sectors tests/lib.sh pattern_file writes, STAMP at AT MiB."""
    lines = ["%-511s\n" % ("seed %s sector %d" % (seed, i))
             for i in range(mib * 2048)]
    if stamp:
        with open(stamp) as f:
            new = f.readlines()
        lines[at * 2048:at * 2048 + len(new)] = new
    with open(path, "w") as f:
        f.write("".join(lines))

for line in CASES.strip().splitlines():
    steps = [s.split() for s in line.split(";")]
    name, n = steps[0][0], int(steps[0][1])
    d = os.path.join(W, name)
    os.mkdir(d)
    own_base = any(s and s[0] == "raw" for s in steps)
    below = os.path.join(d if own_base else W, "base.raw")
    for i in range(1, n + 1):
        copy_layer(os.path.join(T, "s%d.img" % i), path(d, "s%d" % i))
        set_hint(path(d, "s%d" % i), below)
        below = path(d, "s%d" % i)
    if len(steps[0]) > 2:
        steps[0] = steps[0][2:]
    else:
        steps.pop(0)
    for cmd in filter(None, steps):
        if cmd[0] == "truncate":
            os.truncate(path(d, cmd[1]), int(cmd[2]))
        elif cmd[0] == "raw":
            with open(os.path.join(d, "base.raw"), "wb") as f:
                f.truncate(int(cmd[1]))
        elif cmd[0] == "hint":
            set_hint(path(d, cmd[1]), path(d, cmd[2]))
        elif cmd[0] == "pattern":
            stamp = os.path.join(d, cmd[4]) if len(cmd) > 4 else None
            pattern(os.path.join(d, cmd[1]), int(cmd[2]), cmd[3], stamp,
                    int(cmd[5]) if stamp else 0)
        else:
            args = [a.replace("=@", "=%s/" % d) + (".img" if "=@" in a else "")
                    for a in cmd[1:]]
            if lp.main(["layer-patch", path(d, cmd[0])] + args):
                sys.exit("layer-patch %s %s failed" % (cmd[0], args))
EOF

attach LB "$WORK/base.raw"
BASE_LOOP=$LB
CASE_LOOPS=()

# ---------------------------------------------------------------- malformed lines

case_begin plain 2
ctr_refuses "too few arguments" "Too few arguments" "0 $SECTORS chain 1 raw"
ctr_refuses "a non-numeric layer count" "Invalid number of layers" \
	"0 $SECTORS chain x raw $LB"
ctr_refuses "zero layers" "Invalid number of layers" \
	"0 $SECTORS chain 0 raw $LB $L1"
ctr_refuses "256 layers" "Invalid number of layers" \
	"0 $SECTORS chain 256 raw $LB $L1"
ctr_refuses "an unknown base type" "Invalid base type 'qcow2'" \
	"0 $SECTORS chain 2 qcow2 $LB $L1"
ctr_refuses "fewer devices than counted" "Table names 3 layers but lists only 2" \
	"0 $SECTORS chain 3 raw $LB $L1"
ctr_refuses "an unknown feature" "Unknown feature argument 'frobnicate'" \
	"0 $SECTORS chain 2 raw $LB $L1 1 frobnicate"
ctr_refuses "a feature count larger than the features given" \
	"Invalid number of feature arguments" \
	"0 $SECTORS chain 2 raw $LB $L1 2 ignore_discard"
ctr_refuses "a feature count above 10" "Invalid number of feature arguments" \
	"0 $SECTORS chain 2 raw $LB $L1 11$(printf ' ignore_discard%.0s' $(seq 11))"
ctr_refuses "a mirror feature without its three words" \
	"Feature 'mirror' wants <dev> <raw|chain> <full|shallow>" \
	"0 $SECTORS chain 2 raw $LB $L1 2 mirror $L1"
ctr_refuses "an unknown mirror type" "Invalid mirror type 'qcow2'" \
	"0 $SECTORS chain 2 raw $LB $L1 4 mirror $L1 qcow2 full"
ctr_refuses "a shallow raw mirror" "A raw mirror destination cannot be shallow" \
	"0 $SECTORS chain 2 raw $LB $L1 4 mirror $L1 raw shallow"
ctr_refuses "a mirror onto a layer of the chain" "The mirror destination is layer 1 of the chain" \
	"0 $SECTORS chain 2 raw $LB $L1 4 mirror $L1 chain full"
ctr_refuses "bandwidth:abc" "Invalid bandwidth 'abc'" \
	"0 $SECTORS chain 2 raw $LB $L1 1 bandwidth:abc"
ctr_refuses "no_space_timeout:abc" "Invalid no_space_timeout 'abc'" \
	"0 $SECTORS chain 2 raw $LB $L1 1 no_space_timeout:abc"
# Words after the feature group are not part of the syntax.
ctr_refuses "trailing words after the features" \
	"Unexpected argument 'junk' after the feature arguments" \
	"0 $SECTORS chain 2 raw $LB $L1 1 ignore_discard junk"
ctr_refuses "trailing words after no features" \
	"Unexpected argument 'junk' after the feature arguments" \
	"0 $SECTORS chain 2 raw $LB $L1 0 junk"

# ---------------------------------------------------------------- chain shape

# The table puts nothing below s1, whose header says a raw base is there.
ctr_refuses "a backing type that does not match the table" \
	"Layer 0 expects backing type raw below it, but the table gives none" \
	"0 $SECTORS chain 2 chain $L1 $L2"
adm_refuses "a backing type that does not match the table (create --layers)" \
	"raw backing layer" "$CHAINADM" create --layers tv_adm \
	"$CASE_DIR/s1.img" "$CASE_DIR/s2.img"
ctr_refuses "a target length other than the virtual size" \
	"Layer 1 virtual size $BYTES does not match the target length $((BYTES / 2))" \
	"0 $((SECTORS / 2)) chain 2 raw $LB $L1"

# ---------------------------------------------------------------- device identity

ctr_refuses "a device listed twice" "Device $L1 is listed twice (layers 1 and 2)" \
	"0 $SECTORS chain 3 raw $LB $L1 $L1"
adm_refuses "a layer listed twice (create --layers)" \
	"$CASE_DIR/s1.img: appears twice in the list (layers 1 and 2" \
	"$CHAINADM" create --layers --raw-base tv_adm "$WORK/base.raw" \
	"$CASE_DIR/s1.img" "$CASE_DIR/s1.img"
# The same file behind two loop devices: two devices, one layer.
attach L1B "$CASE_DIR/s1.img"
ctr_refuses "one layer through two devices" \
	"Layer 2 has the same UUID as layer 1" \
	"0 $SECTORS chain 3 raw $LB $L1 $L1B"

# The device mapped onto itself: load into live tv_self a table naming it.
# Since 6.2 or so dm_get_device() itself returns -EINVAL for the md's own
# devt, before chain_ctr can say why: then the open failure names it as
# one of three reasons.
WANT_ALT="Layer 1: cannot open device '/dev/mapper/tv_self' (-22): missing, in use, or this device itself"
if run dmsetup create tv_self --table "0 $SECTORS chain 1 raw $LB"; then
	expect_refusal "load refuses the device itself as a chain layer" \
		"Layer 1 is this device itself" \
		dmsetup load tv_self --table "0 $SECTORS chain 2 raw $LB /dev/mapper/tv_self"
	WANT_ALT="Layer 0: cannot open device '/dev/mapper/tv_self' (-22): missing, in use, or this device itself"
	expect_refusal "load refuses the device itself as its lone raw layer" \
		"Layer 0 is this device itself" \
		dmsetup load tv_self --table "0 $SECTORS chain 1 raw /dev/mapper/tv_self"
	WANT_ALT=
	tap_check "tv_self still serves its old table" \
		cmp -s /dev/mapper/tv_self "$WORK/base.raw"
	dm_remove tv_self
else
	tap_fail "load refuses the device itself as a chain layer" "cannot create tv_self"
	tap_fail "load refuses the device itself as its lone raw layer" "cannot create tv_self"
	tap_fail "tv_self still serves its old table" "cannot create tv_self"
fi
case_end

# ---------------------------------------------------------------- header and table

# header_case DIR NAME WANT-CTR WANT-ADM: s1 of DIR is broken; the table
# and chainadm check must refuse it.
header_case() {
	case_begin "$1" 1
	ctr_refuses "$2" "$3" "0 $SECTORS chain 2 raw $LB $L1"
	adm_refuses "$2 (check)" "$4" "$CHAINADM" check "$CASE_DIR/s1.img"
	case_end
}

header_case magic "bad magic" "Layer 1: bad magic" "bad magic"
# A chain copy onto a layer with a bad header: the message says it is
# the copy's destination, not a layer of the table.
case_begin magic 1
attach PL1 "$WORK/plain/s1.img"
ctr_refuses "a copy destination with a bad header" \
	"Copy destination (layer 0 of the copy's view): Layer 0: bad magic" \
	"0 $SECTORS chain 2 raw $LB $PL1 4 mirror $L1 chain full"
case_end
# A flipped byte in the padding of both slots, checksum left alone.
header_case csum "a bad header checksum" "Layer 1: header checksum mismatch" \
	"checksum mismatch"
header_case incompat "an unknown incompatible feature bit" \
	"Layer 1: unknown incompatible feature bits 0x4" "unknown incompatible feature"
header_case version "an unknown format version" \
	"Layer 1: unsupported format version 3" "unsupported format version"
header_case version1 "a version 1 layer (before the table map)" \
	"Layer 1: format version 1 (before the table map) is not read by this build" \
	"format the layer again"
# The 16 MiB layer's table is one block: map bit 1 marks a block past it.
header_case mapbad "a table map bit past the table" \
	"Layer 1: table map marks block 1, past the 1 table blocks" \
	"past the 1 table blocks"
# Entries in a table block the map does not mark are never read: a block
# full of garbage there is what a reused LV holds.
case_begin unmarked 1
if run dmsetup create "$BAD" --table "0 $SECTORS chain 2 raw $LB $L1" &&
   cmp -s /dev/mapper/$BAD "$WORK/base.raw" &&
   run "$CHAINADM" check "$CASE_DIR/s1.img"; then
	tap_ok "a table block the map does not mark is not read (garbage there is ignored)"
else
	tap_fail "a table block the map does not mark is not read (garbage there is ignored)" \
		"${OUT_LINES[*]}"
fi
dm_remove "$BAD"
case_end
header_case flags8 "an unknown state flag" "Layer 1: unknown state flags 0x8" \
	"unknown state flags"
header_case uuid0 "a zero layer UUID" "Layer 1: layer UUID is zero" "UUID is zero"
header_case meta "a table entry pointing into metadata" \
	"Layer 1: entry for cluster 3 points into metadata" "points into metadata"
header_case beyond "a table entry pointing beyond the end of the device" \
	"Layer 1: entry for cluster 3 points beyond the end of the device" \
	"points beyond the end"
header_case dup "two table entries mapping one data cluster" \
	"Layer 1: entry for cluster 4 maps host cluster 5, which another entry already maps" \
	"another entry already maps"
header_case etype "a table entry of type 3" \
	"Layer 1: entry for cluster 3 is malformed" "is malformed"
header_case truncdata "a chain layer truncated below data_offset" \
	"Layer 1: device is truncated: 32768 bytes, but the data area starts at byte 65536" \
	"truncated"
header_case trunchdr "a chain layer truncated below its header slots" \
	"Layer 1 is truncated: 4096 bytes, too small for a header" "truncated"

# A corrupt current slot (generation 1) alone is a torn header write: the
# older slot 0 is used, by the target and by chainadm check (designed).
case_begin fallback 1
if run dmsetup create "$BAD" --table "0 $SECTORS chain 2 raw $LB $L1" &&
   cmp -s /dev/mapper/$BAD "$WORK/base.raw"; then
	tap_ok "ctr falls back to header slot 0 when only slot 1 is corrupt"
else
	tap_fail "ctr falls back to header slot 0 when only slot 1 is corrupt" "${OUT_LINES[*]}"
fi
dm_remove "$BAD"
if run "$CHAINADM" check "$CASE_DIR/s1.img" && find_line "slot 0 is used" "${OUT_LINES[@]}"; then
	tap_ok "chainadm check falls back to slot 0 and warns"
	log "$FOUND"
else
	tap_fail "chainadm check falls back to slot 0 and warns" "${OUT_LINES[*]}"
fi
case_end

# ---------------------------------------------------------------- state flags

# flag_case DIR NAME WANT-CTR WANT-ADM
flag_case() {
	case_begin "$1" 1
	ctr_refuses "$2" "$3" "0 $SECTORS chain 2 raw $LB $L1"
	adm_refuses "$2 (create)" "$4" "$CHAINADM" create tv_adm "$CASE_DIR/s1.img"
	dm_remove tv_adm >/dev/null 2>&1
	case_end
}

flag_case needscheck "a needs-check layer" "Layer 1 is marked needs-check" \
	"s1.img: marked needs-check: run chainadm check --clear-needs-check"
flag_case invalid "an invalidated layer" "Layer 1 was invalidated by a commit" \
	"s1.img: invalidated by a commit into a lower layer: drop it from the chain"
flag_case copydest "the unfinished destination of a copy" \
	"Layer 1 is the unfinished destination of a copy" \
	"s1.img: the unfinished destination of a copy"

# ---------------------------------------------------------------- chain links

# link_case DIR N NAME WANT-CTR WANT-ADM: the table of s1..sN over the raw
# base and chainadm info --backing-chain sN must refuse it.
link_case() {
	local dir=$1 n=$2 table i v
	case_begin "$dir" "$n"
	table="chain $((n + 1)) raw $LB"
	for ((i = 1; i <= n; i++)); do
		v=L$i
		table+=" ${!v}"
	done
	ctr_refuses "$3" "$4" "0 $SECTORS $table"
	adm_refuses "$3 (info)" "$5" \
		"$CHAINADM" info --backing-chain "$CASE_DIR/s$n.img"
	case_end
}

# A raw base of its own, 8 MiB.
attach LB "$WORK/rawshort/base.raw"
link_case rawshort 1 "a raw base shorter than the virtual size" \
	"Raw base is truncated: $((BYTES / 2)) bytes" "smaller than the virtual size"
attach LB "$WORK/rawshort/base.raw"
ctr_refuses "a lone raw layer shorter than the target" \
	"Raw layer is truncated: $((SECTORS / 2)) sectors" "0 $SECTORS chain 1 raw $LB"
case_end
LB=$BASE_LOOP

link_case buuid 2 "a wrong backing UUID" \
	"Layer 2 backing UUID 00112233-4455-6677-8899-aabbccddeeff does not match layer 1" \
	"backing UUID mismatch"
# s1 is valid on its own at 32 KiB clusters.
link_case csize 2 "mismatched cluster sizes" \
	"Layer 2 cluster size 65536 does not match layer 1 cluster size 32768" \
	"cluster size"
link_case vsize 2 "mismatched virtual sizes" \
	"Layer 1 virtual size $((BYTES / 2)) does not match the target length $BYTES" \
	"virtual size"
# Cycle 1: s3 carries s1's UUID, so one layer would appear twice.
link_case cycledup 3 "two layers with the same UUID (a cycle)" \
	"Layer 3 has the same UUID as layer 1" "appears twice"
# Cycle 2: s2 names s3, the layer above it, as its backing layer.
link_case cycleup 3 "a backing UUID naming a layer above (a cycle)" \
	"Layer 2 names layer 3 above it as its backing layer: a cycle" \
	"backing chain loops"

# ---------------------------------------------------------------- nothing leaked

leftovers() {
	local d bad=
	for d in $(dmsetup ls 2>/dev/null | awk '/^tv_/ {print $1}'); do
		bad+="dm:$d "
	done
	for d in /sys/block/loop*/holders/*; do
		[ -e "$d" ] && bad+="holder:$d "
	done
	[ -z "$bad" ] && return 0
	echo "# left over: $bad"
	return 1
}
tap_check "no device or holder link left after the refusals" leftovers

# ---------------------------------------------------------------- positive control

CASE_DIR=$WORK/ok
attach LB "$CASE_DIR/base.raw"
attach L1 "$CASE_DIR/s1.img"
attach L2 "$CASE_DIR/s2.img"
tap_check "the valid chain loads: chain 3 raw base s1 s2" \
	run dmsetup create tv_ok --table "0 $SECTORS chain 3 raw $LB $L1 $L2"
tap_check "the valid chain reads back the base" \
	cmp /dev/mapper/tv_ok "$CASE_DIR/base.orig"

kmsg_mark_ref
if ! run dmsetup message tv_ok 0 frobnicate &&
   find_line "Invalid argument" "${OUT_LINES[@]}" &&
   kmsg_read_ref && find_line "unrecognised message 'frobnicate'" "${KMSG_LINES[@]}"; then
	tap_ok "an unknown message is refused with -EINVAL and a log line"
	log "$FOUND"
else
	tap_fail "an unknown message is refused with -EINVAL and a log line" \
		"${OUT_LINES[*]}; ${KMSG_LINES[*]}"
fi

# Write a stamp through the chain at 5 MiB; it lands in s2, not in the base.
write_stamp() {
	dd if="$CASE_DIR/stamp" of=/dev/mapper/tv_ok bs=1M seek=5 oflag=direct status=none &&
	blockdev --flushbufs /dev/mapper/tv_ok
}
tap_check "write through the valid chain" write_stamp
tap_check "the valid chain reads back what was written" \
	cmp /dev/mapper/tv_ok "$CASE_DIR/expect"
tap_check "remove the valid chain" dm_remove tv_ok
case_end
offline_ok() {
	cmp "$CASE_DIR/base.raw" "$CASE_DIR/base.orig" &&
	"$CHAINADM" check -q "$CASE_DIR/s2.img"
}
tap_check "the base is untouched and chainadm check passes on s2" offline_ok
reassemble() {
	"$CHAINADM" create tv_ok "$CASE_DIR/s2.img" >/dev/null &&
	cmp /dev/mapper/tv_ok "$CASE_DIR/expect" &&
	"$CHAINADM" remove tv_ok
}
tap_check "chainadm create reassembles it and it reads back" reassemble

# ---------------------------------------------------------------- teardown

detach_all
tap_check "nothing left behind" leftovers
tap_check "dm-chain unloads (no leaked references)" chain_unload_module
tap_check "kernel log clean" kmsg_check
tap_done
