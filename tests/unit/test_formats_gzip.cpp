// SPDX-License-Identifier: Apache-2.0
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "formats/gzip/gzip_reader.hpp"
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

struct HeaderFields {
  std::string extra, name, comment;
  bool hcrc = false;
};

// One gzip member made with zlib (optionally with FEXTRA/FNAME/FCOMMENT/FHCRC).
Bytes gzip_member(const Bytes& in, const HeaderFields* fields = nullptr, int level = 6) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  gz_header hdr{};
  std::string extra, name, comment;
  if (fields) {
    extra = fields->extra, name = fields->name, comment = fields->comment;
    if (!extra.empty()) {
      hdr.extra = reinterpret_cast<Bytef*>(extra.data());
      hdr.extra_len = static_cast<uInt>(extra.size());
    }
    if (!name.empty()) hdr.name = reinterpret_cast<Bytef*>(name.data());
    if (!comment.empty()) hdr.comment = reinterpret_cast<Bytef*>(comment.data());
    hdr.hcrc = fields->hcrc;
    hdr.os = 3;
    REQUIRE(deflateSetHeader(&zs, &hdr) == Z_OK);
  }
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 1024);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Result<Bytes> decode(Bytes compressed, size_t chunk = 1 << 20, size_t dst = 1 << 16) {
  return test::decode_with([](auto up) { return formats::gzip::open(std::move(up), {}); }, std::move(compressed), chunk, dst);
}

Error decode_error(Bytes compressed, size_t chunk = 1 << 20) {
  return test::error_of(decode(std::move(compressed), chunk));
}

}  // namespace

TEST_CASE("gzip probe", "[gzip]") {
  using formats::gzip::probe;
  CHECK(probe(head_of({0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 3})) == 32);
  CHECK(probe(head_of({0x1f, 0x8b, 0x08, 0x1e})) == 32);       // all legal flags
  CHECK(probe(head_of({0x1f, 0x8b, 0x08, 0x20})) == 0);        // reserved flag bit
  CHECK(probe(head_of({0x1f, 0x8b, 0x07, 0x00})) == 0);        // not deflate
  CHECK(probe(head_of({0x1f, 0x8c, 0x08, 0x00})) == 0);
  CHECK(probe(head_of({0x1f, 0x8b, 0x08})) == 0);              // too short to tell
  CHECK(probe(head_of({})) == 0);
  CHECK(probe(head_of({0xfd, '7', 'z', 'X', 'Z', 0})) == 0);
}

TEST_CASE("gzip golden round trip at all chunk and destination sizes", "[gzip]") {
  Bytes plain = sample(300 * 1000);
  Bytes gz = gzip_member(plain);
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    for (size_t dst : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      INFO("chunk " << chunk << " dst " << dst);
      auto out = decode(gz, chunk, dst);
      REQUIRE(out);
      CHECK(*out == plain);
    }
  }
}

TEST_CASE("gzip reader info", "[gzip]") {
  auto r = formats::gzip::open(std::make_unique<MemoryReader>(gzip_member(sample(10))), {});
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == "gzip");
  CHECK_FALSE(info.size);
  CHECK_FALSE(info.seekable);
  CHECK_FALSE(info.path);
}

TEST_CASE("gzip header fields FEXTRA FNAME FCOMMENT FHCRC, split at every byte", "[gzip]") {
  Bytes plain = sample(20000, 7);
  HeaderFields f{std::string(300, 'x') + "extra", "disk.img", "a comment", true};
  Bytes gz = gzip_member(plain, &f);
  REQUIRE((static_cast<uint8_t>(gz[3]) & 0x1e) == 0x1e);
  for (size_t chunk : {size_t(1), size_t(2), size_t(7), size_t(4096)}) {
    INFO("chunk " << chunk);
    auto out = decode(gz, chunk, 7);
    INFO((out ? std::string() : out.error().what()));
    REQUIRE(out);
    CHECK(*out == plain);
  }
  SECTION("a bad header CRC is corrupt_input") {
    // The FHCRC is the last two bytes before the deflate data: header = 10 + 2 + xlen + name + comment.
    size_t hcrc_at = 10 + 2 + f.extra.size() + f.name.size() + 1 + f.comment.size() + 1;
    gz[hcrc_at] ^= std::byte{0x01};
    auto e = decode_error(gz, 1);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what() == "gzip: header CRC mismatch in member 1");
  }
}

TEST_CASE("gzip multi-member streams are read through", "[gzip]") {
  Bytes a = sample(70000, 2), b = sample(1, 3), c = sample(123457, 4);
  HeaderFields f{"", "second", "", true};
  Bytes gz = concat({gzip_member(a), gzip_member({}), gzip_member(b, &f, 1), gzip_member(c, nullptr, 0)});
  Bytes plain = concat({a, b, c});
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    INFO("chunk " << chunk);
    auto out = decode(gz, chunk, chunk == 1 ? 4096 : 7);
    REQUIRE(out);
    CHECK(*out == plain);
  }
}

