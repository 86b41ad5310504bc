// SPDX-License-Identifier: Apache-2.0
// The pure part of pulling a containerDisk, shared by the registry and the OCI layout transports:
// manifests and indexes (OCI and Docker schema 2), platform selection, the image config (labels,
// bootc refusal, KUBEVIRT_IO_ env labels) and the merged-filesystem view of disk/ across layers
// (whiteouts and opaque directories). No I/O here; everything is unit-tested alone.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::source::registry {

// The Accept list for /manifests/: distribution 2.8 answers 404 to an OCI manifest without the
// OCI types, and down-converts a Docker v2s2 manifest to schema 1 without Accept at all.
inline constexpr const char* k_manifest_accept =
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;   // empty: any
};

struct Descriptor {
  std::string media_type;
  std::string digest;   // "sha256:<hex>" (checked)
  uint64_t size = 0;
  std::optional<Platform> platform;   // index entries only
};

struct Manifest {
  bool is_index = false;
  std::string media_type;
  std::vector<Descriptor> manifests;   // index
  Descriptor config;                   // image manifest
  std::vector<Descriptor> layers;      // image manifest, base first
};

// Parses a manifest or index. `content_type` (the HTTP Content-Type, may be empty) is used when
// the document has no mediaType. Errors: corrupt_input (not JSON, missing fields, bad digests),
// unsupported (Docker schema 1, an unknown media type, a non-tar layer type such as an artifact).
Result<Manifest> parse_manifest(std::string_view json, std::string_view content_type);

// The machine's architecture in OCI terms (amd64, arm64, arm, ppc64le, s390x, riscv64, 386).
std::string host_architecture();
// "x86_64" -> "amd64", "aarch64" -> "arm64"; others unchanged (lower-cased).
std::string normalize_architecture(std::string_view arch);

// The entry of an index for `want` (os and architecture equal; variant equal when want.variant
// is set; "arm64" without a variant matches "v8"). Errors: not_found naming the wanted platform
// and every platform the index offers.
Result<Descriptor> select_platform(const Manifest& index, const Platform& want);

struct ImageConfig {
  std::string architecture;
  std::string os;
  std::string variant;
  std::vector<std::string> env;
  std::map<std::string, std::string> labels;
};

// Parses an image config blob. Errors: corrupt_input.
Result<ImageConfig> parse_config(std::string_view json);

// CDI's refusal of bootc/ostree images (labels containers.bootc=1 or ostree.bootable=1):
// unsupported, with CDI's message. Ok otherwise.
Result<void> refuse_bootc(const ImageConfig& config);

// CDI's architecture check for a single manifest: unsupported
// `manifest image architecture: "<a>" doesn't match requested architecture: "<b>"`.
Result<void> check_architecture(const ImageConfig& config, std::string_view requested);

// Env entries "K=V" whose K contains KUBEVIRT_IO_ as labels, mapped exactly as CDI does:
// key = lower(prefix with '_'->'.' + ".") + "kubevirt.io/" + lower(suffix with '_'->'-');
// "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora" -> {"instancetype.kubevirt.io/default-preference", "fedora"}.
// Entries without '=' or without KUBEVIRT_IO_ are ignored; a prefix that is empty or starts with
// '_' is dropped (CDI checks only the first '_'-separated element). Order of the env list is kept;
// a repeated key keeps its first position and takes the last value (a Go map).
std::vector<std::pair<std::string, std::string>> kubevirt_labels(const std::vector<std::string>& env);

// The merged view of disk/ while layers are read from the top (last) layer down. Feed every
// entry of a layer to classify(), then call end_layer() before the next (lower) one. Whiteouts of
// a layer hide entries of the layers below it, never its own entries.
class DiskFinder {
 public:
  enum class Role {
    ignore,      // not under disk/, a directory, hidden by an upper layer, or a whiteout marker
    disk,        // a visible regular file under disk/: a disk candidate
    not_regular  // a visible non-directory, non-regular entry under disk/ (symlink, device…)
  };
  // `path` as stored in the tar (a leading "./" is ignored). `regular`/`directory` from the entry.
  Role classify(std::string_view path, bool regular, bool directory);
  // Makes this layer's whiteouts and opaque markers apply to the layers below.
  void end_layer();
  // Whether `path` (normalised, no "./") is hidden by an upper layer's whiteout or opaque dir.
  bool hidden(std::string_view path) const;

 private:
  std::set<std::string, std::less<>> m_whiteouts;      // paths deleted by upper layers
  std::set<std::string, std::less<>> m_opaque;         // dirs whose lower content is hidden
  std::set<std::string, std::less<>> m_pending_whiteouts;
  std::set<std::string, std::less<>> m_pending_opaque;
};

// "./disk//a" -> "disk/a": leading "./" and "/" removed, repeated and trailing slashes collapsed.
std::string normalize_entry_path(std::string_view path);

}  // namespace cdi::source::registry
