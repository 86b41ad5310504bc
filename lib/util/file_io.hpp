// SPDX-License-Identifier: Apache-2.0
// Small file plumbing shared by the library: full positional reads and writes (EINTR and short
// transfers retried), an anonymous scratch file, and a private temporary directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include "lib/util/error.hpp"
#include "lib/util/fd.hpp"

namespace cdi::util {

// Writes all of data at offset, retrying EINTR and short writes. Errors: io (ENOSPC, EIO, ...)
// as "writing <what> at offset <n>: <strerror>" (n: where the failing write started).
Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, std::string_view what);

// Reads into dst from offset until dst is full or the file ends, retrying EINTR and short reads.
// Returns the bytes read (< dst.size() only at the end of the file). Errors: io, as
// "reading <what> at offset <n>: <strerror>".
Result<size_t> pread_full(int fd, std::span<std::byte> dst, uint64_t offset, std::string_view what);

// An unnamed read-write file in `dir` that disappears with its descriptor: O_TMPFILE, or where
// the filesystem lacks it a mkostemp file `<dir>/<fallback_prefix>XXXXXX` unlinked at once.
// Errors as "creating a scratch file in <dir>: <strerror>" (not_found for a missing dir).
Result<Fd> anonymous_file(const std::filesystem::path& dir, std::string_view fallback_prefix);

// A private (0700) directory `<base>/<prefix>XXXXXX`, removed with everything in it on
// destruction. `base` empty: $TMPDIR, or /tmp when unset or empty. Move-only.
class TempDir {
 public:
  TempDir() = default;
  static Result<TempDir> create(std::string_view prefix, const std::filesystem::path& base = {});
  TempDir(TempDir&& o) noexcept : m_path(std::exchange(o.m_path, {})) {}
  TempDir& operator=(TempDir&& o) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { remove(); }

  // Empty when none was made (default-constructed, moved from, or removed).
  const std::filesystem::path& path() const { return m_path; }
  // Removes the directory now (errors ignored).
  void remove() noexcept;

 private:
  explicit TempDir(std::filesystem::path p) : m_path(std::move(p)) {}
  std::filesystem::path m_path;
};

}  // namespace cdi::util
