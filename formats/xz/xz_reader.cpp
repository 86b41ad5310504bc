// SPDX-License-Identifier: Apache-2.0
// xz stage. Invariants checked (.xz file format 1.1.0,
// https://tukaani.org/xz/xz-file-format.txt), by liblzma unless noted:
//  - each stream starts with the magic FD 37 7A 58 5A 00 (checked here byte by byte, so that
//    short trailing garbage is named as garbage) and valid stream flags;
//  - block headers, filter chains, the LZMA2 data, the per-block check (CRC32/CRC64/SHA-256),
//    the index and the stream footer (which must match the header's flags) are consistent;
//  - streams may be concatenated, separated by stream padding: null bytes in multiples of 4
//    (checked here); anything else after a stream is trailing garbage;
//  - the end of the input inside a stream is truncation; an empty input is an error.
// Streams are decoded one at a time (no LZMA_CONCATENATED) so that the end of each stream is
// seen here, which gives exact "trailing garbage" and padding diagnostics.
// Memory: opts.memory_limit (k_memlimit, 192 MiB, when 0) including the 256 KiB input window;
// see the header for how liblzma spends it.
#include "formats/xz/xz_reader.hpp"

#include <lzma.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "lib/util/cpu.hpp"
#include "lib/util/endian.hpp"
#include "lib/io/input_window.hpp"
#include "lib/io/stage_reader.hpp"
#include "lib/util/units.hpp"

namespace cdi::formats::xz {
namespace {

constexpr size_t k_in_buffer = 256 * 1024;
constexpr std::array<uint8_t, 6> k_magic{0xfd, '7', 'z', 'X', 'Z', 0x00};
constexpr size_t k_stream_header = 12;

// Owns an lzma_stream (and the decoder's worker threads); lzma_end joins and frees them.
class LzmaStream {
 public:
  LzmaStream() = default;
  ~LzmaStream() { lzma_end(&m_strm); }
  LzmaStream(const LzmaStream&) = delete;
  LzmaStream& operator=(const LzmaStream&) = delete;
  lzma_stream* get() { return &m_strm; }
  lzma_stream* operator->() { return &m_strm; }

 private:
  lzma_stream m_strm = LZMA_STREAM_INIT;
};

enum class Phase { stream, between, done };

class XzReader final : public io::StageReader {
 public:
  XzReader(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts, unsigned threads, uint64_t memlimit)
      : io::StageReader("xz"),
        m_up(std::move(upstream)),
        m_cancel(opts.cancel),
        m_threads(threads),
        m_memlimit(memlimit),
        m_limit(opts.memory_limit ? opts.memory_limit : k_memlimit),
        m_in(k_in_buffer) {}

  // Sets up the decoder for the next stream.
  Result<void> start_stream() {
    lzma_mt mt{};
    mt.flags = 0;  // one stream at a time, see the note on top
    mt.threads = m_threads;
    mt.timeout = 0;  // block in lzma_code() until there is output: we are a pull reader
    mt.memlimit_threading = m_memlimit;
    mt.memlimit_stop = m_memlimit;
    lzma_ret rc = lzma_stream_decoder_mt(m_strm.get(), &mt);
    if (rc == LZMA_MEM_ERROR) return fail(Errc::limit, "out of memory setting up the decoder");
    if (rc != LZMA_OK) return fail(Errc::internal, "liblzma decoder setup failed (" + std::to_string(rc) + ")");
    ++m_stream;
    m_stream_start = offset_of(m_in.pos);
    m_magic_checked = 0;
    m_phase = Phase::stream;
    return {};
  }

  io::ReaderInfo info() const override { return {"xz", std::nullopt, false, std::nullopt}; }
  uint64_t memory_peak() const { return m_peak + k_in_buffer; }

 private:
  Result<size_t> fill(std::span<std::byte> dst) override;
  Result<bool> refill();
  Result<void> check_magic();
  std::unexpected<Error> decoder_error(lzma_ret rc);

  uint64_t offset_of(size_t pos) const { return m_in.offset_of(pos); }
  uint64_t received() const { return m_in.received(); }
  std::unexpected<Error> truncated() const {
    return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of stream after " + util::format_bytes(received()));
  }
  // Bytes at `at` after `streams` complete streams are not another stream.
  static std::unexpected<Error> garbage(uint64_t streams, uint64_t at) {
    return fail(Errc::corrupt_input, "trailing garbage after stream " + std::to_string(streams) + " at offset " +
                                         std::to_string(at));
  }

  std::unique_ptr<io::Reader> m_up;
  const util::CancelToken* m_cancel;
  unsigned m_threads;
  uint64_t m_memlimit;        // liblzma's share: the memory limit minus the input window
  uint64_t m_limit;           // the whole limit (for messages)
  uint64_t m_peak = 0;        // most lzma_memusage() seen
  LzmaStream m_strm;
  io::InputWindow m_in;

