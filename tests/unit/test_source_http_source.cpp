// SPDX-License-Identifier: Apache-2.0
// The HTTP source against the project's fault server (tests/support/fault_server.py), started per
// test case on 127.0.0.1 with a temporary docroot.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "lib/source/http_source.hpp"
#include "tests/support/fault_server.hpp"
#include "tests/support/memory_reader.hpp"

extern char** environ;

using namespace cdi;
namespace fs = std::filesystem;

namespace {

using test::FaultServer;

source::HttpOptions fast() {
  source::HttpOptions o;
  o.retries = 2;
  o.backoff_initial = std::chrono::milliseconds(10);
  o.backoff_max = std::chrono::milliseconds(50);
  o.stall_timeout = std::chrono::seconds(1);
  return o;
}

Result<std::vector<std::byte>> read_all_at(io::Reader& r, size_t chunk) {
  std::vector<std::byte> out, buf(chunk);
  for (;;) {
    size_t n = CDI_TRY(r.read(buf));
    if (n == 0) return out;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(n));
  }
}

}  // namespace

TEST_CASE("http source: golden bytes at any read size, info from the reply", "[http_source]") {
  FaultServer srv;
  for (size_t chunk : {size_t(1), size_t(7), size_t(4096), size_t(1) << 20}) {
    auto r = source::open_http_source(srv.url("/ok/disk.img"), fast(), {});
    REQUIRE(r);
    auto info = (*r)->info();
    CHECK(info.name == "http");
    CHECK(info.size == srv.data.size());
    CHECK_FALSE(info.seekable);
    if (chunk == 1) {   // byte-at-a-time over 3 MiB is slow: the first 64 KiB, then big reads
      std::vector<std::byte> head(65536);
      for (size_t i = 0; i < head.size(); ++i) REQUIRE(*(*r)->read(std::span(head).subspan(i, 1)) == 1);
      CHECK(std::equal(head.begin(), head.end(), srv.data.begin()));
      continue;
    }
    auto got = read_all_at(**r, chunk);
    REQUIRE(got);
    CHECK(*got == srv.data);
  }
}

TEST_CASE("http source: chunked body without a length", "[http_source]") {
  FaultServer srv;
  auto r = source::open_http_source(srv.url("/chunked/disk.img"), fast(), {});
  REQUIRE(r);
  CHECK_FALSE((*r)->info().size);
  CHECK(*read_all_at(**r, 65536) == srv.data);
}

TEST_CASE("http source: resumes after reset, truncation, stall and a cut chunked body", "[http_source]") {
  FaultServer srv;
  for (std::string path : {"/reset/1000000/disk.img", "/truncate/1/disk.img", "/stall/2000000/disk.img",
                           "/chunked-cut/777777/disk.img", "/flaky/0/disk.img"}) {
    INFO(path);
    std::vector<std::string> logs;
    source::HttpContext ctx;
    ctx.log = [&](std::string_view s) { logs.emplace_back(s); };
    auto r = source::open_http_source(srv.url(path), fast(), ctx);
    REQUIRE(r);
    auto got = read_all_at(**r, 1 << 20);
    REQUIRE(got);
    CHECK(*got == srv.data);
  }
  // resumed with a Range from the next undelivered byte, validated by If-Range
  // (after an RST the client may hold fewer bytes than were sent, so the offset is not fixed)
  auto log = srv.log();
  CHECK(log.find("range=bytes=") != std::string::npos);
  CHECK(log.find("if-range=\"") != std::string::npos);
  CHECK(log.find("status=206") != std::string::npos);
}

TEST_CASE("http source: a server that never gets further fails in bounds, never short", "[http_source]") {
  FaultServer srv;
  auto t0 = std::chrono::steady_clock::now();
  auto r = source::open_http_source(srv.url("/truncate/0/disk.img") + "&n=100", fast(), {});
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::network);
  CHECK(r.error().message().find("gave up after 3 attempts") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));

  // data delivered, then only cut replies with no progress: the error comes after the bytes
  auto o = fast();
  auto r2 = source::open_http_source(srv.url("/norange-reset/100000/disk.img"), o, {});
  REQUIRE(r2);
  auto got = read_all_at(**r2, 4096);
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Errc::network);
  CHECK(got.error().message().find("does not support Range requests") != std::string::npos);
}

