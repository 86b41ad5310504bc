#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Uncompressed disk formats, local files: every image imported into a file is byte-for-byte what
# `qemu-img convert -O raw` makes of it, and `info` names the right chain.
source "$(dirname "$0")/lib.sh"

# import_and_compare IMAGE [QEMU_FORMAT]: import into a file, compare with qemu-img.
import_and_compare() {
  run_import --url "$IMG/$1" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/$1" "$W/dest/disk.raw" "${2:-}"
  assert_no_scratch_left "$W/scratch"
  # only the target file: the temporary name is gone
  [[ $(ls -A "$W/dest") == disk.raw ]] || fail "unexpected files in dest: $(ls -A "$W/dest")"
}

t_raw() {
  import_and_compare source.raw raw
  # zero blocks become holes: 64 MiB with ~6 MiB of data
  assert_allocated_below "$W/dest/disk.raw" $((12 * MIB))
  assert_info_chain "$IMG/source.raw" "file > raw"
}

t_odd_sized_raw() {
  # qemu-img rounds a raw image up to 512 bytes, so the reference here is the source itself
  run_import --url "$IMG/odd.raw" --dest "$W/dest/disk.raw"
  assert_same_bytes "$IMG/odd.raw" "$W/dest/disk.raw"
  [[ $(stat -c %s "$W/dest/disk.raw") == $((4 * MIB + 12345)) ]] || fail "odd size not kept"
}

t_all_zero_2g_raw() {
  run_import --url "$IMG/zero.raw" --dest "$W/dest/disk.raw"
  [[ $(stat -c %s "$W/dest/disk.raw") == $((2048 * MIB)) ]] || fail "size is not 2 GiB"
  assert_allocated_below "$W/dest/disk.raw" $((1 * MIB))
  is_zero "$W/dest/disk.raw" 0 $((2048 * MIB)) || fail "the 2 GiB zero image does not read back as zeros"
}

t_qcow2_v2() { import_and_compare qcow2-v2.qcow2; assert_info_chain "$IMG/qcow2-v2.qcow2" "file > qcow2"; }
t_qcow2_v3() {
  import_and_compare qcow2-v3.qcow2
  assert_allocated_below "$W/dest/disk.raw" $((12 * MIB))
  assert_info_chain "$IMG/qcow2-v3.qcow2" "file > qcow2"
}
t_qcow2_zlib() { import_and_compare qcow2-zlib.qcow2; }
# qemu-img convert -c writes the data before the L2 tables. From a local file the decoder reads by
# random access, so even a hold limit far below that gap needs neither memory nor scratch; the same
# image from a pipe needs scratch (exit 10) under that limit.
t_qcow2_compressed_late_l2_local_needs_no_scratch() {
  local src=$W/_meta/late.raw img=$W/_meta/late.qcow2 algo
  head -c $((6 * MIB)) /dev/urandom > "$src"
  { yes 'compressible text for the late-L2 qcow2 test ' || true; } | head -c $((6 * MIB)) >> "$src"
  truncate -s $((16 * MIB)) "$src"
  for algo in zlib zstd; do
    qemu-img convert -q -f raw -O qcow2 -c -o cluster_size=4096,compression_type=$algo "$src" "$img"
    run_import -v --progress none --qcow2-hold-limit 64Ki --url "$img" --dest "$W/dest/disk.raw"
    assert_same_as_qemu "$img" "$W/dest/disk.raw"
    grep -q "random access on the local file\|positioned reads" "$W/_meta/err" || { show_output; fail "$algo: not read by random access"; }
    # the summary after the target's name (the test's own path says "scratch")
    ! grep "imported" "$W/_meta/err" | sed 's/.*(file)://' | grep -qi "scratch\|held\|spill" || { show_output; fail "$algo: held or spilled"; }
    cdi info --qcow2-hold-limit 64Ki "$img"
    ((LAST_RC == 0)) || { show_output; fail "info failed"; }
    grep -q "scratch: not needed" "$W/_meta/out" || { show_output; fail "info says scratch is needed"; }
    grep -q "random access on the local file" "$W/_meta/out" || { show_output; fail "info does not show random access"; }
    rm -f "$W/dest/disk.raw"
    cdi_stdin "$img" --progress none --qcow2-hold-limit 64Ki --url - --dest "$W/dest/disk.raw"
    ((LAST_RC == 10)) || { show_output; fail "$algo from a pipe: exit $LAST_RC, expected 10 (scratch required)"; }
    [[ ! -e $W/dest/disk.raw ]] || fail "a failed import left a target"
  done
}
t_qcow2_zstd() { import_and_compare qcow2-zstd.qcow2; }
t_qcow2_extended_l2() { import_and_compare qcow2-extl2.qcow2; }
t_qcow2_cluster_512() { import_and_compare qcow2-c512.qcow2; }
t_qcow2_cluster_2m() { import_and_compare qcow2-c2m.qcow2; }

t_qcow2_big_virtual() {
  import_and_compare big-virtual.qcow2
  [[ $(stat -c %s "$W/dest/disk.raw") == $((1024 * MIB)) ]] || fail "virtual size not kept"
  assert_allocated_below "$W/dest/disk.raw" $((8 * MIB))
  cdi info "$IMG/big-virtual.qcow2" --json
  check_success
  json_number_anywhere "$W/_meta/out" $((1024 * MIB)) || { show_output; fail "info --json lacks the virtual size"; }
}

