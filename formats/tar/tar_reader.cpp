// SPDX-License-Identifier: Apache-2.0
#include "formats/tar/tar_reader.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "formats/tar/tar_source.hpp"

namespace cdi::formats::tar {

namespace {

using detail::EntryKind;

constexpr size_t k_header = 512;
constexpr size_t k_magic_offset = 257;
constexpr size_t k_checksum_offset = 148;
constexpr size_t k_checksum_size = 8;
constexpr size_t k_max_listed = 20;
// Listing the other files after a second one was found is only for the error message; stop
// skipping through the archive for it after this much more input.
constexpr uint64_t k_max_listing_scan = 256ull << 20;

bool header_checksum_ok(Head h) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(h[i]); };
  // The field: octal digits, optionally space-padded in front, ended by NUL or space.
  size_t i = k_checksum_offset, end = k_checksum_offset + k_checksum_size;
  while (i < end && byte(i) == ' ') ++i;
  uint64_t stored = 0;
  size_t digits = 0;
  for (; i < end && byte(i) >= '0' && byte(i) <= '7'; ++i, ++digits) stored = stored * 8 + (byte(i) - '0');
  if (digits == 0) return false;
  for (; i < end; ++i)
    if (byte(i) != ' ' && byte(i) != 0) return false;
  // The sum is taken with the checksum field read as spaces; some old writers summed signed
  // chars, so accept either.
  uint64_t usum = 0;
  int64_t ssum = 0;
  for (size_t k = 0; k < k_header; ++k) {
    bool in_field = k >= k_checksum_offset && k < end;
    usum += in_field ? ' ' : byte(k);
    ssum += in_field ? ' ' : static_cast<signed char>(byte(k));
  }
  return stored == usum || static_cast<int64_t>(stored) == ssum;
}

// Names shown in error messages: at most k_max_listed, then "…".
class EntryList {
 public:
  void add(const std::string& name, EntryKind kind) {
    if (m_names.size() >= k_max_listed) {
      m_more = true;
      return;
    }
    m_names.push_back(kind == EntryKind::regular ? name : name + " (" + std::string(detail::kind_name(kind)) + ")");
  }
  void note_more() { m_more = true; }
  bool empty() const { return m_names.empty(); }
  std::string join() const {
    std::string out;
    for (const auto& n : m_names) {
      if (!out.empty()) out += ", ";
      out += n;
    }
    if (m_more) out += ", …";
    return out;
  }

 private:
  std::vector<std::string> m_names;
  bool m_more = false;
};

