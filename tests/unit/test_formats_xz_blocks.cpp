// SPDX-License-Identifier: Apache-2.0
// formats/xz/xz_blocks: the index of every stream, and blocks decoded in parallel by offset.
#include <lzma.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <cstring>

#include "formats/xz/xz_blocks.hpp"
#include "tests/support/codec_test.hpp"
#include "tests/support/xz_encode.hpp"
#include "tests/unit/test_formats_qcow2_support.hpp"   // CheckingSink, MemoryRandomAccess

using namespace cdi;
using cdi::test::qcow2::CheckingSink;
using cdi::test::qcow2::MemoryRandomAccess;
using Bytes = std::vector<std::byte>;
namespace xz = cdi::formats::xz;

namespace {

// One stream by liblzma's threaded encoder: blocks of block_size with their sizes in the headers.
Bytes xz_blocks(const Bytes& in, uint64_t block_size, lzma_check check = LZMA_CHECK_CRC64, uint32_t preset = 0) {
  return test::xz_encode(in, block_size, check, preset);
}

// Disk-like: text, zero runs (4 KiB aligned and not) and some random bytes.
Bytes disk(size_t n, uint32_t seed) {
  Bytes out = test::sample(n, seed);
  for (size_t at = 8192; at + 20000 < n; at += 70001) std::memset(out.data() + at, 0, 20000);
  return out;
}

struct Decoded {
  Result<xz::ParallelResult> result = fail(Errc::internal, "not run");
  CheckingSink sink;
  std::atomic<size_t> opened{0};
};

// Index, then decode on `threads` workers reading `chunk` bytes a pread; the held tail is
// written last, as the import does.
std::unique_ptr<Decoded> run(const Bytes& file, unsigned threads, size_t chunk = 1 << 20, uint64_t hold = 512,
                             std::optional<size_t> fail_after = std::nullopt) {
  auto d = std::make_unique<Decoded>();
  MemoryRandomAccess in(file, chunk);
  auto index = xz::read_index(in, 0);
  if (!index) {
    d->result = std::unexpected(index.error());
    return d;
  }
  xz::ParallelOptions o;
  o.threads = threads;
  o.hold_tail = hold;
  o.open = [&]() -> Result<std::unique_ptr<io::RandomAccess>> {
    auto r = std::make_unique<MemoryRandomAccess>(file, chunk);
    r->fail_after = fail_after;
    ++d->opened;
    return std::unique_ptr<io::RandomAccess>(std::move(r));
  };
  d->result = xz::decode_blocks(*index, d->sink, o);
  if (d->result && !d->result->tail.empty())
    REQUIRE(d->sink.write_at(d->result->out_size - d->result->tail.size(), d->result->tail));
  if (d->result) REQUIRE(d->sink.finish(d->result->out_size));
  return d;
}

}  // namespace

TEST_CASE("xz blocks: the index lists every block of every stream, with its offsets", "[xz][xz_blocks]") {
  Bytes a = disk(300000, 1), b = disk(70000, 2);
  Bytes file = test::concat({xz_blocks(a, 65536), Bytes(8), xz_blocks(b, 65536, LZMA_CHECK_SHA256)});
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    INFO("chunk " << chunk);
    MemoryRandomAccess in(file, chunk);
    auto idx = xz::read_index(in, 0);
    REQUIRE(idx);
    CHECK(idx->streams == 2);
    CHECK(idx->out_size == a.size() + b.size());
    REQUIRE(idx->blocks.size() == 5 + 2);   // ceil(300000 / 65536), ceil(70000 / 65536)
    uint64_t out = 0;
    for (const auto& blk : idx->blocks) {
      CHECK(blk.out_offset == out);
      out += blk.out_size;
      CHECK(blk.file_offset + blk.total_size <= file.size());
    }
    CHECK(idx->blocks.back().check == LZMA_CHECK_SHA256);
    CHECK(idx->blocks.front().check == LZMA_CHECK_CRC64);
  }
}

