// SPDX-License-Identifier: Apache-2.0
// Internal to formats/tar: a libarchive read handle restricted to the tar formats (ustar, pax,
// GNU, v7; no decompression filter, our own stages peel compression first) that pulls its input
// from an io::Reader through a read callback, plus the checks libarchive leaves to its caller:
//   - the end-of-archive marker (two zero 512-byte blocks) must be complete; libarchive accepts
//     an archive that simply stops at a header boundary, we do not (corrupt_input);
//   - every byte after the end of the last entry must be zero (tar pads to 10 KiB records);
//     anything else is "trailing garbage" (corrupt_input);
//   - an upstream read error is surfaced unchanged in class, not as a libarchive message.
// Callers (tar_reader.cpp, extract.cpp) add the "tar" context to every error.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::tar::detail {

struct ArchiveReadDeleter {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
using ArchiveReadPtr = std::unique_ptr<archive, ArchiveReadDeleter>;

// One piece of an entry's data: `bytes` belong at logical file offset `offset`. Offsets grow
// strictly; a gap between pieces (or before the entry size) is a hole of zeros.
struct DataBlock {
  std::span<const std::byte> bytes;
  uint64_t offset = 0;
};

enum class EntryKind { regular, directory, symlink, hardlink, other };

// The kind of an entry. A hard link is reported as `hardlink` whatever its file type says.
EntryKind entry_kind(archive_entry* e);
// "file", "directory", "symlink", "hard link", "device/fifo/socket".
std::string_view kind_name(EntryKind k);
// The entry's path as stored in the archive (locale form, else UTF-8); empty when it has none.
std::string entry_path(archive_entry* e);
// The path with every leading "./" (and "/" runs after it) removed, for matching and display.
std::string strip_dot_slash(std::string_view path);

class TarSource {
 public:
  // Opens the reader over `in`, which is not owned and must outlive the TarSource. `cancel`
  // (optional) is checked before every upstream read. Errors: corrupt_input (not a tar
  // stream), the upstream's class, cancelled, internal (out of memory).
  static Result<std::unique_ptr<TarSource>> open(io::Reader& in, const util::CancelToken* cancel);

  TarSource(const TarSource&) = delete;
  TarSource& operator=(const TarSource&) = delete;
  ~TarSource() = default;

  // Moves to the next entry, skipping what is left of the current entry's data. Returns the
  // entry (owned by libarchive, valid until the next call), or nullptr at the end of the
  // archive — only after the end marker and everything behind it were read and checked.
  // Errors: corrupt_input (damaged or truncated header, truncated data, missing end marker,
  // trailing garbage), the upstream's class, cancelled.
  Result<archive_entry*> next_header();

  // The next piece of the current entry's data, or nullopt once the entry's data (and its
  // padding) has been consumed. The bytes stay valid until the next call on this object.
  // Errors: corrupt_input (truncated), the upstream's class, cancelled.
  Result<std::optional<DataBlock>> next_block();

  // Bytes of the input consumed by the tar parser so far (for messages).
  uint64_t position() const;

 private:
  TarSource(io::Reader& in, const util::CancelToken* cancel);

  static la_ssize_t read_callback(archive* a, void* self, const void** buffer);
  // Records `n` more bytes handed to libarchive (or drained after the end) from m_buf.
  void note_bytes(size_t n);
  // Drains the input after libarchive reported the end and checks marker and trailer.
  Result<void> check_end_of_archive();
  // Turns the failure libarchive just reported into our Error.
  Error archive_failure() const;

  io::Reader& m_in;
  const util::CancelToken* m_cancel;
  ArchiveReadPtr m_archive;
  std::vector<std::byte> m_buf;           // the block handed to libarchive by the callback
  uint64_t m_handed = 0;                  // bytes read from m_in so far
  uint64_t m_nonzero_end = 0;             // offset just past the last non-zero byte read
  uint64_t m_entry_end = 0;               // offset where the next header (or end marker) starts
  std::optional<Error> m_upstream_error;  // why the callback failed, when it did
  bool m_upstream_eof = false;
  bool m_in_entry = false;  // a header was returned and its data may be pending
  bool m_done = false;      // the end of the archive was reached and validated
};

}  // namespace cdi::formats::tar::detail
