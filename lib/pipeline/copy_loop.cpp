// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/copy_loop.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "formats/disk/disk_probe.hpp"
#include "lib/util/units.hpp"

namespace cdi::pipeline {
namespace {

constexpr size_t k_chunk = 1u << 20;      // bytes per block handed to the writer
constexpr size_t k_tail = 512;            // held back to recognise a fixed-VHD footer or a DMG trailer
constexpr size_t k_zero_unit = 4096;      // zero-detection granularity (as qemu-img -S 4k)
constexpr size_t k_queue_depth = 4;       // blocks in flight: memory = depth+2 MiB

bool all_zero(const std::byte* p, size_t n) {
  if (n == 0) return true;
  if (p[0] != std::byte{0}) return false;
  return std::memcmp(p, p + 1, n - 1) == 0;
}

struct Block {
  std::vector<std::byte> buf;
  size_t len = 0;
  uint64_t offset = 0;
};

// Single-producer single-consumer bounded queue with a free list, so buffers are reused.
class BlockQueue {
 public:
  explicit BlockQueue(size_t depth) {
    for (size_t i = 0; i < depth + 1; ++i) m_free.push_back(Block{std::vector<std::byte>(k_chunk + k_tail), 0, 0});
  }
  // Producer: get an empty block (waits while all are in flight). nullopt when the consumer stopped.
  std::optional<Block> acquire() {
    std::unique_lock lk(m_mu);
    m_cv.wait(lk, [&] { return !m_free.empty() || m_stopped; });
    if (m_stopped) return std::nullopt;
    Block b = std::move(m_free.front());
    m_free.pop_front();
    return b;
  }
  void push(Block b) {
    std::lock_guard lk(m_mu);
    m_full.push_back(std::move(b));
    m_cv.notify_all();
  }
  void close() {
    std::lock_guard lk(m_mu);
    m_closed = true;
    m_cv.notify_all();
  }
  // Consumer: next full block; nullopt at the end.
  std::optional<Block> pop() {
    std::unique_lock lk(m_mu);
    m_cv.wait(lk, [&] { return !m_full.empty() || m_closed; });
    if (m_full.empty()) return std::nullopt;
    Block b = std::move(m_full.front());
    m_full.pop_front();
    return b;
  }
  void release(Block b) {
    std::lock_guard lk(m_mu);
    m_free.push_back(std::move(b));
    m_cv.notify_all();
  }
  // Consumer failed: wake and stop the producer.
  void stop() {
    std::lock_guard lk(m_mu);
    m_stopped = true;
    m_cv.notify_all();
  }

 private:
  std::mutex m_mu;
  std::condition_variable m_cv;
  std::deque<Block> m_free, m_full;
  bool m_closed = false, m_stopped = false;
};

// The writer side: zero detection and sink calls. Zero runs are coalesced across blocks.
class Writer {
 public:
  Writer(sink::Sink& out, ProgressState* progress) : m_out(out), m_progress(progress) {}

  Result<void> consume(const Block& b) {
    size_t pos = 0;
    while (pos < b.len) {
      size_t n = std::min(k_zero_unit, b.len - pos);
      bool zero = all_zero(b.buf.data() + pos, n);
      size_t run = n;
      while (pos + run < b.len) {
        size_t m = std::min(k_zero_unit, b.len - pos - run);
        if (all_zero(b.buf.data() + pos + run, m) != zero) break;
        run += m;
      }
      uint64_t off = b.offset + pos;
      if (zero) {
        if (m_zero_len && m_zero_off + m_zero_len == off) {
          m_zero_len += run;
        } else {
          CDI_TRY(flush_zero());
          m_zero_off = off;
          m_zero_len = run;
        }
      } else {
        CDI_TRY(flush_zero());
        CDI_TRY(m_out.write_at(off, std::span(b.buf.data() + pos, run)));
        m_data += run;
        if (m_progress) m_progress->bytes_written.fetch_add(run, std::memory_order_relaxed);
      }
      pos += run;
    }
    return {};
  }

