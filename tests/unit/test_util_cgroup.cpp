// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/util/cgroup.hpp"
#include "lib/util/cpu.hpp"
#include "lib/util/memory_budget.hpp"
#include "tests/support/fake_cgroup.hpp"

using namespace cdi;
using test::FakeCgroupTree;

TEST_CASE("cgroup_hierarchies: v2, v1, hybrid, sub-tree mounts", "[cgroup][cpu][memory]") {
  FakeCgroupTree t;
  SECTION("v2: own cgroup and its parents up to the mount") {
    t.mountinfo(FakeCgroupTree::v2_mount());
    t.proc_cgroup("0::/kubepods/pod1/ctr\n");
    auto hs = util::cgroup_hierarchies("memory", t.paths());
    REQUIRE(hs.size() == 1);
    CHECK(hs[0].version == 2);
    CHECK(hs[0].dirs == std::vector<std::string>{"/sys/fs/cgroup/kubepods/pod1/ctr", "/sys/fs/cgroup/kubepods/pod1",
                                                 "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup"});
  }
  SECTION("v2 at the root") {
    t.mountinfo(FakeCgroupTree::v2_mount());
    t.proc_cgroup("0::/\n");
    auto hs = util::cgroup_hierarchies("cpu", t.paths());
    REQUIRE(hs.size() == 1);
    CHECK(hs[0].dirs == std::vector<std::string>{"/sys/fs/cgroup"});
  }
  SECTION("v1: the hierarchy whose mount carries the controller, matched as a whole word") {
    t.mountinfo(FakeCgroupTree::v1_mount("cpuset") + FakeCgroupTree::v1_mount("cpu,cpuacct") +
                FakeCgroupTree::v1_mount("memory"));
    t.proc_cgroup("5:cpuset:/a\n4:memory:/process_api/x\n3:cpu,cpuacct:/b/c\n0::/\n");
    auto mem = util::cgroup_hierarchies("memory", t.paths());
    REQUIRE(mem.size() == 1);   // no cgroup2 mount: the 0:: line leads nowhere
    CHECK(mem[0].version == 1);
    CHECK(mem[0].dirs == std::vector<std::string>{"/sys/fs/cgroup/memory/process_api/x",
                                                  "/sys/fs/cgroup/memory/process_api", "/sys/fs/cgroup/memory"});
    auto cpu = util::cgroup_hierarchies("cpu", t.paths());
    REQUIRE(cpu.size() == 1);
    CHECK(cpu[0].dirs ==
          std::vector<std::string>{"/sys/fs/cgroup/cpu,cpuacct/b/c", "/sys/fs/cgroup/cpu,cpuacct/b", "/sys/fs/cgroup/cpu,cpuacct"});
    CHECK(util::cgroup_hierarchies("cpuacct", t.paths()).size() == 1);
    CHECK(util::cgroup_hierarchies("pids", t.paths()).empty());
  }
  SECTION("hybrid (this CI machine's layout): v1 controllers plus the unified mount") {
    t.mountinfo(FakeCgroupTree::v1_mount("memory") + FakeCgroupTree::v1_mount("cpu") +
                FakeCgroupTree::v2_mount("/", "/sys/fs/cgroup/unified"));
    t.proc_cgroup("4:memory:/process_api/x\n1:cpu:/\n0::/\n");
    auto hs = util::cgroup_hierarchies("memory", t.paths());
    REQUIRE(hs.size() == 2);
    CHECK(hs[0].version == 1);
    CHECK(hs[0].dirs.front() == "/sys/fs/cgroup/memory/process_api/x");
    CHECK(hs[1].version == 2);
    CHECK(hs[1].dirs == std::vector<std::string>{"/sys/fs/cgroup/unified"});
  }
  SECTION("a container without a cgroup namespace: its own cgroup is mounted as the root") {
    t.mountinfo(FakeCgroupTree::v1_mount("memory", "/docker/abc") + FakeCgroupTree::v2_mount("/kubepods/pod1"));
    t.proc_cgroup("4:memory:/docker/abc/inner\n0::/kubepods/pod1\n");
    auto hs = util::cgroup_hierarchies("memory", t.paths());
    REQUIRE(hs.size() == 2);
    CHECK(hs[0].dirs == std::vector<std::string>{"/sys/fs/cgroup/memory/inner", "/sys/fs/cgroup/memory"});
    CHECK(hs[1].dirs == std::vector<std::string>{"/sys/fs/cgroup"});
  }
  SECTION("a cgroup outside the mounted sub-tree is not guessed at") {
    t.mountinfo(FakeCgroupTree::v2_mount("/kubepods/pod1"));
    t.proc_cgroup("0::/kubepods/pod10\n");
    CHECK(util::cgroup_hierarchies("memory", t.paths()).empty());
  }
  SECTION("escaped mount points") {
    t.mountinfo(FakeCgroupTree::v2_mount("/", "/sys/fs/cgroup\\040v2"));
    t.proc_cgroup("0::/a\n");
    auto hs = util::cgroup_hierarchies("memory", t.paths());
    REQUIRE(hs.size() == 1);
    CHECK(hs[0].dirs == std::vector<std::string>{"/sys/fs/cgroup v2/a", "/sys/fs/cgroup v2"});
  }
  SECTION("nothing readable") {
    CHECK(util::cgroup_hierarchies("memory", t.paths()).empty());
    t.proc_cgroup("0::/a\n");   // no mountinfo
    CHECK(util::cgroup_hierarchies("memory", t.paths()).empty());
    t.mountinfo("garbage\n\n30 23 0:26\n");
    CHECK(util::cgroup_hierarchies("memory", t.paths()).empty());
  }
}

