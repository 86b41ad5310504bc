#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make-images.sh OUTDIR
#   Generates, deterministically, every input the end-to-end tests use: a 64 MiB raw source with
#   random, text, 0xFF and zero regions spread across the disk, the same content in every
#   compression and disk format cdi-import accepts, and a set of bad inputs. Idempotent: when
#   OUTDIR/.complete holds the hash of this script, nothing is done. Takes a few seconds.
#   Test inputs are kept out of git; this script is their source.
set -euo pipefail
OUT=${1:?usage: make-images.sh OUTDIR}
SELF_HASH=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -f $OUT/.complete && $(cat "$OUT/.complete") == "$SELF_HASH" ]]; then
  exit 0
fi
start=$(date +%s%N)
# Build in a fresh directory and swap it in, so a half-built cache is never used.
WORK=$(mktemp -d "$OUT.build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

MIB=$((1024 * 1024))
SIZE=$((64 * MIB))
QEMU="qemu-img convert -q -f raw"

# Deterministic pseudo-random bytes: AES-CTR keystream of zeros, keyed by a name.
prng() { head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2; }
# Deterministic text: numbered lines, like a log file or a filesystem's text content.
# (the generator is cut by head: SIGPIPE there is expected, hence no pipefail)
text() { ( set +o pipefail
           seq -f "$1 line %08.0f of a recognisable text region: the quick brown fox jumps over the lazy dog" 1 $(($2 / 80 + 1)) \
             | head -c "$2" ); }
ffs() { head -c "$1" /dev/zero | tr '\0' '\377'; }
# put OFFSET (writes stdin at byte OFFSET of source.raw)
put() { dd of="$1" bs=64K seek="$2" oflag=seek_bytes conv=notrunc status=none; }

# --- the source disk: regions at aligned and unaligned offsets, holes between ---
truncate -s "$SIZE" source.raw
prng boot $MIB                  | put source.raw 0
text alpha $((300 * 1024))      | put source.raw $((MIB + 4096))
prng cross 2000                 | put source.raw $((8 * MIB - 1000))      # crosses 2 MiB/64 KiB clusters
text beta $MIB                  | put source.raw $((16 * MIB))
prng mid $((3 * MIB / 2))       | put source.raw $((31 * MIB + 123))
ffs $((64 * 1024))              | put source.raw $((40 * MIB))
text gamma $((512 * 1024))      | put source.raw $((50 * MIB))
prng late $((512 * 1024))       | put source.raw $((63 * MIB - 4096))
prng tail 4096                  | put source.raw $((SIZE - 4096))

# odd-sized raw (not a multiple of 512: raw only), all-zero 2 GiB sparse raw
head -c $((4 * MIB)) source.raw > odd.raw
prng odd 12345 >> odd.raw
truncate -s 2G zero.raw

# --- compression (in the background, on the other core, while qemu-img makes the disk formats) ---
compress_raw() {
gzip -n -c source.raw > raw.gz
head -c $((SIZE / 2)) source.raw | gzip -n -c > raw.multi.gz
tail -c +$((SIZE / 2 + 1)) source.raw | gzip -n -c >> raw.multi.gz
gzip -n -c odd.raw > odd.raw.gz
xz -0 -T1 -c source.raw > raw.xz                                   # one stream, one block
xz -0 -T2 --block-size=1MiB -c source.raw > raw.multiblock.xz         # one stream, 64 blocks
head -c $((SIZE / 2)) source.raw | xz -0 -T1 -c > raw.multistream.xz
tail -c +$((SIZE / 2 + 1)) source.raw | xz -0 -T1 -c >> raw.multistream.xz
zstd -q -c source.raw > raw.zst
head -c $((SIZE / 2)) source.raw | zstd -q -c > raw.multiframe.zst
tail -c +$((SIZE / 2 + 1)) source.raw | zstd -q -c >> raw.multiframe.zst
zstd -q -c odd.raw > odd.raw.zst
gzip -n -c raw.xz > raw.xz.gz                                      # nested compression
}
compress_raw &
compress_pid=$!

# --- disk formats ---
$QEMU source.raw -O qcow2 -o compat=0.10                     qcow2-v2.qcow2
$QEMU source.raw -O qcow2 -o compat=1.1                      qcow2-v3.qcow2
$QEMU source.raw -O qcow2 -c -o compression_type=zlib        qcow2-zlib.qcow2
$QEMU source.raw -O qcow2 -c -o compression_type=zstd        qcow2-zstd.qcow2
$QEMU source.raw -O qcow2 -o extended_l2=on                  qcow2-extl2.qcow2
$QEMU source.raw -O qcow2 -o cluster_size=512                qcow2-c512.qcow2
$QEMU source.raw -O qcow2 -o cluster_size=2M                 qcow2-c2m.qcow2
$QEMU source.raw -O vmdk -o subformat=monolithicSparse       sparse.vmdk
$QEMU source.raw -O vmdk -o subformat=streamOptimized        stream.vmdk
$QEMU source.raw -O vpc  -o subformat=dynamic,force_size=on  dynamic.vhd
$QEMU source.raw -O vpc  -o subformat=fixed,force_size=on    fixed.vhd
$QEMU source.raw -O vhdx                                     disk.vhdx
$QEMU source.raw -O vdi                                      disk.vdi
# virtual size far larger than the data: 1 GiB with 1 MiB written in the middle
qemu-img create -q -f qcow2 big-virtual.qcow2 1G
qemu-io -f qcow2 -c "write -q -P 0x5a 512M 1M" big-virtual.qcow2
# the same idea at 256 MiB, for the dirty block device (holes must be zeroed there)
qemu-img create -q -f qcow2 sparse-256m.qcow2 256M
qemu-io -f qcow2 -c "write -q -P 0xa5 100M 1M" -c "write -q -P 0x3c 255M 64k" sparse-256m.qcow2
gzip -n -c qcow2-v3.qcow2 > qcow2.gz
xz -0 -T1 -c qcow2-v3.qcow2 > qcow2.xz
zstd -q -c qcow2-zlib.qcow2 > qcow2-zlib.qcow2.zst
gzip -n -c stream.vmdk > stream.vmdk.gz
zstd -q -c disk.vhdx > disk.vhdx.zst

wait "$compress_pid"

# --- tar (kubevirt content type: one disk inside) ---
mkdir -p tardir && cp --sparse=always source.raw tardir/disk.img
tar -C tardir --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf disk.tar disk.img
cp --sparse=always source.raw tardir/disk.raw
# GCE style: GNU sparse tar of disk.raw, gzipped
tar -C tardir --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -S -cf - disk.raw | gzip -n > disk.raw.tar.gz
rm tardir/disk.raw
cp qcow2-v3.qcow2 tardir/disk.qcow2
tar -C tardir --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf qcow2.tar disk.qcow2
printf 'not a disk\n' > tardir/README
tar -C tardir --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf two.tar README disk.img
rm -rf tardir

# --- archive content type: a directory tree, and hostile tars ---
/usr/bin/python3 - <<'PY'
import io, tarfile

def add_file(tf, name, data, mode=0o644):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mode = mode; ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))

