// SPDX-License-Identifier: Apache-2.0
// Shared by the file and block-device sinks: a bound on the target's page cache, dirty and clean
// (their pwrite loop is util::pwrite_all, lib/util/file_io.hpp).
// Internal to lib/sink (tests include it to drive the throttle with fake syscalls).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::sink::detail {

// Default window: what the sinks always used. A small memory budget wants 8-16 MiB (the target
// then holds at most about two windows of page cache).
inline constexpr uint64_t k_writeback_window = uint64_t{64} << 20;
// Smaller windows are raised to this: below it the syscalls cost more than they save.
inline constexpr uint64_t k_min_writeback_window = uint64_t{1} << 20;

// A window size as configured: 0 means the default, anything else is at least the minimum.
constexpr uint64_t effective_window(uint64_t configured) {
  if (configured == 0) return k_writeback_window;
  return configured < k_min_writeback_window ? k_min_writeback_window : configured;
}

// The syscalls the throttle makes, injectable for tests. Both follow the kernel's conventions:
// sync_file_range returns -1 and sets errno; fadvise returns 0 or an error number (as
// posix_fadvise does, errno untouched).
struct WritebackSyscalls {
  int (*sync_file_range)(int fd, off_t offset, off_t length, unsigned flags);
  int (*fadvise)(int fd, off_t offset, off_t length, int advice);
};
// The real ones.
const WritebackSyscalls& system_writeback_syscalls();

// The largest page-cache folio (a PMD: 2 MiB with 4 KiB pages). DONTNEED drops only folios wholly
// inside its range, so drops start at a multiple of this (see writeback.cpp).
uint64_t drop_alignment();

// Keeps the target's pages from ballooning in the page cache, where they are charged to the
// importer pod's memory cgroup (CDI importer pods have small memory limits and were OOM-killed,
// or pushed into reclaim storms, by page cache). Every `window` bytes written it starts writeback
// of the current window (SYNC_FILE_RANGE_WRITE), waits for the previous window to reach the
// device, and then drops that window's now clean pages (POSIX_FADV_DONTNEED): at most about two
// windows of the target are in the page cache at any time, dirty or clean.
// A writeback error is returned here (io); the kernel reports it only once per open file, so it
// must not be dropped: the caller fails the import with it. DONTNEED is advice: its failure is
// ignored (it never discards dirty data, so it cannot lose an error either).
class WritebackThrottle {
 public:
  explicit WritebackThrottle(uint64_t window = k_writeback_window,
                             const WritebackSyscalls& sys = system_writeback_syscalls())
      : m_window(effective_window(window)), m_sys(&sys) {}

  // Records that [offset, offset+length) was just written to fd.
  Result<void> note_written(int fd, uint64_t offset, uint64_t length, std::string_view what);

  // After the caller's final fsync/fdatasync: drops [offset, offset+length) of fd from the page
  // cache (length 0: to the end of the file). Best effort, never fails.
  void release(int fd, uint64_t offset, uint64_t length) const;

  uint64_t window() const { return m_window; }

 private:
  uint64_t m_window;
  const WritebackSyscalls* m_sys;
  uint64_t m_pending = 0;   // bytes written in the current window
  uint64_t m_lo = 0, m_hi = 0;            // span of the current window
  uint64_t m_prev_lo = 0, m_prev_hi = 0;  // span of the previous window (empty when equal)
};

}  // namespace cdi::sink::detail
