# shellcheck shell=bash disable=SC2034  # C_* and SRV_PID are results for the caller
# SPDX-License-Identifier: Apache-2.0
# Sourced by bench/clone.sh and bench/clone_interop.sh (bench/clone_source.sh: the certificates):
# their common set-up (clone_setup) and one host-assisted clone, cloner pod ->
# upload-server pod, as CDI's controller sets them up, with either implementation on either side.
#
# Both sides run as pods would, through bench/podns.sh (private mount namespace, CDI's fixed paths
# bound to per-run files), inside one private network namespace that has only `lo` (the scripts
# re-execute themselves under `unshare -n`), so every listener — the upload server on
# 127.0.0.1:8444, CDI's healthz on :8080, the cloner's metrics on :8443 — is reachable from
# nothing but this run. The cloner's UPLOAD_URL points at tests/support/tcp_relay.py on 127.0.0.1:9443,
# which counts the (TLS) bytes on the wire and forwards them to the server.
#
# The caller sets: ROOT (the checkout), WORK (a directory under /work: certificates, runs),
# OURS_BIN (directory with our cdi-cloner / cdi-uploadserver links), PEER_DIR (CDI's binaries and
# cloner_startup.sh). OURS_STARTUP: our cloner entry point (default scripts/cloner_startup.sh).
# Needs root.

CLONE_CLIENT_NAME="srcns/srcpvc-tgtns/tgtpvc"
# CDI's Intermediate TLS profile (what the controller passes by default), as TLS_CIPHERS.
CLONE_CIPHERS="TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384"
SERVER_PORT=8444
RELAY_PORT=9443

clog() { echo "clone: $*" >&2; }

# clone_enter_netns "$@": re-executes the calling script in a private network namespace.
clone_enter_netns() {
  if [[ ${CLONE_NETNS:-} != 1 ]]; then
    export CLONE_NETNS=1
    exec unshare -n -- "$0" "$@"
  fi
  ip link set lo up
}

# ours_available / peer_available: whether each implementation's pod programs are there.
# (absolute paths: the pods run chrooted, in /)
ours_startup() { realpath -m "${OURS_STARTUP:-$ROOT/scripts/cloner_startup.sh}"; }
ours_cloner_available() { [[ -x $OURS_BIN/cdi-cloner && -f $(ours_startup) ]]; }
ours_server_available() { [[ -x $OURS_BIN/cdi-uploadserver ]]; }
ours_available() { ours_cloner_available && ours_server_available; }
peer_available() { [[ -x $PEER_DIR/cdi-cloner && -x $PEER_DIR/cdi-uploadserver && -f $PEER_DIR/cloner_startup.sh ]]; }

# make_clone_certs: a CA, a server certificate for 127.0.0.1 and the clone client certificate
# (CN "<src ns>/<src pvc>-<tgt ns>/<tgt pvc>", as CDI's controller makes it), in $WORK/certs.
make_clone_certs() {
  local d=$WORK/certs
  [[ -f $d/.done ]] && return 0
  mkdir -p "$d"
  (
    cd "$d" || exit 1
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj "/CN=cdi-bench-ca" 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=cdi-upload-tgtpvc.tgtns.svc" 2> /dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:cdi-upload-tgtpvc.tgtns.svc\nextendedKeyUsage=serverAuth\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 -extfile server.ext 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=${CLONE_CLIENT_NAME//\//\\/}" 2> /dev/null
    printf 'extendedKeyUsage=clientAuth\n' > client.ext
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 30 -extfile client.ext 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -keyout wrong.key -out wrong.csr -subj "/CN=othernamespace\/other-tgtns\/tgtpvc" 2> /dev/null
    openssl x509 -req -in wrong.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out wrong.crt -days 30 -extfile client.ext 2> /dev/null
    touch .done
  )
}

