#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Pod mode (CDI drop-in): `cdi-importer` run with CDI's environment under a temporary
# CDI_IMPORT_ROOT, against a real nginx (and the fault server for a slow source). Every case asserts
# the exact termination-message bytes and exit code CDI's controller expects
# (cdi-importer-spec.md §1.5), and every imported image is compared with qemu-img convert.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"

POD=$(dirname "$CDI")/cdi-importer
if [[ ! -x $POD ]]; then ln -s "$CDI" "$T/cdi-importer"; POD=$T/cdi-importer; fi

SRV=$T/srv
DOC=$T/docroot
mkdir -p "$SRV/fault" "$DOC"
for f in raw.gz qcow2.xz qcow2-v3.qcow2 archive.tar stream.vmdk.gz source.raw; do ln -s "$IMG/$f" "$DOC/$f"; done
head -c $((3 * MIB)) /dev/urandom > "$DOC/random3m.raw"
trap 'nginx_stop; fault_stop; cleanup' EXIT
nginx_start "$SRV/nginx" "$DOC" || { echo "nginx did not start" >&2; exit 1; }
fault_start "$SRV/fault" "$DOC" || { echo "fault server did not start" >&2; exit 1; }
H=http://127.0.0.1:$HTTP_PORT
HS=https://127.0.0.1:$HTTPS_PORT
SUCCESS='{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}'

# pod_root: a fresh CDI_IMPORT_ROOT in $W/root with /data and /dev (no /scratch).
pod_root() {
  R=$W/root
  mkdir -p "$R/data" "$R/dev" "$R/shared"
}

# pod VAR=VALUE...: cdi-importer with CDI's environment (lib.sh importer_pod: HTTP by default).
pod() { importer_pod "$@"; }

# expect_term EXIT TEXT: the exit code and the exact bytes of $R/dev/termination-log.
expect_term() {
  local want_rc=$1 want=$2 got
  if ((LAST_RC != want_rc)); then show_output; fail "exit $LAST_RC, expected $want_rc"; fi
  [[ -f $R/dev/termination-log ]] || { show_output; fail "no termination log"; }
  got=$(cat "$R/dev/termination-log"; echo x)
  got=${got%x}
  [[ $got == "$want" ]] || { show_output; fail "termination log: '$got', expected '$want'"; }
  [[ $(stat -c %a "$R/dev/termination-log") == 600 ]] || fail "termination log mode is not 0600"
}

# expect_no_term EXIT: that exit code and no termination message.
expect_no_term() {
  if ((LAST_RC != $1)); then show_output; fail "exit $LAST_RC, expected $1"; fi
  [[ ! -e $R/dev/termination-log ]] || fail "unexpected termination log: $(cat "$R/dev/termination-log")"
}

log_has() { grep -q -- "$1" "$W/_meta/err" || { show_output; fail "log lacks '$1'"; }; }

# assert_raw_prefix IMAGE FILE SIZE: FILE is SIZE bytes: qemu-img's raw of IMAGE, then zeros.
assert_raw_prefix() {
  local exp=$W/_meta/expected.raw
  qemu-img convert -q -O raw "$1" "$exp"
  truncate -s "$3" "$exp"
  [[ $(stat -c %s "$2") == "$3" ]] || fail "$2 is $(stat -c %s "$2") bytes, expected $3"
  cmp "$exp" "$2" >&2 || fail "$2 differs from qemu-img convert of $1"
  rm -f "$exp"
}

t_filesystem_overhead_resize() {
  pod_root
  # 128Mi requested, 6% overhead: usable = RoundDown(ceil(128Mi / 1.06), 1Mi) = 120 MiB
  pod IMPORTER_ENDPOINT="$H/qcow2.xz" IMPORTER_IMAGE_SIZE=128Mi
  expect_term 0 "$SUCCESS"
  assert_raw_prefix "$IMG/qcow2-v3.qcow2" "$R/data/disk.img" $((120 * MIB))
  [[ $(stat -c %a "$R/data/disk.img") == 660 ]] || fail "disk.img mode is not 0660"
  log_has "New phase: Info"
  log_has "New phase: TransferDataFile"
  log_has "New phase: Complete"
  log_has "] Import Complete"
  [[ ! -e $R/scratch ]] || fail "scratch appeared"
}

