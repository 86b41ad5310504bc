// SPDX-License-Identifier: Apache-2.0
// gzip stage. Invariants checked (RFC 1952, https://www.rfc-editor.org/rfc/rfc1952):
//  - every member starts with ID1 ID2 = 1f 8b, CM = 8 (deflate) and FLG without reserved bits 5-7;
//  - FEXTRA (XLEN + data), FNAME and FCOMMENT (zero-terminated) are skipped; FHCRC, when present,
//    must equal the low 16 bits of the CRC32 of the header bytes before it;
//  - the deflate data (RFC 1951) decodes without error (ISA-L igzip, raw deflate);
//  - each member's trailer holds CRC32 and ISIZE (length mod 2^32) of that member's output;
//  - concatenated members are read through; after the last one only the end of the stream may
//    follow, anything else is "trailing garbage";
//  - the end of the stream inside a member (header, data or the 8-byte trailer) is truncation,
//    and an empty stream is an error.
// The header is parsed here, byte by byte, so a header split across reads (even 1 byte each)
// works; igzip only sees raw deflate data and computes the CRC32 (crc_flag ISAL_GZIP_NO_HDR).
#include "formats/gzip/gzip_reader.hpp"

#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "lib/io/input_window.hpp"
#include "lib/io/stage_reader.hpp"
#include "lib/util/endian.hpp"
#include "lib/util/units.hpp"

namespace cdi::formats::gzip {
namespace {

constexpr size_t k_in_buffer = 256 * 1024;
// Consumed bytes kept in front of the unread ones on refill: when a member ends, igzip (in
// ISAL_GZIP_NO_HDR mode) may already have pulled up to 8 bytes past the deflate data into its
// 64-bit bit buffer (read_in). We step back over them, possibly into data of the previous refill.
constexpr size_t k_keep_back = 16;

constexpr uint8_t k_id1 = 0x1f;
constexpr uint8_t k_id2 = 0x8b;
constexpr uint8_t k_cm_deflate = 8;
constexpr uint8_t k_fhcrc = 0x02;
constexpr uint8_t k_fextra = 0x04;
constexpr uint8_t k_fname = 0x08;
constexpr uint8_t k_fcomment = 0x10;
constexpr uint8_t k_freserved = 0xe0;
constexpr size_t k_fixed_header = 10;
constexpr size_t k_trailer = 8;

using util::load_le32;

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

enum class Phase { header, body, trailer, done };
// Position inside a member header.
enum class Field { fixed, xlen, extra, name, comment, hcrc };

class GzipReader final : public io::StageReader {
 public:
  GzipReader(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts, std::unique_ptr<inflate_state> st)
      : io::StageReader("gzip"), m_up(std::move(upstream)), m_cancel(opts.cancel), m_in(k_keep_back + k_in_buffer, k_keep_back), m_inflate(std::move(st)) {
    start_member();
  }

  io::ReaderInfo info() const override { return {"gzip", std::nullopt, false, std::nullopt}; }

 private:
  Result<size_t> fill(std::span<std::byte> dst) override;
  Result<bool> refill();
  Result<void> parse_header();
  Result<void> check_trailer();
  void start_member();

  uint64_t offset_of(size_t pos) const { return m_in.offset_of(pos); }
  uint64_t received() const { return m_in.received(); }
  uint8_t* in_at(size_t pos) { return reinterpret_cast<uint8_t*>(m_in.data()) + pos; }
  std::unexpected<Error> truncated() const {
    return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of stream after " + util::format_bytes(received()));
  }

  std::unique_ptr<io::Reader> m_up;
  const util::CancelToken* m_cancel;
  io::InputWindow m_in;          // keeps k_keep_back consumed bytes on refill
  std::unique_ptr<inflate_state> m_inflate;

  Phase m_phase = Phase::header;
  uint64_t m_member = 0;         // 1-based index of the member being read
  uint64_t m_member_start = 0;   // stream offset where it starts
  uint64_t m_member_out = 0;     // bytes it has produced so far

