// SPDX-License-Identifier: Apache-2.0
#include "formats/disk/disk_probe.hpp"

#include <cstring>

#include "lib/util/endian.hpp"
namespace cdi::formats::disk {
namespace {

bool has(Head head, size_t off, std::string_view magic) {
  if (head.size() < off + magic.size()) return false;
  return std::memcmp(head.data() + off, magic.data(), magic.size()) == 0;
}

using util::load_be32;
using util::load_be64;

}  // namespace

Probe probe(Head head) {
  using namespace std::string_view_literals;
  if (has(head, 0, "QFI\xfb"sv)) {
    if (head.size() >= 8) {
      uint32_t version = load_be32(head.data() + 4);
      if (version == 2 || version == 3) return {DiskFormat::qcow2, 64};
      if (version == 1) return {DiskFormat::qcow1, 64};
    }
    return {DiskFormat::qcow2, 32};  // unknown version: the decoder refuses it with details
  }
  if (has(head, 0, "KDMV"sv)) return {DiskFormat::vmdk, 32};
  if (has(head, 0, "# Disk DescriptorFile"sv)) return {DiskFormat::vmdk_descriptor, 168};
  if (has(head, 0, "vhdxfile"sv)) return {DiskFormat::vhdx, 64};
  if (has(head, 0, "conectix"sv)) return {DiskFormat::vhd, 64};
  if (has(head, 0x40, "\x7f\x10\xda\xbe"sv)) return {DiskFormat::vdi, 32};
  if (has(head, 0, "QED\0"sv)) return {DiskFormat::qed, 32};
  if (has(head, 0, "LUKS\xba\xbe"sv)) return {DiskFormat::luks, 48};
  if (has(head, 0, "WithoutFreeSpace"sv) || has(head, 0, "WithouFreSpacExt"sv))
    return {DiskFormat::parallels, 128};
  if (has(head, 0, "Bochs Virtual HD Image"sv)) return {DiskFormat::bochs, 128};
  if (has(head, 0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop"sv)) return {DiskFormat::cloop, 128};
  if (has(head, 0x8001, "CD001"sv)) return {DiskFormat::iso, 40};
  return {DiskFormat::raw, 0};
}

std::string_view name(DiskFormat f) {
  switch (f) {
    case DiskFormat::raw: return "raw";
    case DiskFormat::iso: return "iso";
    case DiskFormat::qcow2: return "qcow2";
    case DiskFormat::vmdk: return "vmdk";
    case DiskFormat::vhd: return "vhd";
    case DiskFormat::vhdx: return "vhdx";
    case DiskFormat::vdi: return "vdi";
    case DiskFormat::qcow1: return "qcow";
    case DiskFormat::vmdk_descriptor: return "vmdk-descriptor";
    case DiskFormat::qed: return "qed";
    case DiskFormat::luks: return "luks";
    case DiskFormat::parallels: return "parallels";
    case DiskFormat::bochs: return "bochs";
    case DiskFormat::cloop: return "cloop";
  }
  return "raw";
}

std::string_view qemu_driver(DiskFormat f) {
  switch (f) {
    case DiskFormat::qcow2: return "qcow2";
    case DiskFormat::vmdk: return "vmdk";
    case DiskFormat::vhd: return "vpc";
    case DiskFormat::vhdx: return "vhdx";
    case DiskFormat::vdi: return "vdi";
    default: return "";
  }
}

bool needs_conversion(DiskFormat f) { return !qemu_driver(f).empty(); }

bool refused(DiskFormat f) {
  switch (f) {
    case DiskFormat::qcow1:
    case DiskFormat::vmdk_descriptor:
    case DiskFormat::qed:
    case DiskFormat::luks:
    case DiskFormat::parallels:
    case DiskFormat::bochs:
    case DiskFormat::cloop:
      return true;
    default:
      return false;
  }
}

std::optional<uint64_t> fixed_vhd_footer_size(std::span<const std::byte, 512> tail) {
  // Footer layout (big-endian): cookie[8] "conectix", features u32 @8, version u32 @12 (0x00010000),
  // data offset u64 @16 (all ones for fixed), ..., current size u64 @48, disk type u32 @60
  // (2 = fixed), checksum u32 @64 = one's complement of the byte sum with the checksum zeroed.
  if (std::memcmp(tail.data(), "conectix", 8) != 0) return std::nullopt;
  if (load_be32(tail.data() + 12) != 0x00010000u) return std::nullopt;
  if (load_be32(tail.data() + 60) != 2) return std::nullopt;
  if (load_be64(tail.data() + 16) != ~uint64_t{0}) return std::nullopt;
  uint32_t sum = 0;
  for (size_t i = 0; i < 512; ++i)
    if (i < 64 || i >= 68) sum += static_cast<uint8_t>(tail[i]);
  if (~sum != load_be32(tail.data() + 64)) return std::nullopt;
  return load_be64(tail.data() + 48);
}

bool is_dmg_trailer(std::span<const std::byte, 512> tail) {
  // UDIFResourceFile (big-endian): signature "koly" @0, version u32 @4 (4), header size u32 @8
  // (512), flags, data/resource fork offsets and lengths, XML plist offset/length @0xd8, ...
  return std::memcmp(tail.data(), "koly", 4) == 0 && load_be32(tail.data() + 4) == 4 &&
         load_be32(tail.data() + 8) == 512;
}

}  // namespace cdi::formats::disk
