#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compressed inputs (gzip, xz, zstd; multi-member/stream/block/frame; nested) from local files and
# from stdin: the output is byte-for-byte what qemu-img makes of the uncompressed image.
source "$(dirname "$0")/lib.sh"
SUPPORT=$E2E_DIR/../support

# import_compressed IMAGE UNCOMPRESSED [QEMU_FORMAT]
# (for an odd-sized raw the reference is the raw itself: qemu-img rounds raw up to 512 bytes)
import_compressed() {
  run_import --url "$IMG/$1" --dest "$W/dest/disk.raw"
  if [[ $2 == odd.raw ]]; then
    assert_same_bytes "$IMG/odd.raw" "$W/dest/disk.raw"
  else
    assert_same_as_qemu "$IMG/$2" "$W/dest/disk.raw" "${3:-}"
  fi
  assert_no_scratch_left "$W/scratch"
  [[ $(ls -A "$W/dest") == disk.raw ]] || fail "unexpected files in dest: $(ls -A "$W/dest")"
}

t_raw_gz() {
  import_compressed raw.gz source.raw raw
  assert_allocated_below "$W/dest/disk.raw" $((12 * MIB))
  assert_info_chain "$IMG/raw.gz" "file > gzip > raw"
}
t_raw_gz_multi_member() { import_compressed raw.multi.gz source.raw raw; }
t_odd_raw_gz() { import_compressed odd.raw.gz odd.raw raw; }
t_raw_xz_single_block() { import_compressed raw.xz source.raw raw; assert_info_chain "$IMG/raw.xz" "file > xz > raw"; }
t_raw_xz_multi_block() { import_compressed raw.multiblock.xz source.raw raw; }
# A local multi-block xz: its blocks are decoded in parallel, each read by offset and written at
# its place (formats/xz/xz_blocks); the same bytes as the stream decoder and as qemu-img.
t_raw_xz_blocks_parallel() {
  run_import -v --progress none --url "$IMG/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  assert_allocated_below "$W/dest/disk.raw" $((12 * MIB))   # zero runs stay holes
  if (($(nproc) >= 2)); then
    grep -q "plan: xz: 64 blocks in 1 stream(s), decoded in parallel on 2 workers" "$W/_meta/err" ||
      { show_output; fail "the blocks were not decoded in parallel"; }
  fi
  rm -f "$W/dest/disk.raw"
  run_import -v --progress none --xz-decoder stream --url "$IMG/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  ! grep -q "decoded in parallel" "$W/_meta/err" || { show_output; fail "--xz-decoder stream decoded by blocks"; }
  # --checksum covers the file itself (verified before the blocks are read by offset)
  local sum
  sum=$(sha256sum "$IMG/raw.multiblock.xz" | cut -d' ' -f1)
  rm -f "$W/dest/disk.raw"
  run_import -v --progress none --checksum "sha256:$sum" --url "$IMG/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  grep -q "Checksum verification passed" "$W/_meta/err" || { show_output; fail "the checksum was not verified"; }
  rm -f "$W/dest/disk.raw"
  expect_exit 4 --progress none --checksum "sha256:$(echo "$sum" | tr 0-9a-f 1-9a-f0)" --url "$IMG/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  assert_error_matches 'checksum mismatch'
  assert_failed_cleanly "$W/dest/disk.raw"
}
# The last 512 bytes are seen as the stream copy sees them: a fixed VHD's footer is not part of
# the image, a DMG trailer is refused (nothing left behind).
t_xz_blocks_tail() {
  mkdir -p "$W/in"
  xz -0 -T2 --block-size=1MiB -c "$IMG/fixed.vhd" > "$W/in/fixed.vhd.xz"
  run_import -v --progress none --url "$W/in/fixed.vhd.xz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/fixed.vhd" "$W/dest/disk.raw" vpc
  grep -q "decoded in parallel" "$W/_meta/err" || (($(nproc) < 2)) || { show_output; fail "not decoded by blocks"; }
  rm -f "$W/dest/disk.raw"
  head -c $((4 * MIB)) "$IMG/source.raw" > "$W/_meta/small.raw"
  python3 "$SUPPORT/make_dmg.py" "$W/_meta/small.raw" "$W/_meta/disk.dmg"
  xz -0 -T2 --block-size=1MiB -c "$W/_meta/disk.dmg" > "$W/in/dmg.xz"
  expect_exit 5 --progress none --url "$W/in/dmg.xz" --dest "$W/dest/disk.raw"
  assert_error_matches 'image format dmg \(Apple disk image: "koly" trailer at offset [0-9]+\) is not supported'
  assert_failed_cleanly "$W/dest/disk.raw"
}
# Truncation, trailing garbage, a damaged block: exit 4, no target; an image larger than
# --image-size: exit 6 before anything is written.
t_xz_blocks_bad() {
  mkdir -p "$W/in"
  local n
  n=$(size_of "$IMG/raw.multiblock.xz")
  head -c $((n - 100)) "$IMG/raw.multiblock.xz" > "$W/in/cut.xz"
  expect_exit 4 --progress none --url "$W/in/cut.xz" --dest "$W/dest/disk.raw"
  assert_error_matches '^cdi-import: error: .*xz'
  assert_failed_cleanly "$W/dest/disk.raw"
  { cat "$IMG/raw.multiblock.xz"; printf 'junk'; } > "$W/in/junk.xz"
  expect_exit 4 --progress none --url "$W/in/junk.xz" --dest "$W/dest/disk.raw"
  assert_failed_cleanly "$W/dest/disk.raw"
  cp "$IMG/raw.multiblock.xz" "$W/in/damaged.xz"
  printf 'ZZZZZZZZZZZZZZZZ' | dd of="$W/in/damaged.xz" bs=1 seek=$((n / 2)) conv=notrunc status=none
  expect_exit 4 --progress none --url "$W/in/damaged.xz" --dest "$W/dest/disk.raw"
  assert_error_matches 'xz, block [0-9]+ at offset [0-9]+: compressed data is corrupt'
  assert_failed_cleanly "$W/dest/disk.raw"
  expect_exit 6 --progress none --image-size 16Mi --url "$IMG/raw.multiblock.xz" --dest "$W/dest/disk.raw"
  assert_error_matches 'image is larger than'
  assert_failed_cleanly "$W/dest/disk.raw"
}
t_raw_xz_multi_stream() { import_compressed raw.multistream.xz source.raw raw; }
t_raw_zst() { import_compressed raw.zst source.raw raw; assert_info_chain "$IMG/raw.zst" "file > zstd > raw"; }
t_raw_zst_multi_frame() { import_compressed raw.multiframe.zst source.raw raw; }
t_odd_raw_zst() { import_compressed odd.raw.zst odd.raw raw; }
t_nested_xz_in_gzip() { import_compressed raw.xz.gz source.raw raw; assert_info_chain "$IMG/raw.xz.gz" "file > gzip > xz > raw"; }
# qcow2 streams are decoded natively: no --scratch-dir is given, so none can be used, and the
# summary names the native decoder and no scratch bytes.
assert_native_no_scratch() {
  grep -q "via native" "$W/_meta/err" || { show_output; fail "qcow2 was not decoded natively"; }
  if grep -q "scratch" "$W/_meta/err"; then show_output; fail "summary reports scratch use"; fi
}
t_qcow2_gz() {
  import_compressed qcow2.gz qcow2-v3.qcow2
  assert_native_no_scratch
  assert_info_chain "$IMG/qcow2.gz" "file > gzip > qcow2"
}
t_qcow2_xz() {
  import_compressed qcow2.xz qcow2-v3.qcow2
  assert_native_no_scratch
  assert_info_chain "$IMG/qcow2.xz" "file > xz > qcow2"
}
t_qcow2_zlib_zst() { import_compressed qcow2-zlib.qcow2.zst qcow2-zlib.qcow2; }

