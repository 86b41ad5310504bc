// SPDX-License-Identifier: Apache-2.0
#include "formats/xz/xz_blocks.hpp"

#include <lzma.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "lib/util/units.hpp"

namespace cdi::formats::xz {
namespace {

constexpr size_t k_in_piece = 256 << 10;   // compressed bytes read at a time
constexpr size_t k_out_piece = 1 << 20;    // decompressed bytes written at a time
constexpr size_t k_zero_unit = 4096;       // zero detection (as the stream copy, qemu-img -S 4k)

struct LzmaStream {
  lzma_stream s = LZMA_STREAM_INIT;
  ~LzmaStream() { lzma_end(&s); }
};

// The filter chain a block header decoded into; its options are liblzma's allocations.
struct Filters {
  lzma_filter f[LZMA_FILTERS_MAX + 1];
  Filters() {
    for (auto& x : f) x = {LZMA_VLI_UNKNOWN, nullptr};
  }
  ~Filters() { lzma_filters_free(f, nullptr); }
  Filters(const Filters&) = delete;
  Filters& operator=(const Filters&) = delete;
};

std::unexpected<Error> lzma_error(lzma_ret rc, const std::string& what) {
  switch (rc) {
    case LZMA_FORMAT_ERROR:
      return fail(Errc::corrupt_input, "not an xz stream (bad stream header)" + what);
    case LZMA_OPTIONS_ERROR:
      return fail(Errc::unsupported, "unsupported xz options (filter chain or stream flags)" + what);
    case LZMA_DATA_ERROR:
      return fail(Errc::corrupt_input, "compressed data is corrupt" + what);
    case LZMA_BUF_ERROR:
      return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of the file" + what);
    case LZMA_MEMLIMIT_ERROR:
      return fail(Errc::limit, "the index needs more memory than the limit" + what);
    case LZMA_MEM_ERROR:
      return fail(Errc::limit, "out of memory" + what);
    default:
      return fail(Errc::internal, "liblzma error " + std::to_string(rc) + what);
  }
}

// Reads a block header at `b.file_offset` into `block`/`filters` and checks its sizes against
// the index.
Result<void> read_block_header(io::RandomAccess& in, const Block& b, lzma_block& block, Filters& filters) {
  uint8_t hdr[LZMA_BLOCK_HEADER_SIZE_MAX];
  auto std_hdr = std::as_writable_bytes(std::span(hdr));
  size_t n = CDI_TRY(io::pread_full(in, b.file_offset, std_hdr.first(1)));
  if (n != 1) return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of the file in a block header");
  block = {};
  block.version = 1;
  block.check = static_cast<lzma_check>(b.check);
  block.filters = filters.f;
  block.header_size = lzma_block_header_size_decode(hdr[0]);
  if (hdr[0] == 0 || block.header_size > b.total_size) return fail(Errc::corrupt_input, "compressed data is corrupt (block header)");
  n = CDI_TRY(io::pread_full(in, b.file_offset + 1, std_hdr.subspan(1, block.header_size - 1)));
  if (n != block.header_size - 1) return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of the file in a block header");
  if (lzma_ret rc = lzma_block_header_decode(&block, nullptr, hdr); rc != LZMA_OK) return lzma_error(rc, " (block header)");
  if (lzma_ret rc = lzma_block_compressed_size(&block, b.unpadded_size); rc != LZMA_OK)
    return lzma_error(rc, " (the block's size disagrees with the index)");
  if (block.uncompressed_size != LZMA_VLI_UNKNOWN && block.uncompressed_size != b.out_size)
    return fail(Errc::corrupt_input, "compressed data is corrupt (the block's size disagrees with the index)");
  block.uncompressed_size = b.out_size;   // the decoder checks the output against it
  return {};
}

// Sink calls from the workers, one at a time; all-zero units become zero_range.
class SharedSink {
 public:
  SharedSink(sink::Sink& out, uint64_t write_end) : m_out(out), m_end(write_end) {}

  Result<void> put(uint64_t at, std::span<const std::byte> data) {
    if (at >= m_end) return {};
    if (at + data.size() > m_end) data = data.first(static_cast<size_t>(m_end - at));
    // The runs are found outside the lock: only the sink calls take turns.
    struct Run {
      size_t pos, len;
      bool zero;
    };
    std::vector<Run> runs;
    for (size_t pos = 0; pos < data.size();) {
      bool zero = is_zero_unit(data, pos);
      size_t end = pos;
      while (end < data.size() && is_zero_unit(data, end) == zero) end = std::min(data.size(), end + unit_len(data, end));
      runs.push_back({pos, end - pos, zero});
      pos = end;
    }
    std::lock_guard lk(m_mu);
    for (const Run& r : runs) {
      if (r.zero)
        CDI_TRY(m_out.zero_range(at + r.pos, r.len));
      else
        CDI_TRY(m_out.write_at(at + r.pos, data.subspan(r.pos, r.len)));
    }
    return {};
  }

