// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the tar tests: tars built in memory with libarchive's writer (exact bytes:
// headers, data, two zero blocks, optionally padded to a 10 KiB record), tars built by the real
// GNU tar (sparse entries), temp directories and tree listings.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace cdi::test::tar {

enum class Type { file, dir, symlink, hardlink, chardev, fifo };
enum class Format { pax, ustar, gnu };

struct Spec {
  std::string path;
  Type type = Type::file;
  std::vector<std::byte> data;  // file contents
  std::string link;             // symlink target / hard link target
  unsigned mode = 0644;
  time_t mtime = 1700000000;
};

inline Spec reg(std::string path, std::vector<std::byte> data, unsigned mode = 0644) {
  return {std::move(path), Type::file, std::move(data), {}, mode};
}
inline Spec dir(std::string path, unsigned mode = 0755) { return {std::move(path), Type::dir, {}, {}, mode}; }
inline Spec sym(std::string path, std::string target) {
  return {std::move(path), Type::symlink, {}, std::move(target), 0777};
}
inline Spec hard(std::string path, std::string target) {
  return {std::move(path), Type::hardlink, {}, std::move(target), 0644};
}

inline std::vector<std::byte> pattern(size_t n, unsigned seed = 1) {
  std::vector<std::byte> v(n);
  uint32_t x = seed * 2654435761u + 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    v[i] = static_cast<std::byte>(x >> 24);
  }
  return v;
}

// Builds a tar in memory. pad_record=false: exactly headers + data + the 1024-byte end marker;
// true: padded with zeros to a multiple of 10240 bytes, as tar(1) writes.
inline std::vector<std::byte> make_tar(const std::vector<Spec>& entries, Format fmt = Format::pax,
                                       bool pad_record = false) {
  struct WriteFree {
    void operator()(archive* a) const { archive_write_free(a); }
  };
  struct EntryFree {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
  };
  std::vector<std::byte> out;
  std::unique_ptr<archive, WriteFree> a(archive_write_new());
  switch (fmt) {
    case Format::pax: archive_write_set_format_pax_restricted(a.get()); break;
    case Format::ustar: archive_write_set_format_ustar(a.get()); break;
    case Format::gnu: archive_write_set_format_gnutar(a.get()); break;
  }
  archive_write_add_filter_none(a.get());
  archive_write_set_bytes_per_block(a.get(), 10240);
  archive_write_set_bytes_in_last_block(a.get(), pad_record ? 10240 : 1);
  auto writer = [](archive*, void* client, const void* buf, size_t n) -> la_ssize_t {
    auto* v = static_cast<std::vector<std::byte>*>(client);
    auto* p = static_cast<const std::byte*>(buf);
    v->insert(v->end(), p, p + n);
    return static_cast<la_ssize_t>(n);
  };
  if (archive_write_open(a.get(), &out, nullptr, writer, nullptr) != ARCHIVE_OK)
    throw std::runtime_error(archive_error_string(a.get()));
  for (const auto& s : entries) {
    std::unique_ptr<archive_entry, EntryFree> e(archive_entry_new());
    archive_entry_set_pathname(e.get(), s.path.c_str());
    archive_entry_set_perm(e.get(), s.mode);
    archive_entry_set_mtime(e.get(), s.mtime, 0);
    archive_entry_set_uid(e.get(), 1000);
    archive_entry_set_gid(e.get(), 1000);
    switch (s.type) {
      case Type::file:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(s.data.size()));
        break;
      case Type::dir: archive_entry_set_filetype(e.get(), AE_IFDIR); break;
      case Type::symlink:
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), s.link.c_str());
        break;
      case Type::hardlink:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), s.link.c_str());
        break;
      case Type::chardev:
        archive_entry_set_filetype(e.get(), AE_IFCHR);
        archive_entry_set_rdev(e.get(), makedev(1, 3));
        break;
      case Type::fifo: archive_entry_set_filetype(e.get(), AE_IFIFO); break;
    }
    if (archive_write_header(a.get(), e.get()) < ARCHIVE_WARN) throw std::runtime_error(archive_error_string(a.get()));
    if (!s.data.empty() && archive_write_data(a.get(), s.data.data(), s.data.size()) < 0)
      throw std::runtime_error(archive_error_string(a.get()));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) throw std::runtime_error(archive_error_string(a.get()));
  return out;
}

// A fresh directory under the system temp dir, removed (permissions forced) on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cdi-tar-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    m_path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(m_path, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0700);
    std::filesystem::remove_all(m_path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return m_path; }

 private:
  std::filesystem::path m_path;
};

// Every path below root (relative, symlinks not followed), sorted.
inline std::set<std::string> tree(const std::filesystem::path& root) {
  std::set<std::string> out;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it)
    out.insert(it->path().lexically_relative(root).string());  // relative() would follow symlinks
  return out;
}

inline std::vector<std::byte> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> v(c.size());
  if (!c.empty()) std::memcpy(v.data(), c.data(), c.size());
  return v;
}

inline void write_file(const std::filesystem::path& p, std::string_view s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Writes a sparse file: `size` bytes, with `pieces` (offset, data) and holes elsewhere.
inline void write_sparse(const std::filesystem::path& p, uint64_t size,
                         const std::vector<std::pair<uint64_t, std::vector<std::byte>>>& pieces) {
  std::fstream f(p, std::ios::binary | std::ios::out | std::ios::trunc);
  for (const auto& [off, data] : pieces) {
    f.seekp(static_cast<std::streamoff>(off));
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  f.close();
  std::filesystem::resize_file(p, size);
}

// The logical contents of the same sparse file, for comparison.
inline std::vector<std::byte> sparse_image(uint64_t size,
                                           const std::vector<std::pair<uint64_t, std::vector<std::byte>>>& pieces) {
  std::vector<std::byte> v(size);
  for (const auto& [off, data] : pieces) std::memcpy(v.data() + off, data.data(), data.size());
  return v;
}

// Runs a shell command; returns its exit status.
inline int run(const std::string& cmd) { return std::system(cmd.c_str()); }

}  // namespace cdi::test::tar
