// SPDX-License-Identifier: Apache-2.0
// RAII helpers for tests that need real kernel objects: a temporary directory, a small tmpfs
// mount (to provoke ENOSPC) and a loop block device over a backing file. They need root and
// util-linux losetup; without them the constructor throws, so the test FAILS with a message
// saying why (CI runs as root) instead of skipping silently.
#pragma once

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace cdi::test::sys {

// Runs argv (no shell) and returns its stdout; throws when it cannot run or exits non-zero.
inline std::string run_command(const std::vector<std::string>& argv) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[512];
  for (;;) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error("command failed (status " + std::to_string(status) + "): " + cmd);
  }
  return text;
}

inline void require_root(const char* what) {
  if (::geteuid() != 0)
    throw std::runtime_error(std::string(what) + " needs root (CI runs the unit tests as root)");
}

// A fresh directory under /tmp, removed recursively on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cdi-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
    m_path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }
  std::filesystem::path operator/(const std::string& name) const { return m_path / name; }

 private:
  std::filesystem::path m_path;
};

// A tmpfs of `size_option` (e.g. "1M") mounted on a fresh directory; unmounted on destruction.
class TmpfsMount {
 public:
  explicit TmpfsMount(const std::string& size_option) {
    require_root("mounting a tmpfs");
    std::string opts = "size=" + size_option;
    if (::mount("tmpfs", m_dir.path().c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0)
      throw std::runtime_error("mount -t tmpfs failed: " + std::string(std::strerror(errno)));
  }
  ~TmpfsMount() {
    // The directory's contents vanish with the mount; a lazy unmount works even when a loop
    // device still references a file on it.
    ::umount2(m_dir.path().c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  const std::filesystem::path& path() const { return m_dir.path(); }

 private:
  TempDir m_dir;
};

// Creates (or truncates) `path` as `size` bytes: sparse when fill is 0, else every byte = fill.
inline void make_backing_file(const std::filesystem::path& path, uint64_t size, unsigned char fill = 0) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("create " + path.string() + ": " + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    ::close(fd);
    throw std::runtime_error("ftruncate " + path.string() + ": " + std::strerror(errno));
  }
  if (fill != 0) {
    std::vector<unsigned char> buf(1 << 20, fill);
    for (uint64_t off = 0; off < size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
      ssize_t w = ::pwrite(fd, buf.data(), n, static_cast<off_t>(off));
      if (w <= 0) {
        ::close(fd);
        throw std::runtime_error("fill " + path.string() + ": " + std::strerror(errno));
      }
      off += static_cast<uint64_t>(w);
    }
  }
  ::close(fd);
}

// A loop device attached to an existing backing file. The device is set to auto-clear and held
// open by this object, so it detaches when the last descriptor closes: on destruction, and also
// when the test process is killed (no leaked /dev/loopN). A plain `losetup -d` in a destructor
// could detach a device another test has attached meanwhile.
class LoopDevice {
 public:
  explicit LoopDevice(const std::filesystem::path& backing, unsigned sector_size = 512) {
    require_root("a loop device (losetup)");
    std::vector<std::string> argv = {"losetup", "--find", "--show"};
    if (sector_size != 512) {
      argv.push_back("--sector-size");
      argv.push_back(std::to_string(sector_size));
    }
    argv.push_back(backing.string());
    std::string out = run_command(argv);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (out.rfind("/dev/loop", 0) != 0) throw std::runtime_error("losetup printed no device: " + out);
    m_device = out;
    m_hold = ::open(m_device.c_str(), O_RDONLY | O_CLOEXEC);
    loop_info64 info{};
    if (m_hold < 0 || ::ioctl(m_hold, LOOP_GET_STATUS64, &info) != 0) {
      std::string err = std::strerror(errno);
      if (m_hold >= 0) ::close(m_hold);
      run_command({"losetup", "-d", m_device.string()});
      throw std::runtime_error("cannot open " + m_device.string() + ": " + err);
    }
    info.lo_flags |= LO_FLAGS_AUTOCLEAR;
    if (::ioctl(m_hold, LOOP_SET_STATUS64, &info) != 0) {
      std::string err = std::strerror(errno);
      ::close(m_hold);
      run_command({"losetup", "-d", m_device.string()});
      throw std::runtime_error("cannot set autoclear on " + m_device.string() + ": " + err);
    }
  }
  ~LoopDevice() { ::close(m_hold); }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  const std::filesystem::path& path() const { return m_device; }

 private:
  std::filesystem::path m_device;
  int m_hold = -1;
};

// A loop device over a fresh backing file in its own temporary directory.
class ScratchLoop {
 public:
  ScratchLoop(uint64_t size, unsigned char fill, unsigned sector_size = 512)
      : m_backing(make(m_dir / "backing.img", size, fill)), m_loop(m_backing, sector_size) {}
  const std::filesystem::path& path() const { return m_loop.path(); }
  const std::filesystem::path& backing() const { return m_backing; }

 private:
  static std::filesystem::path make(std::filesystem::path p, uint64_t size, unsigned char fill) {
    make_backing_file(p, size, fill);
    return p;
  }
  TempDir m_dir;
  std::filesystem::path m_backing;
  LoopDevice m_loop;
};

// `n` pseudo-random bytes from `seed`, never 0 (holes and zeroed ranges stand out).
inline std::vector<std::byte> nonzero_pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = std::byte(static_cast<unsigned char>((x >> 16) | 1));
  }
  return v;
}

// Reads `length` bytes at `offset` of a file or device through a new descriptor.
inline std::vector<std::byte> read_bytes(const std::filesystem::path& path, uint64_t offset, size_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path.string() + ": " + std::strerror(errno));
  std::vector<std::byte> out(length);
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace cdi::test::sys
