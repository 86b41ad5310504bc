// SPDX-License-Identifier: Apache-2.0
#include "formats/tar/extract.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/tar/tar_source.hpp"

namespace cdi::formats::tar {

namespace {

using detail::EntryKind;
using Components = std::vector<std::string>;

struct ArchiveWriteDeleter {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
using ArchiveWritePtr = std::unique_ptr<archive, ArchiveWriteDeleter>;

// archive_write_disk options. Deliberately absent:
//   OWNER, ACL, XATTR, FFLAGS, MAC_METADATA — never restore ownership, capabilities (stored as
//     xattrs), immutable flags;
//   SECURE_NOABSOLUTEPATHS — we hand libarchive absolute paths under the canonical destination,
//     because a library may not chdir() (process-wide state); our own check refuses absolute
//     entry names before we prefix them;
//   UNLINK — it would silently remove a symlink found in the middle of a path; we refuse instead.
constexpr int k_disk_flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                             ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SPARSE;

std::string join(const Components& c, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < c.size(); ++i) {
    if (i) out += '/';
    out += c[i];
  }
  return out;
}
std::string join(const Components& c) { return join(c, c.size()); }

Components split(std::string_view path) {
  Components out;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty() && part != ".") out.emplace_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

// The components of an entry (or hard link target) path, "" and "." dropped. Absolute paths
// and ".." components are refused outright, even when they would resolve inside dest.
Result<Components> safe_components(std::string_view what, std::string_view path) {
  if (!path.empty() && path.front() == '/')
    return fail(Errc::unsupported, std::string(what) + " " + std::string(path) + ": absolute path refused");
  Components c = split(path);
  for (const auto& part : c)
    if (part == "..")
      return fail(Errc::unsupported, std::string(what) + " " + std::string(path) + ": '..' component refused");
  return c;
}

std::string_view special_name(archive_entry* e) {
  switch (archive_entry_filetype(e)) {
    case AE_IFCHR: return "character device";
    case AE_IFBLK: return "block device";
    case AE_IFIFO: return "FIFO";
    case AE_IFSOCK: return "socket";
    default: return "special file";
  }
}

class Extractor {
 public:
  Extractor(std::filesystem::path root, const ExtractOptions& opts) : m_root(std::move(root)), m_opts(opts) {}

  Result<ExtractStats> run(io::Reader& in) {
    m_source = CDI_TRY(detail::TarSource::open(in, m_opts.cancel));
    m_disk.reset(archive_write_disk_new());
    if (!m_disk) return fail(Errc::internal, "out of memory creating the disk writer");
    if (archive_write_disk_set_options(m_disk.get(), k_disk_flags) != ARCHIVE_OK)
      return std::unexpected(disk_failure("configuring the disk writer"));
    for (;;) {
      if (m_opts.cancel) CDI_TRY(m_opts.cancel->check());
      archive_entry* e = CDI_TRY(m_source->next_header());
      if (e == nullptr) break;
      CDI_TRY(extract_entry(e));
    }
    // Applies the deferred directory modes and times.
    if (archive_write_close(m_disk.get()) != ARCHIVE_OK)
      return std::unexpected(disk_failure("finishing directories"));
    return m_stats;
  }

