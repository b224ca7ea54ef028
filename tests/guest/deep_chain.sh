#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# 255 layers, the maximum: a raw base and 254 overlays.  The overlays are
# written by a second, minimal
# implementation of Documentation/dm-chain-format.rst (python, below), so
# the test also shows that the spec is enough to write layers the kernel
# and chainadm accept.  Layer i holds virtual cluster i, stamped "layer i";
# cluster 254 and up are held by no overlay and read from the raw base.
# chainadm assembles the chain by discovery through the backing hints;
# every cluster must read from the right layer, writes go to the top and
# leave every lower layer untouched.
. "$(dirname "$0")/../lib.sh"

require_root
require_guest
require_cmd dmsetup python3 sha256sum

CHAINADM=$CHAIN_ROOT/userspace/chainadm
[ -x "$CHAINADM" ] || skip_all "userspace/chainadm not built"

tap_plan 7
chain_load_module || die "cannot load dm-chain"
modprobe loop

work=$(mktemp -d /tmp/deep_chain.XXXXXX)
on_exit rm -rf "$work"
on_exit "$CHAINADM" remove deep
cd "$work" || die "no work dir"

N=254		# overlays; with the raw base, 255 layers
CL=65536
VSIZE=$((2 * N * CL))

# base.img (raw, stamped "base") and layer1..layer255.img over it.
python3 - "$CHAIN_ROOT/tests/layer-patch.py" "$N" "$CL" "$VSIZE" <<'EOF' ||
import importlib.util, os, struct, sys
spec = importlib.util.spec_from_file_location("lp", sys.argv[1])
lp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lp)
n, cl, vsize = (int(a) for a in sys.argv[2:5])

def stamp(text, size):
    line = (text + "\n").encode().ljust(64, b".")
    return (line * (size // 64 + 1))[:size]

with open("base.img", "wb") as f:
    for c in range(vsize // cl):
        f.write(stamp(f"base cluster {c}", cl))

clusters = vsize // cl
table_size = (clusters * 8 + 4095) // 4096 * 4096
map_off = 8192 + table_size
map_size = (table_size // 4096 + 32767) // 32768 * 4096
data_off = (map_off + map_size + cl - 1) // cl * cl
below_uuid = None
for i in range(1, n + 1):
    path = f"layer{i}.img"
    uuid = os.urandom(16)
    hint = os.path.abspath("base.img" if i == 1 else f"layer{i - 1}.img").encode()
    slot = bytearray(4096)
    for k, v in dict(uuid=uuid, magic=0x314E49414843444D, version=2,
                     cluster_size=cl, generation=1, virtual_size=vsize,
                     table_offset=8192, table_size=table_size,
                     map_offset=map_off, map_size=map_size,
                     data_offset=data_off, data_end=data_off // cl + 1,
                     backing_type=1 if i == 1 else 2,
                     backing_uuid=below_uuid or bytes(16),
                     hint_len=len(hint)).items():
        lp.put(slot, k, v)
    slot[384:384 + len(hint)] = hint
    older = bytearray(slot)                # slot 1: generation 0
    lp.put(older, "generation", 0)
    lp.put(older, "csum", lp.crc32c(bytes(older[4:])))
    lp.put(slot, "csum", lp.crc32c(bytes(slot[4:])))
    with open(path, "wb") as f:
        f.write(slot + older)
        f.truncate(data_off + (8 if i == n else 1) * cl)   # room on top
        f.seek(8192 + 8 * (i - 1))         # table entry for cluster i - 1
        f.write(struct.pack("<Q", (2 << 62) | (data_off // cl)))
        block = 8 * (i - 1) // 4096        # its table block, in the map
        f.seek(map_off + block // 8)
        f.write(bytes([1 << block % 8]))
        f.seek(data_off)
        f.write(stamp(f"layer {i}", cl))
    below_uuid = uuid
EOF
	die "writing the layers"

tap_check "chainadm check accepts a layer written from the spec" \
	"$CHAINADM" check -q layer$N.img
tap_check "create assembles all $((N + 1)) layers by discovery" \
	"$CHAINADM" create deep layer$N.img
tap_check "the table has $((N + 1)) layers, the raw base at the bottom" \
	sh -c "dmsetup table deep | grep -q ' chain $((N + 1)) raw '"

# Every cluster from the right layer: cluster c < N from layer c + 1.
python3 - "$N" "$CL" "$VSIZE" <<'EOF' > "$work/read.out"
import os, sys
n, cl, vsize = (int(a) for a in sys.argv[1:4])
fd = os.open("/dev/mapper/deep", os.O_RDONLY)
bad = 0
for c in range(vsize // cl):
    want = (f"layer {c + 1}" if c < n else f"base cluster {c}") + "\n"
    got = os.pread(fd, cl, c * cl)
    line = (want.encode().ljust(64, b"."))
    if got != (line * (cl // 64 + 1))[:cl]:
        bad += 1
        if bad <= 3:
            print(f"# cluster {c}: want {want.strip()!r}, got {got[:24]!r}")
print(f"# {vsize // cl} clusters read, {bad} wrong")
sys.exit(1 if bad else 0)
EOF
rc=$?
cat "$work/read.out"
tap_check "every cluster reads from the newest layer holding it" test $rc = 0

sha256sum layer*.img base.img > sums
dd if=/dev/urandom of=w bs=$CL count=3 status=none
dd if=w of=/dev/mapper/deep bs=$CL seek=100 oflag=direct status=none
dd if=/dev/mapper/deep of=r bs=$CL skip=100 count=3 iflag=direct status=none
tap_check "a write at depth $((N + 1)) reads back" cmp w r
"$CHAINADM" remove deep
sha256sum -c sums > sums.out 2>&1
changed=$(grep -c ': FAILED' sums.out)
log "layers changed by the write: $(grep ': FAILED' sums.out | tr '\n' ' ')"
tap_check "writes land in the top layer and only there" \
	test "$changed" = 1 -a "$(grep -c "^layer$N.img: FAILED" sums.out)" = 1
tap_check "the top layer still checks clean" "$CHAINADM" check -q layer$N.img
tap_done
