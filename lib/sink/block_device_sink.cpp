// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/block_device_sink.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "lib/util/file_io.hpp"
#include "lib/util/units.hpp"

namespace cdi::sink {

namespace {

constexpr uint64_t k_zeroout_chunk = uint64_t{1} << 30;  // one BLKZEROOUT call at most
constexpr size_t k_zero_buffer = size_t{1} << 16;
constexpr std::array<std::byte, k_zero_buffer> k_zeros{};

}  // namespace

Result<std::unique_ptr<BlockDeviceSink>> BlockDeviceSink::open(const std::filesystem::path& dev,
                                                               const BlockSinkOptions& options) {
  util::Fd fd(::open(dev.c_str(), O_WRONLY | O_EXCL | O_CLOEXEC | O_NOCTTY));
  if (!fd) {
    int err = errno;
    if (err == EBUSY)
      return std::unexpected(
          Error(Errc::busy, "device " + dev.string() + " is in use (mounted or held open exclusively)", err));
    return fail_sys("opening device " + dev.string(), err);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return fail_sys("stat " + dev.string());
  if (!S_ISBLK(st.st_mode)) return fail(Errc::invalid_argument, dev.string() + " is not a block device");

  uint64_t capacity = 0;
  if (::ioctl(fd.get(), BLKGETSIZE64, &capacity) != 0) return fail_sys("BLKGETSIZE64 on " + dev.string());
  int sector = 0;
  if (::ioctl(fd.get(), BLKSSZGET, &sector) != 0) return fail_sys("BLKSSZGET on " + dev.string());
  if (sector <= 0 || (sector & (sector - 1)) != 0)
    return fail(Errc::internal, dev.string() + ": odd logical sector size " + std::to_string(sector));

  const uint64_t head = std::min(options.head_size, capacity);
  return std::unique_ptr<BlockDeviceSink>(
      new BlockDeviceSink(dev, std::move(fd), capacity, static_cast<uint32_t>(sector), head, options.writeback_window));
}

BlockDeviceSink::~BlockDeviceSink() {
  if (!m_finished) abort();
}

Error BlockDeviceSink::too_large(uint64_t needed) const {
  std::string a = util::format_bytes(needed), b = util::format_bytes(m_capacity);
  if (a == b) {
    a = std::to_string(needed) + " bytes";
    b = std::to_string(m_capacity) + " bytes";
  }
  return Error(Errc::limit, Reason::too_small, "image is larger than the device " + m_path.string() + " (" + a + " > " + b + ")");
}

Result<void> BlockDeviceSink::check_fits(uint64_t image_size) const {
  if (image_size > m_capacity) return std::unexpected(too_large(image_size));
  return {};
}

Result<void> BlockDeviceSink::check_extent(uint64_t offset, uint64_t length) const {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "extent after finish() or abort()");
  if (m_direct) return fail(Errc::internal, "extent after prepare_direct()");
  if (offset + length < offset) return fail(Errc::limit, "extent offset overflows 64 bits");
  if (offset + length > m_capacity) return std::unexpected(too_large(offset + length));
  return {};
}

Result<void> BlockDeviceSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  CDI_TRY(check_extent(offset, data.size()));
  if (data.empty()) return {};
  m_end = std::max(m_end, offset + data.size());
  m_stats.bytes_written += data.size();
  if (offset < m_head.size()) {
    size_t n = std::min(data.size(), static_cast<size_t>(m_head.size() - offset));
    std::memcpy(m_head.data() + offset, data.data(), n);
    data = data.subspan(n);
    offset += n;
    if (data.empty()) return {};
  }
  m_touched = true;
  CDI_TRY(util::pwrite_all(m_fd.get(), data, offset, m_path.string()));
  CDI_TRY(m_throttle.note_written(m_fd.get(), offset, data.size(), m_path.string()));
  return {};
}

Result<void> BlockDeviceSink::zero_range(uint64_t offset, uint64_t length) {
  CDI_TRY(check_extent(offset, length));
  if (length == 0) return {};
  m_end = std::max(m_end, offset + length);
  m_stats.bytes_zeroed += length;
  if (offset < m_head.size()) {
    uint64_t n = std::min(length, m_head.size() - offset);
    std::memset(m_head.data() + offset, 0, static_cast<size_t>(n));
    offset += n;
    length -= n;
    if (length == 0) return {};
  }
  m_touched = true;
  if (m_zero_length && m_zero_offset + m_zero_length == offset) {
    m_zero_length += length;
    return {};
  }
  CDI_TRY(flush_zeros());
  m_zero_offset = offset;
  m_zero_length = length;
  return {};
}

