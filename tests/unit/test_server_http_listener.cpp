// SPDX-License-Identifier: Apache-2.0
// HttpServer (lib/server/http_listener): the connection cap, header deadline vs slow bodies,
// listen addresses; MetricsServer over [::1]; the TLS_CIPHERS mapping with CDI's profile lists.
// Raw sockets on 127.0.0.1 / ::1, kernel-chosen ports.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <httplib.h>
#include <string>
#include <thread>
#include <vector>

#include "lib/server/http_listener.hpp"
#include "lib/server/metrics_server.hpp"
#include "lib/server/tls_ciphers.hpp"
#include "lib/util/fd.hpp"

using namespace cdi;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

util::Fd connect_to(const char* ip, uint16_t port) {
  bool v6 = std::string(ip).find(':') != std::string::npos;
  util::Fd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  int r;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip, &a.sin6_addr);
    r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a.sin_addr);
    r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  REQUIRE(r == 0);
  return fd;
}

void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    auto n = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    s.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads until the peer closes or `limit` passes; returns what came.
std::string read_until_close(int fd, std::chrono::milliseconds limit, bool* closed = nullptr) {
  std::string out;
  auto until = Clock::now() + limit;
  if (closed) *closed = false;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) return out;
    char buf[4096];
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed) *closed = true;
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string get(const char* ip, uint16_t port, const std::string& path, std::chrono::milliseconds limit = 2s) {
  auto fd = connect_to(ip, port);
  send_all(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  return read_until_close(fd.get(), limit);
}

struct Plain {
  explicit Plain(server::ConnectionLimits lim, const char* addr = "127.0.0.1") : srv(lim, nullptr, nullptr) {
    srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { res.set_content("OK", "text/plain"); });
    srv.Post("/body", [](const httplib::Request&, httplib::Response& res, const httplib::ContentReader& r) {
      std::string got;
      r([&](const char* d, size_t n) {
        got.append(d, n);
        return true;
      });
      res.set_content("got " + got, "text/plain");
    });
    auto p = srv.start(addr, 0);
    REQUIRE(p);
    port = *p;
  }
  server::HttpServer srv;
  uint16_t port = 0;
};

// CDI's TLS security profiles (containerized-data-importer-api core/v1beta1
// types_tlssecurityprofile.go TLSProfiles), joined with "," as the upload controller does.
const char* k_old =
    "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,"
    "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,"
    "ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384,"
    "DHE-RSA-CHACHA20-POLY1305,ECDHE-ECDSA-AES128-SHA256,ECDHE-RSA-AES128-SHA256,ECDHE-ECDSA-AES128-SHA,"
    "ECDHE-RSA-AES128-SHA,ECDHE-ECDSA-AES256-SHA384,ECDHE-RSA-AES256-SHA384,ECDHE-ECDSA-AES256-SHA,"
    "ECDHE-RSA-AES256-SHA,DHE-RSA-AES128-SHA256,DHE-RSA-AES256-SHA256,AES128-GCM-SHA256,AES256-GCM-SHA384,"
    "AES128-SHA256,AES256-SHA256,AES128-SHA,AES256-SHA,DES-CBC3-SHA";
const char* k_intermediate =
    "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,ECDHE-ECDSA-AES128-GCM-SHA256,"
    "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,ECDHE-RSA-AES256-GCM-SHA384,"
    "ECDHE-ECDSA-CHACHA20-POLY1305,ECDHE-RSA-CHACHA20-POLY1305,DHE-RSA-AES128-GCM-SHA256,DHE-RSA-AES256-GCM-SHA384";
const char* k_modern = "TLS_AES_128_GCM_SHA256,TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256";
const char* k_tls13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

