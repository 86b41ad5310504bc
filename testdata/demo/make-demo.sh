#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make-demo.sh: builds demo.qcow2.xz, the image the README quick start imports: a 64 MiB qcow2
# with a few MiB of recognisable text (and a little pseudo-random data) spread across the disk,
# xz-compressed to well under 1 MiB. Deterministic: re-running it reproduces the committed file.
set -euo pipefail
cd "$(dirname "$0")"
MIB=$((1024 * 1024))
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

put() { dd of="$T/demo.raw" bs=64K seek="$1" oflag=seek_bytes conv=notrunc status=none; }
text() { ( set +o pipefail
           seq -f "cdi-import demo disk, $1 region, line %06.0f: if you can read this, the import worked." 1 $(($2 / 70 + 1)) \
             | head -c "$2" ); }

truncate -s $((64 * MIB)) "$T/demo.raw"
{ printf 'CDI-IMPORT DEMO DISK\n====================\n'; text first $((2 * MIB)); } | put 0
text middle $MIB | put $((32 * MIB))
head -c $((64 * 1024)) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:demo -pbkdf2 | put $((48 * MIB))
printf 'END OF THE CDI-IMPORT DEMO DISK\n' | put $((64 * MIB - 512))

qemu-img convert -q -f raw -O qcow2 -o compat=1.1 "$T/demo.raw" "$T/demo.qcow2"
xz -9 -T1 -c "$T/demo.qcow2" > demo.qcow2.xz
ls -l demo.qcow2.xz
sha256sum demo.qcow2.xz
