// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/async_sink.hpp"

#include <cstring>

namespace cdi::sink {

AsyncSink::AsyncSink(Sink& inner, size_t max_in_flight)
    : m_inner(inner), m_max_in_flight(max_in_flight), m_thread([this] { run(); }) {}

AsyncSink::~AsyncSink() {
  // Not finished: whatever is still queued is dropped (the owner of the inner sink decides
  // between its finish() and abort()).
  {
    std::lock_guard lk(m_mu);
    for (const auto& op : m_ops) m_in_flight -= op.data.size();
    m_ops.clear();
  }
  stop_thread();
}

void AsyncSink::stop_thread() noexcept {
  {
    std::lock_guard lk(m_mu);
    m_stop = true;
    m_cv.notify_all();
  }
  if (m_thread.joinable()) m_thread.join();
}

void AsyncSink::run() {
  for (;;) {
    Op op;
    {
      std::unique_lock lk(m_mu);
      m_cv.wait(lk, [&] { return !m_ops.empty() || m_stop; });
      if (m_ops.empty()) return;   // stopped and drained
      op = std::move(m_ops.front());
      m_ops.pop_front();
      ++m_busy;
    }
    Result<void> r;
    bool skip;
    {
      std::lock_guard lk(m_mu);
      skip = m_error.has_value();
    }
    if (!skip) r = op.data.empty() ? m_inner.zero_range(op.offset, op.length) : m_inner.write_at(op.offset, op.data);
    // Freed before its bytes leave the count, so max_in_flight bounds the memory itself.
    const size_t bytes = op.data.size();
    std::vector<std::byte>().swap(op.data);
    {
      std::lock_guard lk(m_mu);
      if (!r && !m_error) m_error = std::move(r).error();
      m_in_flight -= bytes;
      --m_busy;
      m_cv.notify_all();
    }
  }
}

Result<void> AsyncSink::enqueue(Op op, size_t bytes) {
  std::unique_lock lk(m_mu);
  // Wait for room; a single operation larger than the limit is admitted when the queue is empty.
  m_cv.wait(lk, [&] { return m_error || m_stop || m_in_flight == 0 || m_in_flight + bytes <= m_max_in_flight; });
  if (m_error) return std::unexpected(*m_error);
  if (m_stop) return fail(Errc::internal, "write after finish() or abort()");
  m_in_flight += bytes;
  m_ops.push_back(std::move(op));
  m_cv.notify_all();
  return {};
}

Result<void> AsyncSink::write_at(uint64_t offset, std::span<const std::byte> data) {
  if (data.empty()) return {};
  Op op;
  op.offset = offset;
  op.data.assign(data.begin(), data.end());
  return enqueue(std::move(op), data.size());
}

Result<void> AsyncSink::zero_range(uint64_t offset, uint64_t length) {
  if (length == 0) return {};
  Op op;
  op.offset = offset;
  op.length = length;
  return enqueue(std::move(op), 0);
}

Result<void> AsyncSink::drain() {
  std::unique_lock lk(m_mu);
  m_cv.wait(lk, [&] { return (m_ops.empty() && m_busy == 0) || m_stop; });
  if (m_error) return std::unexpected(*m_error);
  return {};
}

Result<void> AsyncSink::finish(uint64_t image_size) {
  CDI_TRY(drain());
  stop_thread();
  return m_inner.finish(image_size);
}

void AsyncSink::abort() noexcept {
  {
    std::lock_guard lk(m_mu);
    for (const auto& op : m_ops) m_in_flight -= op.data.size();
    m_ops.clear();
  }
  stop_thread();
  m_inner.abort();
}

SinkStats AsyncSink::stats() const { return m_inner.stats(); }

}  // namespace cdi::sink
