// SPDX-License-Identifier: Apache-2.0
// snappy framing decoder. Invariants checked (framing_format.txt), all here:
//  - the first chunk is the stream identifier ff 06 00 00 "sNaPpY"; later identifiers must be
//    exactly that too (concatenated streams);
//  - data chunks carry at least their 4-byte CRC; compressed chunks are at most k_max_data_chunk
//    bytes and their block's declared length is at most 64 KiB; uncompressed chunks hold at most
//    64 KiB; the block decodes (libsnappy checks every copy against the output bounds and that the
//    output is exactly the declared length) and the masked CRC-32C of the data matches;
//  - 0x02..0x7f are refused, 0x80..0xfe are skipped;
//  - the end of input inside a chunk is truncation; at a chunk boundary it is the end.
// Data is decoded straight into the caller's span when the chunk fits; otherwise into one 64 KiB
// buffer (compressed) or served from the input buffer (uncompressed) across several reads.
#include "formats/snappy/snappy_reader.hpp"

#include <snappy.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/io/input_window.hpp"
#include "lib/io/stage_reader.hpp"
#include "lib/util/endian.hpp"

namespace cdi::formats::snappy {
namespace {

constexpr size_t k_in_buffer = 256 * 1024;   // > k_chunk_header + k_max_data_chunk, several chunks

using util::load_le32;

std::string hex(uint32_t v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%0*x", digits, v);
  return buf;
}

class SnappyReader final : public io::StageReader {
 public:
  SnappyReader(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts)
      : io::StageReader("snappy"), m_up(std::move(upstream)), m_cancel(opts.cancel), m_in(k_in_buffer, 0, k_chunk_header + k_max_data_chunk), m_out(k_max_block) {}

  io::ReaderInfo info() const override { return {"snappy", std::nullopt, false, std::nullopt}; }

 private:
  Result<size_t> fill(std::span<std::byte> dst) override;
  Result<bool> ensure(size_t need);
  size_t buffered() const { return m_in.buffered(); }
  uint64_t offset() const { return m_in.offset(); }
  Result<void> check_crc(std::span<const std::byte> data, const std::byte* stored, uint64_t at) const;
  std::unexpected<Error> truncated(uint64_t at, uint64_t declared, uint64_t present) const {
    return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of stream in the chunk at offset " + std::to_string(at) + " (" +
                                         std::to_string(declared) + " bytes declared, " + std::to_string(present) +
                                         " present)");
  }

  std::unique_ptr<io::Reader> m_up;
  const util::CancelToken* m_cancel;
  io::InputWindow m_in;           // compacted only when a whole chunk would not fit behind
  bool m_seen_identifier = false;

