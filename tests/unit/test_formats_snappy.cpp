// SPDX-License-Identifier: Apache-2.0
#include <snappy.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>

#include "formats/snappy/snappy_encoder.hpp"
#include "formats/snappy/snappy_reader.hpp"
#include "lib/util/process.hpp"
#include "tests/support/codec_test.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using namespace cdi::test;   // sample data, byte helpers, MemoryReader (codec_test.hpp)
namespace sn = cdi::formats::snappy;

namespace {

Bytes random_bytes(size_t n, uint32_t seed = 7) {
  Bytes out(n);
  std::mt19937 rng(seed);
  for (auto& b : out) b = std::byte(rng() & 0xff);
  return out;
}

Bytes text_bytes(size_t n) {
  const std::string text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. ";
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = std::byte(text[i % text.size()]);
  return out;
}

Bytes from_hex(std::string_view h) {
  Bytes out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(std::byte(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

Bytes identifier() { return Bytes(reinterpret_cast<const std::byte*>(sn::k_stream_identifier),
                                  reinterpret_cast<const std::byte*>(sn::k_stream_identifier) + 10); }

// A chunk with this type and body (length from the body).
Bytes chunk(uint8_t type, const Bytes& body) {
  size_t n = body.size();
  Bytes out(4 + n);   // sized up front: GCC 12 -O3 warns falsely (array-bounds) on insert after a 4-byte init list
  out[0] = std::byte(type);
  out[1] = std::byte(n & 0xff);
  out[2] = std::byte((n >> 8) & 0xff);
  out[3] = std::byte((n >> 16) & 0xff);
  if (n) std::memcpy(out.data() + 4, body.data(), n);
  return out;
}

Bytes le32(uint32_t v) {
  return {std::byte(v & 0xff), std::byte((v >> 8) & 0xff), std::byte((v >> 16) & 0xff), std::byte(v >> 24)};
}

// A data chunk: CRC of `data` (or `crc` when given), then the stored bytes.
Bytes uncompressed_chunk(const Bytes& data, std::optional<uint32_t> crc = {}) {
  return chunk(sn::k_chunk_uncompressed, concat({le32(crc.value_or(sn::masked_crc32c(data))), data}));
}
Bytes compressed_chunk(const Bytes& data, std::optional<uint32_t> crc = {}) {
  std::string block;
  ::snappy::Compress(reinterpret_cast<const char*>(data.data()), data.size(), &block);
  return chunk(sn::k_chunk_compressed, concat({le32(crc.value_or(sn::masked_crc32c(data))), test::to_bytes(block)}));
}

constexpr char k_snappy[] = "snappy";
using Snappy = test::contract::Codec<k_snappy, &sn::open>;
Result<Bytes> decode(Bytes framed, size_t chunk = 1 << 20, size_t dst = 1 << 16) { return Snappy::decode(std::move(framed), chunk, dst); }
Error decode_error(Bytes framed, size_t chunk = 1 << 20, size_t dst = 1 << 16) {
  return Snappy::decode_error(std::move(framed), chunk, dst);
}

Bytes encode(Bytes raw, size_t chunk = 1 << 20, size_t dst = 1 << 20) {
  auto r = sn::open_encoder(std::make_unique<MemoryReader>(std::move(raw), chunk), {});
  REQUIRE(r);
  auto out = test::read_all(**r, dst);
  REQUIRE(out);
  return *out;
}

struct ChunkInfo {
  uint8_t type;
  size_t offset, len;
};
// Splits a framed stream into chunks (the test's own parser, for checking the encoder's output).
std::vector<ChunkInfo> chunks_of(const Bytes& s) {
  std::vector<ChunkInfo> out;
  size_t pos = 0;
  while (pos < s.size()) {
    REQUIRE(s.size() - pos >= 4);
    size_t len = size_t(s[pos + 1]) | size_t(s[pos + 2]) << 8 | size_t(s[pos + 3]) << 16;
    REQUIRE(s.size() - pos - 4 >= len);
    out.push_back({static_cast<uint8_t>(s[pos]), pos, len});
    pos += 4 + len;
  }
  return out;
}

}  // namespace

TEST_CASE("snappy CRC-32C and its mask", "[snappy]") {
  CHECK(sn::crc32c(test::to_bytes("123456789")) == 0xE3069283u);
  CHECK(sn::crc32c({}) == 0u);
  // RFC 3720 B.4 (iSCSI) vectors.
  CHECK(sn::crc32c(Bytes(32, std::byte{0})) == 0x8A9136AAu);
  CHECK(sn::crc32c(Bytes(32, std::byte{0xff})) == 0x62A8AB43u);
  Bytes inc(32);
  for (size_t i = 0; i < 32; ++i) inc[i] = std::byte(i);
  CHECK(sn::crc32c(inc) == 0x46DD794Eu);
  // Masked values as python-snappy computes them.
  CHECK(sn::masked_crc32c(test::to_bytes("123456789")) == 0xc78ab0e5u);
  CHECK(sn::masked_crc32c({}) == 0xa282ead8u);
  CHECK(::snappy::MaxCompressedLength(sn::k_max_block) == sn::k_max_compressed_block);
}

TEST_CASE("snappy probe", "[snappy]") {
  CHECK(sn::probe(identifier()) == 80);
  CHECK(sn::probe(concat({identifier(), uncompressed_chunk(test::to_bytes("x"))})) == 80);
  Bytes id = identifier();
  CHECK(sn::probe(Bytes(id.begin(), id.begin() + 9)) == 0);
  CHECK(sn::probe(from_hex("ff060000734e61507059")) == 80);
  CHECK(sn::probe(from_hex("ff060000734e6150705a")) == 0);
  CHECK(sn::probe(from_hex("1f8b0800000000000000")) == 0);
  CHECK(sn::probe({}) == 0);
}

TEST_CASE("snappy golden stream from python-snappy", "[snappy]") {
  // StreamCompressor: add_chunk(b"hello", compress=False) + add_chunk(b"abcd" * 25).
  Bytes golden = from_hex("ff060000734e6150705901090000bb1f1c1968656c6c6f001000005a8371b5640c61626364fe04007e0400");
  std::string want = "hello";
  for (int i = 0; i < 25; ++i) want += "abcd";
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096)}) {
    for (size_t dst : {size_t(1), size_t(7), size_t(4096)}) {
      INFO("chunk " << chunk << " dst " << dst);
      auto out = decode(golden, chunk, dst);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == test::to_bytes(want));
    }
  }
  // Our encoder's bytes for a short incompressible and a compressible block.
  CHECK(encode(test::to_bytes("hello")) == from_hex("ff060000734e6150705901090000bb1f1c1968656c6c6f"));
  Bytes abcd = encode(test::to_bytes(want.substr(5)));
  CHECK(abcd == from_hex("ff060000734e61507059001000005a8371b5640c61626364fe04007e0400"));
}

