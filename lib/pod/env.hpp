// SPDX-License-Identifier: Apache-2.0
// CDI's pod contract, as data: the process environment (in order), the well-known paths under
// CDI_IMPORT_ROOT, and the importer's environment variables parsed with CDI's rules
// (cdi-importer-spec.md §1.2, §1.3).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/util/digest.hpp"
#include "lib/util/error.hpp"

namespace cdi::pod {

// The environment in process order (extra headers keep their order). "Unset" and "empty" are the
// same thing, as in CDI.
using Environment = std::vector<std::pair<std::string, std::string>>;

// Copies a NULL-terminated "K=V" array (environ). Entries without '=' are skipped.
Environment environment_from(char** envp);

// The value of name, "" when unset (first occurrence wins).
std::string env_get(const Environment& env, std::string_view name);

// Every well-known path of the pod, resolved under a root (CDI_IMPORT_ROOT, default "/").
struct PodPaths {
  std::filesystem::path root = "/";

  // root + an absolute pod path ("/data" -> "<root>/data").
  std::filesystem::path resolve(std::string_view pod_path) const;
  std::filesystem::path data_dir() const { return resolve("/data"); }
  std::filesystem::path data_file() const { return resolve("/data/disk.img"); }
  std::filesystem::path block_device() const { return resolve("/dev/cdi-block-volume"); }
  std::filesystem::path scratch_dir() const { return resolve("/scratch"); }
  std::filesystem::path proxy_certs() const { return resolve("/proxycerts"); }
  std::filesystem::path extra_headers_dir() const { return resolve("/extraheaders"); }
  std::filesystem::path termination_log() const { return resolve("/dev/termination-log"); }
};

// CDI_IMPORT_ROOT from the environment ("/" when unset).
PodPaths paths_from(const Environment& env);

// Go's strconv.ParseBool: 1,t,T,TRUE,true,True,0,f,F,FALSE,false,False; nullopt otherwise.
std::optional<bool> parse_go_bool(std::string_view text);

// FILESYSTEM_OVERHEAD: a float, 0 on a parse error or a value outside [0, 1) (CDI: parse error ⇒ 0).
double parse_overhead(std::string_view text);

enum class SourceKind { http, registry, none, s3, gcs, unsupported, unknown };

// http/registry/none/s3/gcs; imageio, vddk are known but unsupported; anything else unknown.
SourceKind source_kind(std::string_view source);

struct ImporterConfig {
  std::string source;                  // IMPORTER_SOURCE as given
  SourceKind kind = SourceKind::unknown;
  std::string content_type;            // IMPORTER_CONTENTTYPE ("" = kubevirt)
  std::string endpoint;                // IMPORTER_ENDPOINT
  std::string access_key, secret_key;  // IMPORTER_ACCESS_KEY_ID / IMPORTER_SECRET_KEY
  std::optional<uint64_t> image_size;  // IMPORTER_IMAGE_SIZE (a quantity)
  // CDI_IMPORT_MEMORY_LIMIT (ours, a quantity; 0 = none): overrides the cgroup's memory limit.
  std::optional<uint64_t> memory_limit;
  double filesystem_overhead = 0;      // FILESYSTEM_OVERHEAD
  bool preallocation = false;          // PREALLOCATION
  bool cache_none = false;             // CACHE_MODE=TRYNONE
  bool insecure_tls = false;           // INSECURE_TLS
  std::string cert_dir;                // IMPORTER_CERT_DIR
  bool node_pull = false;              // IMPORTER_PULL_METHOD=node
  std::string ready_file, done_file;   // IMPORTER_READY_FILE / IMPORTER_DONE_FILE (pod paths)
  std::optional<util::Checksum> checksum;  // IMPORTER_CHECKSUM
  std::string architecture;            // IMPORTER_REGISTRY_IMAGE_ARCHITECTURE
  std::vector<std::string> extra_headers;  // IMPORTER_EXTRA_HEADER_* values, environment order
  std::string owner_uid;               // OWNER_UID
  std::string google_credentials;      // GOOGLE_APPLICATION_CREDENTIALS (a pod path; gcs)
};

// CDI's exact log text for a bad PREALLOCATION (the importer exits 1 without a termination message).
std::string preallocation_error_text(std::string_view value);

// Parses the importer's environment. Errors (invalid_argument), in this order:
//   PREALLOCATION not a Go bool: preallocation_error_text(v)
//   IMPORTER_IMAGE_SIZE not a quantity: "Invalid IMPORTER_IMAGE_SIZE \"<v>\": <why>"  (CDI panics)
//   IMPORTER_CHECKSUM invalid: "invalid checksum: <CDI's reason>"
Result<ImporterConfig> parse_importer_env(const Environment& env);

}  // namespace cdi::pod
