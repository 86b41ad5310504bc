#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/upload.sh: `curl -T image` on 127.0.0.1 into `cdi-import upload-server` against, in the same
# run with the same curl and the same image, the CDI-style receiving side (bench/upload_receiver.py:
# the body into a scratch file, then `qemu-img convert` / `xz -dc`; or, as CDI does for raw.xz,
# straight through `xz -dc`). Time = from curl's start until the target is complete (server
# exited / receiver answered and the converter finished). Prints a markdown table with ratios and
# the upload server's peak RSS.
#   Each time is the median of BENCH_RUNS runs (default 3), interleaved (cdi-import, peer, cdi-import…)
#   so that load from elsewhere hits both sides alike; RSS is the largest seen.
#   Environment: BENCH_SIZE_MIB (default 2048), BENCH_DIR (default bench/.work-upload),
#   BENCH_RUNS, CDI_IMPORT (default build/cmd/cdi-import/cdi-import). Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_init upload 2048
RECV="/usr/bin/python3 $ROOT/bench/upload_receiver.py"

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB image (a third data: random + text, the rest zeros)"
  make_bench_raw "$IMG/source.raw" "$MIBS"
  xz -0 -T2 -c "$IMG/source.raw" > "$IMG/raw.xz"
  qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/disk.qcow2"
  touch "$IMG/.done"
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$OUT"' EXIT

clean() {
  rm -rf "${OUT:?}"/*
  sync
  echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
}

# cdi_upload FILE: wall seconds → LAST_S, server peak RSS KiB → LAST_RSS
cdi_upload() {
  clean
  /usr/bin/time -f %M -o "$TMP/rss" "$CDI" upload-server --listen 127.0.0.1:0 --insecure-http --progress none \
    --dest "$OUT/d.raw" 2> "$TMP/srv.err" &
  local pid=$! port= i
  for i in $(seq 200); do
    port=$(grep -oE 'listening on port [0-9]+' "$TMP/srv.err" | awk '{print $4}' || true)
    [[ -n $port ]] && break
    sleep 0.05
  done
  local t0=$EPOCHREALTIME
  curl -sS -f -o /dev/null -T "$1" -X POST "http://127.0.0.1:$port/v1beta1/upload"
  wait "$pid"
  LAST_S=$(echo "${EPOCHREALTIME} - $t0" | bc)
  LAST_RSS=$(tail -n 1 "$TMP/rss")
}

# peer_upload FILE MODE ARG [AFTER]: the receiver (file or pipe), then AFTER (a shell command).
peer_upload() {
  clean
  $RECV "$2" "$3" > "$TMP/port" &
  local pid=$! i
  for i in $(seq 200); do [[ -s $TMP/port ]] && break; sleep 0.05; done
  local t0=$EPOCHREALTIME
  curl -sS -f -o /dev/null -T "$1" -X POST "http://127.0.0.1:$(cat "$TMP/port")/upload"
  wait "$pid"
  if [[ -n ${4:-} ]]; then bash -c "$4"; fi
  LAST_S=$(echo "${EPOCHREALTIME} - $t0" | bc)
}

rows=()
row() {   # row INPUT CDI_S CDI_RSS PEER PEER_S
  rows+=("| $1 | $(printf %.2f "$2") s | $(($3 / 1024)) MiB | $4 | $(printf %.2f "$5") s | **$(printf %.2f "$(echo "scale=3; $2 / $5" | bc)")** |")
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# compare INPUT FILE PEER_LABEL PEER_MODE PEER_ARG PEER_AFTER: RUNS interleaved runs of each side
compare() {
  local input=$1 file=$2 label=$3 cs=() ps=() rss=0 i
  log "$input ($(du -h --apparent-size "$file" | cut -f1)) vs $label"
  for ((i = 0; i < RUNS; i++)); do
    cdi_upload "$file"
    cs+=("$LAST_S")
    ((LAST_RSS > rss)) && rss=$LAST_RSS
    cmp "$OUT/d.raw" "$IMG/source.raw" || { echo "bench: cdi-import output differs" >&2; exit 1; }
    peer_upload "$file" "$4" "$5" "$6"
    ps+=("$LAST_S")
    cmp "$OUT/d.raw" "$IMG/source.raw" || { echo "bench: peer output differs" >&2; exit 1; }
  done
  log "  cdi-import: ${cs[*]}; peer: ${ps[*]}"
  row "$input" "$(median "${cs[@]}")" "$rss" "$label" "$(median "${ps[@]}")"
}

compare qcow2 "$IMG/disk.qcow2" 'CDI-style: receive to scratch, `qemu-img convert`' \
  file "$OUT/scratch.qcow2" "qemu-img convert -q -t writeback -f qcow2 -O raw $OUT/scratch.qcow2 $OUT/d.raw && sync -f $OUT/d.raw"
compare raw.xz "$IMG/raw.xz" 'CDI-style stream: receive `\| xz -dc > target`' \
  pipe "xz -dc > $OUT/d.raw && sync -f $OUT/d.raw" ""
compare raw.xz "$IMG/raw.xz" 'receive to scratch, then `xz -dc`' \
  file "$OUT/scratch.xz" "xz -dc $OUT/scratch.xz > $OUT/d.raw && sync -f $OUT/d.raw"

echo "Upload from curl on 127.0.0.1, $MIBS MiB image ($(nproc) CPUs), median of $RUNS runs"
echo
echo "| input | cdi-import upload-server | server peak RSS | peer | peer time | ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
