// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/archive_stage.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

namespace cdi::pipeline {
namespace fs = std::filesystem;

ArchiveStage::~ArchiveStage() {
  std::error_code ec;
  if (m_stage) m_stage->remove();
  if (m_created_dest && !m_committed) fs::remove(m_dest, ec);   // only when still empty
}

Result<void> ArchiveStage::open(const fs::path& dest) {
  m_dest = dest;
  struct stat st;
  if (::stat(dest.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail_sys(dest.string());
    if (::mkdir(dest.c_str(), 0755) != 0) return fail_sys("creating " + dest.string());
    m_created_dest = true;
  } else if (!S_ISDIR(st.st_mode)) {
    return fail(Errc::invalid_argument, dest.string() + " is not a directory (content type archive extracts into a directory)");
  } else {
    (void)sink::remove_stale_staging_dirs(dest);   // a killed import's stage; failing to clean up is not fatal
  }
  m_stage = CDI_TRY(sink::StagingDir::create(dest));
  return {};
}

Result<void> ArchiveStage::commit() {
  CDI_TRY(merge(m_stage->tree(), m_dest));
  m_stage->remove();
  m_stage.reset();
  m_committed = true;
  return {};
}

Result<void> ArchiveStage::merge(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  for (fs::directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    fs::path target = to / it->path().filename();
    auto src_status = it->symlink_status();
    auto dst_status = fs::symlink_status(target, ec);
    ec.clear();
    if (fs::is_directory(src_status) && fs::is_directory(dst_status)) {
      CDI_TRY(merge(it->path(), target));
      continue;
    }
    if (fs::exists(dst_status)) fs::remove_all(target, ec);
    if (ec) return fail(Errc::io, "replacing " + target.string() + ": " + ec.message());
    if (::rename(it->path().c_str(), target.c_str()) != 0) return fail_sys("moving into " + target.string());
  }
  if (ec) return fail(Errc::io, "reading " + from.string() + ": " + ec.message());
  return {};
}

}  // namespace cdi::pipeline
