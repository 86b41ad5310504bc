// SPDX-License-Identifier: Apache-2.0
// The upload-server pod (`cdi-uploadserver`): its environment (cdi-importer-spec.md §4.3) mapped to
// server::UploadServerOptions, and its termination messages.
#pragma once

#include <string>

#include "lib/pod/env.hpp"
#include "lib/server/upload_server.hpp"
#include "lib/util/error.hpp"

namespace cdi::pod {

// LISTEN_ADDRESS (used when set, even empty = all interfaces; default 0.0.0.0), LISTEN_PORT
// (invalid/empty -> 8443), DESTINATION (default /data/disk.img, resolved under the root),
// TLS_CERT_FILE/TLS_KEY_FILE (required), CLIENT_CERT_FILE, CLIENT_NAME, UPLOAD_IMAGE_SIZE,
// FILESYSTEM_OVERHEAD, PREALLOCATION (a bad value means false, as in CDI), DEADLINE (RFC 3339),
// TLS_MIN_VERSION, TLS_CIPHERS. Target space follows the importer's rules (usable space,
// resize). Errors (invalid_argument): "Error getting TLS config: invalid TLS config" without
// cert/key, "Invalid UPLOAD_IMAGE_SIZE …", "Invalid DEADLINE …"; io when the target's space
// cannot be measured.
Result<server::UploadServerOptions> upload_options_from_env(const Environment& env, const PodPaths& paths);

// The upload pod's exit code when its environment does not parse: 255 for a bad DEADLINE (CDI's
// klog.Fatalf), 1 otherwise — from the reason, never the text.
int upload_env_exit_code(const Error& e);

// RFC 3339 ("2026-11-25T18:00:00Z", "…+02:00", fractional seconds allowed). Errors: invalid_argument.
Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);

// {"preallocationApplied":<b>,"message":"Upload Complete"} / {"deadlinePassed":true,"message":"Deadline Passed"}
std::string upload_complete_message(bool preallocation_applied);
// A host-assisted clone target (CDI's RunResult.CloneTarget): {"preallocationApplied":…,"message":"Clone Complete"}.
std::string clone_target_complete_message(bool preallocation_applied);
std::string deadline_passed_message();

}  // namespace cdi::pod
