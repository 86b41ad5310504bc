// SPDX-License-Identifier: Apache-2.0
// snappy framing format decoding stage (the body of a CDI clone upload; see snappy_frame.hpp).
#pragma once

#include <memory>

#include "formats/snappy/snappy_frame.hpp"
#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::snappy {

// Pure probe over the stream head: 80 when it starts with the 10-byte stream identifier chunk,
// 0 otherwise. (Clone uploads are chosen by content type, not probed; this keeps the stage
// contract.)
int probe(Head head);

// Wraps `upstream` (ownership taken); the returned reader yields the uncompressed bytes of every
// data chunk. info(): name "snappy", size unknown, not seekable, no path.
// Accepted: the stream identifier first, repeated identifiers (concatenated streams), compressed
// (0x00) and uncompressed (0x01) chunks of at most 64 KiB of data with a matching masked CRC-32C,
// padding (0xfe) and reserved skippable chunks (0x80..0xfd, skipped, up to 16 MiB each). An
// empty input is an empty stream (CDI's Go writer writes nothing for an empty source). The end
// of input at a chunk boundary is the end; there is no end marker, so a cut exactly at a chunk
// boundary can only be caught by the transport (HTTP chunked terminator / Content-Length).
// Errors from read() (all corrupt_input, naming the chunk's stream offset): missing or wrong
// stream identifier, reserved unskippable chunk type (0x02..0x7f), chunk too short for its CRC,
// oversized chunk (compressed chunk > 76494 bytes, uncompressed data > 65536 bytes, a block that
// decodes to more than 65536 bytes), bad snappy block, bad CRC, and a chunk (or chunk header) cut
// by the end of the input. cancelled when opts.cancel fires; upstream errors pass through with
// context "snappy". open() does no I/O and does not fail today.
Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

}  // namespace cdi::formats::snappy
