// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/scratch.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include "lib/util/file_io.hpp"

namespace cdi::pipeline {

Result<std::unique_ptr<ScratchFile>> ScratchFile::create(const std::filesystem::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return fail_sys("scratch directory " + dir.string());
  if (!S_ISDIR(st.st_mode)) return fail(Errc::invalid_argument, "scratch directory " + dir.string() + " is not a directory");
  auto fd = CDI_TRY(util::anonymous_file(dir, ".cdi-import-scratch-"));
  return std::unique_ptr<ScratchFile>(new ScratchFile(std::move(fd), dir.string()));
}

uint64_t ScratchFile::allocated_bytes() const {
  struct stat st;
  if (::fstat(m_fd.get(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

Result<void> ScratchFile::write_at(uint64_t offset, std::span<const std::byte> data) {
  CDI_TRY(util::pwrite_all(m_fd.get(), data, offset, "scratch file in " + m_dir));
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