t_vmdk_monolithic_sparse() { import_and_compare sparse.vmdk; assert_info_chain "$IMG/sparse.vmdk" "file > vmdk"; }
t_vmdk_stream_optimized() { import_and_compare stream.vmdk; assert_info_chain "$IMG/stream.vmdk" "file > vmdk"; }
t_vhd_dynamic() { import_and_compare dynamic.vhd; assert_info_chain "$IMG/dynamic.vhd" "file > vhd"; }
t_vhd_fixed() {
  # qemu-img itself probes a fixed VHD as raw: the reference conversion must name the format
  import_and_compare fixed.vhd vpc
  [[ $(stat -c %s "$W/dest/disk.raw") == "$SOURCE_SIZE" ]] || fail "fixed VHD footer imported as data"
  assert_info_chain "$IMG/fixed.vhd" "file > vhd"
}
t_vhdx() { import_and_compare disk.vhdx; assert_info_chain "$IMG/disk.vhdx" "file > vhdx"; }
t_vdi() { import_and_compare disk.vdi; assert_info_chain "$IMG/disk.vdi" "file > vdi"; }

t_tar_one_disk() {
  run_import --url "$IMG/disk.tar" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/source.raw" "$W/dest/disk.raw" raw
  assert_info_chain "$IMG/disk.tar" "file > tar[disk.img] > raw"
}

t_tar_one_qcow2_with_scratch() {
  # a qcow2 inside a tar is a stream: converted on the fly or spooled, never left in scratch
  run_import --url "$IMG/qcow2.tar" --dest "$W/dest/disk.raw" --scratch-dir "$W/scratch"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  assert_no_scratch_left "$W/scratch"
  assert_info_chain "$IMG/qcow2.tar" "file > tar > qcow2"
}

t_file_url() {
  run_import --url "file://$IMG/qcow2-v3.qcow2" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  assert_info_chain "file://$IMG/qcow2-v3.qcow2" "file > qcow2"
}

t_import_replaces_existing_file() {
  printf 'old content' > "$W/dest/disk.raw"
  run_import --url "$IMG/qcow2-v3.qcow2" --dest "$W/dest/disk.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
}

t_image_size_grows_file() {
  run_import --url "$IMG/qcow2-v3.qcow2" --dest "$W/dest/disk.raw" --image-size 100Mi
  [[ $(stat -c %s "$W/dest/disk.raw") == $((100 * MIB)) ]] || fail "file not grown to 100Mi"
  cmp -n "$SOURCE_SIZE" "$IMG/source.raw" "$W/dest/disk.raw" >&2 || fail "content differs"
  is_zero "$W/dest/disk.raw" "$SOURCE_SIZE" $((36 * MIB)) || fail "grown part is not zero"
  # a plain byte count is a quantity too
  rm -f "$W/dest/disk.raw"
  run_import --url "$IMG/source.raw" --dest "$W/dest/disk.raw" --image-size 134217728
  [[ $(stat -c %s "$W/dest/disk.raw") == 134217728 ]] || fail "file not grown to 134217728"
  cmp -n "$SOURCE_SIZE" "$IMG/source.raw" "$W/dest/disk.raw" >&2 || fail "content differs"
}

t_image_size_smaller_than_image() {
  # the requested size is the capacity of the volume (CDI): a larger image does not fit (limit)
  expect_exit 6 --url "$IMG/qcow2-v3.qcow2" --dest "$W/dest/disk.raw" --image-size 32Mi
  assert_failed_cleanly "$W/dest/disk.raw"
}

run_test raw t_raw
run_test odd_sized_raw t_odd_sized_raw
run_test all_zero_2g_raw t_all_zero_2g_raw
run_test qcow2_v2 t_qcow2_v2
run_test qcow2_v3 t_qcow2_v3
run_test qcow2_zlib t_qcow2_zlib
run_test qcow2_compressed_late_l2_local_needs_no_scratch t_qcow2_compressed_late_l2_local_needs_no_scratch
run_test qcow2_zstd t_qcow2_zstd
run_test qcow2_extended_l2 t_qcow2_extended_l2
run_test qcow2_cluster_512 t_qcow2_cluster_512
run_test qcow2_cluster_2m t_qcow2_cluster_2m
run_test qcow2_big_virtual t_qcow2_big_virtual
run_test vmdk_monolithic_sparse t_vmdk_monolithic_sparse
run_test vmdk_stream_optimized t_vmdk_stream_optimized
run_test vhd_dynamic t_vhd_dynamic
run_test vhd_fixed t_vhd_fixed
run_test vhdx t_vhdx
run_test vdi t_vdi
run_test tar_one_disk t_tar_one_disk
run_test tar_one_qcow2_with_scratch t_tar_one_qcow2_with_scratch
run_test file_url t_file_url
run_test import_replaces_existing_file t_import_replaces_existing_file
run_test image_size_grows_file t_image_size_grows_file
run_test image_size_smaller_than_image t_image_size_smaller_than_image
finish
