// SPDX-License-Identifier: Apache-2.0
// RFC 3339 times as Go's time.Parse(time.RFC3339, s) accepts them (CDI parses DEADLINE so):
//   YYYY-MM-DDTHH:MM:SS[.frac]Z   or   …[.frac]±hh:mm
// - 'T' and 'Z' upper case only; the date is checked against the month (Feb 29 only in leap years);
// - the hour may have one digit ("T5:04:05", Go's layout parser allows it); 0..23;
//   minutes and seconds two digits, 0..59 (no leap second 60, as Go);
// - a fraction of one or more digits after '.' or ',' (Go ≥ 1.17), digits beyond 9 ignored;
// - an offset of two-digit hours ≤ 24 and minutes ≤ 60 (Go's layout parser allows +24:00);
// - nothing after the zone.
// Years beyond system_clock's range (about 1678..2262) saturate to its min() / max().
#pragma once

#include <chrono>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::util {

// Errors: invalid_argument ("not an RFC 3339 time").
Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

}  // namespace cdi::util
