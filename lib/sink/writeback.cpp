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

uint64_t page_size() {
  static const uint64_t page = [] {
    long p = ::sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<uint64_t>(p) : uint64_t{4096};
  }();
  return page;
}

// DONTNEED only drops folios wholly inside the range, and the page cache uses large folios (up
// to a PMD: 2 MiB with 4 KiB pages), naturally aligned. The low end is rounded down to a PMD, so
// a folio straddling it — left by the previous drop, whose top end it straddled — goes now; its
// other part was written back even earlier. The top end is rounded down to a page: the folio
// straddling it still holds dirty data of the next window (the kernel would skip it and, for the
// failure, drain every CPU's LRU cache), and goes with the next drop.
void drop_range(const WritebackSyscalls& sys, int fd, uint64_t lo, uint64_t hi) {
  lo = lo / drop_alignment() * drop_alignment();
  hi = hi / page_size() * page_size();
  if (hi <= lo) return;
  (void)sys.fadvise(fd, static_cast<off_t>(lo), static_cast<off_t>(hi - lo), POSIX_FADV_DONTNEED);
}

}  // namespace

uint64_t drop_alignment() { return page_size() * (page_size() / 8); }

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
  // Everything is on the device: all of the range, partial pages included.
  const uint64_t lo = offset / drop_alignment() * drop_alignment();
  uint64_t len = 0;   // 0: to the end of the file
  if (length) len = (offset + length + page_size() - 1) / page_size() * page_size() - lo;
  (void)m_sys->fadvise(fd, static_cast<off_t>(lo), static_cast<off_t>(len), POSIX_FADV_DONTNEED);
}

}  // namespace cdi::sink::detail