TEST_CASE("xz blocks: golden output on 1, 2 and 3 workers at odd read sizes, each byte once", "[xz][xz_blocks]") {
  Bytes plain = disk(1 << 20, 3);
  Bytes file = xz_blocks(plain, 100000, LZMA_CHECK_CRC32);
  for (unsigned threads : {1u, 2u, 3u})
    for (size_t chunk : {size_t{7}, size_t{4096}, size_t{1} << 20})
      for (uint64_t hold : {uint64_t{0}, uint64_t{512}}) {
        INFO("threads " << threads << " chunk " << chunk << " hold " << hold);
        auto d = run(file, threads, chunk, hold);
        if (!d->result) FAIL(d->result.error().what());
        CHECK(d->result->out_size == plain.size());
        CHECK(d->result->tail.size() == hold);
        CHECK(d->result->bytes_in <= file.size());
        CHECK(d->sink.covered(plain.size()));
        CHECK(d->sink.data() == plain);
        CHECK(d->opened == threads);
      }
}

TEST_CASE("xz blocks: a tail held across the last blocks (a tiny last block)", "[xz][xz_blocks]") {
  Bytes plain = disk(65536 * 3 + 100, 4);   // the last block holds 100 bytes of the 512 held
  Bytes file = xz_blocks(plain, 65536);
  auto d = run(file, 2);
  REQUIRE(d->result);
  CHECK(d->result->tail == Bytes(plain.end() - 512, plain.end()));
  CHECK(d->sink.data() == plain);
}

TEST_CASE("xz blocks: truncation, trailing garbage and damage are corrupt_input", "[xz][xz_blocks]") {
  Bytes plain = disk(400000, 5);
  Bytes file = xz_blocks(plain, 65536);
  // Cut anywhere: the index (read from the end) is missing or damaged.
  for (size_t keep : {file.size() - 1, file.size() - 13, file.size() / 2, size_t{12}, size_t{3}}) {
    INFO("keep " << keep);
    auto d = run(Bytes(file.begin(), file.begin() + static_cast<ptrdiff_t>(keep)), 2);
    REQUIRE_FALSE(d->result);
    CHECK(d->result.error().code() == Errc::corrupt_input);
  }
  // Garbage after the stream (stream padding must be null bytes in fours).
  for (const std::string& junk : {std::string("garbage"), std::string(3, '\0'), std::string("\0\0\0\0junk", 8)}) {
    INFO("junk " << junk.size());
    Bytes bad = file;
    for (char c : junk) bad.push_back(std::byte(static_cast<unsigned char>(c)));
    auto d = run(bad, 2);
    REQUIRE_FALSE(d->result);
    CHECK(d->result.error().code() == Errc::corrupt_input);
  }
  // Damaged data inside a middle block: its check or its LZMA2 data fails; nothing past the
  // failure is claimed as written twice (the sink refuses overlaps).
  Bytes bad = file;
  auto idx = [&] {
    MemoryRandomAccess in(file);
    return *xz::read_index(in, 0);
  }();
  const auto& mid = idx.blocks[idx.blocks.size() / 2];
  for (uint64_t i = mid.file_offset + 40; i < mid.file_offset + 60; ++i) bad[i] ^= std::byte{0x55};
  auto d = run(bad, 2);
  REQUIRE_FALSE(d->result);
  CHECK(d->result.error().code() == Errc::corrupt_input);
  CHECK_THAT(d->result.error().what(), Catch::Contains("xz, block " + std::to_string(idx.blocks.size() / 2)));
}

TEST_CASE("xz blocks: the readers' errors pass through with context", "[xz][xz_blocks]") {
  Bytes file = xz_blocks(disk(300000, 6), 65536);
  for (size_t after : {size_t{0}, size_t{1}, size_t{3}}) {
    INFO("after " << after);
    auto d = run(file, 2, 4096, 512, after);
    REQUIRE_FALSE(d->result);
    CHECK(d->result.error().code() == Errc::network);
    CHECK_THAT(d->result.error().what(), Catch::StartsWith("xz, block ") && Catch::EndsWith("connection reset"));
  }
}

TEST_CASE("xz blocks: worker memory is the dictionary and two buffers, not the block", "[xz][xz_blocks][memory]") {
  Bytes file = xz_blocks(disk(3 << 20, 7), 1 << 20, LZMA_CHECK_CRC64, 0);   // xz -0: a 256 KiB dictionary
  MemoryRandomAccess in(file);
  auto idx = xz::read_index(in, 0);
  REQUIRE(idx);
  auto m = xz::worker_memory(in, *idx);
  REQUIRE(m);
  CHECK(*m > 256 * 1024);
  CHECK(*m < 3 * 1024 * 1024);   // 1 MiB blocks: the block does not count
}
