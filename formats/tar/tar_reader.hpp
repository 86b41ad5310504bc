// SPDX-License-Identifier: Apache-2.0
// tar stage for content type kubevirt: a tar holding one disk image (GCE-style disk.raw inside
// .tar.gz, OVA-like bundles with --tar-entry). The stage streams: it never holds the archive,
// only libarchive's read-ahead and one 1 MiB input buffer.
//
// Invariants checked (spec: /work/shared/reference/cdi-importer-spec.md, "archive" and tar rows):
//   - exactly one regular file, or exactly one entry matching --tar-entry (leading "./" ignored);
//     directories are skipped, links/devices are ignored but listed in errors;
//   - GNU/pax sparse entries are served with their holes as zeros, at their full logical size;
//   - the archive is read to its end before the final 0 is returned: a second regular file,
//     a truncated entry, a missing or partial end-of-archive marker and non-zero bytes after it
//     are errors returned by the read() that reaches them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::tar {

// Scores the head of a stream: 0 unless the first 512-byte header carries the "ustar" magic
// at offset 257 (POSIX "ustar\0" "00" or GNU "ustar  \0"); more bits when the magic and
// version are complete and when the header checksum is right. Pure; needs 512 bytes.
int probe(Head head);

struct EntryOptions {
  // The entry to serve (--tar-entry), matched on its path with leading "./" stripped. Unset:
  // the archive must hold exactly one regular file.
  std::optional<std::string> entry;
  const util::CancelToken* cancel = nullptr;  // checked before every upstream read
};

// Opens a Reader over the bytes of the selected regular file of the tar stream `upstream`
// (owned by the returned reader). info(): name "tar[<entry>]", size = the entry's logical size.
// read() returns 0 only after the rest of the archive was read and found valid.
// Errors (open or read, all with context "tar"):
//   unsupported   — several regular files without opts.entry ("tar holds several files (a, b);
//                   name one with --tar-entry"), no regular file at all, the named entry is not a
//                   regular file or appears twice;
//   not_found     — opts.entry names no entry ("tar has no entry named X; entries: …");
//   corrupt_input — damaged header, truncated archive, incomplete end marker, trailing garbage;
//   cancelled; any upstream error, unchanged in class.
Result<std::unique_ptr<io::Reader>> open_entry(std::unique_ptr<io::Reader> upstream, const EntryOptions& opts);

}  // namespace cdi::formats::tar
