#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Kernel-side fuzz (issue 17): mutated layer sets, table lines and
# messages go to the dm-chain constructor and message handler, through
# tests/progs/chain-fuzz (one process for every input: see the comment at
# its top for what it mutates and checks).  Each input is refused with a
# kernel log line naming the reason, or accepted, read end to end (EIO
# allowed where corruption points), sent messages and removed; the kernel
# log must stay clean.  The layers as made must read exactly as written.
#
# Seed sets (2 MiB virtual), built here with chainadm and written through
# the chain:
#   raw3    raw base <- s1 <- s2 (64 KiB clusters; s2 holds ZERO entries)
#   chain2  chain base <- s1 (4 KiB clusters)
#   lone    one chain layer (64 KiB clusters)
# plus dest.img, an empty chain layer, a mirror destination.  Job records
# of every type are written by chain-fuzz into the active header.
#
# Short form (make check): FUZZ_INPUTS=300.  STRESS=1 (make stress):
# 5,000.  FUZZ_SEED=N replays a run (the seed is printed); with
# FUZZ_ONLY=I only input I of it runs, FUZZ_VERBOSE=1 says what each
# input was.
. "$(dirname "$0")/../lib.sh"

require_guest
require_root
require_cmd dmsetup losetup python3 cmp blkdiscard

CHAINADM=$CHAIN_ROOT/userspace/chainadm
FUZZ=$CHAIN_ROOT/tests/progs/chain-fuzz
need_tools "$CHAINADM" "$FUZZ"

WORK=/tmp/fuzz_ctr
SEEDS=$WORK/seeds
MIB=2
if [ "${STRESS:-0}" = 1 ]; then
	FUZZ_INPUTS=${FUZZ_INPUTS:-5000}
fi
FUZZ_INPUTS=${FUZZ_INPUTS:-300}
FUZZ_SEED=${FUZZ_SEED:-$(date +%s)}

tap_plan 11
kmsg_mark

modprobe dm-mod || die "modprobe dm-mod failed"
modprobe loop || die "modprobe loop failed"
on_exit "rm -rf $WORK"
on_exit detach_all
on_exit "dm_remove fz_build; dm_remove fz_reg; dm_remove chain_fuzz"
rm -rf "$WORK"
mkdir -p "$SEEDS" "$WORK/scratch" || die "cannot create $WORK"

detach_all() {
	local d
	for d in $(losetup -a 2>/dev/null | grep -F "$WORK/" | cut -d: -f1); do
		losetup -d "$d"
	done
}

tap_check "load dm-chain.ko" chain_load_module || tap_done

