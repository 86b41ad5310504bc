// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <chrono>

#include "formats/disk/disk_probe.hpp"
#include "formats/gzip/gzip_reader.hpp"
#include "formats/qcow2/qcow2_decoder.hpp"
#include "formats/snappy/snappy_reader.hpp"
#include "formats/tar/extract.hpp"
#include "formats/tar/tar_reader.hpp"
#include "formats/xz/xz_reader.hpp"
#include "formats/zstd/zstd_reader.hpp"
#include "lib/io/counting_reader.hpp"
#include "lib/io/hashing_reader.hpp"
#include "lib/io/peek_reader.hpp"
#include "lib/pipeline/copy_loop.hpp"
#include "lib/pipeline/nbdkit.hpp"
#include "lib/pipeline/qemu_img.hpp"
#include "lib/pipeline/scratch.hpp"
#include "lib/sink/async_sink.hpp"
#include "lib/sink/leftovers.hpp"
#include "lib/sink/open_sink.hpp"
#include "lib/source/file_source.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/units.hpp"

namespace cdi::pipeline {
namespace fs = std::filesystem;
using formats::disk::DiskFormat;

std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::starting: return "starting";
    case Phase::probing: return "probing";
    case Phase::transferring: return "transferring";
    case Phase::spooling: return "spooling";
    case Phase::validating: return "validating";
    case Phase::converting: return "converting";
    case Phase::finishing: return "finishing";
    case Phase::done: return "done";
  }
  return "unknown";
}

std::string chain_text(const std::vector<std::string>& chain) {
  std::string s;
  for (const auto& c : chain) {
    if (!s.empty()) s += " > ";
    s += c;
  }
  return s;
}

namespace {

constexpr int k_max_layers = 4;   // compression layers + tar: defends against recursive bombs

void set_phase(const ImportOptions& o, Phase p) {
  if (o.progress) o.progress->phase.store(p, std::memory_order_relaxed);
}

void log(const ImportOptions& o, const std::string& s) {
  if (o.log) o.log(s);
}

// The source for a URL. Local paths, file:// URLs and "-" for now; network schemes are
// recognised so the message is precise.
Result<std::unique_ptr<io::Reader>> open_source(const ImportOptions& o) {
  if (o.source_factory) return o.source_factory();
  std::string_view url = o.url;
  auto has_scheme = [&](std::string_view scheme) {
    if (url.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) return false;
    return true;
  };
  if (has_scheme("http://") || has_scheme("https://")) {
    source::HttpContext ctx;
    ctx.cancel = o.cancel;
    ctx.log = o.log;
    return source::open_http_source(url, o.http, ctx);
  }
  if (source::registry::is_image_reference(url)) {   // containerDisks: the reader serves the disk file
    source::HttpContext ctx;
    ctx.cancel = o.cancel;
    ctx.log = o.log;
    auto ro = o.registry;
    ro.client.http = o.http;
    return source::registry::open_registry_source(url, ro, ctx);
  }
  for (std::string_view scheme : {"docker://", "oci:", "oci-archive:", "s3://", "gs://"}) {
    if (url.substr(0, scheme.size()) == scheme)
      return fail(Errc::unsupported, "source scheme '" + std::string(scheme) + "' is not supported by this build");
  }
  source::FileSourceOptions fo;
  fo.force_shared = o.force_shared;
  fo.cancel = o.cancel;
  return source::open_file_source(url, fo);
}

struct Detected {
  std::unique_ptr<io::PeekReader> top;
  std::vector<std::string> chain;
  DiskFormat format = DiskFormat::raw;
  bool tar = false;                        // archive content type: the top is a tar stream
  std::optional<std::string> direct_path;  // the top stream IS this local file (no layers)
};

enum class Kind { none, gzip, xz, zstd, tar, disk };

Result<Detected> detect(std::unique_ptr<io::Reader> src, const ImportOptions& o) {
  Detected d;
  auto src_info = src->info();
  d.chain.push_back(src_info.name);
  d.top = std::make_unique<io::PeekReader>(std::move(src));
  bool layered = false;
  formats::CodecOptions codec{o.threads, o.cancel};
  for (int depth = 0;; ++depth) {
    auto head = CDI_TRY(d.top->peek(formats::k_probe_bytes));
    if (head.empty()) {
      if (depth == 0) return fail(Errc::corrupt_input, "source is empty");
      return fail(Errc::corrupt_input, d.chain.back() + " stream is empty");
    }
    Kind best = Kind::none;
    int score = 0;
    auto bid = [&](Kind k, int s) {
      if (s > score) {
        score = s;
        best = k;
      }
    };
    bid(Kind::gzip, formats::gzip::probe(head));
    bid(Kind::xz, formats::xz::probe(head));
    bid(Kind::zstd, formats::zstd::probe(head));
    bid(Kind::tar, formats::tar::probe(head));
    auto disk = formats::disk::probe(head);
    bid(Kind::disk, disk.score);

    if (best == Kind::gzip || best == Kind::xz || best == Kind::zstd || (best == Kind::tar && o.content_type == ContentType::kubevirt)) {
      if (depth >= k_max_layers)
        return fail(Errc::limit, "more than " + std::to_string(k_max_layers) + " nested layers (" + d.chain.back() + ")");
      std::unique_ptr<io::Reader> next;
      if (best == Kind::gzip) next = CDI_TRY(formats::gzip::open(std::move(d.top), codec));
      if (best == Kind::xz) next = CDI_TRY(formats::xz::open(std::move(d.top), codec));
      if (best == Kind::zstd) next = CDI_TRY(formats::zstd::open(std::move(d.top), codec));
      if (best == Kind::tar) {
        formats::tar::EntryOptions eo;
        eo.entry = o.tar_entry;
        eo.cancel = o.cancel;
        next = CDI_TRY(formats::tar::open_entry(std::move(d.top), eo));
      }
      d.chain.push_back(next->info().name);
      d.top = std::make_unique<io::PeekReader>(std::move(next));
      layered = true;
      continue;
    }
    if (best == Kind::tar) {  // archive content type
      d.tar = true;
      d.chain.push_back("tar");
      return d;
    }
    d.format = best == Kind::disk ? disk.format : DiskFormat::raw;
    if (!layered && src_info.seekable && src_info.path) d.direct_path = src_info.path;
    return d;
  }
}


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
    b.what = "--image-size";
  }
  return b;
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

