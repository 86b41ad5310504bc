// SPDX-License-Identifier: Apache-2.0
// Counts the bytes that pass through (the wire bytes at the bottom of the chain, for progress).
#pragma once

#include <atomic>

#include "lib/io/reader.hpp"

namespace cdi::io {

class CountingReader final : public Reader {
 public:
  // `counter` must outlive the reader; it is only ever added to.
  CountingReader(std::unique_ptr<Reader> inner, std::atomic<uint64_t>& counter)
      : m_inner(std::move(inner)), m_counter(counter) {}

  Result<size_t> read(std::span<std::byte> dst) override {
    size_t n = CDI_TRY(m_inner->read(dst));
    m_counter.fetch_add(n, std::memory_order_relaxed);
    return n;
  }
  ReaderInfo info() const override { return m_inner->info(); }

 private:
  std::unique_ptr<Reader> m_inner;
  std::atomic<uint64_t>& m_counter;
};

}  // namespace cdi::io
