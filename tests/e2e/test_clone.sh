#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Host-assisted clone, both ends ours, as CDI runs them: `cdi-cloner` with the cloner pod's env
# (PEM text, UPLOAD_URL, OWNER_UID, PREALLOCATION) POSTs to `cdi-uploadserver` with the target
# pod's env (TLS files, CLIENT_NAME = "<src ns>/<src pvc>-<tgt ns>/<tgt pvc>", DESTINATION),
# through tests/support/tcp_relay.py (a byte-counting TCP relay on 127.0.0.1 that can also cut the
# stream; TLS passes through it untouched). Every volume-mode pair CDI can ask for: file→file
# (holes kept: allocated blocks compared), block→block (loop devices, target larger and prefilled
# with random bytes), block→file and file→block — each compared with `qemu-img convert` of the
# source. Then the failures: wrong client-cert CN (401, nothing written), the stream cut halfway
# (neither end reports success, nothing complete-looking, the server takes the retry), a source
# held by a live qemu-io (refused before anything is sent), and the standalone pairing
# `cdi-import clone --to-url` → `cdi-import upload-server`.
source "$(dirname "$0")/lib.sh"
SUPPORT=$(cd "$E2E_DIR/../support" && pwd)
PY=/usr/bin/python3
BIN=$(dirname "$CDI")
CLONER=$BIN/cdi-cloner
UPSRV=$BIN/cdi-uploadserver
[[ -x $CLONER && -x $UPSRV ]] || { echo "cdi-cloner / cdi-uploadserver not found next to $CDI" >&2; exit 1; }
readonly CN='src-ns/src-pvc-tgt-ns/tgt-pvc'

CERTS=$T/certs
make_certs() {
  cert_ca "$CERTS" ca &&
    cert_leaf "$CERTS" tls localhost ca server &&
    cert_leaf "$CERTS" client "$CN" ca client &&
    cert_leaf "$CERTS" intruder src-ns/other-pvc-tgt-ns/tgt-pvc ca client
}
make_certs || { echo "making certificates failed" >&2; exit 1; }

# --- the target pod: cdi-uploadserver ---------------------------------------------------------

# target_root: $R = the upload pod's CDI_IMPORT_ROOT (/data, /dev, /etc/tls).
target_root() {
  R=$W/target
  mkdir -p "$R/data" "$R/dev" "$R/etc/tls"
  cp "$CERTS/tls.crt" "$CERTS/tls.key" "$CERTS/ca.crt" "$R/etc/tls/"
}

