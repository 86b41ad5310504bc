// SPDX-License-Identifier: Apache-2.0
// snappy framing encoder. Blocks of exactly 64 KiB (short only at the end of the input) are
// compressed with libsnappy straight into the caller's span when a worst-case chunk fits there,
// otherwise into one frame buffer that later reads drain; an uncompressed chunk's data is served
// from the input block itself.
#include "formats/snappy/snappy_encoder.hpp"

#include <snappy.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "lib/io/stage_reader.hpp"

namespace cdi::formats::snappy {
namespace {

constexpr size_t k_max_frame = k_chunk_header + k_max_data_chunk;

void put_header(std::byte* p, uint8_t type, size_t len, uint32_t crc) {
  p[0] = std::byte(type);
  p[1] = std::byte(len & 0xff);
  p[2] = std::byte((len >> 8) & 0xff);
  p[3] = std::byte((len >> 16) & 0xff);
  for (int k = 0; k < 4; ++k) p[4 + k] = std::byte((crc >> (8 * k)) & 0xff);
}

class SnappyEncoder final : public io::StageReader {
 public:
  SnappyEncoder(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts)
      : io::StageReader("snappy-encoder"), m_up(std::move(upstream)), m_cancel(opts.cancel), m_raw(k_max_block),
        m_frame(k_max_frame) {
    std::memcpy(m_frame.data(), k_stream_identifier, sizeof k_stream_identifier);
    m_frame_end = sizeof k_stream_identifier;
  }

  io::ReaderInfo info() const override { return {"snappy-encoder", std::nullopt, false, std::nullopt}; }

 private:
  Result<size_t> fill(std::span<std::byte> dst) override;
  // Encodes m_raw[0, n) as one chunk at `out` (room for k_max_frame); returns the bytes written
  // there. With `inline_data` false an uncompressed chunk's data is not copied (only its header
  // and CRC are written) and `*raw_follows` is set: the caller serves m_raw itself.
  size_t encode(std::byte* out, size_t n, bool inline_data, bool* raw_follows = nullptr);

  std::unique_ptr<io::Reader> m_up;
  const util::CancelToken* m_cancel;
  std::vector<std::byte> m_raw;     // one input block
  std::vector<std::byte> m_frame;   // pending output: m_frame[m_frame_pos, m_frame_end)
  size_t m_frame_pos = 0;
  size_t m_frame_end = 0;
  size_t m_raw_pos = 0;             // pending uncompressed data: m_raw[m_raw_pos, m_raw_end)
  size_t m_raw_end = 0;
  bool m_up_eof = false;
};

bool all_zero(std::span<const std::byte> b) {
  const auto* p = b.data();
  size_t n = b.size();
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, 64);
    acc |= w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
    if (acc) return false;
  }
  for (; i < n; ++i) acc |= std::to_integer<uint64_t>(p[i]);
  return acc == 0;
}

// The chunk for a full block of zeros (disk holes and zero runs: most of a sparse disk), encoded
// once: a zero block then costs one scan instead of a CRC and a compression.
const std::vector<std::byte>& zero_block_chunk() {
  static const std::vector<std::byte> chunk = [] {
    std::vector<std::byte> zeros(k_max_block);
    std::vector<std::byte> out(k_max_frame);
    size_t clen = 0;
    ::snappy::RawCompress(reinterpret_cast<const char*>(zeros.data()), zeros.size(),
                          reinterpret_cast<char*>(out.data() + k_chunk_header + k_crc_size), &clen);
    put_header(out.data(), k_chunk_compressed, k_crc_size + clen, masked_crc32c(zeros));
    out.resize(k_chunk_header + k_crc_size + clen);
    return out;
  }();
  return chunk;
}

size_t SnappyEncoder::encode(std::byte* out, size_t n, bool inline_data, bool* raw_follows) {
  std::span<const std::byte> block(m_raw.data(), n);
  if (n == k_max_block && all_zero(block)) {
    const auto& z = zero_block_chunk();
    std::memcpy(out, z.data(), z.size());
    return z.size();
  }
  uint32_t crc = masked_crc32c(block);
  size_t clen = 0;
  ::snappy::RawCompress(reinterpret_cast<const char*>(block.data()), n,
                        reinterpret_cast<char*>(out + k_chunk_header + k_crc_size), &clen);
  if (clen < n - n / 8) {
    put_header(out, k_chunk_compressed, k_crc_size + clen, crc);
    return k_chunk_header + k_crc_size + clen;
  }
  put_header(out, k_chunk_uncompressed, k_crc_size + n, crc);
  if (!inline_data) {
    *raw_follows = true;
    return k_chunk_header + k_crc_size;
  }
  std::memcpy(out + k_chunk_header + k_crc_size, block.data(), n);
  return k_chunk_header + k_crc_size + n;
}

Result<size_t> SnappyEncoder::fill(std::span<std::byte> dst) {
  size_t produced = 0;
  while (produced < dst.size()) {
    if (m_frame_pos < m_frame_end) {
      size_t n = std::min(dst.size() - produced, m_frame_end - m_frame_pos);
      std::memcpy(dst.data() + produced, m_frame.data() + m_frame_pos, n);
      m_frame_pos += n;
      produced += n;
      continue;
    }
    if (m_raw_pos < m_raw_end) {
      size_t n = std::min(dst.size() - produced, m_raw_end - m_raw_pos);
      std::memcpy(dst.data() + produced, m_raw.data() + m_raw_pos, n);
      m_raw_pos += n;
      produced += n;
      continue;
    }
    if (m_up_eof) break;
    if (m_cancel) CDI_TRY(m_cancel->check());
    size_t n = CDI_TRY(io::read_full(*m_up, m_raw));
    if (n < m_raw.size()) m_up_eof = true;
    if (n == 0) break;
    if (dst.size() - produced >= k_max_frame) {
      produced += encode(dst.data() + produced, n, true);
      continue;
    }
    bool raw_follows = false;
    m_frame_pos = 0;
    m_frame_end = encode(m_frame.data(), n, false, &raw_follows);
    if (raw_follows) {
      m_raw_pos = 0;
      m_raw_end = n;
    }
  }
  return produced;
}

}  // namespace

Result<std::unique_ptr<io::Reader>> open_encoder(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts) {
  return std::make_unique<SnappyEncoder>(std::move(upstream), opts);
}

}  // namespace cdi::formats::snappy
