// SPDX-License-Identifier: Apache-2.0
// QCOW2 header parsing and validation (spec: qemu docs/interop/qcow2.txt).
//
// Invariants checked here, all from the first cluster of the image, before anything is written:
//   - magic "QFI\xfb", version 2 or 3 (version 1 is recognised and refused as unsupported);
//   - 9 <= cluster_bits <= 21 (qemu's limit), extended L2 only with cluster_bits >= 14;
//   - v3: header_length >= 104, a multiple of 8, inside the first cluster; refcount_order <= 6;
//   - no backing file, no encryption (AES or LUKS), no external data file, no unknown incompatible
//     feature bit, corrupt bit clear; the dirty bit is accepted (see parse_header);
//   - compression type 0 (zlib) or 1 (zstd), consistent with incompatible bit 3;
//   - L1 table: cluster aligned, big enough for the virtual size, at most 32 MiB (qemu's limit);
//   - refcount table: present (refcount_table_clusters > 0: qemu refuses to open an image without
//     one), cluster aligned, at most 8 MiB (qemu's limit); snapshot table aligned;
//   - header extensions well formed and inside the first cluster.
// SnapshotTableScanner checks the snapshot table itself as qemu reads it at open (extra data per
// entry at most 1024 bytes, the whole table at most 64 MiB).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "lib/util/endian.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::qcow2 {

inline constexpr uint32_t k_min_cluster_bits = 9;
inline constexpr uint32_t k_max_cluster_bits = 21;
inline constexpr uint64_t k_max_l1_bytes = 32ull << 20;        // qemu QCOW_MAX_L1_SIZE
inline constexpr uint64_t k_max_refcount_table_bytes = 8ull << 20;  // qemu QCOW_MAX_REFTABLE_SIZE
inline constexpr uint32_t k_max_snapshots = 65536;              // qemu QCOW_MAX_SNAPSHOTS
inline constexpr uint32_t k_max_snapshot_extra_data = 1024;     // qemu QCOW_MAX_SNAPSHOT_EXTRA_DATA
inline constexpr uint64_t k_max_snapshot_table_bytes = 1024ull * k_max_snapshots;  // QCOW_MAX_SNAPSHOTS_SIZE
inline constexpr size_t k_snapshot_header_bytes = 40;           // fixed part of a snapshot table entry
inline constexpr uint64_t k_max_read_end = 0x7fffffffc0000000ull;  // qemu BDRV_MAX_LENGTH: reads beyond fail
inline constexpr size_t k_v2_header_bytes = 72;
inline constexpr size_t k_v3_header_bytes = 104;

// Incompatible feature bits.
inline constexpr uint64_t k_incompat_dirty = 1ull << 0;
inline constexpr uint64_t k_incompat_corrupt = 1ull << 1;
inline constexpr uint64_t k_incompat_data_file = 1ull << 2;
inline constexpr uint64_t k_incompat_compression = 1ull << 3;
inline constexpr uint64_t k_incompat_extended_l2 = 1ull << 4;
inline constexpr uint64_t k_incompat_known = (1ull << 5) - 1;

// Entry bits shared by L1 and L2 entries.
inline constexpr uint64_t k_oflag_copied = 1ull << 63;
inline constexpr uint64_t k_oflag_compressed = 1ull << 62;
inline constexpr uint64_t k_oflag_zero = 1ull << 0;
inline constexpr uint64_t k_offset_mask = 0x00fffffffffffe00ull;  // bits 9..55

enum class Compression : uint8_t { zlib = 0, zstd = 1 };

struct Header {
  uint32_t version = 0;
  uint32_t cluster_bits = 0;
  uint64_t cluster_size = 0;
  uint64_t virtual_size = 0;
  uint32_t l1_size = 0;  // entries in the active L1 table
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 0;
  Compression compression = Compression::zlib;
  bool extended_l2 = false;
  bool dirty = false;

  // Derived.
  uint64_t l2_entries = 0;      // entries per L2 table
  uint32_t l2_entry_bytes = 8;  // 8, or 16 with extended L2
  uint64_t guest_clusters = 0;  // ceil(virtual_size / cluster_size)
  uint64_t l1_needed = 0;       // L1 entries that map the virtual size
  uint64_t subcluster_size = 0; // cluster_size / 32 with extended L2, else cluster_size
};

// Pure probe: 0 if not qcow2; else the number of header bits verified (magic + a known version).
// Version 1 ("QFI\xfb" + 1) still bids, so that the planner picks qcow2 and decode refuses it
// clearly as unsupported instead of the image being copied as raw.
int probe_header(std::span<const std::byte> head);

// Parses and validates the header and its extensions. `first` holds the start of the stream:
// at least the first cluster, or the whole stream when it is shorter than a cluster.
// `stream_size` (when known) lets absurd offsets be refused up front.
// Errors: corrupt_input (bad magic, truncated header, inconsistent fields), unsupported (version 1,
// backing file, encryption, external data file, unknown incompatible features, zstd/zlib unknown
// type), limit (L1 or refcount table larger than qemu accepts).
Result<Header> parse_header(std::span<const std::byte> first, std::optional<uint64_t> stream_size = std::nullopt);

// Walks the snapshot table the way qemu's qcow2_read_snapshots does when it opens an image, and
// refuses what qemu refuses there: an entry with more than 1024 bytes of extra data ("Too much
// extra metadata in snapshot table entry N"), or a table longer than 64 MiB ("Snapshot table is
// too big"), or an entry ending beyond 2^63 - 1 GiB (qemu's reads there fail). Snapshots are not imported, so nothing else in the table matters: only each entry's
// 40-byte fixed part is looked at (entry i+1 starts at the 8-aligned end of entry i: fixed part,
// extra data, id, name), and only the current one is kept (40 bytes of memory).
// Stream bytes are fed in order (as the decoder reads them, or by random access from next());
// bytes before next() are ignored. Bytes past the end of the stream read as zeros, as in qemu
// (a table cut by the end of the file is not refused by qemu, so not here either).
// Errors: corrupt_input, naming the entry and its offset.
class SnapshotTableScanner {
 public:
  SnapshotTableScanner() = default;  // no snapshots: done() at once
  SnapshotTableScanner(uint64_t table_offset, uint32_t entries);

  // Bytes [at, at + bytes.size()) of the stream.
  Result<void> feed(uint64_t at, std::span<const std::byte> bytes);
  // The stream ended at `eof`: the rest of the table reads as zeros.
  Result<void> finish(uint64_t eof);
  bool done() const { return m_index == m_entries; }
  // Stream offset of the next byte the scan needs (meaningful while !done()).
  uint64_t next() const { return m_entry + m_have; }

 private:
  Result<void> entry_complete();

  uint64_t m_table = 0;
  uint32_t m_entries = 0;
  uint32_t m_index = 0;   // entry being read
  uint64_t m_entry = 0;   // its offset
  size_t m_have = 0;      // bytes of its fixed part collected
  std::byte m_fixed[k_snapshot_header_bytes] = {};
};

// Bytes of the stream that parse_header needs: the first cluster, computed from the first 24
// bytes (cluster_bits). Returns 0 when `head` is too short to know, or the cluster_bits field is
// out of range (parse_header then reports the precise error).
size_t header_bytes_needed(std::span<const std::byte> head);

// Big-endian loads, bounds-checked by the caller.
using util::load_be32;
using util::load_be64;

}  // namespace cdi::formats::qcow2
