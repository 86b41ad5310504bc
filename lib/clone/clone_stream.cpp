// SPDX-License-Identifier: Apache-2.0
#include "lib/clone/clone_stream.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "lib/util/fd.hpp"
#include "lib/util/process.hpp"

namespace cdi::clone {

namespace {

// Reads a device or file start to end. On a regular file the holes (SEEK_HOLE/SEEK_DATA) are
// produced as zeros without a read.
class RawReader final : public io::Reader {
 public:
  RawReader(util::Fd fd, io::ReaderInfo info, bool sparse_file, uint64_t size, std::string what,
            const util::CancelToken* cancel)
      : m_fd(std::move(fd)), m_info(std::move(info)), m_sparse(sparse_file), m_size(size), m_what(std::move(what)),
        m_cancel(cancel) {}

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_cancel) CDI_TRY(m_cancel->check());
    if (dst.empty() || m_pos >= m_size) return size_t{0};
    size_t want = static_cast<size_t>(std::min<uint64_t>(dst.size(), m_size - m_pos));
    if (m_sparse) {
      if (m_pos >= m_data_end) locate();
      if (m_pos < m_data_start) {   // in a hole
        size_t n = static_cast<size_t>(std::min<uint64_t>(want, m_data_start - m_pos));
        std::memset(dst.data(), 0, n);
        m_pos += n;
        return n;
      }
      want = static_cast<size_t>(std::min<uint64_t>(want, m_data_end - m_pos));
    }
    for (;;) {
      ssize_t n = ::pread(m_fd.get(), dst.data(), want, static_cast<off_t>(m_pos));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        return std::unexpected(Error(Errc::io, "reading " + m_what + ": " + std::strerror(err), err));
      }
      if (n == 0) {   // shrank under us
        m_size = m_pos;
        return size_t{0};
      }
      m_pos += static_cast<uint64_t>(n);
      return static_cast<size_t>(n);
    }
  }
  io::ReaderInfo info() const override { return m_info; }

 private:
  // Sets [m_data_start, m_data_end) to the data extent at or after m_pos.
  void locate() {
    off_t d = ::lseek(m_fd.get(), static_cast<off_t>(m_pos), SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) {   // only a hole up to the end
        m_data_start = m_data_end = m_size;
        return;
      }
      m_data_start = m_pos;   // cannot tell: read everything
      m_data_end = m_size;
      return;
    }
    off_t h = ::lseek(m_fd.get(), d, SEEK_HOLE);
    m_data_start = static_cast<uint64_t>(d);
    m_data_end = h < 0 ? m_size : std::min<uint64_t>(static_cast<uint64_t>(h), m_size);
    if (m_data_end <= m_pos) m_data_end = m_size;
  }

  util::Fd m_fd;
  io::ReaderInfo m_info;
  bool m_sparse;
  uint64_t m_size;
  std::string m_what;
  const util::CancelToken* m_cancel;
  uint64_t m_pos = 0;
  uint64_t m_data_start = 0;
  uint64_t m_data_end = 0;
};

class TarReader final : public io::Reader {
 public:
  TarReader(std::unique_ptr<util::ChildProcess> child, const util::CancelToken* cancel)
      : m_child(std::move(child)), m_cancel(cancel) {}

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_done) return size_t{0};
    if (m_cancel) CDI_TRY(m_cancel->check());
    for (;;) {
      ssize_t n = ::read(m_child->stdout_fd(), dst.data(), dst.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail_sys("reading tar's output");
      if (n > 0) return static_cast<size_t>(n);
      break;
    }
    m_done = true;
    int rc = CDI_TRY(m_child->wait());
    if (rc != 0) {
      std::string err = m_child->stderr_tail();
      while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
      if (auto nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
      return fail(Errc::io, "tar exited with status " + std::to_string(rc) + (err.empty() ? "" : ": " + err));
    }
    return size_t{0};
  }
  io::ReaderInfo info() const override { return {"tar", std::nullopt, false, std::nullopt}; }

 private:
  std::unique_ptr<util::ChildProcess> m_child;
  const util::CancelToken* m_cancel;
  bool m_done = false;
};

}  // namespace

std::string_view content_type_name(CloneKind k) {
  return k == CloneKind::blockdevice ? "blockdevice-clone" : "filesystem-clone";
}

Result<std::unique_ptr<io::Reader>> open_raw_stream(const std::filesystem::path& path, const util::CancelToken* cancel) {
  const std::string name = path.string();
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return fail_sys(name);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_sys("stat " + name);
  if (S_ISREG(st.st_mode)) {
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    auto size = static_cast<uint64_t>(st.st_size);
    return std::make_unique<RawReader>(std::move(fd), io::ReaderInfo{"file", size, false, name}, true, size, name,
                                       cancel);
  }
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return fail_sys("BLKGETSIZE64 on " + name);
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::make_unique<RawReader>(std::move(fd), io::ReaderInfo{"block", size, false, name}, false, size, name,
                                       cancel);
  }
  return fail(Errc::invalid_argument, name + " is neither a block device nor a regular file");
}

Result<std::vector<std::string>> tar_entries(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::string> names;
  std::filesystem::directory_iterator it(dir, ec), end;
  if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
    std::string n = it->path().filename().string();
    if (n != "lost+found") names.push_back(std::move(n));
  }
  if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
  std::sort(names.begin(), names.end());   // os.ReadDir: sorted by file name (bytes)
  return names;
}

std::vector<std::string> tar_argv(const std::string& tar, bool sparse, const std::vector<std::string>& entries) {
  std::vector<std::string> argv{tar, "cv"};
  if (sparse) argv.push_back("-S");
  if (entries.empty()) {
    argv.push_back("--files-from");
    argv.push_back("/dev/null");
  } else {
    argv.push_back("--");
    argv.insert(argv.end(), entries.begin(), entries.end());
  }
  return argv;
}

Result<std::unique_ptr<io::Reader>> open_tar_stream(const std::filesystem::path& dir, const TarStreamOptions& opts) {
  auto entries = CDI_TRY(tar_entries(dir));
  auto child = CDI_TRY(util::ChildProcess::spawn(tar_argv(opts.tar, opts.sparse, entries), dir.string()));
  return std::make_unique<TarReader>(std::move(child), opts.cancel);
}

}  // namespace cdi::clone
