// SPDX-License-Identifier: Apache-2.0
// Test readers: MemoryReader serves a buffer in chunks of a chosen size (to test stages at odd
// read sizes, libarchive-style); FailingReader serves a prefix and then fails, to check that an
// upstream error passes through a stage unchanged, with context added.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "lib/io/reader.hpp"

namespace cdi::test {

inline std::vector<std::byte> to_bytes(std::string_view s) {
  std::vector<std::byte> v(s.size());
  if (!s.empty()) std::memcpy(v.data(), s.data(), s.size());   // memcpy(nullptr, …, 0) is UB
  return v;
}

class MemoryReader final : public io::Reader {
 public:
  // chunk: the most bytes returned by one read() (1 exercises byte-at-a-time parsing).
  explicit MemoryReader(std::vector<std::byte> data, size_t chunk = 1 << 20, std::string name = "memory")
      : m_data(std::move(data)), m_chunk(chunk), m_name(std::move(name)) {}

  Result<size_t> read(std::span<std::byte> dst) override {
    size_t n = std::min({dst.size(), m_chunk, m_data.size() - m_pos});
    if (n) std::memcpy(dst.data(), m_data.data() + m_pos, n);
    m_pos += n;
    return n;
  }
  io::ReaderInfo info() const override { return {m_name, m_data.size(), false, std::nullopt}; }

 private:
  std::vector<std::byte> m_data;
  size_t m_chunk;
  std::string m_name;
  size_t m_pos = 0;
};

class FailingReader final : public io::Reader {
 public:
  // Serves `prefix`, then fails every read with `err`.
  FailingReader(std::vector<std::byte> prefix, Error err) : m_prefix(std::move(prefix)), m_err(std::move(err)) {}

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_pos < m_prefix.size()) {
      size_t n = std::min(dst.size(), m_prefix.size() - m_pos);
      std::memcpy(dst.data(), m_prefix.data() + m_pos, n);
      m_pos += n;
      return n;
    }
    return std::unexpected(m_err);
  }
  io::ReaderInfo info() const override { return {"failing", std::nullopt, false, std::nullopt}; }

 private:
  std::vector<std::byte> m_prefix;
  Error m_err;
  size_t m_pos = 0;
};

// Drains a reader, reading at most `chunk` bytes per call.
inline Result<std::vector<std::byte>> read_all(io::Reader& r, size_t chunk = 1 << 16) {
  std::vector<std::byte> out;
  std::vector<std::byte> buf(chunk);
  for (;;) {
    auto n = r.read(buf);
    if (!n) return std::unexpected(std::move(n).error());
    if (*n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  return out;
}

}  // namespace cdi::test
