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
using namespace cdi::test;   // sample data, byte helpers, MemoryReader (codec_test.hpp)

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

constexpr char k_gzip[] = "gzip";
using Gzip = test::contract::Codec<k_gzip, &formats::gzip::open>;

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
  test::contract::round_trip_at_all_sizes<Gzip>(plain, gzip_member(plain));
}

TEST_CASE("gzip reader info", "[gzip]") { test::contract::reader_info<Gzip>(gzip_member(sample(10))); }

TEST_CASE("gzip header fields FEXTRA FNAME FCOMMENT FHCRC, split at every byte", "[gzip]") {
  Bytes plain = sample(20000, 7);
  HeaderFields f{std::string(300, 'x') + "extra", "disk.img", "a comment", true};
  Bytes gz = gzip_member(plain, &f);
  REQUIRE((static_cast<uint8_t>(gz[3]) & 0x1e) == 0x1e);
  for (size_t chunk : {size_t(1), size_t(2), size_t(7), size_t(4096)}) {
    INFO("chunk " << chunk);
    auto out = Gzip::decode(gz, chunk, 7);
    INFO((out ? std::string() : out.error().what()));
    REQUIRE(out);
    CHECK(*out == plain);
  }
  SECTION("a bad header CRC is corrupt_input") {
    // The FHCRC is the last two bytes before the deflate data: header = 10 + 2 + xlen + name + comment.
    size_t hcrc_at = 10 + 2 + f.extra.size() + f.name.size() + 1 + f.comment.size() + 1;
    gz[hcrc_at] ^= std::byte{0x01};
    auto e = Gzip::decode_error(gz, 1);
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
    auto out = Gzip::decode(gz, chunk, chunk == 1 ? 4096 : 7);
    REQUIRE(out);
    CHECK(*out == plain);
  }
}

TEST_CASE("gzip truncation is corrupt_input at every cut", "[gzip]") {
  Bytes plain = sample(5000, 5);
  Bytes big = gzip_member(sample(3 << 20, 6));
  big.resize(big.size() / 2);
  test::contract::truncation_at_every_cut<Gzip>(concat({gzip_member(plain), gzip_member(plain)}), big);
}

TEST_CASE("gzip bad CRC and ISIZE are corrupt_input naming the member", "[gzip]") {
  Bytes a = sample(4000, 8);
  Bytes gz = concat({gzip_member(a), gzip_member(a)});
  SECTION("CRC of member 2") {
    gz[gz.size() - 8] ^= std::byte{0x40};
    auto e = Gzip::decode_error(gz);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("gzip: CRC mismatch in member 2"));
  }
  SECTION("ISIZE of member 2") {
    gz[gz.size() - 1] ^= std::byte{0x01};
    auto e = Gzip::decode_error(gz);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with("gzip: length mismatch in member 2"));
  }
  SECTION("damaged deflate data") {
    Bytes one = gzip_member(sample(100000, 9));
    for (size_t i = 20; i < 60; ++i) one[i] = std::byte{0xff};
    auto e = Gzip::decode_error(one);
    CHECK(e.code() == Errc::corrupt_input);
  }
}

TEST_CASE("gzip trailing garbage and non-gzip input", "[gzip]") {
  Bytes member = gzip_member(sample(3000, 10));
  test::contract::trailing_garbage<Gzip>(member, {std::string("garbage!"), std::string("x"), std::string(1024, '\0')},
                                         "member", true);
  test::contract::not_this_format<Gzip>("plain text, not gzip", "not a gzip stream (bad magic)");
  Bytes bad_method = member;
  bad_method[2] = std::byte{7};
  CHECK(Gzip::decode_error(bad_method).code() == Errc::corrupt_input);
}

TEST_CASE("gzip empty input is an error", "[gzip]") { test::contract::empty_input_is_an_error<Gzip>(); }

TEST_CASE("gzip upstream errors pass through with context", "[gzip]") {
  Bytes gz = gzip_member(sample(200000, 11));
  test::contract::upstream_errors_pass_through<Gzip>(gz, {size_t(0), size_t(5), gz.size() / 2});
}

TEST_CASE("gzip honours the cancel token", "[gzip]") {
  test::contract::honours_the_cancel_token<Gzip>(gzip_member(sample(100000)));
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
