// SPDX-License-Identifier: Apache-2.0
// The OCI image layout as an ImageStore: oci:DIR[:tag] (a directory with index.json and
// blobs/sha256/…) and oci-archive:PATH[:tag] (the same layout in a tar file). The tag selects
// the index.json entry whose org.opencontainers.image.ref.name annotation equals it; without a
// tag the index must have exactly one entry. An archive is read sequentially (it may be a pipe-
// like file): every blob request scans the tar from its start, which is cheap for the typical
// one-layer containerDisk and never needs scratch.
#pragma once

#include <memory>

#include "lib/source/image_store.hpp"
#include "lib/source/registry_reference.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::source::registry {

// Opens the layout of `ref` (transport oci or oci_archive) and reads its index.json.
// Errors: not_found (no such directory/file, no index.json), corrupt_input (bad index.json).
Result<std::unique_ptr<ImageStore>> open_oci_layout(const ImageReference& ref, const util::CancelToken* cancel);

}  // namespace cdi::source::registry
