// SPDX-License-Identifier: Apache-2.0
// Cgroups for the cgroup readers' tests (lib/util/cgroup.hpp and its users):
//  - FakeCgroupTree: a fake /proc + /sys/fs/cgroup tree, a temporary directory used as
//    CgroupPaths::sysroot, holding proc/self/cgroup, proc/self/mountinfo and whatever cgroup
//    files a test writes; layout helpers write the mountinfo lines a real machine has for cgroup
//    v2, v1 and the hybrid layout;
//  - ScratchCgroup: a real cgroup with a memory limit and a CPU quota (root only), in the
//    machine's layout, and a way to run a function in a child process inside it.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

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

// A fresh cgroup (v1: one directory in the memory and one in the cpu hierarchy; v2: one directory
// under the unified root, memory and cpu enabled there) holding `memory` bytes and a quota of
// `cpus` CPUs; removed on destruction. run() forks a child that joins it and returns the text
// the function computed there. Needs root.
class ScratchCgroup {
 public:
  ScratchCgroup(uint64_t memory, unsigned cpus) {
    sys::require_root("making a cgroup");
    std::string name = "cdi-unit-" + std::to_string(::getpid());
    auto top = [](std::string_view controller, int version) -> std::string {
      for (const auto& h : util::cgroup_hierarchies(controller))
        if (h.version == version) return h.dirs.back();
      return {};
    };
    std::string mem_v1 = top("memory", 1), cpu_v1 = top("cpu", 1);
    if (!mem_v1.empty() && !cpu_v1.empty()) {
      m_version = 1;
      m_memory_dir = make(mem_v1 + "/" + name);
      m_cpu_dir = make(cpu_v1 + "/" + name);
      put(m_memory_dir + "/memory.limit_in_bytes", std::to_string(memory));
      put(m_cpu_dir + "/cpu.cfs_period_us", "100000");
      put(m_cpu_dir + "/cpu.cfs_quota_us", std::to_string(cpus * 100000));
    } else {
      std::string root = top("memory", 2);
      if (root.empty()) throw std::runtime_error("no cgroup hierarchy for memory and cpu");
      put(root + "/cgroup.subtree_control", "+memory +cpu");
      m_version = 2;
      m_memory_dir = m_cpu_dir = make(root + "/" + name);
      put(m_memory_dir + "/memory.max", std::to_string(memory));
      put(m_cpu_dir + "/cpu.max", std::to_string(cpus * 100000) + " 100000");
    }
  }
  ~ScratchCgroup() {
    for (auto it = m_dirs.rbegin(); it != m_dirs.rend(); ++it) ::rmdir(it->c_str());
  }
  ScratchCgroup(const ScratchCgroup&) = delete;
  ScratchCgroup& operator=(const ScratchCgroup&) = delete;

  int version() const { return m_version; }
  const std::string& memory_dir() const { return m_memory_dir; }
  const std::string& cpu_dir() const { return m_cpu_dir; }

  // Runs `fn` in a child process that joined the cgroup; returns what it returned.
  std::string run(const std::function<std::string()>& fn) const {
    int p[2];
    if (::pipe(p) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(p[0]);
      std::string me = std::to_string(::getpid());
      for (const auto& d : m_dirs) {
        int fd = ::open((d + "/cgroup.procs").c_str(), O_WRONLY);
        if (fd < 0 || ::write(fd, me.data(), me.size()) != static_cast<ssize_t>(me.size())) ::_exit(2);
        ::close(fd);
      }
      std::string out = fn();
      bool ok = ::write(p[1], out.data(), out.size()) == static_cast<ssize_t>(out.size());
      ::_exit(ok ? 0 : 3);
    }
    ::close(p[1]);
    std::string text;
    char buf[512];
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("the child in the cgroup failed (status " + std::to_string(status) + ")");
    return text;
  }

 private:
  std::string make(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0755) != 0) throw std::runtime_error("mkdir " + dir + " failed");
    m_dirs.push_back(dir);
    return dir;
  }
  static void put(const std::string& path, const std::string& value) {
    std::ofstream f(path);
    f << value;
    f.close();
    if (!f) throw std::runtime_error("cannot write " + value + " to " + path);
  }

  std::vector<std::string> m_dirs;
  int m_version = 0;
  std::string m_memory_dir, m_cpu_dir;
};

}  // namespace cdi::test
