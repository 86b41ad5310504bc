// SPDX-License-Identifier: Apache-2.0
// What every format/codec folder exports. A probe is pure: it looks at the head of the stream
// (up to k_probe_bytes, fewer if the stream is shorter) and returns the number of header bits
// it verified (0 = not this format), libarchive-style, so the most specific bidder wins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::formats {

inline constexpr size_t k_probe_bytes = 64 * 1024;

using Head = std::span<const std::byte>;

// Options common to decompressing stages.
struct CodecOptions {
  unsigned threads = 0;                           // 0 = pick from the CPUs we may use
  const util::CancelToken* cancel = nullptr;      // checked between blocks when set
  // Bytes the stage's decoder may use (its share of util::MemoryBudget); 0 = the stage's own
  // default. xz lowers its threads to fit, zstd refuses frames whose window does not fit.
  uint64_t memory_limit = 0;
};

// Stage needs, known before a stage is built (nbdkit can_* style).
struct StageNeeds {
  bool random_access_input = false;  // needs a seekable input (else the planner spools to scratch)
};

}  // namespace cdi::formats
