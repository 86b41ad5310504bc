// SPDX-License-Identifier: Apache-2.0
// Targets take extents: data at a guest offset and zero ranges, then an explicit finish() or
// abort(). A sink destroyed without finish() aborts (never finishes implicitly).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::sink {

// What a target is, for decisions (the string `kind` below is for printing).
enum class SinkKind { other, file, block };

struct SinkInfo {
  std::string kind;                   // "file", "block", "memory"
  std::string path;                   // what the user named
  std::optional<uint64_t> capacity;   // bytes the target can hold (device size); none for files
  SinkKind type = SinkKind::other;
};

struct SinkStats {
  uint64_t bytes_written = 0;  // data bytes actually written
  uint64_t bytes_zeroed = 0;   // zero-range bytes made zero by writing or BLKZEROOUT
  uint64_t bytes_holes = 0;    // zero-range bytes left as holes (never written)
};

class Sink {
 public:
  virtual ~Sink() = default;
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  // Writes data at offset. Extents may come in any order and never overlap. Offsets past
  // capacity are a limit error. Errors: io (EIO, ENOSPC), limit.
  virtual Result<void> write_at(uint64_t offset, std::span<const std::byte> data) = 0;

  // After finish(), [offset, offset+length) reads back as zeros. A sink may leave a hole or
  // write zeros; it must never rely on the previous content of the target being zero unless
  // it created the target itself.
  virtual Result<void> zero_range(uint64_t offset, uint64_t length) = 0;

  // Completes the import: the target becomes exactly image_size bytes long where that applies
  // (files; devices must be at least that big), everything is flushed to stable storage, and
  // only then is it made to look complete (rename / held-back head written). Call once.
  virtual Result<void> finish(uint64_t image_size) = 0;

  // Undoes what can be undone: removes a partial file, wipes a device's first MiB. Idempotent.
  virtual void abort() noexcept = 0;

  virtual SinkInfo info() const = 0;
  virtual SinkStats stats() const = 0;

  // A path an external converter (qemu-img) may write the raw image to directly, in place of
  // write_at/zero_range: a file sink's temporary file, a block sink's device. finish()/abort()
  // keep their meaning. nullopt when the sink cannot be written externally (memory, directory).
  virtual std::optional<std::string> direct_path() const { return std::nullopt; }
  // Descriptors the external converter must inherit for direct_path() to name the file (a file
  // sink's O_TMPFILE: "/proc/self/fd/N" resolves in the child too). Empty when none are needed.
  virtual std::vector<int> direct_fds() const { return {}; }

  // Prepares direct_path() for an external writer of an image of `image_size` bytes (a file
  // sink sizes its temporary file; a device checks capacity). Default: unsupported.
  virtual Result<void> prepare_direct(uint64_t image_size) {
    (void)image_size;
    return fail(Errc::internal, "this target cannot be written by an external converter");
  }
};

}  // namespace cdi::sink
