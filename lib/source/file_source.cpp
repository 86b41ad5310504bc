// SPDX-License-Identifier: Apache-2.0
#include "lib/source/file_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <thread>

#include "lib/source/in_use.hpp"
#include "lib/util/fd.hpp"

namespace cdi::source {

namespace {

class FdReader final : public io::Reader {
 public:
  // drop_behind: fd was opened here at offset 0 and is read once (see FileSourceOptions).
  FdReader(util::Fd fd, io::ReaderInfo info, std::string what, const util::CancelToken* cancel,
           bool drop_behind = false, uint64_t drop_step = k_file_source_drop_step)
      : m_fd(std::move(fd)), m_info(std::move(info)), m_what(std::move(what)), m_cancel(cancel),
        m_drop_step(drop_step ? drop_step : k_file_source_drop_step) {
    struct stat st {};
    m_stream = ::fstat(m_fd.get(), &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
    m_drop_behind = drop_behind && !m_stream;
  }
  ~FdReader() override {
    if (m_drop_behind) drop_consumed();
  }

  Result<size_t> read(std::span<std::byte> dst) override {
    if (dst.empty()) return size_t{0};
    for (;;) {
      if (m_cancel) CDI_TRY(m_cancel->check());
      // A pipe, FIFO or terminal can block forever: wait in short slices so a cancel (SIGINT,
      // SIGTERM — delivered to any thread) is noticed within a quarter of a second.
      if (m_stream && m_cancel) {
        pollfd pfd{m_fd.get(), POLLIN, 0};
        int pr = ::poll(&pfd, 1, 250);
        if (pr == 0 || (pr < 0 && errno == EINTR)) continue;
      }
      ssize_t n = ::read(m_fd.get(), dst.data(), dst.size());
      if (n >= 0) {
        if (m_drop_behind) {
          m_pos += static_cast<uint64_t>(n);
          if (n == 0 || m_pos - m_dropped >= m_drop_step) drop_consumed(n == 0);
        }
        return static_cast<size_t>(n);
      }
      if (errno == EINTR) continue;
      int err = errno;
      return std::unexpected(Error(Errc::io, "reading " + m_what + ": " + std::strerror(err), err));
    }
  }
  io::ReaderInfo info() const override { return m_info; }

 private:
  // DONTNEED of what was consumed, [m_dropped, m_pos), or at the end of the file of everything
  // from m_dropped on. DONTNEED only drops folios wholly inside its range, and the page cache uses
  // large folios (up to a PMD: 2 MiB with 4 KiB pages), naturally aligned: the range starts at a
  // PMD boundary at or below m_dropped, so the folio the previous drop's end cut through goes
  // now; it ends at a page boundary at or below the position, leaving the page being read.
  // Advice: a failure changes nothing.
  void drop_consumed(bool at_end = false) {
    if (m_at_end) return;
    static const uint64_t page = [] {
      long p = ::sysconf(_SC_PAGESIZE);
      return p > 0 ? static_cast<uint64_t>(p) : uint64_t{4096};
    }();
    const uint64_t pmd = page * (page / 8);
    const uint64_t lo = m_dropped / pmd * pmd;
    if (at_end) {
      m_at_end = true;
      (void)::posix_fadvise(m_fd.get(), static_cast<off_t>(lo), 0, POSIX_FADV_DONTNEED);
      return;
    }
    const uint64_t hi = m_pos / page * page;
    if (hi <= m_dropped) return;
    (void)::posix_fadvise(m_fd.get(), static_cast<off_t>(lo), static_cast<off_t>(hi - lo), POSIX_FADV_DONTNEED);
    m_dropped = hi;
  }

  util::Fd m_fd;
  io::ReaderInfo m_info;
  std::string m_what;
  const util::CancelToken* m_cancel;
  uint64_t m_drop_step;
  bool m_stream = false;
  bool m_drop_behind = false;
  uint64_t m_pos = 0;       // bytes read so far (= the file offset: opened at 0, read only here)
  uint64_t m_dropped = 0;   // [0, m_dropped) already dropped from the page cache
  bool m_at_end = false;    // read() saw the end and dropped the rest
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

Result<std::unique_ptr<io::Reader>> open_stdin(const util::CancelToken* cancel) {
  util::Fd fd(::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0));
  if (!fd) return fail_sys("stdin");
  io::ReaderInfo info{"stdin", std::nullopt, false, std::nullopt};
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)) {
    off_t pos = ::lseek(fd.get(), 0, SEEK_CUR);
    if (pos >= 0 && pos <= st.st_size) info.size = static_cast<uint64_t>(st.st_size - pos);
  }
  return std::make_unique<FdReader>(std::move(fd), std::move(info), "stdin", cancel);
}

}  // namespace

