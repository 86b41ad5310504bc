// SPDX-License-Identifier: Apache-2.0
// MemorySink: an in-memory target that records every extent, for unit tests of decoders and the
// copy loop. It starts filled with 0xEE bytes (a "dirty device"), so a zero range that was never
// sent shows up as a mismatch.
#pragma once

#include <cstring>
#include <vector>

#include "lib/sink/sink.hpp"

namespace cdi::test {

class MemorySink final : public sink::Sink {
 public:
  explicit MemorySink(std::optional<uint64_t> capacity = std::nullopt) : m_capacity(capacity) {}

  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (m_finished) return fail(Errc::internal, "write after finish");
    if (m_capacity && offset + data.size() > *m_capacity) return fail(Errc::limit, "write past capacity");
    grow(offset + data.size());
    std::memcpy(m_data.data() + offset, data.data(), data.size());
    m_stats.bytes_written += data.size();
    ++writes;
    return {};
  }
  Result<void> zero_range(uint64_t offset, uint64_t length) override {
    if (m_capacity && offset + length > *m_capacity) return fail(Errc::limit, "zero past capacity");
    grow(offset + length);
    std::memset(m_data.data() + offset, 0, length);
    m_stats.bytes_holes += length;
    ++zeroes;
    return {};
  }
  Result<void> finish(uint64_t image_size) override {
    if (m_finished) return fail(Errc::internal, "finish twice");
    grow(image_size);
    m_data.resize(image_size);
    m_finished = true;
    return {};
  }
  void abort() noexcept override { m_aborted = true; }
  sink::SinkInfo info() const override { return {"memory", "memory", m_capacity}; }
  sink::SinkStats stats() const override { return m_stats; }

  const std::vector<std::byte>& data() const { return m_data; }
  bool finished() const { return m_finished; }
  bool aborted() const { return m_aborted; }
  size_t writes = 0;
  size_t zeroes = 0;

 private:
  void grow(uint64_t end) {
    if (m_data.size() < end) m_data.resize(end, std::byte{0xEE});
  }
  std::optional<uint64_t> m_capacity;
  std::vector<std::byte> m_data;
  sink::SinkStats m_stats;
  bool m_finished = false;
  bool m_aborted = false;
};

}  // namespace cdi::test
