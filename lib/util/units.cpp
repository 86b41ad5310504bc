// SPDX-License-Identifier: Apache-2.0
#include "lib/util/units.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cmath>
#include <cstdio>

namespace cdi::util {
namespace {

struct Suffix {
  std::string_view text;
  long double factor;
};

// Kubernetes quantity suffixes (binary SI and decimal SI). "m" (milli) makes no sense for bytes
// but is a valid quantity; it is accepted and rounded up like Quantity.Value().
constexpr std::array<Suffix, 15> k_suffixes{{
    {"Ki", 1024.0L},
    {"Mi", 1024.0L * 1024},
    {"Gi", 1024.0L * 1024 * 1024},
    {"Ti", 1024.0L * 1024 * 1024 * 1024},
    {"Pi", 1024.0L * 1024 * 1024 * 1024 * 1024},
    {"Ei", 1024.0L * 1024 * 1024 * 1024 * 1024 * 1024},
    {"n", 1e-9L},
    {"u", 1e-6L},
    {"m", 1e-3L},
    {"k", 1e3L},
    {"M", 1e6L},
    {"G", 1e9L},
    {"T", 1e12L},
    {"P", 1e15L},
    {"E", 1e18L},
}};

}  // namespace

Result<uint64_t> parse_quantity(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return fail(Errc::invalid_argument,
                "invalid size quantity '" + std::string(text) + "': " + std::string(why));
  };
  if (text.empty()) return bad("empty");
  size_t i = 0;
  if (text[0] == '+') i = 1;
  if (i < text.size() && text[i] == '-') return bad("negative");
  // mantissa: digits [. digits]
  size_t start = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string mantissa(text.substr(start, i - start));
  if (mantissa.empty() || mantissa == "." || std::count(mantissa.begin(), mantissa.end(), '.') > 1)
    return bad("expected a number");
  long double value = std::strtold(mantissa.c_str(), nullptr);
  std::string_view rest = text.substr(i);
  long double factor = 1.0L;
  if (!rest.empty()) {
    if (rest[0] == 'e' || rest[0] == 'E') {
      // decimal exponent: 1e9, 5E3
      std::string exp(rest.substr(1));
      if (exp.empty()) return bad("empty exponent");
      size_t j = 0;
      if (exp[0] == '+' || exp[0] == '-') j = 1;
      if (j >= exp.size()) return bad("empty exponent");
      for (size_t k = j; k < exp.size(); ++k)
        if (!std::isdigit(static_cast<unsigned char>(exp[k]))) return bad("bad exponent");
      factor = std::pow(10.0L, std::strtold(exp.c_str(), nullptr));
    } else {
      bool found = false;
      for (const auto& s : k_suffixes) {
        if (rest == s.text) {
          factor = s.factor;
          found = true;
          break;
        }
      }
      if (!found) return bad("unknown suffix '" + std::string(rest) + "'");
    }
  }
  long double bytes = std::ceil(value * factor - 1e-9L);
  if (bytes < 0) bytes = 0;
  if (!(bytes < 18446744073709551615.0L)) return bad("too large");
  return static_cast<uint64_t>(bytes);
}

std::string format_bytes(uint64_t bytes) {
  static constexpr std::array<const char*, 6> units{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t u = 0;
  v /= 1024.0;
  while (v >= 1024.0 && u + 1 < units.size()) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string format_duration(double seconds) {
  char buf[32];
  if (seconds < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  } else if (seconds < 3600) {
    auto s = static_cast<long>(seconds);
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  } else {
    auto s = static_cast<long>(seconds);
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  }
  return buf;
}

}  // namespace cdi::util
