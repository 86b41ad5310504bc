// SPDX-License-Identifier: Apache-2.0
// Container image references as cdi-import accepts them:
//   docker://[host[:port]/]repo[:tag|@sha256:digest]   a registry (Distribution API v2)
//   oci:DIR[:tag]                                       a local OCI image layout directory
//   oci-archive:PATH[:tag]                              the same layout packed in a tar file
// Docker Hub defaults apply to docker:// without a host: registry-1.docker.io and the "library/"
// prefix for single-component repositories; a tag defaults to "latest".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::source::registry {

enum class Transport { docker, oci, oci_archive };

struct ImageReference {
  Transport transport = Transport::docker;
  // docker://
  std::string host;        // "registry-1.docker.io", "127.0.0.1:5000" (as written, lower-cased)
  std::string repository;  // "library/fedora", "containerdisks/cirros"
  // oci: / oci-archive:
  std::string path;        // the layout directory or archive
  // Both: a tag and/or a digest ("sha256:<64 hex>"). A digest wins when both are given.
  std::string tag;
  std::string digest;

  // "tag" or "sha256:…": what to ask the registry's /manifests/ endpoint for.
  std::string manifest_reference() const { return digest.empty() ? tag : digest; }
  // For messages: "docker://host/repo:tag", "oci:dir:tag".
  std::string text() const;
};

// True when the URL names one of the three transports above (the prefix decides).
bool is_image_reference(std::string_view url);

// Parses a reference. Errors (invalid_argument): an unknown transport, an empty or malformed
// repository (components must be lower-case [a-z0-9] separated by . _ __ - and /), a bad tag
// ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) or a digest that is not sha256:<64 lower-case hex>.
Result<ImageReference> parse_reference(std::string_view url);

// Checks "sha256:<64 hex>" and returns the hex part. Errors: invalid_argument (other algorithms
// are refused: every registry in use serves sha256).
Result<std::string> sha256_hex_of(std::string_view digest);

}  // namespace cdi::source::registry
