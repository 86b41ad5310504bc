// SPDX-License-Identifier: Apache-2.0
// http::small_request (lib/source/http_util) against an in-process cpp-httplib server on
// 127.0.0.1: headers both ways, method and body, the reply cap (Errc::limit), statuses as
// replies, redirects only when asked, the cancel token and transport failures (Errc::network).
#include <curl/curl.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <httplib.h>
#include <string>
#include <thread>

#include "lib/source/http_util.hpp"

using namespace cdi;
using namespace cdi::source::http;

namespace {

class LocalServer {
 public:
  LocalServer() {
    m_svr.Get("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Reply", "yes");
      res.set_content("agent=" + req.get_header_value("User-Agent") + " x=" + req.get_header_value("X-Test"),
                      "text/plain");
    });
    m_svr.Post("/post", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.method + " " + req.get_header_value("Content-Type") + " " + req.body, "text/plain");
    });
    m_svr.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(100000, 'b'), "application/octet-stream");
    });
    m_svr.Get("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("{\"kind\":\"Status\"}", "application/json");
    });
    m_svr.Get("/redirect", [](const httplib::Request&, httplib::Response& res) { res.set_redirect("/echo"); });
    m_svr.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3000));
      res.set_content("late", "text/plain");
    });
    m_port = m_svr.bind_to_any_port("127.0.0.1");
    REQUIRE(m_port > 0);
    m_thread = std::thread([this] { m_svr.listen_after_bind(); });
    for (int i = 0; i < 500 && !m_svr.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    REQUIRE(m_svr.is_running());
  }
  ~LocalServer() {
    m_svr.stop();
    m_thread.join();
  }
  std::string url(std::string_view path) const { return "http://127.0.0.1:" + std::to_string(m_port) + std::string(path); }

 private:
  httplib::Server m_svr;
  int m_port = 0;
  std::thread m_thread;
};

SmallRequest request(std::string url) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  SmallRequest req;
  req.url = std::move(url);
  req.use_proxy_env = false;
  req.connect_timeout = std::chrono::seconds(5);
  req.total_timeout = std::chrono::seconds(20);
  return req;
}

}  // namespace

TEST_CASE("small_request: headers both ways, default user agent", "[http_util][small_request]") {
  LocalServer s;
  auto req = request(s.url("/echo"));
  req.headers = {"X-Test: 42"};
  auto r = small_request(req);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "agent=cdi-import/" CDI_VERSION " x=42");
  CHECK(r->headers.get("x-reply") == "yes");
  req.user_agent = "cdi-source-update-poller/1";
  CHECK(small_request(req)->body == "agent=cdi-source-update-poller/1 x=42");
}

TEST_CASE("small_request: method and body", "[http_util][small_request]") {
  LocalServer s;
  auto req = request(s.url("/post"));
  req.method = "POST";
  req.headers = {"Content-Type: application/json", "Expect:"};
  req.body = "{\"a\":1}";
  auto r = small_request(req);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "POST application/json {\"a\":1}");
}

TEST_CASE("small_request: a reply over max_body is Errc::limit, at the cap it is whole", "[http_util][small_request]") {
  LocalServer s;
  auto req = request(s.url("/big"));
  req.max_body = 99999;
  auto r = small_request(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::limit);
  req.max_body = 100000;
  r = small_request(req);
  REQUIRE(r);
  CHECK(r->body == std::string(100000, 'b'));
}

TEST_CASE("small_request: statuses are replies; redirects only when asked", "[http_util][small_request]") {
  LocalServer s;
  auto r = small_request(request(s.url("/missing")));
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->body == "{\"kind\":\"Status\"}");
  auto req = request(s.url("/redirect"));
  r = small_request(req);
  REQUIRE(r);
  CHECK(r->status == 302);
  req.follow_redirects = true;
  r = small_request(req);
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->headers.get("X-Reply") == "yes");   // the headers of the last response
}

TEST_CASE("small_request: transport failures and timeouts are Errc::network", "[http_util][small_request]") {
  std::string closed;
  {
    LocalServer s;
    closed = s.url("/echo");
  }
  TransportFailure why;
  auto r = small_request(request(closed), &why);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::network);
  CHECK(why.kind == TransportFailure::Kind::other);
  CHECK_FALSE(why.message.empty());
  CHECK(r.error().message() == why.message);

  LocalServer s;
  auto req = request(s.url("/slow"));
  req.total_timeout = std::chrono::milliseconds(300);
  r = small_request(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::network);
}

TEST_CASE("small_request: a set cancel token aborts the transfer", "[http_util][small_request]") {
  LocalServer s;
  util::CancelToken cancel;
  cancel.cancel();
  auto req = request(s.url("/slow"));
  req.cancel = &cancel;
  auto t0 = std::chrono::steady_clock::now();
  auto r = small_request(req);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::network);   // callers check their token after the call
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(2500));   // before the reply
}
