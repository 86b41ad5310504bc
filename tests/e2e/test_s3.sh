#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# S3 sources against a real S3 server, s3rver (npm, installed into the build tree on first use),
# behind tests/support/s3_verify_front.py, which recomputes every request's AWS Signature V4 with
# botocore's signer and refuses a mismatch (403 SignatureDoesNotMatch) — s3rver itself does not
# check V4 signatures. HTTP and HTTPS (private CA), path style; the CLI with AWS env vars and key
# files, pod mode with CDI's env. Every import is compared with qemu-img convert.
source "$(dirname "$0")/lib.sh"

command -v node > /dev/null && command -v npm > /dev/null || { echo "node/npm are needed (scripts/install-deps.sh)" >&2; exit 1; }
# Debian's python3-botocore (AWS's signer) judges the signatures: the system python, not another one on PATH.
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
"$PY" -c 'import botocore.auth' || { echo "python3-botocore is needed (scripts/install-deps.sh)" >&2; exit 1; }
NPM_DIR=$(cd "$IMG/.." && pwd)/s3rver-npm
if [[ ! -x $NPM_DIR/node_modules/.bin/s3rver ]]; then
  flock "$IMG/.lock" npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" s3rver@3 >&2 ||
    { echo "npm install s3rver failed" >&2; exit 1; }
fi
POD=$(dirname "$CDI")/cdi-importer
if [[ ! -x $POD ]]; then ln -s "$CDI" "$T/cdi-importer"; POD=$T/cdi-importer; fi

SRV=$T/srv
mkdir -p "$SRV/data" "$SRV/certs"
AK=AKIDCDIIMPORTTEST
SK='cdi/import+test secret'
S3PID= HPID= SPID=
trap 'for p in $S3PID $HPID $SPID; do kill "$p" 2>/dev/null; done; cleanup' EXIT

"$NPM_DIR/node_modules/.bin/s3rver" -d "$SRV/data" -a 127.0.0.1 -p 0 --configure-bucket disks --configure-bucket pub \
  > "$SRV/s3rver.log" 2>&1 &
S3PID=$!
for _ in $(seq 200); do
  S3PORT=$(grep -oE 'listening on 127.0.0.1:[0-9]+' "$SRV/s3rver.log" | head -n1 | sed 's/.*://' || true)
  [[ -n $S3PORT ]] && break
  sleep 0.05
done
[[ -n $S3PORT ]] || { cat "$SRV/s3rver.log" >&2; echo "s3rver did not start" >&2; exit 1; }

cert_ca "$SRV/certs" ca
cert_leaf "$SRV/certs" server localhost ca server
CA_DIR=$SRV/certs/cadir
mkdir -p "$CA_DIR" && cp "$SRV/certs/ca.crt" "$CA_DIR/"

# start_front LOGNAME [ARGS...]: a verifying front on a free port; sets PORT.
start_front() {
  local name=$1
  shift
  "$PY" "$E2E_DIR/../support/s3_verify_front.py" --upstream "$S3PORT" --key "$AK:$SK" \
    --region us-east-1 --region localhost --region 127 --public pub --log "$SRV/$name.log" "$@" > "$SRV/$name.out" 2>&1 &
  local pid=$!
  PORT=
  for _ in $(seq 200); do
    PORT=$(grep -soE 'listening on port [0-9]+' "$SRV/$name.out" | awk '{print $4}' || true)
    [[ -n $PORT ]] && break
    sleep 0.05
  done
  [[ -n $PORT ]] || { cat "$SRV/$name.out" >&2; echo "front $name did not start" >&2; exit 1; }
  FRONT_PID=$pid
}
start_front http --drop disks/drop.raw:$((20 * MIB))
HPORT=$PORT HPID=$FRONT_PID
start_front https --tls "$SRV/certs/server.crt" "$SRV/certs/server.key"
SPORT=$PORT SPID=$FRONT_PID

# Objects are put straight into s3rver (its own key, not checked).
put() {
  curl -sSf -o /dev/null -T "$1" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" --aws-sigv4 aws:amz:us-east-1:s3 \
    -u S3RVER:S3RVER "http://127.0.0.1:$S3PORT/$2" || { echo "upload of $2 failed" >&2; exit 1; }
}
for f in qcow2-v3.qcow2 raw.xz qcow2.gz qcow2.xz; do put "$IMG/$f" "disks/$f"; done
put "$IMG/source.raw" disks/drop.raw
put "$IMG/raw.xz" "disks/dir/with%20space%2Bplus.xz"
put "$IMG/qcow2.gz" pub/qcow2.gz