Result<std::filesystem::path> file_url_to_path(std::string_view url) {
  if (!starts_with_nocase(url, "file:")) return fail(Errc::invalid_argument, "not a file: URL: " + std::string(url));
  std::string_view rest = url.substr(5);
  if (rest.starts_with("//")) {
    rest.remove_prefix(2);
    size_t slash = rest.find('/');
    std::string_view host = rest.substr(0, slash);
    if (!host.empty() && !(host.size() == 9 && starts_with_nocase(host, "localhost")))
      return fail(Errc::invalid_argument, "file URL " + std::string(url) + " names host \"" + std::string(host) +
                                              "\"; only local files (empty host or localhost) are supported");
    if (slash == std::string_view::npos) return fail(Errc::invalid_argument, "file URL " + std::string(url) + " has no path");
    rest.remove_prefix(slash);
  }
  if (!rest.starts_with('/'))
    return fail(Errc::invalid_argument, "file URL " + std::string(url) + " must name an absolute path");
  if (rest.find_first_of("?#") != std::string_view::npos)
    return fail(Errc::invalid_argument,
                "file URL " + std::string(url) + " has a query or fragment (write '?' as %3F, '#' as %23)");
  std::string path;
  path.reserve(rest.size());
  for (size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] != '%') {
      path += rest[i];
      continue;
    }
    int hi = i + 2 < rest.size() ? hex_value(rest[i + 1]) : -1;
    int lo = hi >= 0 ? hex_value(rest[i + 2]) : -1;
    if (hi < 0 || lo < 0)
      return fail(Errc::invalid_argument, "file URL " + std::string(url) + " has a malformed %-escape");
    char c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') return fail(Errc::invalid_argument, "file URL " + std::string(url) + " contains %00");
    path += c;
    i += 2;
  }
  return std::filesystem::path(std::move(path));
}

Result<std::unique_ptr<io::Reader>> open_file_source(std::string_view location, const FileSourceOptions& opts) {
  if (location.empty()) return fail(Errc::invalid_argument, "empty source location");
  if (location == "-") return open_stdin(opts.cancel);

  std::filesystem::path path;
  if (starts_with_nocase(location, "file:")) {
    path = CDI_TRY(file_url_to_path(location));
  } else if (location.find("://") != std::string_view::npos) {
    return fail(Errc::invalid_argument, "not a local file: " + std::string(location));
  } else {
    path = std::filesystem::path(location);
  }
  const std::string name = path.string();

  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd) return fail_sys(name);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_sys("stat " + name);

  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) abs = path;

  if (S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, name + " is a directory, not an image");
  if (S_ISREG(st.st_mode)) {
    if (!opts.force_shared && image_in_use(fd.get())) return std::unexpected(in_use_error(name, ""));
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    io::ReaderInfo info{"file", static_cast<uint64_t>(st.st_size), true, abs.string()};
    return std::make_unique<FdReader>(std::move(fd), std::move(info), name, opts.cancel, opts.drop_behind, opts.drop_step);
  }
  if (S_ISBLK(st.st_mode)) {
    if (!opts.force_shared) CDI_TRY(check_device_free(name));
    uint64_t size = 0;
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return fail_sys("BLKGETSIZE64 on " + name);
    (void)::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    io::ReaderInfo info{"block", size, true, abs.string()};
    return std::make_unique<FdReader>(std::move(fd), std::move(info), name, opts.cancel, opts.drop_behind, opts.drop_step);
  }
  // FIFO, character device, socket: a stream of unknown length.
  io::ReaderInfo info{"file", std::nullopt, false, std::nullopt};
  return std::make_unique<FdReader>(std::move(fd), std::move(info), name, opts.cancel);
}

}  // namespace cdi::source