Result<void> refuse_format(DiskFormat f) {
  return fail(Errc::unsupported, "image format " + std::string(formats::disk::name(f)) +
                                     " is not supported (supported: raw, qcow2, vmdk, vhd, vhdx, vdi)");
}

// An archive is extracted into a staging directory inside the target directory and moved into
// place only once the whole stream (and --checksum) has been verified: a failed import never leaves
// a partial tree. Destroying an uncommitted stage removes what it holds (and the target directory
// when this import created it). The staging directory is sink::StagingDir (lib/sink/leftovers.hpp):
// recognisably ours, so the next import removes one left by a killed run before it starts.
class ArchiveStage {
 public:
  ~ArchiveStage() {
    std::error_code ec;
    if (m_stage) m_stage->remove();
    if (m_created_dest && !m_committed) fs::remove(m_dest, ec);   // only when still empty
  }
  Result<void> open(const fs::path& dest) {
    m_dest = dest;
    struct stat st;
    if (::stat(dest.c_str(), &st) != 0) {
      if (errno != ENOENT) return fail_sys(dest.string());
      if (::mkdir(dest.c_str(), 0755) != 0) return fail_sys("creating " + dest.string());
      m_created_dest = true;
    } else if (!S_ISDIR(st.st_mode)) {
      return fail(Errc::invalid_argument, dest.string() + " is not a directory (content type archive extracts into a directory)");
    } else {
      (void)sink::remove_stale_staging_dirs(dest);   // a killed import's stage; failing to clean up is not fatal
    }
    m_stage = CDI_TRY(sink::StagingDir::create(dest));
    return {};
  }
  // Where the archive is extracted.
  fs::path path() const { return m_stage->tree(); }
  // Moves the staged tree into the target: directories are merged, anything else replaces what
  // has the same name (as tar does when extracting over existing files).
  Result<void> commit() {
    CDI_TRY(merge(m_stage->tree(), m_dest));
    m_stage->remove();
    m_stage.reset();
    m_committed = true;
    return {};
  }

