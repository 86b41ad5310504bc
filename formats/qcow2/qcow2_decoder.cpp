// SPDX-License-Identifier: Apache-2.0
#include "formats/qcow2/qcow2_decoder.hpp"
#include "lib/util/cpu.hpp"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include "formats/qcow2/text.hpp"
#include <map>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "formats/qcow2/cluster_codec.hpp"
#include "formats/qcow2/qcow2_header.hpp"
#include "lib/io/random_access.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/file_io.hpp"
#include "lib/util/units.hpp"

// Claims are built with designated initializers naming only the fields that matter.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace cdi::formats::qcow2 {

int probe(Head head) { return probe_header(head); }

Result<ImageInfo> inspect(Head head) {
  Header h = CDI_TRY_CTX(parse_header(head), "qcow2");
  return ImageInfo{h.version,        h.virtual_size, h.cluster_bits, h.extended_l2,
                   static_cast<int>(h.compression), h.dirty, h.l1_size, h.nb_snapshots, h.refcount_order};
}

namespace {

using util::format_bytes;

constexpr uint64_t k_sector = 512;

std::unexpected<Error> corrupt(std::string msg) { return fail(Errc::corrupt_input, std::move(msg)); }
// A short stream: the format says more bytes follow than arrived.
std::unexpected<Error> truncated(std::string msg) {
  return fail(Errc::corrupt_input, Reason::truncated, std::move(msg));
}

// True when all n bytes are zero (n >= 0). Compares the buffer with itself shifted by 16 bytes,
// which glibc's vectorised memcmp does at memory speed.
bool is_zero(const std::byte* p, size_t n) {
  constexpr size_t k = 16;
  if (n <= k) return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
  static constexpr std::byte zeros[k] = {};
  return std::memcmp(p, zeros, k) == 0 && std::memcmp(p, p + k, n - k) == 0;
}

// Affinity and the cgroup v2 CPU quota (an importer pod's 0.75 CPU limit means 1 thread).
unsigned usable_cpus() { return util::usable_cpus(); }

enum class Kind : uint8_t { header, l1, refcount_table, refcount_block, l2, data, zero_alloc, compressed };

// A host byte range referenced by the image's active metadata.
struct Claim {
  uint64_t start = 0, end = 0;  // [start, end): cluster-rounded for metadata, exact for compressed
  Kind kind = Kind::data;
  uint64_t guest = 0;           // data/compressed: guest offset of `start`; l2: first guest offset mapped
  uint64_t required_end = 0;    // [start, required_end) must be present in the stream
  uint64_t need = 0;            // l1/l2/refcount table/compressed: bytes collected into buf
  uint32_t alloc = ~0u;         // data with extended L2: allocated subclusters
  bool done = false;            // collected bytes were handed on
  bool missed = false;          // metadata pass: a table that passed before it was known (read again)
  uint64_t known_at = 0;        // stream offset where its parent table is complete (measure_layout)
  std::vector<std::byte> buf;
};

std::string describe(const Claim& c) {
  switch (c.kind) {
    case Kind::header: return "the header";
    case Kind::l1: return fmt("the L1 table at {:#x}", c.start);
    case Kind::refcount_table: return fmt("the refcount table at {:#x}", c.start);
    case Kind::refcount_block: return fmt("a refcount block at {:#x}", c.start);
    case Kind::l2: return fmt("the L2 table at {:#x} (guest {:#x})", c.start, c.guest);
    case Kind::data: return fmt("data clusters at {:#x} (guest {:#x})", c.start, c.guest);
    case Kind::zero_alloc: return fmt("a preallocated zero cluster at {:#x} (guest {:#x})", c.start, c.guest);
    case Kind::compressed: return fmt("a compressed cluster at {:#x} (guest {:#x})", c.start, c.guest);
  }
  return "?";
}

// Unlinked temporary file for spilled clusters.
class SpillFile {
 public:
  static Result<SpillFile> open(const std::filesystem::path& dir) {
    return SpillFile(CDI_TRY(util::anonymous_file(dir, "cdi-qcow2-hold.")));
  }
  Result<uint64_t> append(std::span<const std::byte> data) {
    uint64_t at = m_end;
    CDI_TRY(util::pwrite_all(m_fd.get(), data, at, "the scratch file"));
    m_end += data.size();
    return at;
  }
  Result<void> read(uint64_t at, std::span<std::byte> dst) {
    size_t n = CDI_TRY(util::pread_full(m_fd.get(), dst, at, "the scratch file"));
    if (n < dst.size()) return fail(Errc::internal, "scratch file shorter than written");
    return {};
  }

 private:
  explicit SpillFile(util::Fd fd) : m_fd(std::move(fd)) {}
  util::Fd m_fd;
  uint64_t m_end = 0;
};

// A host cluster that passed before anything claimed it.
struct Held {
  uint32_t len = 0;                  // bytes of the cluster present (short only at the end of stream)
  bool zero = false;                 // all zero: nothing stored
  std::unique_ptr<std::byte[]> mem;  // in memory, or
  std::optional<uint64_t> spill;     // in the spill file at this offset
};

// Coalesces extents before they reach the sink and counts them.
class Emitter {
 public:
  Emitter(sink::Sink& sink, DecodeStats& stats) : m_sink(sink), m_stats(stats) {}

  // Data for guest [g, g+len). `stable`: p stays valid until flush(), so adjacent extents are
  // merged into one write; else it is written now. All-zero data becomes a zero range.
  Result<void> data(uint64_t g, const std::byte* p, uint64_t len, bool stable) {
    if (len == 0) return {};
    if (is_zero(p, len)) return zero(g, len);
    if (!stable) return write(g, p, len);
    if (m_dlen && m_dg + m_dlen == g && m_dp + m_dlen == p) {
      m_dlen += len;
      return {};
    }
    CDI_TRY(flush_data());
    m_dg = g, m_dp = p, m_dlen = len;
    return {};
  }
  Result<void> zero(uint64_t g, uint64_t len) {
    if (len == 0) return {};
    if (m_zlen && m_zg + m_zlen == g) {
      m_zlen += len;
      return {};
    }
    CDI_TRY(flush_zero());
    m_zg = g, m_zlen = len;
    return {};
  }
  Result<void> flush() {
    CDI_TRY(flush_data());
    return flush_zero();
  }

 private:
  Result<void> write(uint64_t g, const std::byte* p, uint64_t len) {
    CDI_TRY(m_sink.write_at(g, std::span(p, len)));
    m_stats.data_bytes += len;
    return {};
  }
  Result<void> flush_data() {
    if (!m_dlen) return {};
    uint64_t len = std::exchange(m_dlen, 0);
    return write(m_dg, m_dp, len);
  }
  Result<void> flush_zero() {
    if (!m_zlen) return {};
    uint64_t len = std::exchange(m_zlen, 0);
    CDI_TRY(m_sink.zero_range(m_zg, len));
    m_stats.zero_bytes += len;
    return {};
  }

