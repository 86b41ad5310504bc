#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# --checksum / --checksum-url: the digest of the source bytes as served (before decompression) is
# verified for every kind of source before anything is committed; CDI's syntax and error texts.
# HTTP cases run against a real nginx on 127.0.0.1 serving the images and a SHA256SUMS list.
source "$(dirname "$0")/lib.sh"
source "$E2E_DIR/../support/nginx.sh"

SRV=$T/srv
DOC=$T/docroot
mkdir -p "$SRV" "$DOC"
for f in raw.xz raw.gz qcow2.xz qcow2-v3.qcow2 archive.tar sparse.vmdk source.raw; do ln -s "$IMG/$f" "$DOC/$f"; done
(cd "$IMG" && sha256sum raw.xz qcow2.xz > "$DOC/SHA256SUMS" && sha512sum --tag sparse.vmdk > "$DOC/SHA512SUMS")
trap 'nginx_stop; cleanup' EXIT
nginx_start "$SRV/nginx" "$DOC" || { echo "nginx did not start" >&2; exit 1; }
H=http://127.0.0.1:$HTTP_PORT

sum_of() { "${1}sum" "$2" | cut -d' ' -f1; }
WRONG=sha256:$(printf 'not the image' | sha256sum | cut -d' ' -f1)

t_local_sha256_ok() {
  run_import --progress none --checksum "sha256:$(sum_of sha256 "$IMG/raw.xz")" --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "checksum sha256 ok" "$W/_meta/err" || fail "summary does not say the checksum was verified"
}
t_upper_case_md5_ok() {
  local sum
  sum=$(sum_of md5 "$IMG/qcow2.xz" | tr a-f A-F)
  run_import --progress none --checksum " MD5:$sum " --url "$IMG/qcow2.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}
t_http_sha1_ok() {
  run_import -v --progress none --checksum "sha1:$(sum_of sha1 "$IMG/qcow2-v3.qcow2")" --url "$H/qcow2-v3.qcow2" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  grep -q "Checksum verification passed: sha1:" "$W/_meta/err" || fail "no 'Checksum verification passed' log line"
}
t_http_mismatch() {
  expect_exit 4 --progress none --checksum "$WRONG" --url "$H/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "checksum validation failed: checksum mismatch: expected $WRONG, calculated sha256:$(sum_of sha256 "$IMG/raw.gz")$"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_qcow2_mismatch() {
  expect_exit 4 --progress none --checksum "$WRONG" --url "$IMG/qcow2-v3.qcow2" --dest "$W/dest/disk.raw"
  assert_error_matches "checksum mismatch"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_vmdk_mismatch_is_never_converted() {
  cdi -v --progress none --checksum "$WRONG" --url "$IMG/sparse.vmdk" --dest "$W/dest/disk.raw"
  ((LAST_RC == 4)) || { show_output; fail "exit $LAST_RC, expected 4"; }
  assert_error_matches "^cdi-import: error: .*checksum mismatch"
  ! grep -q "converting vmdk" "$W/_meta/err" || fail "qemu-img ran before the checksum was verified"
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_spooled_vmdk_mismatch_is_never_converted() {
  # a vmdk from stdin is spooled to scratch: the digest is checked once the spool holds the whole
  # stream, before qemu-img sees it
  mkdir -p "$W/scratch"
  cdi_stdin "$IMG/sparse.vmdk" -v --progress none --checksum "$WRONG" --url - --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  ((LAST_RC == 4)) || { show_output; fail "exit $LAST_RC, expected 4"; }
  assert_error_matches "^cdi-import: error: .*checksum mismatch"
  grep -q "spooling" "$W/_meta/err" || { show_output; fail "the vmdk was not spooled"; }
  ! grep -q "converting vmdk" "$W/_meta/err" || fail "qemu-img ran before the checksum was verified"
  assert_failed_cleanly "$W/dest/disk.raw"
  [[ -z $(ls -A "$W/scratch") ]] || fail "scratch not empty"
}
t_vmdk_ok() {
  run_import --progress none --checksum "sha512:$(sum_of sha512 "$IMG/sparse.vmdk")" --url "$IMG/sparse.vmdk" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/sparse.vmdk" "$W/dest/disk.raw"
}
t_stdin_ok() {
  run_import_stdin "$IMG/raw.gz" --progress none --checksum "sha256:$(sum_of sha256 "$IMG/raw.gz")" --url - --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_archive_digest_covers_the_whole_file() {
  # tar stops reading at the end-of-archive blocks; the digest still covers every byte
  run_import --progress none --content-type archive --checksum "sha256:$(sum_of sha256 "$IMG/archive.tar")" \
    --url "$H/archive.tar" --dest "$W/dest/tree"
  [[ -d $W/dest/tree ]] || fail "nothing extracted"
}
t_archive_mismatch_leaves_nothing() {
  expect_exit 4 --progress none --content-type archive --checksum "$WRONG" --url "$H/archive.tar" --dest "$W/dest/tree"
  assert_error_matches "checksum mismatch"
  [[ ! -e $W/dest/tree ]] || fail "a failed archive import left $(ls -A "$W/dest/tree" | head -n 3)"
}
t_invalid_checksums() {
  expect_exit 2 --progress none --checksum "sha256abc123" --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_error_matches "invalid checksum: invalid checksum format: expected 'algorithm:hash', got 'sha256abc123'"
  expect_exit 2 --progress none --checksum "crc32:abc123" --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_error_matches "unsupported hash algorithm 'crc32': supported algorithms are: md5, sha1, sha256, sha512"
  expect_exit 2 --progress none --checksum "sha256:abc" --url "$IMG/raw.xz" --dest "$W/dest/disk.raw"
  assert_error_matches "invalid sha256 hash length: expected 64 hex characters, got 3"
  assert_wrote_nothing "$W/dest"
}
t_checksum_url_ok() {
  run_import -v --progress none --checksum-url "$H/SHA256SUMS" --url "$H/raw.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "expected checksum from .*SHA256SUMS: sha256:$(sum_of sha256 "$IMG/raw.xz")" "$W/_meta/err" || fail "digest not picked from the list"
}
t_checksum_url_bsd_tags_local_list() {
  run_import --progress none --checksum-url "$DOC/SHA512SUMS" --url "$H/sparse.vmdk" --scratch-dir "$W/scratch" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/sparse.vmdk" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
}
t_checksum_url_no_line() {
  expect_exit 9 --progress none --checksum-url "$H/SHA256SUMS" --url "$H/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "checksum-url: .*SHA256SUMS: checksum list has no line for raw.gz"
  assert_wrote_nothing "$W/dest"
}
t_checksum_url_list_missing() {
  expect_exit 9 --progress none --checksum-url "$H/NOPE" --url "$H/raw.gz" --dest "$W/dest/disk.raw"
  assert_error_matches "404"
}
run_test local_sha256_ok t_local_sha256_ok
run_test upper_case_md5_ok t_upper_case_md5_ok
run_test http_sha1_ok t_http_sha1_ok
run_test http_mismatch t_http_mismatch
run_test qcow2_mismatch t_qcow2_mismatch
run_test vmdk_mismatch_is_never_converted t_vmdk_mismatch_is_never_converted
run_test spooled_vmdk_mismatch_is_never_converted t_spooled_vmdk_mismatch_is_never_converted
run_test vmdk_ok t_vmdk_ok
run_test stdin_ok t_stdin_ok
run_test archive_digest_covers_the_whole_file t_archive_digest_covers_the_whole_file
run_test archive_mismatch_leaves_nothing t_archive_mismatch_leaves_nothing
run_test invalid_checksums t_invalid_checksums
run_test checksum_url_ok t_checksum_url_ok
run_test checksum_url_bsd_tags_local_list t_checksum_url_bsd_tags_local_list
run_test checksum_url_no_line t_checksum_url_no_line
run_test checksum_url_list_missing t_checksum_url_list_missing
finish
