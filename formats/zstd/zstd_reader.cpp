// SPDX-License-Identifier: Apache-2.0
// zstd stage. Invariants checked (RFC 8878, https://www.rfc-editor.org/rfc/rfc8878), by libzstd
// unless noted:
//  - the stream is a sequence of frames: zstd frames (magic 28 B5 2F FD) and skippable frames
//    (magic 50..5F 2A 4D 18, skipped); at least one frame must be present;
//  - frame headers are valid and the window is at most max_window(memory limit) (128 MiB by
//    default), which bounds memory: checked here on each frame header before libzstd sees it
//    (the message names the window and the limit), and by libzstd (ZSTD_d_windowLogMax);
//  - blocks decode without error and the optional content checksum (XXH64) matches;
//  - the end of the input inside a frame is truncation; bytes after the last frame that do not
//    start a frame are trailing garbage (named here from the error at a frame boundary).
#include "formats/zstd/zstd_reader.hpp"

#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getFrameHeader, ZSTD_estimateDStreamSize (stable since 1.3)
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "lib/io/input_window.hpp"
#include "lib/io/stage_reader.hpp"
#include "lib/util/endian.hpp"
#include "lib/util/units.hpp"

namespace cdi::formats::zstd {
namespace {

constexpr size_t k_in_buffer = 256 * 1024;
constexpr uint32_t k_frame_magic = 0xFD2FB528;
constexpr uint32_t k_skippable_magic = 0x184D2A50;  // low nibble free
constexpr uint32_t k_skippable_mask = 0xFFFFFFF0;

using util::load_le32;

constexpr uint64_t k_window_min = 1ULL << ZSTD_WINDOWLOG_MIN;
constexpr uint64_t k_window_max = 1ULL << ZSTD_WINDOWLOG_MAX_64;   // zstd --long=31

// Smallest log2 >= w.
int ceil_log2(uint64_t w) {
  int log = 0;
  while (log < 63 && (1ULL << log) < w) ++log;
  return log;
}

// Owns a ZSTD_DCtx.
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};
using DCtx = std::unique_ptr<ZSTD_DCtx, DCtxDeleter>;

class ZstdReader final : public io::StageReader {
 public:
  ZstdReader(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts, DCtx dctx, uint64_t window_max)
      : io::StageReader("zstd"),
        m_up(std::move(upstream)),
        m_cancel(opts.cancel),
        m_dctx(std::move(dctx)),
        m_memory_limit(opts.memory_limit),
        m_window_max(window_max),
        m_in(k_in_buffer) {}

  io::ReaderInfo info() const override { return {"zstd", std::nullopt, false, std::nullopt}; }

 private:
  Result<size_t> fill(std::span<std::byte> dst) override;
  Result<bool> refill();
  std::unexpected<Error> decoder_error(size_t rc, uint64_t at) const;
  Result<void> check_window();
  std::unexpected<Error> window_too_large(std::optional<uint64_t> window) const;

  uint64_t received() const { return m_in.received(); }

  std::unique_ptr<io::Reader> m_up;
  const util::CancelToken* m_cancel;
  DCtx m_dctx;
  uint64_t m_memory_limit;       // 0: the default window limit
  uint64_t m_window_max;
  io::InputWindow m_in;

