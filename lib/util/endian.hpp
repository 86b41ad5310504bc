// SPDX-License-Identifier: Apache-2.0
// Fixed-width loads from byte buffers in a stated byte order (format headers, trailers, chunk
// headers). Bounds are checked by the caller. Accept std::byte, unsigned char or char pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace cdi::util {

template <class B>
concept ByteLike = sizeof(B) == 1 && (std::is_same_v<std::remove_cv_t<B>, std::byte> || std::is_integral_v<B>);

template <ByteLike B>
constexpr uint32_t load_be32(const B* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

template <ByteLike B>
constexpr uint64_t load_be64(const B* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

template <ByteLike B>
constexpr uint32_t load_le32(const B* p) {
  return uint32_t(static_cast<uint8_t>(p[0])) | uint32_t(static_cast<uint8_t>(p[1])) << 8 |
         uint32_t(static_cast<uint8_t>(p[2])) << 16 | uint32_t(static_cast<uint8_t>(p[3])) << 24;
}

}  // namespace cdi::util
