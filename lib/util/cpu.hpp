// SPDX-License-Identifier: Apache-2.0
// How many CPUs this process may actually use: the affinity mask, capped by a cgroup v2
// cpu.max quota (a container limited to 1.5 CPUs gets 2 threads, not the host's 64).
#pragma once

#include <optional>
#include <string_view>

namespace cdi::util {

// Number of CPUs in the sched_getaffinity mask, capped by ceil(quota/period) of the cgroup v2
// cpu.max of this process's cgroup and its ancestors (the smallest wins), or the cgroup v1
// cpu.cfs_quota_us / cpu.cfs_period_us of its cpu hierarchy. Always >= 1; falls
// back to std::thread::hardware_concurrency() when the mask cannot be read. Reads /proc and
// /sys on every call: call once per stage, not per block.
unsigned usable_cpus();

// Parses the content of a cgroup v2 cpu.max file ("max 100000", "150000 100000"). Returns
// ceil(quota/period) (>= 1) for a quota, nullopt for "max" or anything unparseable.
std::optional<unsigned> parse_cgroup_cpu_max(std::string_view text);

}  // namespace cdi::util
