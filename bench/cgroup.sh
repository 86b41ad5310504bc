#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/cgroup.sh: every scenario of the bench tables (raw, raw.gz, raw.xz single- and multi-block,
# raw.zst, qcow2 plain / zlib / zstd clusters, qcow2.xz, vmdk via qemu-img, an upload) on a guest
# disk shaped like a cloud image (bench/lib.sh make_guest_raw: 45 % incompressible, 20 % text,
# 35 % holes), each imported unconstrained and inside a 64 MiB memory cgroup
# (tests/support/cgroup_run.py: v1 memory.limit_in_bytes here, v2 memory.max elsewhere), the two
# runs of a scenario back to back in the same run. The output is on a loop-mounted ext4 (tmpfs
# pages are charged to the cgroup and cannot be reclaimed). Before every run: the output removed,
# `sync`, the page cache dropped (so the constrained run reads its source into its own cgroup).
# Reports wall time (cdi-import fdatasyncs the target before it exits), constrained/unconstrained
# (goal <= 1.3), peak RSS (/usr/bin/time; goal <= 64 MiB) and the cgroup's peak usage and failcnt
# (v1 memory.max_usage_in_bytes / memory.failcnt: page cache included). Every output is compared
# byte for byte with the source disk. Needs root. Not run by CI.
#   Environment: BENCH_SIZE_MIB (default 2048), BENCH_RUNS (default 1: median of that many per
#   side, interleaved), BENCH_MEMORY (default 64M), BENCH_DIR (default bench/.work-cgroup),
#   BENCH_ONLY (a substring: only the scenarios whose name contains it),
#   CDI_IMPORT (default build/cmd/cdi-import/cdi-import).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
MIBS=${BENCH_SIZE_MIB:-2048}
RUNS=${BENCH_RUNS:-1}
MEM=${BENCH_MEMORY:-64M}
DIR=${BENCH_DIR:-$ROOT/bench/.work-cgroup}
CDI=${CDI_IMPORT:-$ROOT/build/cmd/cdi-import/cdi-import}
ONLY=${BENCH_ONLY:-}
CGROUP_RUN=$ROOT/tests/support/cgroup_run.py
[[ -x $CDI ]] || { echo "bench: $CDI not found" >&2; exit 1; }
(($(id -u) == 0)) || { echo "bench: needs root (cgroups, loop mount, drop_caches)" >&2; exit 1; }
for tool in qemu-img pigz xz zstd openssl jq curl /usr/bin/time mkfs.ext4; do
  command -v "$tool" > /dev/null || { echo "bench: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
IMG=$DIR/img-${MIBS}m
mkdir -p "$IMG"

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB guest disk (45 % incompressible, 20 % text, 35 % holes) and its inputs"
  make_guest_raw "$IMG/source.raw" "$MIBS"
  pigz -p 2 -c "$IMG/source.raw" > "$IMG/raw.gz"
  xz -0 -T1 -c "$IMG/source.raw" > "$IMG/single.raw.xz"
  xz -0 -T2 --block-size=32MiB -c "$IMG/source.raw" > "$IMG/multi.raw.xz"
  zstd -q -T2 -c "$IMG/source.raw" > "$IMG/raw.zst"
  qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/disk.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$IMG/source.raw" "$IMG/zlib.qcow2"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zstd "$IMG/source.raw" "$IMG/zstd.qcow2"
  xz -0 -T2 -c "$IMG/disk.qcow2" > "$IMG/disk.qcow2.xz"
  qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse "$IMG/source.raw" "$IMG/disk.vmdk"
  touch "$IMG/.done"
fi

TMP=$(mktemp -d)
FS=$TMP/fs
mkdir -p "$FS"
cleanup() {
  [[ -n ${SRV_PID:-} ]] && kill "$SRV_PID" 2> /dev/null || true
  mountpoint -q "$FS" && umount "$FS"
  rm -rf "$TMP" "$DIR/ext4.img"
}
trap cleanup EXIT
truncate -s $((MIBS + 256))M "$DIR/ext4.img"
mkfs.ext4 -q -F "$DIR/ext4.img"
mount -o loop "$DIR/ext4.img" "$FS"

clean() {
  rm -rf "${FS:?}"/*
  sync
  echo 3 > /proc/sys/vm/drop_caches
}

# run_import CGROUP(0|1) INPUT [ARGS...]: one import → LAST_S, LAST_RSS (KiB), LAST_PEAK/LAST_FAIL (cgroup; "–" unconstrained)
run_import() {
  local cg=$1 input=$2 t0 pre=()
  shift 2
  clean
  ((cg)) && pre=(python3 "$CGROUP_RUN" --memory "$MEM" --report "$TMP/cg.json" --)
  t0=$EPOCHREALTIME
  "${pre[@]}" /usr/bin/time -f %M -o "$TMP/rss" "$CDI" --progress none --url "$IMG/$input" --dest "$FS/d.raw" "$@" \
    > /dev/null 2> "$TMP/err" || { cat "$TMP/err" >&2; return 1; }
  LAST_S=$(echo "$EPOCHREALTIME - $t0" | bc)
  LAST_RSS=$(tail -n 1 "$TMP/rss")
  cg_fields "$cg"
}

# run_upload CGROUP INPUT ROUTE: upload-server (in the cgroup or not) receives INPUT from curl
run_upload() {
  local cg=$1 input=$2 route=$3 t0 pre=() port= i
  clean
  ((cg)) && pre=(python3 "$CGROUP_RUN" --memory "$MEM" --report "$TMP/cg.json" --)
  rm -f "$TMP/err"   # not the last run's port: the server's redirection truncates it only once forked
  "${pre[@]}" /usr/bin/time -f %M -o "$TMP/rss" "$CDI" upload-server --listen 127.0.0.1:0 --insecure-http \
    --progress none --dest "$FS/d.raw" > /dev/null 2> "$TMP/err" &
  SRV_PID=$!
  for i in $(seq 400); do
    port=$(grep -oE 'listening on port [0-9]+' "$TMP/err" 2> /dev/null | awk '{print $4}' || true)
    [[ -n $port ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || { cat "$TMP/err" >&2; return 1; }
  t0=$EPOCHREALTIME
  curl -sS -f -o /dev/null -H 'Expect:' -T "$IMG/$input" -X POST "http://127.0.0.1:$port$route"
  wait "$SRV_PID" || { cat "$TMP/err" >&2; return 1; }
  SRV_PID=
  LAST_S=$(echo "$EPOCHREALTIME - $t0" | bc)
  LAST_RSS=$(tail -n 1 "$TMP/rss")
  cg_fields "$cg"
}

cg_fields() {
  if (($1)); then
    LAST_PEAK=$(($(jq -r .peak "$TMP/cg.json") >> 20))
    LAST_FAIL=$(jq -r .failcnt "$TMP/cg.json")
    local oom
    oom=$(jq -r .oom_kills "$TMP/cg.json")
    [[ $oom == 0 || $oom == null ]] || { echo "bench: $oom OOM kill(s)" >&2; return 1; }
  fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rows=()
# scenario NAME RUNNER ARGS...: RUNS interleaved pairs (unconstrained, 64 MiB cgroup), each output cmp'd
scenario() {
  local name=$1 runner=$2 us=() cs=() urss=0 crss=0 cpeak=0 cfail=0 i
  shift 2
  [[ -z $ONLY || $name == *"$ONLY"* ]] || return 0
  log "$name ($(du -h --apparent-size "$IMG/$1" | cut -f1))"
  for ((i = 0; i < RUNS; i++)); do
    "$runner" 0 "$@"
    cmp "$IMG/source.raw" "$FS/d.raw" || { echo "bench: $name: output differs (unconstrained)" >&2; exit 1; }
    us+=("$LAST_S")
    ((LAST_RSS > urss)) && urss=$LAST_RSS
    "$runner" 1 "$@"
    cmp "$IMG/source.raw" "$FS/d.raw" || { echo "bench: $name: output differs (in $MEM)" >&2; exit 1; }
    cs+=("$LAST_S")
    ((LAST_RSS > crss)) && crss=$LAST_RSS
    ((LAST_PEAK > cpeak)) && cpeak=$LAST_PEAK
    ((LAST_FAIL > cfail)) && cfail=$LAST_FAIL
  done
  log "  unconstrained: ${us[*]} s; in $MEM: ${cs[*]} s (load $(cut -d' ' -f1-3 /proc/loadavg))"
  local u c
  u=$(median "${us[@]}") c=$(median "${cs[@]}")
  rows+=("| $name | $(($(stat -c %s "$IMG/$1") >> 20)) MiB | $(printf %.2f "$u") s | $((urss / 1024)) MiB | $(printf %.2f "$c") s | **$(printf %.2f "$(echo "scale=4; $c / $u" | bc)")** | $((crss / 1024)) MiB | $cpeak MiB | $cfail |")
}

scenario raw run_import source.raw
scenario raw.gz run_import raw.gz
scenario "raw.xz (single block)" run_import single.raw.xz
scenario "raw.xz (multi-block, 32 MiB)" run_import multi.raw.xz
scenario "raw.xz (multi-block, 32 MiB), --xz-decoder stream" run_import multi.raw.xz --xz-decoder stream
scenario raw.zst run_import raw.zst
scenario qcow2 run_import disk.qcow2
scenario "qcow2, zlib clusters" run_import zlib.qcow2
scenario "qcow2, zstd clusters" run_import zstd.qcow2
scenario qcow2.xz run_import disk.qcow2.xz
scenario "vmdk (qemu-img)" run_import disk.vmdk
scenario "upload qcow2, zstd clusters (sync)" run_upload zstd.qcow2 /v1beta1/upload
scenario "upload raw.zst (async)" run_upload raw.zst /v1beta1/upload-async
scenario "upload raw.xz multi-block (sync)" run_upload multi.raw.xz /v1beta1/upload

echo "$MIBS MiB guest disk (45 % incompressible, 20 % text, 35 % holes), output on a loop-mounted ext4,"
echo "unconstrained vs inside a $MEM memory cgroup ($(python3 - <<'PY'
import os
print("cgroup v1" if os.path.exists("/sys/fs/cgroup/memory/memory.limit_in_bytes") else "cgroup v2")
PY
)); $(nproc) CPUs; median of $RUNS run(s) per side; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| input | input size | unconstrained | peak RSS | in $MEM | ratio | peak RSS | cgroup peak usage | failcnt |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