H=http://127.0.0.1:$HPORT
S=https://localhost:$SPORT
FAST=(--retries 3 --retry-max-time 20)
key_files() {
  printf '%s\n' "$AK" > "$W/_meta/ak"
  printf '%s\n' "$SK" > "$W/_meta/sk"
  echo --s3-access-key-file "$W/_meta/ak" --s3-secret-key-file "$W/_meta/sk"
}
reference() { case $1 in raw.xz|*.xz) echo "$IMG/source.raw raw" ;; *) echo "$IMG/qcow2-v3.qcow2" ;; esac; }
signed_requests() { grep -c "auth=signed -> pass" "$SRV/$1.log" || true; }

# --- the verifying front is real: botocore refuses what it did not sign ------------------------

t_front_rejects_bad_signature() {
  local code
  code=$(curl -s -o "$W/_meta/body" -w '%{http_code}' -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 aws:amz:us-east-1:s3 -u "$AK:wrong secret" "$H/disks/qcow2.gz")
  [[ $code == 403 ]] || fail "a wrong secret got HTTP $code"
  grep -q '<Code>SignatureDoesNotMatch</Code>' "$W/_meta/body" || fail "no SignatureDoesNotMatch: $(cat "$W/_meta/body")"
  code=$(curl -s -o "$W/_meta/obj" -w '%{http_code}' -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 aws:amz:us-east-1:s3 -u "$AK:$SK" "$H/disks/qcow2.gz")
  [[ $code == 200 ]] || fail "the right secret got HTTP $code"
  cmp "$W/_meta/obj" "$IMG/qcow2.gz" >&2 || fail "object differs"
  # a signed request replayed with its Range changed after signing is refused too
  local e3=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 auth date
  curl -s -v -o /dev/null -H "x-amz-content-sha256: $e3" -H "Range: bytes=0-9" \
    --aws-sigv4 aws:amz:us-east-1:s3 -u "$AK:$SK" "$H/disks/qcow2.gz" 2> "$W/_meta/v"
  auth=$(sed -n 's/^> Authorization: //p' "$W/_meta/v" | tr -d '\r')
  date=$(sed -n 's/^> X-Amz-Date: //p' "$W/_meta/v" | tr -d '\r')
  [[ -n $auth && -n $date ]] || fail "no signed request captured"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" -H "X-Amz-Date: $date" \
    -H "x-amz-content-sha256: $e3" -H "Range: bytes=0-9" "$H/disks/qcow2.gz")
  [[ $code == 206 ]] || fail "the replayed request as signed got HTTP $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" -H "X-Amz-Date: $date" \
    -H "x-amz-content-sha256: $e3" -H "Range: bytes=0-99" "$H/disks/qcow2.gz")
  [[ $code == 403 ]] || fail "a Range changed after signing got HTTP $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' "$H/disks/qcow2.gz")
  [[ $code == 403 ]] || fail "an anonymous read of a private bucket got HTTP $code"
}
run_test front_rejects_bad_signature t_front_rejects_bad_signature

# --- CLI: AWS env vars over HTTP, key files over HTTPS ------------------------------------------

t_cli_env() {
  local obj=$1 ref
  ref=($(reference "$obj"))
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    cdi --progress none --url "s3://disks/$obj" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "${ref[0]}" "$W/dest/disk.raw" "${ref[1]:-}"
}
for obj in qcow2-v3.qcow2 raw.xz qcow2.gz; do run_test "cli_env_http_$obj" t_cli_env "$obj"; done

t_qcow2_ranges_signed() {
  : > "$SRV/http.log"
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    cdi -v --progress none --url "s3://disks/qcow2-v3.qcow2" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  grep -q "random access by byte ranges" "$W/_meta/err" || { show_output; fail "the native qcow2 path did not read ranges"; }
  grep -q 'GET /disks/qcow2-v3.qcow2 range=bytes=0-[0-9]* if-match="[^"]*" auth=signed -> pass signed-headers=[^ ]*if-match;range' "$SRV/http.log" ||
    { cat "$SRV/http.log" >&2; fail "no signed, If-Match-pinned Range request"; }
}
run_test qcow2_random_access_signed t_qcow2_ranges_signed