TEST_CASE("snappy decodes mixed chunks at all chunk and destination sizes", "[snappy]") {
  Bytes a = sample(65536, 2), b = sample(1, 3), c = random_bytes(65536, 4), d = sample(190000, 5), e = text_bytes(777);
  Bytes framed = concat({identifier(), compressed_chunk(a), chunk(0xfe, Bytes(100, std::byte{0})),
                         uncompressed_chunk(b), uncompressed_chunk({}), identifier(), uncompressed_chunk(c),
                         chunk(0x80, test::to_bytes("skippable")), chunk(0xfd, Bytes(70000, std::byte{1})),
                         compressed_chunk(Bytes(d.begin(), d.begin() + 65536)),
                         compressed_chunk(Bytes(d.begin() + 65536, d.begin() + 131072)),
                         uncompressed_chunk(Bytes(d.begin() + 131072, d.end())), chunk(0xfe, {}),
                         compressed_chunk(e), compressed_chunk({})});
  Bytes plain = concat({a, b, c, d, e});
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    for (size_t dst : {size_t(1), size_t(7), size_t(4096), size_t(65536), size_t(1) << 20}) {
      if (chunk == 1 && dst < 4096) continue;   // byte-at-a-time input is covered with larger reads
      INFO("chunk " << chunk << " dst " << dst);
      auto out = decode(framed, chunk, dst);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == plain);
    }
  }
}