TEST_CASE("parse_cgroup_u64 and read_cgroup_file", "[cgroup][memory]") {
  CHECK(util::parse_cgroup_u64("67108864") == 67108864u);
  CHECK_FALSE(util::parse_cgroup_u64("max"));
  CHECK_FALSE(util::parse_cgroup_u64("-1"));
  CHECK_FALSE(util::parse_cgroup_u64(""));
  CHECK_FALSE(util::parse_cgroup_u64("12x"));
  FakeCgroupTree t;
  t.write("/sys/fs/cgroup/a/memory.max", "123\n");
  CHECK(util::read_cgroup_file(t.paths(), "/sys/fs/cgroup/a", "memory.max") == "123");
  CHECK_FALSE(util::read_cgroup_file(t.paths(), "/sys/fs/cgroup/a", "memory.high"));
}

TEST_CASE("cgroup limits read in a real cgroup made for the test", "[cgroup][cpu][memory]") {
  test::ScratchCgroup cg(96ULL << 20, 1);
  std::string got = cg.run([] {
    auto mem = util::cgroup_memory_limit();
    auto cpu = util::cgroup_cpu_quota();
    auto budget = util::MemoryBudget::detect(std::nullopt);
    return (mem ? std::to_string(mem->bytes) + "|" + mem->source : std::string("none|")) + "|" +
           (cpu ? std::to_string(cpu->cpus) + "|" + cpu->source : std::string("none|")) + "|" +
           std::to_string(util::usable_cpus()) + "|" + std::to_string(budget.usable());
  });
  // Whichever layout the machine has (v1 here in CI): the files and directories of that layout.
  std::string mem_file = cg.version() == 1 ? "cgroup v1 memory.limit_in_bytes at " : "cgroup v2 memory.max at ";
  std::string cpu_file = cg.version() == 1 ? "cgroup v1 cpu.cfs_quota_us at " : "cgroup v2 cpu.max at ";
  CHECK(got == std::to_string(96ULL << 20) + "|" + mem_file + cg.memory_dir() + "|1|" + cpu_file + cg.cpu_dir() + "|1|" +
                   std::to_string((96ULL << 20) - util::MemoryBudget::margin_for(96ULL << 20)));
}
