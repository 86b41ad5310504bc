#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The clone source: cdi-cloner (CDI's env and flags) and cloner_startup.sh against a small
# mutual-TLS receiver (tests/support/clone_receiver.py: writes the snappy-framed body to a file),
# the body decoded with python-snappy (tests/support/snappy_interop.py) and compared: a loop device
# byte-exact, a volume's tar extracted by GNU tar with holes kept. Refusals (wrong CA, a source
# locked by a live qemu-io, a mounted device) send nothing; the progress metric is served during a
# slow upload; `cdi-import clone` local copies are byte-exact.
source "$(dirname "$0")/lib.sh"
SUPPORT=$(cd "$E2E_DIR/../support" && pwd)
PY=/usr/bin/python3
CLONER=$(dirname "$CDI")/cdi-cloner
STARTUP=$E2E_DIR/../../scripts/cloner_startup.sh
[[ -x $CLONER ]] || { echo "cdi-cloner not found next to $CDI" >&2; exit 1; }

CERTS=$T/certs
make_certs() {
  cert_ca "$CERTS" ca &&
    cert_ca "$CERTS" other-ca &&
    cert_leaf "$CERTS" server localhost ca server &&
    cert_leaf "$CERTS" client src-ns/src-pvc-tgt-ns/tgt-pvc ca client
}
make_certs || { echo "making certificates failed" >&2; exit 1; }

# recv_start [ARGS...]: starts the receiver (body → $W/_meta/body); sets PORT, RECV_PID.
recv_start() {
  : > "$W/_meta/recv.log"   # truncated here: the background start below may truncate it too late
  $PY "$SUPPORT/clone_receiver.py" --cert "$CERTS/server.crt" --key "$CERTS/server.key" --ca "$CERTS/ca.crt" \
    --out "$W/_meta/body" "$@" > "$W/_meta/recv.log" 2>&1 &
  RECV_PID=$!
  register_pid "$RECV_PID"
  wait_server_port "$W/_meta/recv.log" "$RECV_PID"
}

# cloner_env [CA_FILE]: CDI's env for the cloner (PEM text), termination log under $W/root.
cloner_env() {
  local ca=${1:-$CERTS/ca.crt}
  mkdir -p "$W/root/dev"
  ENV=(OWNER_UID=uid-1234 "CLIENT_KEY=$(cat "$CERTS/client.key")" "CLIENT_CERT=$(cat "$CERTS/client.crt")"
       "SERVER_CA_CERT=$(cat "$ca")" "UPLOAD_URL=https://127.0.0.1:$PORT/v1beta1/upload" PREALLOCATION=false
       "CDI_IMPORT_ROOT=$W/root" CDI_IMPORT_METRICS_LISTEN=127.0.0.1:0)
}

# run_cloner ARGS...: runs cdi-cloner with $ENV; stderr in $W/_meta/err, exit status in RC.
run_cloner() {
  RC=0
  env "${ENV[@]}" timeout "$CMD_TIMEOUT" "$CLONER" "$@" > "$W/_meta/out" 2> "$W/_meta/err" || RC=$?
}

decode_body() {
  $PY "$SUPPORT/snappy_interop.py" decompress "$W/_meta/body" "$1" || fail "the body is not a valid snappy stream"
}

term_log() { cat "$W/root/dev/termination-log" 2>/dev/null || true; }

assert_clone_ok() {
  [[ $RC == 0 ]] || { cat "$W/_meta/err" >&2; fail "cdi-cloner exited $RC"; }
  [[ $(term_log) == "$1" ]] || fail "termination message: '$(term_log)', want '$1'"
  grep -q "^done " "$W/_meta/recv.log" || fail "receiver did not complete"
}

assert_refused() {   # EXIT PATTERN
  [[ $RC == "$1" ]] || { cat "$W/_meta/err" >&2; fail "exit $RC, want $1"; }
  grep -q -- "$2" "$W/_meta/err" || { cat "$W/_meta/err" >&2; fail "no '$2' in the error"; }
  [[ ! -e $W/root/dev/termination-log ]] || fail "a termination message was written: $(term_log)"
  ! grep -q "^request" "$W/_meta/recv.log" || fail "the receiver got a request"
  [[ ! -e $W/_meta/body ]] || fail "the receiver got bytes"
}

