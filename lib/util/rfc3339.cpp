// SPDX-License-Identifier: Apache-2.0
#include "lib/util/rfc3339.hpp"

#include <cstdint>
#include <optional>

namespace cdi::util {

namespace {

bool digit(std::string_view s, size_t i) { return i < s.size() && s[i] >= '0' && s[i] <= '9'; }

// Exactly `n` digits at s[i...]; advances i.
std::optional<int> fixed(std::string_view s, size_t& i, size_t n) {
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (!digit(s, i + k)) return std::nullopt;
    v = v * 10 + (s[i + k] - '0');
  }
  i += n;
  return v;
}

bool literal(std::string_view s, size_t& i, char c) {
  if (i >= s.size() || s[i] != c) return false;
  ++i;
  return true;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in(int month, int year) {
  static constexpr int k_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && leap(year) ? 29 : k_days[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view s) {
  auto bad = [] { return fail(Errc::invalid_argument, "not an RFC 3339 time"); };
  size_t i = 0;
  auto year = fixed(s, i, 4);
  if (!year || !literal(s, i, '-')) return bad();
  auto month = fixed(s, i, 2);
  if (!month || *month < 1 || *month > 12 || !literal(s, i, '-')) return bad();
  auto day = fixed(s, i, 2);
  if (!day || !literal(s, i, 'T')) return bad();
  if (!digit(s, i)) return bad();
  int hour = s[i++] - '0';
  if (digit(s, i)) hour = hour * 10 + (s[i++] - '0');
  if (hour > 23 || !literal(s, i, ':')) return bad();
  auto minute = fixed(s, i, 2);
  if (!minute || *minute > 59 || !literal(s, i, ':')) return bad();
  auto second = fixed(s, i, 2);
  if (!second || *second > 59) return bad();
  if (*day < 1 || *day > days_in(*month, *year)) return bad();

  int64_t nanos = 0;
  if (i + 1 < s.size() && (s[i] == '.' || s[i] == ',') && digit(s, i + 1)) {
    ++i;
    int digits = 0;
    while (digit(s, i)) {
      if (digits < 9) {
        nanos = nanos * 10 + (s[i] - '0');
        ++digits;
      }
      ++i;
    }
    for (; digits < 9; ++digits) nanos *= 10;
  }

  int64_t offset = 0;
  if (literal(s, i, 'Z')) {
    // UTC
  } else {
    if (i >= s.size() || (s[i] != '+' && s[i] != '-')) return bad();
    int sign = s[i++] == '-' ? -1 : 1;
    auto oh = fixed(s, i, 2);
    if (!oh || !literal(s, i, ':')) return bad();
    auto om = fixed(s, i, 2);
    if (!om || *oh > 24 || *om > 60) return bad();
    offset = sign * (*oh * 3600 + *om * 60);
  }
  if (i != s.size()) return bad();

  int64_t secs = days_from_civil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day)) * 86400 +
                 hour * 3600 + *minute * 60 + *second - offset;
  // Go's range (years 0000..9999) is wider than system_clock's (about 1678..2262 with
  // nanoseconds): saturate, so a far deadline stays far and an ancient one has passed.
  using Clock = std::chrono::system_clock;
  constexpr int64_t k_max_secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::max()).count() - 1;
  constexpr int64_t k_min_secs = std::chrono::duration_cast<std::chrono::seconds>(Clock::duration::min()).count() + 1;
  if (secs > k_max_secs) return Clock::time_point::max();
  if (secs < k_min_secs) return Clock::time_point::min();
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(secs)) +
                           std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(nanos)));
}

}  // namespace cdi::util
