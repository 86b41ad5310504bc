// SPDX-License-Identifier: Apache-2.0
// Running an external tool (qemu-img) without a shell: argv only, stdout delivered line by line
// (split on '\n' and '\r', as qemu-img -p redraws with '\r'), stderr collected (bounded), the
// child killed when the token is cancelled, the timeout passes, or the Process is destroyed —
// and, by PR_SET_PDEATHSIG, when this process dies (even by SIGKILL).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <sys/types.h>
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

// A child whose stdout the caller reads as a stream (a `tar c` feeding an upload): stdin is
// /dev/null, stdout a pipe (stdout_fd), stderr an anonymous memory file (read after the exit, so
// a chatty child never blocks on it). Same fork + execve + PR_SET_PDEATHSIG as run_process; the
// child is killed and reaped when the object is destroyed before wait().
class ChildProcess {
 public:
  // Errors: not_found (no such program), io (pipe/spawn failures).
  static Result<std::unique_ptr<ChildProcess>> spawn(const std::vector<std::string>& argv, const std::string& cwd = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  int stdout_fd() const { return m_out; }
  // Waits for the exit; the exit status, or 128+signal.
  Result<int> wait();
  // The last `max` bytes the child wrote to stderr.
  std::string stderr_tail(size_t max = 4096) const;

 private:
  ChildProcess() = default;
  pid_t m_pid = -1;
  int m_out = -1;
  int m_err = -1;
};

}  // namespace cdi::util
