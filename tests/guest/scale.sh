#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# A huge chain, and kernel memory that follows the data, not the disk.
#
# SCALE_TIB (1 in make check; 16 with STRESS=1, make stress) TiB of
# virtual size, sparse files on tmpfs, 64 KiB clusters (2^28 of them at 16
# TiB).  An empty chain over a raw base that size comes up, and costs no
# more than its directory.  Then a chain of chain layers that size: data is written at both ends and in
# the middle through each layer; the device must show exactly what a
# sparse model file shows, in every written window and in random probes
# elsewhere.  Then a live snapshot, a pull, an intermediate commit and a
# full copy to a chain layer with pivot, each checked against the model
# again, and the copy assembled alone.
#
# Kernel memory (Slab + VmallocUsed + Percpu, after dropping caches) is
# measured with and without the chain.  What the huge chain costs beyond
# a 1 GiB chain of the same depth (the device, its loop devices, buffers)
# must stay within the bound of Documentation/dm-chain.rst: 64 KiB per TiB
# of virtual size plus 16 bytes per cluster some chain layer maps, with
# 1 MiB of measurement slack (slab use moves by some 400 KiB from one
# measurement to the next).
#
# Activation reads the table map and only the table blocks it marks: the
# bytes read from each layer's loop device while the chain is created
# (chainadm's header reads included) are counted, for an empty chain of
# 64 layers and for a written layer, against headers + map + the marked
# blocks.  A version 1 layer read its whole table: 128 MiB per TiB.  The index before the directory of leaves
# needed 8 bytes per virtual cluster: 128 MiB at 1 TiB, and a 16 TiB chain
# was refused (2 GiB) with a kernel warning.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup cmp jq python3

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"
CA=$CHAINADM

tap_plan 23
chain_load_module || die "cannot load dm-chain"
modprobe loop
kmsg_mark

work=$(mktemp -d /tmp/scale.XXXXXX)
on_exit rm -rf "$work"
on_exit dmsetup remove_all
on_exit "$CA" remove big
on_exit "$CA" remove small
on_exit "$CA" remove deep
cd "$work" || die "no work dir"

T=$((1 << 40))
SCALE_TIB=${SCALE_TIB:-$([ "${STRESS:-0}" = 1 ] && echo 16 || echo 1)}
V=$((SCALE_TIB * T))	# virtual size
CL=65536
SLACK=$((1 << 20))	# measurement noise allowed, bytes

# Windows written, as byte offsets: both ends and the middle of the disk.
ENDS="0 $((V / 2)) $((V - 4 * 1048576))"

# mem : kernel memory in bytes, caches dropped first
mem() {
	sync
	echo 3 > /proc/sys/vm/drop_caches
	awk '/^(Slab|VmallocUsed|Percpu):/ { s += $2 } END { print s * 1024 }' /proc/meminfo
}

# put DEV OFF LEN TAG : TAG's pattern at OFF of DEV and of the model
put() {
	head -c "$3" /dev/urandom > pat &&
	dd if=pat of="$1" bs=64k seek="$2" oflag=seek_bytes,direct conv=notrunc status=none &&
	dd if=pat of=model bs=64k seek="$2" oflag=seek_bytes conv=notrunc status=none
}

# same DEV : every written window and 32 random 1 MiB probes read as in the model
same() {
	local off i
	for off in $ENDS; do
		cmp -s <(dd if="$1" bs=1M skip=$((off >> 20)) count=4 iflag=direct status=none) \
			<(dd if=model bs=1M skip=$((off >> 20)) count=4 status=none) ||
			{ echo "# $1 differs from the model in the window at byte $off"; return 1; }
	done
	for i in $(seq 32); do
		off=$(( (RANDOM * 32768 + RANDOM) % (V >> 20) ))
		cmp -s <(dd if="$1" bs=1M skip=$off count=1 iflag=direct status=none) \
			<(dd if=model bs=1M skip=$off count=1 status=none) ||
			{ echo "# $1 differs from the model at MiB $off"; return 1; }
	done
}

