// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <thread>

#include "lib/util/cpu.hpp"
#include "tests/support/fake_cgroup.hpp"

using namespace cdi;

TEST_CASE("util::parse_cgroup_cpu_max", "[cpu][xz]") {
  CHECK_FALSE(util::parse_cgroup_cpu_max("max 100000\n"));
  CHECK(util::parse_cgroup_cpu_max("100000 100000\n") == 1u);
  CHECK(util::parse_cgroup_cpu_max("150000 100000\n") == 2u);
  CHECK(util::parse_cgroup_cpu_max("50000 100000") == 1u);
  CHECK(util::parse_cgroup_cpu_max("400000 100000") == 4u);
  CHECK_FALSE(util::parse_cgroup_cpu_max(""));
  CHECK_FALSE(util::parse_cgroup_cpu_max("garbage"));
  CHECK_FALSE(util::parse_cgroup_cpu_max("100000 0"));
  CHECK_FALSE(util::parse_cgroup_cpu_max("-5 100000"));
}

TEST_CASE("util::usable_cpus is within the machine", "[cpu][xz]") {
  unsigned n = util::usable_cpus();
  CHECK(n >= 1);
  unsigned hw = std::thread::hardware_concurrency();
  if (hw > 0) CHECK(n <= hw);
}

TEST_CASE("util::cgroup_cpu_quota: v2 cpu.max over the parents", "[cpu]") {
  test::FakeCgroupTree t;
  t.mountinfo(test::FakeCgroupTree::v2_mount());
  t.proc_cgroup("0::/kubepods/pod1/ctr\n");
  t.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  t.write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n");
  t.write("/sys/fs/cgroup/kubepods/cpu.max", "400000 100000\n");
  auto q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 2);
  CHECK(q->source == "cgroup v2 cpu.max at /sys/fs/cgroup/kubepods/pod1");
  t.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "100000 100000\n");
  q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 1);
  CHECK(q->source == "cgroup v2 cpu.max at /sys/fs/cgroup/kubepods/pod1/ctr");
  t.write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n");
  t.write("/sys/fs/cgroup/kubepods/pod1/cpu.max", "max 100000\n");
  t.write("/sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
  CHECK_FALSE(util::cgroup_cpu_quota(t.paths()));
}

TEST_CASE("util::cgroup_cpu_quota: v1 cpu.cfs_quota_us / cpu.cfs_period_us", "[cpu]") {
  test::FakeCgroupTree t;
  t.mountinfo(test::FakeCgroupTree::v1_mount("cpu,cpuacct") + test::FakeCgroupTree::v1_mount("cpuset"));
  t.proc_cgroup("3:cpuset:/\n2:cpu,cpuacct:/kubepods/pod1\n");
  const std::string dir = "/sys/fs/cgroup/cpu,cpuacct";
  t.write(dir + "/cpu.cfs_quota_us", "-1\n");
  t.write(dir + "/cpu.cfs_period_us", "100000\n");
  t.write(dir + "/kubepods/cpu.cfs_quota_us", "-1\n");
  t.write(dir + "/kubepods/cpu.cfs_period_us", "100000\n");
  t.write(dir + "/kubepods/pod1/cpu.cfs_quota_us", "-1\n");
  t.write(dir + "/kubepods/pod1/cpu.cfs_period_us", "100000\n");
  CHECK_FALSE(util::cgroup_cpu_quota(t.paths()));   // -1: no quota anywhere
  t.write(dir + "/kubepods/cpu.cfs_quota_us", "300000\n");   // a parent's quota applies too
  auto q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 3);
  CHECK(q->source == "cgroup v1 cpu.cfs_quota_us at /sys/fs/cgroup/cpu,cpuacct/kubepods");
  t.write(dir + "/kubepods/pod1/cpu.cfs_quota_us", "50000\n");   // half a CPU: 1 thread
  q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 1);
  t.write(dir + "/kubepods/pod1/cpu.cfs_period_us", "0\n");   // nonsense: ignored, the parent's stays
  q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 3);
}

TEST_CASE("util::cgroup_cpu_quota: hybrid layout and missing files", "[cpu]") {
  test::FakeCgroupTree t;
  CHECK_FALSE(util::cgroup_cpu_quota(t.paths()));
  t.mountinfo(test::FakeCgroupTree::v1_mount("cpu") + test::FakeCgroupTree::v2_mount("/", "/sys/fs/cgroup/unified"));
  t.proc_cgroup("1:cpu:/a\n0::/a\n");
  CHECK_FALSE(util::cgroup_cpu_quota(t.paths()));   // directories without files
  t.write("/sys/fs/cgroup/cpu/a/cpu.cfs_quota_us", "200000\n");
  CHECK_FALSE(util::cgroup_cpu_quota(t.paths()));   // no period: no quota
  t.write("/sys/fs/cgroup/cpu/a/cpu.cfs_period_us", "100000\n");
  t.write("/sys/fs/cgroup/unified/a/cpu.max", "100000 100000\n");
  auto q = util::cgroup_cpu_quota(t.paths());
  REQUIRE(q);
  CHECK(q->cpus == 1);
  CHECK(q->source == "cgroup v2 cpu.max at /sys/fs/cgroup/unified/a");
}
