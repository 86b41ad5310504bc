// SPDX-License-Identifier: Apache-2.0
#include <lzma.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "formats/xz/xz_reader.hpp"
#include "lib/util/units.hpp"
#include "tests/support/codec_test.hpp"
#include "tests/support/loop_device.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/support/xz_encode.hpp"

using namespace cdi;
using namespace cdi::test;   // sample data, byte helpers, MemoryReader (codec_test.hpp)

namespace {

Bytes xz_stream(const Bytes& in, uint64_t block_size = 0, lzma_check check = LZMA_CHECK_CRC64, uint32_t preset = 1) {
  return test::xz_encode(in, block_size, check, preset);
}

Result<Bytes> decode(Bytes compressed, size_t chunk = 1 << 20, size_t dst = 1 << 16, unsigned threads = 2) {
  formats::CodecOptions opts;
  opts.threads = threads;
  return test::decode_with([&](auto up) { return formats::xz::open(std::move(up), opts); }, std::move(compressed), chunk, dst);
}

Error decode_error(Bytes compressed, size_t chunk = 1 << 20, unsigned threads = 2) {
  return test::error_of(decode(std::move(compressed), chunk, 1 << 16, threads));
}

constexpr char k_xz[] = "xz";
using Xz = test::contract::Codec<k_xz, &formats::xz::open, 2>;   // decode() above: 2 threads

}  // namespace

TEST_CASE("xz probe", "[xz]") {
  using formats::xz::probe;
  Bytes real = xz_stream(sample(100));
  CHECK(probe(real) == 64);
  // Stream header with CRC64 check: FD 37 7A 58 5A 00 | 00 04 | CRC32 of the two flag bytes.
  CHECK(probe(head_of({0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x46})) == 64);
  CHECK(probe(head_of({0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, 0xe6, 0xd6, 0xb4, 0x47})) == 0);  // bad CRC
  CHECK(probe(head_of({0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x01, 0x04, 0xe6, 0xd6, 0xb4, 0x46})) == 0);  // flags
  CHECK(probe(head_of({0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00})) == 0);                                      // short
  CHECK(probe(head_of({0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 0})) == 0);
  CHECK(probe(head_of({})) == 0);
}

TEST_CASE("xz golden round trip at all chunk and destination sizes", "[xz]") {
  Bytes plain = sample(300 * 1000);
  test::contract::round_trip_at_all_sizes<Xz>(plain, xz_stream(plain));
}

TEST_CASE("xz reader info", "[xz]") { test::contract::reader_info<Xz>(xz_stream(sample(10))); }

TEST_CASE("xz multi-block streams decode with 1 and 2 threads", "[xz]") {
  Bytes plain = sample(3 << 20, 2);
  Bytes xz = xz_stream(plain, 256 * 1024, LZMA_CHECK_SHA256);
  for (unsigned threads : {1u, 2u, 4u}) {
    for (size_t chunk : {size_t(7), size_t(4096), size_t(1) << 20}) {
      INFO("threads " << threads << " chunk " << chunk);
      auto out = decode(xz, chunk, chunk == 7 ? 4096 : 1 << 20, threads);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == plain);
    }
  }
}

TEST_CASE("xz concatenated streams and stream padding", "[xz]") {
  Bytes a = sample(70000, 3), b = sample(1, 4), c = sample(500000, 5);
  Bytes pad4(4), pad8(8);
  Bytes xz = concat({xz_stream(a), pad4, xz_stream({}, 0, LZMA_CHECK_NONE), xz_stream(b, 0, LZMA_CHECK_CRC32),
                     pad8, xz_stream(c, 100000), pad4});
  Bytes plain = concat({a, b, c});
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    INFO("chunk " << chunk);
    auto out = decode(xz, chunk, chunk == 1 ? 4096 : 7);
    INFO((out ? std::string() : out.error().what()));
    REQUIRE(out);
    CHECK(*out == plain);
  }
}

TEST_CASE("xz truncation is corrupt_input", "[xz]") {
  Bytes plain = sample(5000, 6);
  Bytes big = xz_stream(sample(2 << 20, 7), 256 * 1024);   // multi-block
  big.resize(big.size() / 2);
  test::contract::truncation_at_every_cut<Xz>(concat({xz_stream(plain), xz_stream(plain)}), big);
}

