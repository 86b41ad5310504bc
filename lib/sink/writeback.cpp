// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/writeback.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace cdi::sink::detail {

namespace {

int real_sync_file_range(int fd, off_t offset, off_t length, unsigned flags) {
  return ::sync_file_range(fd, offset, length, flags);
}
int real_fadvise(int fd, off_t offset, off_t length, int advice) { return ::posix_fadvise(fd, offset, length, advice); }

constexpr WritebackSyscalls k_system{real_sync_file_range, real_fadvise};

Result<void> sync_range(const WritebackSyscalls& sys, int fd, uint64_t lo, uint64_t hi, unsigned flags,
                        std::string_view what) {
  if (hi <= lo) return {};
  while (sys.sync_file_range(fd, static_cast<off_t>(lo), static_cast<off_t>(hi - lo), flags) != 0) {
    if (errno == EINTR) continue;
    // Filesystems without support (some FUSE/NFS) are not an error: fsync at finish still runs.
    if (errno == ENOSYS || errno == EOPNOTSUPP || errno == ESPIPE) return {};
    return fail_sys("flushing " + std::string(what));
  }
  return {};
}

// DONTNEED drops only whole pages inside the range: widen it to page boundaries so the pages a
// window shares with its neighbours go too (a page still dirty or under writeback is skipped by
// the kernel, never discarded).
void drop_range(const WritebackSyscalls& sys, int fd, uint64_t lo, uint64_t hi) {
  if (hi <= lo) return;
  static const uint64_t page = [] {
    long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<uint64_t>(p) : uint64_t{4096};
  }();
  lo = lo / page * page;
  hi = (hi + page - 1) / page * page;
  (void)sys.fadvise(fd, static_cast<off_t>(lo), static_cast<off_t>(hi - lo), POSIX_FADV_DONTNEED);
}

}  // namespace

const WritebackSyscalls& system_writeback_syscalls() { return k_system; }

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
  if (m_pending < m_window) return {};

  // Start the current window, then wait for the previous one: the device works on one window
  // while the caller fills the next. Once the previous window is on the device its pages are
  // clean: drop them, so clean pages do not pile up in the cgroup either.
  CDI_TRY(sync_range(*m_sys, fd, m_lo, m_hi, SYNC_FILE_RANGE_WRITE, what));
  CDI_TRY(sync_range(*m_sys, fd, m_prev_lo, m_prev_hi,
                     SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER, what));
  drop_range(*m_sys, fd, m_prev_lo, m_prev_hi);
  m_prev_lo = m_lo;
  m_prev_hi = m_hi;
  m_pending = 0;
  return {};
}

void WritebackThrottle::release(int fd, uint64_t offset, uint64_t length) const {
  if (length == 0) {
    (void)m_sys->fadvise(fd, static_cast<off_t>(offset), 0, POSIX_FADV_DONTNEED);
    return;
  }
  drop_range(*m_sys, fd, offset, offset + length);
}

}  // namespace cdi::sink::detail
