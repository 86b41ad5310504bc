// SPDX-License-Identifier: Apache-2.0
#include "lib/io/input_window.hpp"

#include <algorithm>
#include <cstring>

namespace cdi::io {

Result<size_t> InputWindow::refill(Reader& up, const util::CancelToken* cancel) {
  if (cancel) CDI_TRY(cancel->check());
  size_t keep = std::min(m_keep_back, pos);
  size_t drop = pos - keep;
  if (drop && (pos == end || m_buf.size() - end < m_compact_below)) {
    std::memmove(m_buf.data(), m_buf.data() + drop, end - drop);
    m_base += drop;
    pos -= drop;
    end -= drop;
  }
  size_t n = CDI_TRY(up.read(std::span(m_buf).subspan(end)));
  end += n;
  if (n == 0) m_eof = true;
  return n;
}

Result<bool> InputWindow::ensure(Reader& up, const util::CancelToken* cancel, size_t need) {
  while (buffered() < need) {
    if (m_eof) return false;
    CDI_TRY(refill(up, cancel));
  }
  return true;
}

}  // namespace cdi::io
