// SPDX-License-Identifier: Apache-2.0
// Pure helpers of the HTTP source, kept apart from libcurl's transfer loop so they can be tested
// alone: URL origins and redirect targets, header lines, Content-Range, Retry-After, status text.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::source::http {

// scheme://host:port, lower-cased, with the scheme's default port filled in. Credentials are sent
// only while the origin stays the one the user gave them for.
struct Origin {
  std::string scheme;   // "http" or "https"
  std::string host;     // lower case; IPv6 without brackets
  unsigned port = 0;
  bool operator==(const Origin&) const = default;
};

// The origin of an absolute http(s) URL. Errors: invalid_argument (not a URL, another scheme,
// user:password@ in the URL; the CLI's hint names --username/--password-file).
Result<Origin> origin_of(std::string_view url);

// A Location header resolved against the URL that returned it (absolute or relative reference).
// The result is an absolute http(s) URL without a fragment. Errors: invalid_argument.
Result<std::string> resolve_location(std::string_view base, std::string_view location);

// The URL with any query string replaced by "?…" and any user:password@ removed, for messages and
// logs (pre-signed URLs carry secrets in the query).
std::string redact_url(std::string_view url);

// RFC 3986 percent-encoding: every byte but the unreserved ALPHA / DIGIT / "-" / "." / "_" / "~"
// (and "/" when keep_slash, for object keys used as paths) becomes %XX (upper-case hex). For query
// values, form bodies and path segments alike.
std::string percent_encode(std::string_view s, bool keep_slash = false);

// One response header "Name: value" split in two; the value trimmed of blanks. nullopt for a line
// that is not a header (status line, blank line, obs-fold continuation).
std::optional<std::pair<std::string, std::string>> split_header(std::string_view line);

// Checks a user-supplied extra header line "Name: value": the name is an RFC 9110 token, the value
// holds no CR/LF/NUL, and the name is not one the source sets itself (Host, Range, If-Range,
// Content-Length, Transfer-Encoding, Connection). Returns the line normalised to "Name: value".
// Errors: invalid_argument naming the problem (never the value: it may be a secret).
Result<std::string> check_extra_header(std::string_view line);

// Library messages name what a value is ("password file"), never the CLI flag that set it: the
// flag goes in the error's hint, which only cmd/ renders (pod termination messages never show it).
// `ctx`, when given, is added as the error's outer context.
template <class T>
Result<T> flag_hint(Result<T> r, std::string_view flag, std::string ctx = {}) {
  if (!r) {
    if (!ctx.empty()) r.error().context(std::move(ctx));
    r.error().with_hint(" (" + std::string(flag) + ")");
  }
  return r;
}

// Response headers of one reply, looked up case-insensitively (the last occurrence wins).
class Headers {
 public:
  void clear() { m_items.clear(); }
  void add(std::string name, std::string value) { m_items.emplace_back(std::move(name), std::move(value)); }
  std::optional<std::string> get(std::string_view name) const;

 private:
  std::vector<std::pair<std::string, std::string>> m_items;
};

// "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"). nullopt when malformed or LAST < FIRST.
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  std::optional<uint64_t> total;
};
std::optional<ContentRange> parse_content_range(std::string_view value);

// Content-Length: digits only. nullopt when malformed.
std::optional<uint64_t> parse_content_length(std::string_view value);

// Retry-After as delay-seconds or an HTTP-date (relative to `now`, clamped at 0). nullopt when
// malformed.
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value,
                                                      std::chrono::system_clock::time_point now);

// True for the media type text/html or application/xhtml+xml (parameters ignored).
bool is_html_content_type(std::string_view value);

// True when the body's first bytes look like markup (after blanks and a UTF-8 BOM: '<').
bool looks_like_html(std::string_view head);

// A strong validator for If-Range: a strong ETag (not W/"…"), else Last-Modified. nullopt when the
// reply has neither.
std::optional<std::string> if_range_validator(const Headers& h);

// The reason phrase for a status code ("Not Found"), "" for unknown codes.
std::string_view reason_phrase(long status);

// Whether a status means "try again later" (408, 429, 5xx other than 501/505).
bool is_retryable_status(long status);

// A one-line excerpt of an error reply's body for messages (the server's own words: "No required
// SSL certificate was sent", S3's "Request has expired"): the HTML <title> when there is one, else
// the text with tags dropped and blanks collapsed; at most 160 characters; non-printable bytes
// dropped. "" when nothing useful is left or it only repeats "<status> <reason>".
std::string error_body_excerpt(std::string_view body, long status);

// Proxy settings from the environment, read the way Go (CDI) reads them: HTTP_PROXY then
// http_proxy, HTTPS_PROXY then https_proxy, NO_PROXY then no_proxy (libcurl alone ignores an
// upper-case HTTP_PROXY, which is what Kubernetes and CDI set).
struct ProxyEnv {
  std::string http;       // proxy URL for http:// requests, "" = none
  std::string https;      // proxy URL for https:// requests, "" = none
  std::string no_proxy;   // comma-separated hosts, domains, IPs/CIDRs, or "*"
};
// `getenv` returns nullptr for an unset variable (tests pass a map lookup).
ProxyEnv proxy_env_from(const std::function<const char*(const char*)>& getenv);
// The proxy URL for a request scheme ("http" / "https"); "" = connect directly. Exclusions by
// no_proxy are applied by libcurl (CURLOPT_NOPROXY).
std::string proxy_for(const ProxyEnv& env, std::string_view scheme);

// One bounded request with a small reply (API calls, manifests, tokens, JSON info): the whole
// body is collected in memory up to `max_body` bytes. Not for image data (HttpSource streams).
struct SmallRequest {
  std::string url;
  std::string method;                     // "" = GET (or POST with a body); else sent as is
  std::vector<std::string> headers;       // "Name: value" lines
  std::optional<std::string> body;        // request body (POSTFIELDS)
  size_t max_body = 1u << 20;             // a larger reply fails with Errc::limit
  std::string user_agent;                 // "" = "cdi-import/<version>"
  bool use_proxy_env = true;              // false: never a proxy, whatever the environment says
  bool follow_redirects = false;          // up to 10, over `redirect_protocols`
  std::string redirect_protocols = "http,https";
  bool verify_tls = true;
  bool tls12_min = false;                 // refuse TLS below 1.2
  std::optional<std::string> ca_file;     // CA bundle file (CAINFO)
  std::string ca_pem;                     // CA bundle in memory; must outlive the call
  std::optional<std::string> client_cert, client_key;   // PEM files of a TLS client identity
  std::chrono::milliseconds connect_timeout{30000};
  std::optional<std::chrono::milliseconds> total_timeout;   // the whole transfer
  std::optional<std::chrono::seconds> stall_timeout;        // no byte for this long
  const util::CancelToken* cancel = nullptr;                // aborts the transfer when set
};
struct SmallResponse {
  long status = 0;
  Headers headers;   // of the last response (after redirects)
  std::string body;
};
// Why a transport failed, for callers that retry or explain (filled when small_request returns
// Errc::network).
struct TransportFailure {
  enum class Kind { tls, send_recv, other } kind = Kind::other;
  std::string message;   // libcurl's error text
};
// Errors: limit (reply over max_body), network (transport; message: libcurl's text, details in
// *why), internal. A cancelled transfer returns network; callers check their token after.
Result<SmallResponse> small_request(const SmallRequest& req, TransportFailure* why = nullptr);

}  // namespace cdi::source::http
