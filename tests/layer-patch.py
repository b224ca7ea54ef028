#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Corrupt or edit a dm-chain layer on purpose, for the bad-input tests.

    layer-patch.py LAYER [--slot 0|1|both] [FIELD=VALUE ...]
                         [--entry INDEX=TYPE:HOST ...] [--unmarked]
                         [--raw OFFSET=HEXBYTES]
                         [--keep-csum] [--get FIELD]

FIELD is a header field of Documentation/dm-chain-format.rst (magic,
version, cluster_size, generation, incompat_features, virtual_size,
table_size, map_offset, map_size, data_offset, data_end, backing_type,
flags, uuid, backing_uuid) or job (the 256-byte job record).  Integers accept 0x
prefixes; uuid fields take 32 hex digits or the name of another layer
file to copy its uuid from, job 512 hex digits.  The
checksum of every edited slot is recomputed unless --keep-csum.  --entry
writes table entry INDEX as TYPE (absent|zero|mapped|bad) with HOST and
sets its table block's bit in the table map (--unmarked leaves the map
alone).
--raw writes bytes at an absolute offset.  --get prints a field of the
current slot.
"""
import struct
import sys

BLOCK = 4096
FIELDS = {  # name: (offset, struct format)
    "csum": (0, "<I"), "flags": (4, "<I"), "uuid": (8, "16s"),
    "magic": (24, "<Q"), "version": (32, "<I"), "cluster_size": (36, "<I"),
    "generation": (40, "<Q"), "incompat_features": (48, "<Q"),
    "compat_features": (56, "<Q"), "virtual_size": (64, "<Q"),
    "table_offset": (72, "<Q"), "table_size": (80, "<Q"),
    "data_offset": (88, "<Q"), "data_end": (96, "<Q"),
    "backing_type": (104, "<I"), "hint_len": (108, "<I"),
    "backing_uuid": (112, "16s"), "job": (128, "256s"),
    "map_offset": (1408, "<Q"), "map_size": (1416, "<Q"),
}
ENTRY_TYPES = {"absent": 0, "zero": 1, "mapped": 2, "bad": 3}


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def get(slot, name):
    off, fmt = FIELDS[name]
    return struct.unpack_from(fmt, slot, off)[0]


def put(slot, name, value):
    off, fmt = FIELDS[name]
    struct.pack_into(fmt, slot, off, value)


def current_slot(f):
    f.seek(0)
    both = f.read(2 * BLOCK)
    gens = [get(both[i * BLOCK:(i + 1) * BLOCK], "generation") for i in (0, 1)]
    return 1 if gens[1] > gens[0] else 0


def parse_value(name, text):
    fmt = FIELDS[name][1]
    if not fmt.endswith("s"):
        return int(text, 0)
    if len(text) == 2 * int(fmt[:-1]):
        return bytes.fromhex(text)
    with open(text, "rb") as other:
        slot = other.read(2 * BLOCK)
        s = 1 if get(slot[BLOCK:], "generation") > get(slot[:BLOCK], "generation") else 0
        return get(slot[s * BLOCK:(s + 1) * BLOCK], "uuid")


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    path, args = argv[1], argv[2:]
    slots, keep, edits, entries, raws, getf = None, False, [], [], [], None
    mark = True
    while args:
        a = args.pop(0)
        if a == "--slot":
            v = args.pop(0)
            slots = [0, 1] if v == "both" else [int(v)]
        elif a == "--unmarked":
            mark = False
        elif a == "--keep-csum":
            keep = True
        elif a == "--entry":
            idx, spec = args.pop(0).split("=")
            typ, host = spec.split(":")
            entries.append((int(idx, 0), ENTRY_TYPES[typ], int(host, 0)))
        elif a == "--raw":
            off, hexbytes = args.pop(0).split("=")
            raws.append((int(off, 0), bytes.fromhex(hexbytes)))
        elif a == "--get":
            getf = args.pop(0)
        elif "=" in a:
            name, value = a.split("=", 1)
            if name not in FIELDS:
                print(f"layer-patch: {name}: unknown field", file=sys.stderr)
                return 2
            edits.append((name, parse_value(name, value)))
        else:
            print(f"layer-patch: {a}: unknown argument", file=sys.stderr)
            return 2
    with open(path, "r+b") as f:
        cur = current_slot(f)
        if getf:
            f.seek(cur * BLOCK)
            v = get(bytearray(f.read(BLOCK)), getf)
            print(v.hex() if isinstance(v, bytes) else v)
            return 0
        for s in slots if slots is not None else [cur]:
            f.seek(s * BLOCK)
            slot = bytearray(f.read(BLOCK))
            for name, value in edits:
                put(slot, name, value)
            if not keep:
                put(slot, "csum", crc32c(bytes(slot[4:])))
            f.seek(s * BLOCK)
            f.write(slot)
        f.seek(cur * BLOCK)
        slot = f.read(BLOCK)
        table = get(slot, "table_offset")
        for idx, typ, host in entries:
            f.seek(table + 8 * idx)
            f.write(struct.pack("<Q", (typ << 62) | host))
            if mark:
                block = idx * 8 // BLOCK
                f.seek(get(slot, "map_offset") + block // 8)
                byte = f.read(1)[0]
                f.seek(get(slot, "map_offset") + block // 8)
                f.write(bytes([byte | 1 << (block % 8)]))
        for off, data in raws:
            f.seek(off)
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
