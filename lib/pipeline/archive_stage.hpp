// SPDX-License-Identifier: Apache-2.0
// The target of an archive (content type archive, and a filesystem clone onto a filesystem): a
// tar is extracted into a staging directory inside the target directory and moved into place only
// once the whole stream (and the checksum) has been verified, so a failed import never leaves a
// partial tree. Destroying an uncommitted stage removes what it holds (and the target directory
// when this import created it). The staging directory is sink::StagingDir (lib/sink/leftovers.hpp):
// recognisably ours, so the next import removes one left by a killed run before it starts.
#pragma once

#include <filesystem>
#include <memory>

#include "lib/sink/leftovers.hpp"
#include "lib/util/error.hpp"

namespace cdi::pipeline {

class ArchiveStage {
 public:
  ArchiveStage() = default;
  ArchiveStage(const ArchiveStage&) = delete;
  ArchiveStage& operator=(const ArchiveStage&) = delete;
  ~ArchiveStage();

  // Creates `dest` when missing (else it must be a directory; stale stages of killed runs are
  // removed) and a staging directory inside it. Errors: invalid_argument (not a directory), io.
  Result<void> open(const std::filesystem::path& dest);
  // Where the archive is extracted.
  std::filesystem::path path() const { return m_stage->tree(); }
  // Moves the staged tree into the target: directories are merged, anything else replaces what
  // has the same name (as tar does when extracting over existing files).
  Result<void> commit();

 private:
  static Result<void> merge(const std::filesystem::path& from, const std::filesystem::path& to);
  std::filesystem::path m_dest;
  std::unique_ptr<sink::StagingDir> m_stage;
  bool m_created_dest = false;
  bool m_committed = false;
};

}  // namespace cdi::pipeline
