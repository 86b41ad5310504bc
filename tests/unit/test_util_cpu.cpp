// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <thread>

#include "lib/util/cpu.hpp"

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
