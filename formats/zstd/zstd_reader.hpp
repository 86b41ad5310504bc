// SPDX-License-Identifier: Apache-2.0
// zstd decompression stage on libzstd's streaming decoder. Concatenated frames and skippable
// frames are read through; the window is limited by the memory limit (see max_window).
#pragma once

#include <cstdint>
#include <memory>

#include "formats/stage.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::zstd {

// Largest accepted frame window when CodecOptions::memory_limit is 0, as a power of two: 27 =
// 128 MiB, which bounds the decoder's memory (zstd -1..-19 and --ultra -22 stay within it;
// --long=28..31 output is refused).
inline constexpr int k_window_log_max = 27;

// With a memory limit, the largest window is the one whose streaming decoder
// (ZSTD_estimateDStreamSize: the window, two blocks of up to 128 KiB, the context) fits in the
// limit minus the 256 KiB input window; up to 2 GiB (--long=31) when the limit allows. Each
// frame's header is checked before libzstd allocates anything: a larger window fails with
// Errc::limit naming the window and the limit.
//
// The largest frame window accepted under `memory_limit` (0: 2^k_window_log_max); 0 when the
// limit is below the smallest decoder (a 1 KiB window).
uint64_t max_window(uint64_t memory_limit);

// Pure probe over the stream head. Returns 32 for the frame magic 28 B5 2F FD (with the
// reserved frame header bit clear when that byte is present); for a head starting with
// skippable frames (50..5F 2A 4D 18), 32 when a zstd frame follows within the head, 28 when the
// head ends inside them, 0 when something else follows. 0 otherwise.
int probe(Head head);

// Wraps `upstream` (ownership taken); the returned reader yields the decompressed bytes of all
// frames. info(): name "zstd", size unknown, not seekable, no path.
// Errors from read(): corrupt_input (corrupt data, checksum mismatch, "unexpected end of stream
// after <n>", "trailing garbage after frame <n> at offset <x>", "not a zstd stream", "empty
// input"); limit when a frame needs a window above max_window(opts.memory_limit); unsupported
// for unknown frame parameters; cancelled when opts.cancel fires; upstream errors pass through
// with context "zstd". open() fails when the decoder context cannot be allocated or the memory
// limit is below the smallest decoder (limit).
Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts);

}  // namespace cdi::formats::zstd