  sink::Sink& m_sink;
  DecodeStats& m_stats;
  uint64_t m_dg = 0, m_dlen = 0;
  const std::byte* m_dp = nullptr;
  uint64_t m_zg = 0, m_zlen = 0;
};

class Decoder {
 public:
  Decoder(io::Reader& in, sink::Sink& out, const DecodeOptions& opts)
      : m_in(&in), m_opts(opts), m_emit(out, m_stats) {}
  Decoder(io::RandomAccess& in, sink::Sink& out, const DecodeOptions& opts)
      : m_ra(&in), m_opts(opts), m_emit(out, m_stats) {}

  Result<DecodeStats> run();
  Result<DecodeStats> run_random_access();
  Result<Layout> run_measure();
  Result<uint64_t> ra_read_metadata();
  Result<DecodeStats> run_two_reads(const Reopen& reopen, const std::function<Result<void>()>& after_first);
  Result<Layout> run_measure_stream();

 private:
  using ClaimMap = std::map<uint64_t, Claim>;

  Result<void> read_header();
  Result<void> init_header(std::span<const std::byte> first, std::optional<uint64_t> size);
  Result<void> check_present(uint64_t eof);
  // Random access: the snapshot table, the tables of the given kinds, then the data in host order.
  Result<size_t> ra_read(uint64_t at, std::span<std::byte> dst);
  Result<void> ra_scan_snapshots(uint64_t& eof);
  Result<void> ra_read_tables(std::initializer_list<Kind> kinds, uint64_t& eof);
  Result<void> ra_read_data(uint64_t& eof);
  Result<void> process_buffer(uint64_t base, std::span<const std::byte> bytes);
  Result<void> process_exclusive(Claim& c, uint64_t x, std::span<const std::byte> bytes);
  Result<void> hold(uint64_t x, std::span<const std::byte> bytes);
  Result<void> add_claim(Claim c);
  Result<void> serve_from_hold(Claim& c);
  Result<void> feed(Claim& c, uint64_t x, std::span<const std::byte> bytes, bool stable);
  Result<void> complete(Claim& c);
  Result<void> drain_completions();
  Result<void> parse_l1(Claim& c);
  Result<void> parse_l2(Claim& c);
  Result<void> parse_refcount_table(Claim& c);
  Result<void> submit_compressed(Claim& c, bool cut);
  Result<void> collect_compressed(bool wait);
  Result<void> finish_stream();
  Result<void> read_stream();
  Result<uint64_t> metadata_pass();
  Result<void> missed_tables_pass(const Reopen& reopen, uint64_t eof);
  Layout layout_of(uint64_t eof) const;
  void set_metadata_complete();

