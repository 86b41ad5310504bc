// SPDX-License-Identifier: Apache-2.0
#include "lib/io/random_access.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

namespace cdi::io {

Result<size_t> pread_full(RandomAccess& in, uint64_t offset, std::span<std::byte> dst) {
  size_t done = 0;
  while (done < dst.size()) {
    size_t n = CDI_TRY(in.pread(offset + done, dst.subspan(done)));
    if (n == 0) break;
    done += n;
  }
  return done;
}

Result<std::unique_ptr<FileRandomAccess>> FileRandomAccess::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_sys("opening " + path);
  return adopt(util::Fd(fd), "file " + path);
}

Result<std::unique_ptr<FileRandomAccess>> FileRandomAccess::adopt(util::Fd fd, std::string name) {
  off_t end = ::lseek(fd.get(), 0, SEEK_END);
  if (end < 0) return fail_sys("seeking to the end of " + name);
  return std::unique_ptr<FileRandomAccess>(
      new FileRandomAccess(std::move(fd), std::move(name), static_cast<uint64_t>(end)));
}

Result<size_t> FileRandomAccess::pread(uint64_t offset, std::span<std::byte> dst) {
  if (dst.empty() || offset >= m_size) return size_t{0};
  for (;;) {
    ssize_t n = ::pread(m_fd.get(), dst.data(), dst.size(), static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return fail_sys("reading " + m_name + " at offset " + std::to_string(offset));
  }
}

void FileRandomAccess::will_need(std::span<const ByteRange> ranges) {
  for (const ByteRange& r : ranges)
    if (r.length)
      (void)::posix_fadvise(m_fd.get(), static_cast<off_t>(r.offset), static_cast<off_t>(r.length),
                            POSIX_FADV_WILLNEED);
}

void FileRandomAccess::drop_consumed() noexcept {
  if (m_drop_hi > m_drop_lo) {
    // The kernel drops whole folios only (pages, or up to a PMD, 2 MiB with 4 KiB pages, on a
    // filesystem with large folios; as the file source and the write-back drops): a range that
    // continues the last one dropped starts at the PMD boundary below, so the folio the last drop
    // cut goes with this one.
    static const uint64_t page = [] {
      long p = ::sysconf(_SC_PAGESIZE);
      return p > 0 ? static_cast<uint64_t>(p) : uint64_t{4096};
    }();
    const uint64_t pmd = page * (page / 8);
    uint64_t lo = m_drop_lo;
    if (lo == m_dropped_end) lo -= lo % pmd;
    (void)::posix_fadvise(m_fd.get(), static_cast<off_t>(lo), static_cast<off_t>(m_drop_hi - lo), POSIX_FADV_DONTNEED);
    m_dropped_end = m_drop_hi;
  }
  m_drop_lo = m_drop_hi = 0;
}

void FileRandomAccess::consumed(ByteRange r) {
  if (!m_drop_step || !r.length) return;
  // Contiguous ranges accumulate; a jump drops what came before it.
  if (m_drop_hi != m_drop_lo && r.offset != m_drop_hi) drop_consumed();
  if (m_drop_hi == m_drop_lo) m_drop_lo = r.offset;
  m_drop_hi = r.offset + r.length;
  if (m_drop_hi - m_drop_lo >= m_drop_step) drop_consumed();
}

Error changed_between_reads(const std::string& what) {
  return Error(Errc::corrupt_input, "the resource changed between the two reads (" + what + ")");
}

Result<size_t> ForwardRandomAccess::read_some(std::span<std::byte> dst) {
  auto r = m_in->read(dst);
  if (!r) return std::unexpected(std::move(r).error().context(m_name + ", second read"));
  m_pos += *r;
  if (m_pos > m_size) return std::unexpected(changed_between_reads("it is longer than the " + std::to_string(m_size) + " bytes of the first read"));
  if (*r == 0 && m_pos < m_size)
    return std::unexpected(changed_between_reads("it ended at " + std::to_string(m_pos) + " bytes, the first read had " + std::to_string(m_size)));
  return r;
}

Result<size_t> ForwardRandomAccess::pread(uint64_t offset, std::span<std::byte> dst) {
  if (offset < m_pos)
    return fail(Errc::internal, m_name + ": a forward-only read went back from " + std::to_string(m_pos) + " to " + std::to_string(offset));
  if (dst.empty() || offset >= m_size) return size_t{0};
  if (offset > m_pos) {
    std::vector<std::byte> skip(static_cast<size_t>(std::min<uint64_t>(offset - m_pos, 1 << 20)));
    while (m_pos < offset) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(skip.size(), offset - m_pos));
      CDI_TRY(read_some(std::span(skip).first(want)));
    }
  }
  size_t want = static_cast<size_t>(std::min<uint64_t>(dst.size(), m_size - offset));
  return read_some(dst.first(want));
}

Result<void> ForwardRandomAccess::finish() {
  std::vector<std::byte> rest(1 << 20);
  for (;;) {
    size_t n = CDI_TRY(read_some(rest));
    if (n == 0) return {};
  }
}

}  // namespace cdi::io