# make_disk FILE: 24 MiB: random, a zero run, random, a hole, random at the end.
make_disk() {
  truncate -s 24M "$1"
  dd if=/dev/urandom of="$1" bs=1M count=3 conv=notrunc status=none
  dd if=/dev/zero of="$1" bs=1M seek=3 count=5 conv=notrunc status=none
  dd if=/dev/urandom of="$1" bs=1M seek=8 count=2 conv=notrunc status=none
  dd if=/dev/urandom of="$1" bs=64K seek=$((23 * 16 + 7)) count=3 conv=notrunc status=none
}

t_block_device() {
  require_root
  make_disk "$W/_meta/disk.raw"
  local dev
  dev=$(make_loop "$W/_meta/disk.raw")
  recv_start
  cloner_env
  run_cloner -v=3 -alsologtostderr -content-type blockdevice-clone -upload-bytes $((24 * MIB)) -mount "$dev"
  assert_clone_ok "Clone Complete"
  grep -q "request /v1beta1/upload blockdevice-clone cn=src-ns/src-pvc-tgt-ns/tgt-pvc te=chunked" "$W/_meta/recv.log" \
    || { cat "$W/_meta/recv.log" >&2; fail "request line"; }
  [[ $(cat "$W/_meta/body.type") == blockdevice-clone ]] || fail "content type header"
  decode_body "$W/_meta/got"
  cmp "$dev" "$W/_meta/got" || fail "decoded body differs from the device"
  local wire
  wire=$(stat -c %s "$W/_meta/body")
  ((wire < 7 * MIB)) || fail "zero runs cost too much on the wire: $wire bytes for 6 MiB of data"
}

# make_volume DIR: a volume with a sparse disk.img, a sub-directory, a file and lost+found.
make_volume() {
  mkdir -p "$1/lost+found" "$1/sub"
  echo lost > "$1/lost+found/x"
  truncate -s 64M "$1/disk.img"
  dd if=/dev/urandom of="$1/disk.img" bs=64K count=4 conv=notrunc status=none
  dd if=/dev/urandom of="$1/disk.img" bs=64K seek=600 count=2 conv=notrunc status=none
  echo hello > "$1/sub/note.txt"
  echo top > "$1/-dash"
}

t_filesystem() {
  make_volume "$W/_meta/vol"
  recv_start
  cloner_env
  run_cloner -v=3 -alsologtostderr -content-type filesystem-clone -upload-bytes 1000000 -mount "$W/_meta/vol"
  assert_clone_ok "Clone Complete"
  [[ $(cat "$W/_meta/body.type") == filesystem-clone ]] || fail "content type header"
  decode_body "$W/_meta/got.tar"
  tar -tvf "$W/_meta/got.tar" > "$W/_meta/list" || fail "not a tar"
  ! grep -q "lost+found" "$W/_meta/list" || fail "lost+found was sent"
  mkdir "$W/_meta/x"
  tar -xf "$W/_meta/got.tar" -C "$W/_meta/x" || fail "GNU tar cannot extract it"
  cmp "$W/_meta/vol/disk.img" "$W/_meta/x/disk.img" || fail "disk.img differs"
  cmp "$W/_meta/vol/sub/note.txt" "$W/_meta/x/sub/note.txt" || fail "sub/note.txt differs"
  cmp "$W/_meta/vol/-dash" "$W/_meta/x/-dash" || fail "-dash differs"
  local alloc
  alloc=$(($(stat -c %b "$W/_meta/x/disk.img") * 512))
  ((alloc < 2 * MIB)) || fail "holes not preserved: $alloc bytes allocated"
  (($(stat -c %s "$W/_meta/body") < 2 * MIB)) || fail "the sparse tar is large on the wire"
}

