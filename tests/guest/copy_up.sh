#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# First writes into clusters the active layer does not hold (copy-up).
# A write smaller than its cluster is laid over the cluster, read from the
# layer below into a buffer, and the whole is written once; with all of the
# device's buffers busy the cluster is copied by dm-kcopyd and the write
# follows.  Checked byte for byte against a model, at 64 KiB clusters (32
# buffers) and 1 MiB clusters (2 buffers, so most copies take the other
# path):
#
#  1. 64 threads write stamped 4 KiB blocks at once into fresh clusters
#     held by the raw base, by a middle layer, and by no layer (zeroed
#     there), one to eight blocks per cluster, the blocks of one cluster
#     racing each other; then again after a flush and a re-assembly.
#  2. A write into the short last cluster; a WRITE_ZEROES of part of a
#     fresh cluster.
#  3. The middle layer fails reads: a first write into one of its clusters
#     fails with EIO and publishes nothing, a write elsewhere succeeds;
#     healed, the cluster shows its old data and the write goes through.
#  4. The active layer fails writes: likewise.
#
# Layers are loop devices; the middle and active ones sit behind dm
# devices whose tables are switched to error / dm-flakey (error_writes).
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup losetup cmp dd python3

CA=$CHAIN_ROOT/userspace/chainadm
[ -x "$CA" ] || skip_all "userspace/chainadm not built"
chain_load_module || die "cannot load dm-chain"
modprobe dm-flakey || skip_all "no dm-flakey"
kmsg_mark

W=$(mktemp -d /tmp/copy_up.XXXXXX)
on_exit rm -rf "$W"
on_exit detach_loops "$W"
cd "$W" || die "no scratch"

tap_plan 25

MIB=1048576
SIZE=$((16 * MIB + 20480))	# the last cluster is 20 KiB
SECT=$((SIZE / 512))
D=/dev/mapper/cu

# swap NAME TABLE : replace a wrapper's table under the chain.
swap() {
	dmsetup suspend --noflush "$1" && dmsetup load "$1" --table "$2" &&
		dmsetup resume "$1"
}

