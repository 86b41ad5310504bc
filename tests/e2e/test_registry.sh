#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Container registry sources (docker://, oci:, oci-archive:) against real docker-registry
# instances started here on 127.0.0.1: plain HTTP, TLS with a private CA, htpasswd Basic, Bearer
# tokens from the suite's token server, a blob redirect to another origin, and a proxy that
# corrupts blobs. Images are OCI layouts built by tests/support/make_oci_layout.py and pushed
# byte for byte by oci_push.py (no Docker engine). Every import is compared with qemu-img
# convert of the disk file, with a scratch tmpfs that must stay at zero bytes.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"
source "$E2E_DIR/../support/registry.sh"

SRV=$T/srv
L=$T/layout
mkdir -p "$SRV" "$L"
trap 'registry_stop_all; cleanup' EXIT
MK=$E2E_DIR/../support/make_oci_layout.py

# --- images ------------------------------------------------------------------------------------
QCOW=$IMG/qcow2-v3.qcow2              # 64 MiB virtual, ~5.5 MiB file
head -c $((4 * MIB)) "$IMG/source.raw" > "$T/small.raw"
RAW=$T/small.raw
QXZ=$IMG/qcow2.xz                     # the same qcow2, xz-compressed
echo "not a disk" > "$T/hostname"
mk() { /usr/bin/python3 "$MK" "$@" || { echo "make_oci_layout.py $* failed" >&2; exit 1; }; }
mk image "$L" qcow2 --env INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small \
  --env PREFERENCE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora --env PATH=/bin --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" raw --layer "gzip:disk/,disk/disk.img=$RAW"
mk image "$L" zstd --layer "zstd:disk/,disk/disk.img=$QCOW"
mk image "$L" plain-qcow2 --layer "none:disk/,disk/disk.img=$QCOW"
mk image "$L" plain-raw --layer "none:./disk/,./disk/disk.img=$RAW"
mk image "$L" xz --layer "gzip:disk/,disk/disk.qcow2.xz=$QXZ"
mk image "$L" docker --docker --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" amd64 --arch amd64 --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" arm64 --arch arm64 --variant v8 --layer "gzip:disk/,disk/disk.img=$RAW"
mk index "$L" multi amd64 arm64
mk image "$L" docker-amd64 --docker --arch amd64 --layer "gzip:disk/,disk/disk.img=$QCOW"
mk image "$L" docker-arm64 --docker --arch arm64 --layer "gzip:disk/,disk/disk.img=$RAW"
mk index "$L" docker-multi --docker docker-amd64 docker-arm64
mk image "$L" replaced --layer "gzip:disk/,disk/disk.img=$RAW" --layer "gzip:disk/,disk/disk.img=$QCOW" \
  --layer "gzip:etc/,etc/hostname=$T/hostname"
mk image "$L" whiteout --layer "gzip:disk/,disk/a.img=$QCOW" --layer "gzip:disk/,disk/b.img=$RAW" \
  --layer "none:disk/,disk/.wh.b.img="
mk image "$L" opaque --layer "gzip:disk/,disk/a.img=$QCOW" --layer "gzip:disk/,disk/.wh..wh..opq=,etc/hostname=$T/hostname"
mk image "$L" nodisk --layer "gzip:etc/,etc/hostname=$T/hostname"
mk image "$L" twodisks --layer "gzip:disk/,disk/a.img=$QCOW,disk/b.img=$RAW"
mk image "$L" bootc --label containers.bootc=1 --layer "gzip:disk/,disk/disk.img=$RAW"
mk image "$L" symlink --layer "gzip:disk/,disk/disk.img->../etc/hostname,etc/hostname=$T/hostname"
tar -C "$L" -cf "$T/layout.tar" .

registry_start "$SRV/plain" plain || { echo "registry did not start" >&2; exit 1; }
PLAIN=127.0.0.1:$REGISTRY_PORT
PLAIN_STORAGE=$REGISTRY_STORAGE
for tag in qcow2 raw zstd plain-qcow2 plain-raw xz docker amd64 multi docker-multi replaced whiteout opaque nodisk \
           twodisks bootc symlink; do
  registry_push "$L" "$tag" "cd/img:$tag" || { echo "push of $tag failed" >&2; exit 1; }
