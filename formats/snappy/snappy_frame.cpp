// SPDX-License-Identifier: Apache-2.0
#include "formats/snappy/snappy_frame.hpp"

#include <isa-l/crc.h>

namespace cdi::formats::snappy {

uint32_t crc32c(std::span<const std::byte> data) {
  // ISA-L's crc32_iscsi neither pre- nor post-inverts: seed with ~0 and invert the result to get
  // the standard CRC-32C. Its length is an int, so feed it in pieces (chunks are 64 KiB anyway).
  uint32_t crc = 0xffffffffu;
  auto* p = const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(data.data()));
  size_t left = data.size();
  while (left > 0) {
    size_t n = left < (size_t(1) << 30) ? left : (size_t(1) << 30);
    crc = crc32_iscsi(p, static_cast<int>(n), crc);
    p += n;
    left -= n;
  }
  return ~crc;
}

}  // namespace cdi::formats::snappy