t_filesystem_no_request_no_resize() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" FILESYSTEM_OVERHEAD=
  expect_term 0 "$SUCCESS"
  assert_same_as_qemu "$IMG/source.raw" "$R/data/disk.img" raw
}

t_preallocated_import() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" IMPORTER_IMAGE_SIZE=128Mi PREALLOCATION=true
  expect_term 0 '{"scratchSpaceRequired":false,"preallocationApplied":true,"message":"Import Complete"}'
  assert_raw_prefix "$IMG/source.raw" "$R/data/disk.img" $((120 * MIB))
  (( $(stat -c %b "$R/data/disk.img") * 512 >= 120 * MIB )) || fail "disk.img not preallocated"
}

t_block_target() {
  require_root
  pod_root
  fill_ff "$W/blockfile" $((96 * MIB))
  local dev
  dev=$(make_loop "$W/blockfile")
  ln -s "$dev" "$R/dev/cdi-block-volume"
  pod IMPORTER_ENDPOINT="$H/qcow2-v3.qcow2" IMPORTER_IMAGE_SIZE=1Gi
  expect_term 0 "$SUCCESS"
  head -c $((64 * MIB)) "$dev" > "$W/_meta/got.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/_meta/got.raw"
  [[ ! -e $R/data/disk.img ]] || fail "block mode wrote /data/disk.img"
}

t_archive_into_data() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/archive.tar" IMPORTER_CONTENTTYPE=archive
  expect_term 0 "$SUCCESS"
  mkdir -p "$W/_meta/expected"
  tar -C "$W/_meta/expected" -xf "$IMG/archive.tar"
  diff -r "$W/_meta/expected" "$R/data" >&2 || fail "extracted tree differs from tar -x"
}

t_blank_filesystem() {
  pod_root
  pod IMPORTER_SOURCE=none IMPORTER_IMAGE_SIZE=64Mi
  expect_term 0 '{"preallocationApplied":false,"message":"Import Complete"}'
  # 64Mi / 1.06 = 60.38 MiB -> 60 MiB, sparse
  [[ $(stat -c %s "$R/data/disk.img") == $((60 * MIB)) ]] || fail "blank size $(stat -c %s "$R/data/disk.img")"
  assert_allocated_below "$R/data/disk.img" $((1 * MIB))
  is_zero "$R/data/disk.img" 0 $((60 * MIB)) || fail "blank image is not zero"
  [[ $(stat -c %a "$R/data/disk.img") == 660 ]] || fail "disk.img mode is not 0660"
}

t_blank_filesystem_preallocated() {
  pod_root
  pod IMPORTER_SOURCE=none IMPORTER_IMAGE_SIZE=64Mi PREALLOCATION=true
  expect_term 0 '{"preallocationApplied":true,"message":"Import Complete"}'
  [[ $(stat -c %s "$R/data/disk.img") == $((60 * MIB)) ]] || fail "blank size $(stat -c %s "$R/data/disk.img")"
  (( $(stat -c %b "$R/data/disk.img") * 512 >= 60 * MIB )) || fail "blank image not preallocated"
}

t_blank_block() {
  require_root
  pod_root
  fill_ff "$W/blockfile" $((8 * MIB))
  local dev
  dev=$(make_loop "$W/blockfile")
  ln -s "$dev" "$R/dev/cdi-block-volume"
  pod IMPORTER_SOURCE=none IMPORTER_IMAGE_SIZE=8Mi
  expect_term 0 '{"preallocationApplied":false,"message":"Import Complete"}'
  [[ $(tr -d '\377' < "$dev" | wc -c) == 0 ]] || fail "a blank block volume without preallocation was touched"
  # with preallocation: zero-filled up to min(device, request) = 6.5 MiB, the rest untouched
  pod IMPORTER_SOURCE=none IMPORTER_IMAGE_SIZE=6656Ki PREALLOCATION=true
  expect_term 0 '{"preallocationApplied":true,"message":"Import Complete"}'
  is_zero "$dev" 0 $((6656 * 1024)) || fail "blank block volume not zero-filled"
  [[ $(tail -c +$((6656 * 1024 + 1)) "$dev" | tr -d '\377' | wc -c) == 0 ]] || fail "zero-fill went past the request"
}

