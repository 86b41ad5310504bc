// SPDX-License-Identifier: Apache-2.0
// Scratch space for stages that need random access to a streamed input (qemu-img). The spool
// file is unlinked the moment it is created and used through its descriptor (/dev/fd/N in the
// child), so it disappears on every exit path — errors, SIGINT/SIGTERM, even SIGKILL.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "lib/sink/sink.hpp"
#include "lib/util/fd.hpp"

namespace cdi::pipeline {

class ScratchFile final : public sink::Sink {
 public:
  // Creates an anonymous file in `dir`. Errors: not_found (no such dir), io.
  static Result<std::unique_ptr<ScratchFile>> create(const std::filesystem::path& dir);

  int fd() const { return m_fd.get(); }
  // Path under which a child process that inherited fd() can open the file.
  std::string child_path() const { return "/dev/fd/" + std::to_string(m_fd.get()); }
  // Bytes of scratch space actually allocated.
  uint64_t allocated_bytes() const;

  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override;
  Result<void> zero_range(uint64_t offset, uint64_t length) override;   // a hole
  Result<void> finish(uint64_t image_size) override;                     // sets the length
  void abort() noexcept override {}
  sink::SinkInfo info() const override { return {"scratch", m_dir, std::nullopt}; }
  sink::SinkStats stats() const override { return m_stats; }

 private:
  ScratchFile(util::Fd fd, std::string dir) : m_fd(std::move(fd)), m_dir(std::move(dir)) {}
  util::Fd m_fd;
  std::string m_dir;
  sink::SinkStats m_stats;
};

}  // namespace cdi::pipeline
