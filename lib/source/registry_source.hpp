// SPDX-License-Identifier: Apache-2.0
// The containerDisk source: docker://, oci: and oci-archive: references opened as an io::Reader
// over the bytes of the image's disk file, with no scratch space.
//
// What it does, in order: resolve the manifest (an index entry chosen by --os/--arch/--variant;
// a single manifest's architecture checked only when --arch was given, as CDI), read the config
// (bootc/ostree images refused; KUBEVIRT_IO_* env vars become labels in info()), then stream the
// layers from the TOP (last) layer down through sha256 → gzip|zstd|plain → tar, applying the
// upper layers' whiteouts and opaque directories, until a layer holds a visible regular file
// under disk/. That file is served; the rest of its layer is read and its digest verified before
// read() returns 0. Lower layers are not downloaded (see README "Registry source" for why).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "lib/io/reader.hpp"
#include "lib/source/http_source.hpp"
#include "lib/source/registry_client.hpp"

namespace cdi::source::registry {

struct RegistrySourceOptions {
  ClientOptions client;        // docker://: TLS, credentials, retries
  std::string os = "linux";
  std::string architecture;    // empty: the machine's, and no check of a single manifest
  std::string variant;         // empty: any
};

// Opens the image and returns once the disk entry was found (the layers above it were read and
// verified). info(): name "<kind>[<entry path>]", size = the disk file's size, not seekable,
// labels. read(): the disk bytes (sparse entries with their holes as zeros); 0 only after the
// layer holding the disk was read to its end and its sha256 matched the manifest.
// Errors: invalid_argument (reference, options), not_found (image/tag/repository/platform, or
// "Failed to find VM disk image file in the container image"), auth, network, unsupported
// (bootc image, architecture mismatch, several files under disk/, schema 1, disk not a regular
// file), corrupt_input (a layer or manifest whose digest does not match, damaged layers), cancelled.
Result<std::unique_ptr<io::Reader>> open_registry_source(std::string_view url, const RegistrySourceOptions& opts,
                                                         const HttpContext& ctx);

}  // namespace cdi::source::registry
