// SPDX-License-Identifier: Apache-2.0
// A tiny stand-in for std::format (not in g++ 12's libstdc++) for this folder's error messages.
// Supports "{}" (integers, strings), "{:#x}" (0x-prefixed hex) and "{:08x}" (8 zero-padded hex
// digits). Unknown specs print the value as "{}" would.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

namespace cdi::formats::qcow2 {

namespace detail {

template <class T>
std::string format_arg(std::string_view spec, const T& v) {
  if constexpr (std::is_integral_v<T>) {
    char buf[32];
    unsigned long long u = static_cast<unsigned long long>(v);
    if (spec == ":#x")
      std::snprintf(buf, sizeof buf, "%#llx", u);
    else if (spec == ":08x")
      std::snprintf(buf, sizeof buf, "%08llx", u);
    else if constexpr (std::is_signed_v<T>)
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else
      std::snprintf(buf, sizeof buf, "%llu", u);
    return buf;
  } else {
    return std::string(std::string_view(v));
  }
}

inline void format_rest(std::string& out, std::string_view f) { out += f; }

template <class T, class... Rest>
void format_rest(std::string& out, std::string_view f, const T& v, const Rest&... rest) {
  size_t open = f.find('{');
  size_t close = open == std::string_view::npos ? open : f.find('}', open);
  if (close == std::string_view::npos) {
    out += f;
    return;
  }
  out += f.substr(0, open);
  out += format_arg(f.substr(open + 1, close - open - 1), v);
  format_rest(out, f.substr(close + 1), rest...);
}

}  // namespace detail

template <class... Args>
std::string fmt(std::string_view f, const Args&... args) {
  std::string out;
  detail::format_rest(out, f, args...);
  return out;
}

}  // namespace cdi::formats::qcow2
