#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a minimal Apple disk image (UDIF, "DMG") around raw data, for the tests that expect a
DMG to be refused instead of imported as raw.

  make_dmg.py RAW OUT

OUT = the data fork (RAW, padded to whole 512-byte sectors), an XML property list with one
"blkx" resource (a base64 "mish" block table: one uncompressed chunk covering the data, then
the terminator), and the 512-byte "koly" trailer (version 4, header size 512) pointing at both.
qemu's dmg driver opens it (qemu-img picks that driver only for a name ending in .dmg) and
reads back RAW's bytes (padded to the sector).
"""
import base64
import struct
import sys

SECTOR = 512


def mish(sectors):
    """A BLKX table: header (204 bytes) + chunk entries (40 bytes each)."""
    chunks = [
        # type 1 = uncompressed copy; sector number/count relative to the table; data offset/length
        struct.pack(">IIQQQQ", 0x00000001, 0, 0, sectors, 0, sectors * SECTOR),
        struct.pack(">IIQQQQ", 0xFFFFFFFF, 0, sectors, 0, sectors * SECTOR, 0),  # terminator
    ]
    head = struct.pack(">4sIQQQII", b"mish", 1, 0, sectors, 0, 0, 0)  # 40 bytes
    head += bytes(24)                     # reserved
    head += struct.pack(">II", 0, 0) + bytes(128)  # checksum: none
    head += struct.pack(">I", len(chunks))
    assert len(head) == 204
    return head + b"".join(chunks)


def plist(blkx):
    data = base64.b64encode(blkx).decode()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
        '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
        '<plist version="1.0">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n'
        "\t\t<key>blkx</key>\n\t\t<array>\n\t\t\t<dict>\n"
        "\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n"
        f"\t\t\t\t<key>Data</key>\n\t\t\t\t<data>{data}</data>\n"
        "\t\t\t\t<key>ID</key>\n\t\t\t\t<string>0</string>\n"
        "\t\t\t\t<key>Name</key>\n\t\t\t\t<string>whole disk (cdi-import test)</string>\n"
        "\t\t\t</dict>\n\t\t</array>\n\t</dict>\n</dict>\n</plist>\n"
    ).encode()


def koly(data_len, xml_off, xml_len, sectors):
    t = bytearray(512)
    struct.pack_into(">4sIII", t, 0, b"koly", 4, 512, 1)  # signature, version, header size, flags
    struct.pack_into(">QQQ", t, 16, 0, 0, data_len)         # running data fork offset, data fork
    struct.pack_into(">QQ", t, 40, 0, 0)                    # resource fork: none
    struct.pack_into(">II", t, 56, 1, 1)                    # segment 1 of 1
    struct.pack_into(">QQ", t, 0xD8, xml_off, xml_len)      # XML property list
    struct.pack_into(">IQ", t, 0x1E8, 1, sectors)           # image variant (device), sector count
    return bytes(t)


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    with open(argv[1], "rb") as f:
        raw = f.read()
    raw += bytes(-len(raw) % SECTOR)
    sectors = len(raw) // SECTOR
    xml = plist(mish(sectors))
    with open(argv[2], "wb") as f:
        f.write(raw + xml + koly(len(raw), len(raw), len(xml), sectors))


if __name__ == "__main__":
    main(sys.argv)
