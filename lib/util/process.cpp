// SPDX-License-Identifier: Apache-2.0
#include "lib/util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "lib/util/fd.hpp"

extern char** environ;

namespace cdi::util {
namespace {

constexpr size_t k_max_out = 16u << 20;
constexpr size_t k_max_err = 64u << 10;

struct SpawnActions {
  posix_spawn_file_actions_t a;
  SpawnActions() { posix_spawn_file_actions_init(&a); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&a); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
};

// Reaps the child on every path out of run_process: kills it first if it is still running.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : m_pid(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      int st;
      while (::waitpid(m_pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Result<int> wait() {
    int st = 0;
    while (::waitpid(m_pid, &st, 0) < 0) {
      if (errno != EINTR) return fail_sys("waitpid");
    }
    m_pid = -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
  }

 private:
  pid_t m_pid;
};

}  // namespace

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  if (argv.empty()) return fail(Errc::internal, "run_process: empty argv");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  SpawnActions fa;
  posix_spawn_file_actions_addopen(&fa.a, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa.a, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa.a, err_w.get(), 2);
  // Inherited fds: dup2 onto themselves clears FD_CLOEXEC in the child.
  for (int fd : opts.keep_fds) posix_spawn_file_actions_adddup2(&fa.a, fd, fd);

  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &fa.a, nullptr, cargv.data(), environ);
  if (rc != 0) {
    if (rc == ENOENT) return fail(Errc::not_found, argv[0] + ": command not found (is it installed?)");
    return fail_sys("spawning " + argv[0], rc);
  }
  ChildGuard child(pid);
  out_w.reset();
  err_w.reset();

  ProcessResult res;
  std::string line_buf;
  auto deliver = [&](std::string_view chunk) {
    if (!opts.on_stdout_line) {
      size_t room = k_max_out - std::min(k_max_out, res.out.size());
      res.out.append(chunk.substr(0, std::min(room, chunk.size())));
      return;
    }
    for (char c : chunk) {
      if (c == '\n' || c == '\r') {
        if (!line_buf.empty()) opts.on_stdout_line(line_buf);
        line_buf.clear();
      } else if (line_buf.size() < 4096) {
        line_buf.push_back(c);
      }
    }
  };

  auto start = std::chrono::steady_clock::now();
  char buf[16384];
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    if (opts.cancel && opts.cancel->cancelled()) return fail(Errc::cancelled, argv[0] + " cancelled by signal");
    if (opts.timeout && std::chrono::steady_clock::now() - start > *opts.timeout)
      return fail(Errc::limit, argv[0] + " timed out");
    pollfd fds[2];
    nfds_t n = 0;
    if (out_open) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_open) fds[n++] = {err_r.get(), POLLIN, 0};
    int pr = ::poll(fds, n, 200);
    if (pr < 0) {
      if (errno == EINTR) continue;
      return fail_sys("poll");
    }
    for (nfds_t i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      bool is_out = fds[i].fd == out_r.get();
      if (got <= 0) {
        (is_out ? out_open : err_open) = false;
        continue;
      }
      std::string_view chunk(buf, static_cast<size_t>(got));
      if (is_out) {
        deliver(chunk);
      } else {
        size_t room = k_max_err - std::min(k_max_err, res.err.size());
        res.err.append(chunk.substr(0, std::min(room, chunk.size())));
      }
    }
  }
  if (opts.on_stdout_line && !line_buf.empty()) opts.on_stdout_line(line_buf);
  res.exit_code = CDI_TRY(child.wait());
  return res;
}

}  // namespace cdi::util
