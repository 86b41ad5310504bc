// SPDX-License-Identifier: Apache-2.0
// The source for an image location: the one URL-scheme dispatch.
//   http:// https://                 → HTTP(S) source (lib/source/http_source.hpp)
//   docker:// oci: oci-archive:      → the image's disk file (lib/source/registry_source.hpp)
//   gs://, or http(s) with gcs.force → Google Cloud Storage (lib/source/gcs_source.hpp)
//   s3://                            → never here: callers resolve it to a signed http(s) endpoint
//                                      (lib/source/s3_source.hpp); unresolved, it is unsupported
//   anything else                    → a local path, file:// URL or "-" (lib/source/file_source.hpp)
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lib/io/reader.hpp"
#include "lib/source/gcs_source.hpp"
#include "lib/source/http_source.hpp"
#include "lib/util/error.hpp"

namespace cdi::source {

// Container image sources: platform selection and the credentials file. TLS, credentials and
// retries come from SourceOptions::http.
struct RegistryOptions {
  std::string os = "linux";
  std::string architecture;                           // empty: the machine's, no check of a single manifest
  std::string variant;                                // empty: any
  std::optional<std::filesystem::path> auth_file;     // Docker config / dockerconfigjson
};

struct SourceOptions {
  HttpOptions http;                 // http(s) sources and registries: TLS, auth, headers, retries
  RegistryOptions registry;         // docker:// / oci: / oci-archive:
  GcsOptions gcs;                   // gs:// (and http(s) with gcs.force)
  bool force_shared = false;        // read a local source even when it is in use
  uint64_t file_drop_step = 0;      // a local source's page cache drop step (FileSourceOptions::drop_step)
};

// Opens `url`. `ctx` carries the cancel token (checked by every source) and the log.
// Errors: those of the source opened; unsupported for s3://.
Result<std::unique_ptr<io::Reader>> open_source(std::string_view url, const SourceOptions& opts, const HttpContext& ctx);

}  // namespace cdi::source
