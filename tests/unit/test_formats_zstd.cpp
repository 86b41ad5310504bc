// SPDX-License-Identifier: Apache-2.0
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_estimateDStreamSize, ZSTD_getFrameHeader
#include <zstd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "formats/zstd/zstd_reader.hpp"
#include "lib/util/units.hpp"
#include "tests/support/codec_test.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using namespace cdi::test;   // sample data, byte helpers, MemoryReader (codec_test.hpp)

namespace {

// One zstd frame (with a content checksum unless told otherwise).
Bytes zstd_frame(const Bytes& in, int level = 3, bool checksum = true) {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  REQUIRE(c);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  Bytes out(ZSTD_compressBound(in.size()));
  size_t n = ZSTD_compress2(c, out.data(), out.size(), in.data(), in.size());
  ZSTD_freeCCtx(c);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

Bytes skippable_frame(std::string_view payload, uint8_t nibble = 0) {
  Bytes out{std::byte(0x50 | nibble), std::byte{0x2a}, std::byte{0x4d}, std::byte{0x18}};
  uint32_t n = static_cast<uint32_t>(payload.size());
  for (int k = 0; k < 4; ++k) out.push_back(std::byte((n >> (8 * k)) & 0xff));
  for (char ch : payload) out.push_back(std::byte(ch));
  return out;
}

constexpr char k_zstd[] = "zstd";
using Zstd = test::contract::Codec<k_zstd, &formats::zstd::open>;

}  // namespace

TEST_CASE("zstd probe", "[zstd]") {
  using formats::zstd::probe;
  CHECK(probe(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00})) == 32);
  CHECK(probe(bytes_of({0x28, 0xb5, 0x2f, 0xfd})) == 32);
  CHECK(probe(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x08})) == 0);  // reserved descriptor bit
  CHECK(probe(bytes_of({0x28, 0xb5, 0x2f, 0xfc, 0x00})) == 0);
  CHECK(probe(bytes_of({0x28, 0xb5, 0x2f})) == 0);
  CHECK(probe(bytes_of({})) == 0);
  // Skippable frame, then a zstd frame: accepted.
  CHECK(probe(concat({skippable_frame("meta", 0xe), bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00})})) == 32);
  CHECK(probe(concat({skippable_frame("a"), skippable_frame("bc", 5), bytes_of({0x28, 0xb5, 0x2f, 0xfd})})) == 32);
  // Skippable frame longer than the head: probably zstd.
  CHECK(probe(bytes_of({0x5f, 0x2a, 0x4d, 0x18, 0xff, 0xff, 0x00, 0x00, 1, 2, 3})) == 28);
  CHECK(probe(bytes_of({0x50, 0x2a, 0x4d, 0x18})) == 28);
  // Skippable frame followed by something else: not zstd.
  CHECK(probe(concat({skippable_frame("x"), bytes_of({0x1f, 0x8b, 0x08, 0x00})})) == 0);
  CHECK(probe(bytes_of({0x1f, 0x8b, 0x08, 0x00})) == 0);
}

TEST_CASE("zstd golden round trip at all chunk and destination sizes", "[zstd]") {
  Bytes plain = sample(300 * 1000);
  test::contract::round_trip_at_all_sizes<Zstd>(plain, zstd_frame(plain));
}

TEST_CASE("zstd reader info", "[zstd]") { test::contract::reader_info<Zstd>(zstd_frame(sample(10))); }

TEST_CASE("zstd multi-frame streams with skippable frames", "[zstd]") {
  Bytes a = sample(70000, 2), b = sample(1, 3), c = sample(400000, 4);
  Bytes zst = concat({skippable_frame("leading metadata"), zstd_frame(a, 1), zstd_frame({}), skippable_frame(""),
                      zstd_frame(b, 19, false), zstd_frame(c, -5), skippable_frame("trailing", 0xf)});
  Bytes plain = concat({a, b, c});
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    INFO("chunk " << chunk);
    auto out = Zstd::decode(zst, chunk, chunk == 1 ? 4096 : 7);
    INFO((out ? std::string() : out.error().what()));
    REQUIRE(out);
    CHECK(*out == plain);
  }
  SECTION("only skippable frames: empty output") {
    auto out = Zstd::decode(skippable_frame("nothing here"));
    REQUIRE(out);
    CHECK(out->empty());
  }
}