TEST_CASE("snappy empty streams", "[snappy]") {
  // Go's Writer writes nothing at all for an empty source.
  auto out = decode({});
  REQUIRE(out);
  CHECK(out->empty());
  out = decode(identifier());
  REQUIRE(out);
  CHECK(out->empty());
  out = decode(concat({identifier(), chunk(0xfe, Bytes(5)), identifier()}));
  REQUIRE(out);
  CHECK(out->empty());
  CHECK(encode({}) == identifier());
}

TEST_CASE("snappy round trip of odd sizes through our encoder and decoder", "[snappy]") {
  for (size_t n : {size_t(0), size_t(1), size_t(65535), size_t(65536), size_t(65537), size_t(3 << 20) + 5}) {
    for (int kind = 0; kind < 4; ++kind) {
      Bytes raw = kind == 0 ? random_bytes(n, uint32_t(n)) : kind == 1 ? Bytes(n) : kind == 2 ? text_bytes(n) : sample(n, 9);
      INFO("size " << n << " kind " << kind);
      Bytes framed = encode(raw, kind == 3 ? 4096 : 1 << 20, kind == 3 ? 7 : 1 << 20);
      // Structure: one identifier, then full 64 KiB chunks and a shorter last one.
      auto cs = chunks_of(framed);
      REQUIRE(!cs.empty());
      CHECK(cs[0].type == 0xff);
      CHECK(cs.size() == 1 + (n + 65535) / 65536);
      for (size_t i = 1; i < cs.size(); ++i) {
        CHECK((cs[i].type == 0x00 || cs[i].type == 0x01));
        if (kind == 0) CHECK(cs[i].type == 0x01);   // random data is stored
        if (kind == 1 || kind == 2) CHECK(cs[i].type == (n - (i - 1) * 65536 < 16 ? 0x01 : 0x00));
        if (cs[i].type == 0x01) CHECK(cs[i].len - 4 == std::min<size_t>(65536, n - (i - 1) * 65536));
      }
      for (size_t dst : {size_t(7), size_t(1) << 20}) {
        if (dst == 7 && n > (1 << 20)) continue;
        auto out = decode(framed, dst == 7 ? 4096 : 1 << 20, dst);
        INFO((out ? std::string() : out.error().what()));
        REQUIRE(out);
        CHECK(*out == raw);
      }
    }
  }
}

TEST_CASE("snappy encoder output does not depend on read sizes", "[snappy]") {
  Bytes raw = sample(300000, 11);
  Bytes ref = encode(raw);
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096)})
    for (size_t dst : {size_t(1), size_t(7), size_t(4096), size_t(76502), size_t(1) << 20}) {
      if (chunk == 1 && dst == 1) continue;
      INFO("chunk " << chunk << " dst " << dst);
      CHECK(encode(raw, chunk, dst) == ref);
    }
}

