// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <fcntl.h>

#include <chrono>
#include <unistd.h>

#include "lib/util/fd.hpp"
#include "lib/util/process.hpp"

using namespace cdi;

TEST_CASE("run_process: output, exit code, missing program, inherited fds", "[util][process]") {
  auto ok = util::run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  REQUIRE(ok);
  CHECK(ok->exit_code == 3);
  CHECK(ok->out == "out\n");
  CHECK(ok->err == "err\n");

  auto missing = util::run_process({"cdi-no-such-program-xyz"});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
  CHECK(missing.error().what().find("command not found") != std::string::npos);

  // An fd reaches the child only through keep_fds: an O_CLOEXEC one, and one a library opened
  // without O_CLOEXEC too (the spawn sets close-on-exec from fd 3 up); the parent's flags stay.
  for (int cloexec : {O_CLOEXEC, 0}) {
    INFO("O_CLOEXEC: " << (cloexec != 0));
    util::Fd fd(::open("/dev/null", O_RDONLY | cloexec));
    REQUIRE(fd);
    const std::string probe = "test -e /proc/self/fd/" + std::to_string(fd.get());
    auto without = util::run_process({"sh", "-c", probe});
    REQUIRE(without);
    CHECK(without->exit_code != 0);
    util::ProcessOptions po;
    po.keep_fds = {fd.get()};
    auto with = util::run_process({"sh", "-c", probe}, po);
    REQUIRE(with);
    CHECK(with->exit_code == 0);
    CHECK(((::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC) != 0) == (cloexec != 0));
    auto child = util::ChildProcess::spawn({"sh", "-c", probe});
    REQUIRE(child);
    CHECK((*child)->wait().value() != 0);
  }
}

// The parent-death signal (the child dies with a SIGKILLed parent) is tested end to end:
// tests/e2e/test_kill.sh, kill_vmdk_via_qemu_img.
TEST_CASE("run_process: the child's stdin is /dev/null", "[util][process]") {
  auto r = util::run_process({"sh", "-c", "readlink /proc/self/fd/0"});
  REQUIRE(r);
  CHECK(r->out == "/dev/null\n");
}

namespace {
std::string read_to_end(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}
}  // namespace

TEST_CASE("ChildProcess: stdout as a stream, stderr kept, cwd, exit code, refusals", "[util][process]") {
  auto c = util::ChildProcess::spawn({"sh", "-c", "pwd; readlink /proc/self/fd/0; echo oops >&2; exit 4"}, "/tmp");
  REQUIRE(c);
  CHECK(read_to_end((*c)->stdout_fd()) == "/tmp\n/dev/null\n");
  CHECK((*c)->wait().value() == 4);
  CHECK((*c)->stderr_tail() == "oops\n");
  CHECK_FALSE((*c)->wait());   // waited already

  auto missing = util::ChildProcess::spawn({"cdi-no-such-program-xyz"});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);

  auto bad_dir = util::ChildProcess::spawn({"true"}, "/nonexistent-cdi-dir");
  REQUIRE_FALSE(bad_dir);
  CHECK(bad_dir.error().code() == Errc::not_found);   // chdir's ENOENT, via sys_error
  CHECK(bad_dir.error().what().find("in /nonexistent-cdi-dir") != std::string::npos);

  // Destroyed before wait(): the child is killed (not waited for) and reaped.
  auto sleeper = util::ChildProcess::spawn({"sleep", "600"});
  REQUIRE(sleeper);
  auto t0 = std::chrono::steady_clock::now();
  sleeper->reset();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}
