// SPDX-License-Identifier: Apache-2.0
// Where a container image's manifests and blobs come from: a registry (registry_client) or a
// local OCI layout (oci_layout). The layer walk in registry_source only sees this interface.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lib/io/reader.hpp"
#include "lib/source/registry_image.hpp"
#include "lib/util/error.hpp"

namespace cdi::source::registry {

inline constexpr size_t k_max_manifest_bytes = 4u << 20;   // manifests, indexes and configs

struct ManifestBytes {
  std::string body;
  std::string content_type;   // may be empty (layouts)
  std::string digest;         // "sha256:<hex>" of body
};

class ImageStore {
 public:
  virtual ~ImageStore() = default;
  // The manifest or index named by `reference` (a tag, or a digest — then the bytes are verified
  // against it: corrupt_input on mismatch). Errors: not_found (unknown tag/repository), auth,
  // network, limit (larger than 4 MiB).
  virtual Result<ManifestBytes> manifest(std::string_view reference) = 0;
  // A small blob (the image config), whole, verified against d.digest and d.size.
  virtual Result<std::string> small_blob(const Descriptor& d) = 0;
  // A blob's raw bytes as a stream, NOT verified (the caller hashes while streaming).
  virtual Result<std::unique_ptr<io::Reader>> open_blob(const Descriptor& d) = 0;
  // "docker", "oci", "oci-archive": the source's name in the chain.
  virtual std::string kind() const = 0;
};

}  // namespace cdi::source::registry
