// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <fcntl.h>
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

  // An O_CLOEXEC fd reaches the child only through keep_fds.
  util::Fd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
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
}

// The parent-death signal (the child dies with a SIGKILLed parent) is tested end to end:
// tests/e2e/test_kill.sh, kill_vmdk_via_qemu_img.
TEST_CASE("run_process: the child's stdin is /dev/null", "[util][process]") {
  auto r = util::run_process({"sh", "-c", "readlink /proc/self/fd/0"});
  REQUIRE(r);
  CHECK(r->out == "/dev/null\n");
}
