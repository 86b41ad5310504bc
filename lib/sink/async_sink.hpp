// SPDX-License-Identifier: Apache-2.0
// AsyncSink: runs another sink's writes on a writer thread, so a producer that decodes (the qcow2
// decoder, decompressors) overlaps its CPU work with the target's write syscalls. Data is copied
// into the queue; at most `max_in_flight` bytes wait at once (the producer blocks beyond that), so
// memory stays bounded. The first error of the inner sink is sticky: every later call returns it.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "lib/sink/sink.hpp"

namespace cdi::sink {

class AsyncSink final : public Sink {
 public:
  explicit AsyncSink(Sink& inner, size_t max_in_flight = 16u << 20);
  // Drops queued operations that were not drained; never finishes or aborts the inner sink.
  ~AsyncSink() override;

  Result<void> write_at(uint64_t offset, std::span<const std::byte> data) override;
  Result<void> zero_range(uint64_t offset, uint64_t length) override;
  // Waits for every queued operation, then finishes the inner sink.
  Result<void> finish(uint64_t image_size) override;
  // Drops queued operations, stops the writer, aborts the inner sink.
  void abort() noexcept override;
  SinkInfo info() const override { return m_inner.info(); }
  SinkStats stats() const override;

  // Waits until every queued operation reached the inner sink; returns the sticky error if any.
  Result<void> drain();

 private:
  struct Op {
    uint64_t offset = 0;
    uint64_t length = 0;               // zero range length when data is empty
    std::vector<std::byte> data;
  };
  Result<void> enqueue(Op op, size_t bytes);
  void run();
  void stop_thread() noexcept;

  Sink& m_inner;
  const size_t m_max_in_flight;
  mutable std::mutex m_mu;
  std::condition_variable m_cv;
  std::deque<Op> m_ops;
  size_t m_in_flight = 0;   // bytes queued or being written
  size_t m_busy = 0;        // operations taken by the writer and not finished
  bool m_stop = false;
  std::optional<Error> m_error;
  std::thread m_thread;
};

}  // namespace cdi::sink