# clone_setup MIBS PREFILL: what both scripts do before their cases. Makes (once, kept in
# $WORK/img-MIBSm) the cloud-like source: SRC_IMG (raw, make_cloud_raw) and SRC_DIR (a directory
# holding it as a sparse disk.img), SRC_SIZE = IMAGE_SIZE its size; the certificates; the source on
# a read-only loop device (SRC_DEV); an EXIT trap that stops what is still running, detaches the
# loop devices and removes $WORK/runs (unless CLONE_KEEP=1). PREFILL is what fresh_block_target
# puts on a new block target (TGT_DEV, backed by TGT_FILE): "sparse" (a fresh, empty file of the
# source's size) or "random" (16 MiB more than the source, random bytes throughout).
clone_setup() {
  local mibs=$1
  CLONE_PREFILL=$2
  mkdir -p "$WORK"
  IMG=$WORK/img-${mibs}m
  SRC_IMG=$IMG/source.raw
  SRC_DIR=$IMG/fs
  if [[ ! -f $IMG/.done ]]; then
    clog "making a $mibs MiB cloud-like image (random + text, the rest holes)"
    mkdir -p "$SRC_DIR"
    make_cloud_raw "$SRC_IMG" "$mibs"
    cp --sparse=always "$SRC_IMG" "$SRC_DIR/disk.img"
    touch "$IMG/.done"
  fi
  SRC_SIZE=$(stat -c %s "$SRC_IMG")
  IMAGE_SIZE=$SRC_SIZE
  make_clone_certs
  SRC_DEV='' TGT_DEV='' TGT_FILE=$WORK/target-block.raw
  trap clone_cleanup EXIT
  SRC_DEV=$(losetup --find --show --read-only "$SRC_IMG")
}

clone_cleanup() {
  clone_stop_all
  sleep 0.2
  [[ -n $SRC_DEV ]] && losetup -d "$SRC_DEV" 2> /dev/null
  [[ -n $TGT_DEV ]] && losetup -d "$TGT_DEV" 2> /dev/null
  rm -f "$TGT_FILE"
  [[ ${CLONE_KEEP:-0} == 1 ]] || rm -rf "$WORK/runs"
}

