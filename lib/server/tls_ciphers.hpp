// SPDX-License-Identifier: Apache-2.0
// TLS_CIPHERS as CDI's controller sends it: the cipher names of the cluster's TLS security
// profile joined with commas (pkg/controller/upload-controller.go, from
// SelectCipherSuitesAndMinTLSVersion). The profiles mix TLS 1.3 suite names
// (TLS_AES_128_GCM_SHA256) with OpenSSL names (ECDHE-RSA-AES128-GCM-SHA256); Custom profiles may
// carry IANA/Go names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) or junk. CDI's Go server
// (cryptowatch.CipherSuitesIDs) keeps the names it knows and silently drops the rest; an empty
// result means Go's defaults. We do the same, but say what we dropped.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>
#include <vector>

namespace cdi::server {

struct TlsCipherConfig {
  std::string cipher_list;    // OpenSSL names, colon-joined, for SSL_CTX_set_cipher_list ("" = defaults)
  std::string ciphersuites;   // TLS 1.3 suites, colon-joined, for SSL_CTX_set_ciphersuites ("" = defaults)
  std::vector<std::string> warnings;   // one line per name skipped
};

// Maps each comma- (or colon-) separated name: a TLS 1.3 suite name → ciphersuites; an OpenSSL
// name or its IANA/Go spelling that this OpenSSL knows → cipher_list (OpenSSL spelling);
// anything else is skipped with a warning. Duplicates are dropped. The name table comes from
// OpenSSL itself (every cipher it has, with SSL_CIPHER_get_name / SSL_CIPHER_standard_name), plus
// Go's two legacy aliases without "_SHA256" for the ChaCha20 suites.
TlsCipherConfig map_tls_ciphers(std::string_view names);

// Applies a mapped configuration to ctx. A list OpenSSL refuses (every name known but none usable
// at its security level, e.g. only DES-CBC3-SHA) falls back to the defaults with a warning.
// Never fails: the server starts with whatever TLS_CIPHERS says, as CDI's does. Returns the
// warnings (map_tls_ciphers' and its own).
std::vector<std::string> apply_tls_ciphers(SSL_CTX* ctx, const TlsCipherConfig& cfg);

}  // namespace cdi::server
