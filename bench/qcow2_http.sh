#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/qcow2_http.sh: a compressed QCOW2 (`qemu-img convert -c`, zlib clusters) of a guest disk
# shaped as issue 14 describes it (per 64 MiB: 29 MiB incompressible, 13 MiB text, the rest holes:
# 45 % / 20 % / 35 %) served by nginx on 127.0.0.1 with byte ranges. Side by side, same run:
#   - cdi-import as it plans by itself (-v tells whether it streamed or read by ranges);
#   - cdi-import forced onto the Range path (--qcow2-hold-limit 64Ki: the measured hold exceeds it);
#   - cdi-import on a location that ignores Range (nginx max_ranges 0) with --qcow2-hold-limit 64Ki
#     and no scratch: the two-read path (the tables, then the data), against the CDI-style path;
#   - `qemu-img convert -m 1` reading the http:// URL itself (its curl block driver);
#   - the CDI-style path: download to a scratch file, then `qemu-img convert`.
# Every run ends with the target durable (cdi-import fdatasyncs; the peers `sync FILE`) and every
# output is compared with `cmp` against qemu-img's conversion of the local file once.
#   Environment: BENCH_SIZE_MIB (default 2048), BENCH_RUNS (default 3: median), BENCH_DIR
#   (default bench/.work-qcow2-http), CDI_IMPORT (default build/cmd/cdi-import/cdi-import).
#   Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_init qcow2-http 2048
source "$ROOT/tests/support/nginx.sh"

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB guest disk (45 % incompressible, 20 % text, 35 % holes) and its compressed qcow2"
  make_guest_raw "$IMG/source.raw" "$MIBS"
  qemu-img convert -q -f raw -O qcow2 -c -o compression_type=zlib "$IMG/source.raw" "$IMG/disk.qcow2"
  touch "$IMG/.done"
fi

SRV=$(mktemp -d)
trap 'nginx_stop; rm -rf "$SRV" "$OUT"' EXIT
nginx_start "$SRV" "$IMG" >/dev/null
cat "$IMG/disk.qcow2" > /dev/null
U=http://127.0.0.1:$HTTP_PORT/disk.qcow2

# checked CMD...: `timed` (bench/lib.sh), then the last run's output compared with the source disk.
checked() {
  timed "$@"
  cmp "$IMG/source.raw" "$OUT/d.raw" || { echo "bench: output differs from the source disk: $*" >&2; exit 1; }
}

log "cdi-import (its own plan)"
checked "$CDI" -v --progress none --url "$U" --dest "$OUT/d.raw"
auto_s=$LAST_S auto_rss=$LAST_RSS
auto_plan=$(grep -o "plan: qcow2: .*" "$SRV/err" | head -n 1 | sed 's/|/\\|/g' || true)
log "cdi-import with --qcow2-hold-limit 64Ki (Range path)"
checked "$CDI" -v --progress none --qcow2-hold-limit 64Ki --url "$U" --dest "$OUT/d.raw"
grep -q "random access by byte ranges" "$SRV/err" || { echo "bench: the Range path did not run" >&2; exit 1; }
rng_s=$LAST_S rng_rss=$LAST_RSS
log "cdi-import without Range support, --qcow2-hold-limit 64Ki, no scratch (two reads)"
checked "$CDI" -v --progress none --qcow2-hold-limit 64Ki --url "http://127.0.0.1:$HTTP_PORT/norange/disk.qcow2" --dest "$OUT/d.raw"
grep -q "read the source 2 times" "$SRV/err" || { echo "bench: the two-read path did not run" >&2; exit 1; }
two_s=$LAST_S two_rss=$LAST_RSS
log "qemu-img convert -m 1 http://"
checked bash -c "qemu-img convert -q -m 1 -f qcow2 -O raw '$U' '$OUT/d.raw' && sync '$OUT/d.raw'"
qhttp_s=$LAST_S qhttp_rss=$LAST_RSS
log "CDI-style: download to scratch, then qemu-img convert"
checked bash -c "curl -s -o '$OUT/s.qcow2' '$U' && qemu-img convert -q -f qcow2 -O raw '$OUT/s.qcow2' '$OUT/d.raw' && sync '$OUT/d.raw'"
cdi_s=$LAST_S

ratio() { printf %.2f "$(echo "scale=4; $1 / $2" | bc)"; }
echo "Compressed qcow2 ($(( $(stat -c %s "$IMG/disk.qcow2") >> 20 )) MiB, zlib clusters) of a $MIBS MiB disk over nginx on 127.0.0.1 with byte ranges; $(nproc) CPUs; median of $RUNS runs"
echo
echo "| run | time | peak RSS | vs \`qemu-img convert -m 1 http://\` | vs CDI-style download + convert |"
echo "|---|---|---|---|---|"
printf '| cdi-import, own plan | %.2f s | %d MiB | **%s** | **%s** |\n' "$auto_s" $((auto_rss / 1024)) "$(ratio "$auto_s" "$qhttp_s")" "$(ratio "$auto_s" "$cdi_s")"
printf '| cdi-import, Range path (`--qcow2-hold-limit 64Ki`) | %.2f s | %d MiB | **%s** | **%s** |\n' "$rng_s" $((rng_rss / 1024)) "$(ratio "$rng_s" "$qhttp_s")" "$(ratio "$rng_s" "$cdi_s")"
printf '| cdi-import, no Range: two reads, no scratch (`--qcow2-hold-limit 64Ki`) | %.2f s | %d MiB | %s | **%s** |\n' "$two_s" $((two_rss / 1024)) "$(ratio "$two_s" "$qhttp_s")" "$(ratio "$two_s" "$cdi_s")"
printf '| `qemu-img convert -m 1 http://…` | %.2f s | %d MiB | 1.00 | %s |\n' "$qhttp_s" $((qhttp_rss / 1024)) "$(ratio "$qhttp_s" "$cdi_s")"
printf '| CDI-style: `curl -o scratch` then `qemu-img convert` | %.2f s | – | %s | 1.00 |\n' "$cdi_s" "$(ratio "$cdi_s" "$qhttp_s")"
echo
echo "own plan: ${auto_plan:-(no qcow2 plan line)}"
