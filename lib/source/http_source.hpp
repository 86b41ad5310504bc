// SPDX-License-Identifier: Apache-2.0
// The HTTP(S) source: one streaming GET through libcurl, read through io::Reader with no scratch.
// A transfer thread runs libcurl and pushes the body into a bounded PushPullAdapter; read() pulls.
// The source owns the whole HTTP story below the pipeline: TLS (system store + --cert-dir, client
// certificates, TLS >= 1.2), basic auth and extra headers sent only to the origin they were given
// for, redirects followed by hand (max 10, loops named, https -> http refused), status mapping,
// Content-Length checks, and resuming after a drop with Range/If-Range from the next byte the
// caller has not seen, with bounded exponential backoff.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::source {

struct HttpOptions {
  // TLS. Verification is on unless insecure_tls. cert_dir: every non-dot regular file is read as
  // PEM and its certificates trusted in addition to the system store (CDI's certConfigMap).
  std::optional<std::filesystem::path> cert_dir;
  // containers' certs.d semantics for cert_dir (registries): only *.crt and *.pem files are CAs;
  // a *.cert file and the *.key of the same stem are the client certificate pair (unless
  // client_cert is given).
  bool cert_dir_certs_d = false;
  bool insecure_tls = false;
  std::optional<std::filesystem::path> client_cert;   // PEM certificate (chain) for TLS client auth
  std::optional<std::filesystem::path> client_key;    // PEM key of client_cert (default: in the cert file)
  std::filesystem::path system_ca_bundle = "/etc/ssl/certs/ca-certificates.crt";
  // Basic auth: both or neither. The password is read from the file (one line; a final newline
  // is dropped) and never logged.
  std::string username;
  std::optional<std::filesystem::path> password_file;
  // Extra request headers "Name: value"; header files hold one header each (secrets: never logged).
  std::vector<std::string> headers;
  std::vector<std::filesystem::path> header_files;
  // Called before every request sent to the URL's own origin (never after a cross-origin
  // redirect) for one "Authorization: …" header line ("" = none); refresh=true after that origin
  // answered 401, to renew an expired token — the request is then retried once. Used by the
  // registry source for Bearer tokens. Called on the transfer thread; errors end the transfer.
  std::function<Result<std::string>(bool refresh)> auth_header;
  // AWS Signature V4 (S3 sources, lib/source/s3_source.hpp): every request to the URL's own
  // origin is signed by libcurl (CURLOPT_AWS_SIGV4) with these keys and carries
  // x-amz-content-sha256 (libcurl 7.88 does not add it; S3 requires it) and, with a session
  // token, x-amz-security-token. Secrets: never logged, never on a command line.
  struct AwsSigV4 {
    std::string provider;        // "aws:amz:REGION:s3"
    std::string access_key;
    std::string secret_key;
    std::string session_token;   // "" = none
  };
  std::optional<AwsSigV4> aws_sigv4;
  // Resume policy. `retries`: failed attempts in a row (no new byte) before giving up;
  // `retry_max_time`: the longest time spent without a new byte while retrying.
  unsigned retries = 8;
  std::chrono::seconds retry_max_time{600};
  std::chrono::milliseconds backoff_initial{1000};
  std::chrono::milliseconds backoff_max{30000};
  // No byte (header or body) for this long while waiting for the server = a drop (retried).
  std::chrono::seconds stall_timeout{120};
  std::chrono::seconds connect_timeout{30};
  // A text/html reply whose body starts with markup is an error page, not a disk (CDI #1502).
  bool reject_html = true;
  // Proxies from HTTP_PROXY/HTTPS_PROXY/NO_PROXY (either case, upper first as in Go). Off: direct.
  bool proxy_from_env = true;
  // A second read of a resource (a two-read qcow2 import): its first read's validator (a strong
  // ETag "…", else a Last-Modified date). Every request carries If-Match (or If-Unmodified-Since);
  // a 412, or a response with another validator, is corrupt_input "the resource changed between the
  // two reads".
  std::optional<std::string> if_match;
  // Bytes buffered between the transfer thread and the reader.
  size_t buffer_bytes = 4u << 20;
};

struct HttpContext {
  const util::CancelToken* cancel = nullptr;        // checked while waiting and in transfers
  std::function<void(std::string_view)> log;        // diagnostics and warnings, may be empty
};

// Starts the GET and returns once the first body byte (or the clean end of an empty body) is in:
// status, redirects and the HTML check are settled, so errors surface here.
// info(): {name "http"/"https", size = Content-Length (nullopt when chunked), not seekable}.
// read(): bytes in order; 0 only after exactly Content-Length bytes (or a complete chunked body).
// Errors: invalid_argument (bad URL, options, unreadable files), not_found (HTTP 404/410), auth
// (401/403/407), network (other statuses, TLS, transfers that could not be resumed in bounds),
// corrupt_input (an HTML error page), cancelled.
Result<std::unique_ptr<io::Reader>> open_http_source(std::string_view url, const HttpOptions& opts,
                                                     const HttpContext& ctx);

// The CA bundle for cert_dir: the system bundle followed by every certificate of every non-dot
// regular file in the directory (sorted by name), re-encoded as PEM. A file without any
// certificate adds a warning; an unreadable directory or file is an error (io / not_found /
// invalid_argument when not a directory).
struct CaBundle {
  std::string pem;
  size_t dir_certificates = 0;
  std::vector<std::string> warnings;
};
// certs_d: only *.crt / *.pem files are read (containers' certs.d: *.cert/*.key are client pairs).
Result<CaBundle> build_ca_bundle(const std::filesystem::path& cert_dir, const std::filesystem::path& system_bundle,
                                 bool certs_d = false);

// containers' certs.d client pair in `dir`: the first (by name) *.cert with a *.key of the same
// stem. nullopt when there is none. Errors: a *.cert without its *.key (invalid_argument), io.
struct ClientPair {
  std::filesystem::path cert;
  std::filesystem::path key;
};
Result<std::optional<ClientPair>> certs_d_client_pair(const std::filesystem::path& dir);

}  // namespace cdi::source
