// SPDX-License-Identifier: Apache-2.0
// tar extraction for content type archive: the whole tar is unpacked into an existing directory
// (CDI's /data), replacing `tar -x`. Security first: nothing is ever created or written outside
// the destination. Each entry is checked by us before libarchive's archive_write_disk (itself
// run with SECURE_NODOTDOT | SECURE_SYMLINKS) creates it:
//   - absolute paths and any ".." component are refused;
//   - no entry is created through a symlink: every parent component of its path is lstat()ed
//     and must not be a symlink (whether the archive made it or it was already in dest);
//   - symlink targets must be relative, may climb with leading ".." only as far as the link's
//     own depth, must not use ".." after a normal component (that could climb out through
//     another symlink) and must not pass through a symlink that was in dest before;
//   - hard links must name a regular file extracted earlier from the same archive;
//   - device nodes, FIFOs and sockets are refused;
//   - modes keep only rwx bits (setuid/setgid/sticky stripped); no owner, ACL, xattr or file-flag
//     restore; timestamps are restored; data holes stay holes.
// Refusals are Errc::unsupported: the tar itself is well formed, we decline its content (and
// fail the whole import, as GNU tar's non-zero exit fails CDI's). Damage is corrupt_input.
#pragma once

#include <cstdint>
#include <filesystem>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::tar {

struct ExtractOptions {
  const util::CancelToken* cancel = nullptr;  // checked between entries and data blocks
};

struct ExtractStats {
  uint64_t files = 0;  // regular files created
  uint64_t dirs = 0;   // directories created or updated
  uint64_t links = 0;  // symlinks and hard links created
  uint64_t bytes = 0;  // file data bytes written (holes excluded)
};

// Extracts the tar stream `in` (read to its end, not owned) into `dest`, an existing directory.
// Existing files are replaced (never written through a symlink). On error, entries extracted so
// far stay in place. Errors (context "tar"):
//   unsupported      — an entry refused for safety (see above);
//   corrupt_input    — damaged or truncated archive, trailing garbage, hard link to an entry
//                      not extracted before;
//   invalid_argument — dest is not an existing directory;
//   io / not_found   — creating or writing a file failed (ENOSPC, EACCES, …);
//   cancelled; any upstream error, unchanged in class.
Result<ExtractStats> extract(io::Reader& in, const std::filesystem::path& dest, const ExtractOptions& opts);

}  // namespace cdi::formats::tar
