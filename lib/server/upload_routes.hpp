// SPDX-License-Identifier: Apache-2.0
// The socket-free parts of the upload server: CDI's route table, the one-upload-at-a-time gate
// (idle → busy → idle | done), the mapping of an import error to CDI's status and body, and the
// TLS option parsing. Kept apart from upload_server.cpp so unit tests can drive them directly.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::server {

enum class UploadKind { sync, async, archive, form, form_async };

struct Route {
  UploadKind kind = UploadKind::sync;
  bool async() const { return kind == UploadKind::async || kind == UploadKind::form_async; }
  bool form() const { return kind == UploadKind::form || kind == UploadKind::form_async; }
  bool archive() const { return kind == UploadKind::archive; }
};

// The upload route for an exact request path ("/v1beta1/upload-async"), both API versions;
// nullopt for anything else (including /healthz).
std::optional<Route> route_for(std::string_view path);

// Every upload path (10: five kinds × v1beta1/v1alpha1), for registering handlers.
std::vector<std::string> upload_paths();

// CDI's x-cdi-content-type header: host-assisted clone bodies (snappy-framed). Any other value
// (absent, "", unknown) is an ordinary upload, as in CDI.
enum class CloneKind { none, blockdevice, filesystem };
CloneKind clone_kind(std::string_view x_cdi_content_type);   // "blockdevice-clone" / "filesystem-clone"
std::string_view clone_kind_name(CloneKind k);               // the header value; "" for none

// One upload at a time. Thread-safe.
class UploadGate {
 public:
  enum class State { idle, busy, done };
  enum class Admission { admitted, busy, done };

  // Admits a new upload when idle (→ busy); otherwise says why not (503 busy, 409 done).
  Admission try_admit();
  // Ends the admitted upload: succeeded → done (every later request gets 409), else → idle.
  void release(bool succeeded);
  State state() const;

 private:
  mutable std::mutex m_mutex;
  State m_state = State::idle;
};

// The HTTP status for an admission refusal: 503 or 409 (200 for admitted, never used).
int admission_status(UploadGate::Admission a);

// What a failed upload answers. Errc::limit and errors caused by ENOSPC/EDQUOT (errno, or the
// texts "no space left on device" / "disk quota exceeded" from qemu-img) get 400 with CDI's
// "Saving stream failed: effective image size is larger than the reported available storage: <err>";
// bad client input (client_fault: checksum mismatch, malformed form, bad X-Checksum) gets 400
// "Saving stream failed: <err>"; everything else 500 "Saving stream failed: <err>".
struct Reply {
  int status = 200;
  std::string body;
};
Reply reply_for_error(const Error& e, bool client_fault);

// Whether a route takes a clone body: the sync routes (upload, upload-archive, upload-form: CDI's
// processUpload) do; the async ones refuse it before reading the body. nullopt = accepted;
// otherwise the reply (500 "Saving stream failed: async clone not supported", as CDI's
// handleStreamError answers its newAsyncUploadStreamProcessor error).
std::optional<Reply> clone_refusal(Route route, CloneKind kind);

// TLS_MIN_VERSION: "" / "1.2" / "VersionTLS12" → TLS1_2_VERSION, "1.3" / "VersionTLS13" →
// TLS1_3_VERSION; "1.0"/"1.1"/"VersionTLS10"/"VersionTLS11" → those (OpenSSL may still refuse them
// at its security level). Errors: invalid_argument naming the value.
Result<int> parse_tls_min_version(std::string_view v);

// TLS_CIPHERS is a comma list (Go style); OpenSSL wants colons. Blanks are dropped.
std::string openssl_cipher_list(std::string_view comma_list);

}  // namespace cdi::server
