#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# qcow2 -> raw: our streaming decoder vs `qemu-img convert -O raw`, side by side, on the same
# local images (uncompressed, zlib-compressed, zstd-compressed clusters) made from a raw source
# of random, text and zero regions. Prints wall time, ratio (ours / qemu-img) and peak RSS.
#   bench/qcow2.sh [size-MiB (default 1536)] [work-dir (default /tmp/cdi-bench-qcow2)]
# Targets (issue 3): uncompressed ratio <= 1.0, compressed <= 0.7.
set -euo pipefail
mib=${1:-1536}
work=${2:-/tmp/cdi-bench-qcow2}
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build-bench
cmake -S "$here/.." -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCDI_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target qcow2_decode >/dev/null
dec=$build/bench/qcow2_decode

mkdir -p "$work"
cd "$work"
if [ ! -f src.raw ] || [ "$(stat -c %s src.raw)" != $((mib << 20)) ]; then
  echo "making a ${mib} MiB source (random / text / zero, 32 MiB regions)..."
  rm -f src.raw
  set +o pipefail  # yes | head ends with SIGPIPE
  for ((i = 0; i < mib / 32; i++)); do
    case $((i % 3)) in
      0) head -c $((32 << 20)) /dev/urandom ;;
      1) yes "All work and no play makes Jack a dull boy $i" | head -c $((32 << 20)) ;;
      2) head -c $((32 << 20)) /dev/zero ;;
    esac
  done > src.raw
  set -o pipefail
fi
for v in plain zlib zstd; do
  [ -f $v.qcow2 ] && continue
  case $v in
    plain) qemu-img convert -f raw -O qcow2 src.raw $v.qcow2 ;;
    zlib) qemu-img convert -f raw -O qcow2 -c src.raw $v.qcow2 ;;
    zstd) qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd src.raw $v.qcow2 ;;
  esac
done

# Runs a command under /usr/bin/time; prints "wall-seconds peak-RSS-KiB user-s sys-s".
measure() {
  /usr/bin/time -f '%e %M %U %S' -o time.out "$@" 2>stderr.out >/dev/null
  cat time.out
}

# Wall time is what the targets are about; CPU (user+sys) is shown too because on a shared
# machine wall time is noisy.
printf '%-6s %9s %10s %8s %6s %10s %9s %6s %8s %8s\n' image qcow2-MiB qemu-img-s ours-s ratio qemu-cpu-s ours-cpu-s ratio qemu-RSS ours-RSS
for v in plain zlib zstd; do
  cat $v.qcow2 > /dev/null  # same page-cache state for both
  rm -f ref.raw out.raw
  read -r qs qr qu qy < <(measure qemu-img convert -f qcow2 -O raw $v.qcow2 ref.raw)
  rm -f out.raw
  read -r os or ou oy < <(measure "$dec" $v.qcow2 out.raw)
  cmp -s ref.raw out.raw || { echo "MISMATCH on $v" >&2; exit 1; }
  sed "s/^/  $v stats: /" stderr.out >&2
  qc=$(echo "$qu + $qy" | bc -l)
  oc=$(echo "$ou + $oy" | bc -l)
  printf '%-6s %9d %10s %8s %6.2f %10.2f %9.2f %6.2f %6dMiB %6dMiB\n' $v $(($(stat -c %s $v.qcow2) >> 20)) \
    "$qs" "$os" "$(echo "$os / $qs" | bc -l)" "$qc" "$oc" "$(echo "$oc / $qc" | bc -l)" $((qr / 1024)) $((or / 1024))
done
rm -f ref.raw out.raw time.out stderr.out
