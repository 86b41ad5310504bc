// SPDX-License-Identifier: Apache-2.0
#include "lib/source/gcs_oauth.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "lib/source/http_client.hpp"
#include "lib/source/http_util.hpp"

namespace cdi::source::gcs {
namespace {

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

}  // namespace

Result<ServiceAccountKey> parse_service_account_key(std::string_view text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::invalid_argument, "service account key file is not a JSON object");
  auto str = [&](const char* name) -> std::string {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto type = str("type");
  if (!type.empty() && type != "service_account")
    return fail(Errc::unsupported, "credentials of type \"" + type + "\" are not supported (a service account key file is needed)");
  ServiceAccountKey k;
  k.client_email = str("client_email");
  k.private_key = str("private_key");
  k.private_key_id = str("private_key_id");
  k.token_uri = str("token_uri");
  if (k.token_uri.empty()) k.token_uri = "https://oauth2.googleapis.com/token";
  for (auto [name, value] : {std::pair{"client_email", &k.client_email}, std::pair{"private_key", &k.private_key}})
    if (value->empty()) return fail(Errc::invalid_argument, std::string("service account key file has no \"") + name + "\"");
  return k;
}

Result<ServiceAccountKey> load_service_account_key(const std::filesystem::path& file) {
  auto text = CDI_TRY_CTX(http::read_small_file(file, "service account key file"), "Google credentials");
  auto k = parse_service_account_key(text);
  if (!k) return std::unexpected(std::move(k).error().context("Google credentials " + file.string()));
  return k;
}

std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

std::string jwt_header_json(const ServiceAccountKey& key) {
  nlohmann::ordered_json h{{"alg", "RS256"}, {"typ", "JWT"}};
  if (!key.private_key_id.empty()) h["kid"] = key.private_key_id;
  return h.dump();
}

std::string jwt_claims_json(const ServiceAccountKey& key, std::string_view scope, int64_t iat, int64_t exp) {
  nlohmann::ordered_json c{{"iss", key.client_email}, {"scope", std::string(scope)}, {"aud", key.token_uri},
                           {"iat", iat}, {"exp", exp}};
  return c.dump();
}

Result<std::string> sign_jwt(const ServiceAccountKey& key, std::string_view scope, int64_t iat, int64_t lifetime_s) {
  std::string input = base64url(jwt_header_json(key)) + "." + base64url(jwt_claims_json(key, scope, iat, iat + lifetime_s));
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(key.private_key.data(), static_cast<int>(key.private_key.size())));
  if (!bio) return fail(Errc::internal, "out of memory");
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!pkey) return fail(Errc::invalid_argument, "the service account's private_key is not a PEM private key");
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA)
    return fail(Errc::invalid_argument, "the service account's private_key is not an RSA key");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    ERR_clear_error();
    return fail(Errc::internal, "RS256 signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    ERR_clear_error();
    return fail(Errc::internal, "RS256 signing failed");
  }
  sig.resize(len);
  return input + "." + base64url(sig);
}

Result<std::string> TokenSource::authorization(bool refresh) {
  std::lock_guard lock(m_mutex);
  if (refresh || m_token.empty() || std::chrono::steady_clock::now() >= m_renew_at) CDI_TRY(fetch());
  return "Authorization: Bearer " + m_token;
}

Result<void> TokenSource::fetch() {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto jwt = CDI_TRY(sign_jwt(m_key, k_read_only_scope, now));
  http::SmallRequest req;
  req.url = m_key.token_uri;
  req.headers = {"Content-Type: application/x-www-form-urlencoded"};
  req.body = "grant_type=" + http::percent_encode("urn:ietf:params:oauth:grant-type:jwt-bearer") + "&assertion=" + jwt;
  req.verify_tls = m_tls.verify;
  req.tls12_min = true;
  req.ca_pem = m_tls.ca_pem;
  req.use_proxy_env = m_tls.use_proxy_env;
  req.total_timeout = std::chrono::milliseconds(60000);
  req.cancel = m_cancel;
  const std::string where = "token endpoint " + http::redact_url(m_key.token_uri);
  auto r = http::small_request(req);
  if (!r) return std::unexpected(std::move(r).error().context(where));
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  auto field = [&](const char* name) -> std::string {
    if (j.is_discarded() || !j.is_object()) return {};
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (r->status != 200) {
    std::string code = field("error"), desc = field("error_description");
    std::string what = code.empty() ? http::error_body_excerpt(r->body, r->status) : code + (desc.empty() ? "" : ": " + desc);
    Errc ec = r->status == 400 || r->status == 401 || r->status == 403 ? Errc::auth : Errc::network;
    std::string msg = where + " refused the service account " + m_key.client_email + " (HTTP " + std::to_string(r->status) +
                      (what.empty() ? "" : ": " + what) + ")";
    if (code == "invalid_grant" && desc.find("Invalid JWT") != std::string::npos && desc.find("ime") != std::string::npos)
      msg += "; check the clock of this node";
    return fail(ec, msg);
  }
  auto token = field("access_token");
  if (token.empty()) return fail(Errc::auth, where + " answered without an access_token");
  int64_t expires = 3600;
  if (auto it = j.find("expires_in"); it != j.end() && it->is_number_integer()) expires = it->get<int64_t>();
  if (expires < 1) expires = 1;
  int64_t renew = std::max<int64_t>(expires - 60, expires / 2);
  m_token = std::move(token);
  m_renew_at = std::chrono::steady_clock::now() + std::chrono::seconds(renew);
  return {};
}

}  // namespace cdi::source::gcs
