// SPDX-License-Identifier: Apache-2.0
// A bounded byte pipe that turns a push-style producer (libcurl's write callback, running on its
// own thread) into a pull-style io::Reader consumer. The producer blocks while the buffer is full,
// so memory stays at `capacity` and the slowest side sets the pace; the consumer blocks while it
// is empty. Either side can stop the other: the producer ends the stream (cleanly or with an
// error, seen by the consumer after the bytes already pushed), the consumer closes (a blocked push
// returns false at once).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::io {

class PushPullAdapter {
 public:
  // capacity: the most bytes buffered between the two sides (> 0).
  explicit PushPullAdapter(size_t capacity);
  PushPullAdapter(const PushPullAdapter&) = delete;
  PushPullAdapter& operator=(const PushPullAdapter&) = delete;

  // Producer: copies all of `data` in, blocking while the buffer is full. Returns false (having
  // copied possibly only a part) when the consumer has closed: stop producing.
  bool push(std::span<const std::byte> data);

  // Producer: ends the stream. `end` is {} for a clean end or the error the consumer gets once it
  // has read everything pushed before. Only the first call counts.
  void finish(Result<void> end);

  // Producer: waits `d`, returning early (false) when the consumer closes. True after the full wait.
  bool sleep_unless_closed(std::chrono::milliseconds d);

  // True once the consumer has closed.
  bool consumer_closed() const;

  // Consumer: copies up to dst.size() buffered bytes, blocking until there are some, the stream
  // ended (returns 0) or failed (returns the producer's error, again on every later call).
  // `cancel`, when given, is polled every 100 ms while waiting: Errc::cancelled.
  Result<size_t> pull(std::span<std::byte> dst, const util::CancelToken* cancel = nullptr);

  // Consumer: no more pulls will come; wakes and stops the producer. Idempotent.
  void close();

  // The most bytes that were ever buffered at once (for tests and stats).
  size_t peak() const;

 private:
  mutable std::mutex m_mutex;
  std::condition_variable m_can_pull;
  std::condition_variable m_can_push;
  std::vector<std::byte> m_buf;
  size_t m_head = 0;   // index of the first buffered byte
  size_t m_size = 0;   // bytes buffered
  size_t m_peak = 0;
  bool m_closed = false;
  std::optional<Result<void>> m_end;
};

}  // namespace cdi::io