 private:
  static Result<void> merge(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    for (fs::directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
      fs::path target = to / it->path().filename();
      auto src_status = it->symlink_status();
      auto dst_status = fs::symlink_status(target, ec);
      ec.clear();
      if (fs::is_directory(src_status) && fs::is_directory(dst_status)) {
        CDI_TRY(merge(it->path(), target));
        continue;
      }
      if (fs::exists(dst_status)) fs::remove_all(target, ec);
      if (ec) return fail(Errc::io, "replacing " + target.string() + ": " + ec.message());
      if (::rename(it->path().c_str(), target.c_str()) != 0) return fail_sys("moving into " + target.string());
    }
    if (ec) return fail(Errc::io, "reading " + from.string() + ": " + ec.message());
    return {};
  }
  fs::path m_dest;
  std::unique_ptr<sink::StagingDir> m_stage;
  bool m_created_dest = false;
  bool m_committed = false;
};

Result<void> import_archive(Detected& d, const ImportOptions& o, ImportReport& rep, ArchiveStage& stage) {
  CDI_TRY(stage.open(fs::path(o.dest)));
  set_phase(o, Phase::transferring);
  formats::tar::ExtractOptions eo;
  eo.cancel = o.cancel;
  auto stats = CDI_TRY(formats::tar::extract(*d.top, stage.path(), eo));
  rep.files_extracted = stats.files;
  rep.bytes_written = stats.bytes;
  rep.converter = "extract";
  rep.target_kind = "directory";
  rep.format = "tar";
  return {};
}

// A CDI host-assisted clone (content types blockdevice_clone / filesystem_clone, import.hpp):
// wire → snappy → (raw | tar extraction | tar entry disk.img) → target. Nothing is probed: a
// device whose first bytes look like QCOW2 is still copied byte for byte, and neither scratch
// space nor qemu-img is ever used. The snappy framing has no end marker: the source must fail at
// a cut (the upload server's request body does), and the stages read their input to its end.
Result<void> import_clone(std::unique_ptr<io::Reader> wire, const ImportOptions& o, ImportReport& rep,
                          const std::function<Result<void>()>& verify_checksum) {
  formats::CodecOptions codec{o.threads, o.cancel};
  rep.chain.push_back(wire->info().name);
  std::unique_ptr<io::Reader> top = CDI_TRY_CTX(formats::snappy::open(std::move(wire), codec), o.url);
  rep.chain.push_back(top->info().name);
  rep.converter = "clone";
  const bool block = sink::is_block_device(o.dest);
  std::error_code ec;
  const bool dir = !block && fs::is_directory(o.dest, ec);

  if (o.content_type == ContentType::filesystem_clone && !block) {
    // file → file: the whole tar, staged and merged into the target directory once it is complete
    // and verified (as content type archive).
    rep.chain.push_back("tar");
    rep.format = "tar";
    fs::path into = dir ? fs::path(o.dest) : fs::path(o.dest).parent_path();
    if (into.empty()) into = ".";
    ArchiveStage stage;
    CDI_TRY_CTX(stage.open(into), o.url);
    set_phase(o, Phase::transferring);
    formats::tar::ExtractOptions eo;
    eo.cancel = o.cancel;
    auto stats = CDI_TRY_CTX(formats::tar::extract(*top, stage.path(), eo), o.url);
    rep.files_extracted = stats.files;
    rep.bytes_written = stats.bytes;
    if (o.cancel) CDI_TRY(o.cancel->check());
    CDI_TRY_CTX(verify_checksum(), o.url);
    set_phase(o, Phase::finishing);
    CDI_TRY_CTX(stage.commit(), into.string());
    rep.target_kind = "directory";
    // CDI's fileToFileCloneProcessor reports preallocation as applied, whatever PREALLOCATION says.
    rep.preallocation_applied = true;
    return {};
  }

  if (o.content_type == ContentType::filesystem_clone) {
    // file → block: the tar's disk.img onto the device; the rest of the archive is read and checked.
    formats::tar::EntryOptions eo;
    eo.entry = "disk.img";
    eo.cancel = o.cancel;
    top = CDI_TRY_CTX(formats::tar::open_entry(std::move(top), eo), o.url);
    rep.chain.push_back(top->info().name);
  }
  rep.format = "raw";
  rep.chain.push_back("raw");
  // block → file lands in disk.img. The file is the source's size (no resize, as CDI's
  // StreamDataToFile); a device keeps whatever lies past the source's end.
  const fs::path dest = dir ? fs::path(o.dest) / "disk.img" : fs::path(o.dest);
  sink::SinkOptions so;
  so.preallocate = o.preallocate;
  auto target = CDI_TRY(sink::open_sink(dest, so));
  auto result = [&]() -> Result<void> {
    auto bound = image_bound(o, *target);
    if (auto known = top->info().size; known && bound.size && *known > *bound.size)
      return fail(Errc::limit, Reason::too_small, "clone source is larger than " + bound.what + " (" + std::to_string(*known) + " > " +
                                   std::to_string(*bound.size) + " bytes)");
    set_phase(o, Phase::transferring);
    CopyOptions co;
    co.max_size = bound.size;
    co.max_size_what = bound.what;
    co.detect_fixed_vhd = false;   // verbatim
    co.progress = o.progress;
    co.cancel = o.cancel;
    auto copied = CDI_TRY_CTX(copy_raw(*top, *target, co), o.url);
    rep.image_size = copied.image_size;
    if (o.cancel) CDI_TRY(o.cancel->check());
    CDI_TRY_CTX(verify_checksum(), o.url);
    set_phase(o, Phase::finishing);
    CDI_TRY_CTX(target->finish(rep.image_size), dest.string());
    return {};
  }();
  if (!result) {
    target->abort();
    return std::unexpected(std::move(result).error());
  }
  auto st = target->stats();
  rep.bytes_written = st.bytes_written;
  rep.bytes_zero = st.bytes_holes + st.bytes_zeroed;
  rep.target_kind = target->info().kind;
  // CDI's cloneProcessor reports false on these paths (StreamDataToFile still honours preallocation).
  rep.preallocation_applied = false;
  return {};
}

