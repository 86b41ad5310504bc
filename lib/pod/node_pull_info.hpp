// SPDX-License-Identifier: Apache-2.0
// Node-pull registry imports (cdi-importer-spec.md §1.6): after the import, the importer reads
// `/info` of the cdi-containerimage-server running in the user's image (CDI's ServerInfo,
// {"env":[…]}) and turns that image's *KUBEVIRT_IO_* environment into termination-message labels
// (CDI: HTTPDataSource.GetTerminationMessage, envsToLabels).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::pod {

// "http://localhost:8100/disk.img" -> "http://localhost:8100/info" (scheme://host of the endpoint).
// Errors: invalid_argument when the endpoint is not an http(s) URL.
Result<std::string> server_info_url(std::string_view endpoint);

// The env list of a ServerInfo body. A missing "env" is an empty list. Errors: corrupt_input
// ("failed to unmarshal body of containerimage-server info request: …").
Result<std::vector<std::string>> parse_server_info(std::string_view body);

// GET url (no proxy; localhost) -> the env list. Errors: network ("failed request
// containerimage-server info: …", "…: expected status code 200, got N"), corrupt_input.
Result<std::vector<std::string>> fetch_server_info(const std::string& url);

// CDI's envsToLabels (see source::registry::kubevirt_labels), sorted by key.
std::vector<std::pair<std::string, std::string>> env_labels(const std::vector<std::string>& env);

}  // namespace cdi::pod
