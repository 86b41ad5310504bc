// SPDX-License-Identifier: Apache-2.0
#include "lib/io/reader.hpp"

namespace cdi::io {

Result<size_t> read_full(Reader& r, std::span<std::byte> dst) {
  size_t got = 0;
  while (got < dst.size()) {
    size_t n = CDI_TRY(r.read(dst.subspan(got)));
    if (n == 0) break;
    got += n;
  }
  return got;
}

}  // namespace cdi::io
