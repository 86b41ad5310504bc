// SPDX-License-Identifier: Apache-2.0
#include "formats/tar/tar_source.hpp"

#include <cerrno>
#include <cstring>

namespace cdi::formats::tar::detail {

namespace {

constexpr size_t k_buffer_bytes = 1 << 20;  // one upstream read per libarchive callback
constexpr uint64_t k_block = 512;
constexpr uint64_t k_end_marker = 2 * k_block;

bool all_zero(std::span<const std::byte> s) {
  // memcmp against itself shifted by one is the vectorised "is everything equal to s[0]".
  return s.empty() || (s[0] == std::byte{0} && std::memcmp(s.data(), s.data() + 1, s.size() - 1) == 0);
}

// Index of the last non-zero byte of s. Data blocks usually end in a non-zero byte, so this is
// O(1) for them; runs of zeros are skipped 4 KiB at a time.
std::optional<size_t> last_nonzero(std::span<const std::byte> s) {
  constexpr size_t k_step = 4096;
  size_t end = s.size();
  while (end > 0) {
    size_t begin = end > k_step ? end - k_step : 0;
    if (!all_zero(s.subspan(begin, end - begin))) {
      for (size_t i = end; i-- > begin;)
        if (s[i] != std::byte{0}) return i;
    }
    end = begin;
  }
  return std::nullopt;
}

}  // namespace

EntryKind entry_kind(archive_entry* e) {
  if (archive_entry_hardlink(e) != nullptr) return EntryKind::hardlink;
  switch (archive_entry_filetype(e)) {
    case AE_IFREG: return EntryKind::regular;
    case AE_IFDIR: return EntryKind::directory;
    case AE_IFLNK: return EntryKind::symlink;
    default: return EntryKind::other;
  }
}

std::string_view kind_name(EntryKind k) {
  switch (k) {
    case EntryKind::regular: return "file";
    case EntryKind::directory: return "directory";
    case EntryKind::symlink: return "symlink";
    case EntryKind::hardlink: return "hard link";
    case EntryKind::other: return "device/fifo/socket";
  }
  return "?";
}

std::string entry_path(archive_entry* e) {
  if (const char* p = archive_entry_pathname(e)) return p;
  if (const char* p = archive_entry_pathname_utf8(e)) return p;
  return {};
}

std::string strip_dot_slash(std::string_view path) {
  while (path.size() >= 2 && path[0] == '.' && path[1] == '/') {
    path.remove_prefix(2);
    while (!path.empty() && path[0] == '/') path.remove_prefix(1);
  }
  return std::string(path);
}

TarSource::TarSource(io::Reader& in, const util::CancelToken* cancel)
    : m_in(in), m_cancel(cancel), m_buf(k_buffer_bytes) {}

Result<std::unique_ptr<TarSource>> TarSource::open(io::Reader& in, const util::CancelToken* cancel) {
  std::unique_ptr<TarSource> self(new TarSource(in, cancel));
  self->m_archive.reset(archive_read_new());
  archive* a = self->m_archive.get();
  if (a == nullptr) return fail(Errc::internal, "out of memory creating the archive reader");
  // Tar family only (ustar, pax, GNU incl. sparse and long names, v7). No decompression
  // filters: a compressed tar reaching this point was not peeled by the planner, and letting
  // libarchive decompress would bypass our codec limits and accounting.
  if (archive_read_support_format_tar(a) != ARCHIVE_OK || archive_read_support_filter_none(a) != ARCHIVE_OK)
    return fail(Errc::internal, std::string("configuring libarchive: ") + archive_error_string(a));
  // archive_read_open already pulls the first bytes (filter bidding), so it can fail upstream.
  if (archive_read_open(a, self.get(), nullptr, &TarSource::read_callback, nullptr) != ARCHIVE_OK)
    return std::unexpected(self->archive_failure());
  return self;
}

la_ssize_t TarSource::read_callback(archive* a, void* client, const void** buffer) {
  auto* self = static_cast<TarSource*>(client);
  *buffer = self->m_buf.data();
  if (self->m_upstream_eof) return 0;
  if (self->m_cancel) {
    if (auto c = self->m_cancel->check(); !c) {
      self->m_upstream_error = std::move(c).error();
      archive_set_error(a, ECANCELED, "cancelled");
      return ARCHIVE_FATAL;
    }
  }
  auto n = self->m_in.read(self->m_buf);
  if (!n) {
    self->m_upstream_error = std::move(n).error();
    archive_set_error(a, EIO, "upstream read failed");
    return ARCHIVE_FATAL;
  }
  if (*n == 0) {
    self->m_upstream_eof = true;
    return 0;
  }
  self->note_bytes(*n);
  return static_cast<la_ssize_t>(*n);
}

void TarSource::note_bytes(size_t n) {
  if (auto i = last_nonzero(std::span<const std::byte>(m_buf.data(), n))) m_nonzero_end = m_handed + *i + 1;
  m_handed += n;
}

uint64_t TarSource::position() const {
  int64_t p = archive_filter_bytes(m_archive.get(), -1);
  return p < 0 ? 0 : static_cast<uint64_t>(p);
}

Error TarSource::archive_failure() const {
  if (m_upstream_error) return *m_upstream_error;
  archive* a = m_archive.get();
  const char* msg = archive_error_string(a);
  std::string detail = msg ? msg : "unknown libarchive error";
  if (archive_errno(a) == ENOMEM) return Error(Errc::internal, "out of memory: " + detail);
  // libarchive says "Truncated tar archive" / "Truncated input file (needed …)" for a short
  // input and other words for damage; both are corrupt input, the message tells them apart.
  bool truncated = detail.find("runcated") != std::string::npos;
  std::string where = " at byte " + std::to_string(position());
  return Error(Errc::corrupt_input, truncated ? Reason::truncated : Reason::none,
               (truncated ? "truncated archive" : "damaged archive") + where + " (" + detail + ")");
}

Result<archive_entry*> TarSource::next_header() {
  if (m_done) return fail(Errc::internal, "tar: next_header after the end of the archive");
  archive* a = m_archive.get();
  if (m_in_entry) {
    // Skip the rest of the entry (and its padding) now, so that position() is exactly where
    // the next header — or the end-of-archive marker — starts.
    if (archive_read_data_skip(a) != ARCHIVE_OK) return std::unexpected(archive_failure());
    m_in_entry = false;
  }
  m_entry_end = position();
  archive_entry* e = nullptr;
  int rc = archive_read_next_header(a, &e);
  if (rc == ARCHIVE_EOF) {
    CDI_TRY(check_end_of_archive());
    m_done = true;
    return nullptr;
  }
  // ARCHIVE_WARN: the entry is usable (e.g. a name not representable in the C locale, an
  // ignored malformed pax keyword); anything worse, including RETRY after a bad checksum, is
  // fatal for us: we never resynchronise on a damaged stream.
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return std::unexpected(archive_failure());
  m_in_entry = true;
  return e;
}

Result<std::optional<DataBlock>> TarSource::next_block() {
  if (!m_in_entry) return std::optional<DataBlock>{};
  const void* buf = nullptr;
  size_t size = 0;
  la_int64_t offset = 0;
  int rc = archive_read_data_block(m_archive.get(), &buf, &size, &offset);
  if (rc == ARCHIVE_EOF) return std::optional<DataBlock>{};
  if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return std::unexpected(archive_failure());
  if (offset < 0) return fail(Errc::corrupt_input, "negative data offset in entry");
  return DataBlock{std::span<const std::byte>(static_cast<const std::byte*>(buf), size),
                   static_cast<uint64_t>(offset)};
}

Result<void> TarSource::check_end_of_archive() {
  // libarchive stopped at m_entry_end: it saw a zero block there (and consumed a second one if
  // present) or the input ended at that header boundary. Everything still in libarchive's
  // read-ahead and everything the upstream has left was or is now scanned by note_bytes, so
  // m_nonzero_end covers the whole stream without us peeking into libarchive's buffers.
  while (!m_upstream_eof) {
    if (m_cancel) CDI_TRY(m_cancel->check());
    size_t n = CDI_TRY(m_in.read(m_buf));
    if (n == 0) {
      m_upstream_eof = true;
      break;
    }
    note_bytes(n);
  }
  if (m_nonzero_end > m_entry_end)
    return fail(Errc::corrupt_input, "trailing garbage after end of tar archive (non-zero byte at offset " +
                                         std::to_string(m_nonzero_end - 1) + ", archive ends at " +
                                         std::to_string(m_entry_end) + ")");
  uint64_t tail = m_handed - m_entry_end;
  if (tail < k_end_marker)
    return fail(Errc::corrupt_input, Reason::truncated, "truncated archive: end-of-archive marker incomplete (" +
                                         std::to_string(tail) + " of " + std::to_string(k_end_marker) +
                                         " zero bytes after the last entry at byte " +
                                         std::to_string(m_entry_end) + ")");
  return {};
}

}  // namespace cdi::formats::tar::detail
