// SPDX-License-Identifier: Apache-2.0
// PeekReader: look at the head of a stream without consuming it. Probing formats peeks;
// only read() consumes. The peeked bytes are served again by read().
#pragma once

#include <vector>

#include "lib/io/reader.hpp"

namespace cdi::io {

class PeekReader final : public Reader {
 public:
  explicit PeekReader(std::unique_ptr<Reader> inner) : m_inner(std::move(inner)) {}

  // Returns a view of the next min(n, remaining) bytes without consuming them. Fewer than n
  // bytes only when the stream ends sooner. The view stays valid until the next call.
  Result<std::span<const std::byte>> peek(size_t n);

  Result<size_t> read(std::span<std::byte> dst) override;
  ReaderInfo info() const override { return m_inner->info(); }

  Reader& inner() { return *m_inner; }

 private:
  std::unique_ptr<Reader> m_inner;
  std::vector<std::byte> m_buf;  // peeked, not yet consumed: m_buf[m_pos..]
  size_t m_pos = 0;
  bool m_eof = false;
};

}  // namespace cdi::io