  io::Reader* m_in = nullptr;        // the stream (decode), or
  io::RandomAccess* m_ra = nullptr;  // the seekable input (decode_random_access)
  std::unique_ptr<std::byte[]> m_ra_buf;  // random access: the one I/O buffer
  size_t m_ra_bufsize = 0;
  const DecodeOptions& m_opts;
  DecodeStats m_stats;
  Emitter m_emit;
  Header m_h;
  uint64_t m_cs = 0;
  uint64_t m_pos = 0;  // stream bytes consumed and processed
  ClaimMap m_claims;
  std::deque<uint64_t> m_completed;  // starts of claims whose bytes are all collected
  bool m_l1_done = false;
  uint64_t m_pending_l2 = 0;
  bool m_metadata_complete = false;
  std::unordered_map<uint64_t, Held> m_held;  // by host cluster index
  uint64_t m_held_mem = 0, m_held_spill = 0;
  std::optional<SpillFile> m_spill;
  std::unique_ptr<DecompressPool> m_pool;
  std::vector<FinishedJob> m_finished;
  std::unordered_map<uint64_t, uint64_t> m_cut;  // guest -> stream end, for compressed clusters cut by the end
  SnapshotTableScanner m_snapshots;               // checks the snapshot table as the stream passes it
  bool m_metadata_only = false;                   // two reads, pass 1: tables only, nothing held
  bool m_snapshots_finished = false;
};

Result<void> Decoder::read_header() {
  std::vector<std::byte> first(k_sector);
  size_t n = CDI_TRY(io::read_full(*m_in, first));
  first.resize(n);
  if (size_t need = header_bytes_needed(first); need > n && n == k_sector) {
    first.resize(need);
    n += CDI_TRY(io::read_full(*m_in, std::span(first).subspan(k_sector)));
    first.resize(n);
  }
  return init_header(first, m_in->info().size);
}

// The header is parsed and its claims (header, L1, refcount table) registered. `first` holds the
// start of the input: its first cluster, or all of it when shorter.
Result<void> Decoder::init_header(std::span<const std::byte> first, std::optional<uint64_t> size) {
  const uint64_t n = first.size();
  m_pos = n;
  m_stats.bytes_in = n;
  m_h = CDI_TRY(parse_header(first, size));
  m_cs = m_h.cluster_size;
  m_snapshots = SnapshotTableScanner(m_h.snapshots_offset, m_h.nb_snapshots);
  CDI_TRY(m_snapshots.feed(0, first));
  m_stats.virtual_size = m_h.virtual_size;
  if (m_opts.max_virtual_size && m_h.virtual_size > *m_opts.max_virtual_size)
    return fail(Errc::limit, Reason::too_small, fmt("virtual size {} is larger than the target ({})", m_h.virtual_size,
                                         *m_opts.max_virtual_size));
  // The first cluster: the header, its extensions and (never used here) the backing file name.
  CDI_TRY(add_claim(Claim{.start = 0, .end = m_cs, .kind = Kind::header, .required_end = std::min<uint64_t>(n, m_cs)}));
  if (m_h.l1_size) {
    uint64_t bytes = uint64_t{m_h.l1_size} * 8;
    CDI_TRY(add_claim(Claim{.start = m_h.l1_table_offset,
                            .end = m_h.l1_table_offset + (bytes + m_cs - 1) / m_cs * m_cs,
                            .kind = Kind::l1,
                            .required_end = m_h.l1_table_offset + bytes,
                            .need = bytes}));
  } else {
    m_l1_done = true;
  }
  if (m_h.refcount_table_clusters) {
    uint64_t bytes = uint64_t{m_h.refcount_table_clusters} * m_cs;
    CDI_TRY(add_claim(Claim{.start = m_h.refcount_table_offset,
                            .end = m_h.refcount_table_offset + bytes,
                            .kind = Kind::refcount_table,
                            .required_end = m_h.refcount_table_offset + bytes,
                            .need = bytes}));
  }
  if (m_l1_done) set_metadata_complete();
  return {};
}

// Registers a claim after checking it against all others; serves the part of it that already
// passed from the hold store.
Result<void> Decoder::add_claim(Claim c) {
  auto next = m_claims.lower_bound(c.start);
  // Overlaps are allowed only between compressed clusters sharing the last sector of the first.
  auto allowed = [](const Claim& a, const Claim& b) {  // a starts before b
    return a.kind == Kind::compressed && b.kind == Kind::compressed && a.start < b.start &&
           b.start >= ((a.end - 1) & ~(k_sector - 1));
  };
  auto overlap = [&](const Claim& a, const Claim& b) {
    return corrupt(fmt("{} overlaps {}", describe(b), describe(a)));
  };
  for (auto it = next; it != m_claims.begin();) {
    --it;
    if (it->second.end <= c.start) break;
    if (!allowed(it->second, c)) return overlap(it->second, c);
  }
  for (auto it = next; it != m_claims.end() && it->first < c.end; ++it)
    if (!allowed(c, it->second)) return overlap(it->second, c);

  // Extend the previous run of full data clusters when host and guest both continue it.
  if (c.kind == Kind::data && c.alloc == ~0u && c.start >= m_pos && next != m_claims.begin()) {
    Claim& p = std::prev(next)->second;
    if (p.kind == Kind::data && p.alloc == ~0u && p.end == c.start && p.required_end == p.end &&
        p.guest + (p.end - p.start) == c.guest && p.known_at == c.known_at) {
      p.end = c.end;
      p.required_end = c.required_end;
      return {};
    }
  }
  auto [it, inserted] = m_claims.emplace(c.start, std::move(c));
  if (!inserted) return fail(Errc::internal, "claim inserted twice");
  Claim& cl = it->second;
  if (cl.start < m_pos) CDI_TRY(serve_from_hold(cl));
  if (cl.need && cl.start + cl.need <= m_pos && !cl.done && !cl.missed && !(m_metadata_only && cl.kind == Kind::compressed))
    m_completed.push_back(cl.start);
  return {};
}

// Feeds the part of a new claim that lies before m_pos from held clusters.
Result<void> Decoder::serve_from_hold(Claim& c) {
  uint64_t stop = std::min(c.end, m_pos);
  if (c.kind == Kind::header) return {};
  if (m_metadata_only) {
    // Nothing is held: data come in the second read; a table that passed is read again.
    if (c.need && c.kind != Kind::compressed) c.missed = true;
    return {};
  }
  std::vector<std::byte> tmp;
  for (uint64_t k = c.start / m_cs; k * m_cs < stop; ++k) {
    auto h = m_held.find(k);
    uint64_t cstart = k * m_cs;
    bool exclusive = c.kind != Kind::compressed;
    if (h == m_held.end()) {
      // Passed and not held: it was claimed by something else (then add_claim refused the
      // overlap), or it is the end-of-stream cluster. Bytes a claim needs cannot be missing here.
      if (c.kind == Kind::refcount_block || c.kind == Kind::zero_alloc || m_metadata_complete) continue;
      return fail(Errc::internal, fmt("host cluster {:#x} passed but was not held", cstart));
    }
    Held& held = h->second;
    std::span<const std::byte> bytes;
    if (c.kind == Kind::refcount_block || c.kind == Kind::zero_alloc) {
      // Nothing to read.
    } else if (held.zero) {
      tmp.assign(held.len, std::byte{0});
      bytes = tmp;
    } else if (held.mem) {
      bytes = std::span(held.mem.get(), held.len);
    } else {
      tmp.resize(held.len);
      CDI_TRY(m_spill->read(*held.spill, tmp));
      bytes = tmp;
    }
    // Clip to the claim.
    uint64_t from = std::max(cstart, c.start), to = std::min(cstart + held.len, c.end);
    if (from < to && !bytes.empty()) CDI_TRY(feed(c, from, bytes.subspan(from - cstart, to - from), false));
    if (exclusive) {
      if (held.mem) m_held_mem -= held.len;
      if (held.spill) m_held_spill -= held.len;
      m_held.erase(h);
    }
  }
  return {};
}

// Hands the bytes [x, x+bytes.size()) to a claim. `stable`: they stay valid until the emitter flushes.
Result<void> Decoder::feed(Claim& c, uint64_t x, std::span<const std::byte> bytes, bool stable) {
  switch (c.kind) {
    case Kind::header:
    case Kind::refcount_block:
    case Kind::zero_alloc: return {};
    case Kind::data: {
      if (m_metadata_only) return {};
      const uint64_t vs = m_h.virtual_size;
      for (uint64_t off = 0; off < bytes.size();) {
        uint64_t h = x + off;
        uint64_t in_cluster = h % m_cs;
        uint64_t n = std::min<uint64_t>(bytes.size() - off, m_cs - in_cluster);
        uint64_t g = c.guest + (h - c.start);
        if (g < vs) {
          if (c.alloc == ~0u) {
            CDI_TRY(m_emit.data(g, bytes.data() + off, std::min(n, vs - g), stable));
          } else {
            const uint64_t sc = m_h.subcluster_size;
            for (uint64_t s = in_cluster / sc; s < 32 && s * sc < in_cluster + n; ++s) {
              if (!(c.alloc & (1u << s))) continue;
              uint64_t a = std::max(s * sc, in_cluster), b = std::min((s + 1) * sc, in_cluster + n);
              uint64_t ga = g + (a - in_cluster);
              if (ga >= vs) break;
              CDI_TRY(m_emit.data(ga, bytes.data() + off + (a - in_cluster), std::min(b - a, vs - ga), stable));
            }
          }
        }
        off += n;
      }
      return {};
    }
    case Kind::l1:
    case Kind::l2:
    case Kind::refcount_table:
    case Kind::compressed: {
      uint64_t want_end = c.start + c.need;
      if (x >= want_end || c.done || c.missed) return {};
      if (m_metadata_only && c.kind == Kind::compressed) return {};  // done: handed on (random access may pass its bytes again)
      uint64_t n = std::min<uint64_t>(bytes.size(), want_end - x);
      if (c.buf.size() < c.need) c.buf.resize(c.need);
      std::memcpy(c.buf.data() + (x - c.start), bytes.data(), n);
      if (x + n == want_end && !c.done) m_completed.push_back(c.start);
      return {};
    }
  }
  return {};
}

Result<void> Decoder::drain_completions() {
  while (!m_completed.empty()) {
    uint64_t start = m_completed.front();
    m_completed.pop_front();
    auto it = m_claims.find(start);
    if (it == m_claims.end() || it->second.done) continue;
    CDI_TRY(complete(it->second));
  }
  return {};
}

Result<void> Decoder::complete(Claim& c) {
  c.done = true;
  switch (c.kind) {
    case Kind::l1: CDI_TRY(parse_l1(c)); break;
    case Kind::l2: CDI_TRY(parse_l2(c)); break;
    case Kind::refcount_table: CDI_TRY(parse_refcount_table(c)); break;
    case Kind::compressed: return submit_compressed(c, false);
    default: break;
  }
  std::vector<std::byte>().swap(c.buf);
  return {};
}

void Decoder::set_metadata_complete() {
  if (m_metadata_complete || !m_l1_done || m_pending_l2) return;
  m_metadata_complete = true;
  // Every claim is known: held clusters nobody took are unreferenced.
  m_held.clear();
  m_held_mem = m_held_spill = 0;
  m_spill.reset();
}

Result<void> Decoder::parse_l1(Claim& c) {
  const uint64_t span = m_h.l2_entries * m_cs;
  for (uint64_t i = 0; i < m_h.l1_needed; ++i) {
    uint64_t e = load_be64(c.buf.data() + i * 8);
    uint64_t off = e & k_offset_mask;
    uint64_t g = i * span;
    if (off == 0) {
      CDI_TRY(m_emit.zero(g, std::min(span, m_h.virtual_size - g)));
      continue;
    }
    if (off % m_cs) return corrupt(fmt("L1 entry {}: L2 table offset {:#x} is not cluster aligned", i, off));
    ++m_pending_l2;
    CDI_TRY(add_claim(Claim{.start = off,
                            .end = off + m_cs,
                            .kind = Kind::l2,
                            .guest = g,
                            .required_end = off + m_cs,
                            .need = m_cs,
                            .known_at = c.start + c.need}));
  }
  // Entries past l1_needed map beyond the virtual size (a shrunk image); qemu never reads them.
  m_l1_done = true;
  set_metadata_complete();
  return {};
}

Result<void> Decoder::parse_l2(Claim& c) {
  const uint64_t vs = m_h.virtual_size;
  const uint64_t csize_shift = 62 - (m_h.cluster_bits - 8);
  const uint64_t csize_mask = (uint64_t{1} << (m_h.cluster_bits - 8)) - 1;
  const uint64_t coff_mask = (uint64_t{1} << csize_shift) - 1;
  for (uint64_t j = 0; j < m_h.l2_entries; ++j) {
    uint64_t g = c.guest + j * m_cs;
    if (g >= vs) break;
    uint64_t glen = std::min(m_cs, vs - g);
    const std::byte* p = c.buf.data() + j * m_h.l2_entry_bytes;
    uint64_t e = load_be64(p);
    uint64_t bitmap = m_h.extended_l2 ? load_be64(p + 8) : 0;
    auto where = [&] { return fmt("L2 entry for guest {:#x} (table at {:#x})", g, c.start); };

    if (e & k_oflag_compressed) {
      // Compressed clusters have no subclusters; qemu ignores the bitmap for them.
      uint64_t coff = e & coff_mask;
      uint64_t sectors = ((e >> csize_shift) & csize_mask) + 1;
      if (coff > k_offset_mask) return corrupt(fmt("{}: compressed offset {:#x} out of range", where(), coff));
      uint64_t csize = sectors * k_sector - (coff & (k_sector - 1));
      ++m_stats.compressed_clusters;
      CDI_TRY(add_claim(Claim{.start = coff,
                              .end = coff + csize,
                              .kind = Kind::compressed,
                              .guest = g,
                              .required_end = coff + 1,  // the rest may be sector padding (checked by decompressing)
                              .need = csize,
                              .known_at = c.start + m_cs}));
      continue;
    }
    uint64_t off = e & k_offset_mask;
    // Version 2 has no zero clusters: qemu fails the read of such a cluster ("Zero cluster entry
    // found in pre-v3 image"), which qemu-img convert always reaches (it maps every guest cluster).
    // As in qemu: checked for entries inside the virtual size, before the offset's alignment.
    if (m_h.version < 3 && (e & k_oflag_zero))
      return corrupt(fmt("{}, index {}: zero flag (bit 0) set in a version 2 (compat=0.10) image, "
                         "which has no zero clusters ({})",
                         where(), j, off ? fmt("host cluster {:#x}", off) : std::string("unallocated")));
    if (!m_h.extended_l2 && (e & k_oflag_zero)) {
      CDI_TRY(m_emit.zero(g, glen));
      if (off) {
        if (off % m_cs) return corrupt(fmt("{}: host offset {:#x} is not cluster aligned", where(), off));
        CDI_TRY(add_claim(Claim{.start = off, .end = off + m_cs, .kind = Kind::zero_alloc, .guest = g, .known_at = c.start + m_cs}));
      }
      continue;
    }
    uint32_t alloc = m_h.extended_l2 ? static_cast<uint32_t>(bitmap) : ~0u;
    uint32_t zero = m_h.extended_l2 ? static_cast<uint32_t>(bitmap >> 32) : 0;
    if (alloc & zero) return corrupt(fmt("{}: subclusters both allocated and zero", where()));
    if (off == 0) {
      if (m_h.extended_l2 && alloc)
        return corrupt(fmt("{}: allocated subclusters without a host cluster", where()));
      CDI_TRY(m_emit.zero(g, glen));
      continue;
    }
    if (off % m_cs) return corrupt(fmt("{}: host offset {:#x} is not cluster aligned", where(), off));
    // Unallocated and zero subclusters read as zeros (no backing file).
    uint64_t required = 0;
    if (alloc == ~0u) {
      required = glen;
    } else {
      const uint64_t sc = m_h.subcluster_size;
      for (uint64_t s = 0; s < 32 && s * sc < glen; ++s) {
        uint64_t len = std::min(sc, glen - s * sc);
        if (alloc & (1u << s))
          required = s * sc + len;
        else
          CDI_TRY(m_emit.zero(g + s * sc, len));
      }
    }
    if (required == 0) {  // no allocated subcluster inside the virtual size
      CDI_TRY(add_claim(Claim{.start = off, .end = off + m_cs, .kind = Kind::zero_alloc, .guest = g, .known_at = c.start + m_cs}));
      continue;
    }
    CDI_TRY(add_claim(Claim{.start = off,
                            .end = off + m_cs,
                            .kind = Kind::data,
                            .guest = g,
                            .required_end = off + required,
                            .alloc = alloc,
                            .known_at = c.start + m_cs}));
  }
  --m_pending_l2;
  set_metadata_complete();
  return {};
}

Result<void> Decoder::parse_refcount_table(Claim& c) {
  for (uint64_t i = 0; i < c.need / 8; ++i) {
    uint64_t off = load_be64(c.buf.data() + i * 8) & ~(k_sector - 1);
    if (off == 0) continue;
    if (off % m_cs || off > k_offset_mask)
      return corrupt(fmt("refcount table entry {}: block offset {:#x} is not a valid cluster offset", i, off));
    // Refcounts are not needed to read the image; the block is claimed so that nothing else may
    // point into it, and required so that truncation is caught.
    CDI_TRY(add_claim(Claim{.start = off, .end = off + m_cs, .kind = Kind::refcount_block, .required_end = off + m_cs,
                            .known_at = c.start + c.need}));
  }
  return {};
}

Result<void> Decoder::submit_compressed(Claim& c, bool cut) {
  c.done = true;
  if (!m_pool) {
    unsigned threads = m_opts.threads ? m_opts.threads : usable_cpus();
    const size_t per_job = 3 * m_cs;
    const uint64_t memory = m_opts.decompress_memory ? m_opts.decompress_memory : uint64_t{32} << 20;
    // Two jobs per worker keep every worker busy; a budget that holds fewer gets fewer workers.
    const size_t fit = static_cast<size_t>(std::clamp<uint64_t>(memory / per_job, 2, 64));
    threads = std::clamp<unsigned>(static_cast<unsigned>(fit / 2), 1, threads);
    size_t max_jobs = m_opts.decompress_memory ? fit : std::clamp<size_t>(fit, 2 * threads, 64);
    m_pool = CDI_TRY(DecompressPool::open(m_h.compression, threads, max_jobs));
  }
  if (m_pool->full()) CDI_TRY(collect_compressed(true));
  if (cut) m_cut[c.guest] = m_pos;
  m_pool->submit(CompressedJob{c.guest, c.start, m_cs, cut, std::move(c.buf)});
  std::vector<std::byte>().swap(c.buf);
  return {};
}

Result<void> Decoder::collect_compressed(bool wait) {
  if (!m_pool) return {};
  m_finished.clear();
  m_pool->collect(m_finished, wait);
  for (auto& f : m_finished) {
    if (f.error) {
      if (auto it = m_cut.find(f.guest); it != m_cut.end())
        return truncated(fmt("truncated: compressed cluster at host offset {:#x} (guest {:#x}) is cut off by "
                                   "the end of the stream at {} ({})",
                                   f.host, f.guest, it->second, f.error->message()));
      return std::unexpected(std::move(*f.error));
    }
    uint64_t len = std::min<uint64_t>(f.out.size(), m_h.virtual_size - f.guest);
    CDI_TRY(m_emit.data(f.guest, f.out.data(), len, false));
  }
  m_finished.clear();
  return {};
}

Result<void> Decoder::hold(uint64_t x, std::span<const std::byte> bytes) {
  // Random access knows every claim before it reads data: nothing is ever held.
  if (!m_in) return fail(Errc::internal, "random access decode tried to hold a cluster");
  Held h;
  h.len = static_cast<uint32_t>(bytes.size());
  if (is_zero(bytes.data(), bytes.size())) {
    h.zero = true;
  } else if (m_held_mem + bytes.size() <= m_opts.hold_limit) {
    h.mem = std::make_unique_for_overwrite<std::byte[]>(bytes.size());
    std::memcpy(h.mem.get(), bytes.data(), bytes.size());
    m_held_mem += bytes.size();
  } else {
    if (!m_opts.scratch_dir) {
      auto size = m_in->info().size;
      std::string need = size ? fmt("about {}", format_bytes(*size - x + m_held_mem))
                              : fmt("more than {}", format_bytes(m_opts.hold_limit));
      return std::unexpected(Error(Errc::scratch_required, Reason::scratch_required,
                                   fmt("qcow2 data clusters precede their L2 tables by more than {}; scratch space needed ({})",
                                       format_bytes(m_opts.hold_limit), need))
                                 .with_hint("; pass --scratch-dir DIR"));
    }
    if (!m_spill) m_spill = CDI_TRY(SpillFile::open(*m_opts.scratch_dir));
    h.spill = CDI_TRY(m_spill->append(bytes));
    m_held_spill += bytes.size();
    m_stats.spilled_bytes += bytes.size();
  }
  m_held[x / m_cs] = std::move(h);
  m_stats.held_peak = std::max(m_stats.held_peak, m_held_mem + m_held_spill);
  return {};
}

// Processes stream bytes at host offset `base` (cluster aligned). Segments covered by one
// exclusive claim are handed over whole; anything else goes cluster by cluster.
Result<void> Decoder::process_buffer(uint64_t base, std::span<const std::byte> bytes) {
  uint64_t x = base;
  const uint64_t end = base + bytes.size();
  while (x < end) {
    auto next = m_claims.upper_bound(x);  // first claim starting after x
    Claim* cover = nullptr;
    if (next != m_claims.begin()) {
      Claim& p = std::prev(next)->second;
      if (p.end > x && p.kind != Kind::compressed) cover = &p;
    }
    uint64_t seg_end;
    if (cover) {
      seg_end = std::min(cover->end, end);
      CDI_TRY(feed(*cover, x, bytes.subspan(x - base, seg_end - x), true));
    } else {
      uint64_t next_start = next == m_claims.end() ? UINT64_MAX : next->first;
      bool shared = next != m_claims.begin() && std::prev(next)->second.end > x;  // inside a compressed claim
      if (!shared && next_start >= x + m_cs && m_metadata_complete) {
        // Unreferenced: discard everything up to the next claim.
        seg_end = std::min(end, next_start / m_cs * m_cs);
      } else {
        seg_end = std::min(end, x + m_cs);
        // Every claim touching this cluster is compressed (exclusive ones are cluster aligned).
        auto it = next;
        while (it != m_claims.begin() && std::prev(it)->second.end > x) --it;
        for (; it != m_claims.end() && it->first < seg_end; ++it) {
          Claim& c = it->second;
          if (c.end <= x) continue;
          uint64_t a = std::max(c.start, x), b = std::min(c.end, seg_end);
          CDI_TRY(feed(c, a, bytes.subspan(a - base, b - a), true));
        }
        if (!m_metadata_complete && !m_metadata_only) CDI_TRY(hold(x, bytes.subspan(x - base, seg_end - x)));
      }
    }
    x = seg_end;
    m_pos = x;
    if (!m_completed.empty()) CDI_TRY(drain_completions());
  }
  return {};
}

Result<void> Decoder::finish_stream() {
  const uint64_t eof = m_pos;
  if (!m_snapshots_finished) CDI_TRY(m_snapshots.finish(eof));  // qemu reads zeros past the end of the file
  m_snapshots_finished = true;
  // Compressed clusters whose nominal range runs past the end: qemu reads zeros there, and the
  // data may well be complete (the size is known only to the sector; qemu-io leaves the file
  // unaligned after a compressed write). Accept them only when the compressed stream reaches its
  // end marker within the stream, so a cut into the compressed bytes is still caught.
  for (auto& [start, c] : m_claims)
    if (c.kind == Kind::compressed && !c.done && start < eof) {
      c.buf.resize(eof - start);
      CDI_TRY(submit_compressed(c, true));
    }
  while (m_pool && m_pool->in_flight()) CDI_TRY(collect_compressed(true));
  CDI_TRY(check_present(eof));
  if (!m_metadata_complete) return fail(Errc::internal, "metadata incomplete without a missing claim");
  return m_emit.flush();
}

// Truncation: every byte a claim requires must lie before `eof`.
Result<void> Decoder::check_present(uint64_t eof) {
  const Claim* missing = nullptr;
  for (const auto& [start, c] : m_claims)
    if (c.required_end > eof && (!missing || start < missing->start)) missing = &c;
  if (missing) {
    const Claim& c = *missing;
    if (c.kind == Kind::data) {
      uint64_t h = c.start + (eof > c.start ? (eof - c.start) / m_cs * m_cs : 0);
      return truncated(fmt("truncated: cluster at host offset {:#x} (guest {:#x}) missing; stream ended at {}",
                                 h, c.guest + (h - c.start), eof));
    }
    return truncated(fmt("truncated: {} missing; stream ended at {}", describe(c), eof));
  }
  return {};
}

// Reads the stream after its header to the end through the snapshot scan and process_buffer, in
// buffers of at least two clusters: decode, and pass 1 of two reads (which submits no compressed
// cluster, so it never starts the pool).
Result<void> Decoder::read_stream() {
  size_t bufsize = std::max<size_t>(2 * m_cs, 1 << 20);
  auto storage = std::make_unique_for_overwrite<std::byte[]>(bufsize);  // not zeroed: it is always read into first
  std::span<std::byte> buf(storage.get(), bufsize);
  for (;;) {
    if (m_opts.cancel) CDI_TRY(m_opts.cancel->check());
    size_t n = CDI_TRY(io::read_full(*m_in, buf));
    m_stats.bytes_in += n;
    if (n == 0) break;
    if (!m_snapshots.done()) CDI_TRY(m_snapshots.feed(m_pos, buf.first(n)));
    CDI_TRY(process_buffer(m_pos, buf.first(n)));
    CDI_TRY(m_emit.flush());  // stable extents point into buf
    if (m_pool) CDI_TRY(collect_compressed(false));
    if (n < bufsize) break;  // read_full is short only at the end of the stream
  }
  return {};
}

Result<DecodeStats> Decoder::run() {
  CDI_TRY(read_header());
  CDI_TRY(read_stream());
  CDI_TRY(finish_stream());
  return m_stats;
}

// ---- random access -----------------------------------------------------------------------------
//
// The same claims, parsers and checks as the stream, fed in another order: header, snapshot table,
// L1 and refcount table, all L2 tables (sorted by host offset, adjacent ones in one read), then the
// data clusters in host order. Once the L2 tables are parsed every claim is known (metadata
// complete), so nothing is ever held: process_buffer hands each data byte to its claim. Bytes are
// passed to process_buffer in increasing host order, in cluster-aligned runs that never overlap;
// what lies between runs is unreferenced (or needs no bytes: refcount blocks, preallocated zeros,
// metadata already parsed).

constexpr size_t k_ra_buffer = 4 << 20;             // the one I/O buffer (at least 2 clusters)
constexpr uint64_t k_ra_readahead = 64ull << 20;     // data hinted ahead of the reads (default)
constexpr size_t k_ra_snapshot_read = 64 << 10;     // snapshot table reads (only 40 bytes an entry matter)

Result<size_t> Decoder::ra_read(uint64_t at, std::span<std::byte> dst) {
  if (m_opts.cancel) CDI_TRY(m_opts.cancel->check());
  size_t n = CDI_TRY(io::pread_full(*m_ra, at, dst));
  m_stats.bytes_in += n;
  return n;
}

// qemu reads the whole snapshot table at open; so does this, entry by entry, and runs the same
// checks as the stream (SnapshotTableScanner). Past the end of the input the table reads as zeros.
Result<void> Decoder::ra_scan_snapshots(uint64_t& eof) {
  std::span<std::byte> buf(m_ra_buf.get(), std::min(m_ra_bufsize, k_ra_snapshot_read));
  while (!m_snapshots.done()) {
    uint64_t at = m_snapshots.next();
    if (at >= eof) break;
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), eof - at));
    size_t n = CDI_TRY(ra_read(at, buf.first(want)));
    CDI_TRY(m_snapshots.feed(at, buf.first(n)));
    if (n < want) eof = at + n;  // the input ended before its size said
  }
  return m_snapshots.finish(eof);
}

