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

}  // namespace cdi::pod