# write DEV REF N SEED: N random writes (4 KiB to 96 KiB) to DEV, and
# the same to the reference file REF; one python process.
write_random() {
	python3 -S - "$@" <<'EOF'
import os, random, sys
dev, ref, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
size = os.path.getsize(ref)
fd = os.open(dev, os.O_WRONLY)
rf = os.open(ref, os.O_WRONLY)
for _ in range(n):
    blocks = rnd.randint(1, 24)
    off = rnd.randrange(0, size // 4096 - blocks + 1) * 4096
    data = rnd.randbytes(blocks * 4096)
    os.pwrite(fd, data, off)
    os.pwrite(rf, data, off)
os.fsync(fd)
os.close(fd)
os.close(rf)
EOF
}

# zero DEV REF OFF LEN: write zeroes (ZERO entries) to DEV and REF.
zero_range() {
	blkdiscard -z -o "$3" -l "$4" "$1" &&
		dd if=/dev/zero of="$2" bs=4096 seek=$(($3 / 4096)) \
		   count=$(($4 / 4096)) conv=notrunc status=none
}

# build raw|"" LAYER... (bottom first): the chain as dm device fz_build
# through chainadm create, over a raw base or not.
build() {
	local raw=$1
	shift
	"$CHAINADM" create --layers ${raw:+--raw-base} fz_build "$@" &&
		[ -b /dev/mapper/fz_build ]
}
unbuild() { "$CHAINADM" remove fz_build; }

# Seed set raw3: raw base <- s1 <- s2, 64 KiB clusters.
seed_raw3() {
	local d=$SEEDS/raw3 ref=$WORK/raw3.ref
	mkdir -p "$d" &&
	python3 -S -c "import random,sys; open(sys.argv[1],'wb').write(random.Random(1).randbytes($MIB<<20))" "$d/0.img" &&
	cp "$d/0.img" "$ref" &&
	"$CHAINADM" format -q -c 64K --backing "$d/0.img" --backing-type raw "$d/1.img" &&
	build raw "$d/0.img" "$d/1.img" &&
	write_random /dev/mapper/fz_build "$ref" 6 2 && unbuild &&
	"$CHAINADM" format -q --backing "$d/1.img" "$d/2.img" &&
	build raw "$d/0.img" "$d/1.img" "$d/2.img" &&
	write_random /dev/mapper/fz_build "$ref" 6 3 &&
	zero_range /dev/mapper/fz_build "$ref" $((3 << 16)) $((2 << 16)) &&
	cmp /dev/mapper/fz_build "$ref" && unbuild &&
	echo "3 raw" > "$d/layers" && mv "$ref" "$d/expect"
}

# seed_chain NAME CLUSTER SEED [OFF LEN]: seed set NAME over a chain base
# of CLUSTER clusters: the base alone, or with OFF a layer over it that
# holds ZERO entries at OFF..OFF+LEN too.
seed_chain() {
	local d=$SEEDS/$1 ref=$WORK/$1.ref n=1
	mkdir -p "$d" && truncate -s ${MIB}M "$ref" &&
	"$CHAINADM" format -q -s ${MIB}M -c "$2" "$d/0.img" &&
	build "" "$d/0.img" &&
	write_random /dev/mapper/fz_build "$ref" 8 "$3" || return 1
	if [ $# -gt 3 ]; then
		n=2
		unbuild &&
		"$CHAINADM" format -q -c "$2" --backing "$d/0.img" "$d/1.img" &&
		build "" "$d/0.img" "$d/1.img" &&
		write_random /dev/mapper/fz_build "$ref" 8 $(($3 + 1)) &&
		zero_range /dev/mapper/fz_build "$ref" "$4" "$5" || return 1
	fi
	cmp /dev/mapper/fz_build "$ref" && unbuild &&
	echo "$n chain" > "$d/layers" && mv "$ref" "$d/expect"
}

tap_check "seed set raw3 (raw <- s1 <- s2) reads as written" seed_raw3
tap_check "seed set chain2 (chain <- s1, 4 KiB clusters) reads as written" \
	seed_chain chain2 4K 4 $((100 << 12)) $((3 << 12))
tap_check "seed set lone (one chain layer) reads as written" seed_chain lone 64K 6
tap_check "an empty chain layer, a mirror destination" \
	"$CHAINADM" format -q -s ${MIB}M -c 64K "$SEEDS/dest.img"
dm_remove fz_build >/dev/null 2>&1

# Five scratch files on loop devices: three layers and a mirror
# destination at most; chain-fuzz rewrites them for every input.
SCRATCH=()
for i in 0 1 2 3 4; do
	f=$WORK/scratch/$i.img
	truncate -s ${MIB}M "$f" || die "cannot create $f"
	l=$(losetup -f --show "$f") || die "cannot attach $f"
	SCRATCH+=(--scratch "$f=$l")
done

run_fuzz() {
	local only=()
	[ -n "${FUZZ_ONLY:-}" ] && only=(--only "$FUZZ_ONLY")
	"$FUZZ" --seeds "$SEEDS" "${SCRATCH[@]}" --seed "$1" --inputs "$2" \
		"${only[@]}" ${FUZZ_VERBOSE:+--verbose}
}

# Regression inputs, each a refusal the fuzz once found missing.
# regress_refused NAME WANT TABLE: dmsetup create with TABLE (over the
# copies in $WORK/reg) must fail, with WANT in the kernel log.
regress_refused() {
	local out=$WORK/reg/out
	echo "dm-chain-test: regression $1 ;" > /dev/kmsg
	if dmsetup create fz_reg --table "$3" >"$out" 2>&1; then
		dmsetup remove fz_reg
		log "$1: accepted: $3"
		return 1
	fi
	dmesg | sed -n "/dm-chain-test: regression $1 ;/,\$p" >"$out"
	grep -q -F "$2" "$out" || { log "$1: no '$2' in: $(cat "$out")"; return 1; }
}

# A full mirror of a 4 KiB-cluster chain into a 64 KiB-cluster layer:
# the walk indexed the destination's table with the chain's cluster
# numbers, past its end (memory corruption, an oops at the remove on
# 6.12; seed 1796167471).
regress_mirror_csize() {
	local r=$WORK/reg l0 l1 ld
	mkdir -p "$r" &&
	cp "$SEEDS/chain2/0.img" "$SEEDS/chain2/1.img" "$SEEDS/dest.img" "$r/" &&
	l0=$(losetup -f --show "$r/0.img") && l1=$(losetup -f --show "$r/1.img") &&
	ld=$(losetup -f --show "$r/dest.img") &&
	regress_refused mirror_csize "Mirror destination has 65536-byte clusters" \
		"0 $((MIB * 2048)) chain 2 chain $l0 $l1 4 mirror $ld chain full"
}
tap_check "a mirror destination of another cluster size is refused" regress_mirror_csize

# A commit recorded in the active layer without a base (base index
# "none"): the constructor took it and indexed its layer list with
# 0xffffffff (an oops in setup_job on 6.1; seed 17).
regress_commit_nobase() {
	local r=$WORK/reg2 l0 l1 l2
	mkdir -p "$r" && cp "$SEEDS"/raw3/[012].img "$r/" &&
	python3 -S - "$CHAIN_ROOT/tests/layer-patch.py" "$r" <<'EOF2' &&
import importlib.util, struct, sys
spec = importlib.util.spec_from_file_location("lp", sys.argv[1])
lp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lp)
def slot_of(path):
    with open(path, "rb") as f:
        return lp.current_slot(f)
with open(sys.argv[2] + "/1.img", "rb") as f:
    f.seek(slot_of(sys.argv[2] + "/1.img") * lp.BLOCK)
    top_uuid = lp.get(bytearray(f.read(lp.BLOCK)), "uuid")
path = sys.argv[2] + "/2.img"
s = slot_of(path)
with open(path, "r+b") as f:
    f.seek(s * lp.BLOCK)
    slot = bytearray(f.read(lp.BLOCK))
    # job record: magic, commit, running, top 1, base none, top uuid
    struct.pack_into("<IBBBBII", slot, 128, 0x31424f4a, 2, 1, 0, 0, 1,
                     0xffffffff)
    slot[128 + 48:128 + 64] = top_uuid
    lp.put(slot, "csum", lp.crc32c(bytes(slot[4:])))
    f.seek(s * lp.BLOCK)
    f.write(slot)
EOF2
	l0=$(losetup -f --show "$r/0.img") && l1=$(losetup -f --show "$r/1.img") &&
	l2=$(losetup -f --show "$r/2.img") &&
	regress_refused commit_nobase "records a commit job over other layers" \
		"0 $((MIB * 2048)) chain 3 raw $l0 $l1 $l2"
}
tap_check "a commit job recorded without a base is refused" regress_commit_nobase

log "FUZZ_SEED=$FUZZ_SEED FUZZ_INPUTS=$FUZZ_INPUTS (STRESS=${STRESS:-0})"
tap_check "$FUZZ_INPUTS random inputs, seed $FUZZ_SEED" run_fuzz "$FUZZ_SEED" "$FUZZ_INPUTS"

left=$(dmsetup ls 2>/dev/null | grep -v '^No devices found')
tap_check "no dm device left behind" test -z "$left"
detach_all
tap_check "dm-chain unloads" chain_unload_module
tap_check "kernel log clean" kmsg_check "$TEST_NAME"
tap_done
