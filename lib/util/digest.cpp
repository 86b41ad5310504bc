// SPDX-License-Identifier: Apache-2.0
#include "lib/util/digest.hpp"

#include <openssl/evp.h>

#include <cctype>

namespace cdi::util {

std::string_view digest_name(DigestAlgo a) {
  switch (a) {
    case DigestAlgo::md5: return "md5";
    case DigestAlgo::sha1: return "sha1";
    case DigestAlgo::sha256: return "sha256";
    case DigestAlgo::sha512: return "sha512";
  }
  return "?";
}

size_t digest_hex_length(DigestAlgo a) {
  switch (a) {
    case DigestAlgo::md5: return 32;
    case DigestAlgo::sha1: return 40;
    case DigestAlgo::sha256: return 64;
    case DigestAlgo::sha512: return 128;
  }
  return 0;
}

namespace {

const EVP_MD* evp_of(DigestAlgo a) {
  switch (a) {
    case DigestAlgo::md5: return EVP_md5();
    case DigestAlgo::sha1: return EVP_sha1();
    case DigestAlgo::sha256: return EVP_sha256();
    case DigestAlgo::sha512: return EVP_sha512();
  }
  return nullptr;
}

std::string trim_lower(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

void Hasher::CtxFree::operator()(void* p) const { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(p)); }

Hasher::~Hasher() = default;

Result<Hasher> Hasher::create(DigestAlgo algo) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return fail(Errc::internal, "EVP_MD_CTX_new failed");
  Hasher h(algo, ctx);
  if (EVP_DigestInit_ex(ctx, evp_of(algo), nullptr) != 1)
    return fail(Errc::internal, "cannot initialise " + std::string(digest_name(algo)));
  return h;
}

void Hasher::update(std::span<const std::byte> data) {
  if (!data.empty()) EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(m_ctx.get()), data.data(), data.size());
}

std::string Hasher::final_hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(m_ctx.get()), md, &len);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(k_hex[md[i] >> 4]);
    out.push_back(k_hex[md[i] & 15]);
  }
  return out;
}

std::string digest_hex(DigestAlgo algo, std::span<const std::byte> data) {
  auto h = Hasher::create(algo);
  if (!h) return {};
  h->update(data);
  return h->final_hex();
}

Result<Checksum> parse_checksum(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    return fail(Errc::invalid_argument,
                "invalid checksum format: expected 'algorithm:hash', got '" + std::string(text) + "'");
  std::string alg = trim_lower(text.substr(0, colon));
  std::string hex = trim_lower(text.substr(colon + 1));
  if (hex.empty()) return fail(Errc::invalid_argument, "checksum hash value cannot be empty");
  Checksum c;
  if (alg == "md5") c.algo = DigestAlgo::md5;
  else if (alg == "sha1") c.algo = DigestAlgo::sha1;
  else if (alg == "sha256") c.algo = DigestAlgo::sha256;
  else if (alg == "sha512") c.algo = DigestAlgo::sha512;
  else
    return fail(Errc::invalid_argument, "unsupported hash algorithm '" + alg +
                                            "': supported algorithms are: md5, sha1, sha256, sha512");
  size_t want = digest_hex_length(c.algo);
  if (hex.size() != want)
    return fail(Errc::invalid_argument, "invalid " + alg + " hash length: expected " + std::to_string(want) +
                                            " hex characters, got " + std::to_string(hex.size()));
  for (size_t i = 0; i < hex.size(); ++i) {
    if (!std::isxdigit(static_cast<unsigned char>(hex[i])))
      return fail(Errc::invalid_argument, "checksum hash is not valid hexadecimal: invalid byte '" +
                                              std::string(1, hex[i]) + "' at offset " + std::to_string(i));
  }
  c.hex = std::move(hex);
  return c;
}

Result<void> verify_checksum(const Checksum& expected, std::string_view calculated_hex) {
  if (expected.hex == calculated_hex) return {};
  return fail(Errc::corrupt_input, Reason::checksum_mismatch, "checksum mismatch: expected " + expected.text() + ", calculated " +
                                       std::string(digest_name(expected.algo)) + ":" + std::string(calculated_hex));
}

}  // namespace cdi::util
