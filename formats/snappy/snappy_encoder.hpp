// SPDX-License-Identifier: Apache-2.0
// snappy framing format encoding stage: pulls raw bytes from upstream and yields a framed stream
// that CDI's upload server (github.com/golang/snappy Reader) accepts — for a cloner that POSTs a
// source through an HTTP client's read callback.
#pragma once

#include <memory>

#include "formats/snappy/snappy_frame.hpp"
#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::snappy {

// Wraps `upstream` (ownership taken). Output: the stream identifier once, then one data chunk per
// 64 KiB of input (the last one shorter; none for an empty input, so an empty input gives just
// the 10-byte identifier). A block is stored as an uncompressed chunk when snappy does not save at
// least 1/8 of it (Go's and python-snappy's rule), else as a compressed chunk. Every chunk carries
// the masked CRC-32C of its data. info(): name "snappy-encoder", size unknown, not seekable.
// Errors from read(): cancelled when opts.cancel fires; upstream errors pass through with context
// "snappy-encoder". opts.threads is ignored. open_encoder() does no I/O and does not fail today.
Result<std::unique_ptr<io::Reader>> open_encoder(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

}  // namespace cdi::formats::snappy
