#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Patches one field of a qcow2 image in place, to make the damaged images that qemu refuses
(tests of the qcow2 decoder's refusals start from a valid `qemu-img create` / `qemu-io` image).

  qcow2_patch.py IMAGE l2-or GUEST_OFFSET BITS
      ORs BITS into the L2 entry mapping GUEST_OFFSET (its L1 entry must point to an L2 table),
      e.g. `l2-or img 0 1` sets the zero flag on guest cluster 0.
  qcow2_patch.py IMAGE header FIELD VALUE
      sets a v2 header field: refcount_table_clusters, refcount_table_offset, nb_snapshots,
      snapshots_offset, l1_size, l1_table_offset.
  qcow2_patch.py IMAGE snapshot-extra INDEX SIZE
      sets extra_data_size of snapshot table entry INDEX (entries before it are walked as qemu
      reads them: 40-byte header, extra data, id, name, each entry 8-byte aligned).

Prints what it changed, e.g. "l2 entry for guest 0x0 at 0x30000: 0x8000000000050000 -> ...".
Numbers may be decimal or 0x-prefixed hex.
"""
import struct
import sys

OFFSET_MASK = 0x00FFFFFFFFFFFE00
# name -> (byte offset, struct format) in the common (v2) header
FIELDS = {
    "l1_size": (36, ">I"),
    "l1_table_offset": (40, ">Q"),
    "refcount_table_offset": (48, ">Q"),
    "refcount_table_clusters": (56, ">I"),
    "nb_snapshots": (60, ">I"),
    "snapshots_offset": (64, ">Q"),
}


def num(s):
    return int(s, 0)


def read_at(f, off, fmt):
    f.seek(off)
    return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def write_at(f, off, fmt, value):
    f.seek(off)
    f.write(struct.pack(fmt, value))


def l2_or(f, guest, bits):
    cluster_bits = read_at(f, 20, ">I")
    cs = 1 << cluster_bits
    incompat = read_at(f, 72, ">Q") if read_at(f, 4, ">I") >= 3 else 0
    entry_bytes = 16 if incompat & (1 << 4) else 8
    l2_entries = cs // entry_bytes
    l1_off = read_at(f, 40, ">Q")
    l1_index, l2_index = divmod(guest // cs, l2_entries)
    l2_off = read_at(f, l1_off + 8 * l1_index, ">Q") & OFFSET_MASK
    if l2_off == 0:
        sys.exit(f"guest {guest:#x}: L1 entry {l1_index} has no L2 table")
    at = l2_off + entry_bytes * l2_index
    old = read_at(f, at, ">Q")
    write_at(f, at, ">Q", old | bits)
    print(f"l2 entry for guest {guest:#x} at {at:#x}: {old:#018x} -> {old | bits:#018x}")


def header(f, field, value):
    off, fmt = FIELDS[field]
    old = read_at(f, off, fmt)
    write_at(f, off, fmt, value)
    print(f"header {field}: {old} -> {value}")


def snapshot_extra(f, index, size):
    nb = read_at(f, 60, ">I")
    if index >= nb:
        sys.exit(f"snapshot {index}: the image has {nb} snapshots")
    off = read_at(f, 64, ">Q")
    for _ in range(index):
        off = (off + 7) & ~7
        id_size, name_size = read_at(f, off + 12, ">H"), read_at(f, off + 14, ">H")
        extra = read_at(f, off + 36, ">I")
        off += 40 + extra + id_size + name_size
    off = (off + 7) & ~7
    old = read_at(f, off + 36, ">I")
    write_at(f, off + 36, ">I", size)
    print(f"snapshot {index} at {off:#x}: extra_data_size {old} -> {size}")


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    image, op, args = argv[1], argv[2], argv[3:]
    with open(image, "r+b") as f:
        if f.read(4) != b"QFI\xfb":
            sys.exit(f"{image}: not a qcow2 image")
        if op == "l2-or" and len(args) == 2:
            l2_or(f, num(args[0]), num(args[1]))
        elif op == "header" and len(args) == 2 and args[0] in FIELDS:
            header(f, args[0], num(args[1]))
        elif op == "snapshot-extra" and len(args) == 2:
            snapshot_extra(f, num(args[0]), num(args[1]))
        else:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