  Result<void> flush_zero() {
    if (!m_zero_len) return {};
    CDI_TRY(m_out.zero_range(m_zero_off, m_zero_len));
    m_zeros += m_zero_len;
    if (m_progress) m_progress->bytes_written.fetch_add(m_zero_len, std::memory_order_relaxed);
    m_zero_len = 0;
    return {};
  }

  uint64_t data() const { return m_data; }
  uint64_t zeros() const { return m_zeros; }

 private:
  sink::Sink& m_out;
  ProgressState* m_progress;
  uint64_t m_zero_off = 0, m_zero_len = 0;
  uint64_t m_data = 0, m_zeros = 0;
};

}  // namespace

Result<CopyResult> copy_raw(io::Reader& in, sink::Sink& out, const CopyOptions& opts) {
  BlockQueue queue(k_queue_depth);
  Writer writer(out, opts.progress);
  std::optional<Error> writer_error;

  std::thread writer_thread([&] {
    while (auto b = queue.pop()) {
      if (!writer_error) {
        auto r = writer.consume(*b);
        if (!r) {
          writer_error = std::move(r).error();
          queue.stop();
        }
      }
      queue.release(std::move(*b));
    }
    if (!writer_error) {
      auto r = writer.flush_zero();
      if (!r) writer_error = std::move(r).error();
    }
  });

  // The reader side runs here; any early return must close the queue and join the writer.
  auto produce = [&]() -> Result<CopyResult> {
    CopyResult res;
    std::vector<std::byte> carry;
    carry.reserve(k_tail);
    uint64_t offset = 0;
    auto over_limit = [&](uint64_t end) -> Result<void> {
      if (opts.max_size && end > *opts.max_size)
        return fail(Errc::limit, Reason::too_small, "image is larger than " + opts.max_size_what + " (more than " +
                                     std::to_string(*opts.max_size) + " bytes, " +
                                     util::format_bytes(*opts.max_size) + ")");
      return {};
    };
    for (;;) {
      if (opts.cancel) CDI_TRY(opts.cancel->check());
      auto blk = queue.acquire();
      if (!blk) break;  // writer failed; its error is reported below
      Block b = std::move(*blk);
      size_t c = carry.size();
      std::memcpy(b.buf.data(), carry.data(), c);
      auto got = io::read_full(in, std::span(b.buf.data() + c, k_chunk));
      if (!got) {
        queue.release(std::move(b));
        return std::unexpected(std::move(got).error());
      }
      size_t total = c + *got;
      bool eof = *got < k_chunk;
      size_t emit = total;
      if (!eof) {
        emit = total - k_tail;
        carry.assign(b.buf.begin() + static_cast<std::ptrdiff_t>(emit),
                     b.buf.begin() + static_cast<std::ptrdiff_t>(total));
      } else if (opts.detect_fixed_vhd && total >= k_tail) {
        std::span<const std::byte, 512> tail(b.buf.data() + total - k_tail, k_tail);
        if (formats::disk::is_dmg_trailer(tail)) {
          queue.release(std::move(b));
          return fail(Errc::unsupported,
                      "image format dmg (Apple disk image: \"koly\" trailer at offset " +
                          std::to_string(offset + total - k_tail) +
                          ") is not supported (supported: raw, qcow2, vmdk, vhd, vhdx, vdi)");
        }
        auto sz = formats::disk::fixed_vhd_footer_size(tail);
        if (sz && *sz == offset + total - k_tail) {
          emit = total - k_tail;
          res.fixed_vhd = true;
        }
      }
      if (auto r = over_limit(offset + emit); !r) {
        queue.release(std::move(b));
        return std::unexpected(std::move(r).error());
      }
      b.len = emit;
      b.offset = offset;
      offset += emit;
      if (emit) {
        queue.push(std::move(b));
      } else {
        queue.release(std::move(b));
      }
      if (eof) break;
    }
    res.image_size = offset;
    return res;
  };

  auto res = produce();
  queue.close();
  writer_thread.join();
  if (writer_error) return std::unexpected(std::move(*writer_error));
  if (!res) return res;
  res->data_bytes = writer.data();
  res->zero_bytes = writer.zeros();
  return res;
}

}  // namespace cdi::pipeline
