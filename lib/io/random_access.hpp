// SPDX-License-Identifier: Apache-2.0
// Positioned reads from an input that can seek: a local file or block device (pread), later an
// HTTP(S) URL whose server serves byte ranges. A decoder that needs random access (qcow2 in any
// layout) reads its metadata first and then its data in file order, through this interface.
//
// Designed for sources where a round trip costs more than bytes (HTTP Range): the reader tells the
// source what it will read next (will_need, several ranges at once, in the order they will be
// read), and the source tells the reader how large a gap is worth reading through rather than
// skipping (coalesce_gap). A file turns will_need into posix_fadvise(WILLNEED) readahead; an HTTP
// implementation may issue one multi-range or a few large requests for them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "lib/util/error.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/fd.hpp"

namespace cdi::io {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};

class RandomAccess {
 public:
  virtual ~RandomAccess() = default;
  RandomAccess() = default;
  RandomAccess(const RandomAccess&) = delete;
  RandomAccess& operator=(const RandomAccess&) = delete;

  // Reads up to dst.size() bytes at `offset`. Returns the count: 0 only at or after the end of the
  // input (for a non-empty dst); short reads are allowed anywhere (loop with pread_full below).
  // Errors keep their class (io, network, ...); a source that changed under us is corrupt_input.
  virtual Result<size_t> pread(uint64_t offset, std::span<std::byte> dst) = 0;

  // Exact length of the input when known.
  virtual std::optional<uint64_t> size() const = 0;

  // Hint: these ranges will be read soon, in this order. Never required for correctness.
  virtual void will_need(std::span<const ByteRange> ranges) { (void)ranges; }

  // Hint: this range was read and will not be read again (a local file drops it from the page
  // cache, in steps). Never required for correctness.
  virtual void consumed(ByteRange range) { (void)range; }
  // Largest gap between two wanted ranges that is cheaper to read through than to skip.
  virtual uint64_t coalesce_gap() const { return 256 << 10; }

  // For messages: "file /path", "https://…".
  virtual std::string name() const = 0;
};

// Reads until dst is full or the input ends; returns the count (< dst.size() only at the end).
Result<size_t> pread_full(RandomAccess& in, uint64_t offset, std::span<std::byte> dst);

// A local regular file or block device read with pread(2) (EINTR-safe). The size is taken at open
// (lseek to the end: block devices report 0 in st_size). will_need issues posix_fadvise(WILLNEED);
// consumed ranges are dropped (POSIX_FADV_DONTNEED) once drop_step bytes of them accumulate, as the
// stream file source drops what it read (source/file_source.hpp): a source read once does not fill
// the importer's memory cgroup with its page cache. Dropping never changes what anyone reads.
class FileRandomAccess final : public RandomAccess {
 public:
  // Opens `path` read-only. Errors: not_found, io.
  static Result<std::unique_ptr<FileRandomAccess>> open(const std::string& path);
  // Takes an open descriptor (its offset is not used).
  static Result<std::unique_ptr<FileRandomAccess>> adopt(util::Fd fd, std::string name);
  // Drops what was consumed and not dropped yet.
  ~FileRandomAccess() override { drop_consumed(); }

  Result<size_t> pread(uint64_t offset, std::span<std::byte> dst) override;
  std::optional<uint64_t> size() const override { return m_size; }
  void will_need(std::span<const ByteRange> ranges) override;
  void consumed(ByteRange range) override;
  std::string name() const override { return m_name; }
  // Consumed bytes dropped at a time (0: never drop); default 8 MiB.
  void set_drop_step(uint64_t step) { m_drop_step = step; }

 private:
  FileRandomAccess(util::Fd fd, std::string name, uint64_t size)
      : m_fd(std::move(fd)), m_name(std::move(name)), m_size(size) {}
  void drop_consumed() noexcept;
  util::Fd m_fd;
  std::string m_name;
  uint64_t m_size = 0;
  uint64_t m_drop_step = uint64_t{8} << 20;
  uint64_t m_drop_lo = 0, m_drop_hi = 0;   // consumed, not yet dropped: one contiguous range
  uint64_t m_dropped_end = 0;               // end of the last range dropped
};

// A stream read a second time, seen as random access that only goes forward (the qcow2
// decoder's second read, formats/qcow2/qcow2_decoder.hpp): reads must come in increasing offset
// order (a read behind the position is internal); what lies between two reads is read and
// discarded. `expected_size` is the length the first read found: the stream ending before it,
// or (finish) going on past it, means the source changed between the two reads (corrupt_input).
class ForwardRandomAccess final : public RandomAccess {
 public:
  ForwardRandomAccess(std::unique_ptr<Reader> in, uint64_t expected_size, std::string name)
      : m_in(std::move(in)), m_size(expected_size), m_name(std::move(name)) {}

  Result<size_t> pread(uint64_t offset, std::span<std::byte> dst) override;
  std::optional<uint64_t> size() const override { return m_size; }
  // Skipping is reading: a gap is never cheaper to skip than to read through.
  uint64_t coalesce_gap() const override { return 4 << 20; }
  std::string name() const override { return m_name; }

  // Reads the rest of the stream (upstream checks such as a compressed stream's CRC run) and
  // checks that it ends exactly at expected_size.
  Result<void> finish();
  uint64_t position() const { return m_pos; }

 private:
  Result<size_t> read_some(std::span<std::byte> dst);
  std::unique_ptr<Reader> m_in;
  uint64_t m_size = 0;
  std::string m_name;
  uint64_t m_pos = 0;
};

// The message of a source that changed between two reads (ForwardRandomAccess, the second GET).
Error changed_between_reads(const std::string& what);

}  // namespace cdi::io
