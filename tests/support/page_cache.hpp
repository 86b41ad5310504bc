// SPDX-License-Identifier: Apache-2.0
// Page-cache checks for tests: a real ext4 to write on (tmpfs ignores POSIX_FADV_DONTNEED and its
// pages are never written back, so a tmpfs /tmp would prove nothing), and which pages of a file
// or device are resident (mincore() on a shared mapping, which faults nothing in).
// Ext4Mount needs root, losetup and mkfs.ext4; without them it throws and the test FAILS.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/loop_device.hpp"

namespace cdi::test::sys {

// An ext4 made on a sparse image and mounted through a loop device; unmounted on destruction.
// backing_dir: where the image lives (a small tmpfs there makes the "disk" fail writes once it is
// full: a real writeback error).
class Ext4Mount {
 public:
  Ext4Mount(const std::filesystem::path& backing_dir, uint64_t size)
      : m_image(make(backing_dir / "ext4.img", size)), m_loop(m_image) {
    // No journal and no inode-table zeroing: little metadata, so a small backing tmpfs holds it.
    run_command({"mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-E", "lazy_itable_init=1,nodiscard",
                 m_loop.path().string()});
    if (::mount(m_loop.path().c_str(), m_dir.path().c_str(), "ext4", 0, "errors=continue,noinit_itable") != 0)
      throw std::runtime_error("mount ext4 failed: " + std::string(std::strerror(errno)));
  }
  ~Ext4Mount() { ::umount2(m_dir.path().c_str(), MNT_DETACH); }
  Ext4Mount(const Ext4Mount&) = delete;
  Ext4Mount& operator=(const Ext4Mount&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return m_dir.path() / name; }

 private:
  static std::filesystem::path make(std::filesystem::path p, uint64_t size) {
    make_backing_file(p, size);
    return p;
  }
  TempDir m_dir;
  std::filesystem::path m_image;
  LoopDevice m_loop;
};

// Which pages of [0, length) of path are in the page cache (one bool per page), by mincore() on
// a shared read-only mapping (which faults nothing in).
inline std::vector<bool> resident_pages(const std::filesystem::path& path, uint64_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path.string() + ": " + std::strerror(errno));
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) throw std::runtime_error("mmap " + path.string() + ": " + std::strerror(map_err));
  std::vector<unsigned char> vec((length + page - 1) / page);
  int rc = ::mincore(map, length, vec.data());
  int err = errno;
  ::munmap(map, length);
  if (rc != 0) throw std::runtime_error("mincore " + path.string() + ": " + std::strerror(err));
  std::vector<bool> out(vec.size());
  for (size_t i = 0; i < vec.size(); ++i) out[i] = (vec[i] & 1) != 0;
  return out;
}

// Resident bytes of [lo, hi) in the result of resident_pages.
inline uint64_t resident_bytes(const std::vector<bool>& pages, uint64_t lo, uint64_t hi) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t n = 0;
  for (uint64_t i = lo / page; i < (hi + page - 1) / page && i < pages.size(); ++i) n += pages[i];
  return n * page;
}

}  // namespace cdi::test::sys