  std::vector<std::byte> m_out;   // a decoded chunk that did not fit the caller's span
  const std::byte* m_pending = nullptr;   // into m_out or m_in: decoded bytes not yet delivered
  size_t m_pending_len = 0;
  uint64_t m_skip = 0;            // bytes of a skippable chunk still to drop
  uint64_t m_skip_at = 0;         // its offset and declared length (for the truncation message)
  uint64_t m_skip_len = 0;
};

// Makes at least `need` (<= k_in_buffer) bytes available at m_in.pos; false when the input ends
// first. Never called while m_pending points into m_in.
Result<bool> SnappyReader::ensure(size_t need) { return m_in.ensure(*m_up, m_cancel, need); }

Result<void> SnappyReader::check_crc(std::span<const std::byte> data, const std::byte* stored, uint64_t at) const {
  uint32_t want = load_le32(stored);
  uint32_t got = masked_crc32c(data);
  if (want != got)
    return fail(Errc::corrupt_input, "bad CRC in chunk at offset " + std::to_string(at) + " (stored " + hex(want, 8) +
                                         ", computed " + hex(got, 8) + ")");
  return {};
}

Result<size_t> SnappyReader::fill(std::span<std::byte> dst) {
  if (m_pending_len > 0) {
    size_t n = std::min(dst.size(), m_pending_len);
    std::memcpy(dst.data(), m_pending, n);
    m_pending += n;
    m_pending_len -= n;
    return n;
  }
  size_t produced = 0;
  while (produced < dst.size()) {
    if (m_skip > 0) {
      if (buffered() == 0) {
        if (produced > 0) return produced;
        if (!CDI_TRY(ensure(1))) return truncated(m_skip_at, m_skip_len, m_skip_len - m_skip);
      }
      size_t n = static_cast<size_t>(std::min<uint64_t>(m_skip, buffered()));
      m_in.pos += n;
      m_skip -= n;
      continue;
    }
    if (buffered() < k_chunk_header) {
      if (produced > 0) return produced;   // deliver what we have rather than wait for input
      if (!CDI_TRY(ensure(k_chunk_header))) {
        if (buffered() == 0) return 0;     // the end, at a chunk boundary
        return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of stream in the chunk header at offset " +
                                             std::to_string(offset()) + " (" + std::to_string(buffered()) +
                                             " of 4 bytes present)");
      }
    }
    const std::byte* h = m_in.data() + m_in.pos;
    const uint8_t type = static_cast<uint8_t>(h[0]);
    const size_t len = size_t(h[1]) | size_t(h[2]) << 8 | size_t(h[3]) << 16;
    const uint64_t at = offset();

    if (!m_seen_identifier && type != k_chunk_stream_identifier)
      return fail(Errc::corrupt_input, "not a snappy framed stream: missing stream identifier (chunk type " +
                                           hex(type, 2) + " at offset " + std::to_string(at) + ")");
    if (type >= 0x80 && type != k_chunk_stream_identifier) {   // padding and reserved skippable
      m_in.pos += k_chunk_header;
      m_skip = m_skip_len = len;
      m_skip_at = at;
      continue;
    }
    if (type >= 0x02 && type <= 0x7f)
      return fail(Errc::corrupt_input,
                  "reserved unskippable chunk type " + hex(type, 2) + " at offset " + std::to_string(at));

    // Stream identifier or data chunk: validate the length, then have the whole chunk buffered.
    if (type == k_chunk_stream_identifier) {
      if (len != 6)
        return fail(Errc::corrupt_input, "bad stream identifier at offset " + std::to_string(at) + " (length " +
                                             std::to_string(len) + ", not 6)");
    } else if (len < k_crc_size) {
      return fail(Errc::corrupt_input, "chunk at offset " + std::to_string(at) + " is too short for its CRC (length " +
                                           std::to_string(len) + ")");
    } else if (type == k_chunk_compressed && len > k_max_data_chunk) {
      return fail(Errc::corrupt_input, "oversized compressed chunk at offset " + std::to_string(at) + " (" +
                                           std::to_string(len) + " bytes, at most " +
                                           std::to_string(k_max_data_chunk) + " allowed)");
    } else if (type == k_chunk_uncompressed && len - k_crc_size > k_max_block) {
      return fail(Errc::corrupt_input, "oversized uncompressed chunk at offset " + std::to_string(at) + " (" +
                                           std::to_string(len - k_crc_size) + " bytes of data, at most " +
                                           std::to_string(k_max_block) + " allowed)");
    }
    const size_t whole = k_chunk_header + len;
    if (buffered() < whole) {
      if (produced > 0) return produced;
      if (!CDI_TRY(ensure(whole))) return truncated(at, len, buffered() - k_chunk_header);
    }
    const std::byte* body = m_in.data() + m_in.pos + k_chunk_header;   // ensure() may have moved it
    const size_t room = dst.size() - produced;

    if (type == k_chunk_stream_identifier) {
      if (std::memcmp(body, k_stream_identifier + k_chunk_header, 6) != 0)
        return fail(Errc::corrupt_input, "bad stream identifier at offset " + std::to_string(at) +
                                             " (not \"sNaPpY\")");
      m_seen_identifier = true;
      m_in.pos += whole;
      continue;
    }

    const std::byte* data = body + k_crc_size;
    const size_t data_len = len - k_crc_size;
    if (type == k_chunk_uncompressed) {
      CDI_TRY(check_crc({data, data_len}, body, at));
      m_in.pos += whole;
      if (data_len <= room) {
        if (data_len) std::memcpy(dst.data() + produced, data, data_len);
        produced += data_len;
        continue;
      }
      // Serve the rest from the input buffer; nothing refills it until it is delivered.
      std::memcpy(dst.data() + produced, data, room);
      m_pending = data + room;
      m_pending_len = data_len - room;
      return dst.size();
    }

    // Compressed chunk.
    size_t ulen = 0;
    const char* block = reinterpret_cast<const char*>(data);
    if (!::snappy::GetUncompressedLength(block, data_len, &ulen))
      return fail(Errc::corrupt_input,
                  "bad snappy block in chunk at offset " + std::to_string(at) + " (unreadable length)");
    if (ulen > k_max_block)
      return fail(Errc::corrupt_input, "oversized compressed chunk at offset " + std::to_string(at) + " (decodes to " +
                                           std::to_string(ulen) + " bytes, at most " + std::to_string(k_max_block) +
                                           " allowed)");
    if (ulen > room && produced > 0) return produced;
    std::byte* target = ulen <= room ? dst.data() + produced : m_out.data();
    if (!::snappy::RawUncompress(block, data_len, reinterpret_cast<char*>(target)))
      return fail(Errc::corrupt_input, "bad snappy block in chunk at offset " + std::to_string(at));
    CDI_TRY(check_crc({target, ulen}, body, at));
    m_in.pos += whole;
    if (target != m_out.data()) {
      produced += ulen;
      continue;
    }
    std::memcpy(dst.data(), m_out.data(), room);   // produced == 0 here
    m_pending = m_out.data() + room;
    m_pending_len = ulen - room;
    return dst.size();
  }
  return produced;
}

}  // namespace

int probe(Head head) {
  if (head.size() < sizeof k_stream_identifier) return 0;
  return std::memcmp(head.data(), k_stream_identifier, sizeof k_stream_identifier) == 0 ? 80 : 0;
}

Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts) {
  return std::make_unique<SnappyReader>(std::move(upstream), opts);
}

}  // namespace cdi::formats::snappy
