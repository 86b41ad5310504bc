// SPDX-License-Identifier: Apache-2.0
// OAuth2 for Google service accounts: the key file (JSON, as the Cloud console downloads it), the
// JWT-bearer grant (RFC 7523) signed RS256 with OpenSSL and POSTed to the key file's token_uri,
// and a cached access token renewed before it expires. Secrets (the private key, the assertion,
// the token) never enter a message or a log line.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::source::gcs {

inline constexpr std::string_view k_read_only_scope = "https://www.googleapis.com/auth/devstorage.read_only";

struct ServiceAccountKey {
  std::string client_email;
  std::string private_key;      // PEM (PKCS#8)
  std::string private_key_id;   // "kid" of the JWT header ("" = none)
  std::string token_uri;
};

// Parses a service-account key file's JSON text. Errors: invalid_argument naming the missing or
// wrong field (never a value), unsupported for another credential type (authorized_user, …).
Result<ServiceAccountKey> parse_service_account_key(std::string_view json);
// Reads and parses a key file. Errors: those of parse_service_account_key, not_found, io.
Result<ServiceAccountKey> load_service_account_key(const std::filesystem::path& file);

// base64url without padding (RFC 7515 §2).
std::string base64url(std::string_view bytes);

// The JWT's header and claim set as JSON text.
std::string jwt_header_json(const ServiceAccountKey& key);
std::string jwt_claims_json(const ServiceAccountKey& key, std::string_view scope, int64_t iat, int64_t exp);

// The signed assertion: base64url(header).base64url(claims).base64url(RS256 signature).
// Errors: invalid_argument (the private key is not a usable RSA PEM key), internal.
Result<std::string> sign_jwt(const ServiceAccountKey& key, std::string_view scope, int64_t iat, int64_t lifetime_s = 3600);

// TLS for the token endpoint.
struct TokenTls {
  std::string ca_pem;     // "" = libcurl's default store; must outlive the source
  bool verify = true;
  bool use_proxy_env = true;
};

// A cached access token for one key, renewed a minute before expiry (or at half its lifetime
// when that is shorter) and on demand (refresh after a 401). Thread-safe.
class TokenSource {
 public:
  TokenSource(ServiceAccountKey key, TokenTls tls, const util::CancelToken* cancel)
      : m_key(std::move(key)), m_tls(std::move(tls)), m_cancel(cancel) {}
  // "Authorization: Bearer …". Errors: auth (the grant refused: bad key, unknown account, clock
  // skew — the server's error code and description named), network (endpoint unreachable).
  Result<std::string> authorization(bool refresh);
  const ServiceAccountKey& key() const { return m_key; }

 private:
  Result<void> fetch();
  ServiceAccountKey m_key;
  TokenTls m_tls;
  const util::CancelToken* m_cancel;
  std::mutex m_mutex;
  std::string m_token;
  std::chrono::steady_clock::time_point m_renew_at{};
};

}  // namespace cdi::source::gcs