t_filesystem_preallocation() {
  make_volume "$W/_meta/vol"
  recv_start
  cloner_env
  ENV+=(PREALLOCATION=true)
  run_cloner -content-type filesystem-clone -upload-bytes 1 -mount "$W/_meta/vol"
  assert_clone_ok "Clone Complete, Preallocation applied"
  decode_body "$W/_meta/got.tar"
  mkdir "$W/_meta/x"
  tar -xf "$W/_meta/got.tar" -C "$W/_meta/x"
  cmp "$W/_meta/vol/disk.img" "$W/_meta/x/disk.img" || fail "disk.img differs"
  # without -S: a plain member of the full size
  tar -tvf "$W/_meta/got.tar" > "$W/_meta/list"
  grep -q " 67108864 .* disk.img$" "$W/_meta/list" || { cat "$W/_meta/list" >&2; fail "disk.img member is not full-size"; }
}

t_filesystem_empty() {
  mkdir -p "$W/_meta/vol/lost+found"
  recv_start
  cloner_env
  run_cloner -content-type filesystem-clone -upload-bytes 0 -mount "$W/_meta/vol"
  assert_clone_ok "Clone Complete"
  decode_body "$W/_meta/got.tar"
  [[ -z $(tar -tf "$W/_meta/got.tar") ]] || fail "the empty volume's tar is not empty"
}

t_tar_failure() {
  make_volume "$W/_meta/vol"
  printf '#!/bin/sh\nhead -c 100000 /dev/urandom\necho "tar: boom" >&2\nexit 2\n' > "$W/_meta/badtar"
  chmod +x "$W/_meta/badtar"
  recv_start
  cloner_env
  ENV+=("CDI_IMPORT_TAR=$W/_meta/badtar")
  run_cloner -content-type filesystem-clone -upload-bytes 1 -mount "$W/_meta/vol"
  ((RC != 0)) || fail "a failed tar did not fail the clone"
  grep -q "tar exited with status 2: tar: boom" "$W/_meta/err" || { cat "$W/_meta/err" >&2; fail "error text"; }
  [[ ! -e $W/root/dev/termination-log ]] || fail "termination message written after a tar failure"
}

t_wrong_server_ca() {
  make_disk "$W/_meta/disk.raw"
  recv_start
  cloner_env "$CERTS/other-ca.crt"
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$W/_meta/disk.raw"
  [[ $RC == 7 ]] || { cat "$W/_meta/err" >&2; fail "exit $RC, want 7 (auth)"; }
  [[ ! -e $W/root/dev/termination-log ]] || fail "termination message written"
  ! grep -q "^done" "$W/_meta/recv.log" || fail "the receiver completed a request"
}

t_missing_env() {
  PORT=1
  cloner_env
  ENV=(OWNER_UID=u "CDI_IMPORT_ROOT=$W/root")
  run_cloner -content-type blockdevice-clone -mount /dev/null
  [[ $RC == 2 ]] || fail "exit $RC"
  grep -q "Error getting env var CLIENT_KEY" "$W/_meta/err" || fail "no 'Error getting env var CLIENT_KEY'"
  run_cloner -content-type bogus -mount /dev/null
  grep -q 'Invalid content-type "bogus"' "$W/_meta/err" || fail "no 'Invalid content-type'"
  run_cloner -content-type blockdevice-clone -nosuchflag
  grep -q 'flag provided but not defined: -nosuchflag' "$W/_meta/err" || fail "Go flag error"
}

# qemu_lock FILE: a live qemu-io holding FILE open read-write (qemu's OFD locks).
qemu_lock() {
  qemu-io -f raw -c 'sleep 600000' "$1" > "$W/_meta/qemu-io.out" 2>&1 &
  local pid=$!
  register_pid "$pid"
  for _ in $(seq 50); do
    $PY -c 'import fcntl,os,struct,sys
fd=os.open(sys.argv[1],os.O_RDONLY)
fl=struct.pack("hhqqi",fcntl.F_WRLCK,0,101,1,0)
r=fcntl.fcntl(fd,36,fl)  # F_OFD_GETLK
sys.exit(0 if struct.unpack("hhqqi",r)[0]!=fcntl.F_UNLCK else 1)' "$1" && return 0
    sleep 0.1
  done
  fail "qemu-io did not lock $1"
}

