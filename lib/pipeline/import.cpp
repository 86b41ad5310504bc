// SPDX-License-Identifier: Apache-2.0
// The executor: opens the source, detects the chain with the format table, asks the planner
// (plan.hpp) and runs the plan. Decisions live in plan.cpp; this file only carries them out.
#include "lib/pipeline/import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "formats/disk/disk_probe.hpp"
#include "formats/qcow2/qcow2_decoder.hpp"
#include "formats/xz/xz_blocks.hpp"
#include "formats/xz/xz_reader.hpp"
#include "formats/registry.hpp"
#include "formats/tar/extract.hpp"
#include "lib/io/counting_reader.hpp"
#include "lib/io/hashing_reader.hpp"
#include "lib/io/peek_reader.hpp"
#include "lib/io/random_access.hpp"
#include "lib/pipeline/archive_stage.hpp"
#include "lib/pipeline/copy_loop.hpp"
#include "lib/pipeline/nbdkit.hpp"
#include "lib/pipeline/progress_sink.hpp"
#include "lib/pipeline/qemu_img.hpp"
#include "lib/pipeline/scratch.hpp"
#include "lib/source/http_random_access.hpp"
#include "lib/source/open_source.hpp"
#include "lib/sink/async_sink.hpp"
#include "lib/sink/open_sink.hpp"
#include "lib/util/cpu.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/memory_budget.hpp"
#include "lib/util/units.hpp"