TEST_CASE("snappy truncation at every length", "[snappy]") {
  Bytes a = sample(3000, 12), b = random_bytes(100, 13), c = text_bytes(5000);
  std::vector<Bytes> parts{identifier(), compressed_chunk(a), uncompressed_chunk(b), chunk(0x99, test::to_bytes("meta")),
                           compressed_chunk(c)};
  std::vector<Bytes> plain_after{{}, a, concat({a, b}), concat({a, b}), concat({a, b, c})};
  Bytes framed;
  std::map<size_t, Bytes> boundaries{{0, {}}};
  for (size_t i = 0; i < parts.size(); ++i) {
    framed.insert(framed.end(), parts[i].begin(), parts[i].end());
    boundaries[framed.size()] = plain_after[i];
  }
  for (size_t len = 0; len <= framed.size(); ++len) {
    INFO("length " << len);
    Bytes cut(framed.begin(), framed.begin() + static_cast<std::ptrdiff_t>(len));
    auto out = decode(cut, 7, 4096);
    if (auto it = boundaries.find(len); it != boundaries.end()) {
      // At a chunk boundary the stream is valid (the transport has to catch such a cut).
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == it->second);
    } else {
      REQUIRE_FALSE(out);
      CHECK(out.error().code() == Errc::corrupt_input);
      CHECK(out.error().what().starts_with("snappy: unexpected end of stream in the chunk"));
    }
  }
  SECTION("messages") {
    Bytes one = concat({identifier(), uncompressed_chunk(b)});
    auto e = decode_error(Bytes(one.begin(), one.end() - 1));
    CHECK(e.what() == "snappy: unexpected end of stream in the chunk at offset 10 (104 bytes declared, 103 present)");
    e = decode_error(Bytes(one.begin(), one.begin() + 12));
    CHECK(e.what() == "snappy: unexpected end of stream in the chunk header at offset 10 (2 of 4 bytes present)");
    Bytes skip = concat({identifier(), chunk(0x80, Bytes(100000))});
    e = decode_error(Bytes(skip.begin(), skip.begin() + 50014), 4096);
    CHECK(e.what() == "snappy: unexpected end of stream in the chunk at offset 10 (100000 bytes declared, 50000 present)");
  }
}

TEST_CASE("snappy trailing garbage after a complete chunk is an error", "[snappy]") {
  Bytes framed = concat({identifier(), compressed_chunk(sample(3000, 14))});
  const std::string at = std::to_string(framed.size());
  struct Case {
    std::string tail, message;
  };
  for (const auto& [tail, message] : std::vector<Case>{
           {"garbage! and more garbage", "reserved unskippable chunk type 0x67 at offset " + at},
           {"x", "unexpected end of stream in the chunk header at offset " + at + " (1 of 4 bytes present)"},
           {std::string(3, '\0'), "unexpected end of stream in the chunk header at offset " + at + " (3 of 4 bytes present)"},
           {std::string(64, '\0'), "chunk at offset " + at + " is too short for its CRC (length 0)"},
           {std::string("\x01\x10\x00\x00short", 9), "unexpected end of stream in the chunk at offset " + at + " (16 bytes declared, 5 present)"}}) {
    for (size_t chunk : {size_t(1), size_t(4096)}) {
      INFO("tail " << tail.size() << " chunk " << chunk);
      auto e = decode_error(concat({framed, test::to_bytes(tail)}), chunk);
      CHECK(e.code() == Errc::corrupt_input);
      CHECK(e.what() == "snappy: " + message);
    }
  }
}

