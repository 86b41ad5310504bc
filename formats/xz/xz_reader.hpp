// SPDX-License-Identifier: Apache-2.0
// xz decompression stage on liblzma's threaded decoder (blocks with size fields, as written by
// xz -T, decode in parallel). Concatenated streams and stream padding are read through.
#pragma once

#include <cstdint>
#include <memory>

#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::xz {

// Memory the decoder may use (liblzma memlimit_threading and memlimit_stop). Threads are
// dropped, down to single-threaded decoding, to stay under it; a stream whose dictionary alone
// needs more (never the case for xz -0..-9e presets, 64 MiB max) fails with Errc::limit.
inline constexpr uint64_t k_memlimit = 192ULL << 20;

// Pure probe over the stream head. Returns 64 for the 6-byte magic FD 37 7A 58 5A 00 followed
// by valid stream flags (a null byte, a check type 0-15, and their CRC32); 0 otherwise or when
// the head is shorter than the 12-byte stream header.
int probe(Head head);

// Wraps `upstream` (ownership taken); the returned reader yields the decompressed bytes of all
// streams. Threads: opts.threads, or util::usable_cpus() when 0. info(): name "xz", size
// unknown, not seekable, no path.
// Errors from read(): corrupt_input ("compressed data is corrupt" for bad data or a check
// mismatch, "unexpected end of stream after <n>", "trailing garbage after stream <n> at offset
// <x>", "not an xz stream", "empty input"); unsupported for unknown filters or flags; limit
// when k_memlimit is too small; cancelled when opts.cancel fires; upstream errors pass through
// with context "xz". open() fails only if liblzma cannot set up its decoder (limit/internal).
Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

}  // namespace cdi::formats::xz
