#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Google Cloud Storage sources (gs://, --source gcs, pod IMPORTER_SOURCE=gcs) against
# tests/support/gcs_standin.py: a stand-in of the JSON API metadata, the XML API media GET (Range,
# x-goog-generation, x-goog-hash) and Google's OAuth2 token endpoint, which verifies the JWT's RS256
# signature with the service account's public key. The key pairs are made here with openssl and
# the key files built like the ones the Cloud console downloads. Every import is compared with
# qemu-img convert.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
STANDIN=$E2E_DIR/../support/gcs_standin.py
POD=$(dirname "$CDI")/cdi-importer
if [[ ! -x $POD ]]; then ln -s "$CDI" "$T/cdi-importer"; POD=$T/cdi-importer; fi
readonly SA=importer@cdi-test.iam.gserviceaccount.com
readonly SUCCESS='{"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"}'

G=$T/gcs
mkdir -p "$G/root/images" "$G/root/public-images" "$G/root/denied-images" "$G/keys" "$G/tls"
for f in qcow2-v3.qcow2 raw.xz; do
  cp "$IMG/$f" "$G/root/images/$f"
done
cp "$IMG/qcow2-v3.qcow2" "$G/root/images/drop.qcow2"
cp "$IMG/stream.vmdk" "$G/root/images/stream.vmdk"
cp "$IMG/source.raw" "$G/root/images/corrupt.raw"
cp "$IMG/qcow2-v3.qcow2" "$G/root/public-images/qcow2-v3.qcow2"
cp "$IMG/qcow2-v3.qcow2" "$G/root/denied-images/qcow2-v3.qcow2"

# The service account's key pair, and another private key (a "bad key": same account, wrong key).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$G/keys/sa.key" 2>/dev/null
openssl pkey -in "$G/keys/sa.key" -pubout -out "$G/keys/sa.pub"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$G/keys/other.key" 2>/dev/null

# key_file PRIVATE_KEY TOKEN_URI OUT: a service-account key file as Google issues them.
key_file() {
  "$PY" - "$1" "$2" "$3" "$SA" <<'PYEOF'
import json, sys
key, uri, out, email = sys.argv[1:]
json.dump({"type": "service_account", "project_id": "cdi-test", "private_key_id": "0123456789abcdef",
           "private_key": open(key).read(), "client_email": email, "client_id": "1234567890",
           "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": uri,
           "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs"}, open(out, "w"), indent=2)
PYEOF
}

# standin NAME ARGS...: starts a stand-in; sets PORT.
standin() {
  local name=$1 i
  shift
  "$PY" "$STANDIN" "$G/root" --portfile "$G/$name.port" --account "$SA=$G/keys/sa.pub" "$@" 2> "$G/$name.log" &
  STANDIN_PIDS+=("$!")   # not in CLEANUP_LIST: that is emptied after every test
  for i in $(seq 200); do [[ -s $G/$name.port ]] && break; sleep 0.05; done
  [[ -s $G/$name.port ]] || { cat "$G/$name.log" >&2; echo "gcs stand-in $name did not start" >&2; exit 1; }
  PORT=$(cat "$G/$name.port")
}

STANDIN_PIDS=()
trap 'for p in "${STANDIN_PIDS[@]}"; do kill "$p" 2>/dev/null; done; cleanup' EXIT
standin plain --drop images/drop.qcow2=300000 --corrupt images/corrupt.raw
EP=http://127.0.0.1:$PORT
key_file "$G/keys/sa.key" "$EP/token" "$G/keys/key.json"
key_file "$G/keys/other.key" "$EP/token" "$G/keys/bad.json"
# Tokens that live 2 s (renewed after 1 s), and a drop whose resume comes after a 1 s backoff.
standin short --token-lifetime 2 --drop images/drop.qcow2=300000
EPT=http://127.0.0.1:$PORT
key_file "$G/keys/sa.key" "$EPT/token" "$G/keys/key-short.json"
cert_ca "$G/tls" ca
cert_leaf "$G/tls" server localhost ca server
standin tls --tls "$G/tls/server.crt" "$G/tls/server.key"
EPS=https://127.0.0.1:$PORT
key_file "$G/keys/sa.key" "$EPS/token" "$G/keys/key-tls.json"
mkdir -p "$G/cadir"
cp "$G/tls/ca.crt" "$G/cadir/"

# standin_saw NAME PATTERN: the stand-in's log has a line matching PATTERN (grep -E).
standin_saw() { grep -qE -- "$2" "$G/$1.log" || { tail -n 20 "$G/$1.log" >&2; fail "stand-in $1 saw no '$2'"; }; }

t_authenticated_qcow2() {
  run_import --url gs://images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/key.json"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
  standin_saw plain "POST /token .* status=200"
  standin_saw plain "GET /images/qcow2-v3.qcow2\?generation=[0-9]+ .*auth=token status=200"
}