// Forwards to the target and counts guest bytes made final, for progress.
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

Result<void> import_qcow2_native(Detected& d, const ImportOptions& o, sink::Sink& target, ImportReport& rep) {
  auto bound = image_bound(o, target);
  auto head = CDI_TRY(d.top->peek(formats::k_probe_bytes));
  auto info = CDI_TRY(formats::qcow2::inspect(head));
  if (bound.size && info.virtual_size > *bound.size)
    return fail(Errc::limit, Reason::too_small, "virtual image size " + std::to_string(info.virtual_size) + " (" +
                                 util::format_bytes(info.virtual_size) + ") is larger than " + bound.what + " (" +
                                 std::to_string(*bound.size) + ")");
  if (o.progress) o.progress->total_written.store(static_cast<int64_t>(info.virtual_size));
  formats::qcow2::DecodeOptions qo;
  qo.hold_limit = o.hold_limit;
  qo.scratch_dir = o.scratch_dir;
  qo.max_virtual_size = bound.size;
  qo.threads = o.threads;
  qo.cancel = o.cancel;
  set_phase(o, Phase::transferring);
  // The decoder reads and decompresses; a writer thread issues the target's syscalls meanwhile.
  sink::AsyncSink async(target);
  ProgressSink counted(async, o.progress);
  auto st = CDI_TRY(formats::qcow2::decode(*d.top, counted, qo));
  CDI_TRY(async.drain());
  rep.image_size = st.virtual_size;
  rep.held_peak = st.held_peak;
  rep.spilled_bytes = st.spilled_bytes;
  rep.scratch_bytes = st.spilled_bytes;
  rep.converter = "native";
  return {};
}