// Reads the not yet collected tables of `kinds` (L1, refcount table, L2): sorted by host offset,
// each read covering as many adjacent tables as fit in the buffer (gaps up to coalesce_gap() read
// through). Parsing them (complete) registers the claims they reference.
Result<void> Decoder::ra_read_tables(std::initializer_list<Kind> kinds, uint64_t& eof) {
  std::vector<Claim*> tables;  // claims do not move in the map
  for (auto& [start, c] : m_claims)
    if (!c.done && c.need && std::find(kinds.begin(), kinds.end(), c.kind) != kinds.end()) tables.push_back(&c);
  std::vector<io::ByteRange> runs;
  const uint64_t gap = m_ra->coalesce_gap();
  for (Claim* c : tables) {
    uint64_t s = c->start, e = std::min(c->start + c->need, eof);
    if (s >= e) continue;  // beyond the end: check_present reports it
    if (!runs.empty() && s <= runs.back().offset + runs.back().length + gap &&
        e - runs.back().offset <= m_ra_bufsize)
      runs.back().length = e - runs.back().offset;
    else
      runs.push_back({s, e - s});
  }
  m_ra->will_need(runs);
  std::span<std::byte> buf(m_ra_buf.get(), m_ra_bufsize);
  size_t next = 0;  // first table not yet fully fed
  for (const io::ByteRange& r : runs) {
    for (uint64_t at = r.offset; at < r.offset + r.length;) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), r.offset + r.length - at));
      size_t n = CDI_TRY(ra_read(at, buf.first(want)));
      const uint64_t end = at + n;
      for (size_t i = next; i < tables.size() && tables[i]->start < end; ++i) {
        Claim& c = *tables[i];
        uint64_t a = std::max(c.start, at), b = std::min(c.start + c.need, end);
        if (a < b) CDI_TRY(feed(c, a, buf.subspan(a - at, b - a), false));
        if (c.start + c.need <= end && i == next) ++next;
      }
      CDI_TRY(drain_completions());
      if (n < want) {  // the input ended before its size said
        eof = end;
        return {};
      }
      at = end;
    }
  }
  return {};
}

