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

// Memory the decoder may use when CodecOptions::memory_limit is 0.
inline constexpr uint64_t k_memlimit = 192ULL << 20;

// Memory: the decoder stays within opts.memory_limit (k_memlimit when 0), its 256 KiB input
// window included. liblzma's threaded decoder is given the rest as memlimit_threading: a block
// decoded by a worker thread holds its dictionary, its whole compressed block and its whole
// decompressed block (xz -T0's default 3x dictionary blocks: 8 + 24 + up to 24 MiB at -6), so
// liblzma starts as many workers as fit and, when not even one block fits, decodes the blocks
// itself on the calling thread (direct mode: the dictionary and a few KiB) — fewer threads,
// never a failure. The same value is memlimit_stop, which bounds only what single-threaded
// decoding needs (the dictionary: 8 MiB at xz -6, 64 MiB at -9): a stream whose dictionary does
// not fit cannot be decoded within the budget at all and fails up front with Errc::limit.

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
// when the memory limit is below a stream's dictionary; cancelled when opts.cancel fires;
// upstream errors pass through with context "xz". open() fails only if liblzma cannot set up
// its decoder (limit/internal).
Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

// The most memory liblzma reported in use (lzma_memusage after each lzma_code call) by a reader
// open() returned, plus its input window; 0 for any other reader. For plans and tests.
uint64_t memory_peak(const io::Reader& reader);

}  // namespace cdi::formats::xz
