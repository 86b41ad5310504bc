// SPDX-License-Identifier: Apache-2.0
// Progress is shared state, not callbacks: the pipeline updates atomics, and whoever wants to
// show progress (cmd/ on a terminal, a metrics endpoint later) polls them at its own pace.
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace cdi::pipeline {

enum class Phase : int { starting, probing, transferring, spooling, validating, converting, finishing, done };

std::string_view phase_name(Phase p);

struct ProgressState {
  std::atomic<Phase> phase{Phase::starting};
  std::atomic<uint64_t> bytes_read{0};      // wire bytes consumed from the source
  std::atomic<uint64_t> bytes_written{0};   // guest bytes made final in the target (data + zeros)
  std::atomic<int64_t> total_read{-1};      // source size when known, -1 otherwise
  std::atomic<int64_t> total_written{-1};   // image size when known, -1 otherwise
};

}  // namespace cdi::pipeline
