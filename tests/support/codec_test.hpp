// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the codec tests (gzip, xz, zstd, snappy): sample data, byte helpers, and one
// decode helper that runs any codec's open() over a MemoryReader with a chosen read size.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "lib/util/error.hpp"
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

}  // namespace cdi::test