Result<void> import_with_qemu(Detected& d, const ImportOptions& o, sink::Sink& target, ImportReport& rep) {
  const std::string fmt(formats::disk::qemu_driver(d.format));
  QemuRunOptions qo;
  qo.cancel = o.cancel;
  std::string src;
  std::unique_ptr<ScratchFile> spool;
  std::unique_ptr<NbdkitCurl> nbd;
  // An uncompressed image on a server that serves byte ranges, and no scratch space: qemu-img reads
  // it in place through nbdkit's curl plugin. With --scratch-dir the spool is used: one sequential
  // download was faster than Range reads in bench/http.sh (streamOptimized VMDK 2.5x, VHDX 1.2x).
  // Not with --checksum: the digest needs the stream.
  auto top_info = d.top->info();
  std::optional<std::string> why_not_in_place;
  if (!d.direct_path && d.chain.size() == 1 && top_info.range_url && !o.checksum && !o.scratch_dir) {
    why_not_in_place = NbdkitCurl::unsupported_reason(o.http);
    if (!why_not_in_place) {
      // nbdkit's 32 MiB read cache lives in memory (/dev/shm), not on the scratch volume.
      fs::path cache_dir = ::access("/dev/shm", W_OK) == 0 ? fs::path("/dev/shm") : fs::temp_directory_path();
      auto started = NbdkitCurl::start(*top_info.range_url, o.http, cache_dir, o.cancel);
      if (started) {
        nbd = std::move(*started);
        log(o, "reading " + fmt + " in place with Range requests through nbdkit-curl (no scratch)");
        d.top.reset();   // closes our own GET
      } else if (started.error().code() == Errc::not_found) {
        why_not_in_place = started.error().what();
      } else {
        return std::unexpected(std::move(started).error().context("nbdkit"));
      }
    }
  } else if (!d.direct_path && d.chain.size() == 1 && top_info.range_url && o.checksum) {
    why_not_in_place = "--checksum needs the whole stream";
  }
  if (nbd) {
    src = nbd->uri();
  } else if (d.direct_path) {
    src = *d.direct_path;
  } else {
    if (!o.scratch_dir)
      return std::unexpected(
          Error(Errc::scratch_required, Reason::scratch_required,
                "scratch space required: " + fmt + " from a stream (" + chain_text(d.chain) + ") needs random access" +
                    (why_not_in_place ? " (not read in place: " + *why_not_in_place + ")" : std::string()))
              .with_hint("; pass --scratch-dir DIR"));
    if (why_not_in_place) log(o, "not reading in place: " + *why_not_in_place);
    spool = CDI_TRY(ScratchFile::create(*o.scratch_dir));
    set_phase(o, Phase::spooling);
    log(o, "spooling " + chain_text(d.chain) + " to scratch in " + o.scratch_dir->string());
    CopyOptions co;
    co.detect_fixed_vhd = false;
    co.cancel = o.cancel;
    auto copied = CDI_TRY_CTX(copy_raw(*d.top, *spool, co), "spooling to scratch");
    CDI_TRY(spool->finish(copied.image_size));
    rep.scratch_bytes = spool->allocated_bytes();
    src = spool->child_path();
    qo.keep_fds.push_back(spool->fd());
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
  if (fmt == "qcow2") CDI_TRY(qemu_check_qcow2(src, qo));
  // Everything the source holds was consumed (drained by the spool, or never read for a
  // direct file): upstream checks such as a compressed stream's CRC have run.
  CDI_TRY(target.prepare_direct(info.virtual_size));
  auto path = target.direct_path();
  if (!path) return fail(Errc::internal, "target cannot be written by qemu-img");
  // A file target without a name yet (O_TMPFILE): qemu-img opens it as /proc/self/fd/N.
  for (int fd : target.direct_fds()) qo.keep_fds.push_back(fd);
  ConvertTarget ct;
  ct.path = *path;
  ct.block_device = target.info().kind == "block";
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
  rep.converter = nbd ? "qemu-img over nbdkit-curl" : "qemu-img";
  return {};
}

}  // namespace

