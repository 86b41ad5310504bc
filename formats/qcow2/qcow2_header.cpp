// SPDX-License-Identifier: Apache-2.0
#include "formats/qcow2/qcow2_header.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "lib/util/units.hpp"
#include "formats/qcow2/text.hpp"

namespace cdi::formats::qcow2 {
namespace {

constexpr uint32_t k_ext_end = 0x00000000;
constexpr uint32_t k_ext_backing_format = 0xe2792aca;
constexpr uint32_t k_ext_feature_table = 0x6803f857;
constexpr uint32_t k_ext_bitmaps = 0x23852875;
constexpr uint32_t k_ext_crypto = 0x0537be77;
constexpr uint32_t k_ext_data_file = 0x44415441;

bool has_magic(std::span<const std::byte> head) {
  return head.size() >= 4 && head[0] == std::byte{'Q'} && head[1] == std::byte{'F'} && head[2] == std::byte{'I'} &&
         head[3] == std::byte{0xfb};
}

std::unexpected<Error> corrupt(std::string msg) { return fail(Errc::corrupt_input, std::move(msg)); }
// A short stream: the format says more bytes follow than arrived.
std::unexpected<Error> truncated(std::string msg) {
  return fail(Errc::corrupt_input, Reason::truncated, std::move(msg));
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

// Names of incompatible bits from the feature name table, e.g. "bit 7 (\"frobnicate\")".
std::string describe_unknown_bits(uint64_t bits, const std::vector<std::pair<unsigned, std::string>>& names) {
  std::string out;
  for (unsigned b = 0; b < 64; ++b) {
    if (!(bits & (1ull << b))) continue;
    if (!out.empty()) out += ", ";
    out += fmt("bit {}", b);
    for (const auto& [nb, name] : names)
      if (nb == b) out += fmt(" (\"{}\")", name);
  }
  return out;
}

}  // namespace

int probe_header(std::span<const std::byte> head) {
  if (!has_magic(head) || head.size() < 8) return 0;
  uint32_t version = load_be32(head.data() + 4);
  if (version < 1 || version > 3) return 0;
  return 64;  // 32 bits of magic + 32 bits of version
}

size_t header_bytes_needed(std::span<const std::byte> head) {
  if (head.size() < 24) return 0;
  uint32_t bits = load_be32(head.data() + 20);
  if (bits < k_min_cluster_bits || bits > k_max_cluster_bits) return 0;
  return size_t{1} << bits;
}

// Dirty bit (incompatible bit 0): accepted, as qemu does for a read-only open (qemu-img convert
// never repairs; refcounts may be stale but reading only follows L1/L2). Lazy refcounts or not
// makes no difference to reading. Corrupt bit (bit 1): refused, stricter than qemu (which reads
// such an image read-only): the image told us its metadata cannot be trusted.
Result<Header> parse_header(std::span<const std::byte> first, std::optional<uint64_t> stream_size) {
  if (!has_magic(first)) return corrupt("not a qcow2 image (bad magic)");
  if (first.size() < k_v2_header_bytes)
    return truncated(fmt("truncated header: stream ended at {} bytes", first.size()));
  const std::byte* p = first.data();
  Header h;
  h.version = load_be32(p + 4);
  if (h.version == 1) return fail(Errc::unsupported, "qcow version 1 is not supported (convert it with qemu-img first)");
  if (h.version != 2 && h.version != 3) return fail(Errc::unsupported, fmt("unknown qcow2 version {}", h.version));

  uint64_t backing_offset = load_be64(p + 8);
  h.cluster_bits = load_be32(p + 20);
  h.virtual_size = load_be64(p + 24);
  uint32_t crypt_method = load_be32(p + 32);
  h.l1_size = load_be32(p + 36);
  h.l1_table_offset = load_be64(p + 40);
  h.refcount_table_offset = load_be64(p + 48);
  h.refcount_table_clusters = load_be32(p + 56);
  h.nb_snapshots = load_be32(p + 60);
  h.snapshots_offset = load_be64(p + 64);
  h.header_length = k_v2_header_bytes;

  // cluster_bits < 9 breaks the format itself; > 21 is qemu's implementation limit.
  if (h.cluster_bits < k_min_cluster_bits)
    return corrupt(fmt("cluster_bits {} is below the minimum of 9", h.cluster_bits));
  if (h.cluster_bits > k_max_cluster_bits)
    return fail(Errc::unsupported, fmt("cluster size 2^{} is larger than 2 MiB (qemu's limit)", h.cluster_bits));
  h.cluster_size = uint64_t{1} << h.cluster_bits;

  if (h.version >= 3) {
    if (first.size() < k_v3_header_bytes)
      return truncated(fmt("truncated v3 header: stream ended at {} bytes", first.size()));
    h.incompatible_features = load_be64(p + 72);
    h.compatible_features = load_be64(p + 80);
    h.autoclear_features = load_be64(p + 88);
    h.refcount_order = load_be32(p + 96);
    h.header_length = load_be32(p + 100);
    if (h.header_length < k_v3_header_bytes || h.header_length % 8 != 0 || h.header_length > h.cluster_size)
      return corrupt(fmt("bad header_length {}", h.header_length));
    if (first.size() < h.header_length)
      return truncated(fmt("truncated header: stream ended at {} bytes", first.size()));
    if (h.refcount_order > 6) return corrupt(fmt("refcount_order {} is larger than 6", h.refcount_order));
    if (h.header_length > 104) {
      uint8_t type = static_cast<uint8_t>(p[104]);
      if (type > 1) return fail(Errc::unsupported, fmt("unknown compression type {}", type));
      h.compression = static_cast<Compression>(type);
    }
    bool bit = h.incompatible_features & k_incompat_compression;
    if (bit != (h.compression != Compression::zlib))
      return corrupt("compression type field and incompatible feature bit 3 disagree");
  }

  // Header extensions: between header_length and the end of the first cluster.
  std::vector<std::pair<unsigned, std::string>> incompat_names;
  bool data_file_ext = false, crypto_ext = false;
  {
    uint64_t end = std::min<uint64_t>(h.cluster_size, first.size());
    uint64_t off = h.header_length;
    for (;;) {
      if (off + 8 > end) {
        if (end < h.cluster_size) return truncated(fmt("truncated header extensions: stream ended at {} bytes", end));
        break;  // no terminator before the cluster end: qemu stops there too
      }
      uint32_t type = load_be32(p + off);
      uint32_t len = load_be32(p + off + 4);
      if (type == k_ext_end) break;
      uint64_t data = off + 8;
      if (len > end - data)
        return corrupt(fmt("header extension 0x{:08x} of {} bytes overruns the first cluster", type, len));
      switch (type) {
        case k_ext_feature_table:
          for (uint64_t e = data; e + 48 <= data + len; e += 48) {
            if (p[e] != std::byte{0}) continue;  // only incompatible names are of use here
            std::string_view name(reinterpret_cast<const char*>(p + e + 2), 46);
            name = name.substr(0, name.find('\0'));
            incompat_names.emplace_back(static_cast<unsigned>(p[e + 1]), std::string(name));
          }
          break;
        case k_ext_crypto: crypto_ext = true; break;
        case k_ext_data_file: data_file_ext = true; break;
        case k_ext_backing_format:  // meaningful only with a backing file, which is refused below
        case k_ext_bitmaps:         // dirty bitmaps are not guest data
        default: break;             // unknown extensions may be ignored (spec)
      }
      off = data + ((uint64_t{len} + 7) & ~uint64_t{7});
    }
  }

  // Refusals, most fundamental first. All are unsupported (valid images we cannot import
  // faithfully on our own) except the corrupt bit, which is the image saying it is damaged.
  if (backing_offset != 0)
    return fail(Errc::unsupported, "image has a backing file; flatten it first (qemu-img convert or rebase)");
  if (crypt_method == 1) return fail(Errc::unsupported, "image is encrypted (AES)");
  if (crypt_method == 2 || crypto_ext) return fail(Errc::unsupported, "image is encrypted (LUKS)");
  if (crypt_method != 0) return fail(Errc::unsupported, fmt("unknown encryption method {}", crypt_method));
  if ((h.incompatible_features & k_incompat_data_file) || data_file_ext)
    return fail(Errc::unsupported, "image uses an external data file");
  if (uint64_t unknown = h.incompatible_features & ~k_incompat_known)
    return fail(Errc::unsupported,
                fmt("unknown incompatible feature {}", describe_unknown_bits(unknown, incompat_names)));
  if (h.incompatible_features & k_incompat_corrupt)
    return corrupt("image is marked corrupt (incompatible bit 1); repair it with qemu-img check -r all");
  h.dirty = h.incompatible_features & k_incompat_dirty;
  h.extended_l2 = h.incompatible_features & k_incompat_extended_l2;
  if (h.extended_l2 && h.cluster_bits < 14)
    return corrupt(fmt("extended L2 entries need clusters of at least 16 KiB, not {}", h.cluster_size));

  // Geometry.
  h.l2_entry_bytes = h.extended_l2 ? 16 : 8;
  h.l2_entries = h.cluster_size / h.l2_entry_bytes;
  h.subcluster_size = h.extended_l2 ? h.cluster_size / 32 : h.cluster_size;
  h.guest_clusters = ceil_div(h.virtual_size, h.cluster_size);
  h.l1_needed = ceil_div(h.guest_clusters, h.l2_entries);
  if (uint64_t{h.l1_size} * 8 > k_max_l1_bytes)
    return fail(Errc::limit, fmt("L1 table of {} entries is larger than 32 MiB", h.l1_size));
  if (h.l1_needed > h.l1_size)
    return corrupt(fmt("L1 table of {} entries is too small for a virtual size of {} ({} needed)", h.l1_size,
                               h.virtual_size, h.l1_needed));

  // Alignment is checked even for an empty table, as qemu does (qcow2_validate_table).
  auto check_table = [&](std::string_view what, uint64_t offset, uint64_t bytes) -> Result<void> {
    if (offset % h.cluster_size != 0)
      return corrupt(fmt("{} offset {:#x} is not cluster aligned", what, offset));
    if (bytes == 0) return {};
    if (offset == 0) return corrupt(fmt("{} overlaps the header", what));
    if (offset > k_offset_mask) return corrupt(fmt("{} offset {:#x} is out of range", what, offset));
    if (stream_size && offset + bytes > *stream_size)
      return truncated(fmt("truncated: {} at {:#x} ends beyond the end of the stream ({})", what, offset,
                                 *stream_size));
    return {};
  };
  CDI_TRY(check_table("L1 table", h.l1_table_offset, uint64_t{h.l1_size} * 8));
  // qemu refuses to open an image without a refcount table ("Image does not contain a reference
  // count table"), although reading needs none; qemu-img check opens it only to report errors.
  if (h.refcount_table_clusters == 0)
    return corrupt("no refcount table: refcount_table_clusters (header offset 56) is 0");
  uint64_t reftable_bytes = uint64_t{h.refcount_table_clusters} * h.cluster_size;
  if (reftable_bytes > k_max_refcount_table_bytes)
    return fail(Errc::limit, fmt("refcount table of {} clusters is larger than 8 MiB", h.refcount_table_clusters));
  CDI_TRY(check_table("refcount table", h.refcount_table_offset, reftable_bytes));
  if (h.nb_snapshots > k_max_snapshots)
    return corrupt(fmt("{} snapshots is more than qemu allows ({})", h.nb_snapshots, k_max_snapshots));
  if (h.snapshots_offset % h.cluster_size != 0)
    return corrupt(fmt("snapshot table offset {:#x} is not cluster aligned", h.snapshots_offset));
  // qemu: the table's minimum size (40 bytes an entry) must end below 2^63.
  if (h.snapshots_offset > uint64_t{INT64_MAX} - uint64_t{h.nb_snapshots} * k_snapshot_header_bytes)
    return corrupt(fmt("snapshot table offset {:#x} is out of range", h.snapshots_offset));
  return h;
}

SnapshotTableScanner::SnapshotTableScanner(uint64_t table_offset, uint32_t entries)
    : m_table(table_offset), m_entries(entries), m_entry(table_offset) {}

Result<void> SnapshotTableScanner::feed(uint64_t at, std::span<const std::byte> bytes) {
  const uint64_t end = at + bytes.size();
  while (!done()) {
    uint64_t want = next();
    if (want >= end) return {};
    if (want < at)
      return fail(Errc::internal, fmt("snapshot table scan: bytes from {:#x} were skipped (fed from {:#x})", want, at));
    size_t n = static_cast<size_t>(std::min<uint64_t>(k_snapshot_header_bytes - m_have, end - want));
    std::memcpy(m_fixed + m_have, bytes.data() + (want - at), n);
    m_have += n;
    if (m_have < k_snapshot_header_bytes) return {};
    CDI_TRY(entry_complete());
  }
  return {};
}

Result<void> SnapshotTableScanner::finish(uint64_t eof) {
  while (!done()) {
    if (next() < eof)
      return fail(Errc::internal, fmt("snapshot table scan: bytes from {:#x} were not fed (stream end {:#x})", next(), eof));
    std::memset(m_fixed + m_have, 0, k_snapshot_header_bytes - m_have);
    m_have = k_snapshot_header_bytes;
    CDI_TRY(entry_complete());
  }
  return {};
}

// The fixed part (big-endian): l1_table_offset u64 @0, l1_size u32 @8, id_str_size u16 @12,
// name_size u16 @14, date u32+u32 @16, vm_clock_nsec u64 @24, vm_state_size u32 @32,
// extra_data_size u32 @36; then extra data, id, name.
Result<void> SnapshotTableScanner::entry_complete() {
  const uint32_t extra = load_be32(m_fixed + 36);
  const uint32_t sizes = load_be32(m_fixed + 12);  // id_str_size, name_size (u16 each)
  const uint32_t id_size = sizes >> 16, name_size = sizes & 0xffff;
  if (extra > k_max_snapshot_extra_data)
    return corrupt(fmt("snapshot table entry {} at {:#x}: {} bytes of extra data, more than qemu allows ({})", m_index,
                       m_entry, extra, k_max_snapshot_extra_data));
  const uint64_t end = m_entry + k_snapshot_header_bytes + extra + id_size + name_size;
  if (end > k_max_read_end)  // no overflow: parse_header keeps the table's start below 2^63
    return corrupt(fmt("snapshot table entry {} at {:#x} ends beyond {:#x}, the largest offset qemu reads", m_index,
                       m_entry, k_max_read_end));
  if (end - m_table > k_max_snapshot_table_bytes)
    return corrupt(fmt("snapshot table at {:#x} is larger than qemu allows (64 MiB): entry {} at {:#x} ends {} bytes "
                       "into it",
                       m_table, m_index, m_entry, end - m_table));
  ++m_index;
  m_entry = (end + 7) & ~uint64_t{7};
  m_have = 0;
  return {};
}

}  // namespace cdi::formats::qcow2