def add_dir(tf, name):
    ti = tarfile.TarInfo(name); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; ti.mtime = 0
    tf.addfile(ti)

def add_link(tf, name, target, kind=tarfile.SYMTYPE):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.linkname = target; ti.mtime = 0
    tf.addfile(ti)

def make(path, fill, fmt=tarfile.GNU_FORMAT):
    with tarfile.open(path, "w", format=fmt) as tf:
        fill(tf)

def good(tf):
    add_dir(tf, "data")
    add_dir(tf, "data/sub")
    add_file(tf, "data/hello.txt", b"hello from the archive\n")
    add_file(tf, "data/sub/numbers.txt", b"".join(b"%d\n" % i for i in range(10000)))
    add_file(tf, "run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    add_link(tf, "data/link-inside", "hello.txt")       # a symlink that stays inside: allowed
make("archive.tar", good)

ESC = "/tmp/cdi-e2e-escape"   # tests check that nothing appears under this path
make("evil-dotdot.tar", lambda tf: (add_file(tf, "ok.txt", b"fine\n"),
                                    add_file(tf, "../../../../../../../../tmp/cdi-e2e-escape/dotdot.txt", b"pwned\n")))
make("evil-dotdot-inner.tar", lambda tf: (add_dir(tf, "a"),
                                          add_file(tf, "a/../../escape-inner.txt", b"pwned\n")))
make("evil-absolute.tar", lambda tf: add_file(tf, ESC + "/absolute.txt", b"pwned\n"), fmt=tarfile.PAX_FORMAT)
make("evil-symlink-dir.tar", lambda tf: (add_link(tf, "esc", ESC),
                                         add_file(tf, "esc/through-symlink.txt", b"pwned\n")))
make("evil-symlink-rel.tar", lambda tf: (add_link(tf, "up", "../../../../../../../../tmp/cdi-e2e-escape"),
                                         add_file(tf, "up/through-rel-symlink.txt", b"pwned\n")))
make("evil-symlink-only.tar", lambda tf: add_link(tf, "passwd", "/etc/passwd"))
make("evil-hardlink.tar", lambda tf: add_link(tf, "hard", "/etc/passwd", tarfile.LNKTYPE))
def dev(tf):
    ti = tarfile.TarInfo("null"); ti.type = tarfile.CHRTYPE; ti.devmajor = 1; ti.devminor = 3; ti.mtime = 0
    tf.addfile(ti)
make("evil-device.tar", dev)
make("evil-setuid.tar", lambda tf: add_file(tf, "suid", b"#!/bin/sh\n", 0o4755))
PY
gzip -n -c archive.tar > archive.tar.gz

# --- bad inputs ---
# backing file
$QEMU source.raw -O qcow2 backing-base.qcow2
qemu-img create -q -f qcow2 -b backing-base.qcow2 -F qcow2 backing-overlay.qcow2
qemu-io -f qcow2 -c "write -q -P 0xab 0 64k" backing-overlay.qcow2
# LUKS-encrypted qcow2. Creating LUKS is flaky on some VMs (qemu's PBKDF2 benchmark fails with
# "Unable to get accurate CPU usage"), so retry.
printf testpass > secret.txt
for i in 1 2 3 4 5 6 7; do
  if $QEMU source.raw --object secret,id=sec0,file=secret.txt -O qcow2 \
       -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 luks.qcow2 2>luks.err; then
    break
  fi
  rm -f luks.qcow2
  if (( i == 7 )); then cat luks.err >&2; exit 1; fi
done
rm -f luks.err
# truncated: by one byte, and in the middle
for f in raw.gz raw.xz raw.zst qcow2-v3.qcow2; do
  n=$(stat -c %s "$f")
  head -c $((n - 1)) "$f" > "trunc1-$f"
  head -c $((n / 2)) "$f" > "trunchalf-$f"
done
# gzip with a bad CRC32 (first trailer byte flipped)
cp raw.gz badcrc.gz
n=$(stat -c %s badcrc.gz)
b=$(od -An -tu1 -j $((n - 8)) -N1 badcrc.gz | tr -d ' ')
printf "\\$(printf %03o $((b ^ 0xff)))" | dd of=badcrc.gz bs=1 seek=$((n - 8)) conv=notrunc status=none
# qcow2 with an absurd L1 size (l1_size: big-endian u32 at offset 36)
cp qcow2-v3.qcow2 absurd-l1.qcow2
printf '\x7f\xff\xff\xff' | dd of=absurd-l1.qcow2 bs=1 seek=36 conv=notrunc status=none
# garbage behind the qcow2 magic (version 3, the rest random)
{ printf 'QFI\xfb\x00\x00\x00\x03'; prng garbage $((MIB - 8)); } > garbage.qcow2
{ printf 'QFI\xfb'; prng garbage2 $((MIB - 4)); } > garbage2.qcow2
# trailing garbage after a complete gzip member
{ cat raw.gz; printf 'trailing garbage, not a gzip member'; } > trailing.gz
# decompression bomb: 3 GiB of zeros in 96 xz streams of 32 MiB (~500 KiB in all)
head -c $((32 * MIB)) /dev/zero | xz -0 -T1 -c > bomb.part.xz
for i in $(seq 96); do cat bomb.part.xz; done > bomb.xz
rm bomb.part.xz
# a stream that is larger than the small loop devices the block tests use (96 MiB of data)
{ cat source.raw; head -c $((32 * MIB)) source.raw; } | gzip -1 -n -c > raw96.gz

echo "$SELF_HASH" > .complete
# swap in
shopt -s dotglob
rm -rf "${OUT:?}"/*
mv "$WORK"/* "$OUT"/
trap - EXIT
rmdir "$WORK"
echo "make-images: $(ls "$OUT" | wc -l) files in $OUT ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
