// SPDX-License-Identifier: Apache-2.0
// FaultServer: tests/support/fault_server.py started for one test case on 127.0.0.1 with a fresh
// docroot holding disk.img (`bytes` pseudo-random bytes, 3 MiB by default); stopped and removed
// with the object. Its request log (one "fault-server: …" line a request) is log().
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace cdi::test {

inline std::vector<std::byte> fault_server_pattern(size_t n) {
  std::vector<std::byte> v(n);
  uint32_t x = 12345;
  for (auto& b : v) {
    x = x * 1103515245 + 12345;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

class FaultServer {
 public:
  explicit FaultServer(size_t bytes = 3 << 20)
      : m_dir(std::filesystem::temp_directory_path() /
              ("cdi-http-test." + std::to_string(::getpid()) + "." + std::to_string(s_seq++))) {
    namespace fs = std::filesystem;
    fs::create_directories(m_dir / "www");
    data = fault_server_pattern(bytes);
    put("disk.img", data);
    std::string script = std::string(CDI_TEST_SOURCE_DIR) + "/tests/support/fault_server.py";
    std::string docroot = (m_dir / "www").string(), portfile = (m_dir / "port").string();
    std::vector<std::string> args{"python3", script, docroot, "--portfile", portfile, "--lifetime", "300"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, (m_dir / "log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(posix_spawnp(&m_pid, "python3", &fa, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 500 && !fs::exists(portfile); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::ifstream in(portfile);
    in >> m_port;
    REQUIRE(m_port > 0);
  }
  ~FaultServer() {
    ::kill(m_pid, SIGTERM);
    ::waitpid(m_pid, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  // A fresh URL (its own fault counters) for `path` ("/ok/disk.img").
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(m_port) + path + "?t=" + std::to_string(s_seq++);
  }
  std::string log() const {
    std::ifstream in(m_dir / "log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  // Requests logged so far.
  size_t requests() const {
    std::string l = log();
    size_t n = 0;
    for (size_t at = 0; (at = l.find("fault-server: ", at)) != std::string::npos; at += 14) ++n;
    return n;
  }
  // Writes (or replaces) a file of the docroot.
  void put(const std::string& name, const std::vector<std::byte>& bytes) const {
    std::ofstream(m_dir / "www" / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  std::filesystem::path docroot() const { return m_dir / "www"; }

  std::vector<std::byte> data;   // the bytes of disk.img

 private:
  static inline int s_seq = 0;
  std::filesystem::path m_dir;
  pid_t m_pid = -1;
  int m_port = 0;
};

}  // namespace cdi::test
