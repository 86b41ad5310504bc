// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: qcow2 header, L1/L2 and compressed-cluster parsing through the streaming
// decoder. Checks the decoder's output contract on every accepted input: the extents tile
// [0, virtual_size) exactly once.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>

#include "formats/qcow2/qcow2_decoder.hpp"
#include "formats/qcow2/qcow2_header.hpp"

namespace {

class BytesReader final : public cdi::io::Reader {
 public:
  BytesReader(const uint8_t* data, size_t size, size_t chunk) : m_data(data), m_size(size), m_chunk(chunk) {}
  cdi::Result<size_t> read(std::span<std::byte> dst) override {
    size_t n = std::min({dst.size(), m_chunk, m_size - m_pos});
    std::memcpy(dst.data(), m_data + m_pos, n);
    m_pos += n;
    return n;
  }
  cdi::io::ReaderInfo info() const override { return {"fuzz", std::nullopt, false, std::nullopt}; }

 private:
  const uint8_t* m_data;
  size_t m_size, m_chunk, m_pos = 0;
};

// Records extents without storing data; aborts on overlap.
class TilingSink final : public cdi::sink::Sink {
 public:
  cdi::Result<void> write_at(uint64_t off, std::span<const std::byte> d) override { return add(off, d.size()); }
  cdi::Result<void> zero_range(uint64_t off, uint64_t len) override { return add(off, len); }
  cdi::Result<void> finish(uint64_t) override { return {}; }
  void abort() noexcept override {}
  cdi::sink::SinkInfo info() const override { return {"fuzz", "fuzz", std::nullopt}; }
  cdi::sink::SinkStats stats() const override { return {}; }
  bool tiles(uint64_t size) const {
    uint64_t at = 0;
    for (auto [s, e] : m_ext) {
      if (s != at) return false;
      at = e;
    }
    return at == size;
  }

 private:
  cdi::Result<void> add(uint64_t off, uint64_t len) {
    if (len == 0) std::abort();
    auto next = m_ext.lower_bound(off);
    if (next != m_ext.end() && next->first < off + len) std::abort();
    if (next != m_ext.begin() && std::prev(next)->second > off) std::abort();
    uint64_t s = off, e = off + len;
    if (next != m_ext.begin() && std::prev(next)->second == off) {
      s = std::prev(next)->first;
      m_ext.erase(std::prev(next));
    }
    if (next != m_ext.end() && next->first == e) {
      e = next->second;
      m_ext.erase(next);
    }
    m_ext[s] = e;
    return {};
  }
  std::map<uint64_t, uint64_t> m_ext;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace q = cdi::formats::qcow2;
  std::span<const std::byte> head(reinterpret_cast<const std::byte*>(data), size);
  (void)q::probe(head);
  (void)q::inspect(head);
  // The last byte picks the read size and thread count, so short reads and the pool are fuzzed too.
  size_t chunk = size ? 1 + (data[size - 1] % 64) * 97 : 1;
  q::DecodeOptions opts;
  opts.hold_limit = 1 << 20;
  opts.max_virtual_size = 64ull << 20;  // keeps the extent map small
  opts.threads = size && (data[size - 1] & 0x80) ? 2 : 1;
  BytesReader r(data, size, chunk);
  TilingSink sink;
  auto st = q::decode(r, sink, opts);
  if (st && !sink.tiles(st->virtual_size)) std::abort();
  if (!st && st.error().code() == cdi::Errc::internal) std::abort();
  return 0;
}
