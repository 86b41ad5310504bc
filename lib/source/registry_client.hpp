// SPDX-License-Identifier: Apache-2.0
// A small client of the Distribution (Registry HTTP API v2) spec: GET /v2/, manifests with the
// full Accept list, blobs. Authentication: anonymous, Basic, and the Bearer token flow
// (WWW-Authenticate: Bearer realm,service,scope -> token endpoint with or without credentials ->
// retry), with the token renewed when a blob transfer gets 401 mid-pull. Credentials come from
// --username/--password-file or a Docker config file (--registry-auth-file).
// Small documents go through an in-memory libcurl request capped at 4 MiB; blobs through
// source::open_http_source (Range resume, retries, stalls, redirects without credentials to
// another origin). TLS: --cert-dir with containers' certs.d semantics, --insecure-tls also
// allowing a plain-HTTP registry (https is tried first).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>

#include "lib/source/http_source.hpp"
#include "lib/source/image_store.hpp"
#include "lib/source/registry_reference.hpp"

namespace cdi::source::registry {

struct ClientOptions {
  HttpOptions http;                                   // TLS, username/password_file, retries
  std::optional<std::filesystem::path> auth_file;     // Docker config / dockerconfigjson
};

// Connects (GET /v2/, settling the scheme and the authentication scheme) and returns the store.
// Errors: invalid_argument (files, options), auth (credentials missing or refused), network
// (connection, TLS, not a v2 registry), not_found (auth file missing).
Result<std::unique_ptr<ImageStore>> open_registry_client(const ImageReference& ref, const ClientOptions& opts,
                                                         const HttpContext& ctx);

}  // namespace cdi::source::registry