TEST_CASE("zstd truncation is corrupt_input", "[zstd]") {
  Bytes plain = sample(5000, 5);
  Bytes big = zstd_frame(sample(3 << 20, 6));
  big.resize(big.size() / 2);
  test::contract::truncation_at_every_cut<Zstd>(concat({zstd_frame(plain), zstd_frame(plain)}), big);
}

TEST_CASE("zstd bad checksum and corrupt data are corrupt_input", "[zstd]") {
  Bytes plain = sample(50000, 8);
  Bytes zst = concat({zstd_frame(plain), zstd_frame(plain)});
  Bytes bad = zst;
  bad[bad.size() - 1] ^= std::byte{0x01};  // XXH64 checksum of frame 2
  auto e = Zstd::decode_error(bad);
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "zstd: checksum mismatch in frame 2");
  bad = zst;
  for (size_t i = 100; i < 160; ++i) bad[i] = std::byte{0xa5};
  e = Zstd::decode_error(bad);
  CHECK(e.code() == Errc::corrupt_input);
}

TEST_CASE("zstd trailing garbage and non-zstd input", "[zstd]") {
  test::contract::trailing_garbage<Zstd>(zstd_frame(sample(3000, 9)),
                                         {std::string("garbage! and more garbage"), std::string("x"),
                                          std::string(3, '\0'), std::string(64, '\0')},
                                         "frame", true);
  test::contract::not_this_format<Zstd>("plain text, not zstd", "not a zstd stream (bad magic)");
}

TEST_CASE("zstd empty input is an error", "[zstd]") { test::contract::empty_input_is_an_error<Zstd>(); }

TEST_CASE("zstd window limit: 128 MiB accepted, 256 MiB (--long=28) refused", "[zstd]") {
  // Hand-made frames: FHD 0x00 (no FCS, not single segment), window descriptor (exponent << 3:
  // 2^(10+e)), then one empty raw last block (01 00 00).
  auto ok = Zstd::decode(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00}));
  REQUIRE(ok);
  CHECK(ok->empty());
  auto e = Zstd::decode_error(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3, 0x01, 0x00, 0x00}));
  CHECK(e.code() == Errc::limit);
  CHECK(e.what() == "zstd: frame window exceeds the 128.0 MiB limit (zstd --long=28 or more is not supported)");
}

TEST_CASE("zstd upstream errors pass through with context", "[zstd]") {
  Bytes zst = zstd_frame(sample(400000, 10));
  test::contract::upstream_errors_pass_through<Zstd>(zst, {size_t(0), size_t(5), zst.size() / 2});
}

TEST_CASE("zstd honours the cancel token", "[zstd]") {
  test::contract::honours_the_cancel_token<Zstd>(zstd_frame(sample(1 << 20)));
}

namespace {

// A frame with no content size and the window 2^(10 + e) (see the window limit test above).
Bytes frame_with_window_exponent(uint8_t e) {
  return bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00, static_cast<uint8_t>(e << 3), 0x01, 0x00, 0x00});
}

Result<Bytes> decode_limited(Bytes zst, uint64_t memory_limit, size_t chunk = 1 << 20) {
  formats::CodecOptions opts;
  opts.memory_limit = memory_limit;
  return test::decode_with([&](auto up) { return formats::zstd::open(std::move(up), opts); }, std::move(zst), chunk,
                           1 << 16);
}

}  // namespace

