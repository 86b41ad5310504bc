// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <array>
#include <cstring>

#include "lib/io/hashing_reader.hpp"
#include "lib/util/digest.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using cdi::test::FailingReader;
using cdi::test::MemoryReader;
using cdi::test::to_bytes;

namespace {
std::string hex_of(util::DigestAlgo a, std::string_view s) {
  auto b = to_bytes(s);
  return util::digest_hex(a, b);
}
const std::string k_sha256_empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const std::string k_sha256_hello = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9";
}  // namespace

TEST_CASE("digest: known vectors", "[digest]") {
  CHECK(hex_of(util::DigestAlgo::sha256, "") == k_sha256_empty);
  CHECK(hex_of(util::DigestAlgo::md5, "") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex_of(util::DigestAlgo::sha256, "hello world") == k_sha256_hello);
  CHECK(hex_of(util::DigestAlgo::md5, "hello world") == "5eb63bbbe01eeed093cb22bb8f5acdc3");
  CHECK(hex_of(util::DigestAlgo::sha1, "abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(hex_of(util::DigestAlgo::sha512, "abc").substr(0, 16) == "ddaf35a193617aba");
}

TEST_CASE("digest: CDI checksum syntax", "[digest]") {
  auto ok = util::parse_checksum("  SHA256 : " + std::string(k_sha256_hello.size(), 'A') + " ");
  REQUIRE(ok);
  CHECK(ok->algo == util::DigestAlgo::sha256);
  CHECK(ok->hex == std::string(64, 'a'));
  CHECK(ok->text() == "sha256:" + std::string(64, 'a'));

  auto err = [](std::string_view s) {
    auto r = util::parse_checksum(s);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
    return r.error().what();
  };
  CHECK(err("sha256abc123") == "invalid checksum format: expected 'algorithm:hash', got 'sha256abc123'");
  CHECK(err("sha256:") == "checksum hash value cannot be empty");
  CHECK(err("crc32:abc123") == "unsupported hash algorithm 'crc32': supported algorithms are: md5, sha1, sha256, sha512");
  CHECK(err("sha256:abc:123") == "invalid sha256 hash length: expected 64 hex characters, got 7");
  CHECK(err("md5:" + std::string(31, '0') + "g").starts_with("checksum hash is not valid hexadecimal:"));
}

TEST_CASE("digest: mismatch message", "[digest]") {
  auto c = util::parse_checksum("sha256:" + k_sha256_empty);
  REQUIRE(c);
  CHECK(util::verify_checksum(*c, k_sha256_empty));
  auto r = util::verify_checksum(*c, k_sha256_hello);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().what() == "checksum mismatch: expected sha256:" + k_sha256_empty + ", calculated sha256:" + k_sha256_hello);
}

TEST_CASE("hashing reader: passes bytes through and digests them at any chunk size", "[digest]") {
  std::string text;
  for (int i = 0; i < 5000; ++i) text += std::to_string(i) + ",";
  auto expect = hex_of(util::DigestAlgo::sha256, text);
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    auto opened = io::HashingReader::open(std::make_unique<MemoryReader>(to_bytes(text), chunk), util::DigestAlgo::sha256);
    REQUIRE(opened);
    auto& [reader, tap] = *opened;
    auto out = cdi::test::read_all(*reader, chunk);
    REQUIRE(out);
    CHECK(out->size() == text.size());
    CHECK(std::memcmp(out->data(), text.data(), text.size()) == 0);
    CHECK(tap->at_end());
    CHECK(tap->bytes() == text.size());
    auto hex = tap->finish();
    REQUIRE(hex);
    CHECK(*hex == expect);
    CHECK_FALSE(tap->finish());   // spent
  }
}

TEST_CASE("hashing reader: finish drains what the stages above left unread", "[digest]") {
  auto opened = io::HashingReader::open(std::make_unique<MemoryReader>(to_bytes("hello world"), 3), util::DigestAlgo::sha256);
  REQUIRE(opened);
  auto& [reader, tap] = *opened;
  std::array<std::byte, 5> head{};
  REQUIRE(io::read_full(*reader, head));
  CHECK_FALSE(tap->at_end());
  auto c = util::parse_checksum("sha256:" + k_sha256_hello);
  REQUIRE(c);
  CHECK(tap->verify(*c));
  CHECK(tap->bytes() == 11);
}

TEST_CASE("hashing reader: mismatch, truncated input and upstream errors", "[digest]") {
  {
    // one byte short of "hello world": the digest differs -> checksum mismatch
    auto opened = io::HashingReader::open(std::make_unique<MemoryReader>(to_bytes("hello worl")), util::DigestAlgo::sha256);
    REQUIRE(opened);
    auto c = util::parse_checksum("sha256:" + k_sha256_hello);
    auto r = opened->second->verify(*c);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
    CHECK(r.error().what().starts_with("checksum mismatch: expected sha256:b94d27b9"));
  }
  {
    // trailing garbage changes the digest too
    auto opened = io::HashingReader::open(std::make_unique<MemoryReader>(to_bytes("hello world!")), util::DigestAlgo::sha256);
    REQUIRE(opened);
    CHECK_FALSE(opened->second->verify(*util::parse_checksum("sha256:" + k_sha256_hello)));
  }
  {
    auto opened = io::HashingReader::open(
        std::make_unique<FailingReader>(to_bytes("abc"), Error(Errc::network, "connection reset").context("http")),
        util::DigestAlgo::md5);
    REQUIRE(opened);
    auto& [reader, tap] = *opened;
    auto out = cdi::test::read_all(*reader, 2);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::network);
    CHECK(out.error().what() == "http: connection reset");
    CHECK_FALSE(tap->finish());
  }
  {
    // the reader is gone before its end: no digest of a prefix
    auto opened = io::HashingReader::open(std::make_unique<MemoryReader>(to_bytes("abc")), util::DigestAlgo::sha1);
    REQUIRE(opened);
    auto tap = opened->second;
    opened->first.reset();
    auto r = tap->finish();
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::internal);
  }
}