# small_cost DEPTH RAW : what a 1 GiB chain of DEPTH layers costs, bytes
small_cost() {
	local i m0 m1 b=
	[ "$2" = raw ] && { truncate -s 1G s0.img; b="-b $work/s0.img -F raw"; }
	# shellcheck disable=SC2086
	"$CA" format -q -s 1G $b s1.img
	m0=$(mem)
	"$CA" create small "$work/s1.img" > /dev/null
	for ((i = 2; i <= $1; i++)); do
		"$CA" snapshot small "$work/s$i.img" > /dev/null
	done
	m1=$(mem)
	"$CA" remove small
	rm -f s*.img
	echo $((m1 - m0))
}

# loop_mark : remember every loop device's sectors read so far (a loop
# device keeps its counters when it is detached and attached again)
declare -A LOOP_READ0
loop_mark() {
	local f
	LOOP_READ0=()
	for f in /sys/block/loop*/stat; do
		LOOP_READ0[$f]=$(awk '{ print $3 }' "$f")
	done
}

# loop_reads : bytes read since loop_mark through the loop devices now
# attached to the files of this test
loop_reads() {
	local dev f sum=0 n
	for dev in $(losetup -a | grep -F "$work/" | cut -d: -f1); do
		f=/sys/block/${dev#/dev/}/stat
		n=$(awk '{ print $3 }' "$f")
		sum=$((sum + (n - ${LOOP_READ0[$f]:-0}) * 512))
	done
	echo $sum
}

# reads_within NAME LAYERS MARKED : what the loop devices read since
# loop_mark is at most LAYERS times (both header slots read a few times,
# and the map) plus MARKED table blocks
reads_within() {
	local got map bound
	got=$(loop_reads)
	map=$(( ( (V / CL * 8 / 4096 + 32767) / 32768) * 4096 ))
	bound=$(( $2 * (8 * 8192 + map) + $3 * 4096 ))
	echo "# $1: $((got >> 10)) KiB read from $2 layers, bound $((bound >> 10)) KiB (map $((map >> 10)) KiB a layer; the whole table is $((V / CL * 8 >> 20)) MiB a layer)"
	[ "$got" -le "$bound" ]
}

# within NAME BASE DEPTH RAW VSIZE MAPPED [LEAVES] : the chain's cost (now
# less BASE) beyond a small chain of DEPTH layers is within the bound, with
# LEAVES leaves (128 MiB each) holding anything (default: MAPPED / 16)
within() {
	local cost small bound
	cost=$(( $(mem) - $2 ))
	small=$(small_cost "$3" "$4")
	bound=$(( ($5 / T) * 65536 + 16 * $6 + 96 * ${7:-$(( ($6 + 15) / 16 ))} + SLACK ))
	echo "# $1: the chain costs $((cost >> 10)) KiB, a 1 GiB one of $3 layers $((small >> 10)) KiB: $(( (cost - small) >> 10 )) KiB more, bound $((bound >> 10)) KiB"
	[ $((cost - small)) -le "$bound" ]
}

truncate -s $V model raw.img
"$CA" format -q -s $V -b "$work/raw.img" -F raw r1.img
m0=$(mem)
t0=$(date +%s.%N)
tap_check "an empty $SCALE_TIB TiB chain over a raw base is created" \
	"$CA" create big "$work/r1.img"
t1=$(date +%s.%N)
log "create took $(echo "$t1 - $t0" | bc) s"
tap_check "kernel memory of the empty $SCALE_TIB TiB chain within 64 KiB/TiB" \
	within empty "$m0" 2 raw $V 0
"$CA" remove big
rm -f r1.img raw.img

# An empty chain of 64 chain layers: activation reads headers and maps.
"$CA" format -q -s $V d1.img
for ((i = 2; i <= 64; i++)); do
	"$CA" format -q -b "$work/d$((i - 1)).img" "d$i.img" || die "cannot format d$i.img"
done
# The table load alone, on loop devices attached first (as LVs would be).
devs=()
for ((i = 1; i <= 64; i++)); do
	devs+=("$(losetup -f --show "$work/d$i.img")") || die "cannot attach d$i.img"
done
on_exit "losetup -d ${devs[*]}"
m0=$(mem)
loop_mark
t0=$(date +%s.%N)
tap_check "an empty $SCALE_TIB TiB chain of 64 layers is loaded" \
	dmsetup create deep --table "0 $((V / 512)) chain 64 chain ${devs[*]}"
t1=$(date +%s.%N)
log "dmsetup create of 64 layers took $(echo "$t1 - $t0" | bc) s"
tap_check "loading it read the headers and table maps, no table block" \
	reads_within deep 64 0
tap_check "kernel memory of the empty 64-layer chain within 64 KiB/TiB" \
	eval 'within deep "$m0" 64 chain $V 0'
dmsetup remove deep
losetup -d "${devs[@]}"
# chainadm create: discovery and 64 loop attaches besides the load.
t0=$(date +%s.%N)
"$CA" create deep "$work/d64.img" > /dev/null || die "chainadm create deep failed"
t1=$(date +%s.%N)
log "chainadm create of 64 layers took $(echo "$t1 - $t0" | bc) s"
"$CA" remove deep
rm -f d*.img

# A job: what a pull holds on the huge chain beyond the same pull on a 1
# GiB one is its source view's directory (64 KiB per TiB), nothing per
# virtual cluster.  Its owed bitmap was 1 bit per virtual cluster (2 MiB
# at 1 TiB, 32 MiB at 16 TiB) before it came in chunks, allocated for
# the clusters owed.
# job_cost SIZE : kernel memory a completed pull holds on an empty chain
# of two layers SIZE bytes big
job_cost() {
	local m0 m1
	"$CA" format -q -s "$1" j1.img && "$CA" format -q -b "$work/j1.img" j2.img &&
		"$CA" create job "$work/j2.img" > /dev/null || return 1
	m0=$(mem)
	dmsetup message job 0 stream || return 1
	wait_job_phase job 120 completed || return 1
	m1=$(mem)
	"$CA" remove job && rm -f j1.img j2.img
	echo $((m1 - m0))
}
on_exit "$CA" remove job
jbig=$(job_cost $V) || die "the pull on the empty $SCALE_TIB TiB chain failed"
jsmall=$(job_cost 1G) || die "the pull on the empty 1 GiB chain failed"
log "a completed pull holds $((jbig >> 10)) KiB at $SCALE_TIB TiB, $((jsmall >> 10)) KiB at 1 GiB"
tap_check "a pull on the $SCALE_TIB TiB chain holds at most 64 KiB/TiB more than on 1 GiB" \
	test $((jbig - jsmall)) -le $((V / T * 65536 + SLACK))

"$CA" format -q -s $V l0.img
m0=$(mem)
"$CA" create big "$work/l0.img" > /dev/null || die "cannot create the chain of chain layers"
for off in $ENDS; do put /dev/mapper/big "$off" 1048576; done
"$CA" snapshot big "$work/l1.img" > /dev/null

for off in $ENDS; do put /dev/mapper/big $((off + 65536)) 524288; done
"$CA" snapshot big "$work/l2.img" > /dev/null
for off in $ENDS; do put /dev/mapper/big $((off + 262144)) 1048576; done
tap_check "written at both ends and the middle, through both layers: the model" \
	same /dev/mapper/big
# mapped: clusters 0-19 of each window (l0: 0-15, l1: 1-8, l2: 4-19)
tap_check "kernel memory with 60 mapped clusters within the bound" \
	within written "$m0" 3 chain $V 60

"$CA" snapshot big "$work/l3.img" > /dev/null
for off in $ENDS; do put /dev/mapper/big $((off + 2 * 1048576)) 65536; done
tap_check "a live snapshot, written: the model" same /dev/mapper/big

tap_check "pull into l3 from l2 and l1 (keeping l0)" \
	"$CA" pull big --base "$work/l0.img" --wait
tap_check "after the pull: the model" same /dev/mapper/big

"$CA" snapshot big "$work/l4.img" > /dev/null
for off in $ENDS; do put /dev/mapper/big $((off + 3 * 1048576)) 131072; done
tap_check "commit l3 into l0" \
	"$CA" commit big --top "$work/l3.img" --base "$work/l0.img" --wait
tap_check "after the commit: the model" same /dev/mapper/big

tap_check "copy to a new chain layer, pivot" \
	"$CA" copy big "$work/dest.img" --pivot
tap_check "after the copy: the model, the chain is the copy alone" \
	eval 'same /dev/mapper/big && [ "$(dev_layer_names big)" = dest.img ]'
"$CA" remove big
m0=$(mem)
loop_mark
"$CA" create big "$work/dest.img" >/dev/null || die "cannot assemble the copy"
# 69 clusters in three 4 MiB windows: a table block (32 MiB) each.
tap_check "assembling the copy read its headers, map and 3 table blocks" \
	reads_within copy 1 3
tap_check "the copy alone is assembled again: the model" same /dev/mapper/big
tap_check "kernel memory of the copy, 69 mapped clusters, within the bound" \
	within copy "$m0" 1 chain $V 69
"$CA" remove big

# Scattered clusters: one 4 KiB block in every other leaf (128 MiB), 4096
# of them at 1 TiB (spread over the disk, still 4096, at 16 TiB).  A dense
# leaf each cost 32 KiB (16 KiB of entries and its bitmaps, rounded up to
# pages), 128 MiB in all; a sparse one holds one pair, 64 bytes.
NSCAT=$(( (V >> 28) < 4096 ? (V >> 28) : 4096 ))
STEP=$((V / NSCAT))
"$CA" format -q -s $V q.img
# The pages the writes will fill (table blocks, map, data area) are
# allocated in the tmpfs file first: their page cache nodes are not the
# chain's memory, but would count in Slab.
python3 - q.img $V $CL "$NSCAT" "$("$CA" info --json q.img | jq '.layers[0]."layer-size"')" $STEP <<'PY' ||
import os, sys
f, v, cl, n, size, step = sys.argv[1], *map(int, sys.argv[2:])
fd = os.open(f, os.O_RDWR)
table = v // cl * 8
for i in range(n):
    c = (i * step + (i * 7919 % 2048) * 65536) // cl
    os.posix_fallocate(fd, 8192 + c * 8 // 4096 * 4096, 4096)
os.posix_fallocate(fd, 8192 + table, size - v - 8192 - table)
os.posix_fallocate(fd, size - v, n * cl)
PY
	die "cannot allocate q.img's pages"
m0=$(mem)
"$CA" create scat "$work/q.img" > /dev/null || die "cannot create the scattered chain"
on_exit "$CA" remove scat
scat() {
	python3 - /dev/mapper/scat "$NSCAT" "$1" $STEP <<'PY'
import mmap, os, sys
dev, n, mode, step = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fd = os.open(dev, (os.O_WRONLY if mode == "write" else os.O_RDONLY) | os.O_DIRECT)
buf = mmap.mmap(-1, 4096)
bad = 0
for i in range(n):
    off = i * step + (i * 7919 % 2048) * 65536 + (i % 16) * 4096
    want = (b"S" + i.to_bytes(7, "little")) * 512
    if mode == "write":
        buf[:] = want
        os.pwritev(fd, [buf], off)
    else:
        os.preadv(fd, [buf], off)
        bad += bytes(buf) != want
        if i % 61 == 0:
            os.preadv(fd, [buf], off + 4096 if i % 16 < 15 else off - 4096)
            bad += bytes(buf) != bytes(4096)
print("# %d blocks %s, %d wrong" % (n, mode, bad))
sys.exit(bad != 0)
PY
}
scat write > /dev/null
tap_check "$NSCAT clusters scattered one to a leaf read back, their neighbours zeros" \
	scat read
tap_check "kernel memory with $NSCAT scattered clusters, one to a leaf, within the bound" \
	within scattered "$m0" 1 chain $V "$NSCAT" "$NSCAT"
"$CA" remove scat
m0=$(mem)
"$CA" create scat "$work/q.img" > /dev/null || die "cannot assemble the scattered chain"
tap_check "assembled again: the scattered clusters read back" scat read
tap_check "kernel memory of the scattered chain assembled again within the bound" \
	within scattered-open "$m0" 1 chain $V "$NSCAT" "$NSCAT"
"$CA" remove scat
rm -f q.img
tap_check "kernel log clean" kmsg_check
tap_done
