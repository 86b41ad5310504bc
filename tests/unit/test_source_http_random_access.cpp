// SPDX-License-Identifier: Apache-2.0
// HttpRandomAccess against the project's fault server (tests/support/fault_server.py) on
// 127.0.0.1: byte-exact reads, the version pinned by If-Match, retries inside a range, few round
// trips for sequential and qcow2 reads (a qemu-img image made at test time).
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <thread>

#include "formats/qcow2/qcow2_decoder.hpp"
#include "lib/source/http_random_access.hpp"
#include "tests/support/fault_server.hpp"
#include "tests/unit/test_formats_qcow2_support.hpp"

using namespace cdi;
using test::FaultServer;
namespace fs = std::filesystem;

namespace {

source::HttpOptions fast() {
  source::HttpOptions o;
  o.retries = 2;
  o.backoff_initial = std::chrono::milliseconds(10);
  o.backoff_max = std::chrono::milliseconds(50);
  o.stall_timeout = std::chrono::seconds(1);
  o.proxy_from_env = false;
  return o;
}

// Log lines of requests that carried no If-Match.
size_t unconditional(const std::string& log) {
  size_t n = 0;
  for (size_t at = 0; (at = log.find("if-match=-", at)) != std::string::npos; ++at) ++n;
  return n;
}

std::vector<std::byte> slice(const std::vector<std::byte>& v, uint64_t off, uint64_t len) {
  return {v.begin() + static_cast<long>(off), v.begin() + static_cast<long>(off + len)};
}

}  // namespace

TEST_CASE("http random access: byte-exact reads anywhere, across the end, version pinned", "[http_source][http_random_access]") {
  FaultServer srv(5 << 20);
  std::vector<std::string> logs;
  source::HttpContext ctx;
  ctx.log = [&](std::string_view s) { logs.emplace_back(s); };
  auto ra = source::HttpRandomAccess::open(srv.url("/ok/disk.img"), fast(), ctx);
  REQUIRE(ra);
  auto& in = **ra;
  REQUIRE(in.size() == srv.data.size());
  CHECK(in.coalesce_gap() == 1u << 20);
  const uint64_t size = srv.data.size();
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng() % size;
    size_t len = static_cast<size_t>(1 + rng() % (i % 10 == 0 ? (3u << 20) : 70000u));
    std::vector<std::byte> buf(len);
    auto n = io::pread_full(in, off, buf);
    REQUIRE(n);
    INFO("offset " << off << " length " << len);
    REQUIRE(*n == std::min<uint64_t>(len, size - off));
    REQUIRE(std::equal(buf.begin(), buf.begin() + static_cast<long>(*n), srv.data.begin() + static_cast<long>(off)));
  }
  // Across the end: the tail, then 0 at and after the end.
  std::vector<std::byte> buf(100000);
  auto n = io::pread_full(in, size - 1234, buf);
  REQUIRE(n);
  CHECK(*n == 1234);
  CHECK(std::equal(buf.begin(), buf.begin() + 1234, srv.data.end() - 1234));
  CHECK(*in.pread(size, buf) == 0);
  CHECK(*in.pread(size + 12345, buf) == 0);
  // Only the first request went without a precondition; every other one carried the ETag.
  CHECK(unconditional(srv.log()) == 1);
  CHECK(srv.log().find("if-match=\"") != std::string::npos);
  CHECK(srv.requests() == in.requests());
}

TEST_CASE("http random access: a server that ignores Range is refused, never read", "[http_source][http_random_access]") {
  FaultServer srv;
  auto ra = source::HttpRandomAccess::open(srv.url("/norange/disk.img"), fast(), {});
  REQUIRE_FALSE(ra);
  CHECK(ra.error().code() == Errc::unsupported);
  CHECK(ra.error().what().find("byte ranges") != std::string::npos);

  // Ranges at first, then (after a drop inside the first range) 200 with the whole body: the
  // resumed read is refused, not spliced.
  auto ra2 = source::HttpRandomAccess::open(srv.url("/norange-reset/1000/disk.img"), fast(), {});
  REQUIRE_FALSE(ra2);
  INFO(ra2.error().what());
  CHECK(ra2.error().code() == Errc::corrupt_input);
  CHECK(ra2.error().what().find("changed while it was read") != std::string::npos);
  CHECK(ra2.error().what().find("HTTP 200") != std::string::npos);
}

