// SPDX-License-Identifier: Apache-2.0
// Pod mode for CDI's clone source (cmd/cdi-cloner/clone-source.go): the command line the
// controller's cloner_startup.sh passes (Go flags: -content-type, -mount, -upload-bytes, klog's
// -v, -alsologtostderr …), the environment (OWNER_UID, CLIENT_KEY, CLIENT_CERT, SERVER_CA_CERT as
// PEM text, UPLOAD_URL, PREALLOCATION), and the run: in-use refusal, the stream (raw device or
// GNU tar), snappy framing, the mutual-TLS POST, and the plain-text termination message
// "Clone Complete" (+ ", Preallocation applied").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lib/clone/clone_stream.hpp"
#include "lib/pipeline/progress.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/klog.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::pod {

struct ClonerArgs {
  std::string content_type;   // -content-type as given
  clone::CloneKind kind = clone::CloneKind::blockdevice;
  std::string mount;          // -mount
  uint64_t upload_bytes = 0;  // -upload-bytes
  KlogFlags klog;
  bool help = false;          // -h / -help: the caller prints cloner_usage()
};

// Parses the arguments (argv without the program name) with Go's flag syntax; klog's flags are
// accepted. Errors (invalid_argument), in CDI's order: a flag error (Go's words), then
// "Invalid content-type \"x\"", "Invalid mount \"\"".
Result<ClonerArgs> parse_cloner_args(const std::vector<std::string>& args);
std::string cloner_usage();

struct ClonerConfig {
  std::string owner_uid, client_key, client_cert, server_ca_cert, upload_url;
  bool preallocation = false;   // PREALLOCATION parsed as a Go bool; unparsable → false (CDI)
};

// Errors: invalid_argument "Error getting env var X" for the first of OWNER_UID, CLIENT_KEY,
// CLIENT_CERT, SERVER_CA_CERT, UPLOAD_URL, PREALLOCATION that is unset or empty (CDI's order).
Result<ClonerConfig> parse_cloner_env(const Environment& env);

// "Clone Complete" or "Clone Complete, Preallocation applied".
std::string cloner_complete_message(bool preallocation);

struct ClonerContext {
  ClonerArgs args;
  ClonerConfig config;
  PodPaths paths;                              // termination log
  const Logger* log = nullptr;                 // required
  pipeline::ProgressState* progress = nullptr; // bytes_read / total_read (= upload_bytes)
  const util::CancelToken* cancel = nullptr;
  std::string tar = "/usr/bin/tar";
  unsigned connect_attempts = 5;
};

// Refuses a source in use (busy, before any connection), streams, POSTs, and on a 2xx reply
// writes the termination message. On failure nothing is written to the termination log.
Result<void> run_cloner(const ClonerContext& ctx);

}  // namespace cdi::pod