TEST_CASE("snappy malformed frames are corrupt_input naming what and where", "[snappy]") {
  Bytes data = sample(20000, 15);
  Bytes good = compressed_chunk(data);
  auto expect = [](const Bytes& framed, const std::string& message) {
    for (size_t chunk : {size_t(7), size_t(1) << 20}) {
      INFO("chunk " << chunk);
      auto e = decode_error(framed, chunk);
      CHECK(e.code() == Errc::corrupt_input);
      CHECK(e.what() == "snappy: " + message);
    }
  };
  SECTION("bad CRC") {
    uint32_t crc = sn::masked_crc32c(data);
    expect(concat({identifier(), good, compressed_chunk(data, crc ^ 1)}),
           "bad CRC in chunk at offset " + std::to_string(10 + good.size()) + " (stored " +
               [&] { char b[16]; std::snprintf(b, sizeof b, "0x%08x", crc ^ 1); return std::string(b); }() +
               ", computed " + [&] { char b[16]; std::snprintf(b, sizeof b, "0x%08x", crc); return std::string(b); }() + ")");
    Bytes flipped = concat({identifier(), uncompressed_chunk(data)});
    flipped[5000] ^= std::byte{0x40};
    auto e = decode_error(flipped);
    CHECK(e.what().starts_with("snappy: bad CRC in chunk at offset 10 (stored "));
    // A compressed chunk whose data differs from what its CRC covers.
    Bytes other = data;
    other[100] ^= std::byte{1};
    Bytes swapped = compressed_chunk(other, sn::masked_crc32c(data));
    e = decode_error(concat({identifier(), swapped}));
    CHECK(e.what().starts_with("snappy: bad CRC in chunk at offset 10 (stored "));
  }
  SECTION("reserved unskippable chunk types") {
    for (uint8_t type : {uint8_t(0x02), uint8_t(0x41), uint8_t(0x7f)}) {
      char t[8];
      std::snprintf(t, sizeof t, "0x%02x", type);
      expect(concat({identifier(), good, chunk(type, Bytes(10))}),
             std::string("reserved unskippable chunk type ") + t + " at offset " + std::to_string(10 + good.size()));
    }
  }
  SECTION("oversized chunks") {
    expect(concat({identifier(), uncompressed_chunk(Bytes(65537, std::byte{3}))}),
           "oversized uncompressed chunk at offset 10 (65537 bytes of data, at most 65536 allowed)");
    // Exactly 64 KiB of data is the limit, and accepted.
    auto ok = decode(concat({identifier(), uncompressed_chunk(Bytes(65536, std::byte{3})), compressed_chunk(Bytes(65536))}));
    REQUIRE(ok);
    CHECK(ok->size() == 131072);
    expect(concat({identifier(), chunk(0x00, Bytes(sn::k_max_data_chunk + 1))}),
           "oversized compressed chunk at offset 10 (76495 bytes, at most 76494 allowed)");
    expect(concat({identifier(), compressed_chunk(Bytes(65537))}),
           "oversized compressed chunk at offset 10 (decodes to 65537 bytes, at most 65536 allowed)");
  }
  SECTION("bad snappy blocks") {
    // Varint length only, missing its last byte.
    expect(concat({identifier(), chunk(0x00, concat({le32(0), bytes_of({0x80})}))}),
           "bad snappy block in chunk at offset 10 (unreadable length)");
    expect(concat({identifier(), chunk(0x00, le32(0))}), "bad snappy block in chunk at offset 10 (unreadable length)");
    // Declares 10 bytes, holds a 3-byte literal.
    expect(concat({identifier(), chunk(0x00, concat({le32(0), bytes_of({10, 2 << 2, 'a', 'b', 'c'})}))}),
           "bad snappy block in chunk at offset 10");
    // A copy reaching before the start of the output.
    expect(concat({identifier(), chunk(0x00, concat({le32(0), bytes_of({8, 0 << 2, 'a', 0x0d, 0x09})}))}),
           "bad snappy block in chunk at offset 10");
    // A valid block with damaged bytes in the middle.
    Bytes damaged = concat({identifier(), compressed_chunk(text_bytes(30000))});
    for (size_t i = 40; i < 60; ++i) damaged[i] = std::byte{0xff};
    auto e = decode_error(damaged);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK((e.what().starts_with("snappy: bad snappy block in chunk at offset 10") ||
           e.what().starts_with("snappy: bad CRC in chunk at offset 10") ||
           e.what().starts_with("snappy: oversized compressed chunk at offset 10")));
  }
  SECTION("chunk too short for its CRC") {
    expect(concat({identifier(), chunk(0x01, Bytes(3))}), "chunk at offset 10 is too short for its CRC (length 3)");
  }
  SECTION("missing or wrong stream identifier") {
    expect(good, "not a snappy framed stream: missing stream identifier (chunk type 0x00 at offset 0)");
    expect(concat({chunk(0xfe, Bytes(4)), identifier(), good}),
           "not a snappy framed stream: missing stream identifier (chunk type 0xfe at offset 0)");
    expect(test::to_bytes("plain text, not snappy"),
           "not a snappy framed stream: missing stream identifier (chunk type 0x70 at offset 0)");
    expect(concat({chunk(0xff, test::to_bytes("sNaPpZ")), good}), "bad stream identifier at offset 0 (not \"sNaPpY\")");
    expect(concat({identifier(), good, chunk(0xff, test::to_bytes("snappy"))}),
           "bad stream identifier at offset " + std::to_string(10 + good.size()) + " (not \"sNaPpY\")");
    expect(concat({chunk(0xff, test::to_bytes("sNaPpYY")), good}), "bad stream identifier at offset 0 (length 7, not 6)");
  }
  SECTION("chunk length beyond the stream") {
    Bytes c = chunk(0x01, Bytes(1000));
    c.resize(4 + 10);
    expect(concat({identifier(), good, c}), "unexpected end of stream in the chunk at offset " +
                                                std::to_string(10 + good.size()) + " (1000 bytes declared, 10 present)");
    Bytes big = chunk(0x00, Bytes(70000));
    big.resize(4 + 65000);
    expect(concat({identifier(), big}), "unexpected end of stream in the chunk at offset 10 (70000 bytes declared, 65000 present)");
  }
}