  bool m_in_frame = false;       // libzstd is inside a frame (or still flushing one)
  uint64_t m_frames = 0;         // frames completed (zstd and skippable)
  uint64_t m_frame_end = 0;      // stream offset after the last completed frame
};

Result<bool> ZstdReader::refill() { return CDI_TRY(m_in.refill(*m_up, m_cancel)) > 0; }

std::unexpected<Error> ZstdReader::decoder_error(size_t rc, uint64_t at) const {
  switch (ZSTD_getErrorCode(rc)) {
    case ZSTD_error_prefix_unknown:
      if (m_frames == 0) return fail(Errc::corrupt_input, "not a zstd stream (bad magic)");
      return fail(Errc::corrupt_input,
                  "trailing garbage after frame " + std::to_string(m_frames) + " at offset " + std::to_string(at));
    case ZSTD_error_frameParameter_windowTooLarge:
      return window_too_large(std::nullopt);
    case ZSTD_error_checksum_wrong:
      return fail(Errc::corrupt_input, "checksum mismatch in frame " + std::to_string(m_frames + 1));
    case ZSTD_error_frameParameter_unsupported:
      return fail(Errc::unsupported, std::string("unsupported frame parameter: ") + ZSTD_getErrorName(rc));
    case ZSTD_error_memory_allocation:
      return fail(Errc::limit, "out of memory");
    default:
      return fail(Errc::corrupt_input, std::string("compressed data is corrupt: ") + ZSTD_getErrorName(rc));
  }
}

std::unexpected<Error> ZstdReader::window_too_large(std::optional<uint64_t> window) const {
  if (m_memory_limit == 0)
    return fail(Errc::limit, "frame window exceeds the " + util::format_bytes(m_window_max) +
                                 " limit (zstd --long=28 or more is not supported)");
  std::string frame = "frame " + std::to_string(m_frames + 1);
  std::string needs = window ? " needs a window of " + util::format_bytes(*window) : " needs a larger window";
  return fail(Errc::limit, frame + needs + ", more than the " + util::format_bytes(m_window_max) +
                               " a memory limit of " + util::format_bytes(m_memory_limit) + " allows");
}

// At a frame boundary: reads the next frame's header (when it is a zstd frame whose header is
// complete in the input) and refuses a window above the limit before libzstd allocates it.
Result<void> ZstdReader::check_window() {
  if (m_in.buffered() < ZSTD_FRAMEHEADERSIZE_MAX && !m_in.eof())
    CDI_TRY(m_in.ensure(*m_up, m_cancel, ZSTD_FRAMEHEADERSIZE_MAX));
  ZSTD_frameHeader h{};
  size_t rc = ZSTD_getFrameHeader(&h, m_in.data() + m_in.pos, m_in.buffered());
  // Errors (not a frame) and short headers (truncation) are libzstd's to report.
  if (rc != 0 || h.frameType != ZSTD_frame) return {};
  if (h.windowSize > m_window_max) return window_too_large(h.windowSize);
  return {};
}

Result<size_t> ZstdReader::fill(std::span<std::byte> dst) {
  for (;;) {
    if (!m_in_frame && (m_in.pos < m_in.end || !m_in.eof())) CDI_TRY(check_window());
    if (m_in.pos < m_in.end || m_in_frame) {
      ZSTD_inBuffer in{m_in.data() + m_in.pos, m_in.end - m_in.pos, 0};
      ZSTD_outBuffer out{dst.data(), dst.size(), 0};
      uint64_t at = m_in.offset();
      size_t rc = ZSTD_decompressStream(m_dctx.get(), &out, &in);
      m_in.pos += in.pos;
      if (ZSTD_isError(rc)) return decoder_error(rc, at);
      if (rc == 0 && (m_in_frame || in.pos > 0)) {
        // 0: a frame is completely decoded and flushed; the next call starts a new frame.
        ++m_frames;
        m_frame_end = m_in.offset();
      }
      m_in_frame = rc != 0;
      if (out.pos > 0) return out.pos;
      if (in.pos > 0) continue;
      if (m_in.pos < m_in.end) return fail(Errc::internal, "libzstd made no progress");
    }
    // All input consumed and no output: more input, or the end.
    if (!m_in.eof() && CDI_TRY(refill())) continue;
    if (m_in_frame)
      return fail(Errc::corrupt_input, "unexpected end of stream after " + util::format_bytes(received()));
    if (m_frames == 0) return fail(Errc::corrupt_input, "empty input");
    return 0;
  }
}

}  // namespace

int probe(Head head) {
  size_t pos = 0;
  bool skipped = false;
  while (head.size() - pos >= 4) {
    uint32_t magic = load_le32(head.data() + pos);
    if (magic == k_frame_magic) {
      // Frame header descriptor: bit 3 is reserved and must be zero.
      if (head.size() - pos > 4 && (static_cast<uint8_t>(head[pos + 4]) & 0x08)) return 0;
      return 32;
    }
    if ((magic & k_skippable_mask) != k_skippable_magic) return 0;
    skipped = true;
    if (head.size() - pos < 8) return 28;
    uint64_t size = load_le32(head.data() + pos + 4);
    if (size + 8 > head.size() - pos) return 28;  // the head ends inside the skippable frame
    pos += 8 + size;
  }
  return skipped ? 28 : 0;
}

uint64_t max_window(uint64_t memory_limit) {
  if (memory_limit == 0) return 1ULL << k_window_log_max;
  uint64_t budget = memory_limit > k_in_buffer ? memory_limit - k_in_buffer : 0;
  auto fits = [&](uint64_t w) { return ZSTD_estimateDStreamSize(static_cast<size_t>(w)) <= budget; };
  if (!fits(k_window_min)) return 0;
  if (fits(k_window_max)) return k_window_max;
  uint64_t lo = k_window_min, hi = k_window_max;   // fits(lo), !fits(hi)
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts) {
  uint64_t window = max_window(opts.memory_limit);
  if (window == 0)
    return std::unexpected(Error(Errc::limit, "a memory limit of " + util::format_bytes(opts.memory_limit) +
                                                  " is below the " +
                                                  util::format_bytes(ZSTD_estimateDStreamSize(k_window_min) + k_in_buffer) +
                                                  " the smallest decoder needs")
                               .context("zstd"));
  DCtx dctx(ZSTD_createDCtx());
  if (!dctx) return std::unexpected(Error(Errc::limit, "out of memory creating the decoder").context("zstd"));
  // libzstd's own check, a power of two at or above ours (ours is exact and runs first).
  int window_log = std::clamp(ceil_log2(window), ZSTD_WINDOWLOG_MIN, ZSTD_WINDOWLOG_MAX_64);
  size_t rc = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, window_log);
  if (ZSTD_isError(rc))
    return std::unexpected(
        Error(Errc::internal, std::string("cannot set the window limit: ") + ZSTD_getErrorName(rc)).context("zstd"));
  return std::make_unique<ZstdReader>(std::move(upstream), opts, std::move(dctx), window);
}

}  // namespace cdi::formats::zstd
