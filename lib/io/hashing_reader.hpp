// SPDX-License-Identifier: Apache-2.0
// A tee that digests every byte passing through it (wire bytes for --checksum / X-Checksum, a
// registry blob for its sha256 digest). The caller keeps a HashTap: after the pipeline has taken
// what it needs, tap.finish() drains whatever the stages above left unread (tar padding, bytes after
// the last qcow2 cluster) into the digest, so the digest always covers the whole stream (CDI hashed
// only what tar read — spec §5 quirk), and returns the hex digest.
#pragma once

#include <memory>
#include <optional>

#include "lib/io/reader.hpp"
#include "lib/util/digest.hpp"

namespace cdi::io {

class HashingReader;

// Shared between the reader (in the chain) and the caller. Not thread-safe: finish() must be
// called when nothing else reads the chain (after the copy loop has stopped).
class HashTap {
 public:
  // Bytes digested so far.
  uint64_t bytes() const { return m_bytes; }
  // True once the inner reader returned its end.
  bool at_end() const { return m_eof; }
  // Reads the rest of the stream (if the reader is still alive) and returns the hex digest.
  // Errors: the inner reader's, "stream ended before the checksum could be computed" (internal)
  // when the reader is gone before its end, or a second call.
  Result<std::string> finish();
  // finish() then util::verify_checksum().
  Result<void> verify(const util::Checksum& expected);

 private:
  friend class HashingReader;
  explicit HashTap(util::Hasher h) : m_hasher(std::move(h)) {}
  std::optional<util::Hasher> m_hasher;
  HashingReader* m_reader = nullptr;
  uint64_t m_bytes = 0;
  bool m_eof = false;
};

class HashingReader final : public Reader {
 public:
  // Wraps `inner`; returns the reader and the tap that outlives it.
  static Result<std::pair<std::unique_ptr<HashingReader>, std::shared_ptr<HashTap>>> open(
      std::unique_ptr<Reader> inner, util::DigestAlgo algo);
  ~HashingReader() override;

  Result<size_t> read(std::span<std::byte> dst) override;
  ReaderInfo info() const override { return m_inner->info(); }

 private:
  friend class HashTap;
  HashingReader(std::unique_ptr<Reader> inner, std::shared_ptr<HashTap> tap)
      : m_inner(std::move(inner)), m_tap(std::move(tap)) {}
  std::unique_ptr<Reader> m_inner;
  std::shared_ptr<HashTap> m_tap;
};

}  // namespace cdi::io