done
# skopeo (as users push): it recompresses the layer and writes its own manifest; v2s2 as well.
timeout 60 skopeo copy -q --dest-tls-verify=false "oci:$L:qcow2" "docker://$PLAIN/cd/skopeo:oci" \
  && timeout 60 skopeo copy -q --dest-tls-verify=false --format v2s2 "oci:$L:raw" "docker://$PLAIN/cd/skopeo:v2s2" \
  || { echo "skopeo push failed" >&2; exit 1; }
DIGEST=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "qcow2") | .digest' "$L/index.json")


# import_and_compare SRC_DISK [QEMU_FORMAT] -- ARGS: import through a watched scratch and compare.
import_and_compare() {
  local src=$1 fmt=$2
  shift 2
  cdi_watch_scratch --progress none "$@" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$src" "$W/dest/disk.raw" "$fmt"
  [[ $(ls -A "$W/dest") == disk.raw ]] || fail "unexpected files in dest: $(ls -A "$W/dest")"
}

# --- plain HTTP registry (--insecure-tls allows it) ----------------------------------------------
for c in "qcow2 $QCOW qcow2" "raw $RAW raw" "zstd $QCOW qcow2" "plain-qcow2 $QCOW qcow2" "plain-raw $RAW raw" \
         "xz $QCOW qcow2" "docker $QCOW qcow2" "replaced $QCOW qcow2" "whiteout $QCOW qcow2"; do
  set -- $c
  eval "t_plain_$(tr - _ <<< "$1")() { import_and_compare $2 $3 --insecure-tls --url docker://$PLAIN/cd/img:$1; }"
  run_test "plain_$1" "t_plain_$(tr - _ <<< "$1")"
done

t_by_digest() { import_and_compare "$QCOW" qcow2 --insecure-tls --url "docker://$PLAIN/cd/img@$DIGEST"; }
t_multi_amd64() { import_and_compare "$QCOW" qcow2 --insecure-tls --arch amd64 --url "docker://$PLAIN/cd/img:multi"; }
t_multi_arm64() { import_and_compare "$RAW" raw --insecure-tls --arch arm64 --url "docker://$PLAIN/cd/img:multi"; }
t_multi_arm64_variant() { import_and_compare "$RAW" raw --insecure-tls --arch arm64 --variant v8 --url "docker://$PLAIN/cd/img:docker-multi"; }
t_docker_list_amd64() { import_and_compare "$QCOW" qcow2 --insecure-tls --arch amd64 --url "docker://$PLAIN/cd/img:docker-multi"; }
run_test by_digest t_by_digest
t_skopeo_oci() { import_and_compare "$QCOW" qcow2 --insecure-tls --url "docker://$PLAIN/cd/skopeo:oci"; }
t_skopeo_v2s2() { import_and_compare "$RAW" raw --insecure-tls --url "docker://$PLAIN/cd/skopeo:v2s2"; }
run_test skopeo_oci t_skopeo_oci
run_test skopeo_v2s2 t_skopeo_v2s2
run_test multi_amd64 t_multi_amd64
run_test multi_arm64 t_multi_arm64
run_test multi_arm64_variant t_multi_arm64_variant
run_test docker_list_amd64 t_docker_list_amd64

t_labels_in_info() {
  cdi info --json --insecure-tls "docker://$PLAIN/cd/img:qcow2"
  check_success
  jq -e '.labels == {"instancetype.kubevirt.io/default-instancetype": "u1.small",
                     "preference.kubevirt.io/default-preference": "fedora"}' "$W/_meta/out" >/dev/null \
    || { show_output; fail "labels not as CDI maps them"; }
  jq -e '.chain_text == "docker[disk/disk.img] > qcow2" and .scratch_required == false' "$W/_meta/out" >/dev/null \
    || { show_output; fail "unexpected chain"; }
  assert_wrote_nothing
}
run_test labels_in_info t_labels_in_info

