// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/scratch.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cdi::pipeline {

Result<std::unique_ptr<ScratchFile>> ScratchFile::create(const std::filesystem::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return fail_sys("scratch directory " + dir.string());
  if (!S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, "scratch directory " + dir.string() + " is not a directory");
  // O_TMPFILE never has a name; fall back to mkostemp + immediate unlink where unsupported.
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string tmpl = (dir / ".cdi-import-scratch-XXXXXX").string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) return fail_sys("creating a scratch file in " + dir.string());
    ::unlink(tmpl.c_str());
  }
  return std::unique_ptr<ScratchFile>(new ScratchFile(util::Fd(fd), dir.string()));
}

uint64_t ScratchFile::allocated_bytes() const {
  struct stat st;
  if (::fstat(m_fd.get(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Result<void> ScratchFile::write_at(uint64_t offset, std::span<const std::byte> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(m_fd.get(), data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("writing scratch file in " + m_dir);
    }
    done += static_cast<size_t>(n);
  }
  m_stats.bytes_written += data.size();
  return {};
}

Result<void> ScratchFile::zero_range(uint64_t, uint64_t length) {
  m_stats.bytes_holes += length;
  return {};
}

Result<void> ScratchFile::finish(uint64_t image_size) {
  if (::ftruncate(m_fd.get(), static_cast<off_t>(image_size)) != 0) return fail_sys("sizing scratch file");
  return {};
}

}  // namespace cdi::pipeline
