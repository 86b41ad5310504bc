// SPDX-License-Identifier: Apache-2.0
// This process's cgroups: the directories that hold its limits for one controller ("cpu",
// "memory"), found the way the kernel publishes them — /proc/self/cgroup names the cgroup in
// each hierarchy, /proc/self/mountinfo says where (and which part of) each hierarchy is mounted.
// Handles cgroup v2, v1 and the hybrid layout (v1 controllers plus an empty unified mount), and
// mounts of a sub-tree (a container without a cgroup namespace sees its own cgroup mounted as the
// hierarchy's root). Shared by the CPU quota (cpu.hpp) and the memory budget (memory_budget.hpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cdi::util {

// Where the kernel's files are read from. system() is this machine; unit tests point `sysroot`
// at a fake tree holding proc/self/cgroup, proc/self/mountinfo and the mounted cgroup
// directories (the mount points in the fake mountinfo are taken below sysroot).
struct CgroupPaths {
  std::string sysroot;                       // prefix of every path read; "" = the real /
  std::optional<uint64_t> physical_memory;   // bytes; nullopt = sysconf(_SC_PHYS_PAGES)
  static const CgroupPaths& system();
  // sysroot + an absolute path.
  std::string real(std::string_view path) const;
};

// The directories of one hierarchy that apply to this process, innermost first: its own cgroup,
// then each parent up to the mounted root of the hierarchy (any of them may carry a limit; the
// smallest wins). Paths as the process sees them (without sysroot), for messages.
struct CgroupHierarchy {
  int version = 0;                 // 1 or 2
  std::vector<std::string> dirs;   // e.g. /sys/fs/cgroup/memory/pod/ctr, /sys/fs/cgroup/memory/pod, ...
};

// The hierarchies that may hold `controller`'s files for this process: the v1 hierarchy whose
// mount carries the controller, and the v2 unified hierarchy when it is mounted (whether the
// controller is enabled there shows only in which files exist). Empty when /proc cannot be read
// or nothing is mounted.
std::vector<CgroupHierarchy> cgroup_hierarchies(std::string_view controller,
                                                const CgroupPaths& paths = CgroupPaths::system());

// The content of DIR/FILE (DIR as in CgroupHierarchy::dirs), trailing whitespace removed;
// nullopt when it cannot be read.
std::optional<std::string> read_cgroup_file(const CgroupPaths& paths, const std::string& dir, std::string_view file);

// A decimal unsigned number, whole string; nullopt otherwise ("max", "-1", "", "12x").
std::optional<uint64_t> parse_cgroup_u64(std::string_view text);

}  // namespace cdi::util