 private:
  Result<void> extract_entry(archive_entry* e) {
    std::string raw = detail::entry_path(e);
    Components path = CDI_TRY(safe_components("entry", raw));
    EntryKind kind = detail::entry_kind(e);
    if (path.empty()) {
      // "." / "./": the destination itself; keep its own mode and times.
      if (kind == EntryKind::directory) return {};
      return fail(Errc::unsupported, "entry " + raw + " names the destination directory but is a " +
                                         std::string(detail::kind_name(kind)));
    }
    std::string name = join(path);
    // Beyond PATH_MAX libarchive walks the path with chdir(), process-wide state a library
    // must not touch; such paths are refused instead.
    if ((m_root / name).native().size() >= PATH_MAX)
      return fail(Errc::unsupported, "entry " + name.substr(0, 64) + "…: path longer than " +
                                         std::to_string(PATH_MAX - 1) + " bytes refused");
    if (kind == EntryKind::other)
      return fail(Errc::unsupported, "entry " + name + " is a " + std::string(special_name(e)) + "; refused");
    CDI_TRY(check_parents(path, name));

    if (kind == EntryKind::symlink) {
      const char* target = archive_entry_symlink(e);
      if (!target) target = archive_entry_symlink_utf8(e);
      CDI_TRY(check_symlink(path, name, target ? target : ""));
    }
    if (kind == EntryKind::hardlink) {
      Components target = CDI_TRY(check_hardlink(name, archive_entry_hardlink(e)));
      archive_entry_copy_hardlink(e, (m_root / join(target)).c_str());
      // A pax hard link may carry a body; never let it rewrite the linked file.
      archive_entry_set_size(e, 0);
    }

    archive_entry_copy_pathname(e, (m_root / name).c_str());
    archive_entry_set_perm(e, archive_entry_perm(e) & 0777);  // no setuid/setgid/sticky
    archive_entry_xattr_clear(e);
    archive_entry_acl_clear(e);
    archive_entry_set_fflags(e, 0, 0);

    if (archive_write_header(m_disk.get(), e) != ARCHIVE_OK) return std::unexpected(disk_failure(name));
    if (kind == EntryKind::regular) {
      for (;;) {
        if (m_opts.cancel) CDI_TRY(m_opts.cancel->check());
        auto block = CDI_TRY(m_source->next_block());
        if (!block) break;
        if (block->bytes.empty()) continue;
        la_ssize_t rc = archive_write_data_block(m_disk.get(), block->bytes.data(), block->bytes.size(),
                                                 static_cast<la_int64_t>(block->offset));
        if (rc != ARCHIVE_OK) return std::unexpected(disk_failure(name));
        m_stats.bytes += block->bytes.size();
      }
    }
    if (archive_write_finish_entry(m_disk.get()) != ARCHIVE_OK) return std::unexpected(disk_failure(name));

    switch (kind) {
      case EntryKind::regular: ++m_stats.files; break;
      case EntryKind::directory: ++m_stats.dirs; break;
      default: ++m_stats.links; break;
    }
    m_made[name] = kind == EntryKind::hardlink ? EntryKind::regular : kind;
    return {};
  }

  // No parent directory of `path` may be a symlink, whether this archive created it or it was
  // in dest before: writing through it could land anywhere.
  Result<void> check_parents(const Components& path, const std::string& name) const {
    for (size_t n = 1; n < path.size(); ++n) {
      std::string prefix = join(path, n);
      struct stat st {};
      if (::lstat((m_root / prefix).c_str(), &st) != 0) {
        if (errno == ENOENT) return {};  // libarchive creates the rest as directories
        return fail_sys("checking " + prefix + " for " + name);
      }
      if (S_ISLNK(st.st_mode))
        return fail(Errc::unsupported, "entry " + name + " would be written through symlink " + prefix + "; refused");
    }
    return {};
  }