TEST_CASE("snappy upstream errors pass through with context", "[snappy]") {
  Bytes framed = encode(sample(400000, 16));
  test::contract::upstream_errors_pass_through<Snappy>(framed, {size_t(0), size_t(5), size_t(10), framed.size() / 2});
  SECTION("encoder") {
    auto up = std::make_unique<test::FailingReader>(sample(100000, 17), Error(Errc::io, "read error"));
    auto r = sn::open_encoder(std::move(up), {});
    REQUIRE(r);
    auto out = test::read_all(**r);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::io);
    CHECK(out.error().what() == "snappy-encoder: read error");
  }
}

TEST_CASE("snappy reader info and cancel token", "[snappy]") {
  auto r = sn::open(std::make_unique<MemoryReader>(identifier()), {});
  REQUIRE(r);
  CHECK((*r)->info().name == "snappy");
  CHECK_FALSE((*r)->info().size);
  CHECK_FALSE((*r)->info().seekable);
  auto w = sn::open_encoder(std::make_unique<MemoryReader>(Bytes(10)), {});
  REQUIRE(w);
  CHECK((*w)->info().name == "snappy-encoder");
  CHECK_FALSE((*w)->info().size);

  for (bool encoder : {false, true}) {
    INFO("encoder " << encoder);
    util::CancelToken cancel;
    formats::CodecOptions opts;
    opts.cancel = &cancel;
    Bytes raw = sample(1 << 20, 18);
    auto s = encoder ? sn::open_encoder(std::make_unique<MemoryReader>(raw, 4096), opts)
                     : sn::open(std::make_unique<MemoryReader>(encode(raw), 4096), opts);
    REQUIRE(s);
    std::byte buf[1024];
    REQUIRE((*s)->read(buf).value() > 0);
    cancel.cancel();
    auto out = test::read_all(**s);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::cancelled);
  }
}

// --- Interoperability with python-snappy's framing implementation (Debian's python3-snappy) ---

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cdi-snappy-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()));
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

void write_file(const std::filesystem::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(f.good());
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  REQUIRE(f.good());
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return test::to_bytes(s);
}

