// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/pod/image_server.hpp"

using namespace cdi;
using Kind = pod::RangeDecision::Kind;

TEST_CASE("ServerInfo JSON as Go's encoder writes it", "[pod][imageserver]") {
  CHECK(pod::server_info_json({}) == "{}\n");
  CHECK(pod::server_info_json({"A=1", "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small"}) ==
        "{\"env\":[\"A=1\",\"INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small\"]}\n");
  CHECK(pod::go_json_string("a\"b\\c\n\t<>&\x01") == R"("a\"b\\c\n\t\u003c\u003e\u0026\u0001")");
  CHECK(pod::go_json_string("caf\xc3\xa9 \xff \xe2\x80\xa8") == "\"caf\xc3\xa9 \\ufffd \\u2028\"");
}

TEST_CASE("Range decisions follow Go's http.ServeContent", "[pod][imageserver]") {
  auto d = pod::decide_range("", 100);
  CHECK(d.kind == Kind::full);
  d = pod::decide_range("bytes=10-19", 100);
  CHECK((d.kind == Kind::partial && d.first == 10 && d.length == 10));
  d = pod::decide_range("bytes=90-", 100);
  CHECK((d.kind == Kind::partial && d.first == 90 && d.length == 10));
  d = pod::decide_range("bytes=-30", 100);
  CHECK((d.kind == Kind::partial && d.first == 70 && d.length == 30));
  d = pod::decide_range("bytes=-300", 100);
  CHECK((d.kind == Kind::partial && d.first == 0 && d.length == 100));
  d = pod::decide_range("bytes=50-1000", 100);
  CHECK((d.kind == Kind::partial && d.first == 50 && d.length == 50));
  d = pod::decide_range("bytes=100-", 100);
  CHECK((d.kind == Kind::unsatisfiable && d.no_overlap));
  d = pod::decide_range("bytes=20-10", 100);
  CHECK((d.kind == Kind::unsatisfiable && !d.no_overlap));
  d = pod::decide_range("items=1-2", 100);
  CHECK((d.kind == Kind::unsatisfiable && !d.no_overlap));
  d = pod::decide_range("bytes=0-1,5-6", 100);   // several ranges: the whole file
  CHECK(d.kind == Kind::full);
  d = pod::decide_range("bytes=0-1, 200-", 100);   // the non-overlapping one is dropped
  CHECK((d.kind == Kind::partial && d.first == 0 && d.length == 2));
}

TEST_CASE("HTTP dates, paths, content types", "[pod][imageserver]") {
  CHECK(pod::http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(pod::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == std::optional<std::time_t>(784111777));
  CHECK(pod::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == std::optional<std::time_t>(784111777));
  CHECK(pod::parse_http_date("Sun Nov  6 08:49:37 1994") == std::optional<std::time_t>(784111777));
  CHECK_FALSE(pod::parse_http_date("yesterday"));
  CHECK(pod::clean_url_path("/a/../b//c/") == "/b/c");
  CHECK(pod::clean_url_path("/../../etc/passwd") == "/etc/passwd");
  CHECK(pod::clean_url_path("") == "/");
  CHECK(pod::percent_decode("/disk%20a.img") == std::optional<std::string>("/disk a.img"));
  CHECK_FALSE(pod::percent_decode("/bad%2"));
  CHECK_FALSE(pod::percent_decode("/bad%zz"));
  CHECK(pod::content_type_for("disk.img", std::string("QFI\xfb\0\0\0\3", 8)) == "application/octet-stream");
  CHECK(pod::content_type_for("disk.img", "\x1f\x8b\x08rest") == "application/x-gzip");
  CHECK(pod::content_type_for("notes", "hello world\n") == "text/plain; charset=utf-8");
  CHECK(pod::content_type_for("x.JSON", "") == "application/json");
}
