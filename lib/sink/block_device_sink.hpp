// SPDX-License-Identifier: Apache-2.0
// BlockDeviceSink: imports onto a block device (a PVC in block mode).
// - The device is opened O_EXCL, so a mounted or otherwise claimed device is refused (busy).
// - The first MiB is held back in memory and written only after everything else reached the
//   device (coreos-installer): a failed import never looks like a complete, bootable disk, and
//   abort() wipes the first MiB.
// - Zero ranges are made zero for real (BLKZEROOUT, pwrite for unaligned edges): the device is
//   dirty. BLKDISCARD is never used, since discarded blocks need not read back as zeros.
// - Buffered writes with a bound on the device's page cache (dirty and clean, writeback.hpp);
//   every writeback error is reported.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lib/sink/sink.hpp"
#include "lib/sink/writeback.hpp"
#include "lib/util/fd.hpp"

namespace cdi::sink {

struct BlockSinkOptions {
  // Bytes at the start of the device held back until finish() and wiped by abort().
  uint64_t head_size = uint64_t{1} << 20;
  // Bytes per write-back window (writeback.hpp): at most about two windows of the device stay in
  // the page cache while it is written. 0: the default (64 MiB); smaller than 1 MiB: 1 MiB.
  uint64_t writeback_window = detail::k_writeback_window;
};

class BlockDeviceSink final : public Sink {
 public:
  // Opens the device O_WRONLY|O_EXCL. Errors: busy ("device … is in use (mounted or held open
  // exclusively)"), not_found, invalid_argument (not a block device), io.
  static Result<std::unique_ptr<BlockDeviceSink>> open(const std::filesystem::path& dev,
                                                       const BlockSinkOptions& options);
  ~BlockDeviceSink() override;

  // limit "image is larger than the device (… > …)" when image_size exceeds the device; call it
  // before the first write when the image size is known up front.
  Result<void> check_fits(uint64_t image_size) const;

  // Sink contract. Extents past the device end: limit. I/O errors: io.
  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override;
  // Adjacent zero ranges are coalesced and issued later (before finish() completes).
  Result<void> zero_range(uint64_t offset, uint64_t length) override;
  // Issues pending zero ranges, fdatasync, writes the held-back head, fdatasync again, drops the
  // written range from the page cache.
  // image_size larger than the device: limit. Errors: io; internal when called twice.
  Result<void> finish(uint64_t image_size) override;
  // Wipes the first head_size bytes with zeros (best effort) unless finish() succeeded.
  void abort() noexcept override;

  SinkInfo info() const override;
  SinkStats stats() const override;

  // The device, for an external converter (qemu-img) writing in place of write_at. Our O_EXCL
  // claim does not stop plain opens by the converter. nullopt after finish()/abort().
  std::optional<std::string> direct_path() const override;
  // Checks that image_size fits (limit). The external writer writes the head itself, so the
  // held-back head does not apply; abort() still wipes the first MiB, and finish() still
  // fdatasyncs (our descriptor predates the writer's, so its writeback errors reach us).
  // Later write_at/zero_range calls are internal errors.
  Result<void> prepare_direct(uint64_t image_size) override;

  uint64_t capacity() const { return m_capacity; }
  uint32_t logical_sector_size() const { return m_sector; }

 private:
  BlockDeviceSink(std::filesystem::path path, util::Fd fd, uint64_t capacity, uint32_t sector, uint64_t head,
                  uint64_t window)
      : m_path(std::move(path)), m_fd(std::move(fd)), m_capacity(capacity), m_sector(sector),
        m_head(static_cast<size_t>(head)), m_throttle(window) {}
  Result<void> check_extent(uint64_t offset, uint64_t length) const;
  Result<void> flush_zeros();
  Result<void> write_zeros(uint64_t offset, uint64_t length);
  Result<void> zero_out(uint64_t offset, uint64_t length);
  Error too_large(uint64_t needed) const;

  std::filesystem::path m_path;
  util::Fd m_fd;
  uint64_t m_capacity;
  uint32_t m_sector;
  std::vector<std::byte> m_head;   // held-back first bytes, zero-initialised
  uint64_t m_zero_offset = 0;      // pending coalesced zero range
  uint64_t m_zero_length = 0;
  detail::WritebackThrottle m_throttle;
  SinkStats m_stats;
  uint64_t m_end = 0;
  bool m_direct = false;           // prepare_direct() was called: no held-back head
  bool m_touched = false;          // something past the held-back head was sent to the device
  bool m_finish_called = false;
  bool m_finished = false;
  bool m_aborted = false;
};

}  // namespace cdi::sink