# target_block DEV: the pod's /dev/cdi-block-volume is DEV (a device node, as kubelet makes it).
target_block() {
  local mm
  mm=$(stat -L -c '%t %T' "$1")
  # shellcheck disable=SC2086
  mknod "$R/dev/cdi-block-volume" b $((16#${mm% *})) $((16#${mm#* }))
}

# srv_start DESTINATION [VAR=VALUE...]: cdi-uploadserver with the clone target pod's env, on a
# kernel-chosen port, behind a relay (RELAY_ARGS, e.g. --cut-after N). Sets SRV_PID, URL.
srv_start() {
  local dest=$1
  shift
  : > "$W/_meta/srv.err"
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT=0 \
    DESTINATION="$dest" TLS_CERT_FILE=/etc/tls/tls.crt TLS_KEY_FILE=/etc/tls/tls.key \
    CLIENT_CERT_FILE=/etc/tls/ca.crt CLIENT_NAME="$CN" UPLOAD_IMAGE_SIZE=64Mi FILESYSTEM_OVERHEAD=0 \
    PREALLOCATION=false "$@" timeout -k 5 "$CMD_TIMEOUT" "$UPSRV" -v=1 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid "$SRV_PID"
  wait_server_port "$W/_meta/srv.err" "$SRV_PID"
  rm -f "$W/_meta/relay.port"
  $PY "$SUPPORT/tcp_relay.py" --to "$PORT" --portfile "$W/_meta/relay.port" --count-file "$W/_meta/relay.count" \
    ${RELAY_ARGS:-} > "$W/_meta/relay.log" 2>&1 &
  register_pid $!
  local i
  for i in $(seq 100); do [[ -s $W/_meta/relay.port ]] && break; sleep 0.05; done
  [[ -s $W/_meta/relay.port ]] || fail "the relay did not start"
  URL=https://127.0.0.1:$(cat "$W/_meta/relay.port")/v1beta1/upload
}

# srv_wait: the upload server exits 0 within 30 s.
srv_wait() {
  local i
  for i in $(seq 300); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
  set +e; wait "$SRV_PID"; local rc=$?; set -e
  ((rc == 0)) || { cat "$W/_meta/srv.err" >&2; fail "cdi-uploadserver exited $rc"; }
}

target_term() { cat "$R/dev/termination-log" 2>/dev/null || true; }

# --- the source pod: cdi-cloner ---------------------------------------------------------------

# cloner CONTENT_TYPE MOUNT [CLIENT]: runs cdi-cloner with the cloner pod's env (PEM text) against
# $URL (PREALLOCATION=${PREALLOC:-false}); exit status in CRC, stderr in $W/_meta/cloner.err,
# termination log under $W/source.
cloner() {
  local type=$1 mount=$2 who=${3:-client} bytes
  mkdir -p "$W/source/dev"
  if [[ -b $mount ]]; then bytes=$(blockdev --getsize64 "$mount"); else bytes=$(du -s --block-size=1 "$mount" | cut -f1); fi
  CRC=0
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$W/source" CDI_IMPORT_METRICS_LISTEN=127.0.0.1:0 OWNER_UID=uid-42 \
    "CLIENT_KEY=$(cat "$CERTS/$who.key")" "CLIENT_CERT=$(cat "$CERTS/$who.crt")" \
    "SERVER_CA_CERT=$(cat "$CERTS/ca.crt")" UPLOAD_URL="$URL" PREALLOCATION="${PREALLOC:-false}" \
    timeout -k 5 "$CMD_TIMEOUT" "$CLONER" -v=3 -alsologtostderr -content-type "$type" -upload-bytes "$bytes" \
    -mount "$mount" > /dev/null 2> "$W/_meta/cloner.err" || CRC=$?
  echo "\$ cdi-cloner -content-type $type -mount $mount -> exit $CRC" >&2
}

source_term() { cat "$W/source/dev/termination-log" 2>/dev/null || true; }

assert_clone_complete() {   # TARGET_TERMINATION_JSON [CLONER_MESSAGE]
  ((CRC == 0)) || { cat "$W/_meta/cloner.err" >&2; fail "cdi-cloner exited $CRC"; }
  [[ $(source_term) == "${2:-Clone Complete}" ]] || fail "cloner termination message: '$(source_term)'"
  srv_wait
  [[ $(target_term) == "$1" ]] || fail "upload server termination message: '$(target_term)', want '$1'"
}

# wire_bytes: client→server bytes the relay carried.
wire_bytes() { cut -d' ' -f1 "$W/_meta/relay.count"; }

# make_disk FILE MIB: random 3 MiB, 5 MiB of written zeros, random 2 MiB, a hole, 192 KiB of random
# data near the end.
make_disk() {
  truncate -s "${2}M" "$1"
  dd if=/dev/urandom of="$1" bs=1M count=3 conv=notrunc status=none
  dd if=/dev/zero of="$1" bs=1M seek=3 count=5 conv=notrunc status=none
  dd if=/dev/urandom of="$1" bs=1M seek=8 count=2 conv=notrunc status=none
  dd if=/dev/urandom of="$1" bs=64K seek=$(($2 * 16 - 9)) count=3 conv=notrunc status=none
}

# make_volume DIR: a source filesystem: a 48 MiB sparse disk.img (make_disk, the zero run punched
# as a hole), a file in a sub-directory, lost+found.
make_volume() {
  mkdir -p "$1/lost+found" "$1/sub"
  make_disk "$1/disk.img" 48
  fallocate --punch-hole --keep-size -o $((3 * MIB)) -l $((5 * MIB)) "$1/disk.img"
  echo "a note beside the disk" > "$1/sub/note.txt"
}

# same_as_qemu SRC OUT [LEN]: the first LEN bytes (default SRC's size) of OUT are those of
# `qemu-img convert -f raw -O raw SRC`.
same_as_qemu() {
  local src=$1 out=$2 len=${3:-}
  qemu-img convert -q -f raw -O raw "$src" "$W/_meta/expected.raw" || fail "qemu-img convert of $src"
  [[ -n $len ]] || len=$(stat -c %s "$W/_meta/expected.raw")
  cmp -n "$len" "$W/_meta/expected.raw" "$out" >&2 || fail "$out differs from qemu-img convert of $src"
  rm -f "$W/_meta/expected.raw"
}

# prefilled_loop MIB: a loop device of MIB MiB full of random bytes; its content also in
# $W/_meta/before.raw.
prefilled_loop() {
  head -c $(($1 * MIB)) /dev/urandom > "$W/_meta/target.img"
  cp "$W/_meta/target.img" "$W/_meta/before.raw"
  make_loop "$W/_meta/target.img"
}

# --- the four volume-mode pairs ---------------------------------------------------------------

t_filesystem_to_filesystem() {
  make_volume "$W/_meta/vol"
  target_root
  srv_start /data/disk.img
  cloner filesystem-clone "$W/_meta/vol"
  assert_clone_complete '{"preallocationApplied":true,"message":"Clone Complete"}'
  same_as_qemu "$W/_meta/vol/disk.img" "$R/data/disk.img"
  (($(stat -c %s "$R/data/disk.img") == 48 * MIB)) || fail "disk.img size $(stat -c %s "$R/data/disk.img")"
  local src_alloc dst_alloc
  src_alloc=$(($(stat -c %b "$W/_meta/vol/disk.img") * 512))
  dst_alloc=$(($(stat -c %b "$R/data/disk.img") * 512))
  ((dst_alloc <= src_alloc + MIB)) || fail "holes lost: target allocates $dst_alloc bytes, source $src_alloc"
  cmp "$W/_meta/vol/sub/note.txt" "$R/data/sub/note.txt" || fail "sub/note.txt not cloned"
  [[ ! -e $R/data/lost+found ]] || fail "lost+found was cloned"
  # the wire carries the data, not the 48 MiB
  (($(wire_bytes) < 10 * MIB)) || fail "$(wire_bytes) bytes on the wire for 5.2 MiB of data"
}

t_block_to_filesystem() {
  require_root
  make_disk "$W/_meta/src.raw" 24
  local src
  src=$(make_loop "$W/_meta/src.raw")
  target_root
  srv_start /data/disk.img
  cloner blockdevice-clone "$src"
  assert_clone_complete '{"preallocationApplied":false,"message":"Clone Complete"}'
  same_as_qemu "$src" "$R/data/disk.img"
  (($(stat -c %s "$R/data/disk.img") == 24 * MIB)) || fail "disk.img is not the device's size"
  # the device's zero runs became holes: 5.2 MiB of data in a 24 MiB file
  assert_allocated_below "$R/data/disk.img" $((8 * MIB))
}

# t_to_block KIND DST_MIB PREALLOC CLONER_MESSAGE TAIL WIRE: a clone into a block target, a loop
# device of DST_MIB MiB full of random bytes. KIND blockdevice-clone: the source is a 24 MiB
# make_disk on a loop device; filesystem-clone: make_volume (its 48 MiB disk.img). PREALLOC: the
# cloner's PREALLOCATION. The clone completes (the cloner says CLONER_MESSAGE, the server
# {"preallocationApplied":false,…}), the target's first source-size bytes are qemu-img convert's
# of the source; TAIL "tail": past them the target is as it was (CDI writes only the stream);
# WIRE: an arithmetic condition on the client→server bytes ("-": none).
t_to_block() {
  local kind=$1 dst_mib=$2 prealloc=$3 message=$4 tail=$5 wire=$6 src src_file len dst
  require_root
  if [[ $kind == blockdevice-clone ]]; then
    make_disk "$W/_meta/src.raw" 24
    src=$(make_loop "$W/_meta/src.raw")
    src_file=$src len=$((24 * MIB))
  else
    make_volume "$W/_meta/vol"
    src=$W/_meta/vol src_file=$W/_meta/vol/disk.img len=$((48 * MIB))
  fi
  dst=$(prefilled_loop "$dst_mib")
  target_root
  target_block "$dst"
  srv_start /dev/cdi-block-volume
  PREALLOC=$prealloc cloner "$kind" "$src"
  assert_clone_complete '{"preallocationApplied":false,"message":"Clone Complete"}' "$message"
  same_as_qemu "$src_file" "$dst" "$len"
  if [[ $tail == tail ]]; then
    cmp -i "$len" "$W/_meta/before.raw" "$dst" >&2 || fail "the target's tail changed"
  fi
  if [[ $wire != - ]]; then
    (($(wire_bytes) $wire)) || fail "$(wire_bytes) bytes on the wire, want $wire"
  fi
}

# --- failures ---------------------------------------------------------------------------------

t_wrong_client_cn() {
  make_volume "$W/_meta/vol"
  target_root
  srv_start /data/disk.img
  cloner filesystem-clone "$W/_meta/vol" intruder
  ((CRC == 7)) || { cat "$W/_meta/cloner.err" >&2; fail "cdi-cloner exited $CRC, want 7 (401)"; }
  grep -q "401" "$W/_meta/cloner.err" || fail "the cloner does not say 401"
  grep -q "upload refused (401)" "$W/_meta/srv.err" || { cat "$W/_meta/srv.err" >&2; fail "no 401 in the server log"; }
  [[ -z $(source_term) ]] || fail "cloner wrote a termination message: $(source_term)"
  [[ -z $(ls -A "$R/data") ]] || fail "written to the target: $(ls -A "$R/data")"
  kill -0 "$SRV_PID" || fail "the upload server stopped after a refused request"
  [[ -z $(target_term) ]] || fail "upload server wrote a termination message"
}

t_stream_cut_halfway() {
  require_root
  # 24 MiB of random bytes: about 24 MiB on the wire; the relay cuts it after 12 MiB
  head -c $((24 * MIB)) /dev/urandom > "$W/_meta/src.raw"
  local src dst
  src=$(make_loop "$W/_meta/src.raw")
  target_root
  RELAY_ARGS="--cut-after $((12 * MIB))" srv_start /data/disk.img
  cloner blockdevice-clone "$src"
  ((CRC != 0)) || fail "cdi-cloner reported success for a cut stream"
  [[ -z $(source_term) ]] || fail "cloner wrote a termination message: $(source_term)"
  local i
  for i in $(seq 100); do grep -q "upload failed" "$W/_meta/srv.err" && break; sleep 0.1; done
  grep -q "upload failed" "$W/_meta/srv.err" || { cat "$W/_meta/srv.err" >&2; fail "the server did not fail the upload"; }
  kill -0 "$SRV_PID" || fail "the upload server stopped"
  [[ -z $(target_term) ]] || fail "upload server wrote a termination message: $(target_term)"
  [[ -z $(ls -A "$R/data") ]] || fail "a partial target was left: $(ls -lA "$R/data")"
  # the controller restarts the cloner pod: the same server takes the new attempt (no cut now)
  pkill -f "tcp_relay.py --to $PORT " || true
  $PY "$SUPPORT/tcp_relay.py" --to "$PORT" --portfile "$W/_meta/relay2.port" > /dev/null 2>&1 &
  register_pid $!
  for i in $(seq 100); do [[ -s $W/_meta/relay2.port ]] && break; sleep 0.05; done
  URL=https://127.0.0.1:$(cat "$W/_meta/relay2.port")/v1beta1/upload
  cloner blockdevice-clone "$src"
  assert_clone_complete '{"preallocationApplied":false,"message":"Clone Complete"}'
  same_as_qemu "$src" "$R/data/disk.img"
}

t_source_locked_by_qemu() {
  make_volume "$W/_meta/vol"
  qemu-io -f raw -c 'sleep 600000' "$W/_meta/vol/disk.img" > "$W/_meta/qemu-io.out" 2>&1 &
  local qpid=$! i
  register_pid "$qpid"
  # wait for qemu's write lock (byte 101, an OFD lock)
  for i in $(seq 100); do
    $PY -c 'import fcntl,os,struct,sys
fd=os.open(sys.argv[1],os.O_RDONLY)
r=fcntl.fcntl(fd,36,struct.pack("hhqqi",fcntl.F_WRLCK,0,101,1,0))
sys.exit(0 if struct.unpack("hhqqi",r)[0]!=fcntl.F_UNLCK else 1)' "$W/_meta/vol/disk.img" && break
    sleep 0.1
  done
  target_root
  srv_start /data/disk.img
  cloner filesystem-clone "$W/_meta/vol"
  ((CRC == 11)) || { cat "$W/_meta/cloner.err" >&2; fail "cdi-cloner exited $CRC, want 11 (in use)"; }
  grep -q "in use" "$W/_meta/cloner.err" || fail "no 'in use' in the cloner's error"
  (($(wire_bytes) == 0)) || fail "$(wire_bytes) bytes were sent"
  ! grep -q "admitted" "$W/_meta/srv.err" || fail "the server admitted an upload"
  [[ -z $(ls -A "$R/data") ]] || fail "written to the target"
  # the VM is powered off: the clone goes through
  kill "$qpid"; wait "$qpid" 2>/dev/null || true
  cloner filesystem-clone "$W/_meta/vol"
  assert_clone_complete '{"preallocationApplied":true,"message":"Clone Complete"}'
  same_as_qemu "$W/_meta/vol/disk.img" "$R/data/disk.img"
}

# --- standalone: cdi-import clone --to-url → cdi-import upload-server -------------------------

t_standalone_pair() {
  make_disk "$W/_meta/src.raw" 24
  mkdir -p "$W/dest"
  : > "$W/_meta/us.err"
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" upload-server --listen 127.0.0.1:0 --dest "$W/dest/disk.img" \
    --tls-cert "$CERTS/tls.crt" --tls-key "$CERTS/tls.key" --client-ca "$CERTS/ca.crt" --client-name "$CN" \
    2> "$W/_meta/us.err" &
  local us=$!
  register_pid "$us"
  wait_server_port "$W/_meta/us.err" "$us"
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" clone --from "$W/_meta/src.raw" --to-url "https://127.0.0.1:$PORT/v1beta1/upload" \
    --client-cert "$CERTS/client.crt" --client-key "$CERTS/client.key" --ca-cert "$CERTS/ca.crt" \
    2> "$W/_meta/clone.err" || { cat "$W/_meta/clone.err" >&2; fail "cdi-import clone --to-url failed"; }
  set +e; wait "$us"; local rc=$?; set -e
  ((rc == 0)) || { cat "$W/_meta/us.err" >&2; fail "upload-server exited $rc"; }
  same_as_qemu "$W/_meta/src.raw" "$W/dest/disk.img"
  (($(stat -c %s "$W/dest/disk.img") == 24 * MIB)) || fail "size"
  assert_allocated_below "$W/dest/disk.img" $((8 * MIB))
}

run_test filesystem_to_filesystem t_filesystem_to_filesystem
# the written zero run costs little on the wire: a 24 MiB device with 5 MiB of zeros and 14 MiB of hole
run_test block_to_block t_to_block blockdevice-clone 32 false "Clone Complete" tail "< 12 * MIB"
run_test block_to_filesystem t_block_to_filesystem
run_test filesystem_to_block t_to_block filesystem-clone 64 false "Clone Complete" tail -
# PREALLOCATION=true on the source: tar without -S, so disk.img is a plain (non-sparse) member —
# CDI v1.57 wrote nothing to a block target in that case and still said "Clone Complete". The holes
# cross the wire as zeros: 5.2 MiB of random data plus 42.8 MiB of zeros at 3 KiB per 64 KiB
# ≈ 7.2 MiB, where the sparse tar of the same volume is ≈ 5.3 MiB (was the tar sparse?).
run_test filesystem_to_block_preallocated t_to_block filesystem-clone 64 true "Clone Complete, Preallocation applied" \
  - "> 13 * MIB / 2"
run_test wrong_client_cn t_wrong_client_cn
run_test stream_cut_halfway t_stream_cut_halfway
run_test source_locked_by_qemu t_source_locked_by_qemu
run_test standalone_pair t_standalone_pair
finish