// The data in host order: every data and compressed claim, cluster-aligned, adjacent ones (gaps up
// to coalesce_gap()) in one run, each run read in buffer-sized pieces and passed to process_buffer
// as the stream would be. Readahead is hinted DecodeOptions::readahead ahead of the reads; what was processed goes back to the input (consumed).
Result<void> Decoder::ra_read_data(uint64_t& eof) {
  std::vector<io::ByteRange> runs;
  const uint64_t gap = m_ra->coalesce_gap();
  for (const auto& [start, c] : m_claims) {
    if (c.kind != Kind::data && !(c.kind == Kind::compressed && !c.done)) continue;
    uint64_t s = start / m_cs * m_cs, e = std::min((c.end + m_cs - 1) / m_cs * m_cs, eof);
    if (!runs.empty()) {
      io::ByteRange& last = runs.back();
      if (s <= last.offset + last.length + gap) {
        last.length = std::max(last.length, e - last.offset);
        continue;
      }
    }
    if (s < e) runs.push_back({s, e - s});
  }
  // Readahead: hint pieces of the runs ahead of the read position, a batch at a time.
  const uint64_t readahead = m_opts.readahead ? m_opts.readahead : k_ra_readahead;
  size_t hint_run = 0;
  uint64_t hint_at = runs.empty() ? 0 : runs.front().offset;
  auto hint = [&](uint64_t read_pos) {
    std::vector<io::ByteRange> batch;
    const uint64_t limit = read_pos + readahead;
    while (hint_run < runs.size()) {
      const io::ByteRange& r = runs[hint_run];
      uint64_t from = std::max(hint_at, r.offset), to = r.offset + r.length;
      if (from >= limit) break;
      uint64_t upto = std::min(to, limit);
      if (from < upto) batch.push_back({from, upto - from});
      hint_at = upto;
      if (upto < to) break;
      ++hint_run;
    }
    if (!batch.empty()) m_ra->will_need(batch);
  };
  std::span<std::byte> buf(m_ra_buf.get(), m_ra_bufsize);
  for (const io::ByteRange& r : runs) {
    for (uint64_t at = r.offset; at < r.offset + r.length;) {
      if (hint_at < at + readahead / 2) hint(at);
      size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), r.offset + r.length - at));
      size_t n = CDI_TRY(ra_read(at, buf.first(want)));
      if (n) {
        CDI_TRY(process_buffer(at, buf.first(n)));
        CDI_TRY(m_emit.flush());  // stable extents point into buf
        if (m_pool) CDI_TRY(collect_compressed(false));
        m_ra->consumed({at, n});  // compressed clusters were copied into their jobs
      }
      if (n < want) {  // the input ended before its size said
        eof = at + n;
        return {};
      }
      at += n;
    }
  }
  return {};
}

