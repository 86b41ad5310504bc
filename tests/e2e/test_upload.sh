#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The upload server (`cdi-import upload-server`) driven by the real curl over HTTP and HTTPS
# (private CA made here, client certificates with CN checks), into files and loop devices, each
# result compared with qemu-img convert, the server's --scratch-dir on a tmpfs that must stay
# empty. Faults curl cannot produce on demand (disconnect mid-body, held uploads, chunked bodies
# with odd chunk sizes) come from tests/support/upload_client.py.
source "$(dirname "$0")/lib.sh"
CLIENT="/usr/bin/python3 $(cd "$E2E_DIR/../support" && pwd)/upload_client.py"

# --- certificates: a private CA, the server's cert, client certs (right CN, wrong CN, other CA) ---
CERTS=$T/certs
make_certs() {
  cert_ca "$CERTS" ca &&
    cert_ca "$CERTS" other-ca &&
    cert_leaf "$CERTS" server localhost ca server &&
    cert_leaf "$CERTS" client client ca client &&
    cert_leaf "$CERTS" wrongcn intruder ca client &&
    cert_leaf "$CERTS" otherca client other-ca client
}
make_certs || { echo "making certificates failed" >&2; exit 1; }

# --- the server under test -------------------------------------------------------------------

# srv_start TRANSPORT ARGS...: starts the upload server (TRANSPORT http, or https with client-cert
# auth for CN "client") on a kernel-chosen port with --scratch-dir on a fresh 64 MiB tmpfs watched
# every 20 ms. Sets SRV_PID, PORT, BASE and CURL_TLS (curl arguments for the transport).
srv_start() {
  local transport=$1
  shift
  local tls=()
  CURL_TLS=()
  BASE=http://127.0.0.1
  if [[ $transport == https ]]; then
    tls=(--tls-cert "$CERTS/server.crt" --tls-key "$CERTS/server.key" --client-ca "$CERTS/ca.crt" --client-name client)
    CURL_TLS=(--cacert "$CERTS/ca.crt" --cert "$CERTS/client.crt" --key "$CERTS/client.key")
    BASE=https://localhost
  else
    tls=(--insecure-http)
  fi
  SCRATCH=$W/_meta/scratchfs
  make_tmpfs "$SCRATCH" 64m
  : > "$W/_meta/srv.err"
  timeout -k 5 "$CMD_TIMEOUT" "$CDI" upload-server --listen 127.0.0.1:0 --scratch-dir "$SCRATCH" "${tls[@]}" \
    --progress json -v "$@" > "$W/_meta/srv.out" 2> "$W/_meta/srv.err" &
  SRV_PID=$!
  register_pid "$SRV_PID"
  echo "\$ cdi-import upload-server ${tls[*]} $* (pid $SRV_PID)" >&2
  wait_server_port "$W/_meta/srv.err" "$SRV_PID"
  BASE=$BASE:$PORT
  # scratch watcher: runs until the server exits, leaves the peak usage in _meta/scratch.peak
  (
    base=$(df --output=used -B1 "$SCRATCH" | tail -n 1)
    peak=0
    while kill -0 "$SRV_PID" 2>/dev/null; do
      used=$(df --output=used -B1 "$SCRATCH" | tail -n 1)
      ((used - base > peak)) && peak=$((used - base))
      sleep 0.02
    done
    echo "$peak" > "$W/_meta/scratch.peak"
  ) &
  WATCH_PID=$!
}

# srv_wait [RC]: the server must exit (within 60 s) with RC (default 0); scratch stayed empty
# unless ALLOW_SCRATCH=1.
srv_wait() {
  local want=${1:-0} rc=0 i
  for i in $(seq 1200); do
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.05
  done
  wait "$SRV_PID" || rc=$?
  wait "$WATCH_PID" || true
  echo "  server exit $rc, scratch peak $(cat "$W/_meta/scratch.peak") bytes" >&2
  ((rc == want)) || { tail -n 20 "$W/_meta/srv.err" >&2; fail "upload server exited $rc, expected $want"; }
  if [[ ${ALLOW_SCRATCH:-0} != 1 ]]; then
    (($(cat "$W/_meta/scratch.peak") == 0)) || fail "scratch was used: $(cat "$W/_meta/scratch.peak") bytes"
  fi
  [[ -z $(ls -A "$SCRATCH") ]] || fail "scratch not empty after the run"
}

