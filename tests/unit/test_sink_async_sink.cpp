// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <random>

#include "lib/sink/async_sink.hpp"
#include "tests/support/memory_sink.hpp"

using namespace cdi;

namespace {
std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = std::byte(rng());
  return v;
}
}  // namespace

TEST_CASE("sink::AsyncSink forwards extents in order and finishes", "[sink][async]") {
  test::MemorySink inner;
  auto a = pattern(3 << 20, 1);
  {
    sink::AsyncSink s(inner, 1 << 20);   // smaller than the data: the producer must block and resume
    for (size_t off = 0; off < a.size(); off += 65536) REQUIRE(s.write_at(off, std::span(a).subspan(off, 65536)));
    REQUIRE(s.zero_range(a.size(), 4096));
    REQUIRE(s.finish(a.size() + 4096 + 100));
  }
  CHECK(inner.finished());
  REQUIRE(inner.data().size() == a.size() + 4096 + 100);
  CHECK(std::equal(a.begin(), a.end(), inner.data().begin()));
  CHECK(std::all_of(inner.data().begin() + a.size(), inner.data().begin() + a.size() + 4096,
                    [](std::byte b) { return b == std::byte{0}; }));
}

TEST_CASE("sink::AsyncSink makes the inner sink's first error sticky", "[sink][async]") {
  test::MemorySink inner(1 << 20);   // capacity 1 MiB
  sink::AsyncSink s(inner, 256 << 10);
  auto a = pattern(64 << 10, 2);
  Result<void> r;
  for (uint64_t off = 0; off < (4u << 20) && r; off += a.size()) r = s.write_at(off, a);
  if (r) r = s.drain();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::limit);
  CHECK(s.zero_range(0, 10).error().code() == Errc::limit);
  CHECK(s.finish(1 << 20).error().code() == Errc::limit);
  s.abort();
  CHECK(inner.aborted());
  CHECK_FALSE(inner.finished());
}

TEST_CASE("sink::AsyncSink abort drops queued work and aborts the inner sink", "[sink][async]") {
  test::MemorySink inner;
  sink::AsyncSink s(inner);
  auto a = pattern(1 << 20, 3);
  REQUIRE(s.write_at(0, a));
  s.abort();
  CHECK(inner.aborted());
  CHECK(s.write_at(0, a).error().code() == Errc::internal);
}
