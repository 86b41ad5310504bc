// SPDX-License-Identifier: Apache-2.0
// Shared by the file and block-device sinks: a bound on dirty page cache (their pwrite loop is
// util::pwrite_all, lib/util/file_io.hpp).
// Internal to lib/sink.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::sink::detail {

inline constexpr uint64_t k_writeback_window = uint64_t{64} << 20;

// Keeps the page cache from ballooning with dirty pages of the target (CDI importer pods have
// small memory limits and were OOM-killed by page cache). Every k_writeback_window bytes written
// it starts writeback of the current window (SYNC_FILE_RANGE_WRITE) and waits for the previous
// window to reach the device, so at most about two windows are dirty at any time.
// A writeback error is returned here (io); the kernel reports it only once per open file, so it
// must not be dropped.
class WritebackThrottle {
 public:
  // Records that [offset, offset+length) was just written to fd.
  Result<void> note_written(int fd, uint64_t offset, uint64_t length, std::string_view what);

 private:
  uint64_t m_pending = 0;   // bytes written in the current window
  uint64_t m_lo = 0, m_hi = 0;            // span of the current window
  uint64_t m_prev_lo = 0, m_prev_hi = 0;  // span of the previous window (empty when equal)
};

}  // namespace cdi::sink::detail
