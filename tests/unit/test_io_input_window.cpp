// SPDX-License-Identifier: Apache-2.0
// lib/io/input_window: offsets, keep_back and compact_below, eof and upstream errors.
#include <catch2/catch.hpp>
#include <cstring>

#include "lib/io/input_window.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using test::MemoryReader;

namespace {
std::vector<std::byte> counting(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = std::byte(i & 0xff);
  return v;
}
}  // namespace

TEST_CASE("InputWindow: refill after everything is consumed starts over, offsets follow", "[io][input_window]") {
  MemoryReader up(counting(600), 300);
  io::InputWindow w(256);
  CHECK(w.refill(up, nullptr).value() == 256);   // at most the window
  CHECK(w.offset() == 0);
  w.pos = w.end;
  CHECK(w.refill(up, nullptr).value() == 256);
  CHECK(w.pos == 0);
  CHECK(w.offset() == 256);
  CHECK(w.data()[0] == std::byte(0));             // byte 256
  w.pos = w.end;
  CHECK(w.refill(up, nullptr).value() == 88);     // what is left
  CHECK(w.offset_of(0) == 512);
  CHECK(w.data()[1] == std::byte(513 & 0xff));
  CHECK(w.received() == 600);
  CHECK_FALSE(w.eof());
  w.pos = w.end;
  CHECK(w.refill(up, nullptr).value() == 0);
  CHECK(w.eof());
  CHECK(w.received() == 600);
}

TEST_CASE("InputWindow: keep_back keeps the last consumed bytes before pos", "[io][input_window]") {
  MemoryReader up(counting(100), 10);
  io::InputWindow w(26, 16);
  REQUIRE(w.refill(up, nullptr).value() == 10);
  REQUIRE(w.refill(up, nullptr).value() == 10);
  w.pos = 20;
  REQUIRE(w.refill(up, nullptr).value() == 10);
  // 4 bytes dropped, 16 kept behind pos.
  CHECK(w.pos == 16);
  CHECK(w.end == 26);
  CHECK(w.offset_of(0) == 4);
  CHECK(w.data()[w.pos] == std::byte(20));
  CHECK(w.data()[w.pos - 16] == std::byte(4));
}

TEST_CASE("InputWindow: compact_below moves unread bytes only when the tail is short", "[io][input_window]") {
  MemoryReader up(counting(1000), 40);
  io::InputWindow w(100, 0, 30);
  REQUIRE(w.refill(up, nullptr).value() == 40);
  w.pos = 30;                                     // 10 unread, 60 free: no move
  REQUIRE(w.refill(up, nullptr).value() == 40);
  CHECK(w.pos == 30);
  CHECK(w.end == 80);
  w.pos = 75;                                     // 5 unread, 20 free (< 30): moved to the front
  REQUIRE(w.refill(up, nullptr).value() == 40);
  CHECK(w.pos == 0);
  CHECK(w.end == 45);
  CHECK(w.offset() == 75);
  CHECK(w.data()[0] == std::byte(75));
}

TEST_CASE("InputWindow: ensure, eof, cancel and upstream errors", "[io][input_window]") {
  MemoryReader up(counting(50), 7);
  io::InputWindow w(64);
  CHECK(w.ensure(up, nullptr, 30).value());
  CHECK(w.buffered() >= 30);
  CHECK_FALSE(w.ensure(up, nullptr, 64).value());   // only 50 bytes exist
  CHECK(w.eof());
  CHECK(w.received() == 50);

  util::CancelToken cancel;
  cancel.cancel();
  MemoryReader up2(counting(10));
  io::InputWindow w2(16);
  auto c = w2.refill(up2, &cancel);
  REQUIRE_FALSE(c);
  CHECK(c.error().code() == Errc::cancelled);

  test::FailingReader bad(counting(3), Error(Errc::network, "reset"));
  io::InputWindow w3(16);
  CHECK(w3.refill(bad, nullptr).value() == 3);
  auto e = w3.refill(bad, nullptr);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == Errc::network);
}
