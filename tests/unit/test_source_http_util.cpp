// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <map>

#include "lib/source/http_util.hpp"

using namespace cdi;
using namespace cdi::source::http;

TEST_CASE("origin_of fills default ports and lower-cases", "[http]") {
  auto a = origin_of("HTTPS://Example.COM/disk.img");
  REQUIRE(a);
  CHECK(a->scheme == "https");
  CHECK(a->host == "example.com");
  CHECK(a->port == 443);
  auto b = origin_of("http://127.0.0.1:8080/x?y=1");
  REQUIRE(b);
  CHECK(b->port == 8080);
  CHECK(origin_of("http://[::1]:81/")->host == "::1");
  CHECK(*origin_of("http://example.com/") == *origin_of("http://example.com:80/a/b"));
  CHECK_FALSE(*origin_of("http://example.com/") == *origin_of("https://example.com/"));
  CHECK_FALSE(*origin_of("http://127.0.0.1:80/") == *origin_of("http://localhost:80/"));
}

TEST_CASE("origin_of refuses other schemes and credentials in the URL", "[http]") {
  CHECK(origin_of("ftp://example.com/x").error().code() == Errc::invalid_argument);
  CHECK(origin_of("not a url").error().code() == Errc::invalid_argument);
  auto e = origin_of("https://user:pw@example.com/x");
  REQUIRE_FALSE(e);
  CHECK(e.error().what_with_hint().find("--password-file") != std::string::npos);   // the CLI's hint
  CHECK(e.error().what().find("--") == std::string::npos);   // the message itself names no flag
  CHECK(e.error().message().find("pw@") == std::string::npos);   // the secret is not echoed
}

TEST_CASE("resolve_location handles absolute, relative and scheme-relative targets", "[http]") {
  CHECK(*resolve_location("http://a.test/dir/disk.img", "/other/x.img") == "http://a.test/other/x.img");
  CHECK(*resolve_location("http://a.test/dir/disk.img", "x.img") == "http://a.test/dir/x.img");
  CHECK(*resolve_location("http://a.test/dir/disk.img", "../up.img?sig=1") == "http://a.test/up.img?sig=1");
  CHECK(*resolve_location("https://a.test/d", "//b.test:8443/e") == "https://b.test:8443/e");
  CHECK(*resolve_location("https://a.test/d", "http://c.test/f#frag") == "http://c.test/f");
  CHECK(resolve_location("https://a.test/d", "ftp://c.test/f").error().code() == Errc::invalid_argument);
  CHECK(resolve_location("https://a.test/d", "").error().code() == Errc::invalid_argument);
}

TEST_CASE("redact_url hides query strings", "[http]") {
  CHECK(redact_url("https://s3.test/b/k?X-Amz-Signature=abc") == "https://s3.test/b/k?…");
  CHECK(redact_url("http://a/b") == "http://a/b");
  CHECK(redact_url("http://u:secret@a:81/b@c") == "http://a:81/b@c");
}

TEST_CASE("split_header parses response header lines", "[http]") {
  auto h = split_header("Content-Length:  1234 \r\n");
  REQUIRE(h);
  CHECK(h->first == "Content-Length");
  CHECK(h->second == "1234");
  CHECK(split_header("HTTP/1.1 200 OK\r\n") == std::nullopt);
  CHECK(split_header("\r\n") == std::nullopt);
  CHECK(split_header(" folded continuation\r\n") == std::nullopt);
  CHECK(split_header("X-Empty:\r\n")->second.empty());
}

TEST_CASE("check_extra_header validates user headers without echoing values", "[http]") {
  CHECK(*check_extra_header("X-Test:   hello world\n") == "X-Test: hello world");
  CHECK(*check_extra_header("Authorization: Bearer abc") == "Authorization: Bearer abc");
  CHECK(check_extra_header("NoColon").error().code() == Errc::invalid_argument);
  CHECK(check_extra_header(": value").error().code() == Errc::invalid_argument);
  CHECK(check_extra_header("Bad Name: v").error().code() == Errc::invalid_argument);
  auto e = check_extra_header("X-A: secret\r\nX-Injected: 1");
  REQUIRE_FALSE(e);
  CHECK(e.error().what().find("secret") == std::string::npos);
  CHECK(check_extra_header("Range: bytes=0-").error().code() == Errc::invalid_argument);
  CHECK(check_extra_header("host: evil").error().code() == Errc::invalid_argument);
  CHECK(check_extra_header(std::string("X-A: a\0b", 8)).error().code() == Errc::invalid_argument);
}

TEST_CASE("Headers lookup is case-insensitive and the last one wins", "[http]") {
  Headers h;
  h.add("ETag", "\"1\"");
  h.add("etag", "\"2\"");
  CHECK(*h.get("ETAG") == "\"2\"");
  CHECK(h.get("Missing") == std::nullopt);
  h.clear();
  CHECK(h.get("etag") == std::nullopt);
}