TEST_CASE("http source: status mapping", "[http_source]") {
  FaultServer srv;
  auto st = [&](int code) { return source::open_http_source(srv.url("/status/" + std::to_string(code)), fast(), {}); };
  auto e404 = st(404);
  REQUIRE_FALSE(e404);
  CHECK(e404.error().code() == Errc::not_found);
  CHECK(e404.error().message().starts_with("HTTP 404 Not Found for http://127.0.0.1:"));
  CHECK(st(410).error().code() == Errc::not_found);
  CHECK(st(401).error().code() == Errc::auth);
  CHECK(st(403).error().code() == Errc::auth);
  CHECK(st(400).error().code() == Errc::network);
  auto e503 = st(503);
  CHECK(e503.error().code() == Errc::network);
  CHECK(e503.error().message().find("gave up") != std::string::npos);
  auto html = source::open_http_source(srv.url("/html"), fast(), {});
  REQUIRE_FALSE(html);
  CHECK(html.error().code() == Errc::corrupt_input);
  CHECK(html.error().message().find("HTML page (likely an error page)") != std::string::npos);
  auto missing = source::open_http_source(srv.url("/ok/nope.img"), fast(), {});
  CHECK(missing.error().code() == Errc::not_found);
}

TEST_CASE("http source: cancellation stops a stalled transfer promptly", "[http_source]") {
  FaultServer srv;
  util::CancelToken cancel;
  source::HttpContext ctx;
  ctx.cancel = &cancel;
  auto o = fast();
  o.stall_timeout = std::chrono::seconds(60);
  auto r = source::open_http_source(srv.url("/stall/100000/disk.img"), o, ctx);
  REQUIRE(r);
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel.cancel();
  });
  auto t0 = std::chrono::steady_clock::now();
  auto got = read_all_at(**r, 65536);
  t.join();
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Errc::cancelled);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  r->reset();   // the transfer thread ends with the reader
}

TEST_CASE("http source: dropping the reader mid-transfer ends the thread", "[http_source]") {
  FaultServer srv;
  auto o = fast();
  o.buffer_bytes = 4096;
  auto r = source::open_http_source(srv.url("/ok/disk.img"), o, {});
  REQUIRE(r);
  std::vector<std::byte> buf(100);
  REQUIRE(*(*r)->read(buf) > 0);
  r->reset();   // must not hang with the producer blocked on a full buffer
  SUCCEED();
}

TEST_CASE("http source: option errors", "[http_source]") {
  source::HttpOptions o;
  o.username = "u";
  CHECK(source::open_http_source("http://127.0.0.1:1/x", o, {}).error().code() == Errc::invalid_argument);
  o = {};
  o.password_file = "/nonexistent/pw";
  o.username = "u";
  CHECK(source::open_http_source("http://127.0.0.1:1/x", o, {}).error().code() == Errc::not_found);
  o = {};
  o.headers = {"Bad Header"};
  CHECK(source::open_http_source("http://127.0.0.1:1/x", o, {}).error().code() == Errc::invalid_argument);
  CHECK(source::open_http_source("ftp://127.0.0.1/x", {}, {}).error().code() == Errc::invalid_argument);
}

TEST_CASE("CA bundle: system store + every non-dot regular file with certificates", "[http_source]") {
  auto dir = fs::temp_directory_path() / ("cdi-ca-test." + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "..data");
  // one real certificate: the first one of a bundle we write ourselves from the system store
  std::ifstream sys("/etc/ssl/certs/ca-certificates.crt");
  std::string all((std::istreambuf_iterator<char>(sys)), {});
  auto end = all.find("-----END CERTIFICATE-----");
  REQUIRE(end != std::string::npos);
  std::string one = all.substr(all.find("-----BEGIN CERTIFICATE-----"), end + 25 - all.find("-----BEGIN CERTIFICATE-----")) + "\n";
  std::ofstream(dir / "My Odd CA name.crt.txt") << "some preamble\n" << one;
  std::ofstream(dir / "README") << "no certificate here\n";
  std::ofstream(dir / ".hidden") << one;
  auto empty_sys = dir / "..data" / "empty-bundle";
  std::ofstream(empty_sys) << "";
  auto b = source::build_ca_bundle(dir, empty_sys);
  REQUIRE(b);
  CHECK(b->dir_certificates == 1);
  CHECK(b->pem.find("-----BEGIN CERTIFICATE-----") != std::string::npos);
  CHECK(b->pem.find("preamble") == std::string::npos);
  REQUIRE(b->warnings.size() == 1);
  CHECK(b->warnings[0].find("README") != std::string::npos);
  CHECK(source::build_ca_bundle(dir / "missing", empty_sys).error().code() == Errc::not_found);
  CHECK(source::build_ca_bundle(dir / "README", empty_sys).error().code() == Errc::invalid_argument);
  fs::remove_all(dir);
}
