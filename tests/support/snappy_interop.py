#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Drives python-snappy's framing-format implementation (Debian's python3-snappy: StreamCompressor /
StreamDecompressor) for the interoperability tests of formats/snappy (tests/unit/test_formats_snappy.cpp).

  snappy_interop.py compress IN OUT [--piece N] [--mode auto|compressed|uncompressed|mixed] [--extras]
  snappy_interop.py decompress IN OUT [--read N]

compress: feeds IN to StreamCompressor.add_chunk in pieces of N bytes (python-snappy splits them
further at 64 KiB); --mode picks its compress= argument (mixed cycles auto/True/False); --extras
puts a padding chunk, a reserved skippable chunk and (halfway) a second stream identifier between
pieces. decompress: feeds IN to StreamDecompressor in reads of N bytes, then flush() (which
refuses a truncated chunk). Exit 1 with the message on stderr when python-snappy refuses the input.

Debian 12's python3-snappy 0.5.3 C extension raises SystemError in _crc32c on Python >= 3.10
(built without PY_SSIZE_T_CLEAN; fixed upstream in 0.6). Then the CRC-32C comes from Debian's
python3-crc32c instead; the framing code is python-snappy's own either way.
"""
import argparse
import struct
import sys

import snappy
import snappy.snappy as snappy_impl

try:
    snappy_impl._crc32c(b"")
except SystemError:
    import crc32c
    snappy_impl._crc32c = crc32c.crc32c

if snappy_impl._masked_crc32c(b"123456789") != 0xc78ab0e5:   # masked CRC-32C test vector
    sys.exit("snappy_interop: python-snappy CRC-32C is wrong")


def compress(data, piece, mode, extras):
    out = []
    comp = snappy.StreamCompressor()
    modes = {"auto": [None], "compressed": [True], "uncompressed": [False], "mixed": [None, True, False]}[mode]
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)] or [b""]
    for k, p in enumerate(pieces):
        if extras and k == len(pieces) // 2 and k > 0:
            comp = snappy.StreamCompressor()   # its first chunk repeats the stream identifier
        out.append(comp.add_chunk(p, compress=modes[k % len(modes)]))
        if extras:
            out.append(struct.pack("<L", 0xfe | (3 << 8)) + b"\0\0\0")          # padding
            out.append(struct.pack("<L", 0x80 | (5 << 8)) + b"skip!")           # reserved skippable
    return b"".join(out)


def decompress(data, read):
    dec = snappy.StreamDecompressor()
    out = [dec.decompress(data[i:i + read]) for i in range(0, len(data), read)]
    out.append(dec.flush())
    return b"".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("op", choices=["compress", "decompress"])
    ap.add_argument("infile")
    ap.add_argument("outfile")
    ap.add_argument("--piece", type=int, default=65536)
    ap.add_argument("--mode", default="auto", choices=["auto", "compressed", "uncompressed", "mixed"])
    ap.add_argument("--extras", action="store_true")
    ap.add_argument("--read", type=int, default=65536)
    a = ap.parse_args()
    with open(a.infile, "rb") as f:
        data = f.read()
    try:
        if a.op == "compress":
            res = compress(data, a.piece, a.mode, a.extras)
        else:
            res = decompress(data, a.read)
    except snappy.UncompressError as e:
        print("python-snappy: %s" % e, file=sys.stderr)
        return 1
    with open(a.outfile, "wb") as f:
        f.write(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
