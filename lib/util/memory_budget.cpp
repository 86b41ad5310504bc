// SPDX-License-Identifier: Apache-2.0
#include "lib/util/memory_budget.hpp"

#include <unistd.h>

#include <algorithm>
#include <limits>

#include "lib/util/units.hpp"

namespace cdi::util {
namespace {

constexpr uint64_t k_absurd = 1ULL << 60;

uint64_t physical_memory(const CgroupPaths& paths) {
  if (paths.physical_memory) return *paths.physical_memory;
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

}  // namespace

std::optional<CgroupMemoryLimit> cgroup_memory_limit(const CgroupPaths& paths) {
  const uint64_t ram = physical_memory(paths);
  std::optional<CgroupMemoryLimit> best;
  for (const auto& h : cgroup_hierarchies("memory", paths)) {
    const char* file = h.version == 2 ? "memory.max" : "memory.limit_in_bytes";
    for (const auto& dir : h.dirs) {
      auto text = read_cgroup_file(paths, dir, file);
      if (!text) continue;
      auto bytes = parse_cgroup_u64(*text);   // "max" (v2) fails here: no limit
      if (!bytes || *bytes >= k_absurd || *bytes >= ram) continue;
      if (!best || *bytes < best->bytes)
        best = CgroupMemoryLimit{*bytes, "cgroup v" + std::to_string(h.version) + " " + file + " at " + dir};
    }
  }
  return best;
}

uint64_t MemoryBudget::margin_for(uint64_t limit) { return k_margin_fixed + limit / k_margin_divisor; }

MemoryBudget MemoryBudget::detect(std::optional<uint64_t> override, const CgroupPaths& paths,
                                  std::string_view override_source) {
  MemoryBudget b;
  b.m_cgroup = cgroup_memory_limit(paths);
  if (override) {
    b.m_source = std::string(override_source);
    if (*override > 0) b.m_limit = *override;
  } else if (b.m_cgroup) {
    b.m_limit = b.m_cgroup->bytes;
    b.m_source = b.m_cgroup->source;
  }
  return b;
}

MemoryBudget MemoryBudget::unlimited() { return MemoryBudget(); }

MemoryBudget MemoryBudget::of(uint64_t limit, std::string source) {
  MemoryBudget b;
  b.m_limit = limit;
  b.m_source = std::move(source);
  return b;
}

uint64_t MemoryBudget::usable() const {
  if (!m_limit) return std::numeric_limits<uint64_t>::max();
  uint64_t margin = margin_for(*m_limit);
  return *m_limit > margin ? *m_limit - margin : 0;
}

uint64_t MemoryBudget::remaining() const {
  if (!m_limit) return std::numeric_limits<uint64_t>::max();
  return usable() - m_taken;
}

uint64_t MemoryBudget::receive_buffer(uint64_t wanted) const {
  if (!m_limit || wanted <= k_receive_buffer_floor) return wanted;
  return std::clamp<uint64_t>(usable() / 16, k_receive_buffer_floor, wanted);
}

Result<uint64_t> MemoryBudget::take(std::string_view what, uint64_t wanted, uint64_t minimum) {
  minimum = std::min(minimum, wanted);
  uint64_t left = remaining();
  uint64_t got = wanted <= left ? wanted : left;
  if (got < minimum) {
    std::string taken;
    for (const auto& s : m_shares) taken += (taken.empty() ? "" : ", ") + s.what + " " + format_bytes(s.bytes);
    return fail(Errc::limit, "memory budget: " + std::string(what) + " needs at least " + format_bytes(minimum) +
                                 ", " + format_bytes(left) + " of " + describe() + " remain" +
                                 (taken.empty() ? std::string() : " after " + taken));
  }
  m_shares.push_back({std::string(what), got});
  if (m_limit) m_taken += got;
  return got;
}

std::string MemoryBudget::describe() const {
  if (!m_limit) return "no memory limit (" + m_source + ")";
  return format_bytes(usable()) + " usable of a " + format_bytes(*m_limit) + " limit (" + m_source + "), " +
         format_bytes(margin()) + " kept back";
}

}  // namespace cdi::util
