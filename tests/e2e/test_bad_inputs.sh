#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad inputs: each import must exit non-zero with the right exit code and one clear error line,
# leave nothing at --dest (an existing --dest untouched), no scratch files, and write nothing
# outside the target directory.
# Exit codes: 4 corrupt_input, 5 unsupported, 6 limit.
source "$(dirname "$0")/lib.sh"

# bad IMAGE CODES [REGEX [EXTRA_ARGS...]]: import IMAGE (with a scratch dir, so that scratch is
# exercised where a stage uses it) must fail with CODES and a message matching REGEX.
bad() {
  local image=$1 codes=$2 regex=${3:-.}
  shift 3 || shift $#
  expect_exit "$codes" --url "$IMG/$image" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch" "$@"
  assert_error_matches "$regex"
  # the message names the input
  assert_error_matches "$image"
  assert_failed_cleanly "$W/dest/disk.raw"
}

t_backing_file() { bad backing-overlay.qcow2 5 'backing'; }
t_luks_encrypted() { bad luks.qcow2 5 'encrypt'; }
t_truncated_gz_1() { bad trunc1-raw.gz 4 'gzip'; }
t_truncated_gz_half() { bad trunchalf-raw.gz 4 'gzip'; }
t_truncated_xz_1() { bad trunc1-raw.xz 4 'xz'; }
t_truncated_xz_half() { bad trunchalf-raw.xz 4 'xz'; }
t_truncated_zst_1() { bad trunc1-raw.zst 4 'zstd'; }
t_truncated_zst_half() { bad trunchalf-raw.zst 4 'zstd'; }
t_truncated_qcow2_1() { bad trunc1-qcow2-v3.qcow2 4 'qcow2'; }
t_truncated_qcow2_half() { bad trunchalf-qcow2-v3.qcow2 4 'qcow2'; }
t_gzip_bad_crc() { bad badcrc.gz 4 'crc'; }
t_gzip_trailing_garbage() { bad trailing.gz 4 'trailing|garbage'; }
# an absurd table size is corrupt metadata or a limit: both classes are right
t_qcow2_absurd_l1() { bad absurd-l1.qcow2 '4|6' 'l1'; }
# random bytes behind the magic: corrupt header, or an unknown version/feature
t_qcow2_magic_garbage() { bad garbage.qcow2 '4|5' 'qcow2'; }
t_qcow2_magic_garbage_any_version() { bad garbage2.qcow2 '4|5' 'qcow2'; }

t_decompression_bomb() {
  # 3 GiB of zeros in 470 KiB of xz, into a 1 GiB volume: refused once it passes 1 GiB
  bad bomb.xz 6 '.' --image-size 1Gi
}

t_truncated_from_stdin() {
  expect_exit_stdin 4 "$IMG/trunchalf-raw.gz" --url - --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_error_matches 'gzip'
  assert_failed_cleanly "$W/dest/disk.raw"
}

t_failure_keeps_existing_dest() {
  printf 'precious old disk' > "$W/dest/disk.raw"
  cp "$W/dest/disk.raw" "$W/_meta/before"
  expect_exit 4 --url "$IMG/trunchalf-raw.zst" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_same_bytes "$W/_meta/before" "$W/dest/disk.raw"
  [[ $(ls -A "$W/dest") == disk.raw ]] || fail "temp files left in dest: $(ls -A "$W/dest")"
  assert_no_scratch_left "$W/scratch"
  assert_nothing_outside "$W/dest"
}

t_tar_two_files() {
  # kubevirt content type: a tar with two files is ambiguous; the error lists the entries
  expect_exit '2|5' --url "$IMG/two.tar" --dest "$W/dest/disk.raw"
  assert_error_matches 'README'
  assert_error_matches 'disk\.img'
  assert_failed_cleanly "$W/dest/disk.raw"
  # ... and --tar-entry picks one
  run_import --url "$IMG/two.tar" --dest "$W/dest/disk.raw" --tar-entry disk.img
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}

run_test backing_file t_backing_file
run_test luks_encrypted t_luks_encrypted
run_test truncated_gz_1 t_truncated_gz_1
run_test truncated_gz_half t_truncated_gz_half
run_test truncated_xz_1 t_truncated_xz_1
run_test truncated_xz_half t_truncated_xz_half
run_test truncated_zst_1 t_truncated_zst_1
run_test truncated_zst_half t_truncated_zst_half
run_test truncated_qcow2_1 t_truncated_qcow2_1
run_test truncated_qcow2_half t_truncated_qcow2_half
run_test gzip_bad_crc t_gzip_bad_crc
run_test gzip_trailing_garbage t_gzip_trailing_garbage
run_test qcow2_absurd_l1 t_qcow2_absurd_l1
run_test qcow2_magic_garbage t_qcow2_magic_garbage
run_test qcow2_magic_garbage_any_version t_qcow2_magic_garbage_any_version
run_test decompression_bomb t_decompression_bomb
run_test truncated_from_stdin t_truncated_from_stdin
run_test failure_keeps_existing_dest t_failure_keeps_existing_dest
run_test tar_two_files t_tar_two_files
finish
