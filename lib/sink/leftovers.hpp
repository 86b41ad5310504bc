// SPDX-License-Identifier: Apache-2.0
// What an import may leave next to its target when the process is killed (SIGKILL, OOM, eviction),
// and how the next import recognises and removes it — only what is provably ours.
//
// * File targets are written into an unnamed O_TMPFILE inode where the filesystem has O_TMPFILE,
//   so a kill leaves nothing named. Elsewhere (e.g. NFS, FUSE filesystems without tmpfile support)
//   the temporary file is named ".<NAME>.cdi-import-partial-XXXXXX" (NAME: the target's file name,
//   at most 180 bytes of it; X: 6 of [A-Za-z0-9]). The same name is used for the microseconds
//   between linkat() and rename() when an O_TMPFILE replaces an existing target.
// * Archive imports extract into a staging directory ".cdi-import-extract.XXXXXX" inside the
//   target directory. It holds a marker file ".cdi-import-stage" whose text records the staging
//   directory's own device and inode number; the tar is extracted into its "tree" subdirectory,
//   so the archive can never write the marker.
// * A live import holds an open-file-description lock (F_OFD_SETLK, F_WRLCK) on one byte far past
//   any data (offset 2^62) of its partial file or staging marker. Cleanup never removes an entry
//   whose lock is held, so a concurrent import into the same directory keeps its files (except in
//   the microseconds between a named partial's creation and its lock). qemu-img locks bytes
//   100..~300 of images it opens: no overlap. Where the filesystem has no locks at all, nothing
//   can hold one and every matching entry counts as stale.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "lib/util/error.hpp"
#include "lib/util/fd.hpp"

namespace cdi::sink {

struct Removed {
  uint64_t entries = 0;  // files or directories removed
  uint64_t bytes = 0;    // space they allocated (st_blocks; for directories: everything below)
};

// A fresh random partial name for a target file name.
std::string partial_name(std::string_view target_name);
// Whether `entry` (a name in the target's directory) is a partial name of `target_name`.
bool is_partial_name(std::string_view entry, std::string_view target_name);

// Takes the liveness lock on fd (open for writing). Best effort: false where locks are unsupported.
bool hold_live_lock(int fd);
// Whether another open file description holds the liveness lock of the file open at fd.
bool live_lock_held(int fd);

// Removes, in the directory open at dirfd, every regular file whose name is a partial name of
// target_name and whose liveness lock is free. Symlinks, directories, other names: untouched.
// Errors: io when the directory cannot be read (entries that cannot be checked are skipped).
Result<Removed> remove_stale_partials_at(int dirfd, std::string_view target_name);
// The same for the partials of the file target `target` (in its parent directory). A missing
// directory is not an error (nothing to remove).
Result<Removed> remove_stale_partials(const std::filesystem::path& target);

inline constexpr std::string_view k_staging_prefix = ".cdi-import-extract.";
inline constexpr std::string_view k_staging_marker = ".cdi-import-stage";

// ".cdi-import-extract." + 6 of [A-Za-z0-9].
bool is_staging_name(std::string_view entry);

// An archive staging directory in `dir`: created with its marker (locked while this object
// lives) and an empty tree/ subdirectory. The destructor does not remove it: call remove().
class StagingDir {
 public:
  // Errors: io (cannot create the directory or its marker).
  static Result<std::unique_ptr<StagingDir>> create(const std::filesystem::path& dir);
  ~StagingDir() = default;
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }
  std::filesystem::path tree() const { return m_path / "tree"; }
  // Removes the staging directory and all below it; releases the lock. Idempotent.
  void remove() noexcept;

 private:
  StagingDir(std::filesystem::path p, util::Fd marker) : m_path(std::move(p)), m_marker(std::move(marker)) {}
  std::filesystem::path m_path;
  util::Fd m_marker;
};

// Removes the staging directories in `dir` that are provably ours — name, marker naming this very
// directory's device and inode — and whose marker lock is free. A missing dir is not an error.
Result<Removed> remove_stale_staging_dirs(const std::filesystem::path& dir);

}  // namespace cdi::sink
