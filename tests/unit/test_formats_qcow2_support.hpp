// SPDX-License-Identifier: Apache-2.0
// Helpers for the qcow2 tests: a sink that checks the exactly-once coverage contract, a builder
// for hand-made images (header, L1, L2 and data at any host offsets, in any order), and small
// process/file utilities for the qemu-img corpus.
#pragma once

#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "lib/io/random_access.hpp"
#include "lib/sink/sink.hpp"

namespace cdi::test::qcow2 {

using Bytes = std::vector<std::byte>;

// In-memory target that starts dirty (0xEE) and fails on overlapping extents; covered() tells
// whether [0, size) was covered exactly.
class CheckingSink final : public sink::Sink {
 public:
  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override {
    CDI_TRY(claim(offset, data.size()));
    grow(offset + data.size());
    std::memcpy(m_data.data() + offset, data.data(), data.size());
    return {};
  }
  Result<void> zero_range(uint64_t offset, uint64_t length) override {
    CDI_TRY(claim(offset, length));
    grow(offset + length);
    std::memset(m_data.data() + offset, 0, length);
    return {};
  }
  Result<void> finish(uint64_t image_size) override {
    grow(image_size);
    m_data.resize(image_size);
    return {};
  }
  void abort() noexcept override {}
  sink::SinkInfo info() const override { return {"memory", "checking", std::nullopt}; }
  sink::SinkStats stats() const override { return {}; }

  // True when the extents tile [0, size) exactly.
  bool covered(uint64_t size) const {
    uint64_t at = 0;
    for (const auto& [s, e] : m_extents) {
      if (s != at) return false;
      at = e;
    }
    return at == size;
  }
  const Bytes& data() const { return m_data; }
  size_t extents() const { return m_extents.size(); }

 private:
  Result<void> claim(uint64_t off, uint64_t len) {
    if (len == 0) return fail(Errc::internal, "empty extent");
    auto next = m_extents.lower_bound(off);
    if (next != m_extents.end() && next->first < off + len) return fail(Errc::internal, "overlapping extent");
    if (next != m_extents.begin() && std::prev(next)->second > off) return fail(Errc::internal, "overlapping extent");
    // Merge with neighbours to keep the map small.
    uint64_t s = off, e = off + len;
    if (next != m_extents.begin() && std::prev(next)->second == off) {
      s = std::prev(next)->first;
      m_extents.erase(std::prev(next));
    }
    if (next != m_extents.end() && next->first == e) {
      e = next->second;
      m_extents.erase(next);
    }
    m_extents[s] = e;
    return {};
  }
  void grow(uint64_t end) {
    if (m_data.size() < end) m_data.resize(end, std::byte{0xEE});
  }
  Bytes m_data;
  std::map<uint64_t, uint64_t> m_extents;
};

// Random access to a buffer: at most `chunk` bytes per pread (odd sizes exercise short reads),
// a size that may claim more than the buffer holds (an input that shrank), an error after
// `fail_after` preads. Counts reads and bytes, and remembers the will_need hints.
class MemoryRandomAccess final : public io::RandomAccess {
 public:
  explicit MemoryRandomAccess(Bytes data, size_t chunk = 1 << 20, std::optional<uint64_t> claimed_size = std::nullopt)
      : m_data(std::move(data)), m_chunk(chunk), m_size(claimed_size ? *claimed_size : m_data.size()) {}

  Result<size_t> pread(uint64_t off, std::span<std::byte> dst) override {
    if (fail_after && reads >= *fail_after) return std::unexpected(Error(Errc::network, "connection reset"));
    ++reads;
    if (offsets.empty() || off != m_last_end) offsets.push_back(off);  // a continued read is not a new one
    if (off >= m_data.size()) return size_t{0};
    size_t n = std::min<uint64_t>({dst.size(), m_chunk, m_data.size() - off});
    std::memcpy(dst.data(), m_data.data() + off, n);
    bytes += n;
    m_last_end = off + n;
    return n;
  }
  std::optional<uint64_t> size() const override { return m_size; }
  void will_need(std::span<const io::ByteRange> r) override { hinted += r.size(); }
  void consumed(io::ByteRange r) override {
    // Only what was read can be handed back.
    if (r.offset + r.length > m_last_end) consumed_unread = true;
    consumed_ranges.push_back(r);
  }
  std::string name() const override { return "memory"; }

  std::optional<size_t> fail_after;
  size_t reads = 0;
  uint64_t bytes = 0;
  size_t hinted = 0;
  std::vector<uint64_t> offsets;  // where each pread_full started (and its continuations)
  std::vector<io::ByteRange> consumed_ranges;
  bool consumed_unread = false;   // a range handed back beyond the last read

  // Reads that went backwards: seeks back to an earlier offset.
  size_t backward_seeks() const {
    size_t n = 0;
    for (size_t i = 1; i < offsets.size(); ++i) n += offsets[i] < offsets[i - 1];
    return n;
  }

 private:
  Bytes m_data;
  size_t m_chunk;
  std::optional<uint64_t> m_size;
  uint64_t m_last_end = 0;
};

// Builds a qcow2 image byte by byte. Offsets are host offsets; nothing is laid out implicitly
// except the header (and its extensions) at offset 0 and, unless one is set, an empty refcount
// table after the last byte (see auto_refcount_table).
class Builder {
 public:
  Builder(uint32_t cluster_bits, uint64_t virtual_size, uint32_t version = 3)
      : cluster_bits(cluster_bits), cs(uint64_t{1} << cluster_bits), virtual_size(virtual_size), version(version) {}