// The metadata of a random access input (measure_layout): the header, snapshot table, L1, refcount
// and L2 tables are read as run_random_access reads them; then the stream decoder's hold is
// simulated. In a stream, a host cluster that passes before an exclusive claim covering it is
// known (its parent table complete) is held: until that claim becomes known, or, when nothing
// exclusive covers it (compressed clusters, unreferenced bytes), until every table is complete.
// No release point lies inside a held range (claims do not overlap their parent tables), so the
// peak is the sum of the ranges passed and not yet released just before each release point.
Result<Layout> Decoder::run_measure() {
  uint64_t eof = CDI_TRY(ra_read_metadata());
  return layout_of(eof);
}

Layout Decoder::layout_of(uint64_t eof) const {
  Layout l;
  l.virtual_size = m_h.virtual_size;
  l.input_size = eof;
  l.metadata_read = m_stats.bytes_in;
  // Where the stream knows every claim: the L1 table and every L2 table complete.
  uint64_t all_known = 0;
  for (const auto& [start, c] : m_claims)
    if (c.kind == Kind::l1 || c.kind == Kind::l2) {
      all_known = std::max({all_known, c.start + c.need, c.known_at});
      if (c.kind == Kind::l2) ++l.l2_tables;
    }
  all_known = std::min(all_known, eof);
  l.tables_end = all_known;
  // Held ranges [s, e) released at r (r >= e).
  struct Range { uint64_t s, e, r; };
  std::vector<Range> held;
  uint64_t x = 0;
  auto gap = [&](uint64_t to) {  // nothing exclusive: held until every table is known
    to = std::min(to, all_known);
    if (x < to) held.push_back({x, to, all_known});
  };
  for (const auto& [start, c] : m_claims) {
    if (x >= all_known) break;
    if (c.kind == Kind::compressed) continue;  // shares its clusters: held until all_known
    gap(start);
    x = std::max(x, start);
    uint64_t e = std::min(c.end, all_known);
    if (c.known_at > start && start < e) held.push_back({start, e, c.known_at});
    x = std::max(x, c.end);
  }
  gap(all_known);
  std::vector<std::pair<uint64_t, int64_t>> ev;  // (offset, +bytes at the range's end / -bytes at release)
  for (const Range& h : held) {
    ev.push_back({h.e, static_cast<int64_t>(h.e - h.s)});
    ev.push_back({h.r, -static_cast<int64_t>(h.e - h.s)});
  }
  std::sort(ev.begin(), ev.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;  // additions first at one offset
  });
  int64_t cur = 0, peak = 0;
  for (const auto& [at, d] : ev) {
    cur += d;
    peak = std::max(peak, cur);
  }
  l.stream_hold = static_cast<uint64_t>(peak);
  return l;
}

