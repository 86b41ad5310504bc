// SPDX-License-Identifier: Apache-2.0
// Disk image format detection from magic bytes (never from names or Content-Type).
// Invariants checked (all exact byte comparisons in the head of the stream):
//   qcow2  "QFI\xfb" at 0, version 2 or 3 (version 1 = "qcow", refused)   qemu docs/interop/qcow2.txt
//   vmdk   "KDMV" at 0 (sparse extent; monolithicSparse / streamOptimized); "# Disk DescriptorFile" at 0
//          is a descriptor that references other files (refused)
//   vhd    "conectix" at 0 (dynamic/differencing; the footer copy), or a valid footer in the LAST 512
//          bytes only (fixed VHD: raw data followed by a footer; see is_fixed_vhd_footer)
//   vhdx   "vhdxfile" at 0                                                 MS-VHDX §2.2.1
//   vdi    0xbeda107f (LE) at 0x40                                           VirtualBox VDI header
//   iso    "CD001" at 0x8001 (ISO 9660 primary descriptor): imported as raw
//   dmg    a UDIF "koly" trailer in the LAST 512 bytes (see is_dmg_trailer): refused. qemu's dmg
//          driver is picked only by a ".dmg" file name (its probe never looks at bytes), so
//          without this an Apple disk image would be copied as raw, trailer and all
//   refused containers that qemu-img would probe and CDI would reject: qed, qcow v1, luks, parallels, bochs, cloop, dmg-less
// Anything else is raw, as in CDI.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "formats/stage.hpp"

namespace cdi::formats::disk {

enum class DiskFormat {
  raw,
  iso,
  qcow2,
  vmdk,
  vhd,          // dynamic VHD ("vpc" in qemu)
  vhdx,
  vdi,
  // recognised only to be refused with a clear message:
  qcow1,
  vmdk_descriptor,
  qed,
  luks,
  parallels,
  bochs,
  cloop,
};

struct Probe {
  DiskFormat format = DiskFormat::raw;
  int score = 0;  // header bits verified
};

// Pure: the best disk-format match for the head of a stream (raw when nothing matches).
Probe probe(Head head);

// Short name for chains and logs: "raw", "iso", "qcow2", "vmdk", "vhd", "vhdx", "vdi", ...
std::string_view name(DiskFormat f);

// qemu-img's driver name for formats we hand to qemu-img ("qcow2", "vmdk", "vpc", "vhdx", "vdi"),
// empty for the rest.
std::string_view qemu_driver(DiskFormat f);

// True for formats we convert (qcow2, vmdk, vhd, vhdx, vdi); false for raw/iso.
bool needs_conversion(DiskFormat f);

// True for formats recognised only to be refused.
bool refused(DiskFormat f);

// A fixed VHD is raw data followed by a 512-byte footer. Returns the disk size recorded in the
// footer when `tail` is a valid fixed-disk footer ("conectix", checksum ok, type 2 = fixed), and
// nullopt otherwise. The caller must also check that the data before the footer has that size.
std::optional<uint64_t> fixed_vhd_footer_size(std::span<const std::byte, 512> tail);

// An Apple disk image (UDIF, "DMG") ends with a 512-byte trailer: "koly", then big-endian version
// 4 and header size 512 (what every UDIF writer puts there; qemu's dmg driver finds the trailer
// by "koly" alone). True when `tail`, the last 512 bytes of a stream, is such a trailer.
bool is_dmg_trailer(std::span<const std::byte, 512> tail);

}  // namespace cdi::formats::disk