  Phase m_phase = Phase::stream;
  uint64_t m_stream = 0;         // 1-based index of the current stream
  uint64_t m_stream_start = 0;
  size_t m_magic_checked = 0;    // bytes of this stream's magic verified so far
  uint64_t m_padding = 0;        // null bytes seen after the last stream
  uint64_t m_padding_start = 0;
};

Result<bool> XzReader::refill() { return CDI_TRY(m_in.refill(*m_up, m_cancel)) > 0; }

// Verifies the magic bytes about to be handed to liblzma (before they are consumed).
Result<void> XzReader::check_magic() {
  // liblzma only ever consumed bytes checked before, so byte j of the stream (j >= fed) sits at
  // m_in.pos + (j - fed).
  uint64_t fed = offset_of(m_in.pos) - m_stream_start;
  while (m_magic_checked < k_magic.size()) {
    size_t at = m_in.pos + static_cast<size_t>(m_magic_checked - fed);
    if (at >= m_in.end) break;
    if (static_cast<uint8_t>(m_in.data()[at]) != k_magic[m_magic_checked]) {
      if (m_stream == 1) return fail(Errc::corrupt_input, "not an xz stream (bad magic)");
      return garbage(m_stream - 1, m_stream_start);
    }
    ++m_magic_checked;
  }
  return {};
}

std::unexpected<Error> XzReader::decoder_error(lzma_ret rc) {
  switch (rc) {
    case LZMA_FORMAT_ERROR:
      return fail(Errc::corrupt_input, "not an xz stream (bad stream header)");
    case LZMA_OPTIONS_ERROR:
      return fail(Errc::unsupported, "unsupported xz options (filter chain or stream flags)");
    case LZMA_DATA_ERROR:
      return fail(Errc::corrupt_input, "compressed data is corrupt");
    case LZMA_BUF_ERROR:
      return truncated();
    case LZMA_MEMLIMIT_ERROR:
      return fail(Errc::limit, "decoding needs more memory than the " + util::format_bytes(m_limit) +
                                   " limit even single-threaded (the stream's dictionary does not fit)");
    case LZMA_MEM_ERROR:
      return fail(Errc::limit, "out of memory");
    default:
      return fail(Errc::internal, "liblzma error " + std::to_string(rc));
  }
}

Result<size_t> XzReader::fill(std::span<std::byte> dst) {
  for (;;) {
    switch (m_phase) {
      case Phase::done:
        return 0;

      case Phase::between:
        while (m_in.pos < m_in.end && m_in.data()[m_in.pos] == std::byte{0}) ++m_in.pos, ++m_padding;
        if (m_in.pos == m_in.end) {
          if (!m_in.eof() && CDI_TRY(refill())) break;
          if (m_padding % 4) return garbage(m_stream, m_padding_start);
          m_phase = Phase::done;
          return 0;
        }
        if (m_padding % 4) return garbage(m_stream, m_padding_start);
        CDI_TRY(start_stream());
        break;

      case Phase::stream: {
        if (m_in.pos == m_in.end && !m_in.eof()) {
          if (!CDI_TRY(refill()) && m_stream == 1 && received() == 0)
            return fail(Errc::corrupt_input, "empty input");
          if (m_magic_checked < k_magic.size() && m_in.eof()) return truncated();
          break;
        }
        CDI_TRY(check_magic());
        lzma_stream* s = m_strm.get();
        s->next_in = reinterpret_cast<const uint8_t*>(m_in.data()) + m_in.pos;
        s->avail_in = m_in.end - m_in.pos;
        s->next_out = reinterpret_cast<uint8_t*>(dst.data());
        s->avail_out = dst.size();
        lzma_ret rc = lzma_code(s, m_in.eof() ? LZMA_FINISH : LZMA_RUN);
        m_peak = std::max(m_peak, lzma_memusage(s));
        size_t consumed = (m_in.end - m_in.pos) - s->avail_in;
        size_t produced = dst.size() - s->avail_out;
        m_in.pos += consumed;
        if (rc == LZMA_STREAM_END) {
          m_phase = Phase::between;
          m_padding = 0;
          m_padding_start = offset_of(m_in.pos);
        } else if (rc != LZMA_OK) {
          if (m_in.eof() && m_in.pos == m_in.end && rc == LZMA_BUF_ERROR) return truncated();
          return decoder_error(rc);
        }
        if (produced > 0) return produced;
        break;  // LZMA_OK without output: more input needed (or liblzma returns BUF_ERROR next)
      }
    }
  }
}

}  // namespace

int probe(Head head) {
  if (head.size() < k_stream_header) return 0;
  auto b = [&](size_t i) { return static_cast<uint8_t>(head[i]); };
  for (size_t i = 0; i < k_magic.size(); ++i)
    if (b(i) != k_magic[i]) return 0;
  // Stream flags: a null byte, then the check type in the low nibble; then their CRC32.
  if (b(6) != 0 || (b(7) & 0xf0)) return 0;
  uint32_t stored = util::load_le32(head.data() + 8);
  if (lzma_crc32(reinterpret_cast<const uint8_t*>(head.data()) + 6, 2, 0) != stored) return 0;
  return 64;
}

Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts) {
  unsigned threads = opts.threads ? opts.threads : util::usable_cpus();
  threads = std::min<unsigned>(threads, 16384);  // LZMA_THREADS_MAX (private to liblzma)
  uint64_t limit = opts.memory_limit ? opts.memory_limit : k_memlimit;
  // liblzma treats 0 as 1; a limit below the input window leaves it 1 byte (and fails clearly).
  uint64_t memlimit = limit > k_in_buffer ? limit - k_in_buffer : 1;
  auto reader = std::make_unique<XzReader>(std::move(upstream), opts, threads, memlimit);
  CDI_TRY_CTX(reader->start_stream(), "xz");
  return reader;
}

uint64_t memory_peak(const io::Reader& reader) {
  auto* xz = dynamic_cast<const XzReader*>(&reader);
  return xz ? xz->memory_peak() : 0;
}

}  // namespace cdi::formats::xz