t_node_pull_handshake() {
  pod_root
  (sleep 1.2; echo "raw.gz" > "$R/shared/ready.tmp"; mv "$R/shared/ready.tmp" "$R/shared/ready") &
  pod IMPORTER_ENDPOINT="$H/disk.img" IMPORTER_PULL_METHOD=node IMPORTER_READY_FILE=/shared/ready \
    IMPORTER_DONE_FILE=/shared/done
  wait
  expect_term 0 "$SUCCESS"
  assert_same_as_qemu "$IMG/source.raw" "$R/data/disk.img" raw
  [[ -f $R/shared/done ]] || fail "done file not created"
  grep -q '"GET /raw.gz' "$SRV/nginx/access.log" || fail "the ready file's name was not used"
}

t_node_pull_timeout() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/disk.img" IMPORTER_READY_FILE=/shared/ready IMPORTER_DONE_FILE=/shared/done \
    CDI_IMPORT_READY_TRIES=2
  expect_term 1 "Timeout waiting for file /shared/ready"
  [[ ! -e $R/shared/done ]] || fail "done file created on failure"
}

t_checksum_ok() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" IMPORTER_CHECKSUM="sha256:$(sha256sum "$IMG/raw.gz" | cut -d' ' -f1)"
  expect_term 0 "$SUCCESS"
  assert_same_as_qemu "$IMG/source.raw" "$R/data/disk.img" raw
  log_has "Checksum verification passed: sha256:"
}

t_checksum_mismatch() {
  pod_root
  echo "an older import" > "$R/data/disk.img"
  local wrong got
  wrong=$(printf 'not it' | sha256sum | cut -d' ' -f1)
  got=$(sha256sum "$IMG/raw.gz" | cut -d' ' -f1)
  pod IMPORTER_ENDPOINT="$H/raw.gz" IMPORTER_CHECKSUM="sha256:$wrong"
  expect_term 0 "{\"message\":\"Unable to process data: Unable to transfer source data to scratch space: checksum validation failed: checksum mismatch: expected sha256:$wrong, calculated sha256:$got\"}"
  [[ ! -e $R/data/disk.img ]] || fail "disk.img not deleted after a checksum mismatch"
  [[ -z $(ls -A "$R/data") ]] || fail "leftovers in /data: $(ls -A "$R/data")"
}

t_checksum_mismatch_archive() {
  pod_root
  local wrong got
  wrong=$(printf 'not it' | md5sum | cut -d' ' -f1)
  got=$(md5sum "$IMG/archive.tar" | cut -d' ' -f1)
  pod IMPORTER_ENDPOINT="$H/archive.tar" IMPORTER_CONTENTTYPE=archive IMPORTER_CHECKSUM="md5:$wrong"
  expect_term 0 "{\"message\":\"Unable to process data: Unable to transfer source data to target directory: checksum validation failed: checksum mismatch: expected md5:$wrong, calculated md5:$got\"}"
  [[ -d $R/data && -z $(ls -A "$R/data") ]] || fail "/data not emptied: $(ls -A "$R/data")"
}

t_invalid_checksum() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" IMPORTER_CHECKSUM="sha256:abc"
  expect_term 1 "Unable to connect to http data source: invalid checksum: invalid sha256 hash length: expected 64 hex characters, got 3"
}

t_invalid_preallocation() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" PREALLOCATION=maybe
  expect_no_term 1
  log_has 'the PREALLOCATION environment variable is with a wrong value "maybe"; should be "true" or "false"'
  [[ ! -e $R/data/disk.img ]] || fail "imported despite a bad PREALLOCATION"
}

t_invalid_size() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/raw.gz" IMPORTER_IMAGE_SIZE=12parsecs
  expect_term 1 'Invalid IMPORTER_IMAGE_SIZE "12parsecs": '"$INVALID_SIZE_REASON"
  [[ ! -e $R/data/disk.img ]] || fail "imported despite a bad size"
}