namespace cdi::pipeline {
namespace fs = std::filesystem;
using formats::disk::DiskFormat;

namespace {

constexpr int k_max_layers = 4;   // compression layers + tar: defends against recursive bombs

void set_phase(const ImportOptions& o, Phase p) {
  if (o.progress) o.progress->phase.store(p, std::memory_order_relaxed);
}

void log(const ImportOptions& o, const std::string& s) {
  if (o.log) o.log(s);
}

// A local file's identity for a second read: the same file, size and mtime.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};
  bool operator==(const FileStamp& b) const {
    return dev == b.dev && ino == b.ino && size == b.size && mtime.tv_sec == b.mtime.tv_sec && mtime.tv_nsec == b.mtime.tv_nsec;
  }
};

std::optional<FileStamp> stamp_of(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileStamp{st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

struct Detected {
  std::unique_ptr<io::PeekReader> top;
  std::optional<FileStamp> stamp;          // a local source file, taken when it was opened
  SourceFacts source;
  DetectedFacts facts;
  bool tar_entry = false;                  // the last layer peeled is a tar's entry
  std::optional<std::string> direct_path;  // the top stream IS this local file (no layers)
  std::unique_ptr<io::RandomAccess> ranges;  // qcow2 over HTTP: the byte ranges its tables were read with
};

// How the memory budget (--memory-limit, else the cgroup's limit, minus a margin) is shared. No
// limit: every consumer keeps its default. Under a limit, from the usable part:
//   - 8 MiB for the blocks in flight: the copy loop's (6 MiB), or the qcow2 decoder's read buffer
//     (4 MiB) and the async sink's queue (the other 4 MiB; 16 MiB without a limit);
//   - the source's receive buffer (HTTP source, upload server's body pipe): a sixteenth of the
//     usable budget, 1 MiB to 8 MiB (MemoryBudget::receive_buffer; the defaults from ~155 MiB on);
//   - the target's write-back window, an eighth of the usable budget (1-64 MiB), twice (about two
//     windows are in the page cache at a time; bench/results/pagecache.md);
//   - the source's page cache, one window: a local file read once is dropped behind the read in
//     steps of that size, and the qcow2 decoder's random access hints that far ahead (64 MiB of
//     read-ahead and 8 MiB steps without a limit: both are charged to the cgroup);
//   - of the rest, half for the decompressors (liblzma's threaded decoder falls back to fewer
//     threads; a dictionary or zstd window that cannot fit is refused by the codec up front; the
//     qcow2 decoder's compressed-cluster jobs in flight, with fewer workers when few fit) and
//     half for the qcow2 decoder's hold buffer (capped by --qcow2-hold-limit; data that precede
//     their L2 tables beyond it spill to scratch).
// A budget below the fixed minimums (4 MiB of buffers, two 1 MiB windows) is Errc::limit up
// front, not an OOM kill.
struct MemoryPlan {
  uint64_t codec = 0;                 // CodecOptions::memory_limit (0 = the codecs' defaults)
  uint64_t writeback_window = sink::SinkOptions{}.writeback_window;
  uint64_t hold_limit = 0;            // the qcow2 decoder's hold limit
  uint64_t receive_buffer = util::MemoryBudget::k_receive_buffer_max;   // caps HttpOptions::buffer_bytes
  uint64_t blocks = 0;                // the share of the copy loop's blocks / qcow2 buffer and sink queue
  uint64_t sink_queue = 16ull << 20;  // AsyncSink's bytes in flight
  uint64_t source_cache = 0;          // file source drop step, qcow2 read-ahead (0 = their defaults)
  std::string text;                   // for -v and the plan: "" without a limit
};

Result<MemoryPlan> memory_plan(const ImportOptions& o) {
  MemoryPlan m;
  m.hold_limit = o.hold_limit;
  auto budget = util::MemoryBudget::detect(o.memory_limit, util::CgroupPaths::system(), o.memory_limit_source);
  if (!budget.limited()) return m;
  const uint64_t blocks = CDI_TRY(budget.take("copy and sink buffers", 8ull << 20, 4ull << 20));
  m.blocks = blocks;
  m.sink_queue = std::max<uint64_t>(blocks / 2, 1ull << 20);
  m.receive_buffer = budget.receive_buffer(util::MemoryBudget::k_receive_buffer_max);
  CDI_TRY(budget.take("receive buffer", m.receive_buffer, util::MemoryBudget::k_receive_buffer_floor));
  m.writeback_window = std::clamp<uint64_t>(budget.usable() / 8, 1ull << 20, 64ull << 20);
  CDI_TRY(budget.take("target write-back (two windows)", 2 * m.writeback_window, 2ull << 20));
  m.source_cache = CDI_TRY(budget.take("source page cache", m.writeback_window, 1ull << 20));
  const uint64_t half = budget.remaining() / 2;
  // At least a byte: 0 would mean the codecs' defaults, and a budget this tight must make a codec
  // that needs memory fail up front instead.
  m.codec = std::max<uint64_t>(CDI_TRY(budget.take("decompression", half, 0)), 1);
  m.hold_limit = std::min(o.hold_limit, budget.remaining());
  m.text = budget.describe() + "; decompression " + util::format_bytes(m.codec) + ", qcow2 hold " +
           util::format_bytes(m.hold_limit) + ", write-back window " + util::format_bytes(m.writeback_window) +
           ", source page cache " + util::format_bytes(m.source_cache) + ", receive buffer " +
           util::format_bytes(m.receive_buffer) + ", sink queue " + util::format_bytes(m.sink_queue);
  return m;
}

// The source options under the plan: the receive buffer capped by the budget, a local file
// dropped behind the read in steps of the source's page cache share.
source::SourceOptions source_options(const ImportOptions& o, const MemoryPlan& mem) {
  source::SourceOptions so = o.source;
  so.http.buffer_bytes = std::min<uint64_t>(so.http.buffer_bytes, mem.receive_buffer);
  if (mem.source_cache) so.file_drop_step = mem.source_cache;
  return so;
}

Result<std::unique_ptr<io::Reader>> open_source(const ImportOptions& o, const MemoryPlan& mem) {
  if (o.source_factory) return o.source_factory();
  source::HttpContext ctx;
  ctx.cancel = o.cancel;
  ctx.log = o.log;
  return source::open_source(o.url, source_options(o, mem), ctx);
}

Result<Detected> detect(std::unique_ptr<io::Reader> src, const ImportOptions& o, const MemoryPlan& mem) {
  Detected d;
  d.source = SourceFacts::from(src->info());
  if (d.source.path) d.stamp = stamp_of(*d.source.path);
  // A reader handed over by the caller (an upload body) cannot be opened again.
  if (o.source_factory) d.source.rereadable = false;
  d.facts.stages.push_back(d.source.name);
  d.top = std::make_unique<io::PeekReader>(std::move(src));
  bool layered = false;
  formats::OpenOptions open_opts;
  open_opts.codec = formats::CodecOptions{o.threads, o.cancel};
  open_opts.codec.memory_limit = mem.codec;
  open_opts.tar_entry = o.tar_entry;
  for (int depth = 0;; ++depth) {
    auto head = CDI_TRY(d.top->peek(formats::k_probe_bytes));
    if (head.empty()) {
      if (depth == 0) return fail(Errc::corrupt_input, "source is empty");
      return fail(Errc::corrupt_input, d.facts.stages.back() + " stream is empty");
    }
    auto bid = formats::best_bid(head);
    const auto kind = bid.row ? bid.row->kind : formats::FormatKind::disk;
    const bool tar = kind == formats::FormatKind::container;
    if (kind == formats::FormatKind::compression || (tar && o.content_type == ContentType::kubevirt)) {
      if (depth >= k_max_layers)
        return fail(Errc::limit, "more than " + std::to_string(k_max_layers) + " nested layers (" +
                                     d.facts.stages.back() + ")");
      auto next = CDI_TRY(bid.row->open(std::move(d.top), open_opts));
      d.facts.stages.push_back(next->info().name);
      d.top = std::make_unique<io::PeekReader>(std::move(next));
      d.tar_entry = tar;
      layered = true;
      continue;
    }
    d.facts.top_size = d.top->info().size;
    if (tar) {  // archive content type
      d.facts.tar_archive = true;
      return d;
    }
    d.facts.format = bid.result.disk;
    if (!layered && d.source.seekable && d.source.path) d.direct_path = d.source.path;
    return d;
  }
}

// For a local raw file: the guest size it will produce (its size, or the size recorded in a
// fixed-VHD footer at its end).
uint64_t local_raw_image_size(const std::string& path, uint64_t file_size, bool* fixed_vhd = nullptr) {
  if (fixed_vhd) *fixed_vhd = false;
  if (file_size < 512) return file_size;
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  std::array<std::byte, 512> tail{};
  if (fd && ::pread(fd.get(), tail.data(), tail.size(), static_cast<off_t>(file_size - 512)) == 512) {
    auto sz = formats::disk::fixed_vhd_footer_size(tail);
    if (sz && *sz == file_size - 512) {
      if (fixed_vhd) *fixed_vhd = true;
      return *sz;
    }
  }
  return file_size;
}

// The facts the planner takes from the options.
PlanOptions plan_options(const ImportOptions& o, const MemoryPlan& mem) {
  PlanOptions po;
  po.content_type = o.content_type;
  po.scratch_offered = o.scratch_dir.has_value();
  po.checksum = o.checksum.has_value();
  po.qcow2_via_qemu_img = o.qcow2_via_qemu_img;
  po.hold_limit = mem.hold_limit;
  po.memory = mem.text;
  po.nbdkit_unavailable = NbdkitCurl::unsupported_reason(o.source.http);
  return po;
}

// A qcow2 image alone in a local file or on a server that serves byte ranges: its tables are read
// by random access, so the plan knows what one stream would hold (plan_qcow2_http_ranges). A
// server whose ranges cannot be pinned (no validator, no 206) leaves the image to the stream.
Result<void> measure_qcow2(Detected& d, const ImportOptions& o, const MemoryPlan& mem) {
  if (d.facts.format != DiskFormat::qcow2 || o.qcow2_via_qemu_img || d.facts.stages.size() != 1) return {};
  formats::qcow2::DecodeOptions qo;
  qo.cancel = o.cancel;
  if (d.direct_path) {
    auto file = CDI_TRY(io::FileRandomAccess::open(*d.direct_path));
    d.facts.qcow2_stream_hold = CDI_TRY(formats::qcow2::measure_layout(*file, qo)).stream_hold;
    return {};
  }
  if (!d.source.range_url || o.source_factory) return {};
  source::HttpContext ctx;
  ctx.cancel = o.cancel;
  ctx.log = o.log;
  source::HttpRandomAccessOptions ra;
  ra.credentials_url = o.url;
  ra.expected_size = d.source.size;
  ra.expected_validator = d.source.validator;
  ra.cache_bytes = std::clamp<uint64_t>(mem.hold_limit, 4ull << 20, 32ull << 20);
  auto opened = source::HttpRandomAccess::open(*d.source.range_url, o.source.http, ctx, ra);
  if (!opened && opened.error().code() == Errc::unsupported) {
    log(o, "qcow2: byte ranges not usable, streaming: " + opened.error().what());
    return {};
  }
  auto http = CDI_TRY(std::move(opened));
  auto layout = CDI_TRY(formats::qcow2::measure_layout(*http, qo));
  log(o, "qcow2: read " + std::to_string(layout.l2_tables) + " L2 tables by ranges (" + std::to_string(http->requests()) +
             " requests): one stream would hold " + util::format_bytes(layout.stream_hold));
  d.facts.qcow2_stream_hold = layout.stream_hold;
  d.ranges = std::move(http);
  return {};
}

// Plans a detected image. A local raw file's tail is read first: a fixed VHD is a fact the plan
// states up front (a stream's footer is found while copying, see note_fixed_vhd).
Plan plan_detected(Detected& d, const PlanOptions& po) {
  if (d.direct_path && d.facts.format == DiskFormat::raw && d.facts.top_size)
    local_raw_image_size(*d.direct_path, *d.facts.top_size, &d.facts.fixed_vhd);
  return plan_import(d.source, d.facts, po);
}

TargetKind target_kind_of(const sink::Sink& s) {
  switch (s.info().type) {
    case sink::SinkKind::file: return TargetKind::file;
    case sink::SinkKind::block: return TargetKind::block;
    case sink::SinkKind::other: break;
  }
  return TargetKind::unknown;
}

// The report's printed fields, from the plan's enums.
void report_plan(ImportReport& rep) {
  rep.chain = rep.plan.stages;
  rep.format = rep.plan.format;
  rep.converter = std::string(to_string(rep.plan.converter));
  rep.target_kind = std::string(to_string(rep.plan.target));
}

// One import being executed: the options, the report and the checksum tap.
struct Exec {
  const ImportOptions& o;
  ImportReport& rep;
  std::shared_ptr<io::HashTap> tap;
  MemoryPlan mem;

  // Drains what the stages left unread into the digest and compares (once).
  Result<void> verify_checksum() {
    if (!tap) return {};
    set_phase(o, Phase::validating);
    CDI_TRY_CTX(tap->verify(*o.checksum), "checksum validation failed");
    rep.checksum_verified = o.checksum->text();
    log(o, "Checksum verification passed: " + rep.checksum_verified);
    tap.reset();
    return {};
  }

  // Everything before a commit: a signal that arrived while the last bytes were read still
  // cancels, and every byte of the source has been through the digest (a stream's rest is drained
  // here) before anything is made to look complete.
  Result<void> before_commit() {
    if (o.cancel) CDI_TRY(o.cancel->check());
    CDI_TRY_CTX(verify_checksum(), o.url);
    set_phase(o, Phase::finishing);
    return {};
  }

  // The commit tail of every import into a sink: `body` writes the image (setting
  // rep.image_size), then before_commit and target.finish; on any failure the target is aborted.
  // The sink's statistics go into the report.
  Result<void> write_and_commit(sink::Sink& target, const std::string& dest_name,
                                const std::function<Result<void>()>& body) {
    auto result = [&]() -> Result<void> {
      CDI_TRY(body());
      CDI_TRY(before_commit());
      CDI_TRY_CTX(target.finish(rep.image_size), dest_name);
      return {};
    }();
    if (!result) {
      target.abort();
      return result;
    }
    auto st = target.stats();
    rep.bytes_written = st.bytes_written;
    rep.bytes_zero = st.bytes_holes + st.bytes_zeroed;
    return {};
  }

  // The commit tail of an extraction: before_commit, then the staged tree moves into place.
  Result<void> extract_and_commit(io::Reader& tar, const fs::path& into) {
    ArchiveStage stage;
    CDI_TRY_CTX(stage.open(into), o.url);
    set_phase(o, Phase::transferring);
    formats::tar::ExtractOptions eo;
    eo.cancel = o.cancel;
    auto stats = CDI_TRY_CTX(formats::tar::extract(tar, stage.path(), eo), o.url);
    rep.files_extracted = stats.files;
    rep.bytes_written = stats.bytes;
    // The digest covers the whole stream, also what tar left unread (CDI hashed only what tar read).
    CDI_TRY(before_commit());
    CDI_TRY_CTX(stage.commit(), into.string());
    return {};
  }
};

// The size bound for the image: the device capacity and --image-size, whichever is smaller.
struct Bound {
  std::optional<uint64_t> size;
  std::string what;
};

Bound image_bound(const ImportOptions& o, const sink::Sink& s) {
  Bound b;
  auto cap = s.info().capacity;
  if (cap) {
    b.size = cap;
    b.what = "the device " + s.info().path;
  }
  if (o.image_size && (!b.size || *o.image_size < *b.size)) {
    b.size = o.image_size;
    b.what = o.image_size_what;
  }
  return b;
}

// A CDI host-assisted clone (content types blockdevice_clone / filesystem_clone, plan.hpp):
// wire → snappy → (raw | tar extraction | tar entry disk.img) → target. Nothing is probed: a
// device whose first bytes look like QCOW2 is still copied byte for byte, and neither scratch
// space nor qemu-img is ever used. The snappy framing has no end marker: the source must fail at
// a cut (the upload server's request body does), and the stages read their input to its end.
Result<void> import_clone(std::unique_ptr<io::Reader> wire, Exec& x) {
  const MemoryPlan& mem = x.mem;
  const auto& o = x.o;
  auto& rep = x.rep;
  const bool block = sink::is_block_device(o.dest);
  rep.plan = plan_clone(SourceFacts::from(wire->info()), plan_options(o, mem), block);
  report_plan(rep);
  formats::OpenOptions oo;
  oo.codec = formats::CodecOptions{o.threads, o.cancel};
  std::unique_ptr<io::Reader> top = CDI_TRY_CTX(formats::find_format("snappy")->open(std::move(wire), oo), o.url);
  std::error_code ec;
  const bool dir = !block && fs::is_directory(o.dest, ec);

  if (rep.plan.target == TargetKind::directory) {
    // file → file: the whole tar, staged and merged into the target directory once it is complete
    // and verified (as content type archive).
    fs::path into = dir ? fs::path(o.dest) : fs::path(o.dest).parent_path();
    if (into.empty()) into = ".";
    CDI_TRY(x.extract_and_commit(*top, into));
    // CDI's fileToFileCloneProcessor reports preallocation as applied, whatever PREALLOCATION says.
    rep.preallocation_applied = true;
    return {};
  }

  if (o.content_type == ContentType::filesystem_clone) {
    // file → block: the tar's disk.img onto the device; the rest of the archive is read and checked.
    oo.tar_entry = "disk.img";
    top = CDI_TRY_CTX(formats::find_format("tar")->open(std::move(top), oo), o.url);
    rep.plan.stages[2] = top->info().name;
    report_plan(rep);
  }
  // block → file lands in disk.img. The file is the source's size (no resize, as CDI's
  // StreamDataToFile); a device keeps whatever lies past the source's end.
  const fs::path dest = dir ? fs::path(o.dest) / "disk.img" : fs::path(o.dest);
  sink::SinkOptions so;
  so.preallocate = o.preallocate;
  so.writeback_window = mem.writeback_window;
  auto target = CDI_TRY(sink::open_sink(dest, so));
  rep.plan.target = target_kind_of(*target);
  report_plan(rep);
  CDI_TRY(x.write_and_commit(*target, dest.string(), [&]() -> Result<void> {
    auto bound = image_bound(o, *target);
    if (auto known = top->info().size; known && bound.size && *known > *bound.size)
      return fail(Errc::limit, Reason::too_small, "clone source is larger than " + bound.what + " (" +
                                                      std::to_string(*known) + " > " + std::to_string(*bound.size) +
                                                      " bytes)");
    set_phase(o, Phase::transferring);
    CopyOptions co;
    co.max_size = bound.size;
    co.max_size_what = bound.what;
    co.detect_fixed_vhd = false;   // verbatim
    co.progress = o.progress;
    co.cancel = o.cancel;
    auto copied = CDI_TRY_CTX(copy_raw(*top, *target, co), o.url);
    rep.image_size = copied.image_size;
    return {};
  }));
  // CDI's cloneProcessor reports false on these paths (StreamDataToFile still honours preallocation).
  rep.preallocation_applied = false;
  return {};
}

// The second read of a two-read qcow2 import: the source opened again (a local file: the same
// file, size and mtime; HTTP: the first response's URL with If-Match on its validator; docker://:
// the manifest by its digest, the same layer digest) and the
// same layers peeled; returns the stream at the qcow2 magic.
Result<std::unique_ptr<io::Reader>> reopen_source(const Detected& d, const ImportOptions& o, const MemoryPlan& mem) {
  source::HttpContext ctx;
  ctx.cancel = o.cancel;
  ctx.log = o.log;
  std::unique_ptr<io::Reader> src;
  if (d.source.path) {
    auto now = stamp_of(*d.source.path);
    if (!d.stamp || !now || !(*now == *d.stamp))
      return std::unexpected(io::changed_between_reads(*d.source.path + ": its size or mtime changed"));
    src = CDI_TRY(source::open_source(o.url, source_options(o, mem), ctx));
  } else if (d.source.content_addressed) {
    // docker://: the same manifest by its digest; its disk layer must be the same blob (whose
    // digest the end of this read verifies again).
    if (!d.source.pinned_url || !d.source.validator) return fail(Errc::internal, "a second read without a layer digest");
    src = CDI_TRY(source::open_source(*d.source.pinned_url, source_options(o, mem), ctx));
    auto again = src->info();
    if (!again.content_addressed || again.validator != d.source.validator)
      return std::unexpected(io::changed_between_reads(*d.source.pinned_url + ": the disk layer went from " +
                                                       *d.source.validator + " to " + again.validator.value_or("none")));
  } else {
    if (!d.source.pinned_url || !d.source.validator) return fail(Errc::internal, "a second read without a validator");
    source::SourceOptions so = source_options(o, mem);
    so.http.if_match = d.source.validator;
    src = CDI_TRY(source::open_source(*d.source.pinned_url, so, ctx));
  }
  if (src->info().size != d.source.size)
    return std::unexpected(io::changed_between_reads(
        "its length went from " + (d.source.size ? std::to_string(*d.source.size) : std::string("unknown")) + " to " +
        (src->info().size ? std::to_string(*src->info().size) : std::string("unknown"))));
  auto d2 = CDI_TRY(detect(std::move(src), o, mem));
  if (d2.facts.stages != d.facts.stages || d2.facts.format != d.facts.format)
    return std::unexpected(io::changed_between_reads(chain_text(d.facts.stages) + " became " + chain_text(d2.facts.stages)));
  return std::unique_ptr<io::Reader>(std::move(d2.top));
}

Result<void> import_qcow2_native(Detected& d, const ImportOptions& o, const MemoryPlan& mem, sink::Sink& target,
                                 ImportReport& rep, const std::function<Result<void>()>& after_first) {
  auto bound = image_bound(o, target);
  auto head = CDI_TRY(d.top->peek(formats::k_probe_bytes));
  auto info = CDI_TRY(formats::qcow2::inspect(head));
  if (bound.size && info.virtual_size > *bound.size)
    return fail(Errc::limit, Reason::too_small, "virtual image size " + std::to_string(info.virtual_size) + " (" +
                                 util::format_bytes(info.virtual_size) + ") is larger than " + bound.what + " (" +
                                 std::to_string(*bound.size) + ")");
  if (o.progress) o.progress->total_written.store(static_cast<int64_t>(info.virtual_size));
  formats::qcow2::DecodeOptions qo;
  qo.hold_limit = rep.plan.needs.memory;   // the plan's hold limit (the budget's share)
  qo.scratch_dir = o.scratch_dir;
  qo.max_virtual_size = bound.size;
  qo.threads = o.threads;
  qo.cancel = o.cancel;
  qo.decompress_memory = mem.codec;
  qo.readahead = mem.source_cache;
  // The plan's access: positioned reads of the local file (nothing held, no scratch; the stream
  // opened for detection is left unread, a checksum was verified on it before this), or the stream.
  std::unique_ptr<io::RandomAccess> file;
  if (rep.plan.access == Access::local_file) {
    auto f = CDI_TRY(io::FileRandomAccess::open(*d.direct_path));
    if (mem.source_cache) f->set_drop_step(mem.source_cache);
    file = std::move(f);
  }
  if (rep.plan.access == Access::http_ranges) {
    if (!d.ranges) return fail(Errc::internal, "plan reads qcow2 by ranges without them");
    file = std::move(d.ranges);
    d.top.reset();   // closes our own GET (a checksum was verified on it before this)
  }
  set_phase(o, Phase::transferring);
  // The decoder reads and decompresses; a writer thread issues the target's syscalls meanwhile.
  sink::AsyncSink async(target, mem.sink_queue);
  ProgressSink counted(async, o.progress);
  formats::qcow2::DecodeStats st;
  if (rep.plan.access == Access::two_reads) {
    auto reopen = [&]() -> Result<std::unique_ptr<io::Reader>> {
      log(o, "qcow2: reading " + chain_text(d.facts.stages) + " again for the data");
      return reopen_source(d, o, mem);
    };
    // One stream first (no scratch: it fails fast with scratch_required when the hold would
    // overflow). What it wrote is the image's own bytes at their offsets, so the two reads that
    // follow may write them again.
    formats::qcow2::DecodeOptions once = qo;
    once.scratch_dir.reset();
    auto one = formats::qcow2::decode(*d.top, counted, once);
    if (one) {
      st = *one;
      log(o, "qcow2: one stream sufficed (held at most " + util::format_bytes(st.held_peak) + "): read once");
    } else if (one.error().code() == Errc::scratch_required) {
      log(o, "qcow2: the stream would hold more than " + util::format_bytes(qo.hold_limit) + " (" +
                 one.error().what() + "): abandoned, the image is read twice from the start");
      // A checksum covers the first download: the rest of it is drained into the digest and
      // verified before anything is read again.
      CDI_TRY(after_first());
      auto first = CDI_TRY(reopen());
      st = CDI_TRY(formats::qcow2::decode_two_reads(*first, reopen, counted, qo, {}));
      if (d.source.path && !(stamp_of(*d.source.path) == d.stamp))
        return std::unexpected(io::changed_between_reads(*d.source.path + ": its size or mtime changed"));
      log(o, "qcow2: read the source " + std::to_string(st.reads) + " times after the abandoned stream (" +
                 util::format_bytes(st.bytes_in) + " of qcow2 in those), nothing held");
      st.reads += 1;
    } else {
      return std::unexpected(std::move(one).error());
    }
  } else {
    st = CDI_TRY(file ? formats::qcow2::decode_random_access(*file, counted, qo)
                      : formats::qcow2::decode(*d.top, counted, qo));
  }
  CDI_TRY(async.drain());
  if (file && o.progress && !o.checksum) o.progress->bytes_read.store(st.bytes_in);
  rep.image_size = st.virtual_size;
  rep.held_peak = st.held_peak;
  rep.spilled_bytes = st.spilled_bytes;
  rep.scratch_bytes = st.spilled_bytes;
  return {};
}

// Runs qemu-img as the plan says: on the local file, over nbdkit-curl, or from a scratch spool.
// nbdkit-curl not installed: the plan is made again without it, and the fallback is recorded.
// `verify_spool` runs once a stream has been spooled, before qemu-img sees it: a checksum is
// verified then (the spool drained the whole stream), so a bad image is never converted.
Result<void> import_with_qemu(Detected& d, const ImportOptions& o, const MemoryPlan& mem, sink::Sink& target, ImportReport& rep,
                              const std::function<Result<void>()>& verify_spool) {
  auto& plan = rep.plan;
  const std::string fmt(plan.qemu_driver());
  QemuRunOptions qo;
  qo.cancel = o.cancel;
  std::string src;
  std::unique_ptr<ScratchFile> spool;
  std::unique_ptr<NbdkitCurl> nbd;
  if (plan.converter == Converter::qemu_img_nbdkit) {
    // nbdkit's 32 MiB read cache lives in memory (/dev/shm), not on the scratch volume.
    fs::path cache_dir = ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path();
    auto started = NbdkitCurl::start(*d.source.range_url, o.source.http, cache_dir, o.cancel);
    if (started) {
      nbd = std::move(*started);
      log(o, "reading " + fmt + " in place with Range requests through nbdkit-curl (no scratch)");
      d.top.reset();   // closes our own GET
    } else if (started.error().code() == Errc::not_found) {
      auto po = plan_options(o, mem);
      po.nbdkit_unavailable = started.error().what();
      po.nbdkit_fallback = true;
      po.target = plan.target;
      plan = plan_detected(d, po);
      report_plan(rep);
    } else {
      return std::unexpected(std::move(started).error().context("nbdkit"));
    }
  }
  if (nbd) {
    src = nbd->uri();
  } else if (plan.converter == Converter::qemu_img_local) {
    src = *d.direct_path;
  } else {
    if (plan.refusal) return std::unexpected(*plan.refusal);
    if (plan.not_in_place) log(o, "not reading in place: " + *plan.not_in_place);
    spool = CDI_TRY(ScratchFile::create(*o.scratch_dir));
    set_phase(o, Phase::spooling);
    log(o, "spooling " + chain_text(d.facts.stages) + " to scratch in " + o.scratch_dir->string());
    CopyOptions co;
    co.detect_fixed_vhd = false;
    co.cancel = o.cancel;
    auto copied = CDI_TRY_CTX(copy_raw(*d.top, *spool, co), "spooling to scratch");
    CDI_TRY(spool->finish(copied.image_size));
    rep.scratch_bytes = spool->allocated_bytes();
    src = spool->child_path();
    qo.keep_fds.push_back(spool->fd());
    CDI_TRY(verify_spool());
  }
  set_phase(o, Phase::validating);
  auto info_r = qemu_info(fmt, src, qo);
  if (!info_r && nbd) {
    // qemu-img only sees "export not available": nbdkit's stderr has the reason.
    if (auto why = nbd->stderr_tail(); !why.empty()) return fail(Errc::network, "nbdkit-curl: " + why);
  }
  auto info = CDI_TRY(std::move(info_r));
  auto bound = image_bound(o, target);
  CDI_TRY(validate_image(info, bound.size, bound.what));
  if (plan.disk_format == DiskFormat::qcow2) CDI_TRY(qemu_check_qcow2(src, qo));
  // Everything the source holds was consumed (drained by the spool, or never read for a
  // direct file): upstream checks such as a compressed stream's CRC have run.
  CDI_TRY(target.prepare_direct(info.virtual_size));
  auto path = target.direct_path();
  if (!path) return fail(Errc::internal, "target cannot be written by qemu-img");
  // A file target without a name yet (O_TMPFILE): qemu-img opens it as /proc/self/fd/N.
  for (int fd : target.direct_fds()) qo.keep_fds.push_back(fd);
  ConvertTarget ct;
  ct.path = *path;
  ct.block_device = plan.target == TargetKind::block;
  ct.direct_io = supports_direct_io(*path);
  set_phase(o, Phase::converting);
  if (o.progress) o.progress->total_written.store(static_cast<int64_t>(info.virtual_size));
  log(o, "converting " + fmt + " with qemu-img (cache " + std::string(ct.direct_io ? "none" : "writethrough") + ")");
  auto on_percent = [&](double pct) {
    if (o.progress)
      o.progress->bytes_written.store(static_cast<uint64_t>(pct / 100.0 * double(info.virtual_size)));
  };
  auto converted = qemu_convert(fmt, src, info.virtual_size, ct, qo, on_percent);
  if (!converted && nbd) {
    if (auto why = nbd->stderr_tail(); !why.empty())
      return std::unexpected(std::move(converted).error().context("nbdkit-curl: " + why));
  }
  CDI_TRY(std::move(converted));

  if (d.direct_path && o.progress) {
    // qemu-img read the local file itself: count it as read.
    struct stat sst;
    if (::stat(d.direct_path->c_str(), &sst) == 0) o.progress->bytes_read.store(static_cast<uint64_t>(sst.st_size));
  }
  if (!ct.block_device) {
    struct stat tst;
    if (::stat(ct.path.c_str(), &tst) == 0) rep.qemu_allocated = static_cast<uint64_t>(tst.st_blocks) * 512;
  } else {
    rep.qemu_allocated = info.virtual_size;
  }
  rep.image_size = info.virtual_size;
  return {};
}

Result<void> import_stream(Detected& d, const ImportOptions& o, sink::Sink& target, ImportReport& rep) {
  auto bound = image_bound(o, target);
  // A raw stream of known length (a local file, a tar entry) that cannot fit is refused
  // before anything is written.
  if (auto known = d.facts.top_size; known && bound.size && *known > *bound.size) {
    uint64_t image = d.direct_path ? local_raw_image_size(*d.direct_path, *known) : *known;
    if (image > *bound.size)
      return fail(Errc::limit, Reason::too_small, "image is larger than " + bound.what + " (" + std::to_string(image) +
                                                      " > " + std::to_string(*bound.size) + " bytes)");
  }
  set_phase(o, Phase::transferring);
  CopyOptions co;
  co.max_size = bound.size;
  co.max_size_what = bound.what;
  co.progress = o.progress;
  co.cancel = o.cancel;
  auto copied = CDI_TRY_CTX(copy_raw(*d.top, target, co), o.url);
  if (copied.fixed_vhd) {   // a stream's fixed VHD footer is only seen at its end
    note_fixed_vhd(rep.plan);
    report_plan(rep);
  }
  rep.image_size = copied.image_size;
  return {};
}

// file > xz > raw from a local file, or over HTTP from a server that serves byte ranges, whose xz
// has more than one block (xz -T): the blocks are decoded in parallel, each worker reading its
// block by offset and writing its output at its place in the target (formats/xz/xz_blocks.hpp),
// in a few MiB per worker whatever the block size. Returns false (nothing written) when that does
// not apply: another chain, one block, one CPU, a budget that holds one worker only, HTTP with a
// checksum or without usable ranges; the caller streams.
Result<bool> import_xz_blocks(Detected& d, const ImportOptions& o, const MemoryPlan& mem, sink::Sink& target,
                              ImportReport& rep, Exec& x) {
  if (d.facts.stages.size() != 2 || d.facts.stages[1] != "xz" || d.facts.format != DiskFormat::raw) return false;
  if (o.source_factory || o.xz_stream_only) return false;
  const bool local = d.source.path && d.source.seekable;
  // Over HTTP: a server that serves byte ranges of a pinned version; with a checksum the file
  // would be downloaded twice (the digest needs the stream), so it streams.
  const bool ranges = !local && d.source.range_url && d.source.validator && d.source.size && !o.checksum;
  if (!local && !ranges) return false;
  const unsigned cpus = o.threads ? o.threads : util::usable_cpus();
  if (cpus < 2) return false;
  // Each worker reads through its own file descriptor or HTTP connection (ranges pinned to the
  // version the stream saw, credentials only to the URL's origin; 2 MiB of cache each).
  constexpr uint64_t k_http_cache = 2ull << 20;
  auto opener = [&]() -> Result<std::unique_ptr<io::RandomAccess>> {
    if (local) {
      auto f = CDI_TRY(io::FileRandomAccess::open(*d.source.path));
      if (mem.source_cache) f->set_drop_step(std::max<uint64_t>(mem.source_cache / 2, 1ull << 20));
      return std::unique_ptr<io::RandomAccess>(std::move(f));
    }
    source::HttpContext ctx;
    ctx.cancel = o.cancel;
    ctx.log = o.log;
    source::HttpRandomAccessOptions ra;
    ra.cache_bytes = k_http_cache;
    ra.max_request = k_http_cache;
    ra.min_read = 1u << 20;
    ra.credentials_url = o.url;
    ra.expected_size = d.source.size;
    ra.expected_validator = d.source.validator;
    auto h = CDI_TRY(source::HttpRandomAccess::open(*d.source.range_url, source_options(o, mem).http, ctx, ra));
    return std::unique_ptr<io::RandomAccess>(std::move(h));
  };
  auto opened = opener();
  if (!opened && ranges && opened.error().code() == Errc::unsupported) {
    log(o, "xz: byte ranges not usable, streaming: " + opened.error().what());
    return false;
  }
  auto file = CDI_TRY(std::move(opened));
  if (local && d.stamp && stamp_of(*d.source.path) != d.stamp) return false;
  auto index = CDI_TRY(formats::xz::read_index(*file, mem.codec));
  if (index.blocks.size() < 2) return false;
  const uint64_t per_worker = CDI_TRY(formats::xz::worker_memory(*file, index)) + (local ? 0 : k_http_cache);
  // The workers replace the copy loop and hold nothing: the decompression share, the qcow2 hold's
  // and the blocks' pay for them (without a limit: the stream decoder's default).
  const uint64_t share = mem.codec ? mem.codec + mem.hold_limit + mem.blocks : formats::xz::k_memlimit;
  const unsigned fit = static_cast<unsigned>(std::min<uint64_t>(share / per_worker, cpus));
  const unsigned threads = std::min<unsigned>(fit, static_cast<unsigned>(index.blocks.size()));
  if (threads < 2) return false;
  auto bound = image_bound(o, target);
  // The image size is known from the index: one that cannot fit is refused before any write.
  uint64_t image = index.out_size;
  if (bound.size && image > *bound.size && !(image - *bound.size == 512))
    return fail(Errc::limit, Reason::too_small, "image is larger than " + bound.what + " (" + std::to_string(image) +
                                                    " > " + std::to_string(*bound.size) + " bytes)");
  // Random access reads the file itself, not the stream: verify the stream first. Then the
  // stream detection opened goes (liblzma's threads and buffers with it).
  CDI_TRY(x.verify_checksum());
  d.top.reset();
  std::string why = "xz: " + std::to_string(index.blocks.size()) + " blocks in " + std::to_string(index.streams) +
                    " stream(s), decoded in parallel on " + std::to_string(threads) +
                    (local ? " workers reading the file by offset (" : " workers reading it by HTTP ranges (") +
                    util::format_bytes(per_worker) + " each)";
  rep.plan.reasons.push_back(why);
  report_plan(rep);
  log(o, "plan: " + why);
  set_phase(o, Phase::transferring);
  ProgressSink counted(target, o.progress);
  formats::xz::ParallelOptions po;
  po.threads = threads;
  po.open = opener;
  po.cancel = o.cancel;
  auto res = CDI_TRY(formats::xz::decode_blocks(index, counted, po));
  if (o.progress) o.progress->bytes_read.fetch_add(res.bytes_in);
  // The last 512 bytes, as the stream copy sees them: a DMG trailer is refused, a fixed-VHD
  // footer (its size field = the bytes before it) is not part of the image; else they are data.
  uint64_t size = res.out_size;
  if (res.tail.size() == 512) {
    std::span<const std::byte, 512> tail(res.tail.data(), 512);
    if (formats::disk::is_dmg_trailer(tail))
      return fail(Errc::unsupported, "image format dmg (Apple disk image: \"koly\" trailer at offset " +
                                         std::to_string(size - 512) +
                                         ") is not supported (supported: raw, qcow2, vmdk, vhd, vhdx, vdi)");
    if (auto sz = formats::disk::fixed_vhd_footer_size(tail); sz && *sz == size - 512) {
      size -= 512;
      note_fixed_vhd(rep.plan);
      report_plan(rep);
      res.tail.clear();
    }
  }
  if (bound.size && size > *bound.size)
    return fail(Errc::limit, Reason::too_small, "image is larger than " + bound.what + " (more than " +
                                                    std::to_string(*bound.size) + " bytes, " + util::format_bytes(*bound.size) + ")");
  if (!res.tail.empty()) {
    const uint64_t at = size - res.tail.size();
    if (std::all_of(res.tail.begin(), res.tail.end(), [](std::byte b) { return b == std::byte{0}; }))
      CDI_TRY(counted.zero_range(at, res.tail.size()));
    else
      CDI_TRY(counted.write_at(at, res.tail));
  }
  rep.image_size = size;
  return true;
}

}  // namespace

Result<ImportReport> run_import(const ImportOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  ImportReport rep;
  std::atomic<uint64_t> local_read{0};
  std::atomic<uint64_t>& read_counter = o.progress ? o.progress->bytes_read : local_read;
  set_phase(o, Phase::probing);

  auto mem = CDI_TRY(memory_plan(o));
  if (!mem.text.empty()) log(o, "memory: " + mem.text);
  auto src = CDI_TRY_CTX(open_source(o, mem), o.url);
  rep.labels = src->info().labels;
  if (auto sz = src->info().size; sz && o.progress) o.progress->total_read.store(static_cast<int64_t>(*sz));
  std::unique_ptr<io::Reader> counted = std::make_unique<io::CountingReader>(std::move(src), read_counter);
  Exec x{o, rep, nullptr, mem};
  // A checksum: a tee right above the wire bytes; verified before anything is converted or committed.
  if (o.checksum) {
    auto [hashing, t] = CDI_TRY(io::HashingReader::open(std::move(counted), o.checksum->algo));
    counted = std::move(hashing);
    x.tap = std::move(t);
  }
  auto finish_report = [&] {
    rep.bytes_read = read_counter.load();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    set_phase(o, Phase::done);
  };
  rep.content_type = o.content_type;
  if (is_clone(o.content_type)) {
    CDI_TRY(import_clone(std::move(counted), x));
    finish_report();
    return rep;
  }

  auto d = CDI_TRY_CTX(detect(std::move(counted), o, mem), o.url);
  CDI_TRY_CTX(measure_qcow2(d, o, mem), o.url);
  rep.plan = plan_detected(d, plan_options(o, mem));
  if (rep.plan.access != Access::http_ranges) d.ranges.reset();   // streamed: its cache and connection go
  report_plan(rep);
  log(o, "detected " + chain_text(rep.chain));
  for (const auto& why : rep.plan.reasons) log(o, "plan: " + why);

  if (rep.plan.converter == Converter::extract || o.content_type == ContentType::archive) {
    if (rep.plan.refusal) return std::unexpected(Error(*rep.plan.refusal).context(o.url));
    CDI_TRY(x.extract_and_commit(*d.top, fs::path(o.dest)));
    finish_report();
    return rep;
  }
  // A refused format; a missing scratch directory is returned where the spool would be made.
  if (rep.plan.refusal && !rep.plan.needs.scratch) return std::unexpected(Error(*rep.plan.refusal).context(o.url));

  sink::SinkOptions so;
  so.min_size = o.resize_to.value_or(o.image_size.value_or(0));
  so.preallocate = o.preallocate;
  so.writeback_window = mem.writeback_window;
  auto target = CDI_TRY(sink::open_sink(o.dest, so));
  rep.plan.target = target_kind_of(*target);
  report_plan(rep);
  CDI_TRY(x.write_and_commit(*target, o.dest, [&]() -> Result<void> {
    if (o.image_size && target->info().capacity && *o.image_size > *target->info().capacity)
      return fail(Errc::limit, Reason::too_small, o.image_size_what + " " + std::to_string(*o.image_size) + " is larger than the device " +
                                   o.dest + " (" + std::to_string(*target->info().capacity) + " bytes)");
    switch (rep.plan.converter) {
      case Converter::qcow2_native:
        // Random access reads the file itself, not the stream: verify the stream first.
        if (rep.plan.access == Access::local_file || rep.plan.access == Access::http_ranges)
          CDI_TRY_CTX(x.verify_checksum(), o.url);
        CDI_TRY_CTX(import_qcow2_native(d, o, mem, *target, rep, [&] { return x.verify_checksum(); }), o.url);
        break;
      case Converter::qemu_img_local:
        // qemu-img reads a local file by path: verify it first, so a bad image is never converted.
        CDI_TRY_CTX(x.verify_checksum(), o.url);
        CDI_TRY_CTX(import_with_qemu(d, o, mem, *target, rep, [] { return Result<void>{}; }), o.url);
        break;
      case Converter::qemu_img_nbdkit:
      case Converter::qemu_img_spool:
        CDI_TRY_CTX(import_with_qemu(d, o, mem, *target, rep, [&] { return x.verify_checksum(); }), o.url);
        break;
      case Converter::stream:
        if (CDI_TRY_CTX(import_xz_blocks(d, o, mem, *target, rep, x), o.url)) break;
        CDI_TRY(import_stream(d, o, *target, rep));
        break;
      case Converter::extract:
      case Converter::clone:
        return fail(Errc::internal, "plan converter " + std::string(to_string(rep.plan.converter)) + " on a disk image");
    }
    return {};
  }));
  if (rep.plan.uses_qemu_img()) {
    rep.bytes_written = std::min(rep.qemu_allocated, rep.image_size);
    rep.bytes_zero = rep.image_size - rep.bytes_written;
  }
  rep.preallocation_applied = o.preallocate;
  finish_report();
  return rep;
}

Result<InspectReport> inspect(const ImportOptions& o) {
  InspectReport rep;
  if (is_clone(o.content_type))
    return fail(Errc::unsupported, "clone content types are only received by the upload server; nothing to inspect");
  auto mem = CDI_TRY(memory_plan(o));
  auto src = CDI_TRY_CTX(open_source(o, mem), o.url);
  rep.source_size = src->info().size;
  rep.labels = src->info().labels;
  auto d = CDI_TRY_CTX(detect(std::move(src), o, mem), o.url);
  CDI_TRY_CTX(measure_qcow2(d, o, mem), o.url);
  rep.plan = plan_detected(d, plan_options(o, mem));
  const auto& plan = rep.plan;
  rep.chain = plan.stages;
  rep.format = plan.format;
  rep.converter = std::string(to_string(plan.converter));
  rep.scratch_required = plan.needs.scratch;
  rep.scratch_reason = plan.scratch_reason;
  if (plan.refusal && !plan.needs.scratch) return std::unexpected(Error(*plan.refusal).context(o.url));
  switch (plan.converter) {
    case Converter::qcow2_native: {
      auto head = CDI_TRY_CTX(d.top->peek(formats::k_probe_bytes), o.url);
      auto info = CDI_TRY_CTX(formats::qcow2::inspect(head), o.url);
      rep.virtual_size = info.virtual_size;
      break;
    }
    case Converter::qemu_img_local: {
      auto info = CDI_TRY_CTX(qemu_info(std::string(plan.qemu_driver()), *d.direct_path, {}), o.url);
      rep.virtual_size = info.virtual_size;
      break;
    }
    case Converter::stream: {
      // A local file, or a tar's entry, has the image's size (a fixed VHD: the footer's).
      if (d.direct_path || (d.facts.top_size && d.tar_entry)) rep.virtual_size = d.facts.top_size;
      if (d.direct_path && d.facts.top_size && d.facts.fixed_vhd)
        rep.virtual_size = local_raw_image_size(*d.direct_path, *d.facts.top_size);
      break;
    }
    case Converter::qemu_img_nbdkit:
    case Converter::qemu_img_spool:
    case Converter::extract:
    case Converter::clone:
      break;
  }
  if (plan.converter == Converter::qcow2_native && plan.access == Access::two_reads) {
    // The import's first read, made here too (the stream is read to its end): what it found.
    formats::qcow2::DecodeOptions qo;
    qo.cancel = o.cancel;
    auto l = CDI_TRY_CTX(formats::qcow2::measure_stream(*d.top, qo), o.url);
    std::string found = "first read: " + util::format_bytes(l.input_size) + " of qcow2";
    if (!l.tables_missed && l.stream_hold <= rep.plan.needs.memory) {
      // The import's one stream will do: it reads once.
      rep.plan.access = Access::sequential;
      rep.plan.needs.second_read = false;
      found += ", " + std::to_string(l.l2_tables) + " L2 tables; one stream holds at most " +
               util::format_bytes(l.stream_hold) + ", within the hold limit: the import reads it once";
    } else if (l.tables_missed)
      found += ", " + std::to_string(l.tables_missed) + " L2 tables before the L1 table: the import reads the source "
               "three times (the tables, those tables, the data)";
    else
      found += ", " + std::to_string(l.l2_tables) + " L2 tables; one stream would hold " + util::format_bytes(l.stream_hold) +
               ", more than the hold limit: the import abandons its stream and reads the image twice (two reads hold nothing)";
    rep.plan.reasons.push_back(found);
  }
  return rep;
}

}  // namespace cdi::pipeline