t_locked_by_qemu_filesystem() {
  make_volume "$W/_meta/vol"
  qemu_lock "$W/_meta/vol/disk.img"
  recv_start
  cloner_env
  run_cloner -content-type filesystem-clone -upload-bytes 1 -mount "$W/_meta/vol"
  assert_refused 11 "disk.img is in use (locked by a running qemu)"
  ENV=(); # local copy refused too, and allowed with --force-shared
  expect_exit 11 clone --from "$W/_meta/vol" --to "$W/dest/copy.img"
  assert_error_matches 'in use'
  [[ ! -e $W/dest/copy.img ]] || fail "a copy was made"
  cdi clone --from "$W/_meta/vol" --to "$W/dest/copy.img" --force-shared
  check_success
  cmp "$W/_meta/vol/disk.img" "$W/dest/copy.img"
}

t_locked_by_qemu_block() {
  make_disk "$W/_meta/disk.raw"
  qemu_lock "$W/_meta/disk.raw"
  recv_start
  cloner_env
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$W/_meta/disk.raw"
  assert_refused 11 "is in use"
}

t_mounted_device() {
  require_root
  truncate -s 64M "$W/_meta/fs.img"
  mkfs.ext4 -q -F "$W/_meta/fs.img"
  local dev
  dev=$(make_loop "$W/_meta/fs.img")
  mkdir -p "$W/_meta/mnt"
  mount "$dev" "$W/_meta/mnt"
  echo "umount $W/_meta/mnt" >> "$CLEANUP_LIST"
  recv_start
  cloner_env
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$dev"
  assert_refused 11 "is in use (mounted at $W/_meta/mnt)"
  cdi info "$dev" || true
  grep -q "in use: yes (mounted at $W/_meta/mnt)" "$W/_meta/out" || { show_output; fail "info does not say in use"; }
  umount "$W/_meta/mnt"
  udevadm settle 2>/dev/null || true
  for _ in $(seq 20); do   # udev's blkid probe may hold the device a moment after umount
    cdi info "$dev"
    grep -q "in use: no" "$W/_meta/out" && break
    sleep 0.2
  done
  grep -q "in use: no" "$W/_meta/out" || { show_output; fail "info does not say free"; }
}

t_device_held_exclusively() {
  require_root
  make_disk "$W/_meta/disk.raw"
  local dev holder
  dev=$(make_loop "$W/_meta/disk.raw")
  $PY -c 'import os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print("held", flush=True); time.sleep(120)' "$dev" > "$W/_meta/holder.out" &
  holder=$!
  register_pid "$holder"
  for _ in $(seq 50); do [[ -s $W/_meta/holder.out ]] && break; sleep 0.1; done
  [[ -s $W/_meta/holder.out ]] || fail "could not hold $dev"
  recv_start
  cloner_env
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$dev"
  assert_refused 11 "is in use (mounted or held open exclusively)"
  kill "$holder"
  wait "$holder" 2>/dev/null || true
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$dev"
  assert_clone_ok "Clone Complete"
}

t_startup_block() {
  require_root
  make_disk "$W/_meta/disk.raw"
  local dev
  dev=$(make_loop "$W/_meta/disk.raw")
  recv_start
  cloner_env
  RC=0
  env "${ENV[@]}" VOLUME_MODE=block MOUNT_POINT="$dev" CDI_CLONER="$CLONER" \
    timeout "$CMD_TIMEOUT" "$STARTUP" > "$W/_meta/out" 2> "$W/_meta/err" || RC=$?
  grep -q "^UPLOAD_BYTES=$((24 * MIB))$" "$W/_meta/out" || { cat "$W/_meta/out" >&2; fail "UPLOAD_BYTES"; }
  assert_clone_ok "Clone Complete"
  grep -q "upload-bytes is $((24 * MIB))" "$W/_meta/err" || fail "cdi-cloner did not get -upload-bytes"
  decode_body "$W/_meta/got"
  cmp "$dev" "$W/_meta/got"
}

