// SPDX-License-Identifier: Apache-2.0
// gzip decompression stage (RFC 1952), inflating with ISA-L igzip. Concatenated members are
// read through; every member's CRC32 and ISIZE are verified; anything else is an error.
#pragma once

#include <memory>

#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::gzip {

// Pure probe over the stream head. Returns the number of header bits verified: 32 for
// 1f 8b, method 8 (deflate) and no reserved flag bits set; 0 when it is not gzip (or the head
// is shorter than 4 bytes).
int probe(Head head);

// Wraps `upstream` (ownership taken); the returned reader yields the decompressed bytes of all
// members. info(): name "gzip", size unknown, not seekable, no path.
// Errors from read(): corrupt_input for a bad header, bad deflate data, CRC/ISIZE mismatch,
// truncation ("unexpected end of stream after <n>"), trailing garbage or empty input;
// cancelled when opts.cancel fires; upstream errors pass through with context "gzip".
// open() itself does no I/O and does not fail today (Result kept for the common stage signature).
Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

}  // namespace cdi::formats::gzip
