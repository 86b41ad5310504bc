// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <numeric>
#include <thread>

#include "lib/io/push_pull_adapter.hpp"

using namespace cdi;
using io::PushPullAdapter;

namespace {

std::vector<std::byte> pattern(size_t n) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + i / 7) & 0xff);
  return v;
}

}  // namespace

TEST_CASE("adapter moves every byte in order at any push/pull size, within capacity", "[push_pull]") {
  auto data = pattern(3 * 1000 * 1000 + 17);
  for (size_t capacity : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    for (size_t pull_size : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
      if (capacity == 1 && pull_size != 4096) continue;   // byte-at-a-time ping-pong: once is enough
      PushPullAdapter a(capacity);
      std::atomic<bool> pushed_all{true};
      std::thread producer([&] {
        size_t off = 0, step = 1;
        while (off < data.size()) {
          size_t n = std::min(step, data.size() - off);
          if (!a.push(std::span(data).subspan(off, n))) pushed_all = false;   // Catch2 asserts on this thread only
          off += n;
          step = step * 3 % 70001 + 1;
        }
        a.finish({});
      });
      std::vector<std::byte> out;
      std::vector<std::byte> buf(pull_size);
      for (;;) {
        auto n = a.pull(buf);
        if (!n) FAIL(n.error().what());
        if (*n == 0) break;
        out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(*n));
      }
      producer.join();
      CHECK(pushed_all.load());
      CHECK(out == data);
      CHECK(a.peak() <= capacity);
      CHECK(*a.pull(buf) == 0);   // the end stays the end
    }
  }
}

TEST_CASE("adapter: the producer's error comes after the data, and stays", "[push_pull]") {
  PushPullAdapter a(16);
  auto d = pattern(10);
  REQUIRE(a.push(d));
  a.finish(fail(Errc::network, "connection reset"));
  a.finish({});   // only the first end counts
  std::vector<std::byte> buf(64);
  CHECK(*a.pull(buf) == 10);
  auto e = a.pull(buf);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == Errc::network);
  CHECK(a.pull(buf).error().message() == "connection reset");
}

TEST_CASE("adapter: closing the consumer releases a blocked producer", "[push_pull]") {
  PushPullAdapter a(8);
  auto d = pattern(100);
  std::atomic<bool> result{true};
  std::thread producer([&] { result = a.push(d); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  a.close();
  producer.join();
  CHECK_FALSE(result.load());
  CHECK(a.consumer_closed());
  CHECK_FALSE(a.sleep_unless_closed(std::chrono::seconds(10)));   // returns at once
}

TEST_CASE("adapter: a cancelled consumer stops waiting", "[push_pull]") {
  PushPullAdapter a(8);
  util::CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    cancel.cancel();
  });
  std::vector<std::byte> buf(8);
  auto t0 = std::chrono::steady_clock::now();
  auto r = a.pull(buf, &cancel);
  canceller.join();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::cancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
}

TEST_CASE("adapter: sleep_unless_closed waits when nobody closes", "[push_pull]") {
  PushPullAdapter a(8);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(a.sleep_unless_closed(std::chrono::milliseconds(30)));
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(30));
}
