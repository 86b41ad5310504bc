// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <limits>

#include "lib/util/memory_budget.hpp"
#include "lib/util/units.hpp"
#include "tests/support/fake_cgroup.hpp"

using namespace cdi;
using test::FakeCgroupTree;
using util::MemoryBudget;

namespace {
constexpr uint64_t MiB = 1ULL << 20;
constexpr uint64_t GiB = 1ULL << 30;
}  // namespace

TEST_CASE("cgroup_memory_limit: v2 memory.max, smallest over the parents", "[memory]") {
  FakeCgroupTree t;
  t.mountinfo(FakeCgroupTree::v2_mount());
  t.proc_cgroup("0::/kubepods/pod1/ctr\n");
  t.write("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "max\n");
  t.write("/sys/fs/cgroup/kubepods/pod1/memory.max", "67108864\n");
  t.write("/sys/fs/cgroup/kubepods/memory.max", "1073741824\n");
  auto l = util::cgroup_memory_limit(t.paths());
  REQUIRE(l);
  CHECK(l->bytes == 64 * MiB);
  CHECK(l->source == "cgroup v2 memory.max at /sys/fs/cgroup/kubepods/pod1");
  SECTION("the innermost when it is the smallest") {
    t.write("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "33554432\n");
    l = util::cgroup_memory_limit(t.paths());
    REQUIRE(l);
    CHECK(l->bytes == 32 * MiB);
    CHECK(l->source == "cgroup v2 memory.max at /sys/fs/cgroup/kubepods/pod1/ctr");
  }
  SECTION("all max: none") {
    t.write("/sys/fs/cgroup/kubepods/pod1/memory.max", "max\n");
    t.write("/sys/fs/cgroup/kubepods/memory.max", "max\n");
    CHECK_FALSE(util::cgroup_memory_limit(t.paths()));
  }
}

TEST_CASE("cgroup_memory_limit: v1 memory.limit_in_bytes, nested, absurd values ignored", "[memory]") {
  FakeCgroupTree t;
  t.mountinfo(FakeCgroupTree::v1_mount("memory") + FakeCgroupTree::v1_mount("cpu"));
  t.proc_cgroup("4:memory:/process_api/x\n1:cpu:/\n");
  const std::string unlimited = "9223372036854771712\n";   // what v1 shows without a limit
  t.write("/sys/fs/cgroup/memory/memory.limit_in_bytes", unlimited);
  t.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "134217728\n");
  t.write("/sys/fs/cgroup/memory/process_api/x/memory.limit_in_bytes", unlimited);
  auto l = util::cgroup_memory_limit(t.paths());
  REQUIRE(l);
  CHECK(l->bytes == 128 * MiB);
  CHECK(l->source == "cgroup v1 memory.limit_in_bytes at /sys/fs/cgroup/memory/process_api");
  SECTION("2^60 and more is no limit") {
    t.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", std::to_string(1ULL << 60));
    CHECK_FALSE(util::cgroup_memory_limit(t.paths()));
    t.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", std::to_string((1ULL << 60) - 1));
    CHECK_FALSE(util::cgroup_memory_limit(t.paths()));   // still above the 64 GiB of RAM below
  }
  SECTION("at or above the physical memory is no limit") {
    t.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", std::to_string(16 * GiB));
    CHECK_FALSE(util::cgroup_memory_limit(t.paths(16 * GiB)));
    auto below = util::cgroup_memory_limit(t.paths(16 * GiB + 1));
    REQUIRE(below);
    CHECK(below->bytes == 16 * GiB);
  }
  SECTION("missing and garbled files are skipped") {
    t.write("/sys/fs/cgroup/memory/process_api/memory.limit_in_bytes", "lots\n");
    CHECK_FALSE(util::cgroup_memory_limit(t.paths()));
  }
}

TEST_CASE("cgroup_memory_limit: hybrid layout takes the smaller of v1 and v2", "[memory]") {
  FakeCgroupTree t;
  t.mountinfo(FakeCgroupTree::v1_mount("memory") + FakeCgroupTree::v2_mount("/", "/sys/fs/cgroup/unified"));
  t.proc_cgroup("4:memory:/a\n0::/b\n");
  t.write("/sys/fs/cgroup/memory/a/memory.limit_in_bytes", std::to_string(96 * MiB));
  // The unified hierarchy of a hybrid machine has no memory controller: no memory.max at all.
  auto l = util::cgroup_memory_limit(t.paths());
  REQUIRE(l);
  CHECK(l->bytes == 96 * MiB);
  t.write("/sys/fs/cgroup/unified/b/memory.max", std::to_string(80 * MiB));
  l = util::cgroup_memory_limit(t.paths());
  REQUIRE(l);
  CHECK(l->bytes == 80 * MiB);
  CHECK(l->source == "cgroup v2 memory.max at /sys/fs/cgroup/unified/b");
}

TEST_CASE("cgroup_memory_limit: no cgroup files at all", "[memory]") {
  FakeCgroupTree t;
  CHECK_FALSE(util::cgroup_memory_limit(t.paths()));
  t.mountinfo(FakeCgroupTree::v2_mount());
  t.proc_cgroup("0::/a\n");
  CHECK_FALSE(util::cgroup_memory_limit(t.paths()));
}

TEST_CASE("MemoryBudget: margin, sources and override", "[memory]") {
  CHECK(MemoryBudget::margin_for(64 * MiB) == 20 * MiB);
  CHECK(MemoryBudget::margin_for(1 * GiB) == 80 * MiB);
  FakeCgroupTree t;
  t.mountinfo(FakeCgroupTree::v2_mount());
  t.proc_cgroup("0::/pod\n");
  t.write("/sys/fs/cgroup/pod/memory.max", std::to_string(64 * MiB));

  auto b = MemoryBudget::detect(std::nullopt, t.paths());
  CHECK(b.limited());
  CHECK(b.limit() == 64 * MiB);
  CHECK(b.source() == "cgroup v2 memory.max at /sys/fs/cgroup/pod");
  CHECK(b.margin() == 20 * MiB);
  CHECK(b.usable() == 44 * MiB);
  CHECK(b.remaining() == 44 * MiB);
  CHECK(b.describe() ==
        "44.0 MiB usable of a 64.0 MiB limit (cgroup v2 memory.max at /sys/fs/cgroup/pod), 20.0 MiB kept back");

  auto o = MemoryBudget::detect(256 * MiB, t.paths());
  CHECK(o.limit() == 256 * MiB);
  CHECK(o.source() == "--memory-limit");
  CHECK(o.usable() == 256 * MiB - 32 * MiB);
  REQUIRE(o.cgroup());
  CHECK(o.cgroup()->bytes == 64 * MiB);   // still known, for a plan to warn about

  auto env = MemoryBudget::detect(32 * MiB, t.paths(), "CDI_MEMORY_LIMIT");
  CHECK(env.source() == "CDI_MEMORY_LIMIT");
  CHECK(env.usable() == 14 * MiB);

  auto zero = MemoryBudget::detect(0, t.paths());   // an explicit 0: no limit
  CHECK_FALSE(zero.limited());
  CHECK(zero.source() == "--memory-limit");
  CHECK(zero.usable() == std::numeric_limits<uint64_t>::max());

  FakeCgroupTree none;
  auto n = MemoryBudget::detect(std::nullopt, none.paths());
  CHECK_FALSE(n.limited());
  CHECK(n.source() == "none");
  CHECK(n.margin() == 0);
  CHECK(n.describe() == "no memory limit (none)");
}

TEST_CASE("MemoryBudget::take hands out shares and refuses what cannot be met", "[memory]") {
  auto b = MemoryBudget::of(64 * MiB, "--memory-limit");   // 44 MiB usable
  CHECK(b.take("xz decoder", 32 * MiB, 9 * MiB) == 32 * MiB);
  CHECK(b.remaining() == 12 * MiB);
  CHECK(b.take("sink queue", 16 * MiB, 4 * MiB) == 12 * MiB);   // what is left, above the minimum
  CHECK(b.remaining() == 0);
  auto e = b.take("http buffer", 2 * MiB, 1 * MiB);
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == Errc::limit);
  CHECK(e.error().what() ==
        "memory budget: http buffer needs at least 1.0 MiB, 0 B of 44.0 MiB usable of a 64.0 MiB limit "
        "(--memory-limit), 20.0 MiB kept back remain after xz decoder 32.0 MiB, sink queue 12.0 MiB");
  CHECK(b.shares().size() == 2);   // nothing taken on failure
  CHECK(b.shares()[1].what == "sink queue");
  CHECK(b.shares()[1].bytes == 12 * MiB);
  CHECK(b.take("nothing", 0, 0) == 0u);

  SECTION("a limit below the margin leaves nothing") {
    auto tiny = MemoryBudget::of(16 * MiB, "--memory-limit");
    CHECK(tiny.usable() == 0);
    CHECK_FALSE(tiny.take("anything", 1, 1));
  }
  SECTION("unlimited: always what is wanted") {
    auto u = MemoryBudget::unlimited();
    CHECK(u.take("xz decoder", 1ULL << 40, 1) == 1ULL << 40);
    CHECK(u.remaining() == std::numeric_limits<uint64_t>::max());
    CHECK(u.shares().size() == 1);
  }
}

