#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# tests/fuzz/make-corpus.sh - regenerate the seed corpora of the fuzz
# targets in tests/fuzz/corpus/<target>/ (committed, so that they can be
# reviewed; running this again gives the same bytes).
#
# The seeds are small layers (4 KiB clusters unless named otherwise, a
# few data clusters) made by chainadm format, filled by chain-poke and
# broken by tests/layer-patch.py the ways tests/host/check.sh and
# tests/guest/table_validation.sh break them, with fixed UUIDs and
# backing hints:
#
#   base    c300...   none below          (table index 0 of a chain)
#   sn1     c301...   over base (chain), or over a raw base (raw)
#   active  c302...   over sn1, with a job record of each type and phase
#
# fuzz_layer gets the layer files themselves (seed-*); the other targets
# get what their input format takes from the same files: the two header
# slots and the device size (fuzz_header), the geometry and the table
# (fuzz_entries), the job record (fuzz_job).  Regression inputs (files
# not named seed-*) are left alone.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$here/corpus

make -s -C "$top/userspace" chainadm test-progs >&2
CA=$top/userspace/chainadm
POKE=$top/tests/host/chain-poke
LP=$top/tests/layer-patch.py

W=$(mktemp -d "${TMPDIR:-/tmp}/dm-chain-corpus.XXXXXX")
trap 'rm -rf "$W"' EXIT
L=$W/layers
mkdir -p "$L"

U0=c3000000000000000000000000000000
U1=c3010000000000000000000000000000
U2=c3020000000000000000000000000000
U3=c3030000000000000000000000000000
Z=00000000000000000000000000000000
NO_LAYER=4294967295

lp() { python3 "$LP" "$W/$1" "${@:2}"; }
poke() { "$POKE" "$W/$1" "${@:2}" >/dev/null; }

# fmt NAME UUID [HINT] FORMAT-ARGS...: a new layer with a fixed UUID and,
# when it has a backing layer, a fixed backing hint.
fmt() {
	local name=$1 uuid=$2
	shift 2
	"$CA" format --quiet --cluster-size 4K "$@" "$W/$name"
	lp "$name" --slot both uuid="$uuid"
}

# hint NAME PATH: the backing hint of both slots.
hint() { poke "$1" set hint "$2"; }

