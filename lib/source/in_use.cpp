// SPDX-License-Identifier: Apache-2.0
#include "lib/source/in_use.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "lib/util/fd.hpp"
#include "lib/util/mountinfo.hpp"

namespace cdi::source {

namespace {

// qemu block/file-posix.c: a holder of permission bit i takes a shared lock on byte 100 + i and,
// for each permission it does not share, on byte 200 + i. Bits: 0 consistent-read, 1 write,
// 2 write-unchanged, 3 resize. We want consistent-read and do not share write or resize, exactly
// as `qemu-img convert` without -U.
constexpr std::array<off_t, 3> k_qemu_conflict_bytes = {100 + 1, 100 + 3, 200 + 0};

}  // namespace

Error in_use_error(const std::string& path, const std::string& why) {
  return Error(Errc::busy, Reason::in_use, "source " + path + " is in use" + why + "; power off the VM that uses it")
      .with_hint(" (or pass --force-shared)");
}

bool image_in_use(int fd) {
  for (off_t byte : k_qemu_conflict_bytes) {
    struct flock fl {};
    fl.l_type = F_WRLCK;  // conflicts with any lock another open file description holds
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return false;  // no OFD locks here: cannot tell
    if (fl.l_type != F_UNLCK) return true;
  }
  return false;
}

std::optional<std::string> device_mount_point(dev_t rdev) {
  // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  const std::string want = std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt;
    if (!(ls >> id >> parent >> devno >> root >> mnt)) continue;
    if (devno == want) return util::unescape_mountinfo(mnt);
  }
  return std::nullopt;
}

Result<std::optional<std::string>> device_in_use(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail_sys(path);
  if (S_ISBLK(st.st_mode)) {
    if (auto m = device_mount_point(st.st_rdev)) return std::optional<std::string>("mounted at " + *m);
  }
  for (int attempt = 0;; ++attempt) {
    util::Fd probe(::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC | O_NOCTTY));
    if (probe) return std::optional<std::string>();
    if (errno != EBUSY) return fail_sys("opening " + path);
    if (attempt == 4) return std::optional<std::string>("mounted or held open exclusively");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<void> check_device_free(const std::string& path) {
  auto why = CDI_TRY(device_in_use(path));
  if (why) return std::unexpected(in_use_error(path, " (" + *why + ")"));
  return {};
}

Result<void> check_image_free(const std::string& path) {
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return fail_sys(path);
  if (image_in_use(fd.get())) return std::unexpected(in_use_error(path, " (locked by a running qemu)"));
  return {};
}

Result<void> check_tree_free(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::recursive_directory_iterator it(dir, std::filesystem::directory_options::skip_permission_denied, ec),
      end;
  if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
    auto st = it->symlink_status(ec);
    if (ec) continue;
    // Only "in use" counts here: a file we cannot open is for the copy (tar) to report.
    Result<void> r;
    if (st.type() == std::filesystem::file_type::regular) r = check_image_free(it->path().string());
    else if (st.type() == std::filesystem::file_type::block) r = check_device_free(it->path().string());
    if (!r && r.error().code() == Errc::busy) return r;
  }
  if (ec) return fail(Errc::io, "reading " + dir.string() + ": " + ec.message());
  return {};
}

}  // namespace cdi::source
