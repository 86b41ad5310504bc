#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Command 1 of the README quick start: installs the dependencies, builds cdi-import and imports
# the bundled demo image (testdata/demo/demo.qcow2.xz: xz-compressed qcow2, 64 MiB virtual) into
# ./demo.raw with a progress display, then checks the result against qemu-img.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}

scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j "$JOBS" --target cdi-import

BIN=build/cmd/cdi-import/cdi-import
IMAGE=testdata/demo/demo.qcow2.xz
echo
echo "\$ $BIN info $IMAGE"
"$BIN" info "$IMAGE"
echo
echo "\$ $BIN --url $IMAGE --dest demo.raw --progress bar"
"$BIN" --url "$IMAGE" --dest demo.raw --progress bar

# check: qemu-img's own conversion of the uncompressed image must be identical
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
xz -dc "$IMAGE" > "$T/demo.qcow2"
echo
echo "\$ qemu-img compare -f qcow2 -F raw demo.qcow2 demo.raw"
qemu-img compare -f qcow2 -F raw "$T/demo.qcow2" demo.raw
qemu-img convert -q -f qcow2 -O raw "$T/demo.qcow2" "$T/expected.raw"
if cmp "$T/expected.raw" demo.raw; then
  echo "cmp: demo.raw is byte-for-byte what qemu-img convert -O raw makes ($(stat -c %s demo.raw) bytes," \
       "$(($(stat -c %b demo.raw) * 512 / 1024)) KiB allocated)"
fi
echo
echo "first bytes of demo.raw:"
head -c 200 demo.raw
echo
