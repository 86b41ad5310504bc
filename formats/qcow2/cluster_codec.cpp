// SPDX-License-Identifier: Apache-2.0
#include "formats/qcow2/cluster_codec.hpp"

#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <cstring>

#include "formats/qcow2/text.hpp"


namespace cdi::formats::qcow2 {

struct ClusterDecompressor::State {
  Compression type;
  inflate_state inflate{};
  ZSTD_DCtx* zstd = nullptr;
  ~State() { ZSTD_freeDCtx(zstd); }
};

ClusterDecompressor::ClusterDecompressor(std::unique_ptr<State> state) : m_state(std::move(state)) {}
ClusterDecompressor::~ClusterDecompressor() = default;

Result<std::unique_ptr<ClusterDecompressor>> ClusterDecompressor::open(Compression type) {
  auto st = std::make_unique<State>();
  st->type = type;
  if (type == Compression::zstd) {
    st->zstd = ZSTD_createDCtx();
    if (!st->zstd) return fail(Errc::internal, "ZSTD_createDCtx failed (out of memory)");
  }
  return std::unique_ptr<ClusterDecompressor>(new ClusterDecompressor(std::move(st)));
}

Result<void> ClusterDecompressor::decompress(std::span<const std::byte> in, std::span<std::byte> out,
                                             bool require_end) {
  if (require_end) {
    // One spare byte lets the decoder run past the last output byte to the end marker.
    std::vector<std::byte> big(out.size() + 1);
    CDI_TRY(decompress_into(in, big, true));
    std::memcpy(out.data(), big.data(), out.size());
    return {};
  }
  return decompress_into(in, out, false);
}

Result<void> ClusterDecompressor::decompress_into(std::span<const std::byte> in, std::span<std::byte> out,
                                                  bool spare) {
  const size_t want = out.size() - (spare ? 1 : 0);
  if (m_state->type == Compression::zlib) {
    inflate_state& s = m_state->inflate;
    isal_inflate_reset(&s);
    s.crc_flag = ISAL_DEFLATE;  // raw deflate, as qemu's inflateInit2(-12)
    // ISA-L takes 32-bit lengths; a compressed cluster is at most 2 x 2 MiB.
    s.next_in = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(in.data()));
    s.avail_in = static_cast<uint32_t>(in.size());
    s.next_out = reinterpret_cast<uint8_t*>(out.data());
    s.avail_out = static_cast<uint32_t>(out.size());
    int rc = isal_inflate(&s);
    if (rc < 0) return fail(Errc::corrupt_input, fmt("invalid deflate data (isa-l error {})", rc));
    size_t got = out.size() - s.avail_out;
    if (got < want) return fail(Errc::corrupt_input, fmt("deflate data ends after {} of {} bytes", got, want));
    if (spare && (got > want || s.block_state != ISAL_BLOCK_FINISH))
      return fail(Errc::corrupt_input, "deflate data has no end");
    return {};
  }
  ZSTD_DCtx_reset(m_state->zstd, ZSTD_reset_session_only);
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  ZSTD_outBuffer ob{out.data(), out.size(), 0};
  size_t rc = 0;
  while (ob.pos < want || (spare && rc != 0)) {
    size_t in_before = ib.pos, out_before = ob.pos;
    rc = ZSTD_decompressStream(m_state->zstd, &ob, &ib);
    if (ZSTD_isError(rc)) return fail(Errc::corrupt_input, fmt("zstd: {}", ZSTD_getErrorName(rc)));
    if (ib.pos == in_before && ob.pos == out_before) break;  // no progress: input exhausted
  }
  if (ob.pos < want) return fail(Errc::corrupt_input, fmt("zstd data ends after {} of {} bytes", ob.pos, want));
  if (spare && (ob.pos > want || rc != 0)) return fail(Errc::corrupt_input, "zstd frame has no end");
  return {};
}

// ---- pool -------------------------------------------------------------------------------------

DecompressPool::DecompressPool(std::vector<std::unique_ptr<ClusterDecompressor>> ctx, size_t max_in_flight)
    : m_ctx(std::move(ctx)), m_max(std::max<size_t>(max_in_flight, 1)) {}

DecompressPool::~DecompressPool() {
  for (auto& t : m_threads) t.request_stop();
  m_cv_job.notify_all();
  m_threads.clear();  // join before the contexts and queues go away
}

Result<std::unique_ptr<DecompressPool>> DecompressPool::open(Compression type, unsigned threads, size_t max_in_flight) {
  std::vector<std::unique_ptr<ClusterDecompressor>> ctx;
  unsigned n = std::max(threads, 1u);
  for (unsigned i = 0; i < n; ++i) ctx.push_back(CDI_TRY(ClusterDecompressor::open(type)));
  std::unique_ptr<DecompressPool> pool(new DecompressPool(std::move(ctx), max_in_flight));
  if (threads > 1)
    for (auto& c : pool->m_ctx)
      pool->m_threads.emplace_back([p = pool.get(), ctx = c.get()](std::stop_token st) { p->work(st, *ctx); });
  return pool;
}

FinishedJob DecompressPool::run(ClusterDecompressor& ctx, CompressedJob& job) {
  FinishedJob done{job.guest, job.host, std::vector<std::byte>(job.out_len), std::nullopt};
  if (auto r = ctx.decompress(job.in, done.out, job.require_end); !r)
    done.error = Error(Errc::corrupt_input,
                       fmt("compressed cluster at host offset {:#x} (guest {:#x}): {}", job.host, job.guest,
                                   r.error().message()));
  return done;
}

void DecompressPool::work(std::stop_token stop, ClusterDecompressor& ctx) {
  for (;;) {
    CompressedJob job;
    {
      std::unique_lock lk(m_mu);
      if (!m_cv_job.wait(lk, stop, [&] { return !m_jobs.empty(); })) return;
      job = std::move(m_jobs.front());
      m_jobs.pop_front();
    }
    FinishedJob done = run(ctx, job);
    {
      std::lock_guard lk(m_mu);
      m_done.push_back(std::move(done));
    }
    m_cv_done.notify_one();
  }
}

void DecompressPool::submit(CompressedJob job) {
  if (m_threads.empty()) {
    FinishedJob done = run(*m_ctx.front(), job);
    std::lock_guard lk(m_mu);
    m_done.push_back(std::move(done));
    ++m_in_flight;
    return;
  }
  {
    std::lock_guard lk(m_mu);
    m_jobs.push_back(std::move(job));
    ++m_in_flight;
  }
  m_cv_job.notify_one();
}

bool DecompressPool::full() const {
  std::lock_guard lk(m_mu);
  return m_in_flight >= m_max;
}

size_t DecompressPool::in_flight() const {
  std::lock_guard lk(m_mu);
  return m_in_flight;
}

void DecompressPool::collect(std::vector<FinishedJob>& out, bool wait) {
  std::unique_lock lk(m_mu);
  if (wait && m_in_flight > 0) m_cv_done.wait(lk, [&] { return !m_done.empty(); });
  m_in_flight -= m_done.size();
  for (auto& d : m_done) out.push_back(std::move(d));
  m_done.clear();
}

}  // namespace cdi::formats::qcow2
