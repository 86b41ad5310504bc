// SPDX-License-Identifier: Apache-2.0
#include "lib/util/cpu.hpp"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace cdi::util {

std::optional<unsigned> parse_cgroup_cpu_max(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto quota = parse_cgroup_u64(text.substr(0, space));  // "max" fails here: no limit
  auto period = parse_cgroup_u64(text.substr(space + 1));
  if (!quota || !period || *period == 0 || *quota == 0) return std::nullopt;
  uint64_t cpus = (*quota + *period - 1) / *period;
  return static_cast<unsigned>(std::clamp<uint64_t>(cpus, 1, 1u << 16));
}

std::optional<CpuQuota> cgroup_cpu_quota(const CgroupPaths& paths) {
  std::optional<CpuQuota> best;
  auto offer = [&](std::optional<unsigned> cpus, std::string source) {
    if (cpus && (!best || *cpus < best->cpus)) best = CpuQuota{*cpus, std::move(source)};
  };
  for (const auto& h : cgroup_hierarchies("cpu", paths)) {
    for (const auto& dir : h.dirs) {
      if (h.version == 2) {
        if (auto text = read_cgroup_file(paths, dir, "cpu.max"))
          offer(parse_cgroup_cpu_max(*text), "cgroup v2 cpu.max at " + dir);
      } else {
        // cpu.cfs_quota_us is -1 without a quota: parse_cgroup_cpu_max refuses it.
        auto quota = read_cgroup_file(paths, dir, "cpu.cfs_quota_us");
        auto period = read_cgroup_file(paths, dir, "cpu.cfs_period_us");
        if (quota && period)
          offer(parse_cgroup_cpu_max(*quota + " " + *period), "cgroup v1 cpu.cfs_quota_us at " + dir);
      }
    }
  }
  return best;
}

unsigned usable_cpus() {
  unsigned n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = static_cast<unsigned>(CPU_COUNT(&set));
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  if (auto quota = cgroup_cpu_quota()) n = std::min(n, quota->cpus);
  return std::max(1u, n);
}

}  // namespace cdi::util