t_gce_sparse_tar_gz() {
  run_import --url "$IMG/disk.raw.tar.gz" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  assert_info_chain "$IMG/disk.raw.tar.gz" "file > gzip > tar > raw"
}

t_stdin_qcow2_gz() {
  run_import_stdin "$IMG/qcow2.gz" --url - --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
}
t_stdin_raw_xz() {
  run_import_stdin "$IMG/raw.multiblock.xz" --url - --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_stdin_raw_zst() {
  run_import_stdin "$IMG/raw.zst" --url - --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
}
t_stdin_qcow2() {
  # uncompressed qcow2 through a pipe: decoded as a stream
  run_import_stdin "$IMG/qcow2-v3.qcow2" --url - --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  assert_native_no_scratch
}
t_stdin_info() {
  cdi_stdin "$IMG/qcow2.xz" info -
  check_success
  grep -qE '(^|[^a-z0-9]+)xz > qcow2($|[^ >a-z0-9])' "$W/_meta/out" || { show_output; fail "info - does not name xz > qcow2"; }
}

t_compressed_vmdk_needs_scratch() {
  # vmdk is converted by qemu-img, which needs random access: a compressed one is spooled
  expect_exit 10 --url "$IMG/stream.vmdk.gz" --dest "$W/dest/disk.raw"
  assert_error_matches 'scratch space required'
  assert_failed_cleanly "$W/dest/disk.raw"
  run_import --url "$IMG/stream.vmdk.gz" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_same_as_qemu "$IMG/stream.vmdk" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
  assert_info_chain "$IMG/stream.vmdk.gz" "file > gzip > vmdk"
}

t_compressed_vhdx_with_scratch() {
  run_import --url "$IMG/disk.vhdx.zst" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_same_as_qemu "$IMG/disk.vhdx" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
}

t_stdin_vmdk_scratch() {
  run_import_stdin "$IMG/stream.vmdk" --url - --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_same_as_qemu "$IMG/stream.vmdk" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
  expect_exit_stdin 10 "$IMG/stream.vmdk" --url - --dest "$W/dest/other.raw"
  assert_error_matches 'scratch space required'
  [[ ! -e $W/dest/other.raw ]] || fail "failed import left a file"
}

run_test raw_gz t_raw_gz
run_test raw_gz_multi_member t_raw_gz_multi_member
run_test odd_raw_gz t_odd_raw_gz
run_test raw_xz_single_block t_raw_xz_single_block
run_test raw_xz_multi_block t_raw_xz_multi_block
run_test raw_xz_blocks_parallel t_raw_xz_blocks_parallel
run_test xz_blocks_tail t_xz_blocks_tail
run_test xz_blocks_bad t_xz_blocks_bad
run_test raw_xz_multi_stream t_raw_xz_multi_stream
run_test raw_zst t_raw_zst
run_test raw_zst_multi_frame t_raw_zst_multi_frame
run_test odd_raw_zst t_odd_raw_zst
run_test nested_xz_in_gzip t_nested_xz_in_gzip
run_test qcow2_gz t_qcow2_gz
run_test qcow2_xz t_qcow2_xz
run_test qcow2_zlib_zst t_qcow2_zlib_zst
run_test gce_sparse_tar_gz t_gce_sparse_tar_gz
run_test stdin_qcow2_gz t_stdin_qcow2_gz
run_test stdin_raw_xz t_stdin_raw_xz
run_test stdin_raw_zst t_stdin_raw_zst
run_test stdin_qcow2 t_stdin_qcow2
run_test stdin_info t_stdin_info
run_test compressed_vmdk_needs_scratch t_compressed_vmdk_needs_scratch
run_test compressed_vhdx_with_scratch t_compressed_vhdx_with_scratch
run_test stdin_vmdk_scratch t_stdin_vmdk_scratch
finish
