// SPDX-License-Identifier: Apache-2.0
// How many CPUs this process may actually use: the affinity mask, capped by a cgroup CPU quota
// (a container limited to 1.5 CPUs gets 2 threads, not the host's 64).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/util/cgroup.hpp"

namespace cdi::util {

// Number of CPUs in the sched_getaffinity mask, capped by cgroup_cpu_quota(). Always >= 1; falls
// back to std::thread::hardware_concurrency() when the mask cannot be read. Reads /proc and
// /sys on every call: call once per stage, not per block.
unsigned usable_cpus();

// A CPU quota: ceil(quota/period) CPUs, and the file it came from.
struct CpuQuota {
  unsigned cpus = 0;
  std::string source;   // "cgroup v2 cpu.max at /sys/fs/cgroup/pod", "cgroup v1 cpu.cfs_quota_us at …"
};

// The smallest CPU quota over this process's cgroup and its ancestors: cgroup v2 cpu.max, cgroup
// v1 cpu.cfs_quota_us / cpu.cfs_period_us of the hierarchy carrying "cpu" (both, in a hybrid
// layout). nullopt when there is none ("max", -1, files missing). Directories found as
// cgroup_hierarchies() finds them.
std::optional<CpuQuota> cgroup_cpu_quota(const CgroupPaths& paths = CgroupPaths::system());

// Parses the content of a cgroup v2 cpu.max file ("max 100000", "150000 100000"). Returns
// ceil(quota/period) (>= 1) for a quota, nullopt for "max" or anything unparseable.
std::optional<unsigned> parse_cgroup_cpu_max(std::string_view text);

}  // namespace cdi::util
