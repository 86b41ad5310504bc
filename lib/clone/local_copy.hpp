// SPDX-License-Identifier: Apache-2.0
// `cdi-import clone --from SRC --to DEST`: a local, sparse, byte-exact copy of a VM disk.
// SRC: a block device, a regular file, or a directory holding disk.img. DEST: a block device (at
// least as large as SRC; bytes past SRC's end are left alone), a regular file (written beside
// DEST under a temporary name and renamed over it at the end: a failure leaves DEST untouched), or
// a directory (DEST/disk.img). A source in use (lib/source/in_use.hpp)
// is refused unless force_shared; a destination device in use is always refused.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::clone {

struct LocalCopyOptions {
  bool force_shared = false;
  const util::CancelToken* cancel = nullptr;
  std::atomic<uint64_t>* copied = nullptr;   // bytes of SRC processed so far (optional)
};

struct LocalCopyResult {
  std::filesystem::path from, to;   // resolved (disk.img inside directories)
  uint64_t size = 0;                // bytes of SRC
  uint64_t data_bytes = 0;          // bytes written (the rest were zeros: holes / zero-outs)
};

// The disk a SRC/DEST names: a directory's disk.img, else the path itself.
std::filesystem::path disk_path(const std::filesystem::path& p);

// Errors: busy (in use), limit (DEST device smaller than SRC), invalid_argument (SRC and DEST
// the same file, an unusable kind of file), not_found, io, cancelled.
Result<LocalCopyResult> local_copy(const std::filesystem::path& from, const std::filesystem::path& to,
                                   const LocalCopyOptions& opts);

}  // namespace cdi::clone
