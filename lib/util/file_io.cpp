// SPDX-License-Identifier: Apache-2.0
#include "lib/util/file_io.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <system_error>

namespace cdi::util {

namespace fs = std::filesystem;

Result<void> pwrite_all(int fd, std::span<const std::byte> data, uint64_t offset, std::string_view what) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("writing " + std::string(what) + " at offset " + std::to_string(offset));
    }
    if (n == 0)  // pwrite never returns 0 for a non-empty buffer on Linux; do not spin
      return fail(Errc::io, "writing " + std::string(what) + " at offset " + std::to_string(offset) +
                                ": the kernel accepted no bytes");
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Result<size_t> pread_full(int fd, std::span<std::byte> dst, uint64_t offset, std::string_view what) {
  size_t done = 0;
  while (done < dst.size()) {
    ssize_t n = ::pread(fd, dst.data() + done, dst.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("reading " + std::string(what) + " at offset " + std::to_string(offset + done));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<Fd> anonymous_file(const fs::path& dir, std::string_view fallback_prefix) {
  // O_TMPFILE never has a name; fall back to mkostemp + immediate unlink where unsupported.
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string tmpl = (dir / (std::string(fallback_prefix) + "XXXXXX")).string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) return fail_sys("creating a scratch file in " + dir.string());
    ::unlink(tmpl.c_str());
  }
  return Fd(fd);
}

Result<TempDir> TempDir::create(std::string_view prefix, const fs::path& base) {
  fs::path where = base;
  if (where.empty()) {
    const char* env = std::getenv("TMPDIR");
    where = env && *env ? env : "/tmp";
  }
  std::string tmpl = (where / (std::string(prefix) + "XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) return fail_sys("creating a private directory in " + where.string());
  return TempDir(fs::path(tmpl));
}

TempDir& TempDir::operator=(TempDir&& o) noexcept {
  if (this != &o) {
    remove();
    m_path = std::exchange(o.m_path, {});
  }
  return *this;
}

void TempDir::remove() noexcept {
  if (m_path.empty()) return;
  std::error_code ec;
  fs::remove_all(m_path, ec);
  m_path.clear();
}

}  // namespace cdi::util
