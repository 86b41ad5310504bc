// SPDX-License-Identifier: Apache-2.0
// Test inputs for the xz tests: one .xz stream made by liblzma.
#pragma once

#include <lzma.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace cdi::test {

// One .xz stream of `in`. block_size > 0 uses the threaded encoder, which writes several blocks
// with their sizes in the headers (what the threaded and the block decoders parallelise); 0: one
// block without sizes (xz -T1).
inline std::vector<std::byte> xz_encode(const std::vector<std::byte>& in, uint64_t block_size = 0,
                                        lzma_check check = LZMA_CHECK_CRC64, uint32_t preset = 1) {
  lzma_stream s = LZMA_STREAM_INIT;
  if (block_size) {
    lzma_mt mt{};
    mt.threads = 2;
    mt.block_size = block_size;
    mt.preset = preset;
    mt.check = check;
    REQUIRE(lzma_stream_encoder_mt(&s, &mt) == LZMA_OK);
  } else {
    REQUIRE(lzma_easy_encoder(&s, preset, check) == LZMA_OK);
  }
  std::vector<std::byte> out(lzma_stream_buffer_bound(in.size()) + 4096);
  s.next_in = reinterpret_cast<const uint8_t*>(in.data());
  s.avail_in = in.size();
  s.next_out = reinterpret_cast<uint8_t*>(out.data());
  s.avail_out = out.size();
  REQUIRE(lzma_code(&s, LZMA_FINISH) == LZMA_STREAM_END);
  out.resize(s.total_out);
  lzma_end(&s);
  return out;
}

}  // namespace cdi::test
