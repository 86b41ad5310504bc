// SPDX-License-Identifier: Apache-2.0
// Message digests (md5, sha1, sha256, sha512) over OpenSSL EVP, and CDI's "algorithm:hex" checksum
// syntax. Used to verify wire bytes (--checksum, IMPORTER_CHECKSUM, X-Checksum on uploads) and
// registry blobs (sha256 digests).
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::util {

enum class DigestAlgo { md5, sha1, sha256, sha512 };

// "md5", "sha1", "sha256", "sha512".
std::string_view digest_name(DigestAlgo a);
// Hex characters of a digest: 32, 40, 64, 128.
size_t digest_hex_length(DigestAlgo a);

// An incremental digest. Move-only; owns its EVP_MD_CTX.
class Hasher {
 public:
  static Result<Hasher> create(DigestAlgo algo);
  Hasher(Hasher&&) noexcept = default;
  Hasher& operator=(Hasher&&) noexcept = default;
  ~Hasher();

  void update(std::span<const std::byte> data);
  // The lower-case hex digest of everything updated so far. The hasher is spent afterwards.
  std::string final_hex();
  DigestAlgo algo() const { return m_algo; }

 private:
  struct CtxFree {
    void operator()(void* p) const;
  };
  Hasher(DigestAlgo algo, void* ctx) : m_algo(algo), m_ctx(ctx) {}
  DigestAlgo m_algo;
  std::unique_ptr<void, CtxFree> m_ctx;
};

// The hex digest of a whole buffer.
std::string digest_hex(DigestAlgo algo, std::span<const std::byte> data);

// An expected digest: CDI's "algorithm:hex".
struct Checksum {
  DigestAlgo algo = DigestAlgo::sha256;
  std::string hex;   // lower case, digest_hex_length(algo) characters
  // "sha256:<hex>"
  std::string text() const { return std::string(digest_name(algo)) + ":" + hex; }
};

// Parses "algorithm:hex" the way CDI does: split at the first ':', both parts trimmed of blanks and
// lower-cased; the algorithm is md5/sha1/sha256/sha512 and the hash has that many hex digits.
// Errors (invalid_argument), CDI's texts:
//   invalid checksum format: expected 'algorithm:hash', got '<s>'
//   checksum hash value cannot be empty
//   unsupported hash algorithm '<a>': supported algorithms are: md5, sha1, sha256, sha512
//   invalid <alg> hash length: expected <n> hex characters, got <m>
//   checksum hash is not valid hexadecimal: <why>
// The empty string is not a checksum (callers treat it as "no validation" before calling).
Result<Checksum> parse_checksum(std::string_view text);

// corrupt_input "checksum mismatch: expected <alg>:<exp>, calculated <alg>:<got>" when they differ.
Result<void> verify_checksum(const Checksum& expected, std::string_view calculated_hex);

}  // namespace cdi::util
