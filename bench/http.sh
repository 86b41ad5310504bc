#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/http.sh: cdi-import over HTTP from a local nginx (127.0.0.1) against, in the same run on the
# same server: `curl | gzip -dc > out`, `curl | xz -dc > out`, the CDI-style path (download to a
# scratch file, then decompress / `qemu-img convert`), and nbdkit's curl plugin + qemu-img when
# nbdkit is installed. Prints a markdown table (wall time, peak RSS of cdi-import, ratio).
# cdi-import makes the target durable (fdatasync) before it reports success; the CDI-style and
# nbdkit peers end with `sync FILE` for the same reason (CDI's importer fsyncs the target at the
# end, spec §2.13); the plain `curl | gzip -dc > out` pipes are timed as the issue states them.
#   Environment: BENCH_SIZE_MIB (default 1024), BENCH_RUNS (default 3: the median is reported),
#   BENCH_DIR (default bench/.work-http),
#   CDI_IMPORT (default build/cmd/cdi-import/cdi-import). Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_init http 1024
source "$ROOT/tests/support/nginx.sh"

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB image (a third data: random + text, the rest zeros)"
  make_bench_raw "$IMG/source.raw" "$MIBS"
  gzip -1 -n -c "$IMG/source.raw" > "$IMG/raw.gz"
  xz -0 -T2 -c "$IMG/source.raw" > "$IMG/raw.xz"
  qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/disk.qcow2"
  xz -0 -T2 -c "$IMG/disk.qcow2" > "$IMG/qcow2.xz"
  touch "$IMG/.done"
fi
if [[ ! -f $IMG/stream.vmdk ]]; then
  qemu-img convert -q -f raw -O vmdk -o subformat=streamOptimized "$IMG/source.raw" "$IMG/stream.vmdk"
  qemu-img convert -q -f raw -O vhdx "$IMG/source.raw" "$IMG/disk.vhdx"
fi

SRV=$(mktemp -d)
trap 'nginx_stop; rm -rf "$SRV" "$OUT"' EXIT
nginx_start "$SRV" "$IMG" >/dev/null
cat "$IMG"/raw.gz "$IMG"/raw.xz "$IMG"/disk.qcow2 "$IMG"/qcow2.xz "$IMG"/stream.vmdk "$IMG"/disk.vhdx > /dev/null 2>&1 || true
U=http://127.0.0.1:$HTTP_PORT

rows=()
row() {   # row INPUT CDI_S CDI_RSS PEER PEER_S
  rows+=("| $1 | $(printf %.2f "$2") s | $(($3 / 1024)) MiB | $4 | $(printf %.2f "$5") s | **$(printf %.2f "$(echo "scale=3; $2 / $5" | bc)")** |")
}

log "raw.gz"
timed "$CDI" --progress none --url "$U/raw.gz" --dest "$OUT/d.raw"; c=$LAST_S; r=$LAST_RSS
timed bash -o pipefail -c "curl -s $U/raw.gz | gzip -dc > $OUT/d.raw"; row raw.gz "$c" "$r" '`curl \| gzip -dc > out`' "$LAST_S"
timed bash -o pipefail -c "curl -s -o $OUT/s.gz $U/raw.gz && gzip -dc $OUT/s.gz > $OUT/d.raw && sync $OUT/d.raw"; row raw.gz "$c" "$r" 'CDI-style: download, then `gzip -dc`' "$LAST_S"

log "raw.xz"
timed "$CDI" --progress none --url "$U/raw.xz" --dest "$OUT/d.raw"; c=$LAST_S; r=$LAST_RSS
timed bash -o pipefail -c "curl -s $U/raw.xz | xz -dc > $OUT/d.raw"; row raw.xz "$c" "$r" '`curl \| xz -dc > out`' "$LAST_S"

log "qcow2"
timed "$CDI" --progress none --url "$U/disk.qcow2" --dest "$OUT/d.raw"; c=$LAST_S; r=$LAST_RSS
timed bash -o pipefail -c "curl -s -o $OUT/s.qcow2 $U/disk.qcow2 && qemu-img convert -q -f qcow2 -O raw $OUT/s.qcow2 $OUT/d.raw && sync $OUT/d.raw"
row qcow2 "$c" "$r" 'CDI-style: download to scratch, `qemu-img convert`' "$LAST_S"
if command -v nbdkit > /dev/null; then
  timed nbdkit -U - curl "$U/disk.qcow2" --run "qemu-img convert -q -f qcow2 -O raw \$nbd $OUT/d.raw && sync $OUT/d.raw"
  row qcow2 "$c" "$r" 'nbdkit curl + `qemu-img convert`' "$LAST_S"
fi

log "qcow2.xz"
timed "$CDI" --progress none --url "$U/qcow2.xz" --dest "$OUT/d.raw"; c=$LAST_S; r=$LAST_RSS
timed bash -o pipefail -c "curl -s -o $OUT/s.xz $U/qcow2.xz && xz -dc $OUT/s.xz > $OUT/s.qcow2 && qemu-img convert -q -f qcow2 -O raw $OUT/s.qcow2 $OUT/d.raw && sync $OUT/d.raw"
row qcow2.xz "$c" "$r" 'CDI-style: download, `xz -dc` to scratch, `qemu-img convert`' "$LAST_S"

for f in stream.vmdk disk.vhdx; do
  fmt=${f##*.}
  log "$f (read in place without --scratch-dir; spooled with it)"
  timed "$CDI" --progress none --url "$U/$f" --dest "$OUT/d.raw"; c=$LAST_S; r=$LAST_RSS
  timed bash -o pipefail -c "curl -s -o $OUT/s.img $U/$f && qemu-img convert -q -f $fmt -O raw $OUT/s.img $OUT/d.raw && sync $OUT/d.raw"
  p=$LAST_S
  row "$f" "$c" "$r" 'CDI-style: download to scratch, `qemu-img convert`' "$p"
  if command -v nbdkit > /dev/null; then
    timed nbdkit -U - curl "$U/$f" --run "qemu-img convert -q -f $fmt -O raw \$nbd $OUT/d.raw && sync $OUT/d.raw"
    row "$f" "$c" "$r" 'plain nbdkit curl + `qemu-img convert`' "$LAST_S"
  fi
  sum=$(sha256sum < "$IMG/$f" | cut -d' ' -f1)
  timed "$CDI" --progress none --scratch-dir "$OUT" --checksum "sha256:$sum" --url "$U/$f" --dest "$OUT/d.raw"
  row "$f spooled (--scratch-dir, --checksum)" "$LAST_S" "$LAST_RSS" 'CDI-style: download to scratch, `qemu-img convert`' "$p"
done

echo "HTTP from nginx on 127.0.0.1, $MIBS MiB image ($(nproc) CPUs), median of $RUNS runs, served files cached"
echo
echo "| input | cdi-import | cdi-import peak RSS | peer | peer time | ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
