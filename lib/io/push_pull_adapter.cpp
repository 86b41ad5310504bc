// SPDX-License-Identifier: Apache-2.0
#include "lib/io/push_pull_adapter.hpp"

#include <algorithm>
#include <cstring>

namespace cdi::io {

PushPullAdapter::PushPullAdapter(size_t capacity) : m_buf(std::max<size_t>(capacity, 1)) {}

bool PushPullAdapter::push(std::span<const std::byte> data) {
  std::unique_lock lock(m_mutex);
  while (!data.empty()) {
    m_can_push.wait(lock, [&] { return m_closed || m_size < m_buf.size(); });
    if (m_closed) return false;
    size_t tail = (m_head + m_size) % m_buf.size();
    size_t n = std::min({data.size(), m_buf.size() - m_size, m_buf.size() - tail});
    std::memcpy(m_buf.data() + tail, data.data(), n);
    m_size += n;
    m_peak = std::max(m_peak, m_size);
    data = data.subspan(n);
    m_can_pull.notify_one();
  }
  return !m_closed;
}

void PushPullAdapter::finish(Result<void> end) {
  std::lock_guard lock(m_mutex);
  if (!m_end) m_end = std::move(end);
  m_can_pull.notify_all();
}

bool PushPullAdapter::sleep_unless_closed(std::chrono::milliseconds d) {
  std::unique_lock lock(m_mutex);
  return !m_can_push.wait_for(lock, d, [&] { return m_closed; });
}

bool PushPullAdapter::consumer_closed() const {
  std::lock_guard lock(m_mutex);
  return m_closed;
}

Result<size_t> PushPullAdapter::pull(std::span<std::byte> dst, const util::CancelToken* cancel) {
  if (dst.empty()) return 0;
  std::unique_lock lock(m_mutex);
  auto ready = [&] { return m_size > 0 || m_end.has_value(); };
  while (!ready()) {
    if (cancel) {
      if (cancel->cancelled()) return fail(Errc::cancelled, "cancelled by signal");
      m_can_pull.wait_for(lock, std::chrono::milliseconds(100), ready);
    } else {
      m_can_pull.wait(lock, ready);
    }
  }
  if (m_size == 0) {
    if (*m_end) return 0;
    return std::unexpected(m_end->error());
  }
  size_t copied = 0;
  while (copied < dst.size() && m_size > 0) {
    size_t n = std::min({dst.size() - copied, m_size, m_buf.size() - m_head});
    std::memcpy(dst.data() + copied, m_buf.data() + m_head, n);
    m_head = (m_head + n) % m_buf.size();
    m_size -= n;
    copied += n;
  }
  if (m_size == 0) m_head = 0;
  m_can_push.notify_one();
  return copied;
}

void PushPullAdapter::close() {
  std::lock_guard lock(m_mutex);
  m_closed = true;
  m_can_push.notify_all();
  m_can_pull.notify_all();
}

size_t PushPullAdapter::peak() const {
  std::lock_guard lock(m_mutex);
  return m_peak;
}

}  // namespace cdi::io