# --- failures --------------------------------------------------------------------------------------
t_unknown_tag() {
  expect_exit 9 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:nope" --dest "$W/dest/disk.raw"
  assert_error_matches "cd/img:nope not found.*MANIFEST_UNKNOWN"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_unknown_repo() {
  expect_exit 9 --progress none --insecure-tls --url "docker://$PLAIN/cd/nothing:v1" --dest "$W/dest/disk.raw"
  assert_error_matches "cd/nothing:v1 not found.*(NAME_UNKNOWN|MANIFEST_UNKNOWN)"
}
t_no_disk() {
  expect_exit 9 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:nodisk" --dest "$W/dest/disk.raw"
  assert_error_matches "Failed to find VM disk image file in the container image"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_opaque_hides_lower_disk() {
  expect_exit 9 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:opaque" --dest "$W/dest/disk.raw"
  assert_error_matches "Failed to find VM disk image file"
}
t_two_disks() {
  expect_exit 5 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:twodisks" --dest "$W/dest/disk.raw"
  assert_error_matches "several files under disk/ \(disk/a.img, disk/b.img\)"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_bootc() {
  expect_exit 5 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:bootc" --dest "$W/dest/disk.raw"
  assert_error_matches "bootc image detected: this image contains an ostree-based bootable OS"
}
t_wrong_arch() {
  expect_exit 5 --progress none --insecure-tls --arch arm64 --url "docker://$PLAIN/cd/img:amd64" --dest "$W/dest/disk.raw"
  assert_error_matches "manifest image architecture: \"amd64\" doesn't match requested architecture: \"arm64\""
}
t_arch_not_in_index() {
  expect_exit 9 --progress none --insecure-tls --arch s390x --url "docker://$PLAIN/cd/img:multi" --dest "$W/dest/disk.raw"
  assert_error_matches "no image for platform linux/s390x in the index \(it has: linux/amd64, linux/arm64/v8\)"
}
t_symlink_disk() {
  expect_exit 5 --progress none --insecure-tls --url "docker://$PLAIN/cd/img:symlink" --dest "$W/dest/disk.raw"
  assert_error_matches "not a regular file: disk/disk.img \(symlink\)"
}
t_plain_http_needs_insecure() {
  expect_exit 8 --progress none --url "docker://$PLAIN/cd/img:raw" --dest "$W/dest/disk.raw"
  assert_error_matches "TLS: "
}
t_bad_reference() {
  expect_exit 2 --progress none --url "docker://$PLAIN/CD/Img:raw" --dest "$W/dest/disk.raw"
  assert_error_matches "invalid repository name"
}
run_test unknown_tag t_unknown_tag
run_test unknown_repo t_unknown_repo
run_test no_disk t_no_disk
run_test opaque_hides_lower_disk t_opaque_hides_lower_disk
run_test two_disks t_two_disks
run_test bootc t_bootc
run_test wrong_arch t_wrong_arch
run_test arch_not_in_index t_arch_not_in_index
run_test symlink_disk t_symlink_disk
run_test plain_http_needs_insecure t_plain_http_needs_insecure
run_test bad_reference t_bad_reference

# --- a compressed qcow2 whose data precede its L2 tables, in a gzip containerDisk layer ------------
# (4 KiB clusters: one stream would hold ~300 KiB, more than --qcow2-hold-limit 16Ki). A layer
# cannot be seeked but the registry serves the manifest by its digest: with no scratch offered the
# image is read twice (the tables, then the data in file order), pinned to the manifest digest and
# the layer digest; nothing held, no scratch, no exit 10.
LATE_RAW=$T/late.raw
head -c $((8 * MIB)) /dev/urandom > "$LATE_RAW"
{ yes 'text of the qcow2 late-L2 registry test ' || true; } | head -c $((6 * MIB)) >> "$LATE_RAW"
truncate -s $((32 * MIB)) "$LATE_RAW"
for algo in zlib zstd; do
  qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096,compression_type=$algo "$LATE_RAW" "$T/late-$algo.qcow2"
  mk image "$L" "late-$algo" --layer "gzip:disk/,disk/disk.img=$T/late-$algo.qcow2"
  registry_push "$L" "late-$algo" "cd/img:late-$algo" || { echo "push of late-$algo failed" >&2; exit 1; }
done
t_two_reads() {   # t_two_reads ALGO
  local algo=$1 img=$T/late-$1.qcow2 src="docker://$PLAIN/cd/img:late-$1"
  cdi info --insecure-tls --qcow2-hold-limit 16Ki "$src"
  ((LAST_RC == 0)) || { show_output; fail "info failed"; }
  grep -q "access: two sequential reads" "$W/_meta/out" || { show_output; fail "info does not plan two reads"; }
  grep -q "a second read of the source" "$W/_meta/out" || { show_output; fail "info does not say the source is read twice"; }
  grep -q "scratch: not needed" "$W/_meta/out" || { show_output; fail "info says scratch is needed"; }
  local why; why=$(info_why "qcow2: the source cannot be seeked (a containerDisk layer)")
  [[ $why == *"pinned to the first one's manifest digest and layer digest"* ]] || { show_output; fail "not pinned by digest"; }
  assert_wrote_nothing
  cdi_rss -v --progress none --insecure-tls --qcow2-hold-limit 16Ki --url "$src" --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$img" "$W/dest/disk.raw" qcow2
  assert_plan_as_info "$why"
  grep -q "qcow2: read the source 2 times" "$W/_meta/err" || { show_output; fail "not read twice"; }
  # the abandoned stream, then the two reads
  (( $(grep -c "manifest sha256:[0-9a-f]*: 1 layer(s)" "$W/_meta/err") == 3 )) || { show_output; fail "the manifest was not read three times"; }
  ! grep "imported" "$W/_meta/err" | sed 's/.*(file)://' | grep -qi "held\|spill\|scratch" || { show_output; fail "held or spilled"; }
  assert_rss_under 96
}
run_test qcow2_zlib_two_reads_containerdisk t_two_reads zlib
run_test qcow2_zstd_two_reads_containerdisk t_two_reads zstd
# the second read of the layer gets other bytes (a proxy flips one from the second GET of each blob
# on): the import fails with exit 4 (here the qcow2 decoder trips over the garbage before the end of
# the layer, where the digest check would fail it), no target left. (Not tested: a registry
# answering the pinned manifest digest with another layer — the manifest's own digest is checked.)
proxy_start "$SRV/corrupt-second" corrupt-second || { echo "corrupting proxy did not start" >&2; exit 1; }
CORRUPT_SECOND=127.0.0.1:$PROXY_PORT
CORRUPT_SECOND_LOG=$PROXY_LOG
t_two_reads_layer_changed() {
  : > "$CORRUPT_SECOND_LOG"
  expect_exit 4 --progress none --insecure-tls --qcow2-hold-limit 16Ki --url "docker://$CORRUPT_SECOND/cd/img:late-zstd" \
    --dest "$W/dest/disk.raw"
  assert_error_matches "(qcow2: compressed cluster at host offset 0x[0-9a-f]+ \(guest 0x[0-9a-f]+\): zstd: |digest mismatch)"
  assert_failed_cleanly "$W/dest/disk.raw"
  # (the stream tried first is abandoned at the hold limit; the reads after it are pinned)
  (( $(grep -c "GET /v2/cd/img/manifests/sha256:" "$CORRUPT_SECOND_LOG") >= 1 )) ||
    { cat "$CORRUPT_SECOND_LOG" >&2; fail "the later reads did not ask for the manifest by its digest"; }
  (( $(grep -c "flipped" "$CORRUPT_SECOND_LOG") >= 1 )) || { cat "$CORRUPT_SECOND_LOG" >&2; fail "the layer was not read again"; }
}
run_test qcow2_two_reads_containerdisk_layer_changed t_two_reads_layer_changed

# --- corrupted blobs: the digest check fails the import and leaves no target ---------------------
proxy_start "$SRV/corrupt" corrupt || { echo "corrupting proxy did not start" >&2; exit 1; }
CORRUPT=127.0.0.1:$PROXY_PORT
t_corrupt() {
  local tag=$1
  expect_exit 4 --progress none --insecure-tls --url "docker://$CORRUPT/cd/img:$tag" --dest "$W/dest/disk.raw"
  assert_error_matches "layer 0 \(sha256:[0-9a-f]{12}…\): digest mismatch: the manifest says sha256:[0-9a-f]{64}, the downloaded blob is sha256:"
  assert_failed_cleanly "$W/dest/disk.raw"
  grep -q "flipped" "$PROXY_LOG" || fail "the proxy did not corrupt anything"
}
run_test corrupt_plain_raw t_corrupt plain-raw
run_test corrupt_plain_qcow2 t_corrupt plain-qcow2
run_test corrupt_gzip_qcow2 t_corrupt qcow2

# --- blob redirect to another origin: followed, no Authorization leaked -----------------------------
REG_PROXY_STORAGE=$PLAIN_STORAGE
proxy_start "$SRV/redirect" redirect || { echo "redirect proxy did not start" >&2; exit 1; }
REDIRECT=127.0.0.1:$PROXY_PORT
REDIRECT_LOG=$PROXY_LOG
t_redirect() {
  import_and_compare "$QCOW" qcow2 --insecure-tls --url "docker://$REDIRECT/cd/img:qcow2"
  grep -q "GET /cdn/sha256/" "$REDIRECT_LOG" || fail "the blob was not fetched from the CDN"
  ! grep -q LEAK "$REDIRECT_LOG" || fail "credentials were sent to the CDN"
}
run_test blob_redirect t_redirect

# --- TLS with a private CA -----------------------------------------------------------------------------
registry_start "$SRV/tls" tls || { echo "TLS registry did not start" >&2; exit 1; }
TLS=127.0.0.1:$REGISTRY_PORT
TLS_CERTS=$SRV/tls/certs
registry_push "$L" qcow2 cd/img:v1 || { echo "push to the TLS registry failed" >&2; exit 1; }
t_tls_cert_dir() {
  mkdir -p "$W/_meta/certs.d"
  cp "$TLS_CERTS/ca.crt" "$W/_meta/certs.d/ca.crt"
  cp "$TLS_CERTS/other-ca.crt" "$W/_meta/certs.d/other.cert"   # a *.cert is a client pair, not a CA
  cp "$TLS_CERTS/other-ca.key" "$W/_meta/certs.d/other.key"
  import_and_compare "$QCOW" qcow2 --cert-dir "$W/_meta/certs.d" --url "docker://$TLS/cd/img:v1"
}
t_tls_untrusted() {
  expect_exit 8 --progress none --url "docker://$TLS/cd/img:v1" --dest "$W/dest/disk.raw"
  assert_error_matches "TLS: .*(--cert-dir|certificate)"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_tls_insecure() { import_and_compare "$QCOW" qcow2 --insecure-tls --url "docker://$TLS/cd/img:v1"; }
run_test tls_cert_dir t_tls_cert_dir
# A registry that requires a client certificate: the certs.d pair (client.cert + client.key) is sent.
REGISTRY_DATA=$PLAIN_STORAGE registry_start "$SRV/tls-client" tls-client || { echo "mTLS registry did not start" >&2; exit 1; }
MTLS=127.0.0.1:$REGISTRY_PORT
t_tls_client_pair() {
  mkdir -p "$W/_meta/certs.d"
  cp "$SRV/tls-client/certs/ca.crt" "$SRV/tls-client/certs/client.cert" "$SRV/tls-client/certs/client.key" "$W/_meta/certs.d/"
  import_and_compare "$RAW" raw --cert-dir "$W/_meta/certs.d" --url "docker://$MTLS/cd/img:raw"
}
t_tls_client_missing() {
  mkdir -p "$W/_meta/certs.d"
  cp "$SRV/tls-client/certs/ca.crt" "$W/_meta/certs.d/"
  expect_exit 8 --progress none --cert-dir "$W/_meta/certs.d" --url "docker://$MTLS/cd/img:raw" --dest "$W/dest/disk.raw"
  assert_error_matches "client certificate: a \\*\\.cert \\+ \\*\\.key pair in --cert-dir"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_tls_client_half_pair() {
  mkdir -p "$W/_meta/certs.d"
  cp "$SRV/tls-client/certs/ca.crt" "$SRV/tls-client/certs/client.cert" "$W/_meta/certs.d/"
  expect_exit 2 --progress none --cert-dir "$W/_meta/certs.d" --url "docker://$MTLS/cd/img:raw" --dest "$W/dest/disk.raw"
  assert_error_matches "client certificate client.cert has no client.key"
}
run_test tls_client_pair t_tls_client_pair
run_test tls_client_missing t_tls_client_missing
run_test tls_client_half_pair t_tls_client_half_pair
run_test tls_untrusted t_tls_untrusted
run_test tls_insecure t_tls_insecure

# --- htpasswd Basic ----------------------------------------------------------------------------------
registry_start "$SRV/basic" auth || { echo "htpasswd registry did not start" >&2; exit 1; }
BASIC=127.0.0.1:$REGISTRY_PORT
registry_push "$L" raw cd/img:v1 || { echo "push to the htpasswd registry failed" >&2; exit 1; }
pwfile() { printf '%s\n' "$1" > "$W/_meta/pw"; echo "$W/_meta/pw"; }
authfile() {   # a Kubernetes dockerconfigjson with base64 "auth"
  local b64
  b64=$(printf '%s:%s' "$1" "$2" | base64 -w0)
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$3" "$b64" > "$W/_meta/config.json"
  echo "$W/_meta/config.json"
}
t_basic_ok() {
  import_and_compare "$RAW" raw --insecure-tls --username "$HTUSER" --password-file "$(pwfile "$HTPASS")" \
    --url "docker://$BASIC/cd/img:v1"
}
t_basic_auth_file() {
  import_and_compare "$RAW" raw --insecure-tls --registry-auth-file "$(authfile "$HTUSER" "$HTPASS" "http://$BASIC/v1/")" \
    --url "docker://$BASIC/cd/img:v1"
}
t_basic_wrong() {
  expect_exit 7 --progress none --insecure-tls --username "$HTUSER" --password-file "$(pwfile wrong)" \
    --url "docker://$BASIC/cd/img:v1" --dest "$W/dest/disk.raw"
  assert_error_matches "refused access to cd/img as user $HTUSER \(HTTP 401\)"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_basic_missing() {
  expect_exit 7 --progress none --insecure-tls --url "docker://$BASIC/cd/img:v1" --dest "$W/dest/disk.raw"
  assert_error_matches "refused access to cd/img anonymously.*no credentials given"
}
run_test basic_ok t_basic_ok
run_test basic_auth_file t_basic_auth_file
run_test basic_wrong t_basic_wrong
run_test basic_missing t_basic_missing

# --- Bearer tokens (TLS registry, token server of our own) ------------------------------------------
registry_start "$SRV/token" tls-token || { echo "token registry did not start" >&2; exit 1; }
TOKEN=127.0.0.1:$REGISTRY_PORT
registry_push "$L" multi cd/img:multi
mkdir -p "$SRV/token/certs.d" && cp "$SRV/token/certs/ca.crt" "$SRV/token/certs.d/ca.crt"
t_token_ok() {
  import_and_compare "$RAW" raw --cert-dir "$SRV/token/certs.d" --arch arm64 --username "$HTUSER" \
    --password-file "$(pwfile "$HTPASS")" --url "docker://$TOKEN/cd/img:multi"
  grep -q '"GET /token?service=cdi-test-registry&scope=repository%3Acd%2Fimg%3Apull' "$SRV/token/token.log" \
    || fail "no token request with the pull scope"
}
t_token_auth_file() {
  import_and_compare "$QCOW" qcow2 --cert-dir "$SRV/token/certs.d" --arch amd64 \
    --registry-auth-file "$(authfile "$HTUSER" "$HTPASS" "$TOKEN")" --url "docker://$TOKEN/cd/img:multi"
}
t_token_wrong() {
  expect_exit 7 --progress none --cert-dir "$SRV/token/certs.d" --username "$HTUSER" --password-file "$(pwfile wrong)" \
    --url "docker://$TOKEN/cd/img:multi" --dest "$W/dest/disk.raw"
  assert_error_matches "token server http://127.0.0.1:[0-9]+/token refused the request as user $HTUSER \(HTTP 401\)"
}
t_token_anonymous_refused() {
  expect_exit 7 --progress none --cert-dir "$SRV/token/certs.d" --url "docker://$TOKEN/cd/img:multi" --dest "$W/dest/disk.raw"
  assert_error_matches "refused the request anonymously"
}
run_test token_ok t_token_ok
run_test token_auth_file t_token_auth_file
run_test token_wrong t_token_wrong
run_test token_anonymous_refused t_token_anonymous_refused

# --- a token that expires while a blob is pulled: renewed, the download resumes ------------------
# The registry accepts tokens 60 s past their exp (distribution's leeway): --expires -59 makes
# them good for at most a second. The proxy drops the first blob transfer halfway; the resume
# comes after the 1 s backoff with an expired token, gets 401, and must renew it and go on.
TOKEN_ARGS="--expires -59" registry_start "$SRV/token-plain" token || { echo "token registry did not start" >&2; exit 1; }
registry_push "$L" plain-raw cd/img:v1 || { echo "push to the short-token registry failed" >&2; exit 1; }
proxy_start "$SRV/cut" cut || { echo "cutting proxy did not start" >&2; exit 1; }
CUT=127.0.0.1:$PROXY_PORT
CUT_LOG=$PROXY_LOG
t_token_renewed_mid_pull() {
  local before
  before=$(grep -c 'GET /token' "$SRV/token-plain/token.log")
  import_and_compare "$RAW" raw -v --insecure-tls --username "$HTUSER" --password-file "$(pwfile "$HTPASS")" \
    --url "docker://$CUT/cd/img:v1"
  grep -q "cut after" "$CUT_LOG" || fail "the proxy did not cut the blob"
  grep -q "renewing the authorization token" "$W/_meta/err" || fail "the token was not renewed"
  grep -q "resuming at byte" "$W/_meta/err" || fail "the blob was not resumed"
  (($(grep -c 'GET /token' "$SRV/token-plain/token.log") >= before + 2)) || fail "no second token request"
}
run_test token_renewed_mid_pull t_token_renewed_mid_pull

# --- local layouts -----------------------------------------------------------------------------------
t_oci_dir() { import_and_compare "$QCOW" qcow2 --url "oci:$L:replaced"; }
t_oci_archive() { import_and_compare "$RAW" raw --arch arm64 --url "oci-archive:$T/layout.tar:multi"; }
t_oci_unknown_tag() {
  expect_exit 9 --progress none --url "oci:$L:nope" --dest "$W/dest/disk.raw"
  assert_error_matches "tag \"nope\" not found in"
}
# an oci: layout is not pinned: the late-L2 qcow2 is read once (scratch offered: it spills; none: exit 10)
t_oci_late_l2_read_once() {
  mkdir -p "$W/_meta/scratch"
  cdi -v --progress none --qcow2-hold-limit 16Ki --scratch-dir "$W/_meta/scratch" --url "oci:$L:late-zlib" \
    --dest "$W/dest/disk.raw"
  check_success
  assert_same_as_qemu "$T/late-zlib.qcow2" "$W/dest/disk.raw" qcow2
  grep -q "spilled" "$W/_meta/err" || { show_output; fail "an oci: layout with scratch did not spill"; }
  ! grep -q "read the source 2 times" "$W/_meta/err" || fail "an oci: layout was read twice"
  rm -f "$W/dest/disk.raw"
  expect_exit 10 --progress none --qcow2-hold-limit 16Ki --url "oci:$L:late-zlib" --dest "$W/dest/disk.raw"
  [[ ! -e $W/dest/disk.raw ]] || fail "a failed import left a target"
}
run_test oci_dir t_oci_dir
run_test oci_archive t_oci_archive
run_test oci_unknown_tag t_oci_unknown_tag
run_test oci_late_l2_read_once t_oci_late_l2_read_once

finish