  Field m_field = Field::fixed;
  size_t m_field_fill = 0;       // bytes of the current field seen
  std::array<uint8_t, k_fixed_header> m_fixed{};
  uint8_t m_flags = 0;
  uint32_t m_xlen = 0;
  uint32_t m_stored_hcrc = 0;
  uint32_t m_header_crc = 0;     // CRC32 of the header bytes so far (for FHCRC)
  std::array<uint8_t, k_trailer> m_trailer{};
};

void GzipReader::start_member() {
  ++m_member;
  m_member_start = offset_of(m_in.pos);
  m_member_out = 0;
  m_phase = Phase::header;
  m_field = Field::fixed;
  m_field_fill = 0;
  m_flags = 0;
  m_xlen = 0;
  m_stored_hcrc = 0;
  m_header_crc = crc32(0, nullptr, 0);
  isal_inflate_reset(m_inflate.get());
  m_inflate->crc_flag = ISAL_GZIP_NO_HDR;  // raw deflate; igzip keeps the CRC32 of the output
  m_inflate->hist_bits = 0;                // default 32 KiB window
}

// Everything was consumed; the window keeps the last k_keep_back bytes so igzip may rewind into them.
Result<bool> GzipReader::refill() { return CDI_TRY(m_in.refill(*m_up, m_cancel)) > 0; }

// Consumes header bytes from the buffer; switches to Phase::body once the header is complete.
Result<void> GzipReader::parse_header() {
  size_t crc_from = m_in.pos;
  auto crc_upto = [&](size_t pos) {
    if (pos > crc_from) m_header_crc = crc32(m_header_crc, in_at(crc_from), static_cast<uInt>(pos - crc_from));
    crc_from = pos;
  };
  auto not_gzip = [&]() -> std::unexpected<Error> {
    if (m_member == 1) return fail(Errc::corrupt_input, "not a gzip stream (bad magic)");
    return fail(Errc::corrupt_input, "trailing garbage after member " + std::to_string(m_member - 1) +
                                         " at offset " + std::to_string(m_member_start));
  };
  // Moves to the next optional field present in FLG.
  auto next_field = [&](Field after) {
    m_field_fill = 0;
    if (after < Field::xlen && (m_flags & k_fextra)) { m_field = Field::xlen; return; }
    if (after < Field::name && (m_flags & k_fname)) { m_field = Field::name; return; }
    if (after < Field::comment && (m_flags & k_fcomment)) { m_field = Field::comment; return; }
    if (after < Field::hcrc && (m_flags & k_fhcrc)) { m_field = Field::hcrc; return; }
    m_phase = Phase::body;
  };

  while (m_in.pos < m_in.end && m_phase == Phase::header) {
    uint8_t b = *in_at(m_in.pos);
    switch (m_field) {
      case Field::fixed:
        m_fixed[m_field_fill] = b;
        // Check each byte as it arrives so short garbage is named as such, not as truncation.
        if (m_field_fill == 0 && b != k_id1) return not_gzip();
        if (m_field_fill == 1 && b != k_id2) return not_gzip();
        if (m_field_fill == 2 && b != k_cm_deflate)
          return fail(Errc::corrupt_input, "member " + std::to_string(m_member) +
                                               ": unknown compression method " + std::to_string(b));
        if (m_field_fill == 3 && (b & k_freserved))
          return fail(Errc::corrupt_input, "member " + std::to_string(m_member) + ": reserved header flags set");
        ++m_in.pos;
        if (++m_field_fill == k_fixed_header) {
          m_flags = m_fixed[3];
          next_field(Field::fixed);
        }
        break;
      case Field::xlen:
        m_xlen |= uint32_t(b) << (8 * m_field_fill);
        ++m_in.pos;
        if (++m_field_fill == 2) {
          m_field = Field::extra;
          m_field_fill = 0;
          if (m_xlen == 0) next_field(Field::extra);
        }
        break;
      case Field::extra: {
        size_t take = std::min<size_t>(m_in.end - m_in.pos, m_xlen - m_field_fill);
        m_in.pos += take;
        m_field_fill += take;
        if (m_field_fill == m_xlen) next_field(Field::extra);
        break;
      }
      case Field::name:
      case Field::comment: {
        auto* begin = in_at(m_in.pos);
        auto* nul = static_cast<uint8_t*>(std::memchr(begin, 0, m_in.end - m_in.pos));
        if (!nul) {
          m_in.pos = m_in.end;
        } else {
          m_in.pos += static_cast<size_t>(nul - begin) + 1;
          next_field(m_field);
        }
        break;
      }
      case Field::hcrc:
        if (m_field_fill == 0) crc_upto(m_in.pos);
        m_stored_hcrc |= uint32_t(b) << (8 * m_field_fill);
        ++m_in.pos;
        crc_from = m_in.pos;
        if (++m_field_fill == 2) {
          if (m_stored_hcrc != (m_header_crc & 0xffff))
            return fail(Errc::corrupt_input, "header CRC mismatch in member " + std::to_string(m_member));
          next_field(Field::hcrc);
        }
        break;
    }
  }
  crc_upto(m_in.pos);  // no-op once the FHCRC bytes were reached (crc_from follows m_in.pos there)
  return {};
}

Result<void> GzipReader::check_trailer() {
  uint32_t stored_crc = load_le32(m_trailer.data());
  uint32_t stored_size = load_le32(m_trailer.data() + 4);
  uint32_t crc = m_inflate->crc;
  if (stored_crc != crc)
    return fail(Errc::corrupt_input, "CRC mismatch in member " + std::to_string(m_member) + " (stored " +
                                         hex32(stored_crc) + ", computed " + hex32(crc) + ")");
  if (stored_size != static_cast<uint32_t>(m_member_out))
    return fail(Errc::corrupt_input, "length mismatch in member " + std::to_string(m_member) + " (stored " +
                                         std::to_string(stored_size) + ", decoded " +
                                         std::to_string(m_member_out) + " bytes)");
  return {};
}

Result<size_t> GzipReader::fill(std::span<std::byte> dst) {
  for (;;) {
    switch (m_phase) {
      case Phase::done:
        return 0;

      case Phase::header:
        if (m_in.pos == m_in.end && !CDI_TRY(refill())) {
          bool nothing_of_member = m_field == Field::fixed && m_field_fill == 0;
          if (nothing_of_member && m_member > 1) {
            m_phase = Phase::done;
            return 0;
          }
          if (nothing_of_member && received() == 0) return fail(Errc::corrupt_input, "empty input");
          return truncated();
        }
        CDI_TRY(parse_header());
        break;

      case Phase::body: {
        inflate_state* st = m_inflate.get();
        st->next_in = in_at(m_in.pos);
        st->avail_in = static_cast<uint32_t>(m_in.end - m_in.pos);
        st->next_out = reinterpret_cast<uint8_t*>(dst.data());
        st->avail_out = static_cast<uint32_t>(std::min<size_t>(dst.size(), UINT32_MAX));
        uint32_t out_before = st->avail_out;
        int rc = isal_inflate(st);
        size_t new_pos = static_cast<size_t>(st->next_in - in_at(0));
        bool consumed = new_pos != m_in.pos;
        m_in.pos = new_pos;
        size_t produced = out_before - st->avail_out;
        m_member_out += produced;
        if (rc < 0)
          return fail(Errc::corrupt_input, "invalid deflate data in member " + std::to_string(m_member) +
                                               " (igzip error " + std::to_string(rc) + ")");
        if (st->block_state == ISAL_BLOCK_FINISH) {
          // Whole bytes left in the bit buffer belong to the trailer: give them back.
          size_t unread = st->read_in_length > 0 ? static_cast<size_t>(st->read_in_length) / 8 : 0;
          if (unread > std::min(k_keep_back, m_in.pos)) return fail(Errc::internal, "igzip read too far ahead");
          m_in.pos -= unread;
          st->read_in = 0;
          st->read_in_length = 0;
          m_phase = Phase::trailer;
          m_field_fill = 0;
        }
        if (produced > 0) return produced;
        if (m_phase == Phase::trailer || consumed) break;
        if (m_in.pos < m_in.end) return fail(Errc::internal, "igzip made no progress");
        if (!CDI_TRY(refill())) return truncated();
        break;
      }

      case Phase::trailer:
        if (m_in.pos == m_in.end && !CDI_TRY(refill())) return truncated();
        while (m_in.pos < m_in.end && m_field_fill < k_trailer) m_trailer[m_field_fill++] = *in_at(m_in.pos++);
        if (m_field_fill == k_trailer) {
          CDI_TRY(check_trailer());
          start_member();
        }
        break;
    }
  }
}

}  // namespace

int probe(Head head) {
  if (head.size() < 4) return 0;
  auto b = [&](size_t i) { return static_cast<uint8_t>(head[i]); };
  if (b(0) != k_id1 || b(1) != k_id2 || b(2) != k_cm_deflate || (b(3) & k_freserved)) return 0;
  return 32;
}

Result<std::unique_ptr<io::Reader>> open(std::unique_ptr<io::Reader> upstream, const CodecOptions& opts) {
  auto st = std::make_unique<inflate_state>();
  isal_inflate_init(st.get());
  return std::make_unique<GzipReader>(std::move(upstream), opts, std::move(st));
}

}  // namespace cdi::formats::gzip
