// SPDX-License-Identifier: Apache-2.0
// A sink decorator: forwards to the target and counts the guest bytes made final, for progress.
#pragma once

#include "lib/pipeline/progress.hpp"
#include "lib/sink/sink.hpp"

namespace cdi::pipeline {

class ProgressSink final : public sink::Sink {
 public:
  ProgressSink(sink::Sink& inner, ProgressState* p) : m_inner(inner), m_p(p) {}
  Result<void> write_at(uint64_t off, std::span<const std::byte> data) override {
    CDI_TRY(m_inner.write_at(off, data));
    if (m_p) m_p->bytes_written.fetch_add(data.size(), std::memory_order_relaxed);
    return {};
  }
  Result<void> zero_range(uint64_t off, uint64_t len) override {
    CDI_TRY(m_inner.zero_range(off, len));
    if (m_p) m_p->bytes_written.fetch_add(len, std::memory_order_relaxed);
    return {};
  }
  Result<void> finish(uint64_t size) override { return m_inner.finish(size); }
  void abort() noexcept override { m_inner.abort(); }
  sink::SinkInfo info() const override { return m_inner.info(); }
  sink::SinkStats stats() const override { return m_inner.stats(); }

 private:
  sink::Sink& m_inner;
  ProgressState* m_p;
};

}  // namespace cdi::pipeline
