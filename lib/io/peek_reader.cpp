// SPDX-License-Identifier: Apache-2.0
#include "lib/io/peek_reader.hpp"

#include <algorithm>
#include <cstring>

namespace cdi::io {

Result<std::span<const std::byte>> PeekReader::peek(size_t n) {
  if (m_pos > 0) {
    m_buf.erase(m_buf.begin(), m_buf.begin() + static_cast<std::ptrdiff_t>(m_pos));
    m_pos = 0;
  }
  while (m_buf.size() < n && !m_eof) {
    size_t old = m_buf.size();
    m_buf.resize(n);
    auto got = m_inner->read(std::span(m_buf).subspan(old));
    if (!got) {
      m_buf.resize(old);
      return std::unexpected(std::move(got).error());
    }
    m_buf.resize(old + *got);
    if (*got == 0) m_eof = true;
  }
  return std::span<const std::byte>(m_buf.data(), std::min(n, m_buf.size()));
}

Result<size_t> PeekReader::read(std::span<std::byte> dst) {
  if (dst.empty()) return 0;
  if (m_pos < m_buf.size()) {
    size_t n = std::min(dst.size(), m_buf.size() - m_pos);
    std::memcpy(dst.data(), m_buf.data() + m_pos, n);
    m_pos += n;
    if (m_pos == m_buf.size()) {
      m_buf.clear();
      m_buf.shrink_to_fit();
      m_pos = 0;
    }
    return n;
  }
  if (m_eof) return 0;
  return m_inner->read(dst);
}

}  // namespace cdi::io