TEST_CASE("gzip truncation is corrupt_input at every cut", "[gzip]") {
  Bytes plain = sample(5000, 5);
  Bytes gz = concat({gzip_member(plain), gzip_member(plain)});
  SECTION("by one byte") {
    Bytes cut(gz.begin(), gz.end() - 1);
    auto e = decode_error(cut);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what() == "gzip: unexpected end of stream after " + util::format_bytes(cut.size()));
  }
  SECTION("at every length") {
    for (size_t len = 1; len < gz.size(); ++len) {
      if (len == gz.size() / 2) continue;  // exactly one complete member: valid
      INFO("length " << len);
      auto e = decode_error(Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(len)), 7);
      CHECK(e.code() == Errc::corrupt_input);
    }
  }
  SECTION("in the middle of a large member") {
    Bytes big = gzip_member(sample(3 << 20, 6));
    big.resize(big.size() / 2);
    auto e = decode_error(big, 4096);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("gzip: unexpected end of stream after "));
  }
}

TEST_CASE("gzip bad CRC and ISIZE are corrupt_input naming the member", "[gzip]") {
  Bytes a = sample(4000, 8);
  Bytes gz = concat({gzip_member(a), gzip_member(a)});
  SECTION("CRC of member 2") {
    gz[gz.size() - 8] ^= std::byte{0x40};
    auto e = decode_error(gz);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("gzip: CRC mismatch in member 2"));
  }
  SECTION("ISIZE of member 2") {
    gz[gz.size() - 1] ^= std::byte{0x01};
    auto e = decode_error(gz);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("gzip: length mismatch in member 2"));
  }
  SECTION("damaged deflate data") {
    Bytes one = gzip_member(sample(100000, 9));
    for (size_t i = 20; i < 60; ++i) one[i] = std::byte{0xff};
    auto e = decode_error(one);
    CHECK(e.code() == Errc::corrupt_input);
  }
}

TEST_CASE("gzip trailing garbage and non-gzip input", "[gzip]") {
  Bytes member = gzip_member(sample(3000, 10));
  for (std::string tail : {std::string("garbage!"), std::string("x"), std::string(1024, '\0')}) {
    INFO("tail size " << tail.size());
    for (size_t chunk : {size_t(1), size_t(4096)}) {
      auto e = decode_error(concat({member, test::to_bytes(tail)}), chunk);
      CHECK(e.code() == Errc::corrupt_input);
      CHECK(e.what() == "gzip: trailing garbage after member 1 at offset " + std::to_string(member.size()));
    }
  }
  auto e = decode_error(test::to_bytes("plain text, not gzip"));
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "gzip: not a gzip stream (bad magic)");
  Bytes bad_method = member;
  bad_method[2] = std::byte{7};
  CHECK(decode_error(bad_method).code() == Errc::corrupt_input);
}

TEST_CASE("gzip empty input is an error", "[gzip]") {
  auto e = decode_error({});
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == "gzip: empty input");
}

TEST_CASE("gzip upstream errors pass through with context", "[gzip]") {
  Bytes gz = gzip_member(sample(200000, 11));
  for (size_t prefix : {size_t(0), size_t(5), gz.size() / 2}) {
    INFO("prefix " << prefix);
    auto up = std::make_unique<test::FailingReader>(Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(prefix)),
                                                   Error(Errc::network, "connection reset"));
    auto r = formats::gzip::open(std::move(up), {});
    REQUIRE(r);
    auto out = test::read_all(**r);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::network);
    CHECK(out.error().what() == "gzip: connection reset");
    // The reader is dead afterwards: the same error again, never a clean end.
    std::byte b[16];
    auto again = (*r)->read(b);
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == Errc::network);
  }
}

TEST_CASE("gzip honours the cancel token", "[gzip]") {
  util::CancelToken cancel;
  formats::CodecOptions opts;
  opts.cancel = &cancel;
  auto r = formats::gzip::open(std::make_unique<MemoryReader>(gzip_member(sample(100000)), 4096), opts);
  REQUIRE(r);
  std::byte buf[1024];
  REQUIRE((*r)->read(buf).value() > 0);
  cancel.cancel();
  auto out = test::read_all(**r);
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::cancelled);
}

TEST_CASE("gzip large stream of zeros keeps going (bounded memory)", "[gzip]") {
  Bytes zeros(64 << 20);
  Bytes gz = gzip_member(zeros, nullptr, 1);
  auto r = formats::gzip::open(std::make_unique<MemoryReader>(std::move(gz), 1 << 20), {});
  REQUIRE(r);
  Bytes buf(1 << 20);
  uint64_t total = 0;
  bool all_zero = true;
  for (;;) {
    size_t n = (*r)->read(buf).value();
    if (n == 0) break;
    total += n;
    all_zero = all_zero && std::all_of(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n),
                                       [](std::byte x) { return x == std::byte{0}; });
  }
  CHECK(total == (64u << 20));
  CHECK(all_zero);
}
