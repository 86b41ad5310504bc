// SPDX-License-Identifier: Apache-2.0
#include "lib/util/cpu.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace cdi::util {
namespace {

std::optional<uint64_t> parse_u64(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The cgroup v2 path of this process ("0::/kubepods/..."), relative to the mount point.
std::optional<std::string> own_cgroup_v2_path() {
  auto text = slurp("/proc/self/cgroup");
  if (!text) return std::nullopt;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("0::")) return line.substr(3);
  return std::nullopt;
}

}  // namespace

std::optional<unsigned> parse_cgroup_cpu_max(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto quota = parse_u64(text.substr(0, space));  // "max" fails here: no limit
  auto period = parse_u64(text.substr(space + 1));
  if (!quota || !period || *period == 0 || *quota == 0) return std::nullopt;
  uint64_t cpus = (*quota + *period - 1) / *period;
  return static_cast<unsigned>(std::clamp<uint64_t>(cpus, 1, 1u << 16));
}

unsigned usable_cpus() {
  unsigned n = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = static_cast<unsigned>(CPU_COUNT(&set));
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  if (auto path = own_cgroup_v2_path()) {
    // Walk from our cgroup up to the root; any ancestor's quota also applies.
    std::string dir = *path;
    for (;;) {
      std::string file = "/sys/fs/cgroup" + (dir == "/" ? std::string() : dir) + "/cpu.max";
      if (auto text = slurp(file))
        if (auto quota = parse_cgroup_cpu_max(*text)) n = std::min(n, *quota);
      if (dir.empty() || dir == "/") break;
      auto slash = dir.rfind('/');
      dir = slash == 0 || slash == std::string::npos ? "/" : dir.substr(0, slash);
    }
  }
  // cgroup v1 (older nodes): cpu.cfs_quota_us / cpu.cfs_period_us of our "cpu" hierarchy.
  if (auto text = slurp("/proc/self/cgroup")) {
    std::istringstream lines(*text);
    for (std::string line; std::getline(lines, line);) {
      auto c1 = line.find(':'), c2 = line.find(':', c1 + 1);
      if (c1 == std::string::npos || c2 == std::string::npos) continue;
      // Built by append: GCC 12 at -O3 raises a false -Werror=restrict on "," + substr + "," (GCC bug 105329).
      std::string ctrls(1, ',');
      ctrls.append(line, c1 + 1, c2 - c1 - 1);
      ctrls.push_back(',');
      if (ctrls.find(",cpu,") == std::string::npos) continue;
      std::string rel = line.substr(c2 + 1);
      for (std::string base : {"/sys/fs/cgroup/cpu" + rel, "/sys/fs/cgroup/cpu,cpuacct" + rel, std::string("/sys/fs/cgroup/cpu")}) {
        auto quota = slurp(base + "/cpu.cfs_quota_us");
        auto period = slurp(base + "/cpu.cfs_period_us");
        if (!quota || !period) continue;
        auto trim = [](std::string s) {
          while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
          return s;
        };
        if (auto q = parse_cgroup_cpu_max(trim(*quota) + " " + trim(*period))) n = std::min(n, *q);
        break;
      }
    }
  }
  return std::max(1u, n);
}

}  // namespace cdi::util