std::vector<std::string> ctx_ciphers(SSL_CTX* ctx) {
  std::vector<std::string> v;
  auto* sk = SSL_CTX_get_ciphers(ctx);
  for (int i = 0; i < sk_SSL_CIPHER_num(sk); ++i) v.push_back(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, i)));
  return v;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("HttpServer: over the connection cap a connection gets a quick 503, and a slot frees again",
          "[server][listener]") {
  server::ConnectionLimits lim;
  lim.max_connections = 3;
  Plain p(lim);
  std::vector<util::Fd> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(connect_to("127.0.0.1", p.port));
  for (int i = 0; i < 100 && p.srv.open_connections() < 3; ++i) std::this_thread::sleep_for(10ms);
  REQUIRE(p.srv.open_connections() == 3);
  auto t0 = Clock::now();
  std::string r = get("127.0.0.1", p.port, "/healthz", 2s);
  CHECK(r.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(Clock::now() - t0 < 1s);
  idle.pop_back();
  for (int i = 0; i < 100 && p.srv.open_connections() > 2; ++i) std::this_thread::sleep_for(10ms);
  r = get("127.0.0.1", p.port, "/healthz");
  CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(r.find("\r\n\r\nOK") != std::string::npos);
}

TEST_CASE("HttpServer: a byte-a-second header is cut at the header deadline, a slow body is not",
          "[server][listener]") {
  server::ConnectionLimits lim;
  lim.header_timeout = 400ms;
  lim.idle_timeout = 400ms;
  Plain p(lim);
  SECTION("trickled header") {
    auto fd = connect_to("127.0.0.1", p.port);
    auto t0 = Clock::now();
    bool closed = false;
    const std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa";
    for (char c : head) {
      if (::send(fd.get(), &c, 1, MSG_NOSIGNAL) != 1) {
        closed = true;
        break;
      }
      std::string got = read_until_close(fd.get(), 100ms, &closed);
      if (closed) break;
    }
    CHECK(closed);
    CHECK(Clock::now() - t0 < 1500ms);   // the deadline, not the 2.5 s the header would take
  }
  SECTION("slow body after a quick header") {
    auto fd = connect_to("127.0.0.1", p.port);
    send_all(fd.get(), "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\n\r\n");
    for (char c : std::string("slow-payload")) {   // 12 bytes over 1.2 s: 3× the header limit
      std::this_thread::sleep_for(100ms);
      send_all(fd.get(), std::string(1, c));
    }
    std::string r = read_until_close(fd.get(), 2s);
    CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(r.find("got slow-payload") != std::string::npos);
  }
  SECTION("idle keep-alive connection closed after the idle limit") {
    auto fd = connect_to("127.0.0.1", p.port);
    send_all(fd.get(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    bool closed = false;
    std::string r = read_until_close(fd.get(), 2s, &closed);
    CHECK(r.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(closed);
  }
}

TEST_CASE("HttpServer listens on [::1], ::1 and the dual-stack wildcard", "[server][listener]") {
  {
    Plain p({}, "[::1]");
    CHECK(p.srv.address() == "[::1]:" + std::to_string(p.port));
    CHECK(get("::1", p.port, "/healthz").rfind("HTTP/1.1 200", 0) == 0);
  }
  {
    Plain p({}, "::1");
    CHECK(get("::1", p.port, "/healthz").rfind("HTTP/1.1 200", 0) == 0);
  }
  {
    Plain p({}, "");
    CHECK(p.srv.address() == "[::]:" + std::to_string(p.port));
    CHECK(get("::1", p.port, "/healthz").rfind("HTTP/1.1 200", 0) == 0);
    CHECK(get("127.0.0.1", p.port, "/healthz").rfind("HTTP/1.1 200", 0) == 0);
  }
}

TEST_CASE("open_listener: SO_REUSEADDR, but a live listener still blocks the port", "[server][listener]") {
  auto fd = server::open_listener("127.0.0.1", 0);
  REQUIRE(fd);
  util::Fd guard(*fd);
  int yes = 0;
  socklen_t len = sizeof yes;
  ::getsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &yes, &len);
  CHECK(yes == 1);
  auto port = server::bound_address(*fd).substr(std::string("127.0.0.1:").size());
  auto again = server::open_listener("127.0.0.1", static_cast<uint16_t>(std::stoi(port)));
  REQUIRE_FALSE(again);
  CHECK(again.error().what().find("cannot listen on 127.0.0.1:" + port) != std::string::npos);
}

TEST_CASE("MetricsServer answers over HTTPS on [::1]", "[server][metrics][listener]") {
  pipeline::ProgressState progress;
  progress.total_read = 100;
  progress.bytes_read = 40;
  server::MetricsOptions mo;
  mo.address = "::1";
  mo.port = 0;
  mo.owner_uid = "uid-6";
  mo.progress = &progress;
  auto m = server::MetricsServer::start(mo);
  REQUIRE(m);
  httplib::SSLClient cli("::1", (*m)->port());
  cli.enable_server_certificate_verification(false);
  cli.set_connection_timeout(2, 0);
  auto res = cli.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("kubevirt_cdi_import_progress_total{ownerUID=\"uid-6\"} 40\n") != std::string::npos);
}

TEST_CASE("map_tls_ciphers: CDI's profiles, IANA/Go names, junk", "[server][tls]") {
  using server::map_tls_ciphers;
  SECTION("Modern: TLS 1.3 names only → ciphersuites") {
    auto c = map_tls_ciphers(k_modern);
    CHECK(c.ciphersuites == k_tls13);
    CHECK(c.cipher_list.empty());
    CHECK(c.warnings.empty());
  }
  SECTION("Intermediate: every name known") {
    auto c = map_tls_ciphers(k_intermediate);
    CHECK(c.ciphersuites == k_tls13);
    CHECK(c.cipher_list ==
          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
          "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
          "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384");
    CHECK(c.warnings.empty());
  }
  SECTION("Old: 26 TLS <= 1.2 names kept; DES-CBC3-SHA only if this OpenSSL has it") {
    auto c = map_tls_ciphers(k_old);
    CHECK(c.ciphersuites == k_tls13);
    CHECK(c.cipher_list.find("ECDHE-RSA-AES128-SHA:") != std::string::npos);
    CHECK(c.cipher_list.find("AES256-SHA") != std::string::npos);
    size_t n = static_cast<size_t>(std::count(c.cipher_list.begin(), c.cipher_list.end(), ':')) + 1;
    if (c.cipher_list.find("DES-CBC3-SHA") != std::string::npos) {
      CHECK(n == 26);
      CHECK(c.warnings.empty());
    } else {
      CHECK(n == 25);
      REQUIRE(c.warnings.size() == 1);
      CHECK(c.warnings[0] == "TLS_CIPHERS: unknown cipher 'DES-CBC3-SHA' skipped");
    }
  }
  SECTION("IANA / Go spellings map to OpenSSL's, duplicates dropped") {
    auto c = map_tls_ciphers(
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, ECDHE-RSA-AES128-GCM-SHA256,TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,"
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_CBC_SHA");
    CHECK(c.cipher_list ==
          "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:AES128-SHA");
    CHECK(c.warnings.empty());
  }
  SECTION("Custom with junk: junk skipped with a warning each") {
    auto c = map_tls_ciphers("no-such-cipher,ECDHE-RSA-AES256-GCM-SHA384,TLS_FAKE_WITH_NOTHING,,");
    CHECK(c.cipher_list == "ECDHE-RSA-AES256-GCM-SHA384");
    REQUIRE(c.warnings.size() == 2);
    CHECK(c.warnings[0] == "TLS_CIPHERS: unknown cipher 'no-such-cipher' skipped");
    CHECK(c.warnings[1] == "TLS_CIPHERS: unknown cipher 'TLS_FAKE_WITH_NOTHING' skipped");
  }
  SECTION("only junk: defaults, said so") {
    auto c = map_tls_ciphers("junk");
    CHECK(c.cipher_list.empty());
    CHECK(c.ciphersuites.empty());
    REQUIRE(c.warnings.size() == 2);
    CHECK(c.warnings[1].find("using the OpenSSL defaults") != std::string::npos);
  }
  SECTION("empty: defaults, silently") {
    auto c = map_tls_ciphers("");
    CHECK(c.cipher_list.empty());
    CHECK(c.ciphersuites.empty());
    CHECK(c.warnings.empty());
  }
}

TEST_CASE("apply_tls_ciphers configures the context and never fails", "[server][tls]") {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  REQUIRE(ctx);
  auto w = server::apply_tls_ciphers(ctx.get(), server::map_tls_ciphers("TLS_AES_256_GCM_SHA384,ECDHE-RSA-AES128-GCM-SHA256,junk"));
  CHECK(w.size() == 1);
  auto names = ctx_ciphers(ctx.get());
  CHECK(has(names, "ECDHE-RSA-AES128-GCM-SHA256"));
  CHECK_FALSE(has(names, "ECDHE-RSA-AES256-GCM-SHA384"));
  CHECK(has(names, "TLS_AES_256_GCM_SHA384"));
  CHECK_FALSE(has(names, "TLS_AES_128_GCM_SHA256"));

  // Modern: TLS <= 1.2 defaults stay, no warning.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> modern(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  CHECK(server::apply_tls_ciphers(modern.get(), server::map_tls_ciphers(k_modern)).empty());
  CHECK(has(ctx_ciphers(modern.get()), "TLS_CHACHA20_POLY1305_SHA256"));
}
