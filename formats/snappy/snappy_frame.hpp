// SPDX-License-Identifier: Apache-2.0
// The snappy framing format (https://github.com/google/snappy/blob/main/framing_format.txt), as
// CDI's cloner writes it (github.com/golang/snappy Writer) and its upload server reads it: a
// stream identifier chunk, then compressed / uncompressed data chunks of at most 64 KiB of data
// each, every one carrying the masked CRC-32C of its uncompressed bytes. There is no end marker:
// the stream ends at a chunk boundary.
//
// A chunk is: type (1 byte), length (3 bytes, little endian, of what follows), body.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace cdi::formats::snappy {

inline constexpr uint8_t k_chunk_compressed = 0x00;
inline constexpr uint8_t k_chunk_uncompressed = 0x01;
inline constexpr uint8_t k_chunk_padding = 0xfe;
inline constexpr uint8_t k_chunk_stream_identifier = 0xff;
// 0x02..0x7f: reserved unskippable (an error); 0x80..0xfd: reserved skippable (skipped).

inline constexpr size_t k_chunk_header = 4;
inline constexpr size_t k_crc_size = 4;
// Most uncompressed bytes in one data chunk (the spec's limit).
inline constexpr size_t k_max_block = 65536;
// snappy::MaxCompressedLength(k_max_block): the longest compressed block of a full block. A
// compressed chunk's length (CRC + block) above k_crc_size + this is refused, as Go's reader does.
inline constexpr size_t k_max_compressed_block = 32 + k_max_block + k_max_block / 6;   // 76490
inline constexpr size_t k_max_data_chunk = k_crc_size + k_max_compressed_block;         // 76494

// The stream identifier chunk: ff 06 00 00 "sNaPpY".
inline constexpr uint8_t k_stream_identifier[10] = {0xff, 0x06, 0x00, 0x00, 's', 'N', 'a', 'P', 'p', 'Y'};

// Standard CRC-32C (Castagnoli; "123456789" → 0xE3069283), with ISA-L.
uint32_t crc32c(std::span<const std::byte> data);

// The framing format's checksum: ((crc >> 15) | (crc << 17)) + 0xa282ead8 of the CRC-32C.
inline uint32_t mask_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t masked_crc32c(std::span<const std::byte> data) { return mask_crc(crc32c(data)); }

}  // namespace cdi::formats::snappy
