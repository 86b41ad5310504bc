// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/file_sink.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "lib/sink/leftovers.hpp"
#include "lib/util/file_io.hpp"

namespace cdi::sink {

namespace {

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

// O_TMPFILE errors that mean "this filesystem (or kernel) has no O_TMPFILE": use a named file.
// EISDIR: kernels before 3.11 ignore O_TMPFILE and open the directory itself.
bool no_tmpfile_support(int err) { return err == EOPNOTSUPP || err == EISDIR || err == EINVAL || err == ENOSYS; }

// Allocates [0, size) of fd: fallocate(mode 0) keeps existing data and allocates the holes; where
// the filesystem has no fallocate, zeros are written into each hole (SEEK_HOLE/SEEK_DATA).
Result<void> preallocate_file(int fd, uint64_t size, const std::string& where) {
  if (size == 0) return {};
  if (::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0) return {};
  int err = errno;
  if (err != EOPNOTSUPP && err != ENOSYS) return fail_sys("preallocating " + where, err);
  static const std::array<std::byte, 1 << 16> zeros{};
  off_t pos = 0;
  while (static_cast<uint64_t>(pos) < size) {
    off_t hole = ::lseek(fd, pos, SEEK_HOLE);
    if (hole < 0 || static_cast<uint64_t>(hole) >= size) break;
    off_t data = ::lseek(fd, hole, SEEK_DATA);
    uint64_t end = (data < 0) ? size : std::min<uint64_t>(static_cast<uint64_t>(data), size);
    for (uint64_t off = static_cast<uint64_t>(hole); off < end;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), end - off));
      CDI_TRY(util::pwrite_all(fd, std::span<const std::byte>(zeros.data(), n), off, where));
      off += n;
    }
    pos = static_cast<off_t>(end);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<FileSink>> FileSink::create(const std::filesystem::path& path, const FileSinkOptions& options) {
  if (path.empty()) return fail(Errc::invalid_argument, "empty target path");
  const std::string name = path.filename().string();
  if (name.empty() || name == "." || name == "..")
    return fail(Errc::invalid_argument, "target " + path.string() + " names a directory, not a file");

  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, "target " + path.string() + " is a directory");
    if (!S_ISREG(st.st_mode))
      return fail(Errc::invalid_argument, "target " + path.string() + " exists and is not a regular file");
  } else if (errno != ENOENT) {
    return fail_sys("target " + path.string());
  }

  std::filesystem::path parent = path.parent_path();
  if (parent.empty()) parent = ".";
  util::Fd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return fail(Errc::not_found, "target directory " + parent.string() + " does not exist");
    return fail_sys("opening target directory " + parent.string(), err);
  }

  // A killed earlier import (no O_TMPFILE here) may have left partials of this target: they
  // hold space the new file needs. Failing to clean up does not fail the import.
  uint64_t stale = 0;
  if (auto removed = remove_stale_partials_at(dir.get(), name)) stale = removed->entries;

  auto made = [&](std::string temp, util::Fd fd) {
    hold_live_lock(fd.get());   // keeps a concurrent import's cleanup away from our file
    auto sink = std::unique_ptr<FileSink>(new FileSink(path, std::move(dir), std::move(temp), std::move(fd), options));
    sink->m_stale_removed = stale;
    return sink;
  };

  if (!options.force_named_temp) {
    util::Fd fd(::openat(dir.get(), ".", O_TMPFILE | O_WRONLY | O_CLOEXEC | O_NOCTTY, options.mode));
    if (fd) {
      // finish() names the inode with linkat("/proc/self/fd/N") (AT_EMPTY_PATH would need
      // CAP_DAC_READ_SEARCH) and qemu-img writes through that path: both need /proc.
      struct stat st {};
      if (::stat(proc_fd_path(fd.get()).c_str(), &st) == 0) {
        if (!options.apply_umask && ::fchmod(fd.get(), options.mode) != 0)
          return fail_sys("setting the mode of a temporary file in " + parent.string());
        return made(std::string(), std::move(fd));
      }
    } else if (!no_tmpfile_support(errno)) {
      return fail_sys("creating a temporary file in " + parent.string());
    }
  }

  // O_EXCL with a random name, like mkostemp, but the mode (and umask) apply at creation.
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string temp = partial_name(name);
    util::Fd fd(::openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
                         options.mode));
    if (!fd) {
      if (errno == EEXIST) continue;
      return fail_sys("creating a temporary file in " + parent.string());
    }
    if (!options.apply_umask && ::fchmod(fd.get(), options.mode) != 0) {
      int err = errno;
      ::unlinkat(dir.get(), temp.c_str(), 0);
      return fail_sys("setting the mode of " + (parent / temp).string(), err);
    }
    return made(std::move(temp), std::move(fd));
  }
  return fail(Errc::io, "cannot create a temporary file in " + parent.string() + ": every name taken");
}

FileSink::~FileSink() {
  if (!m_finished) abort();
}

Result<void> FileSink::check_usable(uint64_t offset, uint64_t length) const {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "extent after finish() or abort()");
  if (m_direct) return fail(Errc::internal, "extent after prepare_direct()");
  if (offset + length < offset) return fail(Errc::limit, "extent offset overflows 64 bits");
  return {};
}