t_startup_filesystem() {
  make_volume "$W/_meta/vol"
  local pre want
  for pre in false true; do
    rm -f "$W/_meta/body" "$W/root/dev/termination-log"
    recv_start
    cloner_env
    RC=0
    env "${ENV[@]}" PREALLOCATION=$pre VOLUME_MODE=filesystem MOUNT_POINT="$W/_meta/vol" CDI_CLONER="$CLONER" \
      timeout "$CMD_TIMEOUT" "$STARTUP" > "$W/_meta/out" 2> "$W/_meta/err" || RC=$?
    if [[ $pre == true ]]; then
      want=$(cd "$W/_meta/vol" && du -sb . | cut -f1)
      assert_clone_ok "Clone Complete, Preallocation applied"
    else
      want=$(cd "$W/_meta/vol" && du -s --block-size=1 . | cut -f1)
      assert_clone_ok "Clone Complete"
    fi
    grep -q "^UPLOAD_BYTES=$want$" "$W/_meta/out" || { cat "$W/_meta/out" >&2; fail "UPLOAD_BYTES (want $want)"; }
    kill "$RECV_PID"
    wait "$RECV_PID" 2>/dev/null || true
  done
  RC=0
  env -u VOLUME_MODE MOUNT_POINT=/x "$STARTUP" > "$W/_meta/out" 2> "$W/_meta/err" || RC=$?
  [[ $RC == 1 ]] && grep -q "VOLUME_MODE missing" "$W/_meta/err" || fail "missing VOLUME_MODE"
  RC=0
  env -u MOUNT_POINT VOLUME_MODE=block "$STARTUP" > "$W/_meta/out" 2> "$W/_meta/err" || RC=$?
  [[ $RC == 1 ]] && grep -q "MOUNT_POINT missing" "$W/_meta/err" || fail "missing MOUNT_POINT"
}

t_metric_during_slow_upload() {
  dd if=/dev/urandom of="$W/_meta/disk.raw" bs=1M count=12 status=none
  recv_start --rate $((2 * MIB))
  cloner_env
  env "${ENV[@]}" timeout "$CMD_TIMEOUT" "$CLONER" -v=3 -content-type blockdevice-clone -upload-bytes $((12 * MIB)) \
    -mount "$W/_meta/disk.raw" > "$W/_meta/out" 2> "$W/_meta/err" &
  local pid=$! mport= seen=
  register_pid "$pid"
  for _ in $(seq 100); do
    mport=$(grep -oE 'metrics listening on https://127.0.0.1:[0-9]+' "$W/_meta/err" | grep -oE '[0-9]+$' || true)
    [[ -n $mport ]] && break
    sleep 0.05
  done
  [[ -n $mport ]] || { cat "$W/_meta/err" >&2; fail "no metrics port"; }
  for _ in $(seq 100); do
    curl -sk "https://127.0.0.1:$mport/metrics" > "$W/_meta/metrics" || true
    if grep -qE '^kubevirt_cdi_clone_progress_total\{ownerUID="uid-1234"\} ([1-9][0-9]?(\.[0-9]+)?)$' "$W/_meta/metrics"; then
      seen=1
      break
    fi
    sleep 0.1
  done
  [[ -n $seen ]] || { cat "$W/_meta/metrics" >&2; fail "no intermediate progress value served"; }
  grep -q "# TYPE kubevirt_cdi_clone_progress_total counter" "$W/_meta/metrics" || fail "metric TYPE line"
  wait "$pid" || fail "cdi-cloner failed"
  [[ $(term_log) == "Clone Complete" ]] || fail "termination message"
}

t_connect_refused_retried() {
  make_disk "$W/_meta/disk.raw"
  # a port nobody listens on: the cloner retries before any byte, then fails (network, 8)
  PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cloner_env
  run_cloner -content-type blockdevice-clone -upload-bytes 1 -mount "$W/_meta/disk.raw"
  [[ $RC == 8 ]] || { cat "$W/_meta/err" >&2; fail "exit $RC, want 8"; }
  (($(grep -c "failed before any byte was sent" "$W/_meta/err") == 4)) || { cat "$W/_meta/err" >&2; fail "4 retries expected"; }
}

t_clone_to_url() {
  make_volume "$W/_meta/vol"
  make_disk "$W/_meta/disk.raw"
  recv_start
  local tls=(--client-cert "$CERTS/client.crt" --client-key "$CERTS/client.key" --ca-cert "$CERTS/ca.crt")
  cdi clone --from "$W/_meta/disk.raw" --to-url "https://127.0.0.1:$PORT/v1beta1/upload" "${tls[@]}"
  check_success
  [[ $(cat "$W/_meta/body.type") == blockdevice-clone ]] || fail "content type"
  decode_body "$W/_meta/got"
  cmp "$W/_meta/disk.raw" "$W/_meta/got"
  cdi clone --from "$W/_meta/vol" --to-url "https://127.0.0.1:$PORT/v1beta1/upload" "${tls[@]}"
  check_success
  [[ $(cat "$W/_meta/body.type") == filesystem-clone ]] || fail "content type"
  decode_body "$W/_meta/got.tar"
  mkdir "$W/_meta/x"
  tar -xf "$W/_meta/got.tar" -C "$W/_meta/x"
  cmp "$W/_meta/vol/disk.img" "$W/_meta/x/disk.img"
}