TEST_CASE("zstd max_window follows the memory limit", "[zstd][memory]") {
  using formats::zstd::max_window;
  CHECK(max_window(0) == (128ULL << 20));
  CHECK(max_window(100 << 10) == 0);   // below the smallest decoder plus the input window
  uint64_t last = 0;
  for (uint64_t limit : {1ULL << 20, 2ULL << 20, 20ULL << 20, 44ULL << 20, 130ULL << 20, 1ULL << 30}) {
    INFO("limit " << limit);
    uint64_t w = max_window(limit);
    CHECK(w > last);
    last = w;
    // The decoder for that window and the 256 KiB input window fit; a slightly larger one does not.
    CHECK(ZSTD_estimateDStreamSize(w) + (256 << 10) <= limit);
    CHECK(ZSTD_estimateDStreamSize(w + 1) + (256 << 10) > limit);
  }
  CHECK(max_window(8ULL << 30) == (2ULL << 30));   // --long=31, zstd's largest
}

TEST_CASE("zstd memory limit: a frame whose window does not fit is Errc::limit naming window and limit", "[zstd][memory]") {
  // 1 MiB window: fits 2 MiB, not 1 MiB.
  auto ok = decode_limited(frame_with_window_exponent(10), 2ULL << 20);
  REQUIRE(ok);
  CHECK(ok->empty());
  auto e = test::error_of(decode_limited(frame_with_window_exponent(10), 1ULL << 20));
  CHECK(e.code() == Errc::limit);
  CHECK(e.what() == "zstd: frame 1 needs a window of 1.0 MiB, more than the " +
                        util::format_bytes(formats::zstd::max_window(1ULL << 20)) + " a memory limit of 1.0 MiB allows");
  // Checked at every frame boundary: here the second frame, whose header arrives 1 byte per read.
  Bytes small = zstd_frame(sample(1000, 12));
  e = test::error_of(decode_limited(concat({small, frame_with_window_exponent(12)}), 2ULL << 20, 1));
  CHECK(e.code() == Errc::limit);
  CHECK(e.what().starts_with("zstd: frame 2 needs a window of 4.0 MiB, more than the "));
  // --long=28 (256 MiB), refused by default, decodes under a limit that allows it.
  auto big = decode_limited(frame_with_window_exponent(18), 300ULL << 20);
  REQUIRE(big);
  CHECK(big->empty());
}

TEST_CASE("zstd memory limit: a real 8 MiB-window stream decodes within a budget that fits it", "[zstd][memory]") {
  Bytes plain = sample(12 << 20, 13);
  ZSTD_CCtx* c = ZSTD_createCCtx();
  REQUIRE(c);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 23);
  Bytes zst(ZSTD_compressBound(plain.size()));
  size_t n = ZSTD_compress2(c, zst.data(), zst.size(), plain.data(), plain.size());
  ZSTD_freeCCtx(c);
  REQUIRE_FALSE(ZSTD_isError(n));
  zst.resize(n);
  ZSTD_frameHeader h{};
  REQUIRE(ZSTD_getFrameHeader(&h, zst.data(), zst.size()) == 0);
  REQUIRE(h.windowSize == (8ULL << 20));
  auto out = decode_limited(zst, 9ULL << 20);
  INFO((out ? std::string() : out.error().what()));
  REQUIRE(out);
  CHECK(*out == plain);
  auto e = test::error_of(decode_limited(zst, 8ULL << 20));   // the window alone is 8 MiB: no room for the rest
  CHECK(e.code() == Errc::limit);
  CHECK(e.what().starts_with("zstd: frame 1 needs a window of 8.0 MiB, more than the 7."));
}

TEST_CASE("zstd memory limit below the smallest decoder fails at open", "[zstd][memory]") {
  formats::CodecOptions opts;
  opts.memory_limit = 64 << 10;
  auto r = formats::zstd::open(std::make_unique<MemoryReader>(zstd_frame(sample(10)), 1 << 20), opts);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::limit);
  CHECK(r.error().what().starts_with("zstd: a memory limit of 64.0 KiB is below the "));
}
