// SPDX-License-Identifier: Apache-2.0
#include "lib/clone/local_copy.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

#include "lib/clone/clone_stream.hpp"
#include "lib/io/reader.hpp"
#include "lib/source/in_use.hpp"
#include "lib/util/fd.hpp"

namespace cdi::clone {

namespace {

constexpr size_t k_buf = 1u << 20;
constexpr size_t k_zero_grain = 64u << 10;

bool is_zero(const std::byte* p, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
    if ((i & 4095) == 0 && acc) return false;
  }
  for (; i < n; ++i) acc |= std::to_integer<uint64_t>(p[i]);
  return acc == 0;
}

Result<void> pwrite_all(int fd, const std::byte* p, size_t n, uint64_t off, const std::string& what) {
  while (n) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return fail_sys("writing " + what);
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return {};
}

// Zeroes [off, off+len) of a device: BLKZEROOUT, else plain zero writes.
Result<void> zero_device(int fd, uint64_t off, uint64_t len, const std::string& what) {
  uint64_t range[2] = {off, len};
  if (::ioctl(fd, BLKZEROOUT, range) == 0) return {};
  static const std::vector<std::byte> zeros(k_buf);
  while (len) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(len, zeros.size()));
    CDI_TRY(pwrite_all(fd, zeros.data(), n, off, what));
    off += n;
    len -= n;
  }
  return {};
}

}  // namespace

std::filesystem::path disk_path(const std::filesystem::path& p) {
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return p / "disk.img";
  return p;
}

Result<LocalCopyResult> local_copy(const std::filesystem::path& from_arg, const std::filesystem::path& to_arg,
                                   const LocalCopyOptions& opts) {
  LocalCopyResult res;
  res.from = disk_path(from_arg);
  res.to = disk_path(to_arg);
  const std::string src = res.from.string(), dst = res.to.string();

  struct stat sst {};
  if (::stat(src.c_str(), &sst) != 0) return fail_sys(src);
  if (!S_ISREG(sst.st_mode) && !S_ISBLK(sst.st_mode))
    return fail(Errc::invalid_argument, src + " is neither a block device, a file nor a directory holding disk.img");
  if (!opts.force_shared) {
    if (S_ISBLK(sst.st_mode)) CDI_TRY(source::check_device_free(src));
    else CDI_TRY(source::check_image_free(src));
  }

  struct stat dst_st {};
  bool dst_exists = ::stat(dst.c_str(), &dst_st) == 0;
  if (dst_exists && dst_st.st_dev == sst.st_dev && dst_st.st_ino == sst.st_ino)
    return fail(Errc::invalid_argument, src + " and " + dst + " are the same file");
  bool dst_block = dst_exists && S_ISBLK(dst_st.st_mode);
  if (dst_exists && !dst_block && !S_ISREG(dst_st.st_mode))
    return fail(Errc::invalid_argument, dst + " is neither a block device, a file nor a directory");
  if (dst_block && S_ISBLK(sst.st_mode) && dst_st.st_rdev == sst.st_rdev)
    return fail(Errc::invalid_argument, src + " and " + dst + " are the same device");
  if (dst_block) {
    auto why = CDI_TRY(source::device_in_use(dst));
    if (why) return fail(Errc::busy, "target " + dst + " is in use (" + *why + ")");
  } else if (dst_exists) {
    if (auto free = source::check_image_free(dst); !free && free.error().code() == Errc::busy)
      return fail(Errc::busy, "target " + dst + " is in use (locked by a running qemu)");
  }

  auto reader = CDI_TRY(open_raw_stream(res.from, opts.cancel));
  res.size = reader->info().size.value_or(0);

  // A file target is written under a temporary name beside it and renamed over DEST at the end:
  // a failed copy leaves DEST as it was and nothing else behind.
  std::string tmp;
  util::Fd out;
  if (dst_block) {
    out.reset(::open(dst.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_EXCL));
    if (!out) return fail_sys("opening " + dst);
  } else {
    tmp = dst + ".cdi-import-XXXXXX";
    out.reset(::mkostemp(tmp.data(), O_CLOEXEC));
    if (!out) return fail_sys("creating a file beside " + dst);
    ::fchmod(out.get(), 0644);
  }
  struct TmpGuard {
    std::string* path;
    ~TmpGuard() {
      if (!path->empty()) ::unlink(path->c_str());
    }
  } guard{&tmp};
  if (dst_block) {
    uint64_t cap = 0;
    if (::ioctl(out.get(), BLKGETSIZE64, &cap) != 0) return fail_sys("BLKGETSIZE64 on " + dst);
    if (cap < res.size)
      return fail(Errc::limit, Reason::too_small, "target " + dst + " (" + std::to_string(cap) + " bytes) is smaller than the source (" +
                                   std::to_string(res.size) + " bytes)");
  } else if (::ftruncate(out.get(), static_cast<off_t>(res.size)) != 0) {
    return fail_sys("sizing " + dst);
  }

  std::vector<std::byte> buf(k_buf);
  uint64_t pos = 0;
  uint64_t zero_start = 0, zero_len = 0;   // pending zero run (devices)
  auto flush_zeros = [&]() -> Result<void> {
    if (zero_len && dst_block) CDI_TRY(zero_device(out.get(), zero_start, zero_len, dst));
    zero_len = 0;
    return {};
  };
  for (;;) {
    size_t n = CDI_TRY(io::read_full(*reader, buf));
    if (n == 0) break;
    for (size_t off = 0; off < n; off += k_zero_grain) {
      size_t len = std::min(k_zero_grain, n - off);
      uint64_t at = pos + off;
      if (is_zero(buf.data() + off, len)) {
        if (!zero_len) zero_start = at;
        zero_len += len;
        continue;
      }
      CDI_TRY(flush_zeros());
      CDI_TRY(pwrite_all(out.get(), buf.data() + off, len, at, dst));
      res.data_bytes += len;
    }
    pos += n;
    if (opts.copied) opts.copied->store(pos, std::memory_order_relaxed);
    if (n < buf.size()) break;
  }
  CDI_TRY(flush_zeros());
  if (pos != res.size) return fail(Errc::io, src + " changed size while it was copied");
  if (::fsync(out.get()) != 0) return fail_sys("fsync " + dst);
  if (!tmp.empty()) {
    if (::rename(tmp.c_str(), dst.c_str()) != 0) return fail_sys("renaming to " + dst);
    tmp.clear();
  }
  return res;
}

}  // namespace cdi::clone
