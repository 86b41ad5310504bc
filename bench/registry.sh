#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/registry.sh: cdi-import pulling a containerDisk from a local docker-registry (127.0.0.1,
# plain HTTP) against what a user would script with the usual tools, same registry, same run:
#   skopeo copy docker://… oci:DIR  +  extract disk/disk.img from the layer  +  qemu-img convert
# for a qcow2 containerDisk (gzip layer: what `docker build` pushes) and a raw one. Prints a
# markdown table: wall time, peak RSS of cdi-import, ratio (cdi-import / peer).
#   Environment: BENCH_SIZE_MIB (default 1024), BENCH_DIR (default bench/.work-registry),
#   CDI_IMPORT (default build/cmd/cdi-import/cdi-import). Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_init registry 1024
source "$ROOT/tests/support/nginx.sh"
source "$ROOT/tests/support/registry.sh"

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB image (a third data: random + text, the rest zeros) and its layouts"
  make_bench_raw "$IMG/source.raw" "$MIBS"
  for fmt in qcow2 raw; do
    rm -rf "$IMG/tree" && mkdir -p "$IMG/tree/disk"
    if [[ $fmt == qcow2 ]]; then qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/tree/disk/disk.img"
    else cp --sparse=always "$IMG/source.raw" "$IMG/tree/disk/disk.img"; fi
    tar -C "$IMG/tree" --owner=107 --group=107 -cf "$IMG/layer-$fmt.tar" disk   # not sparse: as docker build
    /usr/bin/python3 "$ROOT/tests/support/make_oci_layout.py" image "$IMG/layout" "$fmt" --layer-tar "gzip:$IMG/layer-$fmt.tar"
    rm -f "$IMG/layer-$fmt.tar"
  done
  rm -rf "$IMG/tree"
  touch "$IMG/.done"
fi

SRV=$(mktemp -d)
trap 'registry_stop_all; rm -rf "$SRV" "$OUT"' EXIT
registry_start "$SRV/reg" plain >/dev/null
for fmt in qcow2 raw; do registry_push "$IMG/layout" "$fmt" "bench/disk:$fmt"; done
REG=127.0.0.1:$REGISTRY_PORT

# timed CMD...: wall seconds into $LAST_S, peak RSS KiB of the command into $LAST_RSS
timed() {
  rm -rf "${OUT:?}"/*
  sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local t0=$EPOCHREALTIME
  /usr/bin/time -f %M -o "$SRV/rss" "$@" > /dev/null 2>"$SRV/err" || { cat "$SRV/err" >&2; return 1; }
  LAST_S=$(echo "${EPOCHREALTIME} - $t0" | bc)
  LAST_RSS=$(tail -n 1 "$SRV/rss")
}

rows=()
row() {   # row INPUT CDI_S CDI_RSS PEER PEER_S
  rows+=("| $1 | $(printf %.2f "$2") s | $(($3 / 1024)) MiB | $4 | $(printf %.2f "$5") s | **$(printf %.2f "$(echo "scale=3; $2 / $5" | bc)")** |")
}

# The scripted peer: skopeo pulls the image into an OCI layout (verifying digests), the disk is
# extracted from its single layer, qemu-img converts it to the raw target.
peer='set -e; skopeo copy -q --src-tls-verify=false docker://'$REG'/bench/disk:$1 oci:$2/oci:x
  m=$(jq -r ".manifests[0].digest" $2/oci/index.json | cut -d: -f2)
  l=$(jq -r ".layers[0].digest" $2/oci/blobs/sha256/$m | cut -d: -f2)
  tar -C $2 -xzf $2/oci/blobs/sha256/$l disk/disk.img
  qemu-img convert -q -O raw $2/disk/disk.img $2/d.raw; sync'

for fmt in qcow2 raw; do
  log "$fmt containerDisk"
  timed "$CDI" --progress none --insecure-tls --url "docker://$REG/bench/disk:$fmt" --dest "$OUT/d.raw"
  c=$LAST_S; r=$LAST_RSS
  cmp -s "$OUT/d.raw" "$IMG/source.raw" || { echo "bench: cdi-import output differs from the source ($fmt)" >&2; exit 1; }
  timed bash -c "$peer" peer "$fmt" "$OUT"
  cmp -s "$OUT/d.raw" "$IMG/source.raw" || { echo "bench: peer output differs from the source ($fmt)" >&2; exit 1; }
  row "$fmt in a gzip layer ($MIBS MiB disk)" "$c" "$r" '`skopeo copy` + `tar -xz` + `qemu-img convert`' "$LAST_S"
done

echo "| input | cdi-import | cdi-import peak RSS | peer | peer | ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