TEST_CASE("http random access: the resource replaced between reads is an error", "[http_source][http_random_access]") {
  FaultServer srv(4 << 20);
  source::HttpRandomAccessOptions o;
  o.cache_bytes = 2 << 20;
  o.max_request = 1 << 20;
  auto ra = source::HttpRandomAccess::open(srv.url("/ok/disk.img"), fast(), {}, o);
  REQUIRE(ra);
  std::vector<std::byte> buf(4096);
  REQUIRE(*io::pread_full(**ra, 100, buf) == buf.size());
  CHECK(buf == slice(srv.data, 100, buf.size()));
  // Same length, other bytes, another mtime: another ETag.
  auto other = srv.data;
  std::reverse(other.begin(), other.end());
  srv.put("disk.img", other);
  fs::last_write_time(srv.docroot() / "disk.img", fs::last_write_time(srv.docroot() / "disk.img") + std::chrono::seconds(10));
  auto r = io::pread_full(**ra, 3 << 20, buf);
  REQUIRE_FALSE(r);
  INFO(r.error().what());
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().what().find("changed while it was read") != std::string::npos);
  CHECK(r.error().what().find("412") != std::string::npos);

  // The fault server's /changed/: a drop inside the first range, then another ETag.
  auto ra2 = source::HttpRandomAccess::open(srv.url("/changed/5000/disk.img"), fast(), {});
  REQUIRE_FALSE(ra2);
  CHECK(ra2.error().code() == Errc::corrupt_input);

  // Another ETag than the streaming source saw.
  source::HttpRandomAccessOptions o4;
  o4.expected_etag = "\"something-else\"";
  auto ra4 = source::HttpRandomAccess::open(srv.url("/ok/disk.img"), fast(), {}, o4);
  REQUIRE_FALSE(ra4);
  CHECK(ra4.error().code() == Errc::corrupt_input);

  // A different length than the streaming source saw.
  source::HttpRandomAccessOptions o3;
  o3.expected_size = srv.data.size() + 1;
  auto ra3 = source::HttpRandomAccess::open(srv.url("/ok/disk.img"), fast(), {}, o3);
  REQUIRE_FALSE(ra3);
  CHECK(ra3.error().code() == Errc::corrupt_input);
}

TEST_CASE("http random access: pinned by Last-Modified without an ETag", "[http_source][http_random_access]") {
  FaultServer srv(3 << 20);
  source::HttpRandomAccessOptions o;
  o.max_request = 1 << 20;
  auto ra = source::HttpRandomAccess::open(srv.url("/noetag/disk.img"), fast(), {}, o);
  REQUIRE(ra);
  std::vector<std::byte> buf(1 << 20);
  REQUIRE(*io::pread_full(**ra, 1 << 20, buf) == buf.size());
  CHECK(buf == slice(srv.data, 1 << 20, buf.size()));
  fs::last_write_time(srv.docroot() / "disk.img", fs::last_write_time(srv.docroot() / "disk.img") + std::chrono::seconds(10));
  auto r = io::pread_full(**ra, 2 << 20, buf);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().what().find("If-Unmodified-Since") != std::string::npos);
}

TEST_CASE("http random access: 5xx, drops and stalls are retried, resuming inside the range", "[http_source][http_random_access]") {
  FaultServer srv;
  for (std::string path : {"/flaky/-/disk.img", "/reset/300000/disk.img", "/truncate/1/disk.img", "/stall/200000/disk.img"}) {
    INFO(path);
    std::vector<std::string> logs;
    source::HttpContext ctx;
    ctx.log = [&](std::string_view s) { logs.emplace_back(s); };
    auto ra = source::HttpRandomAccess::open(srv.url(path), fast(), ctx);
    if (!ra) FAIL(ra.error().what());
    std::vector<std::byte> all(srv.data.size());
    REQUIRE(*io::pread_full(**ra, 0, all) == all.size());
    CHECK(all == srv.data);
    CHECK((*ra)->requests() >= 2);
    bool retried = std::ranges::any_of(logs, [](const std::string& l) { return l.find("retrying") != std::string::npos; });
    CHECK(retried);
  }
  std::string log = srv.log();
  CHECK(log.find("status=503") != std::string::npos);
  // Resumed inside the first range, with the pinned ETag.
  CHECK(log.find("range=bytes=200000-1048575 if-range=- if-match=\"") != std::string::npos);
  CHECK(log.find("range=bytes=1-1048575 if-range=- if-match=\"") != std::string::npos);
  // Retries exhausted: a clear network error.
  auto o = fast();
  o.retries = 1;
  auto bad = source::HttpRandomAccess::open(srv.url("/flaky/-/disk.img") + "&n=5", o, {});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::network);
  CHECK(bad.error().what().find("503") != std::string::npos);
  auto missing = source::HttpRandomAccess::open(srv.url("/ok/nothing.img"), fast(), {});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
}

