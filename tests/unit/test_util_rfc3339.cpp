// SPDX-License-Identifier: Apache-2.0
// util::parse_rfc3339 accepts what Go's time.Parse(time.RFC3339, s) accepts (CDI's DEADLINE),
// with Go's edge cases: fractions (either separator, any length), offsets, one-digit hours,
// day-of-month and range checks, case, and trailing text.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "lib/util/rfc3339.hpp"

using namespace cdi;
using Clock = std::chrono::system_clock;

namespace {

int64_t unix_ns(std::string_view s) {
  auto t = util::parse_rfc3339(s);
  REQUIRE(t.has_value());
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t->time_since_epoch()).count();
}
constexpr int64_t k_s = 1'000'000'000;

}  // namespace

TEST_CASE("RFC 3339: accepted forms and their instants", "[util][rfc3339]") {
  CHECK(unix_ns("2006-01-02T15:04:05Z") == 1136214245 * k_s);
  CHECK(unix_ns("2006-01-02T15:04:05+07:00") == (1136214245 - 7 * 3600) * k_s);
  CHECK(unix_ns("2006-01-02T15:04:05-07:00") == (1136214245 + 7 * 3600) * k_s);
  CHECK(unix_ns("2006-01-02T15:04:05+00:00") == 1136214245 * k_s);
  CHECK(unix_ns("2006-01-02T15:04:05-00:00") == 1136214245 * k_s);
  CHECK(unix_ns("2030-01-02T05:04:05+02:00") == 1893553445 * k_s);
  CHECK(unix_ns("1970-01-01T00:00:00Z") == 0);
  CHECK(unix_ns("1969-12-31T23:59:59Z") == -1 * k_s);
  CHECK(unix_ns("2000-02-29T00:00:00Z") == 951782400 * k_s);   // leap year (divisible by 400)
  CHECK(unix_ns("2004-02-29T12:00:00Z") == 1078056000 * k_s);
  CHECK(unix_ns("2006-12-31T23:59:59Z") == 1167609599 * k_s);
}

TEST_CASE("RFC 3339: fractional seconds as Go reads them", "[util][rfc3339]") {
  CHECK(unix_ns("2006-01-02T15:04:05.1Z") == 1136214245 * k_s + 100'000'000);
  CHECK(unix_ns("2006-01-02T15:04:05.123456789Z") == 1136214245 * k_s + 123'456'789);
  CHECK(unix_ns("2006-01-02T15:04:05.000000001Z") == 1136214245 * k_s + 1);
  // More than nine digits: the rest is ignored (Go truncates to nanoseconds).
  CHECK(unix_ns("2006-01-02T15:04:05.1234567891234Z") == 1136214245 * k_s + 123'456'789);
  // A comma separator (Go >= 1.17 accepts it in time.Parse).
  CHECK(unix_ns("2006-01-02T15:04:05,5Z") == 1136214245 * k_s + 500'000'000);
  CHECK(unix_ns("2006-01-02T15:04:05.5+01:00") == (1136214245 - 3600) * k_s + 500'000'000);
}

TEST_CASE("RFC 3339: Go's layout parser leniencies", "[util][rfc3339]") {
  // One-digit hour (golang/go#54580: time.Parse accepts it, only UnmarshalText refuses).
  CHECK(unix_ns("2006-01-02T5:04:05Z") == (1136214245 - 10 * 3600) * k_s);
  // Offset hours up to 24 and minutes up to 60 ("some people do write offsets of 24 hours").
  CHECK(unix_ns("2006-01-02T15:04:05+24:00") == (1136214245 - 24 * 3600) * k_s);
  CHECK(unix_ns("2006-01-02T15:04:05-01:60") == (1136214245 + 2 * 3600) * k_s);
}

TEST_CASE("RFC 3339: years outside system_clock's range saturate", "[util][rfc3339]") {
  CHECK(util::parse_rfc3339("9999-12-31T23:59:59Z").value() == Clock::time_point::max());
  CHECK(util::parse_rfc3339("0000-01-01T00:00:00Z").value() == Clock::time_point::min());
}

TEST_CASE("RFC 3339: what Go refuses is refused", "[util][rfc3339]") {
  for (std::string bad : {
           "",
           "tomorrow",
           "2006-01-02",                       // no time
           "2006-01-02T15:04:05",              // no zone
           "2006-01-02 15:04:05Z",             // space instead of T
           "2006-01-02t15:04:05Z",             // lower-case t
           "2006-01-02T15:04:05z",             // lower-case z
           "2006-01-02T15:04:05ZZ",            // trailing text
           "2006-01-02T15:04:05Z ",
           " 2006-01-02T15:04:05Z",
           "2006-01-02T15:04:05.Z",            // a separator without digits
           "2006-01-02T15:04:05.+01:00",
           "2006-01-02T15:04:05+07",           // short zone
           "2006-01-02T15:04:05+0700",         // no colon
           "2006-01-02T15:04:05+7:00",
           "2006-01-02T15:04:05 +07:00",
           "2006-01-02T15:04:05+25:00",        // offset hour out of range
           "2006-01-02T15:04:05+07:61",        // offset minute out of range
           "2006-01-02T15:04:05UTC",
           "2006-01-02T24:00:00Z",             // hour out of range
           "2006-01-02T15:60:05Z",             // minute out of range
           "2006-01-02T15:04:60Z",             // no leap second in Go
           "2006-01-02T15:4:05Z",              // minutes need two digits
           "2006-01-02T15:04:5Z",
           "2006-00-02T15:04:05Z",             // month out of range
           "2006-13-02T15:04:05Z",
           "2006-1-02T15:04:05Z",
           "2006-01-2T15:04:05Z",
           "2006-01-00T15:04:05Z",             // day out of range
           "2006-01-32T15:04:05Z",
           "2006-02-29T15:04:05Z",             // not a leap year
           "2100-02-29T15:04:05Z",             // divisible by 100, not by 400
           "2006-04-31T15:04:05Z",
           "206-01-02T15:04:05Z",              // year needs four digits
           "+2006-01-02T15:04:05Z",
           "20060102T150405Z",                 // basic ISO 8601 format
       }) {
    INFO(bad);
    auto r = util::parse_rfc3339(bad);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code() == Errc::invalid_argument);
  }
}
