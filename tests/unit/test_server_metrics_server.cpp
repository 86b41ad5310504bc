// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <regex>

#include "lib/server/metrics_server.hpp"

using namespace cdi;

TEST_CASE("server::ProgressPercent is monotonic and ends at 100", "[server][metrics]") {
  pipeline::ProgressState p;
  server::ProgressPercent pct;
  CHECK(pct.update(p) == 0);
  p.total_read = 1000;
  p.bytes_read = 250;
  CHECK(pct.update(p) == Approx(25));
  p.bytes_read = 100;  // never goes back
  CHECK(pct.update(p) == Approx(25));
  p.bytes_read = 1000;
  CHECK(pct.update(p) == Approx(100));
  pipeline::ProgressState q;
  server::ProgressPercent pq;
  q.total_written = 400;
  q.bytes_written = 100;
  CHECK(pq.update(q) == Approx(25));
  q.phase = pipeline::Phase::done;
  CHECK(pq.update(q) == 100);
}

TEST_CASE("server::format_percent is plain decimal", "[server][metrics]") {
  CHECK(server::format_percent(0) == "0");
  CHECK(server::format_percent(100) == "100");
  CHECK(server::format_percent(42.5) == "42.5");
  CHECK(server::format_percent(0.00001) == "0");
  CHECK(server::format_percent(7.256) == "7.26");
}

TEST_CASE("server::MetricsServer renders what the controller's regex parses", "[server][metrics]") {
  pipeline::ProgressState p;
  p.total_read = 200;
  p.bytes_read = 50;
  server::MetricsOptions mo;
  mo.address = "127.0.0.1";
  mo.port = 0;
  mo.owner_uid = "uid-1";
  mo.progress = &p;
  auto m = server::MetricsServer::start(mo);
  REQUIRE(m);
  CHECK((*m)->port() != 0);
  std::string text = (*m)->render();
  std::smatch sm;
  REQUIRE(std::regex_search(text, sm, std::regex(R"(kubevirt_cdi_import_progress_total\{ownerUID="uid-1"\} (\d{1,3}\.?\d*))")));
  CHECK(sm[1] == "25");
  CHECK(text.find("cdi_import_read_bytes_total{ownerUID=\"uid-1\"} 50\n") != std::string::npos);
  CHECK(server::parse_listen("127.0.0.1:0").value() == std::pair<std::string, uint16_t>{"127.0.0.1", 0});
  CHECK(server::parse_listen(":8443").value().first == "0.0.0.0");
  CHECK(server::parse_listen("[::1]:9000").value().first == "::1");
  CHECK_FALSE(server::parse_listen("nope"));
  CHECK_FALSE(server::parse_listen("h:99999"));
}