# up ROUTE [CURL ARGS...]: curl against the server; sets CODE, the body is in _meta/body.
up() {
  local route=$1
  shift
  CODE=$(curl -sS --max-time 60 -o "$W/_meta/body" -w '%{http_code}' "${CURL_TLS[@]}" "$@" "$BASE$route" || true)
  echo "  curl $route $* -> $CODE $(head -c 300 "$W/_meta/body")" >&2
}

# expect_code WANT: the last `up` answered WANT.
expect_code() {
  [[ $CODE == "$1" ]] || { tail -n 20 "$W/_meta/srv.err" >&2; fail "HTTP $CODE, expected $1 ($(head -c 300 "$W/_meta/body"))"; }
}

# post_image ROUTE FILE [CURL ARGS...]: uploads FILE the way the route wants (raw body streamed, or a form).
post_image() {
  local route=$1 file=$2
  shift 2
  case $route in
    *upload-form*) up "$route" -F "file=@$file" "$@" ;;
    *) up "$route" -T "$file" -X POST -H "Content-Type: application/octet-stream" "$@" ;;
  esac
}

# --- the matrix: sync and async, HTTP and HTTPS, file and loop device -----------------------

# cell TRANSPORT ROUTE TARGET IMAGE REFERENCE [QEMU_FORMAT]
cell() {
  local transport=$1 route=$2 target=$3 image=$4 ref=$5 fmt=${6:-}
  local dest
  if [[ $image == archive.tar ]]; then
    dest=$W/dest/tree
    mkdir -p "$W/_meta/expected" "$dest"
    tar -C "$W/_meta/expected" -xf "$IMG/archive.tar"
  elif [[ $target == block ]]; then
    require_root
    fill_ff "$W/_meta/blk.img" $((80 * MIB))
    dest=$(make_loop "$W/_meta/blk.img")
  else
    dest=$W/dest/disk.raw
  fi
  srv_start "$transport" --dest "$dest"
  post_image "$route" "$IMG/$image"
  expect_code 200
  srv_wait 0
  grep -q "upload complete" "$W/_meta/srv.err" || fail "no success line"
  grep -q '^{.*}$' "$W/_meta/srv.err" || fail "no JSON progress line"
  if [[ $image == archive.tar ]]; then
    diff -r --no-dereference "$W/_meta/expected" "$dest" >&2 || fail "extracted tree differs from tar -x"
  elif [[ $target == block ]]; then
    qemu-img convert -q ${fmt:+-f "$fmt"} -O raw "$IMG/$ref" "$W/_meta/expected.raw"
    same_content "$dest" "$W/_meta/expected.raw" || fail "$dest does not read back as qemu-img convert of $ref"
  else
    assert_same_as_qemu "$IMG/$ref" "$dest" "$fmt"
    [[ $(ls -A "$W/dest") == disk.raw ]] || fail "unexpected files in dest: $(ls -A "$W/dest")"
  fi
}

for transport in http https; do
  for target in file block; do
    for mode in sync async; do
      route=/v1beta1/upload
      [[ $mode == async ]] && route=/v1beta1/upload-async
      name=${transport}_${target}_${mode}
      run_test "${name}_raw" cell $transport $route $target source.raw source.raw raw
      run_test "${name}_raw_xz" cell $transport $route $target raw.xz source.raw raw
      run_test "${name}_raw_gz" cell $transport $route $target raw.gz source.raw raw
      run_test "${name}_qcow2" cell $transport $route $target qcow2-v3.qcow2 qcow2-v3.qcow2
      run_test "${name}_qcow2_gz" cell $transport $route $target qcow2.gz qcow2-v3.qcow2
      run_test "${name}_qcow2_xz" cell $transport $route $target qcow2.xz qcow2-v3.qcow2
    done
  done
  run_test "${transport}_archive_tar" cell $transport /v1beta1/upload-archive file archive.tar -
  run_test "${transport}_form_qcow2_xz" cell $transport /v1beta1/upload-form file qcow2.xz qcow2-v3.qcow2
  run_test "${transport}_form_async_raw_gz" cell $transport /v1alpha1/upload-form-async file raw.gz source.raw raw
done
run_test v1alpha1_sync_raw_zst cell http /v1alpha1/upload file raw.zst source.raw raw
run_test v1alpha1_async_qcow2_gz cell http /v1alpha1/upload-async file qcow2.gz qcow2-v3.qcow2

# --- routes and the gate -----------------------------------------------------------------------