 private:
  static size_t unit_len(std::span<const std::byte> d, size_t pos) { return std::min(k_zero_unit, d.size() - pos); }
  static bool is_zero_unit(std::span<const std::byte> d, size_t pos) {
    auto u = d.subspan(pos, unit_len(d, pos));
    return std::all_of(u.begin(), u.end(), [](std::byte b) { return b == std::byte{0}; });
  }
  sink::Sink& m_out;
  const uint64_t m_end;
  std::mutex m_mu;
};

struct Worker {
  std::unique_ptr<io::RandomAccess> in;
  std::vector<std::byte> inbuf = std::vector<std::byte>(k_in_piece);
  std::vector<std::byte> outbuf = std::vector<std::byte>(k_out_piece);
  uint64_t bytes_in = 0;
};

Result<void> decode_one(Worker& w, const Block& b, SharedSink& out, std::vector<std::byte>* tail, uint64_t tail_from,
                        const util::CancelToken* cancel, const std::atomic<bool>& stop) {
  lzma_block block;
  Filters filters;
  CDI_TRY(read_block_header(*w.in, b, block, filters));
  LzmaStream strm;
  if (lzma_ret rc = lzma_block_decoder(&strm.s, &block); rc != LZMA_OK) return lzma_error(rc, "");
  uint64_t in_at = b.file_offset + block.header_size;
  const uint64_t in_end = b.file_offset + b.total_size;
  uint64_t out_at = b.out_offset;
  for (;;) {
    if (stop.load(std::memory_order_relaxed)) return {};
    if (cancel) CDI_TRY(cancel->check());
    if (strm.s.avail_in == 0 && in_at < in_end) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(w.inbuf.size(), in_end - in_at));
      size_t n = CDI_TRY(io::pread_full(*w.in, in_at, std::span(w.inbuf).first(want)));
      if (n < want) return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of the file");
      w.in->consumed({in_at, n});
      w.bytes_in += n;
      in_at += n;
      strm.s.next_in = reinterpret_cast<const uint8_t*>(w.inbuf.data());
      strm.s.avail_in = n;
    }
    strm.s.next_out = reinterpret_cast<uint8_t*>(w.outbuf.data());
    strm.s.avail_out = w.outbuf.size();
    lzma_ret rc = lzma_code(&strm.s, in_at < in_end || strm.s.avail_in ? LZMA_RUN : LZMA_FINISH);
    size_t produced = w.outbuf.size() - strm.s.avail_out;
    if (produced) {
      if (out_at + produced > b.out_offset + b.out_size)
        return fail(Errc::corrupt_input, "compressed data is corrupt (more data than the index says)");
      auto piece = std::span<const std::byte>(w.outbuf).first(produced);
      if (tail && out_at + produced > tail_from) {
        uint64_t from = std::max(out_at, tail_from);
        auto held = piece.subspan(static_cast<size_t>(from - out_at));
        tail->insert(tail->end(), held.begin(), held.end());
      }
      CDI_TRY(out.put(out_at, piece));
      out_at += produced;
    }
    if (rc == LZMA_STREAM_END) break;
    if (rc != LZMA_OK) return lzma_error(rc, "");
    if (!produced && strm.s.avail_in == 0 && in_at >= in_end)
      return fail(Errc::corrupt_input, Reason::truncated, "unexpected end of the block");
  }
  if (out_at != b.out_offset + b.out_size || in_at != in_end || strm.s.avail_in != 0)
    return fail(Errc::corrupt_input, "compressed data is corrupt (the block's size disagrees with the index)");
  return {};
}

}  // namespace

