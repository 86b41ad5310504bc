// SPDX-License-Identifier: Apache-2.0
// FileSink: imports into a regular file, atomically. The data goes to a temporary file in the
// target's directory (".<name>.cdi-import-partial-XXXXXX"); zero ranges are left as holes; only
// finish() sizes, fsyncs and renames it over the target, then fsyncs the directory. A failed
// import (abort(), or destruction without finish()) unlinks the temporary file, so an existing
// target is never touched unless the import completed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

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
};

class FileSink final : public Sink {
 public:
  // Creates the temporary file next to `path`. Nothing at `path` changes until finish().
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
  // Size = max(image_size, min_size); ftruncate, [preallocate], fsync, rename over the target, fsync the
  // directory. Errors: io; internal when called twice or when extents end past image_size.
  // On an error before the rename, the temporary file stays until abort()/destruction.
  Result<void> finish(uint64_t image_size) override;
  void abort() noexcept override;

  SinkInfo info() const override;
  SinkStats stats() const override;

  // The temporary file, for an external converter (qemu-img) writing in place of write_at;
  // nullopt after finish()/abort().
  std::optional<std::string> direct_path() const override;
  // Sizes the temporary file to image_size for the external writer. Later write_at/zero_range
  // calls are internal errors. Errors: io, internal after finish()/abort().
  Result<void> prepare_direct(uint64_t image_size) override;

  // The temporary file written until finish(); empty once renamed or removed. For tests/logs.
  std::filesystem::path temp_path() const;

 private:
  FileSink(std::filesystem::path path, util::Fd dir, std::string temp_name, util::Fd fd, FileSinkOptions options)
      : m_path(std::move(path)), m_dir(std::move(dir)), m_temp_name(std::move(temp_name)), m_fd(std::move(fd)),
        m_options(options) {}
  Result<void> check_usable(uint64_t offset, uint64_t length) const;

  std::filesystem::path m_path;
  util::Fd m_dir;            // the target's directory: renameat/unlinkat/fsync go through it
  std::string m_temp_name;   // name of the temporary file in m_dir; empty once renamed/removed
  util::Fd m_fd;
  FileSinkOptions m_options;
  detail::WritebackThrottle m_throttle;
  SinkStats m_stats;
  uint64_t m_end = 0;        // end of the furthest extent received
  bool m_direct = false;     // prepare_direct() was called
  bool m_finish_called = false;
  bool m_finished = false;
  bool m_aborted = false;
};

}  // namespace cdi::sink