  // A symlink target must stay inside dest however it is resolved later. Lexical resolution is
  // only sound when no ".." follows a component that may itself be a symlink, so ".." is
  // allowed as leading components only (as in "../lib/libfoo.so"), climbing at most to dest.
  // Parents of every entry are real directories (check_parents), so such a target climbs real
  // directories and then descends; descending through a symlink this archive made is safe by
  // induction, through one that was already in dest is not, and is refused.
  Result<void> check_symlink(const Components& path, const std::string& name, std::string_view target) const {
    std::string shown = "symlink " + name + " -> " + std::string(target);
    if (target.empty()) return fail(Errc::corrupt_input, shown + ": empty target");
    if (target.front() == '/') return fail(Errc::unsupported, shown + ": absolute target refused");
    Components parts = split(target);
    size_t ups = 0;
    while (ups < parts.size() && parts[ups] == "..") ++ups;
    for (size_t i = ups; i < parts.size(); ++i)
      if (parts[i] == "..")
        return fail(Errc::unsupported, shown + ": '..' after a directory name refused (it could escape through another symlink)");
    size_t depth = path.size() - 1;  // directories above the link inside dest
    if (ups > depth) return fail(Errc::unsupported, shown + ": points outside the destination; refused");
    Components at(path.begin(), path.begin() + static_cast<std::ptrdiff_t>(depth - ups));
    for (size_t i = ups; i < parts.size(); ++i) {
      at.push_back(parts[i]);
      std::string p = join(at);
      struct stat st {};
      if (::lstat((m_root / p).c_str(), &st) != 0) {
        if (errno == ENOENT) break;
        return fail_sys("checking " + p + " for " + shown);
      }
      if (!S_ISLNK(st.st_mode)) continue;
      auto made = m_made.find(p);
      if (made == m_made.end() || made->second != EntryKind::symlink)
        return fail(Errc::unsupported, shown + ": passes through symlink " + p +
                                           " that is not from this archive; refused");
      break;  // our own symlink stays inside dest by the same rules
    }
    return {};
  }

  // A hard link must point at a regular file extracted earlier from this archive.
  Result<Components> check_hardlink(const std::string& name, const char* raw_target) const {
    std::string target_text = raw_target ? raw_target : "";
    std::string shown = "hard link " + name + " -> " + target_text;
    Components target = CDI_TRY(safe_components(shown + ": target", target_text));
    if (target.empty()) return fail(Errc::corrupt_input, shown + ": empty target");
    CDI_TRY(check_parents(target, shown));
    std::string key = join(target);
    auto made = m_made.find(key);
    if (made == m_made.end())
      return fail(Errc::corrupt_input, shown + ": target is not a file extracted earlier from this archive");
    if (made->second != EntryKind::regular)
      return fail(Errc::unsupported, shown + ": target is a " + std::string(detail::kind_name(made->second)) +
                                         "; refused");
    return target;
  }

  // archive_write_disk failed: a system errno (ENOSPC, EACCES, …) keeps its class; libarchive's
  // own refusals (its symlink / ".." guards) carry no errno and are unsupported.
  Error disk_failure(const std::string& what) const {
    archive* a = m_disk.get();
    int err = a ? archive_errno(a) : 0;
    const char* msg = a ? archive_error_string(a) : nullptr;
    std::string text = "extracting " + what + ": " + (msg ? msg : "unknown libarchive error");
    if (err > 0) return Error(sys_error(std::string(), err).code(), std::move(text), err);
    return Error(Errc::unsupported, std::move(text));
  }

  std::filesystem::path m_root;
  ExtractOptions m_opts;
  std::unique_ptr<detail::TarSource> m_source;
  ArchiveWritePtr m_disk;
  std::unordered_map<std::string, EntryKind> m_made;  // what this archive created, by path
  ExtractStats m_stats;
};

Result<ExtractStats> extract_into(io::Reader& in, const std::filesystem::path& dest, const ExtractOptions& opts) {
  std::error_code ec;
  // libarchive's SECURE_SYMLINKS rejects a symlink anywhere in the path, dest included, so
  // resolve dest once up front.
  std::filesystem::path root = std::filesystem::canonical(dest, ec);
  if (ec) return fail(Errc::invalid_argument, "destination " + dest.string() + ": " + ec.message());
  if (!std::filesystem::is_directory(root, ec))
    return fail(Errc::invalid_argument, "destination " + dest.string() + " is not a directory");
  Extractor x(std::move(root), opts);
  return x.run(in);
}

}  // namespace

Result<ExtractStats> extract(io::Reader& in, const std::filesystem::path& dest, const ExtractOptions& opts) {
  auto r = extract_into(in, dest, opts);
  if (!r) return std::unexpected(std::move(r).error().context("tar"));
  return r;
}

}  // namespace cdi::formats::tar
