// SPDX-License-Identifier: Apache-2.0
// InputWindow: the input buffer of a pull decoder (gzip, xz, zstd, snappy). It holds the bytes
// read from upstream; [pos, end) are not consumed yet and the decoder advances pos. It knows the
// stream offset of every buffered byte (for messages naming offsets) and refills from upstream:
// consumed bytes are dropped, except the last `keep_back` (a decoder that may step back over a
// few consumed bytes, as igzip at the end of a member), and the unread ones move to the front —
// only once fewer than `compact_below` bytes are free behind them (a decoder that wants whole
// chunks contiguous but no copy per read, as snappy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::io {

class InputWindow {
 public:
  explicit InputWindow(size_t size, size_t keep_back = 0,
                       size_t compact_below = std::numeric_limits<size_t>::max())
      : m_buf(size), m_keep_back(keep_back), m_compact_below(compact_below) {}

  size_t pos = 0;  // first unread byte
  size_t end = 0;  // end of the bytes read

  std::byte* data() { return m_buf.data(); }
  const std::byte* data() const { return m_buf.data(); }
  size_t size() const { return m_buf.size(); }
  size_t buffered() const { return end - pos; }
  // Stream offset of data()[p].
  uint64_t offset_of(size_t p) const { return m_base + p; }
  // Stream offset of the next unread byte.
  uint64_t offset() const { return m_base + pos; }
  // Bytes received from upstream so far.
  uint64_t received() const { return m_base + end; }
  // Upstream reported its end (a refill read nothing).
  bool eof() const { return m_eof; }

  // Checks `cancel`, makes room as described on top, and reads once from `up` into the free
  // tail. Returns the bytes read; 0 at the end of upstream (eof() is then true). Upstream errors
  // are returned as they are.
  Result<size_t> refill(Reader& up, const util::CancelToken* cancel);
  // Refills until at least `need` (<= size()) bytes are unread; false when upstream ends first.
  Result<bool> ensure(Reader& up, const util::CancelToken* cancel, size_t need);

 private:
  std::vector<std::byte> m_buf;
  size_t m_keep_back;
  size_t m_compact_below;
  uint64_t m_base = 0;  // stream offset of m_buf[0]
  bool m_eof = false;
};

}  // namespace cdi::io
