// SPDX-License-Identifier: Apache-2.0
// Block-parallel decoding of an .xz file that can be read at any offset (a local file): the
// index of every stream (lzma_file_info_decoder) says where each block lies in the file and in
// the output, so each worker decodes whole blocks on its own, reading its block in small pieces
// and writing the output at the block's offset in the target. Memory per worker is its
// dictionary and two small buffers, whatever the block size — where liblzma's threaded stream
// decoder holds a whole compressed and a whole decompressed block per thread (64 MiB for xz -T
// with 32 MiB blocks), so a small memory budget leaves the stream decoder one thread and this
// one all of them. The checks are the stream decoder's: stream header and footer, index, block
// headers, each block's sizes and check (CRC32/CRC64/SHA-256), stream padding; anything else
// after a stream is an error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "lib/io/random_access.hpp"
#include "lib/sink/sink.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::xz {

struct Block {
  uint64_t file_offset = 0;        // of the block header
  uint64_t total_size = 0;         // header, data, padding and check
  uint64_t unpadded_size = 0;      // the index's field (lzma_block_compressed_size checks it)
  uint64_t out_offset = 0;         // of its first decompressed byte
  uint64_t out_size = 0;
  uint32_t check = 0;              // lzma_check of its stream
};

struct BlockIndex {
  std::vector<Block> blocks;       // in file order (= output order)
  uint64_t out_size = 0;           // of all streams
  uint64_t streams = 0;
};

// Reads and checks every stream's header, index and footer, and the stream padding, of the .xz
// file behind `in` (its size must be known). Errors (context "xz"): corrupt_input (not xz,
// truncated, trailing garbage, a damaged index), unsupported, limit (the index needs more than
// `memory_limit`), and the input's own errors.
Result<BlockIndex> read_index(io::RandomAccess& in, uint64_t memory_limit);

// Memory one worker needs for the blocks of `index`: the largest block decoder (its dictionary)
// plus its input and output buffers. Reads the first block header of each dictionary size in
// play, so it may fail as decode_blocks would.
Result<uint64_t> worker_memory(io::RandomAccess& in, const BlockIndex& index);

struct ParallelOptions {
  unsigned threads = 2;
  // One reader per worker (a file opened again: each has its own position and readahead).
  std::function<Result<std::unique_ptr<io::RandomAccess>>()> open;
  // The last `hold_tail` output bytes are not written but returned (the caller checks them for a
  // fixed-VHD footer or a DMG trailer, as the stream copy does).
  uint64_t hold_tail = 512;
  const util::CancelToken* cancel = nullptr;
};

struct ParallelResult {
  uint64_t out_size = 0;           // every byte, the held tail included
  uint64_t bytes_in = 0;           // compressed bytes read by the workers
  std::vector<std::byte> tail;     // the last min(hold_tail, out_size) bytes, not written
};

// Decodes every block of `index` on opts.threads workers (blocks are taken in order), writing
// each block's output at its offset: all-zero 4 KiB units as zero_range, the rest as write_at.
// `out` is called from one thread at a time. Nothing is written past out_size - hold_tail. The
// first error stops every worker. Errors (context "xz, block N at offset X"): corrupt_input
// (damaged data, a check mismatch, sizes that disagree with the index), unsupported, limit,
// cancelled, and the reader's and sink's errors.
Result<ParallelResult> decode_blocks(const BlockIndex& index, sink::Sink& out, const ParallelOptions& opts);

}  // namespace cdi::formats::xz
