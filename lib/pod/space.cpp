// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/space.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>

#include <algorithm>
#include <cmath>

#include "lib/util/fd.hpp"

namespace cdi::pod {

uint64_t usable_space(uint64_t available, double overhead) {
  double with_overhead = std::ceil(static_cast<double>(available) / (1.0 + overhead));
  auto bytes = static_cast<uint64_t>(with_overhead);
  return bytes / k_align * k_align;
}

uint64_t available_space(uint64_t free_bytes, std::optional<uint64_t> request) {
  return request ? std::min(free_bytes, *request) : free_bytes;
}

std::optional<uint64_t> resize_target(std::optional<uint64_t> request, uint64_t available, double overhead) {
  if (!request) return std::nullopt;
  return std::min(*request, usable_space(available, overhead));
}

Result<uint64_t> filesystem_free(const std::filesystem::path& dir) {
  struct statfs st {};
  if (::statfs(dir.c_str(), &st) != 0) return fail_sys("statfs " + dir.string());
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_bsize);
}

Result<uint64_t> block_device_size(const std::filesystem::path& dev) {
  util::Fd fd(::open(dev.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_sys("opening " + dev.string());
  uint64_t size = 0;
  if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return fail_sys("BLKGETSIZE64 " + dev.string());
  return size;
}

}  // namespace cdi::pod
