// SPDX-License-Identifier: Apache-2.0
// FileSink: imports into a regular file, atomically. The data goes to an unnamed O_TMPFILE inode
// in the target's directory, or — where the filesystem has no O_TMPFILE — to a named temporary
// file there (".<name>.cdi-import-partial-XXXXXX", see leftovers.hpp); zero ranges are left as
// holes; only finish() sizes, fsyncs and names it as the target (linkat; over an existing target:
// linkat to a fresh partial name, then rename), then fsyncs the directory. A failed import
// (abort(), or destruction without finish()) closes/unlinks the temporary file, so an existing
// target is never touched unless the import completed. A killed import leaves nothing named with
// O_TMPFILE; create() removes stale partials of the same target left by killed runs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lib/sink/sink.hpp"
#include "lib/sink/writeback.hpp"
#include "lib/util/fd.hpp"

namespace cdi::sink {

struct FileSinkOptions {
  // The file is grown to at least this many bytes (the user's --image-size); it is never made
  // smaller than the image.
  uint64_t min_size = 0;
  // Permission bits of the new file.
  mode_t mode = 0644;
  // true: mode & ~umask, as open(2) does; false: exactly `mode` (CDI chmods its target to 0660).
  bool apply_umask = true;
  // Allocate every byte of the final file at finish() (CDI's PREALLOCATION): fallocate, or, where
  // the filesystem cannot, write zeros into the holes.
  bool preallocate = false;
  // Internal, for tests: never use O_TMPFILE (the path taken where the filesystem lacks it).
  bool force_named_temp = false;
  // Bytes per write-back window (writeback.hpp): at most about two windows of the file stay in
  // the page cache while it is written. 0: the default (64 MiB); smaller than 1 MiB: 1 MiB.
  uint64_t writeback_window = detail::k_writeback_window;
};

class FileSink final : public Sink {
 public:
  // Removes stale partials of `path` (leftovers.hpp), then creates the temporary file next to
  // `path`: O_TMPFILE when the filesystem supports it (and /proc/self/fd can name it), else a
  // named partial. Nothing at `path` changes until finish().
  // Errors: invalid_argument (path is a directory or an existing non-regular file, or names no
  // file), not_found (the parent directory does not exist), io (cannot create the file).
  static Result<std::unique_ptr<FileSink>> create(const std::filesystem::path& path,
                                                  const FileSinkOptions& options);
  ~FileSink() override;

  // Sink contract. write_at: io (ENOSPC, EIO, with the path), internal after finish/abort.
  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override;
  // A hole: nothing is written; the file is extended at finish(). The temporary file is new, so
  // holes read back as zeros.
  Result<void> zero_range(uint64_t offset, uint64_t length) override;
  // Size = max(image_size, min_size); ftruncate, [preallocate], fsync, drop the file's pages from
  // the page cache, link/rename to the target, fsync the directory. Errors: io; internal when called twice or when extents end past image_size.
  // On an error before the rename, the temporary file stays until abort()/destruction.
  Result<void> finish(uint64_t image_size) override;
  void abort() noexcept override;

  SinkInfo info() const override;
  SinkStats stats() const override;

  // The temporary file, for an external converter (qemu-img) writing in place of write_at:
  // "/proc/self/fd/N" for an O_TMPFILE (the child inherits fd N: direct_fds()), else its name;
  // nullopt after finish()/abort().
  std::optional<std::string> direct_path() const override;
  std::vector<int> direct_fds() const override;
  // Sizes the temporary file to image_size for the external writer. Later write_at/zero_range
  // calls are internal errors. Errors: io, internal after finish()/abort().
  Result<void> prepare_direct(uint64_t image_size) override;

  // The temporary file written until finish(): its name in the target's directory, or
  // "/proc/self/fd/N" for an O_TMPFILE; empty once committed or removed. For tests/logs.
  std::filesystem::path temp_path() const;
  // Whether the temporary file is an unnamed O_TMPFILE inode.
  bool anonymous() const { return m_anonymous; }
  // Stale partials of this target removed by create().
  uint64_t stale_removed() const { return m_stale_removed; }

 private:
  FileSink(std::filesystem::path path, util::Fd dir, std::string temp_name, util::Fd fd, FileSinkOptions options)
      : m_path(std::move(path)), m_dir(std::move(dir)), m_temp_name(std::move(temp_name)), m_fd(std::move(fd)),
        m_options(options), m_anonymous(m_temp_name.empty()), m_throttle(options.writeback_window) {}
  Result<void> check_usable(uint64_t offset, uint64_t length) const;
  Result<void> link_into_place(const std::string& where);

  std::filesystem::path m_path;
  util::Fd m_dir;            // the target's directory: renameat/unlinkat/fsync go through it
  std::string m_temp_name;   // name of the temporary file in m_dir; empty for O_TMPFILE and once renamed/removed
  util::Fd m_fd;
  FileSinkOptions m_options;
  bool m_anonymous = false;  // m_fd is an O_TMPFILE inode (no name until finish())
  uint64_t m_stale_removed = 0;
  detail::WritebackThrottle m_throttle;
  SinkStats m_stats;
  uint64_t m_end = 0;        // end of the furthest extent received
  bool m_direct = false;     // prepare_direct() was called
  bool m_finish_called = false;
  bool m_finished = false;
  bool m_aborted = false;
};

}  // namespace cdi::sink
