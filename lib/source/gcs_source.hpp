// SPDX-License-Identifier: Apache-2.0
// The Google Cloud Storage source, on top of the HTTP source. Object locations as CDI takes them:
//   gs://BUCKET/OBJECT                      → https://storage.googleapis.com, or STORAGE_EMULATOR_HOST
//                                             (host:port or a URL), or GcsOptions::endpoint
//   http(s)://HOST[:PORT]/BUCKET/OBJECT     → that host is the API endpoint (with GcsOptions::force)
// The object's metadata (JSON API: size, generation, crc32c, md5Hash) is read first; the bytes
// then come from the XML API (GET /BUCKET/OBJECT?generation=N), so every resume (Range/If-Range,
// by the HTTP source) reads that generation only; the CRC32C and, when served, the MD5 are
// checked over the whole object at its end (a mismatch: corrupt_input). Credentials: a service
// account key file (OAuth2 JWT-bearer grant, gcs_oauth.hpp), the token renewed before expiry and
// after a 401; anonymous without one. TLS as for http (cert_dir honoured, unlike CDI).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lib/io/reader.hpp"
#include "lib/source/http_source.hpp"
#include "lib/util/error.hpp"

namespace cdi::source {

struct GcsOptions {
  bool force = false;                                  // an http(s) URL is HOST/BUCKET/OBJECT (--source gcs)
  std::optional<std::filesystem::path> credentials;    // service account key file; none = anonymous
  std::string endpoint;                                // API endpoint for gs:// ("" = emulator env / Google)
};

namespace gcs {

inline constexpr std::string_view k_default_endpoint = "https://storage.googleapis.com";

struct ObjectLocation {
  std::string endpoint;   // scheme://host[:port][/prefix], no trailing '/'
  std::string bucket;
  std::string object;
  std::string display() const { return "gs://" + bucket + "/" + object; }
};

// Parses a gs:// URL (endpoint: `endpoint_override`, else `emulator_host` — "host:port" means
// http:// — else Google's) or an http(s) URL whose path is /BUCKET/OBJECT. Errors:
// invalid_argument (no bucket, no object, another scheme).
Result<ObjectLocation> parse_object_url(std::string_view url, std::string_view endpoint_override,
                                        std::string_view emulator_host);

// XML API: ENDPOINT/BUCKET/OBJECT[?generation=N]; JSON API: ENDPOINT/storage/v1/b/BUCKET/o/OBJECT.
std::string xml_object_url(const ObjectLocation& loc, std::string_view generation);
std::string json_metadata_url(const ObjectLocation& loc);

// The server's words from a GCS error body: the JSON API's error.message, or the XML API's
// "Code: Message". "" when neither.
std::string error_text(std::string_view body);

}  // namespace gcs

// Opens the object. Errors: invalid_argument (URL, key file fields), auth (token refused,
// anonymous or denied access), not_found (no such bucket / object), network, corrupt_input (a
// checksum of the served bytes differs from the object's), cancelled.
Result<std::unique_ptr<io::Reader>> open_gcs_source(std::string_view url, const GcsOptions& gcs,
                                                    const HttpOptions& http, const HttpContext& ctx);

}  // namespace cdi::source
