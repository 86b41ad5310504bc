#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Peak RSS of cdi-importer (pod mode) on a multi-GiB import over HTTP, against CDI's default
# importer pod limits (600 MB memory, 0.75 CPU). The pod's 0.75-CPU quota is emulated with
# `taskset -c 0` (util::usable_cpus() then sizes every thread pool to 1, as it does under a cgroup
# cpu quota of <= 1 CPU); the unconstrained run shows the 2-core case for comparison.
#
#   bench/pod_memory.sh               # 2 GiB image (BENCH_SIZE_GIB), work dir bench/.work/pod
# Prints a markdown table. Needs nginx, pigz, zstd, xz, qemu-img, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
SIZE_GIB=${BENCH_SIZE_GIB:-2}
WORK=${BENCH_DIR:-$ROOT_DIR/bench/.work}/pod
CDI=${CDI_IMPORT:-$ROOT_DIR/build/cmd/cdi-import/cdi-import}
POD=$(dirname "$CDI")/cdi-importer
[[ -x $POD ]] || { echo "build first: $POD missing" >&2; exit 1; }
mkdir -p "$WORK/img"
IMG=$WORK/img
MIB=$((1024 * 1024))
SIZE=$((SIZE_GIB * 1024 * MIB))

if [[ ! -f $IMG/source.$SIZE_GIB.raw ]]; then
  echo "making a ${SIZE_GIB} GiB image (16 MiB of random data per 128 MiB, the rest zeros)..." >&2
  truncate -s "$SIZE" "$IMG/tmp.raw"
  for ((off = 0; off < SIZE / MIB; off += 128)); do
    dd if=/dev/urandom of="$IMG/tmp.raw" bs=1M count=16 seek=$((off + 8)) conv=notrunc,sparse status=none
  done
  mv "$IMG/tmp.raw" "$IMG/source.$SIZE_GIB.raw"
  rm -f "$IMG"/in.*
fi
S=$IMG/source.$SIZE_GIB.raw
[[ -f $IMG/in.raw.gz ]] || pigz -1 -c "$S" > "$IMG/in.raw.gz"
[[ -f $IMG/in.raw.zst ]] || zstd -q -1 -T2 -c "$S" > "$IMG/in.raw.zst"
[[ -f $IMG/in.raw.xz ]] || xz -0 -T2 -c "$S" > "$IMG/in.raw.xz"
[[ -f $IMG/in.qcow2 ]] || qemu-img convert -O qcow2 "$S" "$IMG/in.qcow2"

T=$(mktemp -d "${TMPDIR:-/tmp}/cdi-bench-pod.XXXXXX")
source "$ROOT_DIR/tests/support/nginx.sh"
trap 'nginx_stop; rm -rf "$T"' EXIT
nginx_start "$T/nginx" "$IMG" >/dev/null

run_pod() {  # run_pod INPUT CPUSET -> "wall_s rss_kib"
  local input=$1 cpus=$2 r=$T/root
  rm -rf "$r"; mkdir -p "$r/data" "$r/dev"
  local prefix=()
  [[ $cpus != all ]] && prefix=(taskset -c "$cpus")
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$r" CDI_IMPORT_METRICS_LISTEN=127.0.0.1:0 \
    IMPORTER_SOURCE=http IMPORTER_CONTENTTYPE=kubevirt IMPORTER_ENDPOINT="http://127.0.0.1:$HTTP_PORT/$input" \
    IMPORTER_IMAGE_SIZE="${SIZE_GIB}Gi" FILESYSTEM_OVERHEAD=0 PREALLOCATION=false OWNER_UID=bench \
    "${prefix[@]}" /usr/bin/time -f '%e %M' -o "$T/time" "$POD" -v=0 2> "$T/err" || { cat "$T/err" >&2; exit 1; }
  grep -q '"message":"Import Complete"' "$r/dev/termination-log" || { echo "import of $input failed" >&2; exit 1; }
  cmp -s "$S" "$r/data/disk.img" || { echo "$input: output differs from the source" >&2; exit 1; }
  sync
  cat "$T/time"
}

LIMIT_MIB=572   # 600 MB (CDI's default importer memory limit) in MiB
echo "| input | input size | CPUs | wall | peak RSS | CDI pod limit | RSS / limit |"
echo "|---|---|---|---|---|---|---|"
for input in in.raw.gz in.raw.zst in.raw.xz in.qcow2; do
  for cpus in 0 all; do
    read -r wall rss < <(run_pod "$input" "$cpus")
    label=$([[ $cpus == 0 ]] && echo "1 (0.75-CPU pod)" || echo "$(nproc)")
    printf '| %s | %d MiB | %s | %.1f s | %d MiB | 600 MB | %.3f |\n' "${input#in.}" \
      $(( $(stat -c %s "$IMG/$input") / MIB )) "$label" "$wall" $((rss / 1024)) "$(bc -l <<< "$rss / 1024 / $LIMIT_MIB")"
  done
done