TEST_CASE("xz bad check and corrupt data are corrupt_input", "[xz]") {
  Bytes plain = sample(50000, 8);
  for (lzma_check check : {LZMA_CHECK_CRC32, LZMA_CHECK_CRC64, LZMA_CHECK_SHA256}) {
    // Flip a byte of the block's check field: the last bytes before the index. Locate the
    // check as the bytes right before the index indicator (0x00) that follows the block; the
    // simplest robust way is to damage the LZMA2 payload or the check and expect an error.
    Bytes xz = xz_stream(plain, 0, check);
    size_t check_size = lzma_check_size(check);
    // Layout: 12 header | block (header, data, padding, check) | index | 12 footer. The index of
    // one block is small: find it by decoding the footer's backward size.
    size_t footer = xz.size() - 12;
    uint32_t backward = (static_cast<uint32_t>(xz[footer + 4]) | static_cast<uint32_t>(xz[footer + 5]) << 8 |
                         static_cast<uint32_t>(xz[footer + 6]) << 16 | static_cast<uint32_t>(xz[footer + 7]) << 24);
    size_t index_start = footer - (backward + 1) * 4;
    size_t check_at = index_start - check_size;
    INFO("check " << check);
    Bytes bad = xz;
    bad[check_at] ^= std::byte{0x01};
    auto e = decode_error(bad);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what() == "xz: compressed data is corrupt");
  }
  Bytes xz = xz_stream(plain, 16384);
  for (size_t i = 200; i < 260; ++i) xz[i] = std::byte{0x5a};
  auto e = decode_error(xz);
  CHECK(e.code() == Errc::corrupt_input);
}

TEST_CASE("xz trailing garbage and non-xz input", "[xz]") {
  // Null bytes after a stream are padding: the garbage is named where the padding started.
  test::contract::trailing_garbage<Xz>(xz_stream(sample(3000, 9)),
                                       {std::string("garbage! and more garbage"), std::string("x"),
                                        std::string(3, '\0'), std::string("\0\0\0\0junk", 8)},
                                       "stream", false);
  test::contract::not_this_format<Xz>("plain text, not xz", "not an xz stream (bad magic)");
}

TEST_CASE("xz empty input is an error", "[xz]") { test::contract::empty_input_is_an_error<Xz>(); }

TEST_CASE("xz upstream errors pass through with context", "[xz]") {
  Bytes xz = xz_stream(sample(400000, 10), 65536);
  test::contract::upstream_errors_pass_through<Xz>(xz, {size_t(0), size_t(5), xz.size() / 2});
}

TEST_CASE("xz honours the cancel token", "[xz]") {
  test::contract::honours_the_cancel_token<Xz>(xz_stream(sample(1 << 20)));
}

TEST_CASE("xz dictionary beyond the memory limit is Errc::limit", "[xz]") {
  // Patch the LZMA2 dictionary size in the block header to 3 GiB (props byte 39), then fix the
  // block header CRC32: valid structure, but decoding would need more than k_memlimit.
  Bytes xz = xz_stream(sample(1000, 11));
  size_t bh = 12;
  size_t bh_size = (static_cast<size_t>(xz[bh]) + 1) * 4;
  bool patched = false;
  for (size_t i = bh + 2; i + 2 < bh + bh_size - 4; ++i) {
    if (xz[i] == std::byte{0x21} && xz[i + 1] == std::byte{0x01}) {
      xz[i + 2] = std::byte{39};
      patched = true;
      break;
    }
  }
  REQUIRE(patched);
  uint32_t crc = lzma_crc32(reinterpret_cast<const uint8_t*>(xz.data()) + bh, bh_size - 4, 0);
  for (int k = 0; k < 4; ++k) xz[bh + bh_size - 4 + k] = std::byte((crc >> (8 * k)) & 0xff);
  auto e = decode_error(xz, 1 << 20, 1);
  CHECK(e.code() == Errc::limit);
  CHECK(e.what().starts_with("xz: decoding needs "));
}

