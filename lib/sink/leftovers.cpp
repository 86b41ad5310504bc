// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/leftovers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <cerrno>
#include <cstdlib>
#include <vector>

namespace cdi::sink {
namespace fs = std::filesystem;

namespace {

constexpr size_t k_max_name_part = 180;   // keeps the partial name under NAME_MAX (255)
constexpr std::string_view k_partial_infix = ".cdi-import-partial-";
constexpr std::string_view k_alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr size_t k_random_chars = 6;
// The liveness lock: one byte far past any data (qemu-img locks bytes 100..~300).
constexpr off_t k_lock_offset = off_t{1} << 62;

std::string random_chars() {
  std::array<unsigned char, k_random_chars> rnd{};
  size_t got = 0;
  while (got < rnd.size()) {
    ssize_t n = ::getrandom(rnd.data() + got, rnd.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // getrandom cannot really fail for 6 bytes; fall back to pid/address entropy.
      uint64_t x = static_cast<uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ull ^ reinterpret_cast<uintptr_t>(&rnd);
      for (auto& b : rnd) b = static_cast<unsigned char>(x >>= 7);
      break;
    }
    got += static_cast<size_t>(n);
  }
  std::string out;
  for (unsigned char b : rnd) out += k_alphabet[b % k_alphabet.size()];
  return out;
}

bool random_part_ok(std::string_view s) {
  if (s.size() != k_random_chars) return false;
  for (char c : s)
    if (k_alphabet.find(c) == std::string_view::npos) return false;
  return true;
}

std::string partial_prefix(std::string_view target_name) {
  // Built by append: GCC 12 at -O3 raises a false -Werror=restrict on "." + substr (GCC bug 105329).
  std::string out(1, '.');
  out.append(target_name.substr(0, k_max_name_part));
  out.append(k_partial_infix);
  return out;
}

// Names in the directory open at dirfd (a dup is read, dirfd's offset is untouched).
Result<std::vector<std::string>> list_dir(int dirfd) {
  int dup = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup < 0) return fail_sys("reading the target directory");
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int err = errno;
    ::close(dup);
    return fail_sys("reading the target directory", err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  int err = errno;
  ::closedir(d);
  if (err != 0) return fail_sys("reading the target directory", err);
  return names;
}

uint64_t allocated_below(const fs::path& p) {
  uint64_t bytes = 0;
  struct stat st {};
  if (::lstat(p.c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(p, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (::lstat(it->path().c_str(), &st) == 0) bytes += static_cast<uint64_t>(st.st_blocks) * 512;
  return bytes;
}

std::string marker_text(const struct stat& dir_st) {
  std::string s = "cdi-import staging directory dev=";
  s += std::to_string(static_cast<uint64_t>(dir_st.st_dev));
  s += " ino=";
  s += std::to_string(static_cast<uint64_t>(dir_st.st_ino));
  s += '\n';
  return s;
}

}  // namespace

std::string partial_name(std::string_view target_name) { return partial_prefix(target_name) + random_chars(); }

bool is_partial_name(std::string_view entry, std::string_view target_name) {
  if (target_name.empty()) return false;
  const std::string prefix = partial_prefix(target_name);
  return entry.starts_with(prefix) && random_part_ok(entry.substr(prefix.size()));
}

namespace {
// The write lock on byte k_lock_offset that marks a live entry.
struct flock live_lock() {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = k_lock_offset;
  fl.l_len = 1;
  return fl;
}

// The one scan behind both sweeps: for each entry of dirfd, `stale(name)` returns the bytes it
// holds when it is a leftover to remove (nullopt: not ours, in use, or changed), and
// `remove(name)` removes it; what went is counted.
template <class Stale, class Remove>
Result<Removed> sweep(int dirfd, Stale stale, Remove remove) {
  Removed out;
  auto names = CDI_TRY(list_dir(dirfd));
  for (const auto& name : names) {
    std::optional<uint64_t> bytes = stale(name);
    if (!bytes || !remove(name)) continue;
    ++out.entries;
    out.bytes += *bytes;
  }
  return out;
}
}  // namespace

bool hold_live_lock(int fd) {
  struct flock fl = live_lock();
  return ::fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

bool live_lock_held(int fd) {
  struct flock fl = live_lock();
  // Without lock support nobody can hold the lock: the entry counts as stale.
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return false;
  return fl.l_type != F_UNLCK;
}

Result<Removed> remove_stale_partials_at(int dirfd, std::string_view target_name) {
  auto stale = [&](const std::string& name) -> std::optional<uint64_t> {
    if (!is_partial_name(name, target_name)) return std::nullopt;
    // O_NOFOLLOW: a symlink with our name is not ours; O_NONBLOCK: never hang on a FIFO.
    util::Fd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    if (live_lock_held(fd.get())) return std::nullopt;   // a running import's file
    // The name must still be this inode (not replaced since we opened it).
    struct stat now {};
    if (::fstatat(dirfd, name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0 || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev)
      return std::nullopt;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  return sweep(dirfd, stale, [&](const std::string& name) { return ::unlinkat(dirfd, name.c_str(), 0) == 0; });
}

Result<Removed> remove_stale_partials(const fs::path& target) {
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..") return Removed{};
  fs::path parent = target.parent_path();
  if (parent.empty()) parent = ".";
  util::Fd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT || errno == ENOTDIR) return Removed{};
    return fail_sys("opening " + parent.string());
  }
  return remove_stale_partials_at(dir.get(), name);
}

bool is_staging_name(std::string_view entry) {
  return entry.starts_with(k_staging_prefix) && random_part_ok(entry.substr(k_staging_prefix.size()));
}

Result<std::unique_ptr<StagingDir>> StagingDir::create(const fs::path& dir) {
  // mkdtemp's XXXXXX are 6 of [A-Za-z0-9], as is_staging_name expects.
  std::string tmpl = (dir / (std::string(k_staging_prefix) + "XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) return fail_sys("creating a staging directory in " + dir.string());
  fs::path path = tmpl;
  auto undo = [&] {
    std::error_code ec;
    fs::remove_all(path, ec);
  };
  util::Fd d(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  struct stat st {};
  if (!d || ::fstat(d.get(), &st) != 0) {
    int err = errno;
    undo();
    return fail_sys("opening the staging directory " + path.string(), err);
  }
  const std::string marker_name(k_staging_marker);
  util::Fd marker(::openat(d.get(), marker_name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!marker) {
    int err = errno;
    undo();
    return fail_sys("creating the staging marker in " + path.string(), err);
  }
  hold_live_lock(marker.get());
  const std::string text = marker_text(st);
  if (::write(marker.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    int err = errno;
    undo();
    return fail_sys("writing the staging marker in " + path.string(), err);
  }
  if (::mkdirat(d.get(), "tree", 0755) != 0) {
    int err = errno;
    undo();
    return fail_sys("creating " + (path / "tree").string(), err);
  }
  return std::unique_ptr<StagingDir>(new StagingDir(std::move(path), std::move(marker)));
}

void StagingDir::remove() noexcept {
  if (m_path.empty()) return;
  std::error_code ec;
  fs::remove_all(m_path, ec);
  m_path.clear();
  m_marker.reset();
}

Result<Removed> remove_stale_staging_dirs(const fs::path& dir) {
  util::Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd) {
    if (errno == ENOENT || errno == ENOTDIR) return Removed{};
    return fail_sys("opening " + dir.string());
  }
  const std::string marker_name(k_staging_marker);
  auto stale = [&](const std::string& name) -> std::optional<uint64_t> {
    if (!is_staging_name(name)) return std::nullopt;
    util::Fd sd(::openat(dfd.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    struct stat st {};
    if (!sd || ::fstat(sd.get(), &st) != 0) return std::nullopt;
    util::Fd marker(::openat(sd.get(), marker_name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat mst {};
    if (!marker || ::fstat(marker.get(), &mst) != 0 || !S_ISREG(mst.st_mode)) return std::nullopt;
    std::array<char, 128> buf{};
    ssize_t n = ::pread(marker.get(), buf.data(), buf.size(), 0);
    if (n <= 0 || std::string_view(buf.data(), static_cast<size_t>(n)) != marker_text(st)) return std::nullopt;
    if (live_lock_held(marker.get())) return std::nullopt;   // a running import's stage
    return allocated_below(dir / name);
  };
  return sweep(dfd.get(), stale, [&](const std::string& name) {
    std::error_code ec;
    return fs::remove_all(dir / name, ec) > 0 && !ec;
  });
}

}  // namespace cdi::sink
