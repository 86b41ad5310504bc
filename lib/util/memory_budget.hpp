// SPDX-License-Identifier: Apache-2.0
// The memory this process may use for its buffers, decoders and queues: the cgroup memory limit
// (or an explicit one) minus a safety margin, handed out in named shares so that a plan can say
// who got what and a budget that cannot be met fails up front instead of ending in an OOM kill.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/cgroup.hpp"
#include "lib/util/error.hpp"

namespace cdi::util {

// A limit read from the cgroup files: the smallest of this process's cgroup and its ancestors.
struct CgroupMemoryLimit {
  uint64_t bytes = 0;
  std::string source;   // "cgroup v2 memory.max at /sys/fs/cgroup/pod", "cgroup v1 memory.limit_in_bytes at …"
};

// The smallest memory limit over this process's cgroup and its ancestors: cgroup v2 memory.max
// of the unified hierarchy, cgroup v1 memory.limit_in_bytes of the hierarchy carrying "memory"
// (both, in a hybrid layout; the smallest wins). Values that mean "no limit" are ignored:
// "max", anything unparseable, >= 2^60 (v1 writes PAGE_COUNTER_MAX pages, 2^63 - 4096 here),
// and anything >= the physical memory (a limit the machine cannot reach is none). nullopt when
// nothing is left.
std::optional<CgroupMemoryLimit> cgroup_memory_limit(const CgroupPaths& paths = CgroupPaths::system());

// One share taken from a budget.
struct MemoryShare {
  std::string what;
  uint64_t bytes = 0;
};

class MemoryBudget {
 public:
  // Kept out of every limit for what the budget does not hand out:
  //  - 16 MiB for the process image: measured on cdi-import (Release, 48 shared libraries), an
  //    import at its start holds 12.4 MiB of file-backed pages (its text, libcrypto, libstdc++,
  //    libc, ...; charged to the pod's cgroup when the pod faults them in first, and hot: the
  //    kernel can drop them only to fault them right back) and 1.8 MiB anonymous (heap, TLS and
  //    library state, the main stack), rounded up for the threads' stacks and malloc's arenas;
  //  - 1/16 of the limit for what grows with the work: malloc fragmentation and the page cache
  //    the kernel cannot reclaim at once (dirty and under-writeback pages of the target, read-ahead
  //    of the source) — 4 MiB of a 64 MiB pod.
  // So a 64 MiB limit leaves 44 MiB, 1 GiB leaves 944 MiB.
  static constexpr uint64_t k_margin_fixed = 16ULL << 20;
  static constexpr uint64_t k_margin_divisor = 16;
  static uint64_t margin_for(uint64_t limit);

  // The budget of this process: `override` when given (a value the user set, named by
  // `override_source`: "--memory-limit", an environment variable; 0 means "no limit"), else the
  // cgroup limit, else none (unlimited). Never fails: files that cannot be read mean no limit.
  static MemoryBudget detect(std::optional<uint64_t> override, const CgroupPaths& paths = CgroupPaths::system(),
                             std::string_view override_source = "--memory-limit");
  static MemoryBudget unlimited();
  static MemoryBudget of(uint64_t limit, std::string source);

  bool limited() const { return m_limit.has_value(); }
  std::optional<uint64_t> limit() const { return m_limit; }
  // Where the limit came from: "cgroup v2 memory.max at /sys/fs/cgroup/pod", "--memory-limit",
  // or "none".
  const std::string& source() const { return m_source; }
  // The cgroup's limit even when an override replaced it (a plan may warn when the override is
  // above it); nullopt when there is none or it was not looked up.
  const std::optional<CgroupMemoryLimit>& cgroup() const { return m_cgroup; }
  uint64_t margin() const { return m_limit ? margin_for(*m_limit) : 0; }
  // limit - margin (0 when the margin takes it all); UINT64_MAX when unlimited.
  uint64_t usable() const;
  // usable() minus the shares taken so far.
  uint64_t remaining() const;

  // Takes a share for `what`: `wanted` bytes if that much remains, else all that remains if that
  // is at least `minimum`. An unlimited budget always gives `wanted`. Errc::limit when less than
  // `minimum` remains, naming `what`, the minimum, what remains, the limit and its source, and
  // the shares already taken. Nothing is taken on failure.
  Result<uint64_t> take(std::string_view what, uint64_t wanted, uint64_t minimum);
  const std::vector<MemoryShare>& shares() const { return m_shares; }

  // The receive buffer of a stream source (the HTTP source's pipe, the upload server's
  // request-body pipe) under this budget: a sixteenth of the usable budget, between
  // k_receive_buffer_floor and `wanted`; `wanted` when unlimited or when that is below the floor.
  // Depends on the limit only (not on the shares taken), so the upload server, the HTTP source
  // and the import's plan arrive at the same size independently. A 64 MiB pod: 2.75 MiB; from a
  // usable budget of 16 × `wanted` on (a ~155 MiB limit for 8 MiB), `wanted`.
  static constexpr uint64_t k_receive_buffer_floor = 1ULL << 20;
  static constexpr uint64_t k_receive_buffer_max = 8ULL << 20;   // the largest default (upload server)
  uint64_t receive_buffer(uint64_t wanted) const;

  // "44.0 MiB usable of a 64.0 MiB limit (cgroup v1 memory.limit_in_bytes at /sys/…), 20.0 MiB
  // kept back", or "no memory limit (none)".
  std::string describe() const;

 private:
  std::optional<uint64_t> m_limit;
  std::string m_source = "none";
  std::optional<CgroupMemoryLimit> m_cgroup;
  std::vector<MemoryShare> m_shares;
  uint64_t m_taken = 0;
};

}  // namespace cdi::util