namespace {

// Threads of this process now (/proc/self/task): liblzma's workers show up here.
size_t task_count() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Disk-like data: text and zeros with one run in 16 random (compresses about 15:1, so that
// xz -6 is quick and the compressed blocks are small next to the decompressed ones).
Bytes disk_like(size_t n, uint32_t seed) {
  Bytes out;
  out.reserve(n);
  std::mt19937 rng(seed);
  const std::string text = "The quick brown fox jumps over the lazy dog; disk images compress well. ";
  while (out.size() < n) {
    size_t run = std::min<size_t>(n - out.size(), 1 + rng() % 5000);
    unsigned kind = rng() % 16;
    if (kind == 0) {
      for (size_t i = 0; i < run; ++i) out.push_back(std::byte(rng() & 0xff));
    } else if (kind < 8) {
      for (size_t i = 0; i < run; ++i) out.push_back(std::byte(text[i % text.size()]));
    } else {
      out.insert(out.end(), run, std::byte{0});
    }
  }
  return out;
}

// A real multi-block file as xz(1) writes it: `xz -T2 --block-size=16MiB` (preset -6: 8 MiB
// dictionary) of 48 MiB, so 3 blocks with their sizes in the headers.
struct XzFile {
  Bytes plain, xz;
};
const XzFile& multi_block_xz_file() {
  static const XzFile file = [] {
    XzFile f;
    f.plain = disk_like(48 << 20, 21);
    test::sys::TempDir dir;
    auto path = (dir / "disk.raw").string();
    {
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(f.plain.data()), static_cast<std::streamsize>(f.plain.size()));
    }
    test::sys::run_command({"xz", "-T2", "--block-size=16MiB", "-k", path});
    std::ifstream in(path + ".xz", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    f.xz.resize(text.size());
    std::memcpy(f.xz.data(), text.data(), text.size());
    return f;
  }();
  return file;
}

struct MeteredDecode {
  Bytes out;
  size_t worker_threads = 0;   // most threads seen beyond the caller's while decoding
  uint64_t memory_peak = 0;    // formats::xz::memory_peak
};

// Decodes with `memory_limit` and 2 threads, sampling the process' thread count after each read.
Result<MeteredDecode> metered_decode(const Bytes& xz, uint64_t memory_limit) {
  formats::CodecOptions opts;
  opts.threads = 2;
  opts.memory_limit = memory_limit;
  size_t base = task_count();
  auto r = formats::xz::open(std::make_unique<MemoryReader>(xz, 1 << 20), opts);
  if (!r) return std::unexpected(r.error());
  MeteredDecode m;
  m.out.reserve(48 << 20);
  Bytes buf(1 << 20);
  for (;;) {
    auto n = (*r)->read(buf);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
    m.out.insert(m.out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
    m.worker_threads = std::max(m.worker_threads, task_count() - base);
  }
  m.memory_peak = formats::xz::memory_peak(**r);
  return m;
}

}  // namespace

TEST_CASE("xz memory limit: liblzma drops threads to fit, down to single-threaded, never fails", "[xz][memory]") {
  const XzFile& f = multi_block_xz_file();
  // A block decoded by a worker holds the dictionary (8 MiB at -6), its compressed block and its
  // decompressed 16 MiB. The compressed blocks here are under 4 MiB together, so one block
  // takes 24 to 28.1 MiB: 36 MiB fits one worker but not two; 20 MiB fits none, only the
  // dictionary of single-threaded decoding.
  REQUIRE(f.xz.size() < (4 << 20));
  lzma_stream_flags flags{};
  REQUIRE(lzma_stream_header_decode(&flags, reinterpret_cast<const uint8_t*>(f.xz.data())) == LZMA_OK);
  struct Case {
    uint64_t limit;
    size_t workers;
  };
  for (Case c : {Case{0, 2}, Case{36ULL << 20, 1}, Case{20ULL << 20, 0}}) {
    INFO("memory limit " << util::format_bytes(c.limit));
    auto m = metered_decode(f.xz, c.limit);
    INFO((m ? std::string() : m.error().what()));
    REQUIRE(m);
    CHECK(m->out == f.plain);
    CHECK(m->worker_threads == c.workers);
    uint64_t limit = c.limit ? c.limit : formats::xz::k_memlimit;
    CHECK(m->memory_peak <= limit);
    if (c.workers == 0) CHECK(m->memory_peak < (9ULL << 20));   // the dictionary and change
    if (c.workers > 0) CHECK(m->memory_peak >= c.workers * (24ULL << 20));
  }
}

TEST_CASE("xz memory limit below the dictionary is Errc::limit up front", "[xz][memory]") {
  const XzFile& f = multi_block_xz_file();
  auto m = metered_decode(f.xz, 6ULL << 20);   // an 8 MiB dictionary cannot fit
  REQUIRE_FALSE(m);
  CHECK(m.error().code() == Errc::limit);
  CHECK(m.error().what() ==
        "xz: decoding needs more memory than the 6.0 MiB limit even single-threaded (the stream's dictionary does not fit)");
}