// ---- two reads ---------------------------------------------------------------------------------
//
// An input that can be read again but not seeked (HTTP without ranges, qcow2 inside xz/gzip/zstd):
// pass 1 streams it through with the stream decoder's claims and checks, collecting only the L1,
// refcount and L2 tables (data and compressed clusters are skipped, nothing is held; the zero
// ranges the tables imply are emitted); pass 2 reads it again through a ForwardRandomAccess and
// hands the data to ra_read_data, whose reads are in host order. An L2 table that passed before
// the L1 table was known is read in an extra pass (its claims are known by then), before the data.

Result<uint64_t> Decoder::metadata_pass() {
  m_metadata_only = true;
  CDI_TRY(read_header());
  CDI_TRY(read_stream());
  const uint64_t eof = m_pos;
  CDI_TRY(m_snapshots.finish(eof));
  m_snapshots_finished = true;
  CDI_TRY(check_present(eof));  // the tables known so far: truncation is reported before pass 2
  CDI_TRY(m_emit.flush());
  m_metadata_only = false;
  m_ra_bufsize = std::max<size_t>(k_ra_buffer, 2 * m_cs);
  m_ra_buf = std::make_unique_for_overwrite<std::byte[]>(m_ra_bufsize);
  return eof;
}

Result<void> Decoder::missed_tables_pass(const Reopen& reopen, uint64_t eof) {
  for (auto& [start, c] : m_claims)
    if (c.missed) {
      c.missed = false;
      std::vector<std::byte>().swap(c.buf);
    }
  io::ForwardRandomAccess again(CDI_TRY(reopen()), eof, "the tables' second read");
  m_ra = &again;
  m_metadata_only = true;  // the data the tables map passed: they come in the data read
  CDI_TRY(ra_read_tables({Kind::l2}, eof));
  m_metadata_only = false;
  CDI_TRY(again.finish());
  m_ra = nullptr;
  CDI_TRY(check_present(eof));
  if (!m_metadata_complete) return fail(Errc::internal, "metadata incomplete after reading the missed tables");
  ++m_stats.reads;
  return {};
}

