// SPDX-License-Identifier: Apache-2.0
// Picks the sink for a destination path: a block device gets a BlockDeviceSink, anything else a
// FileSink (created next to the path and renamed over it at finish()).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>

#include "lib/sink/sink.hpp"
#include "lib/sink/writeback.hpp"

namespace cdi::sink {

struct SinkOptions {
  // File targets are grown to at least this size (--image-size). Ignored for block devices,
  // whose size is fixed (as in CDI's block mode).
  uint64_t min_size = 0;
  // Permission bits of a new file target (CDI uses 0660 with apply_umask = false).
  mode_t mode = 0644;
  bool apply_umask = true;
  // Allocate the whole file target at finish() (fallocate, else zeros). Block devices need
  // nothing more: their zero ranges are already written for real (BLKZEROOUT keeps allocation).
  bool preallocate = false;
  // Bytes per write-back window, files and devices alike (lib/sink/writeback.hpp): while the
  // target is written, at most about two windows of it stay in the page cache, which is charged
  // to the importer's memory cgroup. 0: the default (64 MiB); below 1 MiB: 1 MiB. A planner with
  // a small memory budget sizes it down (8-16 MiB for a 64 MiB budget).
  uint64_t writeback_window = detail::k_writeback_window;
};

// True when path (following symlinks) exists and is a block device. Never fails.
bool is_block_device(const std::filesystem::path& path);

// Opens the sink for dest. Errors: those of BlockDeviceSink::open or FileSink::create.
Result<std::unique_ptr<Sink>> open_sink(const std::filesystem::path& dest, const SinkOptions& options);

}  // namespace cdi::sink
