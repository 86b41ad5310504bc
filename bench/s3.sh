#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/s3.sh: a 2 GiB (virtual) qcow2 of a cloud-image-shaped disk (make_cloud_raw, ~15 % data)
# stored in s3rver (npm, installed into the build tree) on 127.0.0.1, read with SigV4:
#   - cdi-import --url s3://disks/disk.qcow2 --s3-endpoint … (streamed, no scratch);
#   - the CDI-style path: a signed download to a scratch file (curl --aws-sigv4), then
#     `qemu-img convert -O raw` — what CDI's S3 source does for anything but raw.
# Every output is synced and compared with qemu-img's conversion of the local file.
#   Environment: BENCH_SIZE_MIB (default 2048), BENCH_RUNS (default 3: median), BENCH_DIR
#   (default bench/.work-s3), CDI_IMPORT (default build/cmd/cdi-import/cdi-import). Not run by CI.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
bench_init s3 2048
NPM_DIR=$ROOT/build/tests/e2e/s3rver-npm
[[ -x $NPM_DIR/node_modules/.bin/s3rver ]] || npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" s3rver@3

if [[ ! -f $IMG/.done ]]; then
  log "making a $MIBS MiB cloud-shaped disk and its qcow2"
  make_cloud_raw "$IMG/source.raw" "$MIBS"
  qemu-img convert -q -f raw -O qcow2 "$IMG/source.raw" "$IMG/disk.qcow2"
  touch "$IMG/.done"
fi

SRV=$(mktemp -d)
S3PID=
trap '[[ -n $S3PID ]] && kill "$S3PID"; rm -rf "$SRV" "$OUT"' EXIT
"$NPM_DIR/node_modules/.bin/s3rver" -s -d "$SRV/data" -a 127.0.0.1 -p 0 --configure-bucket disks > "$SRV/s3rver.log" 2>&1 &
S3PID=$!
PORT=
for _ in $(seq 200); do
  PORT=$(grep -oE 'listening on 127.0.0.1:[0-9]+' "$SRV/s3rver.log" | head -n1 | sed 's/.*://' || true)
  [[ -n $PORT ]] && break
  sleep 0.05
done
if [[ -z $PORT ]]; then
  # -s silences the banner: find the port from the process
  PORT=$(ss -ltnp | grep "pid=$S3PID," | grep -oE '127.0.0.1:[0-9]+' | head -n1 | sed 's/.*://')
fi
[[ -n $PORT ]] || { echo "s3rver did not start" >&2; exit 1; }
EP=http://127.0.0.1:$PORT
curl -sSf -o /dev/null -T "$IMG/disk.qcow2" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 aws:amz:us-east-1:s3 \
  -u S3RVER:S3RVER "$EP/disks/disk.qcow2"
qemu-img convert -q -O raw "$IMG/disk.qcow2" "$DIR/expected.raw"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1

checked() {
  timed "$@"
  cmp "$DIR/expected.raw" "$OUT/disk.raw" || { echo "bench: output differs" >&2; exit 1; }
}
cdi_style() {
  curl -sSf -o "$OUT/scratch.qcow2" -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 aws:amz:us-east-1:s3 -u "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$EP/disks/disk.qcow2"
  qemu-img convert -q -t none -O raw "$OUT/scratch.qcow2" "$OUT/disk.raw"
  sync "$OUT/disk.raw"
}
export -f cdi_style
export OUT EP

log "cdi-import (s3://, streamed)"
checked "$CDI" --progress none --url s3://disks/disk.qcow2 --s3-endpoint "$EP" --dest "$OUT/disk.raw"
OURS=$LAST_S OURS_RSS=$LAST_RSS
log "CDI-style: signed download to scratch, then qemu-img convert"
checked bash -c cdi_style
PEER=$LAST_S PEER_RSS=$LAST_RSS
RATIO=$(echo "scale=2; $OURS / $PEER" | bc)
QSIZE=$(stat -c %s "$IMG/disk.qcow2")
printf '| %s MiB qcow2 (%s MiB file) from s3rver | cdi-import %.2f s (%s MiB RSS) | CDI-style %.2f s (%s MiB RSS) | **%s** |\n' \
  "$MIBS" $((QSIZE >> 20)) "$OURS" $((OURS_RSS >> 10)) "$PEER" $((PEER_RSS >> 10)) "$RATIO"