Result<DecodeStats> Decoder::run_two_reads(const Reopen& reopen, const std::function<Result<void>()>& after_first) {
  uint64_t eof = CDI_TRY(metadata_pass());
  m_stats.reads = 1;
  if (after_first) CDI_TRY(after_first());
  if (!m_metadata_complete) CDI_TRY(missed_tables_pass(reopen, eof));
  io::ForwardRandomAccess again(CDI_TRY(reopen()), eof, "the second read");
  m_ra = &again;
  ++m_stats.reads;
  CDI_TRY(ra_read_data(eof));
  m_pos = eof;
  CDI_TRY(finish_stream());
  CDI_TRY(again.finish());
  m_ra = nullptr;
  return m_stats;
}

Result<Layout> Decoder::run_measure_stream() {
  const uint64_t eof = CDI_TRY(metadata_pass());
  Layout l;
  if (m_metadata_complete) l = layout_of(eof);
  l.virtual_size = m_h.virtual_size;
  l.input_size = eof;
  l.metadata_read = m_stats.bytes_in;
  for (const auto& [start, c] : m_claims)
    if (c.kind == Kind::l2) {
      if (!m_metadata_complete) ++l.l2_tables;
      if (c.missed) ++l.tables_missed;
    }
  return l;
}

// The metadata of a random access input, read as the stream would meet it: the header (its first
// cluster, or the whole input when shorter), the snapshot table, L1 and refcount table, then the
// L2 tables. Truncated metadata or data is reported here, before any data is read. Returns the
// input's size.
Result<uint64_t> Decoder::ra_read_metadata() {
  std::optional<uint64_t> size = m_ra->size();
  if (!size) return fail(Errc::internal, fmt("random access to {} without a known size", m_ra->name()));
  uint64_t eof = *size;
  std::vector<std::byte> first(k_sector);
  first.resize(CDI_TRY(ra_read(0, first)));
  if (size_t need = header_bytes_needed(first); need > first.size() && first.size() == k_sector) {
    first.resize(need);
    first.resize(k_sector + CDI_TRY(ra_read(k_sector, std::span(first).subspan(k_sector))));
  }
  CDI_TRY(init_header(first, eof));  // bytes_in: the header bytes, as ra_read counted them

  m_ra_bufsize = std::max<size_t>(k_ra_buffer, 2 * m_cs);
  m_ra_buf = std::make_unique_for_overwrite<std::byte[]>(m_ra_bufsize);  // always read into first
  CDI_TRY(ra_scan_snapshots(eof));
  CDI_TRY(ra_read_tables({Kind::l1, Kind::refcount_table}, eof));
  CDI_TRY(ra_read_tables({Kind::l2}, eof));
  CDI_TRY(check_present(eof));
  if (!m_metadata_complete) return fail(Errc::internal, "metadata incomplete without a missing claim");
  return eof;
}

Result<DecodeStats> Decoder::run_random_access() {
  uint64_t eof = CDI_TRY(ra_read_metadata());
  CDI_TRY(ra_read_data(eof));
  m_pos = eof;
  CDI_TRY(finish_stream());
  return m_stats;
}

}  // namespace

Result<DecodeStats> decode_random_access(io::RandomAccess& in, sink::Sink& out, const DecodeOptions& opts) {
  Decoder d(in, out, opts);
  auto r = d.run_random_access();
  if (!r) return std::unexpected(std::move(r).error().context("qcow2"));
  return r;
}

namespace {
// measure_layout writes nothing: the zero ranges the tables imply go here.
class NullSink final : public sink::Sink {
 public:
  Result<void> write_at(uint64_t, std::span<const std::byte>) override {
    return fail(Errc::internal, "measure_layout wrote data");
  }
  Result<void> zero_range(uint64_t, uint64_t) override { return {}; }
  Result<void> finish(uint64_t) override { return {}; }
  void abort() noexcept override {}
  sink::SinkInfo info() const override { return {}; }
  sink::SinkStats stats() const override { return {}; }
};
}  // namespace

Result<Layout> measure_layout(io::RandomAccess& in, const DecodeOptions& opts) {
  NullSink null;
  Decoder d(in, null, opts);
  auto r = d.run_measure();
  if (!r) return std::unexpected(std::move(r).error().context("qcow2"));
  return r;
}

Result<DecodeStats> decode_two_reads(io::Reader& first, const Reopen& reopen, sink::Sink& out, const DecodeOptions& opts,
                                     const std::function<Result<void>()>& after_first) {
  Decoder d(first, out, opts);
  auto r = d.run_two_reads(reopen, after_first);
  if (!r) return std::unexpected(std::move(r).error().context("qcow2"));
  return r;
}

Result<Layout> measure_stream(io::Reader& in, const DecodeOptions& opts) {
  NullSink null;
  Decoder d(in, null, opts);
  auto r = d.run_measure_stream();
  if (!r) return std::unexpected(std::move(r).error().context("qcow2"));
  return r;
}

Result<DecodeStats> decode(io::Reader& in, sink::Sink& out, const DecodeOptions& opts) {
  Decoder d(in, out, opts);
  auto r = d.run();
  if (!r) return std::unexpected(std::move(r).error().context("qcow2"));
  return r;
}

}  // namespace cdi::formats::qcow2