t_unknown_source() {
  pod_root
  pod IMPORTER_SOURCE=glance IMPORTER_ENDPOINT="$H/raw.gz"
  expect_term 1 "Unknown data source: glance"
  pod IMPORTER_SOURCE=imageio IMPORTER_ENDPOINT="$H/raw.gz"
  expect_term 1 'Unable to connect to imageio data source: unsupported source "imageio": this importer supports http, s3, gcs, registry and none; use CDI'"'"'s own importer image (quay.io/kubevirt/cdi-importer) for imageio and vddk'
  pod IMPORTER_SOURCE=vddk IMPORTER_ENDPOINT="$H/bucket/raw.gz"
  expect_term 1 'Unable to connect to vddk data source: unsupported source "vddk": this importer supports http, s3, gcs, registry and none; use CDI'"'"'s own importer image (quay.io/kubevirt/cdi-importer) for imageio and vddk'
}

t_http_404() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/missing.img"
  expect_term 1 "Unable to connect to http data source: HTTP 404 Not Found for $H/missing.img"
  [[ -z $(ls -A "$R/data") ]] || fail "leftovers in /data"
}

t_scratch_required_then_scratch() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/stream.vmdk.gz" IMPORTER_DONE_FILE=/shared/done
  expect_term 0 '{"scratchSpaceRequired":true,"preallocationApplied":false,"message":"Import Complete"}'
  [[ -f $R/shared/done ]] || fail "done file not created in the scratch-required case"
  [[ ! -e $R/data/disk.img ]] || fail "disk.img written although scratch was required"
  # the controller then adds a scratch volume and runs the pod again
  mkdir "$R/scratch"
  rm -f "$R/shared/done" "$R/dev/termination-log"
  pod IMPORTER_ENDPOINT="$H/stream.vmdk.gz" IMPORTER_DONE_FILE=/shared/done
  expect_term 0 "$SUCCESS"
  assert_same_as_qemu "$IMG/source.raw" "$R/data/disk.img" raw
}

t_https_cert_dir_headers_auth() {
  pod_root
  mkdir -p "$R/certs" "$R/extraheaders/0"
  cp "$SRV/nginx/certs/ca.crt" "$R/certs/ca.crt"
  echo "X-Secret: tok-123" > "$R/extraheaders/0/secret"
  pod IMPORTER_ENDPOINT="$HS/auth/qcow2.xz" IMPORTER_CERT_DIR=/certs IMPORTER_EXTRA_HEADER_0="X-Test: hello" \
    IMPORTER_ACCESS_KEY_ID="$HTUSER" IMPORTER_SECRET_KEY="$HTPASS"
  expect_term 0 "$SUCCESS"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$R/data/disk.img"
  grep -q "\"GET /auth/qcow2.xz HTTP/1.1\" 200 .*user=\"$HTUSER\".*xtest=\"hello\" xsecret=\"tok-123\"" "$SRV/nginx/access.log" ||
    fail "auth or extra headers missing: $(tail -n 2 "$SRV/nginx/access.log")"
  # the same server without the CA: a TLS failure, reported as CDI's connect error
  rm -f "$R/dev/termination-log" "$R/data/disk.img"
  pod IMPORTER_ENDPOINT="$HS/qcow2.xz"
  ((LAST_RC == 1)) || fail "untrusted TLS: exit $LAST_RC"
  grep -q "^Unable to connect to http data source: " "$R/dev/termination-log" || fail "$(cat "$R/dev/termination-log")"
}

