// SPDX-License-Identifier: Apache-2.0
// Decompression of QCOW2 compressed clusters, and a small worker pool that runs it off the
// reading thread. qemu's semantics are kept exactly: a compressed cluster is valid when it
// fills the whole output cluster; the input may carry trailing bytes (the descriptor's size is
// only known to 512-byte precision), and a zlib stream need not reach its end marker once the
// output is full (qemu accepts Z_BUF_ERROR with a full buffer).
//   zlib: raw deflate (window bits -12), decoded with ISA-L's inflate;
//   zstd: one or more frames, streamed until the output is full.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "formats/qcow2/qcow2_header.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::qcow2 {

// One decompression context; not thread-safe (one per worker).
class ClusterDecompressor {
 public:
  static Result<std::unique_ptr<ClusterDecompressor>> open(Compression type);
  ~ClusterDecompressor();
  ClusterDecompressor(const ClusterDecompressor&) = delete;
  ClusterDecompressor& operator=(const ClusterDecompressor&) = delete;

  // Decompresses `in` until `out` is completely filled. With `require_end`, the compressed stream
  // must also reach its end marker within `in` and produce no more than out.size() bytes (used
  // for a cluster cut by the end of the stream: only its sector padding may be missing). Errors:
  // corrupt_input with a one-line reason ("invalid deflate data", "zstd: <reason>", "data ends
  // after N of M bytes").
  Result<void> decompress(std::span<const std::byte> in, std::span<std::byte> out, bool require_end = false);

 private:
  struct State;
  explicit ClusterDecompressor(std::unique_ptr<State> state);
  Result<void> decompress_into(std::span<const std::byte> in, std::span<std::byte> out, bool spare);
  std::unique_ptr<State> m_state;
};

struct CompressedJob {
  uint64_t guest = 0;               // guest offset of the cluster
  uint64_t host = 0;                // host offset of the compressed bytes (for messages)
  uint64_t out_len = 0;             // bytes to produce (the cluster size)
  bool require_end = false;         // see ClusterDecompressor::decompress
  std::vector<std::byte> in;        // compressed bytes
};

struct FinishedJob {
  uint64_t guest = 0;
  uint64_t host = 0;
  std::vector<std::byte> out;       // out_len bytes when ok
  std::optional<Error> error;       // decompression failure (already worded with the offsets)
};

// Runs ClusterDecompressor on `threads` workers (std::jthread) with a bounded number of jobs in
// flight; with threads <= 1 it decompresses inline in submit(). Results come back in any order.
class DecompressPool {
 public:
  static Result<std::unique_ptr<DecompressPool>> open(Compression type, unsigned threads, size_t max_in_flight);
  ~DecompressPool();

  // Queues a job. The caller must first collect() when full() (submit never blocks).
  void submit(CompressedJob job);
  // True when max_in_flight jobs are queued, running or finished but not collected.
  bool full() const;
  // Jobs submitted and not yet collected.
  size_t in_flight() const;
  // Moves finished jobs into `out` (appends). With wait, blocks until at least one is finished,
  // unless nothing is in flight.
  void collect(std::vector<FinishedJob>& out, bool wait);

 private:
  DecompressPool(std::vector<std::unique_ptr<ClusterDecompressor>> ctx, size_t max_in_flight);
  void work(std::stop_token stop, ClusterDecompressor& ctx);
  static FinishedJob run(ClusterDecompressor& ctx, CompressedJob& job);

  std::vector<std::unique_ptr<ClusterDecompressor>> m_ctx;
  size_t m_max;
  mutable std::mutex m_mu;
  std::condition_variable_any m_cv_job;
  std::condition_variable m_cv_done;
  std::deque<CompressedJob> m_jobs;
  std::vector<FinishedJob> m_done;
  size_t m_in_flight = 0;
  std::vector<std::jthread> m_threads;  // last member: joined first on destruction
};

}  // namespace cdi::formats::qcow2
