// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/nbdkit.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "lib/source/http_util.hpp"

extern char** environ;

namespace cdi::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr auto k_start_timeout = std::chrono::seconds(15);

bool pid_file_written(const fs::path& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
}

std::string read_all_fd(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    off += n;
    if (out.size() > (1u << 20)) break;
  }
  return out;
}

}  // namespace

std::optional<std::string> NbdkitCurl::unsupported_reason(const source::HttpOptions& opts) {
  if (opts.aws_sigv4) return "S3 requests are signed with keys that would show on nbdkit's command line";
  if (opts.client_cert) return "nbdkit's curl plugin cannot present a TLS client certificate";
  if (!opts.header_files.empty()) return "header files hold secrets that would show on nbdkit's command line";
  if (opts.proxy_from_env) {
    auto env = source::http::proxy_env_from([](const char* n) { return std::getenv(n); });
    for (const auto* p : {&env.http, &env.https})
      if (p->find('@') != std::string::npos) return "proxy credentials would show on nbdkit's command line";
  }
  return std::nullopt;
}

Result<std::unique_ptr<NbdkitCurl>> NbdkitCurl::start(const std::string& url, const source::HttpOptions& opts,
                                                      const fs::path& cache_dir, const util::CancelToken* cancel) {
  auto self = std::unique_ptr<NbdkitCurl>(new NbdkitCurl());
  self->m_dir = CDI_TRY_CTX(util::TempDir::create("cdi-nbd."), "a private directory for nbdkit's socket");
  self->m_err.reset(::memfd_create("nbdkit-stderr", MFD_CLOEXEC));
  if (!self->m_err) return fail_sys("memfd_create");

  // nbdkit writes the pid file once the socket accepts connections.
  std::vector<std::string> argv = {"nbdkit", "--exit-with-parent", "-f", "-r", "-U", (self->m_dir.path() / "sock").string(),
                                   "-P", (self->m_dir.path() / "pid").string(),
                                   "--filter=cache", "curl", "url=" + url, "followlocation=false",
                                   "protocols=http,https", "user-agent=cdi-import/" CDI_VERSION,
                                   "ssl-version=tlsv1.2", "timeout=" + std::to_string(opts.stall_timeout.count()),
                                   // 1 MiB reads through a bounded (32 MiB) cache: a few large Range
                                   // requests instead of one per qemu-img cluster read.
                                   "cache-min-block-size=1M", "cache-max-size=32M", "cache-on-read=true"};
  if (opts.insecure_tls) argv.push_back("sslverify=false");
  if (opts.cert_dir) {
    auto bundle = CDI_TRY(source::build_ca_bundle(*opts.cert_dir, opts.system_ca_bundle));
    self->m_ca.reset(::memfd_create("ca-bundle", 0));   // inherited by nbdkit
    if (!self->m_ca) return fail_sys("memfd_create");
    if (::write(self->m_ca.get(), bundle.pem.data(), bundle.pem.size()) != static_cast<ssize_t>(bundle.pem.size()))
      return fail_sys("writing the CA bundle");
    ::fcntl(self->m_ca.get(), F_SETFD, 0);
    argv.push_back("cainfo=/dev/fd/" + std::to_string(self->m_ca.get()));
  }
  if (!opts.username.empty()) {
    argv.push_back("user=" + opts.username);
    if (opts.password_file) argv.push_back("password=+" + opts.password_file->string());
  }
  for (const auto& h : opts.headers) argv.push_back("header=" + h);
  if (opts.proxy_from_env) {
    auto env = source::http::proxy_env_from([](const char* n) { return std::getenv(n); });
    const auto& p = source::http::proxy_for(env, url.rfind("https:", 0) == 0 ? "https" : "http");
    if (!p.empty()) argv.push_back("proxy=" + p);
  }

  // The cache filter's temporary file goes to cache_dir (TMPDIR of the child only).
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e)
    if (std::strncmp(*e, "TMPDIR=", 7) != 0) envs.emplace_back(*e);
  envs.push_back("TMPDIR=" + cache_dir.string());
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, self->m_err.get(), 2);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, "nbdkit", &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (self->m_ca) ::fcntl(self->m_ca.get(), F_SETFD, FD_CLOEXEC);   // not for qemu-img
  if (rc != 0) {
    if (rc == ENOENT) return fail(Errc::not_found, "nbdkit is not installed (apt-get install nbdkit)");
    return fail_sys("starting nbdkit", rc);
  }
  self->m_pid = pid;

  auto deadline = std::chrono::steady_clock::now() + k_start_timeout;
  while (!pid_file_written(self->m_dir.path() / "pid")) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      self->m_pid = -1;
      std::string err = self->stderr_tail();
      if (err.find("cannot open plugin") != std::string::npos || err.find("curl") == 0)
        return fail(Errc::not_found, "nbdkit's curl plugin is not available: " + err);
      return fail(Errc::network, "nbdkit exited: " + (err.empty() ? std::string("no message") : err));
    }
    if (cancel) CDI_TRY(cancel->check());
    if (std::chrono::steady_clock::now() > deadline) return fail(Errc::network, "nbdkit did not start within 15 s");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return self;
}

std::string NbdkitCurl::stderr_tail() const {
  std::string all = m_err ? read_all_fd(m_err.get()) : std::string();
  // the last non-empty lines, folded into one
  while (!all.empty() && (all.back() == '\n' || all.back() == ' ')) all.pop_back();
  if (all.size() > 400) all = all.substr(all.size() - 400);
  for (auto& c : all)
    if (c == '\n') c = ' ';
  return all;
}

NbdkitCurl::~NbdkitCurl() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
        m_pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (m_pid > 0) {
      ::kill(m_pid, SIGKILL);
      ::waitpid(m_pid, &status, 0);
    }
  }
  m_dir.remove();
}

}  // namespace cdi::pipeline
