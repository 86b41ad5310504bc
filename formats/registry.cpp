// SPDX-License-Identifier: Apache-2.0
#include "formats/registry.hpp"

#include <array>

#include "formats/gzip/gzip_reader.hpp"
#include "formats/snappy/snappy_reader.hpp"
#include "formats/tar/tar_reader.hpp"
#include "formats/xz/xz_reader.hpp"
#include "formats/zstd/zstd_reader.hpp"

namespace cdi::formats {
namespace {

template <int (*P)(Head)>
ProbeResult score_of(Head head) {
  return {P(head), disk::DiskFormat::raw};
}

ProbeResult probe_disk(Head head) {
  auto p = disk::probe(head);
  return {p.score, p.format};
}

template <Result<std::unique_ptr<io::Reader>> (*O)(std::unique_ptr<io::Reader>, const CodecOptions&)>
Result<std::unique_ptr<io::Reader>> open_codec(std::unique_ptr<io::Reader> upstream, const OpenOptions& opts) {
  return O(std::move(upstream), opts.codec);
}

Result<std::unique_ptr<io::Reader>> open_tar_entry(std::unique_ptr<io::Reader> upstream, const OpenOptions& opts) {
  tar::EntryOptions eo;
  eo.entry = opts.tar_entry;
  eo.cancel = opts.codec.cancel;
  return tar::open_entry(std::move(upstream), eo);
}

constexpr StageNeeds k_streams{};

const std::array<FormatRow, 6> k_table{{
    {"gzip", FormatKind::compression, &score_of<gzip::probe>, k_streams, &open_codec<gzip::open>},
    {"xz", FormatKind::compression, &score_of<xz::probe>, k_streams, &open_codec<xz::open>},
    {"zstd", FormatKind::compression, &score_of<zstd::probe>, k_streams, &open_codec<zstd::open>},
    {"tar", FormatKind::container, &score_of<tar::probe>, k_streams, &open_tar_entry},
    // One row for every disk format: disk_probe scores them all and names the winner.
    {"disk", FormatKind::disk, &probe_disk, StageNeeds{.random_access_input = true}, nullptr},
    {"snappy", FormatKind::framing, &score_of<snappy::probe>, k_streams, &open_codec<snappy::open>},
}};

bool allowed(const FormatRow& r, const FormatFilter& f) {
  if ((f.kinds & unsigned(r.kind)) == 0) return false;
  if (f.names.empty()) return true;
  for (auto n : f.names)
    if (n == r.name) return true;
  return false;
}

}  // namespace

std::string_view to_string(FormatKind k) {
  switch (k) {
    case FormatKind::compression: return "compression";
    case FormatKind::container: return "container";
    case FormatKind::disk: return "disk";
    case FormatKind::framing: return "framing";
  }
  return "unknown";
}

std::span<const FormatRow> format_table() { return k_table; }

const FormatRow* find_format(std::string_view name) {
  for (const auto& r : k_table)
    if (r.name == name) return &r;
  return nullptr;
}

Bid best_bid(Head head, const FormatFilter& filter) {
  Bid best;
  for (const auto& r : k_table) {
    if (!allowed(r, filter)) continue;
    auto p = r.probe(head);
    if (p.score > best.result.score) best = Bid{&r, p};
  }
  return best;
}

StageNeeds needs_of(disk::DiskFormat f) {
  return disk::needs_conversion(f) ? find_format("disk")->needs : StageNeeds{};
}

}  // namespace cdi::formats