t_routes() {
  srv_start http --dest "$W/dest/disk.raw"
  up /healthz; expect_code 200
  grep -qx OK "$W/_meta/body" || fail "healthz body"
  up /healthz -X POST -d x; expect_code 200
  local r
  for r in upload upload-async upload-archive upload-form upload-form-async; do
    up "/v1beta1/$r"; expect_code 404                       # GET
    up "/v1alpha1/$r" -X PUT -d x; expect_code 404
  done
  up /v1beta1/upload-async -I; expect_code 200              # HEAD: capability probe
  up /v1beta1/upload-form-async -I; expect_code 200
  up /v1beta1/upload -I; expect_code 404
  up /v1beta1/nothing -X POST -d x; expect_code 404
  up /v1beta2/upload -X POST -d x; expect_code 404
  # a clone body must be snappy-framed (tests/e2e/test_clone_target.sh has the real clones)
  up /v1beta1/upload -X POST -H "x-cdi-content-type: blockdevice-clone" --data-binary "@$IMG/raw.gz"; expect_code 500
  grep -q "^Saving stream failed: .*snappy" "$W/_meta/body" || fail "non-snappy clone body not explained"
  up /v1beta1/upload-async -X POST -H "x-cdi-content-type: filesystem-clone" --data-binary "@$IMG/raw.gz"; expect_code 500
  grep -qx "Saving stream failed: async clone not supported" "$W/_meta/body" || fail "async clone refusal not explained"
  [[ -z $(ls -A "$W/dest") ]] || fail "files in dest"
  post_image /v1beta1/upload "$IMG/qcow2.gz"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
run_test routes_get_404_head_200_healthz t_routes

t_busy_503_then_done_409() {
  srv_start http --dest "$W/dest/disk.raw" --linger 2
  $CLIENT hold "$BASE/v1beta1/upload" "$IMG/source.raw" $((8 * MIB)) "$W/_meta/go" > "$W/_meta/held" &
  local held=$!
  local i
  for i in $(seq 200); do
    grep -q "admitted" "$W/_meta/srv.err" && break
    sleep 0.05
  done
  local r
  for r in upload upload-async upload-archive upload-form upload-form-async; do
    if [[ $r == upload-form* ]]; then up "/v1beta1/$r" -F "file=@$IMG/raw.gz"; else up "/v1beta1/$r" -X POST --data-binary "@$IMG/raw.gz"; fi
    expect_code 503
  done
  touch "$W/_meta/go"
  wait "$held"
  echo "  held upload: $(cat "$W/_meta/held")" >&2
  [[ $(cut -d' ' -f1 "$W/_meta/held") == 200 ]] || fail "held upload answered $(cat "$W/_meta/held")"
  for r in upload upload-async upload-form; do
    if [[ $r == upload-form* ]]; then up "/v1beta1/$r" -F "file=@$IMG/raw.gz"; else up "/v1beta1/$r" -X POST --data-binary "@$IMG/raw.gz"; fi
    expect_code 409
  done
  srv_wait 0
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
run_test busy_503_then_done_409 t_busy_503_then_done_409

# --- client certificates -------------------------------------------------------------------------

t_client_cert_auth() {
  srv_start https --dest "$W/dest/disk.raw"
  local right=("${CURL_TLS[@]}")
  CURL_TLS=(--cacert "$CERTS/ca.crt")
  up /healthz; expect_code 200                              # no cert needed for the probe
  post_image /v1beta1/upload "$IMG/raw.gz"; expect_code 401 # no client certificate
  CURL_TLS=(--cacert "$CERTS/ca.crt" --cert "$CERTS/wrongcn.crt" --key "$CERTS/wrongcn.key")
  post_image /v1beta1/upload "$IMG/raw.gz"; expect_code 401 # wrong CN
  post_image /v1beta1/upload-form "$IMG/raw.gz"; expect_code 401
  CURL_TLS=(--cacert "$CERTS/ca.crt" --cert "$CERTS/otherca.crt" --key "$CERTS/otherca.key")
  post_image /v1beta1/upload "$IMG/raw.gz"                  # right CN, untrusted issuer: handshake refused
  [[ $CODE != 200 ]] || fail "a certificate from another CA was accepted"
  [[ ! -e $W/dest/disk.raw ]] || fail "a refused upload wrote the target"
  CURL_TLS=("${right[@]}")
  post_image /v1beta1/upload "$IMG/raw.gz"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "refused (401)" "$W/_meta/srv.err" || fail "the 401s were not logged"
}
run_test client_cert_right_cn_wrong_cn_no_cert t_client_cert_auth

t_tls_min_version() {
  srv_start https --dest "$W/dest/disk.raw" --tls-min-version VersionTLS13 --tls-ciphers "ECDHE-ECDSA-AES128-GCM-SHA256"
  post_image /v1beta1/upload "$IMG/raw.gz" --tls-max 1.2
  [[ $CODE == 000 ]] || fail "a TLS 1.2 client was served ($CODE) with --tls-min-version VersionTLS13"
  post_image /v1beta1/upload "$IMG/raw.gz" --tlsv1.3; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
run_test tls_min_version_13 t_tls_min_version

t_no_tls_refused() {
  cdi upload-server --listen 127.0.0.1:0 --dest "$W/dest/disk.raw"
  check_error 1
  assert_error_matches "without TLS.*--insecure-http"
  cdi upload-server --listen 127.0.0.1:0 --dest "$W/dest/disk.raw" --tls-cert "$CERTS/server.crt" --tls-key "$CERTS/client.key"
  check_error 1
  assert_error_matches "TLS key .*(mismatch|does not match)"
  [[ -z $(ls -A "$W/dest") ]] || fail "files in dest"
}
run_test no_tls_refused_bad_key_refused t_no_tls_refused

# --- faults ------------------------------------------------------------------------------------

t_disconnect_then_retry() {
  srv_start http --dest "$W/dest/disk.raw"
  $CLIENT disconnect "$BASE/v1beta1/upload" "$IMG/source.raw" $((20 * MIB))
  local i
  for i in $(seq 200); do
    grep -q "upload failed" "$W/_meta/srv.err" && break
    sleep 0.05
  done
  grep -q "upload failed (.*ended early" "$W/_meta/srv.err" || fail "the disconnect was not seen"
  [[ -z $(ls -A "$W/dest") ]] || fail "a broken upload left $(ls -A "$W/dest")"
  kill -0 "$SRV_PID" || fail "the server died"
  $CLIENT disconnect "$BASE/v1beta1/upload-async" "$IMG/qcow2.xz" 100000
  sleep 0.3
  [[ -z $(ls -A "$W/dest") ]] || fail "a broken upload left $(ls -A "$W/dest")"
  post_image /v1beta1/upload "$IMG/qcow2.xz"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
run_test disconnect_mid_upload_then_retry t_disconnect_then_retry

t_disconnect_block_then_retry() {
  require_root
  fill_ff "$W/_meta/blk.img" $((80 * MIB))
  local dev
  dev=$(make_loop "$W/_meta/blk.img")
  srv_start http --dest "$dev"
  $CLIENT disconnect "$BASE/v1beta1/upload" "$IMG/source.raw" $((20 * MIB))
  local i
  for i in $(seq 200); do
    grep -q "upload failed" "$W/_meta/srv.err" && break
    sleep 0.05
  done
  # a broken upload must not look like a disk: the first MiB is not the image's
  cmp -s -n $MIB "$dev" "$IMG/source.raw" && fail "the device looks complete after a broken upload"
  post_image /v1beta1/upload "$IMG/raw.gz"; expect_code 200
  srv_wait 0
  same_content "$dev" "$IMG/source.raw" || fail "device differs"
}
run_test disconnect_block_then_retry t_disconnect_block_then_retry

t_form_without_file() {
  srv_start http --dest "$W/dest/disk.raw"
  up /v1beta1/upload-form -F "image=@$IMG/raw.gz" -F "name=x"; expect_code 400
  grep -q "no part named 'file'" "$W/_meta/body" || fail "body does not name the missing part"
  [[ -z $(ls -A "$W/dest") ]] || fail "files in dest"
  up /v1beta1/upload-form -X POST --data-binary "@$IMG/raw.gz"; expect_code 400   # not multipart
  post_image /v1beta1/upload-form "$IMG/raw.gz"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
run_test form_without_file_400_then_good t_form_without_file

t_too_large() {
  srv_start http --dest "$W/dest/disk.raw" --image-size 32Mi
  local f
  for f in raw.xz qcow2-v3.qcow2 source.raw; do
    post_image /v1beta1/upload "$IMG/$f"; expect_code 400
    grep -q "^Saving stream failed: effective image size is larger than the reported available storage: " "$W/_meta/body" \
      || fail "not CDI's wording: $(cat "$W/_meta/body")"
    [[ -z $(ls -A "$W/dest") ]] || fail "files in dest after $f"
  done
  post_image /v1beta1/upload-async "$IMG/qcow2.gz"; expect_code 400
  kill -0 "$SRV_PID" || fail "the server died"
  # SIGTERM to cdi-import itself (the `timeout` wrapper would signal its process group as well,
  # and a second signal kills at once by design)
  kill -TERM $(cat "/proc/$SRV_PID/task/$SRV_PID/children")
  srv_wait 130
  [[ -z $(ls -A "$W/dest") ]] || fail "files in dest"
}
run_test image_larger_than_image_size_400 t_too_large

t_checksum() {
  srv_start http --dest "$W/dest/disk.raw"
  local good bad f
  bad=$(printf 'not the image' | sha256sum | cut -d' ' -f1)
  for f in raw.xz qcow2-v3.qcow2 qcow2.gz; do
    local route=/v1beta1/upload
    up "$route" -T "$IMG/$f" -X POST -H "X-Checksum: sha256:$bad"; expect_code 400
    grep -q "checksum mismatch: expected sha256:$bad, calculated sha256:$(sha256sum "$IMG/$f" | cut -d' ' -f1)" "$W/_meta/body" \
      || fail "no mismatch text: $(cat "$W/_meta/body")"
    [[ -z $(ls -A "$W/dest") ]] || fail "a mismatching upload was kept: $(ls -A "$W/dest")"
  done
  up /v1beta1/upload -T "$IMG/raw.xz" -X POST -H "X-Checksum: sha257:abc"; expect_code 400
  grep -q "unsupported hash algorithm" "$W/_meta/body" || fail "bad X-Checksum not explained"
  good=$(md5sum "$IMG/qcow2.xz" | cut -d' ' -f1)
  up /v1beta1/upload -T "$IMG/qcow2.xz" -X POST -H "X-Checksum: MD5:$good"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
run_test checksum_mismatch_400_then_good t_checksum

t_checksum_async_sha512() {
  srv_start http --dest "$W/dest/disk.raw"
  local bad
  bad=$(printf x | sha512sum | cut -d' ' -f1)
  up /v1beta1/upload-async -T "$IMG/raw.gz" -X POST -H "X-Checksum: sha512:$bad"; expect_code 400
  [[ -z $(ls -A "$W/dest") ]] || fail "a mismatching upload was kept"
  up /v1beta1/upload-form-async -F "file=@$IMG/raw.gz" -H "X-Checksum: sha1:$(sha1sum "$IMG/raw.gz" | cut -d' ' -f1)"
  expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
run_test checksum_async_and_form t_checksum_async_sha512

t_chunked() {
  srv_start http --dest "$W/dest/disk.raw"
  local out
  out=$($CLIENT chunked "$BASE/v1beta1/upload" "$IMG/qcow2.gz")
  echo "  chunked: $out" >&2
  [[ $out == 200* ]] || fail "chunked upload answered $out"
  srv_wait 0
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
run_test chunked_body_odd_chunks t_chunked

t_vmdk_spools() {
  ALLOW_SCRATCH=1
  srv_start http --dest "$W/dest/disk.raw"
  post_image /v1beta1/upload-async "$IMG/stream.vmdk"; expect_code 200
  srv_wait 0
  assert_same_as_qemu "$IMG/stream.vmdk" "$W/dest/disk.raw"
}
run_test vmdk_stream_spools_to_scratch t_vmdk_spools

t_async_failure_after_reply() {
  # vmdk: the 200 comes after spooling and qemu-img validation; the conversion then runs out of
  # space on a 2 MiB target filesystem: the server exits 1 and leaves nothing behind.
  ALLOW_SCRATCH=1
  make_tmpfs "$W/dest/small" 2m
  srv_start http --dest "$W/dest/small/disk.raw"
  post_image /v1beta1/upload-async "$IMG/stream.vmdk"; expect_code 200
  srv_wait 1
  grep -q "^cdi-import: error: .*No space left on device" "$W/_meta/srv.err" || fail "no error line naming the cause"
  [[ -z $(ls -A "$W/dest/small") ]] || fail "a failed conversion left $(ls -A "$W/dest/small")"
}
run_test async_failure_after_reply_exits_1 t_async_failure_after_reply

t_deadline() {
  srv_start http --dest "$W/dest/disk.raw" --deadline "$(date -u -d '+1 second' +%Y-%m-%dT%H:%M:%SZ)"
  srv_wait 0
  grep -q "deadline passed" "$W/_meta/srv.err" || fail "no deadline message"
  [[ -z $(ls -A "$W/dest") ]] || fail "files in dest"
  cdi upload-server --insecure-http --dest "$W/dest/disk.raw" --deadline "tomorrow"
  check_error 2
}
run_test deadline_passed_exits_0 t_deadline

finish