# fresh_block_target: a new block target on a new loop device, as clone_setup's PREFILL says.
fresh_block_target() {
  [[ -n $TGT_DEV ]] && losetup -d "$TGT_DEV"
  rm -f "$TGT_FILE"
  if [[ $CLONE_PREFILL == random ]]; then
    head -c $((SRC_SIZE + (16 << 20))) /dev/zero | openssl enc -aes-128-ctr -nosalt -pass pass:prefill -pbkdf2 2> /dev/null > "$TGT_FILE"
  else
    truncate -s "$SRC_SIZE" "$TGT_FILE"
  fi
  TGT_DEV=$(losetup --find --show "$TGT_FILE")
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (5 s).
wait_port() {
  local i
  for ((i = 0; i < 100; i++)); do
    if (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# start_server IMPL TARGET RUN: the upload-server pod (IMPL cdi|ours; TARGET file|block, block =
# the loop device $TGT_DEV on /dev/cdi-block-volume, file = $RUN/data on /data), in the
# background; SRV_PID. UPLOAD_IMAGE_SIZE=$IMAGE_SIZE, FILESYSTEM_OVERHEAD=0 (so a file target is
# the source's size), PREALLOCATION=${CLONE_PREALLOCATION:-false} (the same on the cloner).
start_server() {
  local impl=$1 target=$2 run=$3 bin vol=() env=()
  mkdir -p "$run/data"
  env=(LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT="$SERVER_PORT" CLIENT_NAME="$CLONE_CLIENT_NAME"
       UPLOAD_IMAGE_SIZE="$IMAGE_SIZE" FILESYSTEM_OVERHEAD=0 PREALLOCATION="${CLONE_PREALLOCATION:-false}"
       TLS_CIPHERS="$CLONE_CIPHERS" TLS_MIN_VERSION=VersionTLS12)
  if [[ $target == block ]]; then
    vol=(--block "$TGT_DEV")
    env+=(DESTINATION=/dev/cdi-block-volume)
  else
    vol=(--data "$run/data")
  fi
  local c=$WORK/certs
  if [[ $impl == cdi ]]; then
    bin=$PEER_DIR/cdi-uploadserver
    env+=(TLS_KEY="$(cat "$c/server.key")" TLS_CERT="$(cat "$c/server.crt")" CLIENT_CERT="$(cat "$c/ca.crt")")
  else
    bin=$OURS_BIN/cdi-uploadserver
    env+=(TLS_KEY_FILE="$c/server.key" TLS_CERT_FILE="$c/server.crt" CLIENT_CERT_FILE="$c/ca.crt")
  fi
  PODNS_TMPDIR=$run "$ROOT/bench/podns.sh" "${vol[@]}" --term "$run/server.term" -- \
    env "${env[@]}" /usr/bin/time -f '%e %U %S %M' -o "$run/server.time" "$bin" -v=1 \
    > "$run/server.log" 2>&1 &
  SRV_PID=$!
}

# run_cloner IMPL KIND RUN [CLIENT]: the cloner pod (cloner_startup.sh of IMPL, /usr/bin/cdi-cloner
# = IMPL's cloner; KIND block: $SRC_DEV on /dev/cdi-block-volume, fs: $SRC_DIR on
# /var/run/cdi/clone/source), in the foreground; its exit code in CL_RC. CLIENT: the client
# certificate's base name in $WORK/certs (default client).
run_cloner() {
  local impl=$1 kind=$2 run=$3 client=${4:-client} vol=() env=() bin startup c=$WORK/certs
  if [[ $kind == block ]]; then
    vol=(--block "$SRC_DEV"); env=(VOLUME_MODE=block MOUNT_POINT=/dev/cdi-block-volume)
  else
    vol=(--source "$SRC_DIR"); env=(VOLUME_MODE=filesystem MOUNT_POINT=/var/run/cdi/clone/source)
  fi
  if [[ $impl == cdi ]]; then bin=$PEER_DIR/cdi-cloner startup=$PEER_DIR/cloner_startup.sh
  else bin=$OURS_BIN/cdi-cloner startup=$(ours_startup); fi
  env+=(OWNER_UID=0b9d4bd1-6a55-4c4f-9d43-5a3ce2a5c6f1 PREALLOCATION="${CLONE_PREALLOCATION:-false}"
        UPLOAD_URL="https://127.0.0.1:$RELAY_PORT/v1beta1/upload"
        CLIENT_KEY="$(cat "$c/$client.key")" CLIENT_CERT="$(cat "$c/$client.crt")" SERVER_CA_CERT="$(cat "$c/ca.crt")")
  CL_RC=0
  PODNS_TMPDIR=$run "$ROOT/bench/podns.sh" "${vol[@]}" --term "$run/cloner.term" --bin "cdi-cloner=$bin" -- \
    env "${env[@]}" /usr/bin/time -f '%e %U %S %M' -o "$run/cloner.time" /bin/bash "$startup" \
    > "$run/cloner.log" 2>&1 || CL_RC=$?
}

# start_relay RUN [CUT]: tests/support/tcp_relay.py 127.0.0.1:$RELAY_PORT -> :$SERVER_PORT, counting
# into RUN/wire ("UP DOWN CONNECTIONS"), cutting after CUT client->server bytes; RELAY_PID.
start_relay() {
  local run=$1
  rm -f "$run/relay.port"
  /usr/bin/python3 "$ROOT/tests/support/tcp_relay.py" --listen $RELAY_PORT --to $SERVER_PORT --portfile "$run/relay.port" \
    --count-file "$run/wire" ${2:+--cut-after "$2"} > "$run/relay.out" 2>&1 &
  RELAY_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $run/relay.port ]] && return 0; sleep 0.05; done
  clog "relay did not start"
  return 1
}

# stop_server_pod: podns.sh execs down to /usr/bin/time (pid SRV_PID), which passes no signal on:
# SIGTERM to the server (its child), then to time itself.
stop_server_pod() {
  local kids=() child
  read -r -a kids < "/proc/$SRV_PID/task/$SRV_PID/children" 2> /dev/null || true
  for child in "${kids[@]}"; do kill -TERM "$child" 2> /dev/null || true; done
  sleep 0.2
  kill "$SRV_PID" 2> /dev/null || true
}

# one_clone SRC_IMPL TGT_IMPL KIND TARGET RUN [CLIENT] [CUT]: one clone; sets
#   C_WALL (s, cloner start -> server exited and target synced), C_WIRE (client->server bytes),
#   C_WIRE_BACK, C_SRV_RC, C_CL_RC, C_SRV_TIME / C_CL_TIME ("wall user sys maxrss_kib"),
#   C_SRV_TERM / C_CL_TERM (termination messages).
one_clone() {
  local si=$1 ti=$2 kind=$3 target=$4 run=$5 client=${6:-client} cut=${7:-}
  rm -rf "$run"
  mkdir -p "$run"
  start_server "$ti" "$target" "$run"
  if ! wait_port $SERVER_PORT; then
    clog "server ($ti) did not start: $(tail -n 5 "$run/server.log")"
    kill "$SRV_PID" 2> /dev/null || true
    wait "$SRV_PID" 2> /dev/null || true
    C_SRV_RC=start-failed C_CL_RC=- C_WALL=nan C_WIRE=0 C_WIRE_BACK=0
    return 1
  fi
  start_relay "$run" "$cut"
  local t0=$EPOCHREALTIME
  run_cloner "$si" "$kind" "$run" "$client"
  C_CL_RC=$CL_RC
  # the server exits after a completed clone; after a failed one it keeps waiting (as in a pod),
  # so give it a moment, then stop it
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$SRV_PID" 2> /dev/null || break; sleep 0.05; done
  if kill -0 "$SRV_PID" 2> /dev/null; then
    stop_server_pod
  fi
  C_SRV_RC=0
  wait "$SRV_PID" || C_SRV_RC=$?
  if [[ $target == block ]]; then blockdev --flushbufs "$TGT_DEV"; else sync -f "$run/data"; fi
  C_WALL=$(echo "$EPOCHREALTIME - $t0" | bc)
  kill "$RELAY_PID" 2> /dev/null || true
  wait "$RELAY_PID" 2> /dev/null || true
  read -r C_WIRE C_WIRE_BACK _ < "$run/wire" || true
  C_SRV_TIME=$(tail -n 1 "$run/server.time" 2> /dev/null || echo "nan nan nan 0")
  C_CL_TIME=$(tail -n 1 "$run/cloner.time" 2> /dev/null || echo "nan nan nan 0")
  C_SRV_TERM=$(cat "$run/server.term" 2> /dev/null || true)
  C_CL_TERM=$(cat "$run/cloner.term" 2> /dev/null || true)
}

# clone_stop_all: stops a server and relay still running (for the callers' EXIT traps).
clone_stop_all() {
  [[ -z ${SRV_PID:-} ]] || ! kill -0 "$SRV_PID" 2> /dev/null || stop_server_pod
  [[ -z ${RELAY_PID:-} ]] || kill "$RELAY_PID" 2> /dev/null || true
}

# target_matches TARGET RUN: the clone target equals the source, byte for byte (a block target may
# be larger than the source: its first SRC_SIZE bytes are compared).
target_matches() {
  if [[ $1 == block ]]; then
    cmp -n "$SRC_SIZE" "$SRC_IMG" "$TGT_DEV" > /dev/null 2>&1
  else
    [[ $(stat -c %s "$2/data/disk.img" 2> /dev/null) == "$SRC_SIZE" ]] && cmp "$SRC_IMG" "$2/data/disk.img" > /dev/null 2>&1
  fi
}