t_metrics_progress() {
  pod_root
  local port
  port=$(_free_port)
  pod_bg() {
    env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN="127.0.0.1:$port" CDI_IMPORT_METRICS_LINGER=3 \
      IMPORTER_SOURCE=http IMPORTER_CONTENTTYPE=kubevirt IMPORTER_ENDPOINT="http://127.0.0.1:$FAULT_PORT/slow/1024/random3m.raw" \
      FILESYSTEM_OVERHEAD=0.06 PREALLOCATION=false OWNER_UID=0a1b-uid \
      timeout -k 5 60 "$POD" -v=1 2> "$W/_meta/err"
  }
  pod_bg &
  local pid=$! values=() v i
  for i in $(seq 1 120); do
    v=$(curl -sk --max-time 2 "https://127.0.0.1:$port/metrics" |
        sed -nE 's/^kubevirt_cdi_import_progress_total\{ownerUID="0a1b-uid"\} ([0-9]{1,3}\.?[0-9]*)$/\1/p') || true
    [[ -n $v ]] && values+=("$v")
    [[ $v == 100 ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  wait "$pid" || fail "importer failed: $(cat "$W/_meta/err")"
  echo "progress seen: ${values[*]}" >&2
  ((${#values[@]} >= 4)) || fail "too few scrapes: ${values[*]}"
  [[ ${values[-1]} == 100 ]] || fail "progress did not end at 100: ${values[*]}"
  local prev=0 mid=0
  for v in "${values[@]}"; do
    awk -v a="$prev" -v b="$v" 'BEGIN { exit !(b + 0 >= a + 0) }' || fail "progress went down: ${values[*]}"
    awk -v b="$v" 'BEGIN { exit !(b > 0 && b < 100) }' && mid=1
    prev=$v
  done
  ((mid)) || fail "no intermediate value: ${values[*]}"
  cmp "$DOC/random3m.raw" "$R/data/disk.img" >&2 || fail "image differs"
}

t_cli_metrics_listen() {
  local port
  port=$(_free_port)
  timeout -k 5 60 "$CDI" import --progress none --metrics-listen "127.0.0.1:$port" --metrics-owner-uid cli-uid \
    --url "http://127.0.0.1:$FAULT_PORT/slow/1024/random3m.raw" --dest "$W/dest/disk.raw" 2> "$W/_meta/err" &
  local pid=$! v="" i
  for i in $(seq 1 60); do
    v=$(curl -sk --max-time 2 "https://127.0.0.1:$port/" | grep -E '^kubevirt_cdi_import_progress_total\{ownerUID="cli-uid"\} [0-9]{1,3}' || true)
    [[ -n $v ]] && break
    sleep 0.2
  done
  wait "$pid" || fail "import failed: $(cat "$W/_meta/err")"
  [[ -n $v ]] || fail "no metric served in CLI mode"
  cmp "$DOC/random3m.raw" "$W/dest/disk.raw" >&2 || fail "image differs"
}

t_subcommand_entry_point() {
  pod_root
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" CDI_IMPORT_METRICS_LISTEN=off IMPORTER_SOURCE=none IMPORTER_IMAGE_SIZE=1Mi \
    PREALLOCATION=false timeout 30 "$CDI" pod-importer -v=2 -logtostderr 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  expect_term 0 '{"preallocationApplied":false,"message":"Import Complete"}'
}

# --- upload server in pod mode (cdi-uploadserver) ---------------------------------------------

UPSRV=$(dirname "$CDI")/cdi-uploadserver
if [[ ! -x $UPSRV ]]; then ln -s "$CDI" "$T/cdi-uploadserver"; UPSRV=$T/cdi-uploadserver; fi

# upload_certs DIR: ca.crt, tls.crt/tls.key (127.0.0.1), client certs CN upload-proxy and intruder.
upload_certs() {
  cert_ca "$1" ca &&
    cert_leaf "$1" tls localhost ca server &&
    cert_leaf "$1" proxy upload-proxy ca client &&
    cert_leaf "$1" intruder intruder ca client
}

# upsrv_start VAR=VALUE...: cdi-uploadserver in the background with CDI's environment; sets UP_PID, UP_PORT.
upsrv_start() {
  UP_PORT=$(_free_port)
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" LISTEN_ADDRESS=127.0.0.1 LISTEN_PORT="$UP_PORT" DESTINATION=/data/disk.img \
    TLS_CERT_FILE=/etc/tls/tls.crt TLS_KEY_FILE=/etc/tls/tls.key CLIENT_CERT_FILE=/etc/tls/ca.crt \
    CLIENT_NAME=upload-proxy UPLOAD_IMAGE_SIZE=128Mi FILESYSTEM_OVERHEAD=0.06 PREALLOCATION=false "$@" \
    timeout -k 5 60 "$UPSRV" -v=1 2> "$W/_meta/err" &
  UP_PID=$!
  register_pid "$UP_PID"
  local i
  for i in $(seq 100); do
    grep -q "Upload server listening on port" "$W/_meta/err" && return 0
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$W/_meta/err" >&2
  fail "cdi-uploadserver did not start"
}

t_upload_server_env_tls_cn() {
  pod_root
  upload_certs "$R/etc/tls"
  upsrv_start
  local c=$R/etc/tls url="https://127.0.0.1:$UP_PORT" code
  [[ $(curl -s --cacert "$c/ca.crt" "$url/healthz") == OK ]] || fail "healthz"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$c/ca.crt" --cert "$c/intruder.crt" --key "$c/intruder.key" \
    --data-binary @"$IMG/qcow2.xz" "$url/v1beta1/upload")
  [[ $code == 401 ]] || fail "wrong client CN: HTTP $code, expected 401"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$c/ca.crt" --data-binary @"$IMG/qcow2.xz" "$url/v1beta1/upload")
  [[ $code == 401 ]] || fail "no client certificate: HTTP $code, expected 401"
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$c/ca.crt" --cert "$c/proxy.crt" --key "$c/proxy.key" \
    --data-binary @"$IMG/qcow2.xz" "$url/v1beta1/upload")
  [[ $code == 200 ]] || fail "upload: HTTP $code"
  set +e; wait "$UP_PID"; LAST_RC=$?; set -e
  expect_term 0 '{"preallocationApplied":false,"message":"Upload Complete"}'
  assert_raw_prefix "$IMG/qcow2-v3.qcow2" "$R/data/disk.img" $((120 * MIB))
}

t_upload_server_deadline() {
  pod_root
  upload_certs "$R/etc/tls"
  upsrv_start DEADLINE="$(date -u -d '+2 seconds' +%Y-%m-%dT%H:%M:%SZ)"
  set +e; wait "$UP_PID"; LAST_RC=$?; set -e
  expect_term 0 '{"deadlinePassed":true,"message":"Deadline Passed"}'
  [[ ! -e $R/data/disk.img ]] || fail "disk.img written"
}

t_upload_server_no_tls() {
  pod_root
  set +e
  env -i PATH="$PATH" CDI_IMPORT_ROOT="$R" LISTEN_PORT=1 timeout 20 "$UPSRV" 2> "$W/_meta/err"
  LAST_RC=$?
  set -e
  expect_no_term 1
  log_has "Error getting TLS config: invalid TLS config"
}

# The exact reason text of util::parse_quantity for "12parsecs" (asserted byte for byte above).
INVALID_SIZE_REASON=$(env -i "$CDI" --url /dev/null --dest /dev/null --image-size 12parsecs 2>&1 | sed -n 's/^cdi-import: error: --image-size: //p')

run_test filesystem_overhead_resize t_filesystem_overhead_resize
run_test filesystem_no_request_no_resize t_filesystem_no_request_no_resize
run_test preallocated_import t_preallocated_import
run_test block_target t_block_target
run_test archive_into_data t_archive_into_data
run_test blank_filesystem t_blank_filesystem
run_test blank_filesystem_preallocated t_blank_filesystem_preallocated
run_test blank_block t_blank_block
run_test node_pull_handshake t_node_pull_handshake
run_test node_pull_timeout t_node_pull_timeout
run_test checksum_ok t_checksum_ok
run_test checksum_mismatch t_checksum_mismatch
run_test checksum_mismatch_archive t_checksum_mismatch_archive
run_test invalid_checksum t_invalid_checksum
run_test invalid_preallocation t_invalid_preallocation
run_test invalid_size t_invalid_size
run_test unknown_source t_unknown_source
run_test http_404 t_http_404
run_test scratch_required_then_scratch t_scratch_required_then_scratch
run_test https_cert_dir_headers_auth t_https_cert_dir_headers_auth
run_test metrics_progress t_metrics_progress
run_test cli_metrics_listen t_cli_metrics_listen
run_test subcommand_entry_point t_subcommand_entry_point
run_test upload_server_env_tls_cn t_upload_server_env_tls_cn
run_test upload_server_deadline t_upload_server_deadline
run_test upload_server_no_tls t_upload_server_no_tls
finish
