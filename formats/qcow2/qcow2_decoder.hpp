// SPDX-License-Identifier: Apache-2.0
// Streaming QCOW2 -> raw decoder (spec: qemu docs/interop/qcow2.txt).
//
// The input is read once, sequentially, from offset 0; nothing is seeked. The header comes
// first; the L1 table, the L2 tables and the refcount table are collected when the stream passes
// their offsets, and each data cluster is written to its guest offset as it passes. A data
// cluster that arrives before the L2 table mapping it is held (in memory up to hold_limit, then
// in an unlinked file in scratch_dir) until the mapping is known; once the active L1 and all of
// its L2 tables are known, nothing more is held and unreferenced clusters are discarded.
//
// Invariants checked (see qcow2_header.hpp for the header):
//   - every host range referenced by the active L1/L2 tables and the refcount table is claimed
//     once: two guest clusters mapping the same host cluster, clusters inside the header, L1,
//     L2 or refcount metadata are corrupt_input. Compressed clusters may share their last
//     512-byte sector (the spec allows it), nothing else may overlap. Snapshot tables are not
//     claimed: snapshots share clusters with the active layer and only the active layer is imported;
//   - offsets are cluster aligned; extended L2 subclusters are not both allocated and zero;
//     a version 2 image has no zero flag (bit 0) in its L2 entries (qemu fails reading them);
//   - the snapshot table is walked as the stream passes it, to refuse what qemu refuses at open
//     (SnapshotTableScanner in qcow2_header.hpp); its snapshots are not imported;
//   - truncation is detected: every referenced cluster (metadata, data, compressed bytes) must
//     arrive before the end of the stream. The exceptions follow qemu, which reads zeros past the
//     end of the file: the part of a data cluster beyond the virtual size or in unallocated
//     subclusters, and the sector padding of a compressed cluster (its compressed stream must
//     then reach its end marker before the end of the stream);
//   - trailing data after the last referenced cluster is normal (unused preallocation,
//     refcount blocks, bitmaps) and is read and discarded, so upstream checksums run.
// Every guest byte of [0, virtual_size) is covered by exactly one write_at or zero_range.
//
// decode_random_access() is the same decoder for an input that can seek (io::RandomAccess: a
// local file or device, an HTTP URL served by ranges): the same parser, claims and checks, fed
// in another order, so it needs no hold and no scratch whatever the layout. It reads the header,
// the snapshot table (entry by entry, the same checks), the L1 and refcount tables, then all L2
// tables sorted by host offset (adjacent ones coalesced into one read), and only then the data
// clusters, in host order, in large reads of adjacent clusters (gaps up to the input's
// coalesce_gap() read through, readahead hinted with will_need). Unreferenced bytes (refcount
// blocks, preallocation, snapshot-only clusters) are not read. Truncation follows the rules
// above with the end of the input at its size(); truncated metadata or data is reported before
// any data cluster is read. Memory: one 4 MiB I/O buffer, the L1 table and the L2 tables of one read,
// the claims (one per compressed cluster or per run of adjacent data clusters) and the
// decompression workers' jobs (at most 32 MiB), whatever the image size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>

#include "formats/stage.hpp"
#include "lib/io/random_access.hpp"
#include "lib/io/reader.hpp"
#include "lib/sink/sink.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::formats::qcow2 {

// The decoder reads its input sequentially: it never needs a seekable input.
inline constexpr StageNeeds k_needs{.random_access_input = false};

// Pure probe: 0 when not qcow2, else the header bits verified (magic + version 1, 2 or 3).
int probe(Head head);

struct ImageInfo {
  uint32_t version = 0;
  uint64_t virtual_size = 0;
  uint32_t cluster_bits = 0;
  bool extended_l2 = false;
  int compression = 0;            // 0 zlib, 1 zstd
  bool dirty = false;             // incompatible bit 0 (accepted, see qcow2_header.cpp)
  uint32_t l1_size = 0;
  uint32_t nb_snapshots = 0;
  uint32_t refcount_order = 4;
};

// Parses and validates the header from the head of the stream (for `cdi-import info`). Errors are
// those decode() gives for the header: corrupt_input, unsupported, limit.
Result<ImageInfo> inspect(Head head);

struct DecodeOptions {
  uint64_t hold_limit = 64ull << 20;                 // memory for data clusters that precede their L2 table
  std::optional<std::filesystem::path> scratch_dir;  // spill beyond hold_limit here (unlinked temp file)
  std::optional<uint64_t> max_virtual_size;          // refuse bigger images before writing anything
  unsigned threads = 0;                              // decompression workers; 0 = CPUs we may use
  // Compressed clusters in flight to the workers (input, output and context: about 3 clusters a
  // job): at most this much, at least two jobs; fewer workers when it holds fewer than two jobs
  // each. 0: 32 MiB (at most 64 jobs).
  uint64_t decompress_memory = 0;
  // Random access: data hinted (RandomAccess::will_need) this far ahead of the reads, and what was
  // processed handed back (RandomAccess::consumed) for a local file to drop from the page cache.
  // Both are page cache charged to the importer's memory cgroup. 0: 64 MiB.
  uint64_t readahead = 0;
  const util::CancelToken* cancel = nullptr;
};