TEST_CASE("parse_content_range", "[http]") {
  auto r = parse_content_range("bytes 100-199/1000");
  REQUIRE(r);
  CHECK(r->first == 100);
  CHECK(r->last == 199);
  CHECK(*r->total == 1000);
  auto star = parse_content_range("bytes 0-9/*");
  REQUIRE(star);
  CHECK_FALSE(star->total);
  CHECK(parse_content_range("bytes 10-9/100") == std::nullopt);
  CHECK(parse_content_range("bytes 0-100/100") == std::nullopt);   // last beyond the total
  CHECK(parse_content_range("bytes */100") == std::nullopt);
  CHECK(parse_content_range("items 0-1/2") == std::nullopt);
  CHECK(parse_content_range("bytes 0-1/2x") == std::nullopt);
  CHECK(parse_content_range("bytes -1-2/3") == std::nullopt);
  CHECK(parse_content_range("bytes 0-18446744073709551615/1") == std::nullopt);
}

TEST_CASE("parse_content_length", "[http]") {
  CHECK(*parse_content_length(" 42 ") == 42);
  CHECK(parse_content_length("-1") == std::nullopt);
  CHECK(parse_content_length("12a") == std::nullopt);
  CHECK(parse_content_length("") == std::nullopt);
}

TEST_CASE("parse_retry_after: seconds and HTTP dates", "[http]") {
  auto now = std::chrono::system_clock::from_time_t(1700000000);   // Tue, 14 Nov 2023 22:13:20 GMT
  CHECK(*parse_retry_after("5", now) == std::chrono::seconds(5));
  CHECK(*parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == std::chrono::seconds(30));
  CHECK(*parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == std::chrono::seconds(0));
  CHECK(parse_retry_after("soon", now) == std::nullopt);
  CHECK(parse_retry_after("-3", now) == std::nullopt);
}

TEST_CASE("HTML error page detection", "[http]") {
  CHECK(is_html_content_type("text/html; charset=utf-8"));
  CHECK(is_html_content_type("TEXT/HTML"));
  CHECK(is_html_content_type("application/xhtml+xml"));
  CHECK_FALSE(is_html_content_type("application/octet-stream"));
  CHECK_FALSE(is_html_content_type("text/plain"));
  CHECK(looks_like_html("\xEF\xBB\xBF  \n<!DOCTYPE html>"));
  CHECK(looks_like_html("<html>"));
  CHECK_FALSE(looks_like_html("QFI\xfb"));
  CHECK_FALSE(looks_like_html(""));
}

TEST_CASE("if_range_validator prefers a strong ETag", "[http]") {
  Headers h;
  CHECK(if_range_validator(h) == std::nullopt);
  h.add("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT");
  CHECK(*if_range_validator(h) == "Tue, 14 Nov 2023 22:13:20 GMT");
  h.add("ETag", "W/\"weak\"");
  CHECK(*if_range_validator(h) == "Tue, 14 Nov 2023 22:13:20 GMT");   // weak ETags are not allowed in If-Range
  h.add("ETag", "\"strong\"");
  CHECK(*if_range_validator(h) == "\"strong\"");
}

TEST_CASE("status helpers", "[http]") {
  CHECK(reason_phrase(404) == "Not Found");
  CHECK(reason_phrase(299).empty());
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) CHECK(is_retryable_status(s));
  for (long s : {400L, 401L, 403L, 404L, 410L, 416L, 501L, 505L}) CHECK_FALSE(is_retryable_status(s));
}

TEST_CASE("proxy settings from the environment, Go's order", "[http_util]") {
  std::map<std::string, std::string> env = {{"HTTP_PROXY", "http://upper:3128"}, {"http_proxy", "http://lower:3128"},
                                            {"https_proxy", "http://u:p@lower-tls:3128"}, {"no_proxy", "10.0.0.0/8,.svc"}};
  auto get = [&](const char* n) -> const char* {
    auto it = env.find(n);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  auto e = cdi::source::http::proxy_env_from(get);
  CHECK(e.http == "http://upper:3128");   // upper case first, as Go's httpproxy.FromEnvironment
  CHECK(e.https == "http://u:p@lower-tls:3128");
  CHECK(e.no_proxy == "10.0.0.0/8,.svc");
  CHECK(cdi::source::http::proxy_for(e, "http") == "http://upper:3128");
  CHECK(cdi::source::http::proxy_for(e, "https") == "http://u:p@lower-tls:3128");
  env = {{"HTTP_PROXY", ""}, {"http_proxy", "http://lower:3128"}};   // empty counts as unset
  e = cdi::source::http::proxy_env_from(get);
  CHECK(e.http == "http://lower:3128");
  CHECK(e.https.empty());
  CHECK(cdi::source::http::proxy_for(e, "https").empty());
  CHECK(cdi::source::http::redact_url("http://u:p@proxy:3128") == "http://proxy:3128");
}

TEST_CASE("error body excerpts name the server's words", "[http_util]") {
  using cdi::source::http::error_body_excerpt;
  CHECK(error_body_excerpt("<html>\r\n<head><title>400 No required SSL certificate was sent</title></head>\r\n"
                           "<body><center><h1>400 Bad Request</h1></center></body></html>", 400) ==
        "400 No required SSL certificate was sent");
  CHECK(error_body_excerpt("<html><head><title>404 Not Found</title></head><body>x</body></html>", 404).empty());
  CHECK(error_body_excerpt("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>", 403) ==
        "AccessDenied Request has expired");
  CHECK(error_body_excerpt("plain\ttext\x01 reply\n", 500) == "plain text reply");
  CHECK(error_body_excerpt("", 500).empty());
  CHECK(error_body_excerpt(std::string(1000, 'x'), 500).size() == 160);
}