class TarEntryReader final : public io::Reader {
 public:
  static Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const EntryOptions& opts) {
    std::unique_ptr<TarEntryReader> self(new TarEntryReader(std::move(upstream), opts));
    self->m_source = CDI_TRY(detail::TarSource::open(*self->m_upstream, opts.cancel));
    CDI_TRY(self->select_entry());
    return std::unique_ptr<io::Reader>(std::move(self));
  }

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_error) return std::unexpected(*m_error);
    auto n = read_some(dst);
    if (!n) {
      m_error = std::move(n).error().context("tar");
      return std::unexpected(*m_error);
    }
    return n;
  }

  io::ReaderInfo info() const override { return {"tar[" + m_entry + "]", m_size, false, std::nullopt}; }

 private:
  TarEntryReader(std::unique_ptr<io::Reader> upstream, const EntryOptions& opts)
      : m_upstream(std::move(upstream)), m_cancel(opts.cancel) {
    if (opts.entry) m_wanted = detail::strip_dot_slash(*opts.entry);
  }

  // Reads headers up to the entry to serve.
  Result<void> select_entry() {
    EntryList seen;
    for (;;) {
      if (m_cancel) CDI_TRY(m_cancel->check());
      archive_entry* e = CDI_TRY(m_source->next_header());
      if (e == nullptr) {
        if (m_wanted)
          return fail(Errc::not_found, "tar has no entry named " + *m_wanted + "; entries: " +
                                           (seen.empty() ? std::string("none") : seen.join()));
        return fail(Errc::unsupported,
                    "tar holds no regular file" + (seen.empty() ? std::string() : "; entries: " + seen.join()));
      }
      EntryKind kind = detail::entry_kind(e);
      std::string name = detail::strip_dot_slash(detail::entry_path(e));
      if (kind == EntryKind::directory && !name.empty() && name.back() == '/') name.pop_back();
      bool named = m_wanted && name == *m_wanted;
      if (kind == EntryKind::directory && !named) continue;
      if (kind == EntryKind::regular && (!m_wanted || named)) {
        m_entry = std::move(name);
        la_int64_t size = archive_entry_size(e);
        m_size = size > 0 ? static_cast<uint64_t>(size) : 0;
        return {};
      }
      if (named)
        return fail(Errc::unsupported, "tar entry " + name + " is a " + std::string(detail::kind_name(kind)) +
                                           ", not a regular file");
      seen.add(name, kind);
    }
  }

  // One piece of the logical file: data, a hole's zeros, or — at the very end — the
  // validation of the rest of the archive followed by 0.
  Result<size_t> read_some(std::span<std::byte> dst) {
    if (dst.empty() || m_finished) return 0;
    if (m_cancel) CDI_TRY(m_cancel->check());
    for (;;) {
      if (!m_block.empty()) {
        if (m_pos < m_block_offset) return zeros(dst, m_block_offset - m_pos);
        size_t n = std::min(dst.size(), m_block.size());
        std::memcpy(dst.data(), m_block.data(), n);
        m_block = m_block.subspan(n);
        m_block_offset += n;
        m_pos += n;
        return n;
      }
      if (!m_data_done) {
        auto block = CDI_TRY(m_source->next_block());
        if (!block) {
          m_data_done = true;
          continue;
        }
        if (block->offset < m_pos || block->offset > m_size || block->bytes.size() > m_size - block->offset)
          return fail(Errc::corrupt_input, "entry " + m_entry + " has data at offset " +
                                               std::to_string(block->offset) + "+" +
                                               std::to_string(block->bytes.size()) + " outside its size " +
                                               std::to_string(m_size));
        m_block = block->bytes;
        m_block_offset = block->offset;
        continue;
      }
      if (m_pos < m_size) return zeros(dst, m_size - m_pos);  // a hole at the end of a sparse file
      CDI_TRY(finish_archive());
      m_finished = true;
      return 0;
    }
  }

  size_t zeros(std::span<std::byte> dst, uint64_t gap) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), gap));
    std::memset(dst.data(), 0, n);
    m_pos += n;
    return n;
  }

  // Reads the archive after the served entry to its validated end.
  Result<void> finish_archive() {
    for (;;) {
      if (m_cancel) CDI_TRY(m_cancel->check());
      archive_entry* e = CDI_TRY(m_source->next_header());
      if (e == nullptr) return {};
      if (detail::entry_kind(e) != EntryKind::regular) continue;
      std::string name = detail::strip_dot_slash(detail::entry_path(e));
      if (m_wanted) {
        if (name == *m_wanted) return fail(Errc::unsupported, "tar holds entry " + name + " more than once");
        continue;
      }
      return std::unexpected(Error(Errc::unsupported, "tar holds several files (" + list_files(std::move(name)) + ")")
                                 .with_hint("; name one with --tar-entry"));
    }
  }

  // The served entry, `second`, and the next regular files (best effort, bounded).
  std::string list_files(std::string second) {
    EntryList files;
    files.add(m_entry, EntryKind::regular);
    files.add(second, EntryKind::regular);
    uint64_t stop_at = m_source->position() + k_max_listing_scan;
    for (;;) {
      if (m_cancel && m_cancel->cancelled()) break;
      if (m_source->position() > stop_at) {
        files.note_more();
        break;
      }
      auto e = m_source->next_header();
      if (!e || *e == nullptr) break;  // damage found while listing: the first error wins
      if (detail::entry_kind(*e) == EntryKind::regular) files.add(detail::strip_dot_slash(detail::entry_path(*e)), EntryKind::regular);
    }
    return files.join();
  }

  std::unique_ptr<io::Reader> m_upstream;          // declared first: m_source refers to it
  std::unique_ptr<detail::TarSource> m_source;
  std::optional<std::string> m_wanted;
  const util::CancelToken* m_cancel;
  std::string m_entry;
  uint64_t m_size = 0;
  uint64_t m_pos = 0;                    // logical offset of the next byte served
  std::span<const std::byte> m_block;    // unserved part of the current data block
  uint64_t m_block_offset = 0;           // logical offset of m_block[0]
  bool m_data_done = false;              // libarchive has no more data for the entry
  bool m_finished = false;               // archive validated, 0 returned
  std::optional<Error> m_error;          // a failed reader stays failed
};

}  // namespace

int probe(Head head) {
  if (head.size() < k_header) return 0;
  if (std::memcmp(head.data() + k_magic_offset, "ustar", 5) != 0) return 0;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(head[k_magic_offset + i]); };
  int score = 40;  // "ustar"
  bool posix = byte(5) == 0 && byte(6) == '0' && byte(7) == '0';
  bool gnu = byte(5) == ' ' && byte(6) == ' ' && byte(7) == 0;
  if (posix || gnu) score += 24;
  if (header_checksum_ok(head)) score += 48;  // six octal digits, as libarchive counts them
  return score;
}

Result<std::unique_ptr<io::Reader>> open_entry(std::unique_ptr<io::Reader> upstream, const EntryOptions& opts) {
  if (!upstream) return fail(Errc::internal, "tar: no upstream reader");
  auto r = TarEntryReader::open(std::move(upstream), opts);
  if (!r) return std::unexpected(std::move(r).error().context("tar"));
  return r;
}

}  // namespace cdi::formats::tar
