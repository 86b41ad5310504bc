// SPDX-License-Identifier: Apache-2.0
// The format table: one row per codec / container / disk format. Detection is a bid loop over it
// (libarchive's bidders): every allowed row's pure probe scores the head of the stream (bits of
// header verified) and the highest score wins; nothing matching is raw. The pipeline's detection
// (lib/pipeline/import.cpp) and the registry source's layer codecs (lib/source/registry_source.cpp)
// both use `best_bid`. Adding a format = one folder under formats/ and one row in registry.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "formats/disk/disk_probe.hpp"
#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats {

enum class FormatKind : unsigned {
  compression = 1u << 0,   // a stream codec: peeled, detection repeats on its output (gzip, xz, zstd)
  container = 1u << 1,     // a tar: its one disk entry is served (kubevirt) or it is extracted (archive)
  disk = 1u << 2,          // a disk image format: ends the detection (qcow2, vmdk, ...; raw when none)
  framing = 1u << 3,       // opened by content type only, never bid (snappy: CDI clone bodies)
};

std::string_view to_string(FormatKind k);

// Which rows take part in a bid: a mask of kinds, and optionally only the named rows.
struct FormatFilter {
  unsigned kinds = unsigned(FormatKind::compression) | unsigned(FormatKind::container) | unsigned(FormatKind::disk);
  std::span<const std::string_view> names = {};   // empty: every row of an allowed kind
};

// What a row's open() may use.
struct OpenOptions {
  CodecOptions codec;
  std::optional<std::string> tar_entry;   // container rows: which entry holds the disk
};

struct ProbeResult {
  int score = 0;                                            // header bits verified, 0 = not this format
  disk::DiskFormat disk = disk::DiskFormat::raw;            // disk rows: which disk format
};

struct FormatRow {
  std::string_view name;
  FormatKind kind;
  ProbeResult (*probe)(Head head);
  // What the stage needs from its input. Disk rows: the needs of the format's converter when it is
  // handed to qemu-img (see needs_of); the planner decides when a streaming decoder replaces it.
  StageNeeds needs;
  // Compression / container / framing rows: stacks the stage on `upstream`. Null for disk rows
  // (their converter is chosen by the planner, lib/pipeline/plan.hpp).
  Result<std::unique_ptr<io::Reader>> (*open)(std::unique_ptr<io::Reader> upstream, const OpenOptions& opts);
};

// Every row, in table order (ties in a bid go to the earlier row).
std::span<const FormatRow> format_table();

// The row named `name`, or null.
const FormatRow* find_format(std::string_view name);

struct Bid {
  const FormatRow* row = nullptr;   // null: nothing bid (raw data)
  ProbeResult result;
};

// The best bid for the head of a stream among the rows `filter` allows (highest score wins).
Bid best_bid(Head head, const FormatFilter& filter = {});

// What a disk format needs: random access input for the formats qemu-img converts (qcow2, vmdk,
// vhd, vhdx, vdi); nothing for raw / iso (streamed).
StageNeeds needs_of(disk::DiskFormat f);

}  // namespace cdi::formats
