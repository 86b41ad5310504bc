// SPDX-License-Identifier: Apache-2.0
// The libcurl setup shared by the streaming HTTP source (http_source.cpp) and the byte-range
// random access (http_random_access.cpp): HttpOptions checked and their files read once (password,
// header files, client certificates, CA bundle of cert_dir, proxies from the environment), the
// options every easy handle gets (TLS >= 1.2, verification, CA blob, client identity, timeouts),
// the per-request settings (URL, proxy by scheme, basic auth and secret headers only for the
// origin they were given for), and the mapping of a final HTTP error status to an Errc.
#pragma once

#include <curl/curl.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/source/http_source.hpp"
#include "lib/source/http_util.hpp"

namespace cdi::source::http {

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

// Reads a small file (password, header, PEM) whole. Errors: not_found, invalid_argument (not a
// regular file), io, limit (larger than 1 MiB).
Result<std::string> read_small_file(const std::filesystem::path& p, std::string_view what);

// HttpOptions made ready for requests. `opts` is a copy that may have gained the certs.d client
// pair of cert_dir.
struct ClientConfig {
  HttpOptions opts;
  Origin origin0;                              // of the URL the credentials were given for
  std::string password;
  std::vector<std::string> public_headers;     // --header lines that may follow a redirect
  std::vector<std::string> secret_headers;     // --header-file lines and credential headers
  std::string ca_pem;                          // empty: libcurl's default store
  ProxyEnv proxy;                              // from the environment, or empty
};

// Checks the options against `url` (the URL the user gave) and reads their files; diagnostics go
// to `log` (may be empty). Errors: invalid_argument, not_found, io, limit.
Result<ClientConfig> prepare_client(std::string_view url, const HttpOptions& opts,
                                    const std::function<void(std::string_view)>& log);

// A new easy handle with the options every request shares (callbacks are the caller's). `cfg`
// and `errbuf` (CURL_ERROR_SIZE bytes) must outlive the handle. Errors: internal.
Result<CurlHandle> new_handle(const ClientConfig& cfg, char* errbuf);

// Per-request settings: URL, GET, the proxy for the URL's scheme, basic auth when
// `send_credentials`. Returns the header list (public headers; secret headers and the
// auth_header line when `send_credentials`; then `extra`), already set on the handle: keep it
// alive until the transfer ends. Errors: those of auth_header.
Result<Slist> set_request(CURL* c, const ClientConfig& cfg, const std::string& url, bool send_credentials,
                          bool refresh_auth, const std::vector<std::string>& extra);

// The proxy URL a request to `url` goes through ("" = direct).
std::string proxy_of(const ClientConfig& cfg, const std::string& url);

// "HTTP 404 Not Found for URL (server says: …)".
std::string status_message(long status, const std::string& where, std::string_view error_body);

// The error for a final, non-retryable status: not_found (404/410), auth (401/403/407), else
// network; proxy and missing-credential notes as the HTTP source gives them.
Error status_error(const ClientConfig& cfg, long status, const std::string& url, std::string msg);

// A TLS verification or certificate problem (not worth retrying).
bool tls_failure(CURLcode rc);

}  // namespace cdi::source::http
