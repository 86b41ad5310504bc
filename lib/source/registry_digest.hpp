// SPDX-License-Identifier: Apache-2.0
// The digest CDI's importer.GetImageDigest returns for an image URL (DataImportCron polling): the
// sha256 of the manifest document the reference resolves to, as served — for a multi-arch image
// that is the index (manifest list), not a platform's manifest.
#pragma once

#include <string>
#include <string_view>

#include "lib/source/registry_client.hpp"

namespace cdi::source::registry {

// docker://…, oci:… or oci-archive:… -> "sha256:<hex>". Errors: those of parse_reference,
// open_registry_client and ImageStore::manifest.
Result<std::string> image_digest(std::string_view url, const ClientOptions& opts, const HttpContext& ctx);

}  // namespace cdi::source::registry
