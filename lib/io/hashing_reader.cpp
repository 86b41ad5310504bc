// SPDX-License-Identifier: Apache-2.0
#include "lib/io/hashing_reader.hpp"

#include <vector>

namespace cdi::io {

Result<std::pair<std::unique_ptr<HashingReader>, std::shared_ptr<HashTap>>> HashingReader::open(
    std::unique_ptr<Reader> inner, util::DigestAlgo algo) {
  auto h = CDI_TRY(util::Hasher::create(algo));
  auto tap = std::shared_ptr<HashTap>(new HashTap(std::move(h)));
  auto reader = std::unique_ptr<HashingReader>(new HashingReader(std::move(inner), tap));
  tap->m_reader = reader.get();
  return std::pair{std::move(reader), std::move(tap)};
}

HashingReader::~HashingReader() { m_tap->m_reader = nullptr; }

Result<size_t> HashingReader::read(std::span<std::byte> dst) {
  size_t n = CDI_TRY(m_inner->read(dst));
  if (n == 0 && !dst.empty()) {
    m_tap->m_eof = true;
  } else if (m_tap->m_hasher) {
    m_tap->m_hasher->update(dst.first(n));
    m_tap->m_bytes += n;
  }
  return n;
}

Result<std::string> HashTap::finish() {
  if (!m_hasher) return fail(Errc::internal, "checksum already computed");
  if (!m_eof) {
    if (!m_reader) return fail(Errc::internal, "stream ended before the checksum could be computed");
    std::vector<std::byte> buf(1 << 20);
    while (!m_eof) CDI_TRY(m_reader->read(buf));
  }
  std::string hex = m_hasher->final_hex();
  m_hasher.reset();
  return hex;
}

Result<void> HashTap::verify(const util::Checksum& expected) {
  auto hex = CDI_TRY(finish());
  return util::verify_checksum(expected, hex);
}

}  // namespace cdi::io