Result<void> BlockDeviceSink::flush_zeros() {
  if (m_zero_length == 0) return {};
  uint64_t off = m_zero_offset, len = m_zero_length;
  m_zero_length = 0;
  const uint64_t end = off + len;
  const uint64_t a = (off + m_sector - 1) / m_sector * m_sector;  // first aligned byte
  const uint64_t b = end / m_sector * m_sector;                   // end of the aligned part
  if (a >= b) return write_zeros(off, len);
  CDI_TRY(write_zeros(off, a - off));
  CDI_TRY(zero_out(a, b - a));
  return write_zeros(b, end - b);
}

Result<void> BlockDeviceSink::write_zeros(uint64_t offset, uint64_t length) {
  while (length) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(length, k_zeros.size()));
    CDI_TRY(util::pwrite_all(m_fd.get(), std::span(k_zeros.data(), n), offset, m_path.string()));
    CDI_TRY(m_throttle.note_written(m_fd.get(), offset, n, m_path.string()));
    offset += n;
    length -= n;
  }
  return {};
}

Result<void> BlockDeviceSink::zero_out(uint64_t offset, uint64_t length) {
  // BLKZEROOUT guarantees zeros: the kernel uses WRITE_ZEROES when the device has it and writes
  // zero pages itself otherwise. It also drops the page cache over the range.
  while (length) {
    uint64_t n = std::min(length, k_zeroout_chunk);
    uint64_t range[2] = {offset, n};
    if (::ioctl(m_fd.get(), BLKZEROOUT, range) != 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == ENOTTY || err == EOPNOTSUPP || err == EINVAL) return write_zeros(offset, length);
      return fail_sys("zeroing " + m_path.string() + " at offset " + std::to_string(offset), err);
    }
    offset += n;
    length -= n;
  }
  return {};
}

Result<void> BlockDeviceSink::finish(uint64_t image_size) {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "finish() called twice or after abort()");
  m_finish_called = true;
  CDI_TRY(check_fits(image_size));
  if (m_end > image_size)
    return fail(Errc::internal, "extents end at " + std::to_string(m_end) + ", past the image size " +
                                    std::to_string(image_size));
  const std::string where = m_path.string();
  CDI_TRY(flush_zeros());
  // Everything but the head must be on the device before the head makes it look complete.
  if (::fdatasync(m_fd.get()) != 0) return fail_sys("flushing " + where);
  if (!m_direct) {
    const uint64_t head = std::min<uint64_t>(m_head.size(), image_size);
    CDI_TRY(util::pwrite_all(m_fd.get(), std::span(m_head.data(), static_cast<size_t>(head)), 0, where));
    if (::fdatasync(m_fd.get()) != 0) return fail_sys("flushing " + where);
  }
  // All on the device: its clean pages need not stay charged to the importer's memory cgroup.
  m_throttle.release(m_fd.get(), 0, m_end);
  m_finished = true;
  m_fd.reset();  // releases the exclusive claim
  return {};
}

void BlockDeviceSink::abort() noexcept {
  if (m_finished || m_aborted) return;
  m_aborted = true;
  m_zero_length = 0;
  // Nothing reached the device (refused before any write): leave it exactly as it was.
  if (!m_fd || !m_touched) {
    m_fd.reset();
    return;
  }
  // Best effort: a device with a zeroed first MiB is not mistaken for a complete disk.
  uint64_t off = 0;
  bool ok = true;
  while (ok && off < m_head.size()) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(m_head.size() - off, k_zeros.size()));
    ok = util::pwrite_all(m_fd.get(), std::span(k_zeros.data(), n), off, m_path.string()).has_value();
    off += n;
  }
  (void)::fdatasync(m_fd.get());
  m_throttle.release(m_fd.get(), 0, std::max<uint64_t>(m_end, m_head.size()));
  m_fd.reset();
}

std::optional<std::string> BlockDeviceSink::direct_path() const {
  if (m_finish_called || m_aborted) return std::nullopt;
  return m_path.string();
}

Result<void> BlockDeviceSink::prepare_direct(uint64_t image_size) {
  if (m_finish_called || m_aborted) return fail(Errc::internal, "prepare_direct() after finish() or abort()");
  CDI_TRY(check_fits(image_size));
  m_direct = true;
  m_touched = true;
  m_end = std::max(m_end, image_size);
  return {};
}

SinkInfo BlockDeviceSink::info() const { return {"block", m_path.string(), m_capacity, SinkKind::block}; }

SinkStats BlockDeviceSink::stats() const { return m_stats; }

}  // namespace cdi::sink