t_authenticated_raw_xz_env() {
  # GOOGLE_APPLICATION_CREDENTIALS and STORAGE_EMULATOR_HOST as Google's clients read them
  GOOGLE_APPLICATION_CREDENTIALS=$G/keys/key.json STORAGE_EMULATOR_HOST=127.0.0.1:${EP##*:} \
    run_import --url gs://images/raw.xz --dest dest/disk.raw
  assert_same_as_qemu "$IMG/source.raw" dest/disk.raw raw
}

t_source_gcs_http_endpoint() {
  # CDI's other form: http(s)://HOST[:PORT]/BUCKET/OBJECT, that host being the API endpoint
  run_import --source gcs --url "$EP/images/qcow2-v3.qcow2" --dest dest/disk.raw --gcs-credentials "$G/keys/key.json"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
}

t_public_anonymous() {
  run_import --url gs://public-images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
  standin_saw plain "GET /public-images/qcow2-v3.qcow2\?generation=[0-9]+ .*auth=none status=200"
}

t_private_anonymous_refused() {
  expect_exit 7 --url gs://images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP"
  assert_error_matches "is not public and no credentials were given"
  assert_error_matches "--gcs-credentials"
  [[ ! -e dest/disk.raw ]] || fail "a target was written"
}

t_bad_key() {
  expect_exit 7 --url gs://images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/bad.json"
  assert_error_matches "refused the service account $SA .*invalid_grant: Invalid JWT Signature"
  standin_saw plain "POST /token .* status=400"
  ! grep -q "BEGIN PRIVATE KEY\|ya29\|eyJ" "$W/_meta/err" || fail "a secret reached the error line"
}

t_not_a_key_file() {
  echo '{"type": "authorized_user", "client_id": "x"}' > user.json
  expect_exit 5 --url gs://images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials user.json
  assert_error_matches 'credentials of type "authorized_user" are not supported'
}

t_denied() {
  expect_exit 7 --url gs://denied-images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/key.json"
  assert_error_matches "access denied to GCS object gs://denied-images/qcow2-v3.qcow2"
}

t_missing_object() {
  expect_exit 9 --url gs://images/nope.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/key.json"
  assert_error_matches "no such GCS bucket or object: gs://images/nope.qcow2 .*No such object"
}

t_missing_bucket() {
  expect_exit 9 --url gs://public-nobucket/x.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP"
  assert_error_matches "The specified bucket does not exist"
}

t_bad_url() {
  expect_exit 2 --url gs://images --dest dest/disk.raw --gcs-endpoint "$EP"
  assert_error_matches "names no object"
}

t_crc32c_mismatch() {
  expect_exit 4 --url gs://images/corrupt.raw --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/key.json"
  assert_error_matches "gs://images/corrupt.raw: CRC32C mismatch \(object [0-9a-f]{8}, received [0-9a-f]{8}\)"
  assert_failed_cleanly dest/disk.raw
}

t_drop_resumed_same_generation() {
  run_import --url gs://images/drop.qcow2 --dest dest/disk.raw --gcs-endpoint "$EP" --gcs-credentials "$G/keys/key.json" --retries 3
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
  standin_saw plain "GET /images/drop.qcow2\?generation=[0-9]+ range=bytes=300000- if-range=\"[0-9a-f]{32}\" auth=token status=206"
}

t_token_renewed_before_expiry() {
  run_import --url gs://images/drop.qcow2 --dest dest/disk.raw --gcs-endpoint "$EPT" --gcs-credentials "$G/keys/key-short.json" --retries 3
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
  standin_saw short "range=bytes=300000- .*auth=token status=206"
  (($(grep -c "POST /token .* status=200" "$G/short.log") >= 2)) || fail "the token was not renewed"
  ! grep -q "status=401" "$G/short.log" || fail "a request went out with an expired token"
}

t_vmdk_spooled_never_in_place() {
  # A format that wants random access: with a token, no helper tool may read the object by URL;
  # it is read once, spooled to scratch, checksummed.
  run_import --url gs://images/stream.vmdk --dest dest/disk.raw --scratch-dir scratch --gcs-endpoint "$EP" \
    --gcs-credentials "$G/keys/key.json"
  assert_same_as_qemu "$IMG/stream.vmdk" dest/disk.raw
  (($(grep -c "GET /images/stream.vmdk?generation" "$G/plain.log") == 1)) || fail "the object was read more than once"
}

t_https_private_ca() {
  run_import --url gs://images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EPS" --gcs-credentials "$G/keys/key-tls.json" \
    --cert-dir "$G/cadir"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" dest/disk.raw
  standin_saw tls "POST /token .* status=200"
}

t_https_untrusted() {
  expect_exit 8 --url gs://public-images/qcow2-v3.qcow2 --dest dest/disk.raw --gcs-endpoint "$EPS"
  assert_error_matches "TLS|certificate"
}

# --- pod mode --------------------------------------------------------------------------------

pod_root() {
  R=$W/root
  mkdir -p "$R/data" "$R/dev" "$R/google"
}

pod() { importer_pod IMPORTER_SOURCE=gcs FILESYSTEM_OVERHEAD= "$@"; }

expect_term() {
  local want_rc=$1 want=$2 got
  if ((LAST_RC != want_rc)); then show_output; fail "exit $LAST_RC, expected $want_rc"; fi
  [[ -f $R/dev/termination-log ]] || { show_output; fail "no termination log"; }
  got=$(cat "$R/dev/termination-log")
  [[ $got =~ $want ]] || { show_output; fail "termination log: '$got', expected /$want/"; }
}

t_pod_key_under_google() {
  pod_root
  cp "$G/keys/key.json" "$R/google/credentials.json"
  pod IMPORTER_ENDPOINT="$EP/images/qcow2-v3.qcow2" GOOGLE_APPLICATION_CREDENTIALS=/google/credentials.json
  expect_term 0 "^${SUCCESS//[\{\}]/.}\$"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$R/data/disk.img"
}

t_pod_gs_url_emulator_host() {
  pod_root
  cp "$G/keys/key.json" "$R/google/credentials.json"
  pod IMPORTER_ENDPOINT=gs://images/raw.xz STORAGE_EMULATOR_HOST="$EP" GOOGLE_APPLICATION_CREDENTIALS=/google/credentials.json
  expect_term 0 "^${SUCCESS//[\{\}]/.}\$"
  assert_same_as_qemu "$IMG/source.raw" "$R/data/disk.img" raw
}

t_pod_public_anonymous() {
  pod_root
  pod IMPORTER_ENDPOINT="$EP/public-images/qcow2-v3.qcow2"
  expect_term 0 "^${SUCCESS//[\{\}]/.}\$"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$R/data/disk.img"
}

t_pod_https_cert_dir() {
  pod_root
  mkdir -p "$R/certs"
  cp "$G/tls/ca.crt" "$R/certs/"
  cp "$G/keys/key-tls.json" "$R/google/credentials.json"
  pod IMPORTER_ENDPOINT="$EPS/images/qcow2-v3.qcow2" GOOGLE_APPLICATION_CREDENTIALS=/google/credentials.json \
    IMPORTER_CERT_DIR=/certs
  expect_term 0 "^${SUCCESS//[\{\}]/.}\$"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$R/data/disk.img"
}

t_pod_bad_key() {
  pod_root
  cp "$G/keys/bad.json" "$R/google/credentials.json"
  pod IMPORTER_ENDPOINT="$EP/images/qcow2-v3.qcow2" GOOGLE_APPLICATION_CREDENTIALS=/google/credentials.json
  expect_term 1 "^Unable to connect to gcs data source: .*invalid_grant: Invalid JWT Signature"
  ! grep -q "BEGIN PRIVATE KEY" "$R/dev/termination-log" "$W/_meta/err" || fail "the private key was logged"
}

t_pod_missing_object() {
  pod_root
  pod IMPORTER_ENDPOINT="$EP/public-images/nope.qcow2"
  expect_term 1 "^Unable to connect to gcs data source: no such GCS bucket or object: gs://public-images/nope.qcow2"
}

t_pod_missing_key_file() {
  pod_root
  pod IMPORTER_ENDPOINT="$EP/images/qcow2-v3.qcow2" GOOGLE_APPLICATION_CREDENTIALS=/google/credentials.json
  expect_term 1 "^Unable to connect to gcs data source: .*credentials"
}

run_test gcs_authenticated_qcow2 t_authenticated_qcow2
run_test gcs_authenticated_raw_xz_env t_authenticated_raw_xz_env
run_test gcs_source_gcs_http_endpoint t_source_gcs_http_endpoint
run_test gcs_public_anonymous t_public_anonymous
run_test gcs_private_anonymous_refused t_private_anonymous_refused
run_test gcs_bad_key t_bad_key
run_test gcs_not_a_key_file t_not_a_key_file
run_test gcs_denied t_denied
run_test gcs_missing_object t_missing_object
run_test gcs_missing_bucket t_missing_bucket
run_test gcs_bad_url t_bad_url
run_test gcs_crc32c_mismatch t_crc32c_mismatch
run_test gcs_drop_resumed_same_generation t_drop_resumed_same_generation
run_test gcs_token_renewed_before_expiry t_token_renewed_before_expiry
run_test gcs_vmdk_spooled_never_in_place t_vmdk_spooled_never_in_place
run_test gcs_https_private_ca t_https_private_ca
run_test gcs_https_untrusted t_https_untrusted
run_test gcs_pod_key_under_google t_pod_key_under_google
run_test gcs_pod_gs_url_emulator_host t_pod_gs_url_emulator_host
run_test gcs_pod_public_anonymous t_pod_public_anonymous
run_test gcs_pod_https_cert_dir t_pod_https_cert_dir
run_test gcs_pod_bad_key t_pod_bad_key
run_test gcs_pod_missing_object t_pod_missing_object
run_test gcs_pod_missing_key_file t_pod_missing_key_file
finish