Result<ImportReport> run_import(const ImportOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  ImportReport rep;
  std::atomic<uint64_t> local_read{0};
  std::atomic<uint64_t>& read_counter = o.progress ? o.progress->bytes_read : local_read;
  set_phase(o, Phase::probing);

  auto src = CDI_TRY_CTX(open_source(o), o.url);
  rep.labels = src->info().labels;
  if (auto sz = src->info().size; sz && o.progress) o.progress->total_read.store(static_cast<int64_t>(*sz));
  std::unique_ptr<io::Reader> counted = std::make_unique<io::CountingReader>(std::move(src), read_counter);
  // --checksum: a tee right above the wire bytes; verified before anything is converted or committed.
  std::shared_ptr<io::HashTap> tap;
  if (o.checksum) {
    auto [hashing, t] = CDI_TRY(io::HashingReader::open(std::move(counted), o.checksum->algo));
    counted = std::move(hashing);
    tap = std::move(t);
  }
  auto verify_checksum = [&]() -> Result<void> {
    if (!tap) return {};
    set_phase(o, Phase::validating);
    CDI_TRY_CTX(tap->verify(*o.checksum), "checksum validation failed");
    rep.checksum_verified = o.checksum->text();
    log(o, "Checksum verification passed: " + rep.checksum_verified);
    tap.reset();
    return {};
  };
  auto finish_report = [&] {
    rep.bytes_read = read_counter.load();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    set_phase(o, Phase::done);
  };
  rep.content_type = o.content_type;
  if (is_clone(o.content_type)) {
    CDI_TRY(import_clone(std::move(counted), o, rep, verify_checksum));
    finish_report();
    return rep;
  }

  auto d = CDI_TRY_CTX(detect(std::move(counted), o), o.url);
  rep.chain = d.chain;
  rep.format = d.tar ? "tar" : std::string(formats::disk::name(d.format));
  if (!d.tar) rep.chain.push_back(rep.format);
  log(o, "detected " + chain_text(rep.chain));

  if (o.content_type == ContentType::archive) {
    if (!d.tar)
      return fail(Errc::unsupported, o.url + ": content type archive needs a tar archive, found " +
                                         chain_text(rep.chain));
    ArchiveStage stage;
    CDI_TRY_CTX(import_archive(d, o, rep, stage), o.url);
    // The digest covers the whole stream, also what tar left unread (CDI hashed only what tar read).
    CDI_TRY_CTX(verify_checksum(), o.url);
    if (o.cancel) CDI_TRY(o.cancel->check());
    set_phase(o, Phase::finishing);
    CDI_TRY_CTX(stage.commit(), o.dest);
    finish_report();
    return rep;
  }
  if (formats::disk::refused(d.format)) return std::unexpected(refuse_format(d.format).error().context(o.url));

  sink::SinkOptions so;
  so.min_size = o.resize_to.value_or(o.image_size.value_or(0));
  so.preallocate = o.preallocate;
  auto target = CDI_TRY(sink::open_sink(o.dest, so));
  auto result = [&]() -> Result<void> {
    auto bound = image_bound(o, *target);
    if (o.image_size && target->info().capacity && *o.image_size > *target->info().capacity)
      return fail(Errc::limit, Reason::too_small, "--image-size " + std::to_string(*o.image_size) + " is larger than the device " +
                                   o.dest + " (" + std::to_string(*target->info().capacity) + " bytes)");
    if (d.format == DiskFormat::qcow2 && !o.qcow2_via_qemu_img) {
      CDI_TRY_CTX(import_qcow2_native(d, o, *target, rep), o.url);
    } else if (formats::disk::needs_conversion(d.format)) {
      // qemu-img reads a local file by path: verify it first, so a bad image is never converted.
      if (d.direct_path) CDI_TRY_CTX(verify_checksum(), o.url);
      CDI_TRY_CTX(import_with_qemu(d, o, *target, rep), o.url);
    } else {
      // A raw stream of known length (a local file, a tar entry) that cannot fit is refused
      // before anything is written.
      if (auto known = d.top->info().size; known && bound.size && *known > *bound.size) {
        uint64_t image = d.direct_path ? local_raw_image_size(*d.direct_path, *known) : *known;
        if (image > *bound.size)
          return fail(Errc::limit, Reason::too_small, "image is larger than " + bound.what + " (" + std::to_string(image) + " > " +
                                       std::to_string(*bound.size) + " bytes)");
      }
      set_phase(o, Phase::transferring);
      CopyOptions co;
      co.max_size = bound.size;
      co.max_size_what = bound.what;
      co.progress = o.progress;
      co.cancel = o.cancel;
      auto copied = CDI_TRY_CTX(copy_raw(*d.top, *target, co), o.url);
      if (copied.fixed_vhd) {
        rep.chain.back() = "vhd(fixed)";
        rep.format = "vhd";
      }
      rep.image_size = copied.image_size;
      rep.converter = "stream";
    }
    // A signal that arrived while the last bytes were read still cancels: never finish then.
    if (o.cancel) CDI_TRY(o.cancel->check());
    // Every byte of the source has been through the digest (a stream's rest is drained here).
    CDI_TRY_CTX(verify_checksum(), o.url);
    set_phase(o, Phase::finishing);
    CDI_TRY_CTX(target->finish(rep.image_size), o.dest);
    return {};
  }();
  if (!result) {
    target->abort();
    return std::unexpected(std::move(result).error());
  }
  auto st = target->stats();
  rep.bytes_written = st.bytes_written;
  rep.bytes_zero = st.bytes_holes + st.bytes_zeroed;
  if (rep.converter.starts_with("qemu-img")) {
    rep.bytes_written = std::min(rep.qemu_allocated, rep.image_size);
    rep.bytes_zero = rep.image_size - rep.bytes_written;
  }
  rep.target_kind = target->info().kind;
  rep.preallocation_applied = o.preallocate;
  finish_report();
  return rep;
}