# seed NAME FROM [PATCH...]: FROM copied as the seed NAME, patched with
# layer-patch.py arguments (or a command word: truncate SIZE).
seed() {
	local name=$1 from=$2
	shift 2
	cp "$W/$from" "$L/seed-$name"
	if [ "${1:-}" = truncate ]; then
		truncate -s "$2" "$L/seed-$name"
	elif [ $# -gt 0 ]; then
		python3 "$LP" "$L/seed-$name" "$@"
	fi
}

# recsum NAME: put the checksums of both slots of seed NAME right again.
recsum() { python3 "$LP" "$L/seed-$1" --slot both; }

# job TYPE PHASE FLAGS TOP BASE TOP-UUID BASE-UUID DEST-UUID HINT
# [HINT-LEN]: a job record as 512 hex digits (dm-chain-format.rst, "Job
# record"), 16 of 64 clusters done.
job() {
	python3 -S - "$@" <<'EOF'
import struct, sys
t, ph, fl, top, base = (int(a, 0) for a in sys.argv[1:6])
tu, bu, du = (bytes.fromhex(a) for a in sys.argv[6:9])
hint = sys.argv[9].encode()
hint_len = int(sys.argv[10]) if len(sys.argv) > 10 else len(hint)
rec = struct.pack("<IBBBBIIQQQQ16s16s16s128s", 0x31424f4a, t, ph, fl,
                  hint_len, top, base, 4, 1 << 20, 16 << 12, 64 << 12,
                  tu, bu, du, hint)
print(rec.ljust(256, b"\0").hex())
EOF
}

# ---------------------------------------------------------------- layers

# A 64 KiB virtual disk: 16 clusters, the table one block, its map one
# block, data from 16 KiB; --layer-size 16K leaves no room for data until
# chain-poke allocates some.
truncate -s 64K "$W/raw"
fmt base $U0 --size 64K --layer-size 16K
seed none-empty base
poke base alloc 0
poke base alloc 5
poke base entry 9 4000000000000000		# ZERO
poke base alloc 15
seed none-mapped base

fmt sn1 $U1 --backing "$W/base" --layer-size 16K
hint sn1 /var/lib/images/base.img
poke sn1 alloc 1
poke sn1 entry 3 4000000000000000
seed chain-mapped sn1

fmt rawsn $U1 --backing "$W/raw" --backing-type raw --layer-size 16K
hint rawsn /dev/vg0/base
poke rawsn alloc 2
seed raw-mapped rawsn

# Other cluster sizes: 8 KiB (data from 16 KiB), a virtual size that
# ends inside a cluster (20 KiB in 8 KiB clusters: 3 clusters), 64 KiB
# (data from 64 KiB; no room for data).
fmt c8k $U0 --size 64K --cluster-size 8K --layer-size 16K
poke c8k alloc 1
poke c8k alloc 7
seed cluster-8k c8k
fmt c8kpart $U0 --size 20K --cluster-size 8K --layer-size 16K
poke c8kpart alloc 2
seed cluster-8k-partial c8kpart
fmt c64k $U0 --size 256K --cluster-size 64K --layer-size 64K
seed cluster-64k c64k

# The active layer of base <- sn1 <- active, with a job record of every
# type (table indexes: base 0, sn1 1, active 2).
fmt active $U2 --backing "$W/sn1" --layer-size 16K
hint active /var/lib/images/sn1.img
poke active alloc 4
seed active-idle active
seed job-stream active job="$(job 1 1 0 2 $NO_LAYER $U2 $Z $Z '')"
seed job-stream-failed-paused active job="$(job 1 5 8 2 0 $U2 $U0 $Z '')"
seed job-commit active job="$(job 2 1 0 1 0 $U1 $U0 $Z '')"
seed job-commit-completed active job="$(job 2 3 0 1 0 $U1 $U0 $Z '')"
seed job-active-commit-ready active job="$(job 3 2 0 2 0 $U2 $U0 $Z '')"
seed job-active-commit-pivot active job="$(job 3 4 0 2 0 $U2 $U0 $Z '')"
seed job-mirror-shallow active \
	job="$(job 4 1 1 2 $NO_LAYER $U2 $Z $U3 /var/lib/images/copy.img)"
seed job-mirror-raw-ready active \
	job="$(job 4 2 6 2 $NO_LAYER $U2 $Z $Z /dev/vdc)"
seed job-bad-type active job="$(job 9 1 0 2 0 $U2 $U0 $Z '')"
seed job-bad-phase active job="$(job 1 0 0 2 0 $U2 $U0 $Z '')"
seed job-bad-hint-len active job="$(job 4 1 0 2 0 $U2 $Z $Z /dev/vdc 200)"
seed job-bad-magic active \
	job="4a4f4232$(job 1 1 0 2 0 $U2 $U0 $Z '' | cut -c9-)"

# Legal states after a crash or an error (check warns, exit 0).
seed needs-check base --slot both flags=1
seed invalidated base --slot both flags=2
seed torn-slot1 base --slot 1 magic=0
seed torn-slot0 base --slot 0 magic=0
seed free-clusters base --entry 5=absent:0
seed mapped-beyond-end base --slot both data_end=4

# What the format forbids (tests/host/check.sh, table_validation.sh).
seed bad-magic base --slot both magic=0x3f4e49414843444d
seed bad-csum base --keep-csum --raw 2000=ff --raw 6096=ff
seed bad-incompat base --slot both incompat_features=0x10
seed bad-version base --slot both version=3
seed bad-version-1 base --slot both version=1
seed bad-map-offset base --slot both map_offset=8192
seed bad-map-size base --slot both map_size=0
seed bad-map-bit base --raw 12288=81
seed bad-flags base --slot both flags=8
seed bad-uuid-zero base --slot both uuid=00000000000000000000000000000000
seed bad-two-uuids base --slot 0 uuid=$U3
seed bad-cluster-size base --slot both cluster_size=32768 data_end=2
seed bad-cluster-size-odd base --slot both cluster_size=12288
seed bad-virtual-size base --slot both virtual_size=8388608
seed bad-virtual-size-odd base --slot both virtual_size=65000
seed bad-table-offset base --slot both table_offset=4096
seed bad-table-size base --slot both table_size=100
seed bad-data-offset base --slot both data_offset=14336
seed bad-data-end base --slot both data_end=1000
seed bad-backing-type base --slot both backing_type=3
seed bad-backing-self sn1 --slot both backing_uuid=$U1
seed bad-backing-zero sn1 --slot both backing_uuid=00000000000000000000000000000000
seed bad-backing-none base --slot both backing_uuid=$U3
seed bad-hint-len sn1 --slot both hint_len=2000
seed bad-hint-nul sn1 --raw 390=00 --raw 4486=00
recsum bad-hint-nul
seed bad-entry-meta base --entry 3=mapped:0
seed bad-entry-beyond base --entry 3=mapped:300
seed bad-entry-dup base --entry 3=mapped:3 --entry 4=mapped:3
seed bad-entry-type base --entry 3=bad:0
seed bad-entry-zero-host base --entry 3=zero:5
seed bad-entry-absent-host base --entry 3=absent:5
seed bad-entry-reserved base --entry 3=absent:0 --raw 8216=0500000000000180
seed unmarked-garbage base --unmarked --entry 3=bad:0
seed bad-entry-padding base --entry 16=zero:0
seed bad-truncated base truncate 20000
seed bad-tiny base truncate 4096
printf 'not a layer: raw data, %s\n' {1..400} | head -c 8192 > "$W/rawdata"
seed raw-data rawdata

# ---------------------------------------------------------------- corpora

rm -f "$out"/*/seed-*
mkdir -p "$out/fuzz_layer" "$out/fuzz_header" "$out/fuzz_entries" \
	"$out/fuzz_job"
cp "$L"/seed-* "$out/fuzz_layer/"

python3 -S - "$L" "$out" <<'EOF'
import os, struct, sys

L, OUT = sys.argv[1:3]
BLOCK = 4096

def field(slot, off, fmt):
    return struct.unpack_from(fmt, slot, off)[0]

def current(head):
    """The slot a reader takes, roughly: magic, then the newer one."""
    good = [s for s in (0, 1)
            if field(head[s * BLOCK:], 24, "<Q") == 0x314e49414843444d]
    if not good:
        return None
    return max(good, key=lambda s: field(head[s * BLOCK:], 40, "<Q"))

seen = set()

def write(target, name, data):
    """One seed per distinct input: many layers share a header."""
    if (target, data) in seen:
        return
    seen.add((target, data))
    with open(os.path.join(OUT, target, "seed-" + name), "wb") as f:
        f.write(data)

# Valid layers first: a header or table they share with a broken one is
# named after them.
def valid_first(name):
    return (name.startswith("seed-bad-"), name)

for name in sorted(os.listdir(L), key=valid_first):
    with open(os.path.join(L, name), "rb") as f:
        layer = f.read()
    name = name[len("seed-"):]
    size = len(layer)
    head = layer[:2 * BLOCK]
    # fuzz_header: device size, control (checksums put right, a 253-byte
    # error buffer; the stored ones kept for the seed that breaks them).
    ctl = 0xff if name == "bad-csum" else 0xfc
    write("fuzz_header", name, struct.pack("<QB", size, ctl) + head)
    s = current(head.ljust(2 * BLOCK, b"\0"))
    if s is None:
        continue
    slot = head[s * BLOCK:(s + 1) * BLOCK]
    job = slot[128:384]
    if any(job):
        # fuzz_job: the record, a chain of 3 layers, no raw base; and
        # an active commit into a raw base.
        write("fuzz_job", name, job + bytes([2, 0]))
        if name == "job-active-commit-ready":
            raw = job[:64] + bytes(16) + job[80:]
            write("fuzz_job", name + "-raw-base", raw + bytes([2, 1]))
    vs, cs = field(slot, 64, "<Q"), field(slot, 36, "<I")
    toff, tsize, doff = (field(slot, o, "<Q") for o in (72, 80, 88))
    if cs == 0 or toff != 2 * BLOCK:
        continue
    # fuzz_entries: this geometry, the data area the file holds, the
    # table without its trailing zero entries, checked whole and in
    # chunks of 3.
    table = layer[toff:toff + tsize].rstrip(b"\0")
    table = table.ljust((len(table) + 7) // 8 * 8, b"\0")
    extra = max(size - doff, 0)
    area = (extra // cs) & 0xfffff | ((extra % cs) // 512) << 20
    write("fuzz_entries", name,
          struct.pack("<QIIQIHH", vs, cs, area, size, 0, 3, 0) + table)

# Geometries no small layer has: the largest clusters, and virtual sizes
# whose table arithmetic is near 64 bits.
def geo(name, vs, cs, area, dev, entries=b""):
    write("fuzz_entries", name,
          struct.pack("<QIIQIHH", vs, cs, area, dev, 0, 0, 0) + entries)

two_m = 2 << 20
geo("geometry-2m", 1 << 30, two_m, 4, 7 * two_m,
    struct.pack("<4Q", 2 << 62 | 1, 1 << 62, 0, 2 << 62 | 4))
geo("geometry-huge", (1 << 64) - 4096, 4096, 0, (1 << 64) - 1)
geo("geometry-64k-partial", 100 << 12, 64 << 10, 2, 1 << 30,
    struct.pack("<2Q", 2 << 62 | 1, 2 << 62 | 2))
# fuzz_header: 2 MiB clusters on a 4 MiB device, from the 64 KiB seed's
# header rewritten by hand would need its checksum: the target puts it
# right (control 0xfc).
with open(os.path.join(L, "seed-cluster-64k"), "rb") as f:
    head = bytearray(f.read(2 * BLOCK))
for s in (0, 1):
    struct.pack_into("<I", head, s * BLOCK + 36, two_m)
    struct.pack_into("<Q", head, s * BLOCK + 64, 4 << 20)
    struct.pack_into("<Q", head, s * BLOCK + 88, two_m)
    struct.pack_into("<Q", head, s * BLOCK + 96, 1)
write("fuzz_header", "cluster-2m", struct.pack("<QB", 4 << 20, 0xfc) + head)
EOF

for t in fuzz_layer fuzz_header fuzz_entries fuzz_job; do
	echo "$t: $(ls "$out/$t" | wc -l) inputs, $(du -sk --apparent-size "$out/$t" | cut -f1) KiB"
done