t_no_nbdkit_for_signed() {
  # qemu-img reading in place would need nbdkit-curl with the keys on its command line: refused
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    expect_exit 10 --progress none --qcow2-decoder qemu-img --url "s3://disks/qcow2-v3.qcow2" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  grep -q "S3 requests are signed" "$W/_meta/err" || fail "the reason is not named"
  ! pgrep -f "nbdkit.*disks/qcow2-v3" > /dev/null || fail "nbdkit runs"
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    cdi --progress none --qcow2-decoder qemu-img --url "s3://disks/qcow2-v3.qcow2" --s3-endpoint "$H" \
    --scratch-dir "$W/scratch" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
run_test no_nbdkit_for_signed t_no_nbdkit_for_signed

t_cli_https_files() {
  local obj=$1 ref
  ref=($(reference "$obj"))
  # --source s3: CDI's endpoint form; the region comes from the host's first label ("localhost")
  cdi --progress none --source s3 --url "$S/disks/$obj" --cert-dir "$CA_DIR" $(key_files) --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "${ref[0]}" "$W/dest/disk.raw" "${ref[1]:-}"
}
for obj in qcow2-v3.qcow2 raw.xz qcow2.gz; do run_test "cli_https_keyfiles_$obj" t_cli_https_files "$obj"; done

t_info() {
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    cdi info --json "s3://disks/qcow2.gz" --s3-endpoint "$H"
  check_success
  jq -e '.format == "qcow2"' "$W/_meta/out" > /dev/null || { show_output; fail "info does not say qcow2"; }
}
run_test info_s3 t_info

t_key_with_specials() {
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
    cdi --progress none --url "s3://disks/dir/with space+plus.xz" --s3-endpoint "$H" --s3-region 127 --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
run_test key_with_specials t_key_with_specials

t_session_token() {
  # the token header is sent and signed (the front checks every signed header)
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_SESSION_TOKEN=tok-123 AWS_REGION=us-east-1 \
    cdi --progress none --url "s3://disks/qcow2.gz" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  grep -q 'GET /disks/qcow2.gz .*-> pass signed-headers=[^ ]*x-amz-security-token[^ ]* token=tok-123' "$SRV/http.log" ||
    { tail -n 5 "$SRV/http.log" >&2; fail "the session token was not sent signed"; }
}
run_test session_token t_session_token

t_anonymous_public() {
  cdi --progress none --url "s3://pub/qcow2.gz" --s3-endpoint "$H" --s3-region us-east-1 --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  expect_exit 7 --progress none --url "s3://disks/qcow2.gz" --s3-endpoint "$H" --dest "$W/dest/private.raw"
  grep -q "AccessDenied" "$W/_meta/err" || fail "error does not name AccessDenied"
}
run_test anonymous_public t_anonymous_public

# --- errors -----------------------------------------------------------------------------------

t_wrong_secret() {
  printf '%s\n' "$AK" > "$W/_meta/ak"
  printf 'not the secret\n' > "$W/_meta/sk"
  expect_exit 7 --progress none --url "s3://disks/qcow2.gz" --s3-endpoint "$H" --s3-region us-east-1 \
    --s3-access-key-file "$W/_meta/ak" --s3-secret-key-file "$W/_meta/sk" --dest "$W/dest/disk.raw"
  grep -q "SignatureDoesNotMatch" "$W/_meta/err" || fail "error does not name SignatureDoesNotMatch"
  grep -q "wrong secret key" "$W/_meta/err" || fail "error does not say wrong secret key"
  ! grep -q "not the secret" "$W/_meta/err" || fail "the secret is in the error"
  [[ ! -e $W/dest/disk.raw ]] || fail "a target was left"
}
run_test wrong_secret t_wrong_secret

t_unknown_key() {
  AWS_ACCESS_KEY_ID=AKIDUNKNOWN AWS_SECRET_ACCESS_KEY=$SK \
    expect_exit 7 --progress none --url "s3://disks/qcow2.gz" --s3-endpoint "$H" --s3-region us-east-1 --dest "$W/dest/disk.raw"
  grep -q "InvalidAccessKeyId" "$W/_meta/err" || fail "error does not name InvalidAccessKeyId"
}
run_test unknown_key t_unknown_key

t_missing() {
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    expect_exit 9 --progress none --url "s3://disks/nope.qcow2" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  grep -q "NoSuchKey" "$W/_meta/err" || fail "error does not name NoSuchKey"
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    expect_exit 9 --progress none --url "s3://nobucket/x.qcow2" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  grep -q "NoSuchBucket" "$W/_meta/err" || fail "error does not name NoSuchBucket"
}
run_test missing_object_and_bucket t_missing

t_clock_skew() {
  start_front skew --clock-offset 3600
  register_pid "$FRONT_PID"
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    expect_exit 7 --progress none --url "s3://disks/qcow2.gz" --s3-endpoint "http://127.0.0.1:$PORT" --dest "$W/dest/disk.raw"
  grep -q "RequestTimeTooSkewed.*clock skew" "$W/_meta/err" || fail "error does not name the clock skew"
}
run_test clock_skew t_clock_skew

t_bad_urls() {
  expect_exit 2 --progress none --url "s3://bucketonly" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  expect_exit 2 --progress none --url "$H/disks/qcow2.gz" --s3-region us-east-1 --dest "$W/dest/disk.raw"
}
run_test bad_urls t_bad_urls

t_drop_resumed() {
  local before
  before=$(grep -c "dropping disks/drop.raw" "$SRV/http.log" || true)
  AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 \
    cdi -v --progress none "${FAST[@]}" --url "s3://disks/drop.raw" --s3-endpoint "$H" --dest "$W/dest/disk.raw"
  check_success
  assert_same_bytes "$IMG/source.raw" "$W/dest/disk.raw"
  (($(grep -c "dropping disks/drop.raw" "$SRV/http.log") == before + 1)) || fail "the front did not drop the connection"
  grep -q "resuming at byte $((20 * MIB))" "$W/_meta/err" || { show_output; fail "no resume at the drop"; }
  grep -q "GET /disks/drop.raw range=bytes=$((20 * MIB))- .*auth=signed -> pass" "$SRV/http.log" ||
    fail "the resumed request was not a signed Range request"
}
run_test drop_resumed t_drop_resumed

# --- pod mode: CDI's env ----------------------------------------------------------------------

SUCCESS='{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}'
pod_root() {
  R=$W/root
  mkdir -p "$R/data" "$R/dev" "$R/certs"
  cp "$SRV/certs/ca.crt" "$R/certs/"
}
pod() { importer_pod IMPORTER_SOURCE=s3 "$@"; }
term() { cat "$R/dev/termination-log"; }

t_pod() {
  local endpoint=$1 obj=$2 ref
  ref=($(reference "$obj"))
  pod_root
  pod IMPORTER_ENDPOINT="$endpoint/disks/$obj" IMPORTER_ACCESS_KEY_ID="$AK" IMPORTER_SECRET_KEY="$SK" IMPORTER_CERT_DIR=/certs
  ((LAST_RC == 0)) || { show_output; fail "exit $LAST_RC"; }
  [[ $(term) == "$SUCCESS" ]] || { show_output; fail "termination log: $(term)"; }
  assert_same_as_qemu "${ref[0]}" "$R/data/disk.img" "${ref[1]:-}"
  ! grep -q "$SK" "$W/_meta/err" || fail "the secret is in the log"
}
# s3://host/bucket/key is HTTPS (region: the host's first label, "localhost")
run_test pod_s3_scheme_qcow2 t_pod "s3://localhost:$SPORT" qcow2-v3.qcow2
run_test pod_https_raw_xz t_pod "$S" raw.xz
run_test pod_http_qcow2_gz t_pod "$H" qcow2.gz

t_pod_wrong_secret() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/disks/qcow2.gz" IMPORTER_ACCESS_KEY_ID="$AK" IMPORTER_SECRET_KEY=wrong
  ((LAST_RC == 1)) || { show_output; fail "exit $LAST_RC"; }
  [[ $(term) == "Unable to connect to s3 data source: HTTP 403 Forbidden for $H/disks/qcow2.gz (S3 error SignatureDoesNotMatch"* ]] ||
    { show_output; fail "termination log: $(term)"; }
  [[ -z $(ls -A "$R/data") ]] || fail "leftovers in /data"
}
run_test pod_wrong_secret t_pod_wrong_secret

t_pod_missing() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/disks/missing.img" IMPORTER_ACCESS_KEY_ID="$AK" IMPORTER_SECRET_KEY="$SK"
  ((LAST_RC == 1)) || { show_output; fail "exit $LAST_RC"; }
  [[ $(term) == "Unable to connect to s3 data source: HTTP 404 Not Found for $H/disks/missing.img (S3 error NoSuchKey"* ]] ||
    { show_output; fail "termination log: $(term)"; }
}
run_test pod_missing t_pod_missing

t_pod_anonymous() {
  pod_root
  pod IMPORTER_ENDPOINT="$H/pub/qcow2.gz"
  [[ $LAST_RC == 0 && $(term) == "$SUCCESS" ]] || { show_output; fail "exit $LAST_RC: $(term)"; }
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$R/data/disk.img"
}
run_test pod_anonymous_public t_pod_anonymous

finish
