// SPDX-License-Identifier: Apache-2.0
// Cooperative cancellation. cmd/ sets the flag from a signal handler; long loops in the library
// check it and return Errc::cancelled, so every destructor (scratch files, partial targets) runs.
#pragma once

#include <atomic>

#include "lib/util/error.hpp"

namespace cdi::util {

class CancelToken {
 public:
  void cancel() noexcept { m_flag.store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return m_flag.load(std::memory_order_relaxed); }
  Result<void> check() const {
    if (cancelled()) return fail(Errc::cancelled, "cancelled by signal");
    return {};
  }

 private:
  std::atomic<bool> m_flag{false};
};

}  // namespace cdi::util