struct DecodeStats {
  uint64_t virtual_size = 0;
  uint64_t bytes_in = 0;             // stream bytes consumed (all of it: decode drains to the end);
                                     // random access: bytes read (see decode_random_access)
  uint64_t data_bytes = 0;           // bytes sent with write_at
  uint64_t zero_bytes = 0;           // bytes sent with zero_range (unallocated, zero, all-zero data)
  uint64_t held_peak = 0;            // most bytes held at once (memory + scratch), all-zero clusters excluded
  uint64_t spilled_bytes = 0;        // bytes written to the scratch file
  uint64_t compressed_clusters = 0;
  uint64_t reads = 1;                // times the input was read (decode_two_reads: 2, or 3 with missed tables)
};

// Consumes `in` once from offset 0 (positioned at the qcow2 magic) until its end and writes the
// guest image to `out`: write_at for data, zero_range for every unallocated or zero range; each
// byte of [0, virtual_size) exactly once, in no particular order. Does not call out.finish();
// the caller does finish(stats.virtual_size) (or abort() on error).
// Header refusals happen before anything is written; structural errors found later in the
// stream (overlaps, truncation, bad compressed data) come after some extents were written.
// Errors (context "qcow2"): corrupt_input (damaged or truncated image), unsupported (backing file,
// encryption, external data file, unknown features, qcow version 1), limit (virtual size larger
// than max_virtual_size, tables larger than qemu accepts), scratch_required (held data would
// exceed hold_limit and there is no scratch_dir), cancelled; the reader's and sink's errors pass
// through in their class.
Result<DecodeStats> decode(io::Reader& in, sink::Sink& out, const DecodeOptions& opts);

// Decodes a qcow2 image at offset 0 of `in` by positioned reads (see the top of this file): the
// same output contract and errors as decode(), except that hold_limit and scratch_dir are not
// used (never scratch_required); stats.held_peak and spilled_bytes are 0 and bytes_in counts the
// bytes actually read (metadata, data and the gaps read through, not unreferenced clusters).
// `in` must know its size (else internal); a read short of that size (the input shrank) is
// truncation.
Result<DecodeStats> decode_random_access(io::RandomAccess& in, sink::Sink& out, const DecodeOptions& opts);

// The layout of a qcow2 image read by positioned reads of its metadata only (header, snapshot,
// L1, refcount and L2 tables, with the same checks as decode_random_access), for the plan.
struct Layout {
  uint64_t virtual_size = 0;
  uint64_t input_size = 0;
  uint64_t l2_tables = 0;
  uint64_t tables_end = 0;       // host offset where a stream knows every L1/L2 table
  uint64_t metadata_read = 0;    // bytes read to measure
  // Most bytes decode() (one stream) would hold at once: data clusters and unreferenced bytes that
  // pass before the tables mapping them (all-zero clusters counted: an upper bound).
  uint64_t stream_hold = 0;
  // measure_stream: L2 tables that passed before the L1 table (read again before the data).
  uint64_t tables_missed = 0;
};
// Errors: those of decode_random_access for the metadata. Writes nothing.
Result<Layout> measure_layout(io::RandomAccess& in, const DecodeOptions& opts);

// Two sequential reads, for an input that can be read again but not seeked (HTTP without byte
// ranges, qcow2 inside xz/gzip/zstd): pass 1 reads `first` to its end as decode() does, with the
// same header, claim, snapshot and truncation checks, but keeps only the L1, refcount and L2
// tables (data and compressed clusters are skipped, nothing is held, no scratch); `after_first`
// runs then (a checksum of the first read is verified there). Pass 2 reads the stream `reopen`
// returns (from offset 0, the same bytes) forward only and writes each data cluster as it passes
// (decode_random_access's data phase, in host order). An L2 table that precedes the L1 table in
// the file is read in an extra pass before the data. The reopened streams must have exactly the
// first read's length, else corrupt_input "the resource changed between the two reads"; the
// caller's `reopen` checks the source's validator. Memory: the tables and claims, as
// decode_random_access, whatever the layout. Output contract and errors: those of decode(),
// never scratch_required; stats.bytes_in counts all reads, stats.reads how many.
using Reopen = std::function<Result<std::unique_ptr<io::Reader>>()>;
Result<DecodeStats> decode_two_reads(io::Reader& first, const Reopen& reopen, sink::Sink& out, const DecodeOptions& opts,
                                     const std::function<Result<void>()>& after_first = {});

// Pass 1 of decode_two_reads alone (for `info`): reads `in` to its end and returns the layout
// (stream_hold only when no table was missed, tables_missed otherwise). Writes nothing.
Result<Layout> measure_stream(io::Reader& in, const DecodeOptions& opts);

}  // namespace cdi::formats::qcow2
