// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the codec tests (gzip, xz, zstd, snappy): sample data, byte helpers, one
// decode helper that runs any codec's open() over a MemoryReader with a chosen read size, and the
// codec contract (namespace contract below), written once and instantiated per codec.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/stage.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"
#include "lib/util/units.hpp"
#include "tests/support/memory_reader.hpp"

namespace cdi::test {

using Bytes = std::vector<std::byte>;

// Deterministic mix of random bytes, text and zeros.
inline Bytes sample(size_t n, uint32_t seed = 1) {
  Bytes out;
  out.reserve(n);
  std::mt19937 rng(seed);
  const std::string text = "The quick brown fox jumps over the lazy dog; disk images compress well. ";
  while (out.size() < n) {
    size_t run = std::min<size_t>(n - out.size(), 1 + rng() % 5000);
    switch (rng() % 3) {
      case 0: for (size_t i = 0; i < run; ++i) out.push_back(std::byte(rng() & 0xff)); break;
      case 1: for (size_t i = 0; i < run; ++i) out.push_back(std::byte(text[i % text.size()])); break;
      default: out.insert(out.end(), run, std::byte{0}); break;
    }
  }
  return out;
}

inline Bytes concat(std::initializer_list<Bytes> parts) {
  size_t total = 0;
  for (auto& p : parts) total += p.size();
  Bytes out;
  out.reserve(total);
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

inline Bytes bytes_of(const std::vector<uint8_t>& v) {
  Bytes out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size());
  return out;
}

inline std::span<const std::byte> head_of(const std::vector<uint8_t>& v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size()};
}

// open(upstream) → Result<unique_ptr<Reader>>; the encoded bytes are served `chunk` bytes per
// read and the decoded stream drained `dst` bytes per read.
template <class Open>
Result<Bytes> decode_with(Open&& open, Bytes encoded, size_t chunk, size_t dst) {
  auto r = open(std::make_unique<MemoryReader>(std::move(encoded), chunk));
  if (!r) return std::unexpected(r.error());
  return read_all(**r, dst);
}

// The error a decode must end in (the test fails if it succeeds).
inline Error error_of(Result<Bytes> r) {
  REQUIRE_FALSE(r);
  return r.error();
}

// --- The codec contract ---------------------------------------------------------------------
// Every pull decoder (a StageReader) keeps these promises whatever its format; each codec's test
// file names its traits, `using Gzip = test::contract::Codec<k_gzip, &formats::gzip::open>;`,
// and passes the inputs (made by its own encoder) to the checks below.
namespace contract {

// A codec's traits: its stage name (the message prefix), its open(), and decode helpers that run
// it with default options (`Threads`: CodecOptions::threads) over a MemoryReader.
template <const char* Name, auto Open, unsigned Threads = 0>
struct Codec {
  static constexpr std::string_view name = Name;
  static Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> up, const formats::CodecOptions& o) {
    return Open(std::move(up), o);
  }
  static Result<Bytes> decode(Bytes encoded, size_t chunk = 1 << 20, size_t dst = 1 << 16) {
    formats::CodecOptions opts;
    opts.threads = Threads;
    return decode_with([&](auto up) { return Open(std::move(up), opts); }, std::move(encoded), chunk, dst);
  }
  static Error decode_error(Bytes encoded, size_t chunk = 1 << 20, size_t dst = 1 << 16) {
    return error_of(decode(std::move(encoded), chunk, dst));
  }
};

template <class C>
Error decode_error(Bytes encoded, size_t chunk = 1 << 20) {
  return C::decode_error(std::move(encoded), chunk);
}

// The same output at every input chunk and destination size, byte-at-a-time included.
template <class C>
void round_trip_at_all_sizes(const Bytes& plain, const Bytes& encoded) {
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    for (size_t dst : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      INFO("chunk " << chunk << " dst " << dst);
      auto out = C::decode(encoded, chunk, dst);
      INFO((out ? std::string() : out.error().what()));
      REQUIRE(out);
      CHECK(*out == plain);
    }
  }
}

// A decoder names itself and knows no size, seekability or path.
template <class C>
void reader_info(const Bytes& encoded) {
  auto r = C::open(std::make_unique<MemoryReader>(encoded), {});
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == C::name);
  CHECK_FALSE(info.size);
  CHECK_FALSE(info.seekable);
  CHECK_FALSE(info.path);
}

