// SPDX-License-Identifier: Apache-2.0
// CDI's termination message (cdi-importer-spec.md §1.5): JSON with keys in the Go struct's order,
// omitted when unset; one line; JSON longer than 4096 bytes refused; written to
// /dev/termination-log with truncate + write, mode 0600.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::pod {

constexpr size_t k_max_termination_json = 4096;

struct TerminationMessage {
  std::optional<bool> scratch_space_required;
  std::optional<bool> preallocation_applied;
  std::optional<bool> deadline_passed;
  std::vector<std::pair<std::string, std::string>> labels;  // emitted sorted by key
  std::string message;                                     // omitted when empty
};

// {"scratchSpaceRequired":…,"preallocationApplied":…,"deadlinePassed":…,"labels":{…},"message":"…"}
// Errors: limit "Termination message length <n> exceeds maximum length of 4096 bytes".
Result<std::string> termination_json(const TerminationMessage& m);

// The text as the kubelet will see it: newlines replaced by spaces (CDI keeps the first line of
// the text after that replacement, i.e. all of it).
std::string one_line(std::string_view text);

// Truncates and writes one_line(text) to path (mode 0600). Errors: io.
Result<void> write_termination_log(const std::filesystem::path& path, std::string_view text);

}  // namespace cdi::pod
