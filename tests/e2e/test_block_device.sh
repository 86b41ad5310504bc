#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Block-device targets and sources on real loop devices (needs root, as CI has).
source "$(dirname "$0")/lib.sh"

# dirty_loop NAME SIZE [LOSETUP_OPTIONS]: a loop device over a 0xFF-filled file; prints the device.
dirty_loop() {
  fill_ff "$W/_meta/$1.img" "$2"
  make_loop "$W/_meta/$1.img" "${@:3}"
}

# device_matches DEV IMAGE_RAW: the device reads back as IMAGE_RAW over the image's range.
device_matches() {
  same_content "$1" "$2" || fail "$1 does not read back as $2 over its first $(size_of "$2") bytes"
}

t_qcow2_onto_dirty_device() {
  require_root
  local dev
  dev=$(dirty_loop blk $((80 * MIB)))
  run_import --url "$IMG/qcow2-v3.qcow2" --dest "$dev"
  device_matches "$dev" "$IMG/source.raw"
}

t_raw_gz_onto_dirty_device() {
  require_root
  local dev
  dev=$(dirty_loop blk $((80 * MIB)))
  run_import --url "$IMG/raw.gz" --dest "$dev"
  device_matches "$dev" "$IMG/source.raw"
}

t_sparse_qcow2_onto_dirty_device() {
  # 256 MiB virtual, ~1 MiB of data: every hole must read back as zeros on the dirty device
  require_root
  local dev
  dev=$(dirty_loop blk $((256 * MIB)))
  run_import --url "$IMG/sparse-256m.qcow2" --dest "$dev"
  qemu-img convert -q -O raw "$IMG/sparse-256m.qcow2" "$W/_meta/expected.raw"
  device_matches "$dev" "$W/_meta/expected.raw"
}

t_vmdk_onto_dirty_device() {
  # converted by qemu-img straight onto the device
  require_root
  local dev
  dev=$(dirty_loop blk $((80 * MIB)))
  run_import --url "$IMG/sparse.vmdk" --dest "$dev"
  device_matches "$dev" "$IMG/source.raw"
}

t_odd_raw_onto_4k_sector_device() {
  require_root
  local dev
  dev=$(dirty_loop blk $((8 * MIB)) --sector-size 4096)
  run_import --url "$IMG/odd.raw.gz" --dest "$dev"
  device_matches "$dev" "$IMG/odd.raw"
}

t_image_larger_than_device() {
  # the qcow2's virtual size (64 MiB) is known up front: refused before any write
  require_root
  local dev sum
  dev=$(dirty_loop blk $((32 * MIB)))
  sum=$(sha256sum < "$dev")
  expect_exit 6 --url "$IMG/qcow2-v3.qcow2" --dest "$dev"
  [[ $(sha256sum < "$dev") == "$sum" ]] || fail "the device was written to"
  assert_no_scratch_left "$W/scratch"
  expect_exit 6 --url "$IMG/sparse.vmdk" --dest "$dev"
  [[ $(sha256sum < "$dev") == "$sum" ]] || fail "the device was written to (vmdk)"
  expect_exit 6 --url "$IMG/source.raw" --dest "$dev"
  [[ $(sha256sum < "$dev") == "$sum" ]] || fail "the device was written to (raw)"
}

t_image_size_larger_than_device() {
  require_root
  local dev sum
  dev=$(dirty_loop blk $((80 * MIB)))
  sum=$(sha256sum < "$dev")
  expect_exit 6 --url "$IMG/qcow2-v3.qcow2" --dest "$dev" --image-size 1Gi
  [[ $(sha256sum < "$dev") == "$sum" ]] || fail "the device was written to"
}

t_stream_larger_than_device() {
  # 96 MiB of gzip'd data onto 80 MiB: the size is unknown until the end; the import fails and
  # the first MiB (written last) is wiped, so the device never looks like a complete disk
  require_root
  local dev
  dev=$(dirty_loop blk $((80 * MIB)))
  expect_exit 6 --url "$IMG/raw96.gz" --dest "$dev"
  is_zero "$dev" 0 "$MIB" || fail "the first MiB of the device was not wiped"
}

t_failing_device() {
  # a loop over a 128 MiB sparse file on a 16 MiB tmpfs: writes past ~16 MiB fail with ENOSPC/EIO
  require_root
  make_tmpfs "$W/_meta/tmpfs" 16M
  truncate -s $((128 * MIB)) "$W/_meta/tmpfs/big.img"
  local dev
  dev=$(make_loop "$W/_meta/tmpfs/big.img")
  expect_exit 3 --url "$IMG/qcow2-v3.qcow2" --dest "$dev"
  assert_error_matches 'space|I/O|input/output'
  # and through qemu-img (vmdk): the error must not be lost by its cache mode
  expect_exit 3 --url "$IMG/sparse.vmdk" --dest "$dev"
  assert_error_matches 'space|I/O|input/output'
}

