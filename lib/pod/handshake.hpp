// SPDX-License-Identifier: Apache-2.0
// The registry node-pull handshake (cdi-importer-spec.md §1.6): wait for the sidecar's ready file,
// use its content as the served file name, create the done file after success.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::pod {

// Polls for path every `interval`, at most `tries` times (CDI: 60 × 1 s). Returns its content
// (whitespace-trimmed). Errors: limit "Timeout waiting for file <pod_path>" (pod_path is the name
// shown, as CDI shows it), io when it cannot be read, cancelled.
Result<std::string> wait_ready_file(const std::filesystem::path& path, std::string_view pod_path, unsigned tries,
                                    std::chrono::milliseconds interval, const util::CancelToken* cancel);

// strip_suffix(endpoint, "disk.img") + name when name is non-empty; endpoint otherwise.
std::string node_pull_endpoint(std::string_view endpoint, std::string_view name);

// Creates path exclusively, mode 0666. Errors: io (EEXIST included).
Result<void> create_done_file(const std::filesystem::path& path);

}  // namespace cdi::pod
