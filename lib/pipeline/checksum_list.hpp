// SPDX-License-Identifier: Apache-2.0
// --checksum-url: a SHA256SUMS-style list published next to an image (coreutils `sha256sum` lines
// "<hex>  name" / "<hex> *name", or BSD/`--tag` lines "SHA256 (name) = <hex>"); we pick the line
// of the image's file name and verify the wire bytes against it.
#pragma once

#include <string>
#include <string_view>

#include "lib/pipeline/import.hpp"
#include "lib/util/digest.hpp"

namespace cdi::pipeline {

// The checksum of `file_name` in a checksum list. The algorithm comes from the BSD tag, else from
// the digest length (32 md5, 40 sha1, 64 sha256, 128 sha512). A leading "./" of either name is
// ignored. Errors: not_found (no line for the name), corrupt_input (two different digests for it,
// or the matching line is malformed).
Result<util::Checksum> find_in_checksum_list(std::string_view list, std::string_view file_name);

// The file name an image URL or path is listed under: the last path segment, without query,
// fragment or percent-encoding. Empty when the URL has no file name.
std::string checksum_file_name(std::string_view url);

// Fetches the list at `list_url` (http(s) with the options' TLS/auth settings, or a local path;
// at most 1 MiB) and returns the checksum of the image `o.url`. Errors: those of the source,
// limit (a list over 1 MiB), invalid_argument (no file name in o.url), find_in_checksum_list's.
Result<util::Checksum> fetch_checksum(const ImportOptions& o, std::string_view list_url);

}  // namespace cdi::pipeline
