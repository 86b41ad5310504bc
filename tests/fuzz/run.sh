#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the qcow2 libFuzzer target in its own build tree (the whole project configured with clang
# and -DCDI_FUZZ=ON, so the target links the real cdi_import_core, instrumented; only the fuzz
# target and what it links are built) and runs it for N seconds (default 60) over a seed corpus of
# small qemu-img images generated here. Exit status: libFuzzer's (non-zero when it found a crash,
# leak or sanitizer report; the reproducer is left in the build dir).
#   tests/fuzz/run.sh [seconds] [build-dir]
# Needs: clang-16 and libclang-rt-16-dev (Debian 12), qemu-utils, cmake, ninja, and the project's
# build dependencies (scripts/install-deps.sh).
set -eu
secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${2:-$root/build-fuzz}
cxx=${CXX:-clang++-16}
cc=${CC:-clang-16}

# A tree configured from another source directory (the old standalone tests/fuzz project) cannot
# be reconfigured from the top level: start it afresh.
if [ -f "$build/CMakeCache.txt" ] && ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$root" "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCDI_FUZZ=ON -DCDI_BUILD_BENCH=OFF \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$build" -j2 --target fuzz_qcow2

seeds=$build/seeds
corpus=$build/corpus
rm -rf "$seeds"
mkdir -p "$seeds" "$corpus"
cd "$seeds"
head -c 262144 /dev/urandom > rnd.raw
yes 'qcow2 seed text ' | head -c 262144 > txt.raw
q() { qemu-img "$@" >/dev/null; }
io() { qemu-io -f qcow2 "$@" >/dev/null; }
q create -f qcow2 -o cluster_size=512 a.qcow2 64k && io -c 'write -P 1 0 3k' -c 'write -z 4k 1k' a.qcow2
q create -f qcow2 -o compat=0.10,cluster_size=512 b.qcow2 40k && io -c 'write -P 2 1k 2k' b.qcow2
q create -f qcow2 -o cluster_size=4k c.qcow2 1M && io -c 'write -P 3 8k 8k' -c 'discard 8k 4k' c.qcow2
q create -f qcow2 -o extended_l2=on,cluster_size=16k d.qcow2 256k && io -c 'write -P 4 1k 1k' -c 'write -z 20k 1k' d.qcow2
q convert -f raw -O qcow2 -c -o cluster_size=4k txt.raw e.qcow2
q convert -f raw -O qcow2 -c -o cluster_size=4k,compression_type=zstd txt.raw f.qcow2
q convert -f raw -O qcow2 -o cluster_size=512 rnd.raw g.qcow2
q create -f qcow2 -o cluster_size=512 h.qcow2 64k && io -c 'write -P 5 0 8k' h.qcow2 && q snapshot -c s h.qcow2 \
  && io -c 'write -P 6 1k 1k' h.qcow2
rm -f rnd.raw txt.raw

cd "$build"
ASAN_OPTIONS=detect_leaks=1 ./tests/fuzz/fuzz_qcow2 -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=2048 \
  -print_final_stats=1 "$corpus" "$seeds"
