// SPDX-License-Identifier: Apache-2.0
// Local sources: a regular file, a block device (cloning an existing disk) or stdin, named by a
// path, a file:// URL or "-". Each opens to a plain io::Reader over the bytes.
// A source that a running VM uses is refused unless force_shared: for image files the test is
// qemu's own (the OFD lock bytes of block/file-posix.c), for devices an O_EXCL probe.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>

#include "lib/io/reader.hpp"
#include "lib/source/in_use.hpp"   // image_in_use, check_device_free
#include "lib/util/cancel.hpp"

namespace cdi::source {

struct FileSourceOptions {
  // Read even when the source is in use by someone else (a running VM, a mount): the copy may be
  // inconsistent. As qemu-img's -U.
  bool force_shared = false;
  // Checked before every read; streams (pipes, FIFOs, terminals) wait in short poll slices so a
  // cancel is noticed even while no data arrives. Errors: cancelled.
  const util::CancelToken* cancel = nullptr;
  // A regular file or device is read once, front to back (POSIX_FADV_SEQUENTIAL): what has been
  // consumed is dropped from the page cache behind the read position, every drop_step bytes and
  // at the end (POSIX_FADV_DONTNEED), so a multi-GiB local source does not fill the importer's
  // memory cgroup with page cache. Dropping never changes what anyone reads — a later reader of
  // the same file (qemu-img after our probe) reads it from the disk again. false: keep the pages
  // (a caller that re-reads the whole file right after).
  bool drop_behind = true;
  // Consumed bytes dropped at a time; 0: k_file_source_drop_step.
  uint64_t drop_step = 0;
};

// Default FileSourceOptions::drop_step: at most this much of a source read once stays cached
// behind the read position (plus the kernel's readahead ahead of it), small next to a 64 MiB
// memory budget; one fadvise call per step costs next to nothing.
inline constexpr uint64_t k_file_source_drop_step = uint64_t{8} << 20;

Result<std::unique_ptr<io::Reader>> open_file_source(std::string_view location, const FileSourceOptions& opts);

// "file:" URL -> path (percent-decoded). The host must be empty or "localhost", the path
// absolute; query, fragment, "%00" and malformed escapes are invalid_argument.
Result<std::filesystem::path> file_url_to_path(std::string_view url);

}  // namespace cdi::source