// Runs tests/support/snappy_interop.py with Debian's interpreter (python3-snappy is installed for it).
util::ProcessResult python(std::vector<std::string> args) {
  std::vector<std::string> argv{"/usr/bin/python3", std::string(CDI_TEST_SOURCE_DIR) + "/tests/support/snappy_interop.py"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = util::run_process(argv);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("snappy interop: python-snappy streams decode byte-exact", "[snappy][interop]") {
  TempDir tmp;
  struct Case {
    std::string name;
    Bytes raw;
    std::vector<std::string> opts;
  };
  std::vector<Case> cases{
      {"empty", {}, {}},
      {"one byte", sample(1, 20), {}},
      {"65535 text", text_bytes(65535), {}},
      {"65536 random", random_bytes(65536, 21), {}},
      {"65537 zeros", Bytes(65537), {}},
      {"3 MiB mixed", sample((3 << 20) + 3, 22), {}},
      {"small pieces, mixed modes, padding, skippable, repeated identifier", sample(300001, 23),
       {"--piece", "1000", "--mode", "mixed", "--extras"}},
      {"forced compression of random data", random_bytes(200000, 24), {"--mode", "compressed", "--piece", "70000"}},
      {"stored chunks only", text_bytes(150000), {"--mode", "uncompressed"}},
  };
  for (auto& c : cases) {
    INFO(c.name);
    write_file(tmp.path / "in", c.raw);
    std::vector<std::string> args{"compress", (tmp.path / "in").string(), (tmp.path / "out.sz").string()};
    args.insert(args.end(), c.opts.begin(), c.opts.end());
    auto pr = python(args);
    INFO(pr.err);
    REQUIRE(pr.exit_code == 0);
    Bytes framed = read_file(tmp.path / "out.sz");
    for (size_t dst : {size_t(7), size_t(1) << 20}) {
      if (dst == 7 && c.raw.size() > 400000) continue;
      auto out = decode(framed, 4096, dst);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == c.raw);
    }
  }
}

TEST_CASE("snappy interop: our streams decode byte-exact with python-snappy", "[snappy][interop]") {
  TempDir tmp;
  for (auto& raw : {Bytes{}, sample(1, 30), text_bytes(65535), random_bytes(65536, 31), Bytes(65537),
                    sample((3 << 20) + 1, 32)}) {
    INFO("size " << raw.size());
    write_file(tmp.path / "in.sz", encode(raw, 4096, 7));
    auto pr = python({"decompress", (tmp.path / "in.sz").string(), (tmp.path / "out").string(), "--read", "5000"});
    INFO(pr.err);
    REQUIRE(pr.exit_code == 0);
    CHECK(read_file(tmp.path / "out") == raw);
  }
  // python-snappy checks the CRCs it is given: a damaged stream of ours is refused.
  Bytes framed = encode(text_bytes(100000));
  framed[framed.size() - 10] ^= std::byte{0x01};
  write_file(tmp.path / "bad.sz", framed);
  auto pr = python({"decompress", (tmp.path / "bad.sz").string(), (tmp.path / "out").string()});
  CHECK(pr.exit_code == 1);
  CHECK(pr.err.find("python-snappy:") != std::string::npos);
}

TEST_CASE("snappy encoder: all-zero blocks take the precomputed chunk and decode back", "[snappy]") {
  const size_t B = sn::k_max_block;
  Bytes zeros(B);
  // zero blocks, a data block, zero blocks, a block zero but for its last byte, a short zero tail
  Bytes one_off(B);
  one_off[B - 1] = std::byte{1};
  Bytes raw = concat({zeros, zeros, random_bytes(B), zeros, one_off, Bytes(1000)});
  for (size_t dst : {size_t(7), size_t(4096), size_t(1) << 20}) {
    Bytes framed = encode(raw, 1 << 20, dst);
    auto back = decode(framed);
    REQUIRE(back);
    CHECK(*back == raw);
    // the fast path yields exactly the chunk libsnappy makes for a zero block (wire unchanged)
    Bytes expected_zero_chunk = compressed_chunk(zeros);
    Bytes first(framed.begin() + 10, framed.begin() + 10 + static_cast<long>(expected_zero_chunk.size()));
    CHECK(first == expected_zero_chunk);
    CHECK(expected_zero_chunk.size() < 4096);
  }
  // a stream of zeros encodes identically however it is read
  Bytes many = concat({zeros, zeros, zeros, zeros});
  CHECK(encode(many, 1 << 20, 1 << 20) == encode(many, 4096, 13));
}
