// SPDX-License-Identifier: Apache-2.0
#include "lib/util/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include "lib/util/fd.hpp"

extern char** environ;

namespace cdi::util {
namespace {

constexpr size_t k_max_out = 16u << 20;
constexpr size_t k_max_err = 64u << 10;

// argv[0] looked up in PATH as execvp does, but before fork(): the child must not allocate.
std::optional<std::string> find_program(const std::string& name) {
  auto runnable = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (name.find('/') != std::string::npos) return runnable(name) ? std::optional(name) : std::nullopt;
  const char* env = ::getenv("PATH");
  std::string_view path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    size_t colon = path.find(':');
    std::string dir(path.substr(0, colon));
    std::string cand = (dir.empty() ? std::string(".") : dir) + "/";
    cand += name;
    if (runnable(cand)) return cand;
    if (colon == std::string_view::npos) return std::nullopt;
    path.remove_prefix(colon + 1);
  }
}

// Waits for `pid` (retrying EINTR); its exit status, or 128+signal.
Result<int> wait_child(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return fail_sys("waitpid");
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return -1;
}

// Kills (SIGKILL) and reaps a child that is still running.
void kill_child(pid_t pid) {
  ::kill(pid, SIGKILL);
  (void)wait_child(pid);
}

// Reaps the child on every path out of run_process: kills it first if it is still running.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : m_pid(pid) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() {
    if (m_pid > 0) kill_child(m_pid);
  }
  Result<int> wait() {
    auto r = wait_child(m_pid);
    if (r) m_pid = -1;
    return r;
  }

 private:
  pid_t m_pid;
};

// What the child reports through the exec pipe when it could not become the program.
struct ExecFailure {
  int step = 0;   // 1: chdir, 2: execve
  int err = 0;
};

// The one fork + execve of this file. stdin is /dev/null, stdout `out_fd`, stderr `err_fd`; every
// other fd is closed at exec (close_range(CLOEXEC) from 3, whatever a library opened without
// O_CLOEXEC) except `keep_fds`; the child starts in `cwd` when it is not empty. Returns once the
// program runs; when execve (or chdir) fails the child is reaped and the error returned: not_found
// for a missing program, io otherwise.
//
// fork + execve rather than posix_spawn, for PR_SET_PDEATHSIG: the child is killed when we die,
// even by SIGKILL, instead of running on (a qemu-img would finish writing a target nobody will
// use, holding its space). The death signal follows the forking thread. Between fork and execve
// only async-signal-safe calls (we have threads): everything is prepared before fork.
Result<pid_t> spawn_child(const std::vector<std::string>& argv, int out_fd, int err_fd, const std::vector<int>& keep_fds,
                          const std::string& cwd) {
  if (argv.empty()) return fail(Errc::internal, "spawn: empty argv");
  auto prog = find_program(argv[0]);
  if (!prog) return fail(Errc::not_found, argv[0] + ": command not found (is it installed?)");
  Fd null_in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_in) return fail_sys("opening /dev/null");
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd exec_r(exec_pipe[0]), exec_w(exec_pipe[1]);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const char* dir = cwd.empty() ? nullptr : cwd.c_str();

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return fail_sys("spawning " + argv[0]);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);   // we died before the death signal was armed
    if (::dup2(null_in.get(), 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(127);
    ::close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);   // best effort: fds are O_CLOEXEC anyway
    // Inherited fds (e.g. an unlinked scratch file, an O_TMPFILE target): clear FD_CLOEXEC.
    for (int fd : keep_fds) {
      int fl = ::fcntl(fd, F_GETFD);
      if (fl >= 0) ::fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
    }
    ExecFailure f;
    if (dir && ::chdir(dir) != 0) {
      f = {1, errno};
    } else {
      ::execve(prog->c_str(), cargv.data(), environ);
      f = {2, errno};
    }
    ssize_t ignored = ::write(exec_w.get(), &f, sizeof f);
    (void)ignored;
    ::_exit(127);
  }
  exec_w.reset();
  ExecFailure f;
  ssize_t n;
  while ((n = ::read(exec_r.get(), &f, sizeof f)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof f)) return pid;   // the pipe closed at exec: the program runs
  (void)wait_child(pid);
  if (f.step == 1) return fail_sys("spawning " + argv[0] + " in " + cwd, f.err);
  if (f.err == ENOENT) return fail(Errc::not_found, argv[0] + ": command not found (is it installed?)");
  return fail_sys("spawning " + argv[0], f.err);
}

}  // namespace

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& opts) {
  if (argv.empty()) return fail(Errc::internal, "run_process: empty argv");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);
  ChildGuard child(CDI_TRY(spawn_child(argv, out_w.get(), err_w.get(), opts.keep_fds, {})));
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

Result<std::unique_ptr<ChildProcess>> ChildProcess::spawn(const std::vector<std::string>& argv, const std::string& cwd) {
  if (argv.empty()) return fail(Errc::internal, "ChildProcess::spawn: empty argv");
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return fail_sys("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  Fd err(::memfd_create("child-stderr", MFD_CLOEXEC));
  if (!err) return fail_sys("memfd_create");
  pid_t pid = CDI_TRY(spawn_child(argv, out_w.get(), err.get(), {}, cwd));
  std::unique_ptr<ChildProcess> c(new ChildProcess());
  c->m_pid = pid;
  c->m_out = out_r.release();
  c->m_err = err.release();
  return c;
}

ChildProcess::~ChildProcess() {
  if (m_out >= 0) ::close(m_out);
  if (m_pid > 0) kill_child(m_pid);
  if (m_err >= 0) ::close(m_err);
}

Result<int> ChildProcess::wait() {
  if (m_pid <= 0) return fail(Errc::internal, "ChildProcess::wait: already waited");
  auto r = wait_child(m_pid);
  if (r) m_pid = -1;
  return r;
}

std::string ChildProcess::stderr_tail(size_t max) const {
  struct stat st {};
  if (m_err < 0 || ::fstat(m_err, &st) != 0) return {};
  off_t from = st.st_size > static_cast<off_t>(max) ? st.st_size - static_cast<off_t>(max) : 0;
  std::string out(static_cast<size_t>(st.st_size - from), '\0');
  ssize_t n = ::pread(m_err, out.data(), out.size(), from);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

}  // namespace cdi::util
