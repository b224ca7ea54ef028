#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# The index while its leaves change shape: lookups of a leaf's other
# clusters stay right while writes add pairs to it (in place at the end,
# or by a copy that replaces the leaf) and turn it dense.
#
# A raw base of 128 MiB (one leaf: 512 clusters of 256 KiB) whose every
# 4 KiB block holds its own number, under one empty chain layer.  Three writer
# threads write a stamped 4 KiB block into three clusters of every four,
# in random order, so the leaf starts sparse, grows by copies and appends
# and turns dense past half its span; meanwhile a reader thread reads the
# fourth cluster of every four, over and over, and each must show the base.
# Then every cluster is checked: the block written holds its stamp, the
# rest of the cluster the base (copied up).  The chain is assembled again
# (the index built from the table: sparse and dense leaves at open) and
# checked again.  Then a 16 GiB chain of 64 KiB
# clusters, one cluster in each of its 128 leaves and a few more in some
# (sparse leaves only), over a sparse (zero) base.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup python3

CA=$CHAIN_ROOT/userspace/chainadm
[ -x "$CA" ] || skip_all "userspace/chainadm not built"

tap_plan 5
chain_load_module || die "cannot load dm-chain"
modprobe loop
kmsg_mark

work=$(mktemp -d /tmp/index_race.XXXXXX)
on_exit rm -rf "$work"
on_exit "$CA" remove ir
cd "$work" || die "no work dir"

# race.py DEV SIZE MODE : write, read back and check, see the top
cat > race.py <<'PY'
import mmap, os, random, sys, threading
dev, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
CL, BS = int(os.environ["CL"]), 4096
rng = random.Random(int(os.environ.get("SEED", "1")))

def base(blk):
    if mode != "race" and os.environ.get("ZERO_BASE"):
        return bytes(BS)
    return blk.to_bytes(8, "little") * (BS // 8)

def stamp(blk):
    return (b"W" + blk.to_bytes(7, "little")) * (BS // 8)

def aligned():
    return mmap.mmap(-1, BS)

def pread(fd, off, n=BS):
    buf = mmap.mmap(-1, n)
    assert os.preadv(fd, [buf], off) == n
    return bytes(buf)

# the written block of each written cluster
if mode in ("race", "check"):
    clusters = [c for c in range(size // CL) if c % 4 != 3]
    quiet = [c for c in range(size // CL) if c % 4 == 3]
else:
    leaf = 128 << 20
    clusters = [l * leaf // CL + rng.randrange(leaf // CL) for l in range(size // leaf)]
    clusters += [rng.randrange(size // CL) for _ in range(200)]
    clusters = sorted(set(clusters))
    quiet = sorted(set(rng.randrange(size // CL) for _ in range(64)) - set(clusters))
which = {c: c * (CL // BS) + rng.randrange(CL // BS) for c in clusters}
with open("written", "w") as f:
    for c in clusters:
        f.write("%d %d\n" % (c, which[c]))
order = clusters[:]
rng.shuffle(order)
done = threading.Event()
errors = []

def writer(part):
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    buf = aligned()
    for c in part:
        buf[:] = stamp(which[c])
        if os.pwritev(fd, [buf], which[c] * BS) != BS:
            errors.append("short write at cluster %d" % c)
    os.close(fd)

def reader():
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    rounds = 0
    while not done.is_set() and quiet:
        for c in quiet:
            blk = c * (CL // BS) + rounds % (CL // BS)
            if pread(fd, blk * BS) != base(blk):
                errors.append("cluster %d did not show the base while others were written" % c)
                done.set()
                break
        rounds += 1
    os.close(fd)
    print("# reader: %d rounds over %d quiet clusters" % (rounds, len(quiet)))

if mode in ("race", "scatter"):
    r = threading.Thread(target=reader)
    r.start()
    ws = [threading.Thread(target=writer, args=(order[i::3],)) for i in range(3)]
    for w in ws: w.start()
    for w in ws: w.join()
    done.set()
    r.join()

# check: every written cluster, whole, and the quiet ones
fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
for c in clusters + quiet[:64]:
    blks = range(c * (CL // BS), (c + 1) * (CL // BS))
    want = b"".join(stamp(b) if which.get(c) == b else base(b) for b in blks)
    if pread(fd, c * CL, CL) != want:
        errors.append("cluster %d reads wrong" % c)
os.close(fd)
for e in errors[:10]:
    print("# " + e)
print("# %d clusters written, %d errors" % (len(clusters), len(errors)))
sys.exit(1 if errors else 0)
PY

# mkbase SIZE : the raw base, each 4 KiB block holding its number
mkbase() {
	python3 - "$1" <<'PY'
import sys
size = int(sys.argv[1])
with open("base.img", "wb") as f:
    for blk in range(0, size // 4096, 256):
        f.write(b"".join(b.to_bytes(8, "little") * 512 for b in range(blk, blk + 256)))
PY
}

# round SIZE MODE NAME
round() {
	local size=$1 mode=$2
	rm -f base.img top.img
	# scatter: a sparse base, read as zeros
	if [ "$mode" = race ]; then mkbase "$size"; else truncate -s "$size" base.img; fi
	"$CA" format -q -s "$size" -c "$CL" -b "$work/base.img" -F raw top.img ||
		die "cannot format top.img"
	"$CA" create ir "$work/top.img" > /dev/null || die "cannot create the chain"
	tap_check "$3: writes beside lookups, then every cluster reads right" \
		env ZERO_BASE="$([ "$mode" = race ] || echo 1)" python3 race.py /dev/mapper/ir "$size" "$mode"
	"$CA" remove ir || die "cannot remove the chain"
	"$CA" create ir "$work/top.img" > /dev/null || die "cannot assemble again"
	tap_check "$3: assembled again from the table, every cluster reads right" \
		env ZERO_BASE="$([ "$mode" = race ] || echo 1)" python3 race.py /dev/mapper/ir "$size" "$([ "$mode" = race ] && echo check || echo check-scatter)"
	"$CA" remove ir
}

export CL=$((256 << 10))
round $((128 << 20)) race "a leaf turning dense"
CL=65536 round $((16 << 30)) scatter "128 leaves of 64 KiB clusters, sparse"
tap_check "kernel log clean" kmsg_check
tap_done