Result<BlockIndex> read_index(io::RandomAccess& in, uint64_t memory_limit) {
  auto size = in.size();
  if (!size) return fail(Errc::internal, "xz: block index of an input of unknown size");
  LzmaStream strm;
  lzma_index* idx = nullptr;
  if (lzma_ret rc = lzma_file_info_decoder(&strm.s, &idx, memory_limit ? memory_limit : UINT64_MAX, *size); rc != LZMA_OK)
    return std::unexpected(lzma_error(rc, "").error().context("xz"));
  std::vector<std::byte> buf(64 << 10);
  uint64_t pos = 0;
  for (;;) {
    if (strm.s.avail_in == 0) {
      size_t n = pos < *size ? CDI_TRY_CTX(io::pread_full(in, pos, buf), "xz") : 0;
      strm.s.next_in = reinterpret_cast<const uint8_t*>(buf.data());
      strm.s.avail_in = n;
      pos += n;
    }
    lzma_ret rc = lzma_code(&strm.s, LZMA_RUN);
    if (rc == LZMA_SEEK_NEEDED) {
      pos = strm.s.seek_pos;
      strm.s.avail_in = 0;
      continue;
    }
    if (rc == LZMA_STREAM_END) break;
    if (rc != LZMA_OK) {
      if (idx) lzma_index_end(idx, nullptr);
      auto what = rc == LZMA_DATA_ERROR ? std::string(" (index, stream footer or padding: trailing garbage?)") : std::string();
      return std::unexpected(lzma_error(rc, what).error().context("xz"));
    }
  }
  BlockIndex out;
  lzma_index_iter it;
  lzma_index_iter_init(&it, idx);
  while (!lzma_index_iter_next(&it, LZMA_INDEX_ITER_BLOCK)) {
    out.blocks.push_back(Block{it.block.compressed_file_offset, it.block.total_size, it.block.unpadded_size,
                               it.block.uncompressed_file_offset, it.block.uncompressed_size,
                               static_cast<uint32_t>(it.stream.flags ? it.stream.flags->check : LZMA_CHECK_NONE)});
  }
  out.out_size = lzma_index_uncompressed_size(idx);
  out.streams = lzma_index_stream_count(idx);
  lzma_index_end(idx, nullptr);
  return out;
}

Result<uint64_t> worker_memory(io::RandomAccess& in, const BlockIndex& index) {
  uint64_t most = 0;
  // The filter chain's memory is the block decoder's (the dictionary); blocks of one file share
  // their options in practice, so the first, middle and last block are looked at.
  std::vector<size_t> look;
  if (!index.blocks.empty()) look = {0, index.blocks.size() / 2, index.blocks.size() - 1};
  for (size_t i : look) {
    lzma_block block;
    Filters filters;
    CDI_TRY_CTX(read_block_header(in, index.blocks[i], block, filters), "xz");
    uint64_t m = lzma_raw_decoder_memusage(filters.f);
    if (m == UINT64_MAX) return fail(Errc::unsupported, "xz: unsupported filter chain");
    most = std::max(most, m);
  }
  return most + k_in_piece + k_out_piece;
}

Result<ParallelResult> decode_blocks(const BlockIndex& index, sink::Sink& out, const ParallelOptions& opts) {
  ParallelResult res;
  res.out_size = index.out_size;
  const uint64_t held = std::min(opts.hold_tail, index.out_size);
  const uint64_t tail_from = index.out_size - held;
  SharedSink shared(out, tail_from);
  const unsigned threads = std::clamp<unsigned>(opts.threads, 1, static_cast<unsigned>(std::max<size_t>(index.blocks.size(), 1)));
  std::vector<Worker> workers(threads);
  for (auto& w : workers) w.in = CDI_TRY(opts.open());
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex err_mu;
  std::optional<Error> first_error;
  std::vector<std::byte> tail;   // written by the worker of the blocks that hold it, in order
  std::mutex tail_mu;
  auto run = [&](Worker& w) {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= index.blocks.size() || stop.load()) return;
      const Block& b = index.blocks[i];
      std::vector<std::byte> mine;
      const bool holds = b.out_offset + b.out_size > tail_from;
      auto r = decode_one(w, b, shared, holds ? &mine : nullptr, tail_from, opts.cancel, stop);
      if (!r) {
        std::lock_guard lk(err_mu);
        if (!first_error)
          first_error = r.error().context("xz, block " + std::to_string(i) + " at offset " + std::to_string(b.file_offset));
        stop = true;
        return;
      }
      if (holds) {
        std::lock_guard lk(tail_mu);
        // The tail spans the last blocks (a tiny last block): kept by output offset.
        if (tail.size() < b.out_offset + b.out_size - tail_from) tail.resize(static_cast<size_t>(b.out_offset + b.out_size - tail_from));
        uint64_t from = std::max(b.out_offset, tail_from) - tail_from;
        std::copy(mine.begin(), mine.end(), tail.begin() + static_cast<ptrdiff_t>(from));
      }
    }
  };
  {
    std::vector<std::jthread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back([&, t] { run(workers[t]); });
    run(workers[0]);
  }
  if (first_error) return std::unexpected(*first_error);
  for (const auto& w : workers) res.bytes_in += w.bytes_in;
  tail.resize(static_cast<size_t>(held));
  res.tail = std::move(tail);
  return res;
}

}  // namespace cdi::formats::xz