# writes TAG CS SEED RANGE... : 64 threads write stamped 4 KiB blocks
# (direct I/O) into DEV, one to three per cluster of each RANGE (start:end,
# bytes; up to eight per 1 MiB cluster), in a random order; the model gets
# the same blocks.
writes() {
	python3 - "$D" model "$@" <<'EOF'
import mmap, os, queue, random, sys, threading
dev, model, tag, cs, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rnd = random.Random(seed)
blocks = []
for r in sys.argv[6:]:
    a, b = (int(x) for x in r.split(':'))
    for c in range(a, b, cs):
        n = min(cs, b - c) // 4096
        blocks += [c + 4096 * i for i in rnd.sample(range(n), rnd.randint(1, min(n, max(3, n // 32))))]
rnd.shuffle(blocks)
q = queue.Queue()
for off in blocks:
    q.put(off)
stamp = lambda off: (f"{tag} block {off // 4096}".ljust(4095) + "\n").encode()
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
errors = []
def worker():
    buf = mmap.mmap(-1, 4096)
    while True:
        try:
            off = q.get_nowait()
        except queue.Empty:
            return
        buf.seek(0); buf.write(stamp(off))
        try:
            if os.pwrite(fd, buf, off) != 4096:
                errors.append(off)
        except OSError as e:
            errors.append((off, e))
threads = [threading.Thread(target=worker) for _ in range(64)]
for t in threads: t.start()
for t in threads: t.join()
os.close(fd)
with open(model, 'r+b') as m:
    for off in blocks:
        m.seek(off); m.write(stamp(off))
print(f"# {len(blocks)} blocks written, errors: {errors[:5]}")
sys.exit(1 if errors else 0)
EOF
}

# put OFF TAG : one stamped 4 KiB direct write at byte OFF; into the model
# only if it succeeds.
put() {
	awk -v t="$2" 'BEGIN { printf "%-4095s\n", t }' > blk
	dd if=blk of=$D bs=4096 seek="$1" oflag=seek_bytes,direct status=none 2>/dev/null &&
	dd if=blk of=model bs=4096 seek="$1" oflag=seek_bytes conv=notrunc status=none
}

same() { cmp -n $SIZE <(dd if=$D bs=1M iflag=direct status=none) model; }
flush_dev() { dd if=/dev/null of=$D conv=fsync,notrunc status=none; }

# assemble : the chain over the three layers, middle and top wrapped.
assemble() {
	dmsetup create cu --table "0 $SECT chain 3 raw $B /dev/mapper/cu-mid /dev/mapper/cu-top"
}

run_size() {
	local cs=$1 k=$2
	# base (raw, stamped) <- mid: [4, 8) MiB stamped, [8, 10) MiB zeroed
	# <- top, empty.  model is what the device shows.
	pattern_file base 17 "base$k" && truncate -s $SIZE base && cp base model
	"$CA" format -q -s $SIZE -c "$cs" -b base -F raw mid &&
		"$CA" format -q -s $SIZE -c "$cs" -b mid top || return 1
	loop_setup B base && loop_setup LM mid && loop_setup LT top || return 1
	dmsetup create cu-mid --table "0 $(dev_sectors "$LM") linear $LM 0" &&
	dmsetup create cu-top --table "0 $(dev_sectors "$LT") linear $LT 0" &&
	dmsetup create cu --table "0 $SECT chain 2 raw $B /dev/mapper/cu-mid" ||
		return 1
	stamp_range $D model "mid$k" $((4 * MIB)) $((4 * MIB)) &&
		zero_range $D model $((8 * MIB)) $((2 * MIB)) && flush_dev &&
		dmsetup remove cu && assemble || return 1

	tap_check "$k: racing first writes into base, middle and zeroed clusters" \
		writes "w$k" "$cs" 1 0:$((7 * MIB)) $((8 * MIB)):$((10 * MIB))
	tap_check "$k: the device matches the model" same
	tap_check "$k: a write into the short last cluster" put $((SIZE - 8192)) "last$k"
	tap_check "$k: a partial WRITE_ZEROES into a fresh cluster" \
		zero_range $D model $((10 * MIB + 4096)) 8192
	tap_check "$k: the device matches the model" same
	flush_dev && dmsetup remove cu && assemble
	tap_check "$k: flushed and re-assembled, the device matches the model" same

	# 3. mid fails reads.
	swap cu-mid "0 $(dev_sectors "$LM") error"
	tap_check "$k: a first write over a failing layer fails" \
		eval '! put $((7 * MIB + 4096)) "lost$k"'
	tap_check "$k: a first write elsewhere succeeds" put $((14 * MIB)) "ok$k"
	swap cu-mid "0 $(dev_sectors "$LM") linear $LM 0"
	tap_check "$k: healed, the failed cluster shows its old data" same
	tap_check "$k: healed, the write goes through" put $((7 * MIB + 4096)) "again$k"

	# 4. top fails writes; nothing is waiting to be committed.
	flush_dev
	swap cu-top "0 $(dev_sectors "$LT") flakey $LT 0 0 1 1 error_writes"
	tap_check "$k: a first write into a failing active layer fails" \
		eval '! put $((12 * MIB + 8192)) "lost$k"'
	swap cu-top "0 $(dev_sectors "$LT") linear $LT 0"
	flush_dev && dmsetup remove cu && assemble &&
	put $((12 * MIB + 16384)) "again$k" && flush_dev && dmsetup remove cu &&
		assemble
	tap_check "$k: healed and re-assembled, the device matches the model" same

	dmsetup remove cu; dmsetup remove cu-mid; dmsetup remove cu-top
	detach_loops "$W"
	rm -f base mid top model
}

on_exit dm_remove cu-top
on_exit dm_remove cu-mid
on_exit dm_remove cu
run_size 65536 64k || die "64k: cannot set the layers up"
run_size $MIB 1m || die "1m: cannot set the layers up"
tap_check "kernel log clean" kmsg_check
tap_done
