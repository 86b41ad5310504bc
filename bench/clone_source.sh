#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench/clone_source.sh PEER_DIR: the clone source side, ours vs CDI's cdi-cloner (built from
# CDI's vendored sources: /work/shared/reference/cdi-peer.md; PEER_DIR holds its cdi-cloner), on a
# BENCH_SIZE_MIB (default 2048) mostly-sparse raw disk (64 MiB of random data, the rest a hole),
# as blockdevice-clone of the file and filesystem-clone of a volume holding it as disk.img, each
# POSTing over mutual TLS to tests/support/clone_receiver.py on 127.0.0.1. Prints wall time, CPU
# (user+sys), peak RSS and bytes on the wire of each cloner, and checks that both sent the same
# decoded stream. The certificates are bench/clone_lib.sh's (as bench/clone.sh makes them). Not run
# by CI (needs the peer binaries). CDI_IMPORT_BIN: our links (default build/cmd/cdi-import).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/clone_lib.sh"
PEER=${1:?usage: bench/clone_source.sh PEER_DIR}
MIBS=${BENCH_SIZE_MIB:-2048}
DIR=${BENCH_DIR:-$ROOT/bench/.work-clone}
OURS=$(realpath -m "${CDI_IMPORT_BIN:-$ROOT/build/cmd/cdi-import}")/cdi-cloner
SUP=$ROOT/tests/support
rm -rf "$DIR"; mkdir -p "$DIR/vol" "$DIR/root/dev"
WORK=$DIR make_clone_certs
c=$DIR/certs
truncate -s ${MIBS}M "$DIR/vol/disk.img"
dd if=/dev/urandom of="$DIR/vol/disk.img" bs=1M count=64 seek=$((MIBS / 3)) conv=notrunc status=none
# Each cloner runs in its own mount namespace with a private /dev (a tmpfs with null, zero, random,
# urandom bound from the host, and termination-log): CDI's cloner writes that fixed path.
mkdir -p "$DIR/hostdev"
LOOP=$(losetup --find --show -r "$DIR/vol/disk.img")
trap 'losetup -d "$LOOP"' EXIT
PRIVATE_DEV="set -e; mount --rbind /dev '$DIR/hostdev'; mount -t tmpfs tmpfs /dev;
  for n in null zero random urandom; do touch /dev/\$n; mount --bind '$DIR/hostdev/'\$n /dev/\$n; done;
  touch $LOOP; mount --bind '$DIR/hostdev/'${LOOP#/dev/} $LOOP; touch /dev/termination-log;"
# sha256 of a snappy-framed file's decoded content, streaming (python-snappy).
decoded_sha() {
  /usr/bin/python3 - "$1" <<'PY'
import hashlib, sys
import snappy, snappy.snappy as impl
try:
    impl._crc32c(b"")
except SystemError:
    import crc32c
    impl._crc32c = crc32c.crc32c
d, h = snappy.StreamDecompressor(), hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    while True:
        b = f.read(1 << 20)
        if not b:
            break
        h.update(d.decompress(b))
d.flush()
print(h.hexdigest())
PY
}
run() {   # NAME CLONER CONTENT_TYPE MOUNT
  /usr/bin/python3 "$SUP/clone_receiver.py" --cert $c/server.crt --key $c/server.key --ca $c/ca.crt --out "$DIR/$1.body" > "$DIR/$1.recv" 2>&1 &
  local r=$! port=
  for _ in $(seq 100); do port=$(grep -oE 'port [0-9]+' "$DIR/$1.recv" | grep -oE '[0-9]+' || true); [[ -n $port ]] && break; sleep 0.05; done
  : > "$DIR/term"
  unshare -m --propagation private bash -c "$PRIVATE_DEV"' exec "$@"' _ \
    env OWNER_UID=u "CLIENT_KEY=$(cat $c/client.key)" "CLIENT_CERT=$(cat $c/client.crt)" "SERVER_CA_CERT=$(cat $c/ca.crt)" \
    UPLOAD_URL=https://127.0.0.1:$port/v1beta1/upload PREALLOCATION=false CDI_IMPORT_ROOT="$DIR/root" \
    CDI_IMPORT_METRICS_LISTEN=127.0.0.1:0 \
    /usr/bin/time -f "%e %U %S %M" -o "$DIR/$1.time" "$2" -content-type "$3" -upload-bytes $((MIBS << 20)) -mount "$4" \
    2> "$DIR/$1.err" || { tail -3 "$DIR/$1.err" >&2; exit 1; }
  kill $r; wait $r 2>/dev/null || true
  read -r wall user sys rss < "$DIR/$1.time"
  printf '| %s | %s s | %.2f s | %d MiB | %s |\n' "$1" "$wall" "$(echo "$user + $sys" | bc)" $((rss / 1024)) \
    "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$DIR/$1.body")")"
}
echo "| run | wall | CPU | peak RSS | on the wire |"
echo "|---|---|---|---|---|"
# blockdevice-clone of the image through a loop device (what a pod sees: every byte is read, holes
# included), then of the file itself (holes skipped by SEEK_DATA on our side).
for kind in blockdevice-clone blockdevice-clone-file filesystem-clone; do
  mnt=$LOOP
  [[ $kind == blockdevice-clone-file ]] && mnt=$DIR/vol/disk.img
  [[ $kind == filesystem-clone ]] && mnt=$DIR/vol
  run "cdi-$kind" "$PEER/cdi-cloner" ${kind%-file} "$mnt"
  run "ours-$kind" "$OURS" ${kind%-file} "$mnt"
  if cmp -s "$DIR/cdi-$kind.body" "$DIR/ours-$kind.body"; then
    echo "| $kind: identical bytes on the wire | | | | |"
  elif [[ $(decoded_sha "$DIR/cdi-$kind.body") == $(decoded_sha "$DIR/ours-$kind.body") ]]; then
    echo "| $kind: same decoded stream (framing differs) | | | | |"
  else
    echo "| $kind: decoded streams DIFFER | | | | |"
  fi
done
