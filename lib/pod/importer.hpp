// SPDX-License-Identifier: Apache-2.0
// The CDI importer pod (`cdi-importer`): configuration from the environment, target and space
// from the well-known paths, one import, and CDI's termination message and exit code
// (cdi-importer-spec.md §1.4, §1.5, §2.9, §2.10, §5). Decisions where we differ: README
// "Running inside CDI".
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "lib/pipeline/progress.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/klog.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::pod {

struct ImporterContext {
  Environment env;                              // the process environment, in order
  PodPaths paths;                               // CDI_IMPORT_ROOT
  const Logger* log = nullptr;                  // required
  pipeline::ProgressState* progress = nullptr;  // required (the metrics endpoint reads it)
  const util::CancelToken* cancel = nullptr;
  // Ready-file polling (CDI: 60 tries, 1 s apart).
  unsigned ready_tries = 60;
  std::chrono::milliseconds ready_interval{1000};
};

struct ImporterOutcome {
  int exit_code = 0;
  std::optional<std::string> termination;  // what was written to the termination log, if anything
};

// Runs one importer pod to the end. Never throws; every failure becomes the outcome CDI's
// controller expects (exit code + termination message, already written to
// paths.termination_log()).
ImporterOutcome run_importer(const ImporterContext& ctx);

// "Unable to process data: <what>", plus CDI's phrase for a too-small target so the controller's
// "DataVolume too small" mapping still matches.
std::string process_error_text(const Error& e);

// How the importer ends when its environment does not parse: from the Error's reason, never its
// text. A bad PREALLOCATION is only logged (exit 1, no termination message, as CDI's klog.Fatal);
// a bad IMPORTER_CHECKSUM reads as CDI's "Unable to connect to <source> data source"; the rest
// is written as it is. `source` is IMPORTER_SOURCE.
struct EnvFailure {
  bool log_only = false;
  std::string text;
};
EnvFailure env_failure(const Error& e, std::string_view source);

// How the importer ends when the import failed: from the Error's code and reason, never its text.
//   scratch_required  -> exit 0, {"scratchSpaceRequired":true,…,"message":"Import Complete"}
//   checksum_mismatch -> exit 0, {"message":"Unable to process data: … checksum validation failed: …"}
//                        (the controller fails the DataVolume for good); what was written is removed
//   anything else     -> exit 1, process_error_text(e) as plain text
struct ImportFailure {
  enum class Kind { scratch_required, checksum_mismatch, failed };
  Kind kind = Kind::failed;
  int exit_code = 1;
  std::string text;   // the termination message's text (empty for scratch_required)
};
ImportFailure import_failure(const Error& e, bool archive);

}  // namespace cdi::pod
