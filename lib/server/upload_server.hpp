// SPDX-License-Identifier: Apache-2.0
// The upload server (CDI upload-server compatible): receives one image over HTTP(S) and streams the
// request body through the import pipeline into the target. Used by `cdi-import upload-server`
// (flags) and by pod mode (`cdi-uploadserver`, environment). Routes and semantics: README
// "Upload server" and cdi-importer-spec.md §4.3.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "lib/pipeline/import.hpp"
#include "lib/server/http_listener.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::server {

struct UploadServerOptions {
  // LISTEN_ADDRESS: "", "0.0.0.0" and "::" are the dual-stack wildcard (see open_listener);
  // IPv6 literals with or without brackets ("::1", "[::1]").
  std::string listen_address = "127.0.0.1";
  uint16_t port = 8443;                       // LISTEN_PORT; 0 = kernel-chosen (see on_listening)
  // TLS: both or neither. Without them the server refuses to start unless insecure_http.
  std::optional<std::filesystem::path> tls_cert;   // TLS_CERT_FILE
  std::optional<std::filesystem::path> tls_key;    // TLS_KEY_FILE
  bool insecure_http = false;
  // Client-certificate auth: a verified client certificate chained to client_ca whose subject CN
  // is client_name is required on every request (401 otherwise). CLIENT_CERT_FILE / CLIENT_NAME.
  std::optional<std::filesystem::path> client_ca;
  std::string client_name;
  std::string tls_min_version;   // TLS_MIN_VERSION: "" (1.2), "1.2", "1.3", or Go names "VersionTLS12"/"VersionTLS13"
  // TLS_CIPHERS: CDI's comma list (OpenSSL, IANA/Go and TLS 1.3 names; see tls_ciphers.hpp).
  // Unknown names are skipped with a logged warning; "" = OpenSSL defaults.
  std::string tls_ciphers;
  // Connection handling: cap, handshake/header/idle deadlines, stall limits (http_listener.hpp).
  ConnectionLimits limits;
  // DEADLINE: when set and passed before an upload completes, the server stops and the outcome says so.
  std::optional<std::chrono::system_clock::time_point> deadline;
  // Everything the import of the received body needs: dest, scratch_dir, image_size, threads,
  // progress, log, cancel, preallocation... The server sets url (a name for messages),
  // source_factory, content_type (route, x-cdi-content-type) and checksum (X-Checksum, verified by
  // the pipeline over the whole body before the target is committed) per request.
  pipeline::ImportOptions import;
  // Warnings that must be seen whatever the verbosity (TLS_CIPHERS names skipped). Unset: import.log.
  std::function<void(const std::string&)> on_warning;
  // Called once the socket listens, with the bound port (tests use port 0).
  std::function<void(uint16_t port)> on_listening;
  // After a successful upload, keep serving (every upload request gets 409) this long before
  // stopping. 0 = stop at once, as CDI does.
  std::chrono::milliseconds linger_after_done{0};
};

struct UploadOutcome {
  bool deadline_passed = false;     // stopped by the deadline, nothing imported
  pipeline::ImportReport report;    // the successful import
};

// Serves until one upload has been imported successfully (sync: after the reply; async: after the
// background finish), the deadline passes, or ctx cancel. A failed upload is answered (400/500)
// and the server keeps accepting new attempts. Errors: the server could not start (bad TLS files,
// address in use, no TLS without insecure_http), an async upload that failed after its reply,
// cancelled.
Result<UploadOutcome> run_upload_server(const UploadServerOptions& opts);

}  // namespace cdi::server
