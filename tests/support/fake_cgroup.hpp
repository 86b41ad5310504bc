// SPDX-License-Identifier: Apache-2.0
// A fake /proc + /sys/fs/cgroup tree for the cgroup readers (lib/util/cgroup.hpp and its users):
// a temporary directory used as CgroupPaths::sysroot, holding proc/self/cgroup,
// proc/self/mountinfo and whatever cgroup files a test writes. Layout helpers write the
// mountinfo lines a real machine has for cgroup v2, v1 and the hybrid layout.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>

#include "lib/util/cgroup.hpp"
#include "tests/support/loop_device.hpp"

namespace cdi::test {

class FakeCgroupTree {
 public:
  // Mountinfo lines as systemd / container runtimes mount them (root "/" unless given).
  static std::string v2_mount(const std::string& root = "/", const std::string& point = "/sys/fs/cgroup") {
    return "30 23 0:26 " + root + " " + point +
           " rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
  }
  static std::string v1_mount(const std::string& controllers, const std::string& root = "/",
                              const std::string& point = "") {
    std::string at = point.empty() ? "/sys/fs/cgroup/" + controllers : point;
    return "35 31 0:32 " + root + " " + at + " rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw," +
           controllers + "\n";
  }
  // Unrelated mounts every real mountinfo has.
  static std::string other_mounts() {
    return "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
           "23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw\n"
           "31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:3 - tmpfs tmpfs ro,mode=755\n";
  }

  void proc_cgroup(const std::string& text) { write("/proc/self/cgroup", text); }
  void mountinfo(const std::string& text) { write("/proc/self/mountinfo", other_mounts() + text); }
  // Writes `content` to the absolute path `path` inside the tree (directories created).
  void write(const std::string& path, const std::string& content) {
    std::filesystem::path p = m_dir.path().string() + path;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::trunc);
    f << content;
    if (!f) throw std::runtime_error("cannot write " + p.string());
  }
  util::CgroupPaths paths(uint64_t physical_memory = 64ULL << 30) const {
    return util::CgroupPaths{m_dir.path().string(), physical_memory};
  }

 private:
  sys::TempDir m_dir;
};

}  // namespace cdi::test