TEST_CASE("MemoryBudget::receive_buffer: a sixteenth of the usable budget, floor and default kept", "[memory]") {
  const uint64_t upload = MemoryBudget::k_receive_buffer_max, http = 4 * MiB;
  // no limit, or a large one: the defaults
  CHECK(MemoryBudget::unlimited().receive_buffer(upload) == upload);
  CHECK(MemoryBudget::unlimited().receive_buffer(http) == http);
  CHECK(MemoryBudget::of(1024 * MiB, "cgroup").receive_buffer(upload) == upload);   // 944 MiB usable
  CHECK(MemoryBudget::of(1024 * MiB, "cgroup").receive_buffer(http) == http);
  // a 64 MiB pod: 44 MiB usable, 2.75 MiB for either
  auto pod = MemoryBudget::of(64 * MiB, "cgroup");
  CHECK(pod.receive_buffer(upload) == 44 * MiB / 16);
  CHECK(pod.receive_buffer(http) == 44 * MiB / 16);
  // 128 MiB: 104 MiB usable, 6.5 MiB: the upload pipe shrinks, the HTTP buffer keeps its 4 MiB
  auto mid = MemoryBudget::of(128 * MiB, "cgroup");
  CHECK(mid.receive_buffer(upload) == 104 * MiB / 16);
  CHECK(mid.receive_buffer(http) == http);
  // tiny budgets keep the 1 MiB floor; a default below the floor (tests) is left alone
  CHECK(MemoryBudget::of(24 * MiB, "cgroup").receive_buffer(upload) == MemoryBudget::k_receive_buffer_floor);
  CHECK(MemoryBudget::of(8 * MiB, "cgroup").receive_buffer(upload) == MemoryBudget::k_receive_buffer_floor);
  CHECK(pod.receive_buffer(4096) == 4096);
  // independent of the shares already taken
  REQUIRE(pod.take("decoder", 30 * MiB, 0));
  CHECK(pod.receive_buffer(upload) == 44 * MiB / 16);
}