Result<void> FileSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  CDI_TRY(check_usable(offset, data.size()));
  if (data.empty()) return {};
  CDI_TRY(util::pwrite_all(m_fd.get(), data, offset, m_path.string()));
  CDI_TRY(m_throttle.note_written(m_fd.get(), offset, data.size(), m_path.string()));
  m_stats.bytes_written += data.size();
  m_end = std::max(m_end, offset + data.size());
  return {};
}

Result<void> FileSink::zero_range(uint64_t offset, uint64_t length) {
  CDI_TRY(check_usable(offset, length));
  // The temporary file is ours and new: everything never written reads as zeros.
  m_stats.bytes_holes += length;
  if (length) m_end = std::max(m_end, offset + length);
  return {};
}

Result<void> FileSink::finish(uint64_t image_size) {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "finish() called twice or after abort()");
  m_finish_called = true;
  if (m_end > image_size)
    return fail(Errc::internal, "extents end at " + std::to_string(m_end) + ", past the image size " +
                                    std::to_string(image_size));
  const uint64_t final_size = std::max(image_size, m_options.min_size);
  const std::string where = m_path.string();

  if (::ftruncate(m_fd.get(), static_cast<off_t>(final_size)) != 0)
    return fail_sys("setting the size of " + where + " to " + std::to_string(final_size));
  if (m_options.preallocate) CDI_TRY(preallocate_file(m_fd.get(), final_size, where));
  if (::fsync(m_fd.get()) != 0) return fail_sys("syncing " + where);
  // Everything is on the device: the clean pages (the last windows, an external writer's, the
  // preallocation's zeros) need not stay charged to the importer's memory cgroup.
  m_throttle.release(m_fd.get(), 0, 0);
  if (m_anonymous) {
    CDI_TRY(link_into_place(where));
  } else {
    const std::string target = m_path.filename().string();
    if (::renameat(m_dir.get(), m_temp_name.c_str(), m_dir.get(), target.c_str()) != 0)
      return fail_sys("renaming the imported file to " + where);
    m_temp_name.clear();
  }
  m_fd.reset();
  m_finished = true;  // the target is in place; abort() must not touch it any more
  if (::fsync(m_dir.get()) != 0) return fail_sys("syncing the directory of " + where);
  return {};
}

// Names the fsynced O_TMPFILE inode as the target. A new target: linkat straight to its name. An
// existing one (linkat never replaces): linkat to a fresh partial name, then rename() over the
// target. Between the two the file is complete and fsynced under the partial name, for
// microseconds; a kill there leaves it, locked by nobody, and the next create() removes it.
Result<void> FileSink::link_into_place(const std::string& where) {
  const std::string proc = proc_fd_path(m_fd.get());
  const std::string target = m_path.filename().string();
  auto link_as = [&](const std::string& name) {
    return ::linkat(AT_FDCWD, proc.c_str(), m_dir.get(), name.c_str(), AT_SYMLINK_FOLLOW) == 0;
  };
  if (link_as(target)) return {};
  if (errno != EEXIST) return fail_sys("linking the imported file to " + where);
  for (int attempt = 0; attempt < 64; ++attempt) {
    std::string temp = partial_name(target);
    if (!link_as(temp)) {
      if (errno == EEXIST) continue;
      return fail_sys("linking the imported file next to " + where);
    }
    if (::renameat(m_dir.get(), temp.c_str(), m_dir.get(), target.c_str()) != 0) {
      int err = errno;
      ::unlinkat(m_dir.get(), temp.c_str(), 0);
      return fail_sys("renaming the imported file to " + where, err);
    }
    return {};
  }
  return fail(Errc::io, "cannot link the imported file next to " + where + ": every name taken");
}

void FileSink::abort() noexcept {
  if (m_finished || m_aborted) return;
  m_aborted = true;
  m_fd.reset();
  if (!m_temp_name.empty()) {
    ::unlinkat(m_dir.get(), m_temp_name.c_str(), 0);
    m_temp_name.clear();
  }
}

std::optional<std::string> FileSink::direct_path() const {
  if (m_finish_called || m_aborted) return std::nullopt;
  auto p = temp_path();
  if (p.empty()) return std::nullopt;
  return p.string();
}

std::vector<int> FileSink::direct_fds() const {
  if (!m_anonymous || m_finish_called || m_aborted || !m_fd) return {};
  return {m_fd.get()};
}

Result<void> FileSink::prepare_direct(uint64_t image_size) {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "prepare_direct() after finish() or abort()");
  if (::ftruncate(m_fd.get(), static_cast<off_t>(image_size)) != 0)
    return fail_sys("setting the size of " + m_path.string() + " to " + std::to_string(image_size));
  m_direct = true;
  m_end = std::max(m_end, image_size);
  return {};
}

SinkInfo FileSink::info() const { return {"file", m_path.string(), std::nullopt, SinkKind::file}; }

SinkStats FileSink::stats() const { return m_stats; }

std::filesystem::path FileSink::temp_path() const {
  if (m_anonymous) {
    if (m_finished || m_aborted || !m_fd) return {};
    return proc_fd_path(m_fd.get());
  }
  if (m_temp_name.empty()) return {};
  std::filesystem::path parent = m_path.parent_path();
  if (parent.empty()) parent = ".";
  return parent / m_temp_name;
}

}  // namespace cdi::sink