// `two`: two complete streams of equal size (a cut after the first is valid); `big_cut`: a large
// stream cut in its middle. Every other cut is corrupt_input.
template <class C>
void truncation_at_every_cut(const Bytes& two, const Bytes& big_cut) {
  const std::string prefix = std::string(C::name) + ": unexpected end of stream after ";
  SECTION("by one byte") {
    Bytes cut(two.begin(), two.end() - 1);
    auto e = decode_error<C>(cut);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what() == prefix + util::format_bytes(cut.size()));
  }
  SECTION("at every length") {
    for (size_t len = 1; len < two.size(); ++len) {
      if (len == two.size() / 2) continue;  // exactly one complete stream: valid
      INFO("length " << len);
      auto e = decode_error<C>(Bytes(two.begin(), two.begin() + static_cast<std::ptrdiff_t>(len)), 7);
      CHECK(e.code() == Errc::corrupt_input);
    }
  }
  SECTION("in the middle of a large stream") {
    auto e = decode_error<C>(big_cut, 4096);
    CHECK(e.code() == Errc::corrupt_input);
    CHECK(e.what().starts_with(prefix));
  }
}

// Bytes after the last complete stream are "trailing garbage after <unit> 1 at offset N", read
// 1 or 4096 bytes at a time. `exact`: N is the stream's size for every tail (else only for "x":
// formats with padding report where the padding started).
template <class C>
void trailing_garbage(const Bytes& stream, std::initializer_list<std::string> tails, std::string_view unit,
                      bool exact) {
  const std::string message =
      std::string(C::name) + ": trailing garbage after " + std::string(unit) + " 1 at offset ";
  for (const std::string& tail : tails) {
    INFO("tail size " << tail.size());
    for (size_t chunk : {size_t(1), size_t(4096)}) {
      auto e = decode_error<C>(concat({stream, to_bytes(tail)}), chunk);
      CHECK(e.code() == Errc::corrupt_input);
      if (exact) CHECK(e.what() == message + std::to_string(stream.size()));
      else CHECK(e.what().starts_with(message));
    }
  }
  auto e = decode_error<C>(concat({stream, to_bytes("x")}));
  CHECK(e.what() == message + std::to_string(stream.size()));
}

// Input of another kind is refused with `message` (after the stage name).
template <class C>
void not_this_format(std::string_view text, std::string_view message) {
  auto e = decode_error<C>(to_bytes(text));
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == std::string(C::name) + ": " + std::string(message));
}

// An empty input is not a stream.
template <class C>
void empty_input_is_an_error() {
  auto e = decode_error<C>({});
  CHECK(e.code() == Errc::corrupt_input);
  CHECK(e.what() == std::string(C::name) + ": empty input");
}

// An upstream error after any prefix comes out with the stage name as context, and sticks.
template <class C>
void upstream_errors_pass_through(const Bytes& encoded, std::initializer_list<size_t> prefixes) {
  for (size_t prefix : prefixes) {
    INFO("prefix " << prefix);
    auto up = std::make_unique<FailingReader>(Bytes(encoded.begin(), encoded.begin() + static_cast<std::ptrdiff_t>(prefix)),
                                              Error(Errc::network, "connection reset"));
    auto r = C::open(std::move(up), {});
    REQUIRE(r);
    auto out = read_all(**r);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::network);
    CHECK(out.error().what() == std::string(C::name) + ": connection reset");
    // The reader is dead afterwards: the same error again, never a clean end.
    std::byte b[16];
    auto again = (*r)->read(b);
    REQUIRE_FALSE(again);
    CHECK(again.error().code() == Errc::network);
  }
}

// A cancel between reads ends the stream with Errc::cancelled.
template <class C>
void honours_the_cancel_token(const Bytes& encoded) {
  util::CancelToken cancel;
  formats::CodecOptions opts;
  opts.cancel = &cancel;
  auto r = C::open(std::make_unique<MemoryReader>(encoded, 4096), opts);
  REQUIRE(r);
  std::byte buf[1024];
  REQUIRE((*r)->read(buf).value() > 0);
  cancel.cancel();
  auto out = read_all(**r);
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::cancelled);
}

}  // namespace contract

}  // namespace cdi::test