Result<InspectReport> inspect(const ImportOptions& o) {
  InspectReport rep;
  if (is_clone(o.content_type))
    return fail(Errc::unsupported, "clone content types are only received by the upload server; nothing to inspect");
  auto src = CDI_TRY_CTX(open_source(o), o.url);
  rep.source_size = src->info().size;
  rep.labels = src->info().labels;
  auto d = CDI_TRY_CTX(detect(std::move(src), o), o.url);
  rep.chain = d.chain;
  rep.format = d.tar ? "tar" : std::string(formats::disk::name(d.format));
  if (!d.tar) rep.chain.push_back(rep.format);
  if (d.tar) {
    rep.converter = "extract";
    return rep;
  }
  if (formats::disk::refused(d.format)) return std::unexpected(refuse_format(d.format).error().context(o.url));
  if (d.format == DiskFormat::qcow2 && !o.qcow2_via_qemu_img) {
    auto head = CDI_TRY_CTX(d.top->peek(formats::k_probe_bytes), o.url);
    auto info = CDI_TRY_CTX(formats::qcow2::inspect(head), o.url);
    rep.virtual_size = info.virtual_size;
    rep.converter = "native";
    return rep;
  }
  if (formats::disk::needs_conversion(d.format)) {
    rep.converter = "qemu-img";
    if (d.direct_path) {
      auto info = CDI_TRY_CTX(qemu_info(std::string(formats::disk::qemu_driver(d.format)), *d.direct_path, {}), o.url);
      rep.virtual_size = info.virtual_size;
    } else if (d.chain.size() == 1 && d.top->info().range_url && !o.checksum && !o.scratch_dir &&
               !NbdkitCurl::unsupported_reason(o.http)) {
      rep.converter = "qemu-img over nbdkit-curl";   // read in place with Range requests
    } else {
      rep.scratch_required = true;
      rep.scratch_reason = std::string(formats::disk::qemu_driver(d.format)) + " from a stream needs random access";
    }
    return rep;
  }
  rep.converter = "stream";
  auto top = d.top->info();
  if (d.direct_path || (top.size && d.chain.size() >= 2 && d.chain.back().rfind("tar[", 0) == 0))
    rep.virtual_size = top.size;
  if (d.direct_path && top.size) {
    // A fixed VHD is raw data + a footer: look at the last 512 bytes of the local file.
    bool fixed = false;
    uint64_t sz = local_raw_image_size(*d.direct_path, *top.size, &fixed);
    if (fixed) {
      rep.chain.back() = "vhd(fixed)";
      rep.format = "vhd";
      rep.virtual_size = sz;
    }
  }
  return rep;
}

}  // namespace cdi::pipeline