t_local_copies() {
  require_root
  make_disk "$W/_meta/disk.raw"
  # file → file: sparse
  cdi clone --from "$W/_meta/disk.raw" --to "$W/dest/a.img"
  check_success
  cmp "$W/_meta/disk.raw" "$W/dest/a.img" || fail "file→file differs"
  (($(stat -c %b "$W/dest/a.img") * 512 < 8 * MIB)) || fail "file→file not sparse"
  # block → file
  local src dst
  src=$(make_loop "$W/_meta/disk.raw" -r)
  cdi clone --from "$src" --to "$W/dest/b.img"
  check_success
  cmp "$W/_meta/disk.raw" "$W/dest/b.img" || fail "block→file differs"
  (($(stat -c %b "$W/dest/b.img") * 512 < 8 * MIB)) || fail "block→file not sparse"
  # file → block (larger, prefilled with random bytes): the source's range byte-exact
  dd if=/dev/urandom of="$W/_meta/target.raw" bs=1M count=32 status=none
  dst=$(make_loop "$W/_meta/target.raw")
  cdi clone --from "$W/_meta/disk.raw" --to "$dst"
  check_success
  cmp -n $((24 * MIB)) "$W/_meta/disk.raw" "$dst" || fail "file→block differs"
  # directory holding disk.img → directory
  mkdir -p "$W/_meta/vol" "$W/dest/vol2"
  cp --sparse=always "$W/_meta/disk.raw" "$W/_meta/vol/disk.img"
  cdi clone --from "$W/_meta/vol" --to "$W/dest/vol2"
  check_success
  cmp "$W/_meta/disk.raw" "$W/dest/vol2/disk.img" || fail "dir→dir differs"
  # a target device smaller than the source
  truncate -s 8M "$W/_meta/small.raw"
  dst=$(make_loop "$W/_meta/small.raw")
  expect_exit 6 clone --from "$W/_meta/disk.raw" --to "$dst"
  assert_error_matches 'smaller than the source'
  # a failed copy into a file leaves the old file and nothing beside it
  echo keep > "$W/dest/keep.img"
  dd if=/dev/urandom of="$W/_meta/short.raw" bs=1M count=2 status=none
  expect_exit 9 clone --from "$W/_meta/missing.raw" --to "$W/dest/keep.img"
  [[ $(cat "$W/dest/keep.img") == keep ]] || fail "the old target was touched"
  qemu_lock "$W/dest/keep.img"
  expect_exit 11 clone --from "$W/_meta/short.raw" --to "$W/dest/keep.img"
  assert_error_matches 'target .* is in use'
  [[ $(cat "$W/dest/keep.img") == keep ]] || fail "a target held by qemu was touched"
  [[ -z $(ls "$W/dest" | grep cdi-import-) ]] || fail "temporary file left beside the target"
}

run_test block_device t_block_device
run_test filesystem t_filesystem
run_test filesystem_preallocation t_filesystem_preallocation
run_test filesystem_empty t_filesystem_empty
run_test tar_failure t_tar_failure
run_test wrong_server_ca t_wrong_server_ca
run_test missing_env t_missing_env
run_test locked_by_qemu_filesystem t_locked_by_qemu_filesystem
run_test locked_by_qemu_block t_locked_by_qemu_block
run_test mounted_device t_mounted_device
run_test device_held_exclusively t_device_held_exclusively
run_test startup_block t_startup_block
run_test startup_filesystem t_startup_filesystem
run_test metric_during_slow_upload t_metric_during_slow_upload
run_test connect_refused_retried t_connect_refused_retried
run_test clone_to_url t_clone_to_url
run_test local_copies t_local_copies
finish