  uint32_t cluster_bits;
  uint64_t cs;
  uint64_t virtual_size;
  uint32_t version;
  uint64_t backing_offset = 0;
  uint32_t backing_size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 1;
  uint64_t l1_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  // qemu refuses an image without a refcount table: when refcount_table_clusters is left 0,
  // build() appends an empty one (one zeroed cluster, after everything else) unless this is false.
  bool auto_refcount_table = true;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible = 0;
  uint64_t compatible = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 112;
  uint8_t compression_type = 0;
  bool extended_l2() const { return incompatible & (1u << 4); }
  std::vector<std::pair<uint32_t, Bytes>> extensions;

  void be64(uint64_t off, uint64_t v) {
    for (int i = 0; i < 8; ++i) byte(off + i, static_cast<uint8_t>(v >> (56 - 8 * i)));
  }
  void be32(uint64_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) byte(off + i, static_cast<uint8_t>(v >> (24 - 8 * i)));
  }
  void byte(uint64_t off, uint8_t v) {
    grow(off + 1);
    m_file[off] = std::byte{v};
  }
  void put(uint64_t off, std::span<const std::byte> b) {
    grow(off + b.size());
    std::memcpy(m_file.data() + off, b.data(), b.size());
  }
  void fill(uint64_t off, uint64_t n, uint8_t v) {
    grow(off + n);
    std::memset(m_file.data() + off, v, n);
  }
  void grow(uint64_t end) {
    if (m_file.size() < end) m_file.resize(end);
  }
  void l1(uint64_t idx, uint64_t l2_offset) { be64(l1_offset + idx * 8, l2_offset ? (l2_offset | (1ull << 63)) : 0); }
  void l2(uint64_t l2_offset, uint64_t idx, uint64_t entry, uint64_t bitmap = 0) {
    uint64_t w = extended_l2() ? 16 : 8;
    be64(l2_offset + idx * w, entry);
    if (extended_l2()) be64(l2_offset + idx * w + 8, bitmap);
  }
  // A normal cluster at host `off`, as an L2 entry.
  static uint64_t normal(uint64_t off) { return off | (1ull << 63); }
  // A compressed cluster: stores `data` at byte offset `off`, returns its L2 entry.
  uint64_t compressed(uint64_t off, std::span<const std::byte> data) {
    put(off, data);
    uint64_t x = 62 - (cluster_bits - 8);
    uint64_t sectors = ((off + data.size() - 1) >> 9) - (off >> 9);  // additional sectors
    return (1ull << 62) | off | (sectors << x);
  }

  Bytes build() {
    grow(cs);
    std::memcpy(m_file.data(), "QFI\xfb", 4);
    be32(4, version);
    be64(8, backing_offset);
    be32(16, backing_size);
    be32(20, cluster_bits);
    be64(24, virtual_size);
    be32(32, crypt_method);
    be32(36, l1_size);
    be64(40, l1_offset);
    be64(48, refcount_table_offset);
    be32(56, refcount_table_clusters);
    be32(60, nb_snapshots);
    be64(64, snapshots_offset);
    uint64_t ext = 72;
    if (version >= 3) {
      be64(72, incompatible);
      be64(80, compatible);
      be64(88, 0);
      be32(96, refcount_order);
      be32(100, header_length);
      if (header_length > 104) byte(104, compression_type);
      ext = header_length;
    }
    for (const auto& [type, data] : extensions) {
      be32(ext, type);
      be32(ext + 4, static_cast<uint32_t>(data.size()));
      put(ext + 8, data);
      ext += 8 + (data.size() + 7) / 8 * 8;
    }
    be32(ext, 0);
    be32(ext + 4, 0);
    if (refcount_table_clusters != 0 || !auto_refcount_table) return m_file;
    Bytes out = m_file;
    uint64_t rt = (out.size() + cs - 1) / cs * cs;
    out.resize(rt + cs);
    for (int i = 0; i < 8; ++i) out[48 + i] = std::byte{static_cast<uint8_t>(rt >> (56 - 8 * i))};
    out[59] = std::byte{1};  // refcount_table_clusters (be32 at 56) = 1
    return out;
  }

 private:
  Bytes m_file;
};

inline Bytes pattern(size_t n, uint32_t seed) {
  Bytes b(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : b) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    c = std::byte(static_cast<uint8_t>(x % 7 == 0 ? 0 : x));  // some zeros, compressible a little
  }
  return b;
}

// Raw deflate with a 4 KiB window, as qemu writes compressed clusters.
inline Bytes deflate_raw(std::span<const std::byte> in) {
  z_stream s{};
  deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&s, in.size()));
  s.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = static_cast<uInt>(out.size());
  deflate(&s, Z_FINISH);
  out.resize(s.total_out);
  deflateEnd(&s);
  return out;
}

inline Bytes zstd_compress(std::span<const std::byte> in) {
  Bytes out(ZSTD_compressBound(in.size()));
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

// A directory removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "cdi-qcow2-test.XXXXXX").string();
    m_path = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  const std::filesystem::path& path() const { return m_path; }
  std::string operator/(const std::string& name) const { return (m_path / name).string(); }

 private:
  std::filesystem::path m_path;
};

// Runs a shell command quietly; true when it exits 0.
inline bool sh(const std::string& cmd) { return std::system(("( " + cmd + " ) >/dev/null 2>&1").c_str()) == 0; }

inline Bytes read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  Bytes b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

inline void write_file(const std::string& path, std::span<const std::byte> b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace cdi::test::qcow2