TEST_CASE("http random access: a sequential scan of 64 MiB is a few large GETs", "[http_source][http_random_access]") {
  FaultServer srv(64 << 20);
  for (bool hinted : {false, true}) {
    INFO("hinted " << hinted);
    auto ra = source::HttpRandomAccess::open(srv.url("/ok/disk.img"), fast(), {});
    REQUIRE(ra);
    auto& in = **ra;
    if (hinted) {
      std::vector<io::ByteRange> r;
      for (uint64_t at = 0; at < srv.data.size(); at += 4 << 20) r.push_back({at, 4 << 20});
      in.will_need(r);
    }
    std::vector<std::byte> buf(4 << 20);
    bool same = true;
    for (uint64_t at = 0; at < srv.data.size(); at += buf.size()) {
      REQUIRE(*io::pread_full(in, at, buf) == buf.size());
      same = same && std::equal(buf.begin(), buf.end(), srv.data.begin() + static_cast<long>(at));
    }
    CHECK(same);
    // Unhinted: 1, 2, 4, 8, 16, 16, 16, 1 MiB; hinted: the first MiB, then 16 MiB requests.
    CHECK(in.requests() <= (hinted ? 6u : 9u));
    CHECK(in.connections() == 1);   // one kept-alive connection
  }
  CHECK(srv.requests() <= 15);
}

TEST_CASE("http random access: qcow2 (qemu-img -c) decodes byte-exact in few requests", "[http_source][http_random_access][qcow2][qemu]") {
  using namespace cdi::test::qcow2;
  REQUIRE(sh("qemu-img --version"));
  TempDir dir;
  // 80 MiB mixing random, text-like and zero regions (a 24 MiB image).
  Bytes raw(80 << 20, std::byte{0});
  Bytes rnd = pattern(raw.size(), 77);
  for (size_t i = 0; i < raw.size(); ++i) {
    size_t region = (i >> 16) % 4;
    if (region == 0) raw[i] = rnd[i];
    else if (region == 1) raw[i] = std::byte(static_cast<uint8_t>("the quick brown fox jumps over "[i % 30]));
    else if (region == 3 && (i % 512) < 100) raw[i] = rnd[i];
  }
  write_file(dir / "src.raw", raw);
  REQUIRE(sh("cd " + dir.path().string() + " && qemu-img convert -f raw -O qcow2 -c src.raw img.qcow2"));
  REQUIRE(sh("cd " + dir.path().string() + " && qemu-img convert -f qcow2 -O raw img.qcow2 ref.raw"));
  Bytes img = read_file(dir / "img.qcow2");
  Bytes ref = read_file(dir / "ref.raw");
  REQUIRE(ref == raw);
  FaultServer srv(0);
  srv.put("img.qcow2", img);
  // The defaults, then a cache too small for the image: 2 MiB requests, segments evicted.
  for (size_t max_request : {size_t(16) << 20, size_t(2) << 20}) {
    INFO("max_request " << max_request);
    source::HttpRandomAccessOptions o;
    o.max_request = max_request;
    o.cache_bytes = std::min<size_t>(o.cache_bytes, 2 * max_request);
    auto ra = source::HttpRandomAccess::open(srv.url("/ok/img.qcow2"), fast(), {}, o);
    REQUIRE(ra);
    CheckingSink sink;
    auto st = formats::qcow2::decode_random_access(**ra, sink, {});
    if (!st) FAIL(st.error().what());
    REQUIRE(sink.finish(st->virtual_size));
    CHECK(st->virtual_size == ref.size());
    CHECK(sink.covered(ref.size()));
    CHECK(sink.data() == ref);
    CHECK(st->held_peak == 0);
    // Metadata (header, L1, refcounts, L2 tables) in at most 3 requests, the data in
    // max_request ones (a hint batch may end a request early: one more every 64 MiB).
    const uint64_t data_requests = (img.size() + max_request - 1) / max_request + img.size() / (64u << 20) + 1;
    INFO("image " << img.size() << " bytes, " << (*ra)->requests() << " requests");
    CHECK((*ra)->requests() <= 3 + data_requests);
  }
  CHECK(unconditional(srv.log()) == 2);
}

TEST_CASE("http random access: cancellation stops a slow range promptly", "[http_source][http_random_access]") {
  FaultServer srv;
  util::CancelToken cancel;
  source::HttpContext ctx;
  ctx.cancel = &cancel;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto ra = source::HttpRandomAccess::open(srv.url("/slow/64/disk.img"), fast(), ctx);   // 1 MiB at 64 KiB/s
  stopper.join();
  REQUIRE_FALSE(ra);
  CHECK(ra.error().code() == Errc::cancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
}
