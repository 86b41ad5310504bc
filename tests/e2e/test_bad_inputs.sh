#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad inputs: each import must exit non-zero with the right exit code and one clear error line,
# leave nothing at --dest (an existing --dest untouched), no scratch files, and write nothing
# outside the target directory.
# Exit codes: 4 corrupt_input, 5 unsupported, 6 limit.
# Crafted qcow2 images and the DMG are made per test (qemu-img + tests/support/qcow2_patch.py,
# make_dmg.py), not in make-images.sh.
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

# --- images qemu refuses, made here from valid qemu-img/qemu-io images by patching one field ---
SUPPORT=$E2E_DIR/../support

# crafted_qcow2 NAME COMPAT SNAPSHOTS PATCH_ARGS...: $W/in/NAME, a 1 MiB qcow2 (compat 0.10 or 1.1)
# with 128 KiB written and SNAPSHOTS internal snapshots, then `qcow2_patch.py NAME PATCH_ARGS...`.
# qemu-img convert must refuse it: the refusal follows qemu, not only our own reading of the format.
crafted_qcow2() {
  local name=$1 compat=$2 snapshots=$3 f=$W/in/$1 i
  shift 3
  mkdir -p "$W/in"
  qemu-img create -q -f qcow2 -o "compat=$compat" "$f" 1M
  qemu-io -f qcow2 -c 'write -P 0xaa 0 128k' "$f" > /dev/null
  for ((i = 1; i <= snapshots; i++)); do qemu-img snapshot -c "s$i" "$f"; done
  python3 "$SUPPORT/qcow2_patch.py" "$f" "$@" >&2
  if qemu-img convert -f qcow2 -O raw "$f" "$W/_meta/qemu.raw" 2> "$W/_meta/qemu.err"; then
    fail "qemu-img convert accepts $name"
  fi
  echo "qemu-img: $(cat "$W/_meta/qemu.err")" >&2
  rm -f "$W/_meta/qemu.raw"
}

# bad_crafted IMAGE CODES REGEX: like bad, for $W/in/IMAGE
bad_crafted() {
  expect_exit "$2" --url "$W/in/$1" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_error_matches "$3"
  assert_error_matches "$1"
  assert_failed_cleanly "$W/dest/disk.raw"
}

t_qcow2_v2_zero_flag_allocated() {
  crafted_qcow2 v2-zero.qcow2 0.10 0 l2-or 0x10000 1
  bad_crafted v2-zero.qcow2 4 'L2 entry for guest 0x10000 .*index 1: zero flag \(bit 0\) set in a version 2 .*host cluster'
}
t_qcow2_v2_zero_flag_unallocated() {
  crafted_qcow2 v2-zero-unalloc.qcow2 0.10 0 l2-or 0x50000 1
  bad_crafted v2-zero-unalloc.qcow2 4 'guest 0x50000 .*zero flag \(bit 0\) set in a version 2 .*\(unallocated\)$'
}
t_qcow2_no_refcount_table() {
  crafted_qcow2 no-refcount.qcow2 1.1 0 header refcount_table_clusters 0
  bad_crafted no-refcount.qcow2 4 'no refcount table: refcount_table_clusters \(header offset 56\) is 0'
  # info refuses it too, as qemu-img info does
  cdi info "$W/in/no-refcount.qcow2"
  check_error 4
  assert_error_matches 'no refcount table'
}
t_qcow2_snapshot_extra_data() {
  crafted_qcow2 snap-extra.qcow2 1.1 2 snapshot-extra 1 1025
  bad_crafted snap-extra.qcow2 4 'snapshot table entry 1 at 0x[0-9a-f]+: 1025 bytes of extra data, more than qemu allows \(1024\)'
  # from a pipe the table is seen only as the stream passes it: refused all the same
  expect_exit_stdin 4 "$W/in/snap-extra.qcow2" --url - --dest "$W/dest/disk.raw"
  assert_error_matches 'snapshot table entry 1 .*1025 bytes of extra data'
  assert_failed_cleanly "$W/dest/disk.raw"
}

# An Apple disk image (UDIF): raw data, an XML plist and the 512-byte "koly" trailer, made by
# make_dmg.py and read back by qemu's dmg driver. Named .img: detection is by content.
t_dmg_refused() {
  mkdir -p "$W/in"
  head -c $((4 * MIB)) "$IMG/source.raw" > "$W/_meta/small.raw"
  python3 "$SUPPORT/make_dmg.py" "$W/_meta/small.raw" "$W/_meta/disk.dmg"
  qemu-img convert -f dmg -O raw "$W/_meta/disk.dmg" "$W/_meta/back.raw" 2> /dev/null
  cmp "$W/_meta/small.raw" "$W/_meta/back.raw" || fail "qemu's dmg driver does not read the crafted DMG back"
  mv "$W/_meta/disk.dmg" "$W/in/disk.img"
  bad_crafted disk.img 5 'image format dmg \(Apple disk image: "koly" trailer at offset [0-9]+\) is not supported'
  expect_exit_stdin 5 "$W/in/disk.img" --url - --dest "$W/dest/disk.raw"
  assert_error_matches 'dmg'
  assert_failed_cleanly "$W/dest/disk.raw"
}

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
run_test qcow2_v2_zero_flag_allocated t_qcow2_v2_zero_flag_allocated
run_test qcow2_v2_zero_flag_unallocated t_qcow2_v2_zero_flag_unallocated
run_test qcow2_no_refcount_table t_qcow2_no_refcount_table
run_test qcow2_snapshot_extra_data t_qcow2_snapshot_extra_data
run_test dmg_refused t_dmg_refused
run_test decompression_bomb t_decompression_bomb
run_test truncated_from_stdin t_truncated_from_stdin
run_test failure_keeps_existing_dest t_failure_keeps_existing_dest
run_test tar_two_files t_tar_two_files
finish
