// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/writeback.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace cdi::sink::detail {

Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("writing " + std::string(what) + " at offset " + std::to_string(offset));
    }
    if (n == 0)  // pwrite never returns 0 for a non-empty buffer on Linux; do not spin
      return fail(Errc::io, "writing " + std::string(what) + " at offset " + std::to_string(offset) +
                                ": the kernel accepted no bytes");
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

namespace {
Result<void> sync_range(int fd, uint64_t lo, uint64_t hi, unsigned flags, std::string_view what) {
  if (hi <= lo) return {};
  while (::sync_file_range(fd, static_cast<off_t>(lo), static_cast<off_t>(hi - lo), flags) != 0) {
    if (errno == EINTR) continue;
    // Filesystems without support (some FUSE/NFS) are not an error: fsync at finish still runs.
    if (errno == ENOSYS || errno == EOPNOTSUPP || errno == ESPIPE) return {};
    return fail_sys("flushing " + std::string(what));
  }
  return {};
}
}  // namespace

Result<void> WritebackThrottle::note_written(int fd, uint64_t offset, uint64_t length, std::string_view what) {
  if (length == 0) return {};
  if (m_pending == 0) {
    m_lo = offset;
    m_hi = offset + length;
  } else {
    m_lo = std::min(m_lo, offset);
    m_hi = std::max(m_hi, offset + length);
  }
  m_pending += length;
  if (m_pending < k_writeback_window) return {};

  // Start the current window, then wait for the previous one: the device works on one window
  // while the caller fills the next.
  CDI_TRY(sync_range(fd, m_lo, m_hi, SYNC_FILE_RANGE_WRITE, what));
  CDI_TRY(sync_range(fd, m_prev_lo, m_prev_hi,
                     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER, what));
  m_prev_lo = m_lo;
  m_prev_hi = m_hi;
  m_pending = 0;
  return {};
}

}  // namespace cdi::sink::detail
