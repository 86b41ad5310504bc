// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/writeback.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace cdi::sink::detail {

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