t_device_in_use() {
  # another process holds the device exclusively (as a mounted filesystem would)
  require_root
  local dev holder
  dev=$(dirty_loop blk $((80 * MIB)))
  /usr/bin/python3 -c 'import os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print("held", flush=True); time.sleep(120)' "$dev" > "$W/_meta/holder.out" &
  holder=$!
  register_pid "$holder"
  for _ in $(seq 50); do [[ -s $W/_meta/holder.out ]] && break; sleep 0.1; done
  [[ -s $W/_meta/holder.out ]] || fail "could not hold $dev"
  expect_exit 11 --url "$IMG/qcow2-v3.qcow2" --dest "$dev"
  kill "$holder"
}

t_clone_from_block_device() {
  # the source is an existing VM disk on a block device (read-only loop)
  require_root
  local src
  src=$(make_loop "$IMG/source.raw" -r)
  run_import --url "$src" --dest "$W/dest/disk.raw"
  assert_same_bytes "$IMG/source.raw" "$W/dest/disk.raw"
  # a qcow2 on a device
  local q
  q=$(make_loop "$IMG/qcow2-v3.qcow2" -r)
  run_import --url "$q" --dest "$W/dest/disk2.raw"
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk2.raw"
  cdi info "$q"
  check_success
  grep -q 'qcow2' "$W/_meta/out" || { show_output; fail "info on a device does not detect qcow2"; }
}

t_source_device_in_use() {
  require_root
  local src holder
  src=$(make_loop "$IMG/source.raw" -r)
  /usr/bin/python3 -c 'import os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print("held", flush=True); time.sleep(120)' "$src" > "$W/_meta/holder.out" &
  holder=$!
  register_pid "$holder"
  for _ in $(seq 50); do [[ -s $W/_meta/holder.out ]] && break; sleep 0.1; done
  [[ -s $W/_meta/holder.out ]] || fail "could not hold $src"
  expect_exit 11 --url "$src" --dest "$W/dest/disk.raw"
  assert_error_matches 'in use'
  assert_failed_cleanly "$W/dest/disk.raw"
  run_import --url "$src" --dest "$W/dest/disk.raw" --force-shared
  assert_same_bytes "$IMG/source.raw" "$W/dest/disk.raw"
  kill "$holder"
}

t_source_file_locked_by_qemu() {
  # a running VM's image: qemu holds OFD locks on it
  local fifo holder
  cp "$IMG/qcow2-v3.qcow2" "$W/_meta/vm.qcow2"
  fifo=$W/_meta/qemu-io.in
  mkfifo "$fifo"
  qemu-io -f qcow2 "$W/_meta/vm.qcow2" < "$fifo" > "$W/_meta/qemu-io.out" 2>&1 &
  holder=$!
  register_pid "$holder"
  exec 7> "$fifo"
  sleep 0.5
  expect_exit 11 --url "$W/_meta/vm.qcow2" --dest "$W/dest/disk.raw"
  assert_error_matches 'in use'
  assert_failed_cleanly "$W/dest/disk.raw"
  run_import --url "$W/_meta/vm.qcow2" --dest "$W/dest/disk.raw" --force-shared
  assert_same_as_qemu "$IMG/qcow2-v3.qcow2" "$W/dest/disk.raw"
  exec 7>&-
  wait "$holder" || true
}

run_test qcow2_onto_dirty_device t_qcow2_onto_dirty_device
run_test raw_gz_onto_dirty_device t_raw_gz_onto_dirty_device
run_test sparse_qcow2_onto_dirty_device t_sparse_qcow2_onto_dirty_device
run_test vmdk_onto_dirty_device t_vmdk_onto_dirty_device
run_test odd_raw_onto_4k_sector_device t_odd_raw_onto_4k_sector_device
run_test image_larger_than_device t_image_larger_than_device
run_test image_size_larger_than_device t_image_size_larger_than_device
run_test stream_larger_than_device t_stream_larger_than_device
run_test failing_device t_failing_device
run_test device_in_use t_device_in_use
run_test clone_from_block_device t_clone_from_block_device
run_test source_device_in_use t_source_device_in_use
run_test source_file_locked_by_qemu t_source_file_locked_by_qemu
finish
