// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/progress.hpp"

namespace cdi::pipeline {

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::starting: return "starting";
    case Phase::probing: return "probing";
    case Phase::transferring: return "transferring";
    case Phase::spooling: return "spooling";
    case Phase::validating: return "validating";
    case Phase::converting: return "converting";
    case Phase::finishing: return "finishing";
    case Phase::done: return "done";
  }
  return "unknown";
}

}  // namespace cdi::pipeline
