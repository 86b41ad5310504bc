// SPDX-License-Identifier: Apache-2.0
#include "lib/server/tls_ciphers.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace cdi::server {
namespace {

struct NameTable {
  std::map<std::string, std::string, std::less<>> tls12;   // OpenSSL or IANA name → OpenSSL name
  std::set<std::string, std::less<>> tls13;               // TLS 1.3 suite names
};

// Every cipher this OpenSSL has (security level 0, all TLS 1.3 suites enabled), by both names.
NameTable build_table() {
  NameTable t;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  if (!ctx) return t;
  SSL_CTX_set_security_level(ctx.get(), 0);
  SSL_CTX_set_cipher_list(ctx.get(), "ALL:COMPLEMENTOFALL");
  SSL_CTX_set_ciphersuites(ctx.get(),
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
                           "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256");
  STACK_OF(SSL_CIPHER)* all = SSL_CTX_get_ciphers(ctx.get());
  for (int i = 0; all && i < sk_SSL_CIPHER_num(all); ++i) {
    const SSL_CIPHER* c = sk_SSL_CIPHER_value(all, i);
    std::string name = SSL_CIPHER_get_name(c);
    const char* std_name = SSL_CIPHER_standard_name(c);
    if (std::string_view(SSL_CIPHER_get_version(c)) == "TLSv1.3") {
      t.tls13.insert(name);
      continue;
    }
    t.tls12.emplace(name, name);
    if (std_name && *std_name) t.tls12.emplace(std_name, name);
  }
  ERR_clear_error();
  // Go's names without the hash for the ChaCha20 suites (crypto/tls keeps them as aliases).
  auto alias = [&](const char* go, const char* iana) {
    if (auto it = t.tls12.find(std::string_view(iana)); it != t.tls12.end()) t.tls12.emplace(go, it->second);
  };
  alias("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
  alias("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
  return t;
}

const NameTable& table() {
  static const NameTable t = build_table();
  return t;
}

void append(std::string& list, const std::string& name) {
  if (!list.empty()) list += ':';
  list += name;
}

}  // namespace

TlsCipherConfig map_tls_ciphers(std::string_view names) {
  TlsCipherConfig cfg;
  const auto& t = table();
  std::set<std::string> seen;
  size_t i = 0;
  while (i <= names.size()) {
    size_t j = names.find_first_of(",:", i);
    if (j == std::string_view::npos) j = names.size();
    std::string_view tok = names.substr(i, j - i);
    i = j + 1;
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (tok.empty()) continue;
    if (t.tls13.contains(tok)) {
      if (seen.insert(std::string(tok)).second) append(cfg.ciphersuites, std::string(tok));
    } else if (auto it = t.tls12.find(tok); it != t.tls12.end()) {
      if (seen.insert(it->second).second) append(cfg.cipher_list, it->second);
    } else {
      cfg.warnings.push_back("TLS_CIPHERS: unknown cipher '" + std::string(tok) + "' skipped");
    }
  }
  if (cfg.cipher_list.empty() && cfg.ciphersuites.empty() && !cfg.warnings.empty())
    cfg.warnings.push_back("TLS_CIPHERS: no cipher this server knows, using the OpenSSL defaults");
  return cfg;
}

std::vector<std::string> apply_tls_ciphers(SSL_CTX* ctx, const TlsCipherConfig& cfg) {
  std::vector<std::string> w = cfg.warnings;
  if (!cfg.cipher_list.empty() && SSL_CTX_set_cipher_list(ctx, cfg.cipher_list.c_str()) != 1) {
    ERR_clear_error();
    w.push_back("TLS_CIPHERS: none of '" + cfg.cipher_list +
                "' is usable (security level), using the OpenSSL defaults for TLS 1.2 and older");
  }
  if (!cfg.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, cfg.ciphersuites.c_str()) != 1) {
    ERR_clear_error();
    w.push_back("TLS_CIPHERS: TLS 1.3 suites '" + cfg.ciphersuites + "' refused, using the OpenSSL defaults");
  }
  return w;
}

}  // namespace cdi::server
