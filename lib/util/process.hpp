// SPDX-License-Identifier: Apache-2.0
// Running an external tool (qemu-img) without a shell: argv only, stdout delivered line by line
// (split on '\n' and '\r', as qemu-img -p redraws with '\r'), stderr collected (bounded), the
// child killed when the token is cancelled, the timeout passes, or the Process is destroyed —
// and, by PR_SET_PDEATHSIG, when this process dies (even by SIGKILL).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::util {

struct ProcessResult {
  int exit_code = -1;     // exit status, or 128+signal when killed by a signal
  std::string out;        // stdout when no line callback was given (bounded to 16 MiB)
  std::string err;        // stderr (bounded to 64 KiB)
};

struct ProcessOptions {
  std::function<void(std::string_view line)> on_stdout_line;   // if set, stdout is not collected
  const CancelToken* cancel = nullptr;
  std::optional<std::chrono::milliseconds> timeout;
  std::vector<int> keep_fds;   // extra fds the child inherits (e.g. an unlinked scratch file)
};

// Runs argv[0] (looked up in PATH) and waits for it. Errors: not_found when the program does not
// exist, cancelled, limit on timeout, io for pipe/spawn failures. A non-zero exit is NOT an error
// here: callers read exit_code and err.
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& opts = {});

}  // namespace cdi::util
