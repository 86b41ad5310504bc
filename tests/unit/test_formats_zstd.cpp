// SPDX-License-Identifier: Apache-2.0
#include <zstd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "formats/zstd/zstd_reader.hpp"
#include "lib/util/units.hpp"
#include "tests/support/codec_test.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using cdi::test::MemoryReader;
using cdi::test::Bytes;
using cdi::test::bytes_of;
using cdi::test::concat;
using cdi::test::head_of;
using cdi::test::sample;

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

Result<Bytes> decode(Bytes compressed, size_t chunk = 1 << 20, size_t dst = 1 << 16) {
  return test::decode_with([](auto up) { return formats::zstd::open(std::move(up), {}); }, std::move(compressed), chunk, dst);
}

Error decode_error(Bytes compressed, size_t chunk = 1 << 20) {
  return test::error_of(decode(std::move(compressed), chunk));
}

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
  Bytes zst = zstd_frame(plain);
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    for (size_t dst : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      INFO("chunk " << chunk << " dst " << dst);
      auto out = decode(zst, chunk, dst);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == plain);
    }
  }
}

TEST_CASE("zstd reader info", "[zstd]") {
  auto r = formats::zstd::open(std::make_unique<MemoryReader>(zstd_frame(sample(10))), {});
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == "zstd");
  CHECK_FALSE(info.size);
  CHECK_FALSE(info.seekable);
  CHECK_FALSE(info.path);
}

TEST_CASE("zstd multi-frame streams with skippable frames", "[zstd]") {
  Bytes a = sample(70000, 2), b = sample(1, 3), c = sample(400000, 4);
  Bytes zst = concat({skippable_frame("leading metadata"), zstd_frame(a, 1), zstd_frame({}), skippable_frame(""),
                      zstd_frame(b, 19, false), zstd_frame(c, -5), skippable_frame("trailing", 0xf)});
  Bytes plain = concat({a, b, c});
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    INFO("chunk " << chunk);
    auto out = decode(zst, chunk, chunk == 1 ? 4096 : 7);
    INFO((out ? std::string() : out.error().what()));
    REQUIRE(out);
    CHECK(*out == plain);
  }
  SECTION("only skippable frames: empty output") {
    auto out = decode(skippable_frame("nothing here"));
    REQUIRE(out);
    CHECK(out->empty());
  }
}

TEST_CASE("zstd truncation is corrupt_input", "[zstd]") {
  Bytes plain = sample(5000, 5);
  Bytes zst = concat({zstd_frame(plain), zstd_frame(plain)});
  SECTION("by one byte") {
    Bytes cut(zst.begin(), zst.end() - 1);
    auto e = decode_error(cut);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what() == "zstd: unexpected end of stream after " + util::format_bytes(cut.size()));
  }
  SECTION("at every length") {
    for (size_t len = 1; len < zst.size(); ++len) {
      if (len == zst.size() / 2) continue;  // exactly one complete frame: valid
      INFO("length " << len);
      auto e = decode_error(Bytes(zst.begin(), zst.begin() + static_cast<std::ptrdiff_t>(len)), 7);
      CHECK(e.code() == Errc::corrupt_input);
    }
  }
  SECTION("in the middle of a large frame") {
    Bytes big = zstd_frame(sample(3 << 20, 6));
    big.resize(big.size() / 2);
    auto e = decode_error(big, 4096);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("zstd: unexpected end of stream after "));
  }
}

TEST_CASE("zstd bad checksum and corrupt data are corrupt_input", "[zstd]") {
  Bytes plain = sample(50000, 8);
  Bytes zst = concat({zstd_frame(plain), zstd_frame(plain)});
  Bytes bad = zst;
  bad[bad.size() - 1] ^= std::byte{0x01};  // XXH64 checksum of frame 2
  auto e = decode_error(bad);
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "zstd: checksum mismatch in frame 2");
  bad = zst;
  for (size_t i = 100; i < 160; ++i) bad[i] = std::byte{0xa5};
  e = decode_error(bad);
  CHECK(e.code() == Errc::corrupt_input);
}

TEST_CASE("zstd trailing garbage and non-zstd input", "[zstd]") {
  Bytes frame = zstd_frame(sample(3000, 9));
  for (std::string tail : {std::string("garbage! and more garbage"), std::string("x"), std::string(3, '\0'),
                           std::string(64, '\0')}) {
    INFO("tail size " << tail.size());
    for (size_t chunk : {size_t(1), size_t(4096)}) {
      auto e = decode_error(concat({frame, test::to_bytes(tail)}), chunk);
      CHECK(e.code() == Errc::corrupt_input);
      CHECK(e.what() == "zstd: trailing garbage after frame 1 at offset " + std::to_string(frame.size()));
    }
  }
  auto e = decode_error(test::to_bytes("plain text, not zstd"));
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "zstd: not a zstd stream (bad magic)");
}

TEST_CASE("zstd empty input is an error", "[zstd]") {
  auto e = decode_error({});
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "zstd: empty input");
}

TEST_CASE("zstd window limit: 128 MiB accepted, 256 MiB (--long=28) refused", "[zstd]") {
  // Hand-made frames: FHD 0x00 (no FCS, not single segment), window descriptor (exponent << 3:
  // 2^(10+e)), then one empty raw last block (01 00 00).
  auto ok = decode(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00, 17 << 3, 0x01, 0x00, 0x00}));
  REQUIRE(ok);
  CHECK(ok->empty());
  auto e = decode_error(bytes_of({0x28, 0xb5, 0x2f, 0xfd, 0x00, 18 << 3, 0x01, 0x00, 0x00}));
  CHECK(e.code() == Errc::limit);
  CHECK(e.what() == "zstd: frame window exceeds the 128.0 MiB limit (zstd --long=28 or more is not supported)");
}

TEST_CASE("zstd upstream errors pass through with context", "[zstd]") {
  Bytes zst = zstd_frame(sample(400000, 10));
  for (size_t prefix : {size_t(0), size_t(5), zst.size() / 2}) {
    INFO("prefix " << prefix);
    auto up = std::make_unique<test::FailingReader>(Bytes(zst.begin(), zst.begin() + static_cast<std::ptrdiff_t>(prefix)),
                                                   Error(Errc::network, "connection reset"));
    auto r = formats::zstd::open(std::move(up), {});
    REQUIRE(r);
    auto out = test::read_all(**r);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::network);
    CHECK(out.error().what() == "zstd: connection reset");
    std::byte b[16];
    auto again = (*r)->read(b);
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == Errc::network);
  }
}

TEST_CASE("zstd honours the cancel token", "[zstd]") {
  util::CancelToken cancel;
  formats::CodecOptions opts;
  opts.cancel = &cancel;
  auto r = formats::zstd::open(std::make_unique<MemoryReader>(zstd_frame(sample(1 << 20)), 4096), opts);
  REQUIRE(r);
  std::byte buf[1024];
  REQUIRE((*r)->read(buf).value() > 0);
  cancel.cancel();
  auto out = test::read_all(**r);
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::cancelled);
}
