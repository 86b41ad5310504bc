// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/plan.hpp"

#include "formats/registry.hpp"
#include "lib/util/units.hpp"

namespace cdi::pipeline {
namespace {

using formats::disk::DiskFormat;

void because(Plan& p, std::string why) { p.reasons.push_back(std::move(why)); }

// The format table's needs for the image's format (random access for what qemu-img converts).
bool needs_random_access(DiskFormat f) { return formats::needs_of(f).random_access_input; }

// A qcow2 image alone on a server that serves byte ranges, its tables read by ranges before
// planning: streamed when what the stream would hold fits the hold limit (one sequential
// download), else decoded by Range requests (nothing held, no scratch, offered or not). A checksum
// needs the whole stream: it is verified on the stream first, then the image is read by ranges.
bool plan_qcow2_http_ranges(Plan& p, const SourceFacts& s, const DetectedFacts& d, const PlanOptions& o) {
  if (d.stages.size() != 1 || !s.range_url || !d.qcow2_stream_hold) return false;
  const std::string held = util::format_bytes(*d.qcow2_stream_hold);
  if (*d.qcow2_stream_hold <= o.hold_limit) {
    because(p, "qcow2: its tables were read by HTTP ranges: one stream holds at most " + held +
                   ", within the hold limit (" + util::format_bytes(o.hold_limit) + "): streamed in one download");
    p.access = Access::sequential;
    p.needs.memory = o.hold_limit;
    return true;
  }
  p.access = Access::http_ranges;
  p.needs.random_access = true;
  because(p, "qcow2: its tables were read by HTTP ranges: one stream would hold " + held + ", more than the hold limit (" +
                 util::format_bytes(o.hold_limit) + "): the native decoder reads the data in file order with Range "
                 "requests pinned to the first response's validator (nothing held, no scratch)");
  if (o.checksum) because(p, "the checksum needs the whole stream: it is verified on the stream first, then the image "
                             "is read again by ranges");
  return true;
}

// A qcow2 image that cannot be seeked but can be read again (HTTP without usable ranges, a
// compressed qcow2 from a file or over HTTP) when no scratch is offered: one stream first, holding
// up to the hold limit (most images — qemu-img convert's own layout — need a few MiB at most, and
// a second read would cost a second download and decompression); when the hold would overflow,
// that stream is abandoned and the image is read twice from the start — the first read keeps only
// the tables, the second writes the data as they pass (nothing held, no scratch, whatever the
// layout). Not when the stream is known to fit the hold limit, nor with scratch offered (one read,
// spilling what the hold limit cannot keep).
bool plan_qcow2_two_reads(Plan& p, const SourceFacts& s, const DetectedFacts& d, const PlanOptions& o) {
  if (!s.rereadable || o.scratch_offered) return false;
  if (d.top_size && *d.top_size <= o.hold_limit) return false;
  p.access = Access::two_reads;
  p.needs.second_read = true;
  p.needs.memory = o.hold_limit;   // the first stream's hold, before it is abandoned
  std::string what = d.stages.size() > 1 ? "the image is inside " + chain_text(std::vector(d.stages.begin() + 1, d.stages.end()))
                     : s.path                ? "a local file"
                     : s.content_addressed   ? "a containerDisk layer"
                                             : "the server does not serve byte ranges";
  because(p, "qcow2: the source cannot be seeked (" + what + ") but can be read again, and no scratch is offered: "
             "the native decoder streams it once, holding data that precede their L2 tables up to the hold limit (" +
             util::format_bytes(o.hold_limit) + "); if that would not do, it reads the image twice from the start, "
             "the tables first, then the data in file order (nothing held, no scratch, "
             "whatever the layout; the second read is pinned to the first one's " +
             (s.path                ? std::string("size and mtime")
              : s.content_addressed ? std::string("manifest digest and layer digest")
                                    : std::string("validator")) + ")");
  if (o.checksum) because(p, "the checksum is verified on the first read, before the second one");
  return true;
}

void plan_qcow2_native(Plan& p, const SourceFacts& s, const DetectedFacts& d, const PlanOptions& o) {
  p.converter = Converter::qcow2_native;
  if (d.stages.size() == 1 && s.seekable && s.path) {
    // Positioned reads: the tables first, then the data in file order. Whatever the layout
    // (qemu-img convert -c puts the data before the L2 tables), nothing is held or spilled.
    p.access = Access::local_file;
    p.needs.random_access = true;
    because(p, "qcow2: the source is a local file: the native decoder reads its header, L1 and L2 tables, "
               "then the data in file order with positioned reads (nothing held, no scratch, whatever the layout)");
    if (d.qcow2_stream_hold)
      because(p, "its tables were read: one stream would hold " + util::format_bytes(*d.qcow2_stream_hold));
    if (o.checksum) because(p, "the checksum is verified before the decoder reads the file");
    return;
  }
  if (plan_qcow2_http_ranges(p, s, d, o)) return;
  if (plan_qcow2_two_reads(p, s, d, o)) return;
  p.access = Access::sequential;
  p.needs.memory = o.hold_limit;
  because(p, "qcow2: the native decoder streams it in one pass (no qemu-img, no random access)");
  because(p, "data that precede their L2 tables are held in memory, up to the hold limit (" +
                 util::format_bytes(o.hold_limit) + ")");
  p.needs.scratch_when = "only if data precede their L2 tables by more than the hold limit";
  because(p, "scratch " + p.needs.scratch_when +
                 (o.scratch_offered ? ": they spill to the scratch directory"
                                    : ": none offered, the import would then fail with scratch required"));
}

void plan_qemu_img(Plan& p, const SourceFacts& s, const DetectedFacts& d, const PlanOptions& o) {
  const std::string fmt(p.qemu_driver());
  p.needs.random_access = true;
  if (p.disk_format == DiskFormat::qcow2) because(p, "qcow2: qemu-img chosen as the decoder");
  const bool layered = d.stages.size() > 1;
  if (!layered && s.seekable && s.path) {
    p.converter = Converter::qemu_img_local;
    p.access = Access::local_file;
    because(p, fmt + " needs random access; the source is a local file: qemu-img reads it in place");
    if (o.checksum) because(p, "the checksum is verified before qemu-img reads the file");
    return;
  }
  // An uncompressed image on a server that serves byte ranges, and no scratch space: qemu-img reads
  // it in place through nbdkit's curl plugin. With scratch the spool is used: one sequential
  // download was faster than Range reads in bench/http.sh (streamOptimized VMDK 2.5x, VHDX 1.2x).
  // Not with a checksum: the digest needs the stream.
  if (!layered && s.range_url) {
    if (o.checksum) {
      p.not_in_place = "--checksum needs the whole stream";
    } else if (!o.scratch_offered) {
      if (!o.nbdkit_unavailable) {
        p.converter = Converter::qemu_img_nbdkit;
        p.access = Access::http_ranges;
        because(p, fmt + " from a stream needs random access; the server serves byte ranges and no scratch is "
                         "offered: nbdkit-curl reads it in place");
        return;
      }
      p.not_in_place = o.nbdkit_unavailable;
      if (o.nbdkit_fallback) because(p, "fallback: nbdkit-curl could not start (" + *o.nbdkit_unavailable + ")");
    } else {
      because(p, "the server serves byte ranges, but with scratch offered one sequential download is faster "
                 "than Range reads (bench/http.sh)");
    }
  } else if (layered && s.range_url) {
    because(p, "not read in place: the image is inside " + chain_text(std::vector(d.stages.begin() + 1, d.stages.end())));
  }
  p.converter = Converter::qemu_img_spool;
  p.access = Access::scratch_spool;
  p.needs.scratch = true;
  p.needs.scratch_estimate = d.top_size;
  p.scratch_reason = fmt + " from a stream needs random access";
  if (p.not_in_place) because(p, "not read in place: " + *p.not_in_place);
  if (o.scratch_offered) {
    because(p, p.scratch_reason + ": the stream is spooled to scratch, then converted");
    return;
  }
  because(p, p.scratch_reason + " and no scratch is offered: scratch space required");
  p.refusal = Error(Errc::scratch_required, Reason::scratch_required,
                    "scratch space required: " + fmt + " from a stream (" + chain_text(d.stages) + ") needs random access" +
                        (p.not_in_place ? " (not read in place: " + *p.not_in_place + ")" : std::string()))
                  .with_hint("; pass --scratch-dir DIR");
}

}  // namespace

std::string_view to_string(Converter c) {
  switch (c) {
    case Converter::stream: return "stream";
    case Converter::qcow2_native: return "native";
    case Converter::qemu_img_local: return "qemu-img";
    case Converter::qemu_img_nbdkit: return "qemu-img over nbdkit-curl";
    case Converter::qemu_img_spool: return "qemu-img";
    case Converter::extract: return "extract";
    case Converter::clone: return "clone";
  }
  return "unknown";
}

std::string_view describe(Converter c) {
  switch (c) {
    case Converter::stream: return "stream copy";
    case Converter::qcow2_native: return "native qcow2 decoder";
    case Converter::qemu_img_local: return "qemu-img on the local file";
    case Converter::qemu_img_nbdkit: return "qemu-img over nbdkit-curl";
    case Converter::qemu_img_spool: return "qemu-img from a scratch spool";
    case Converter::extract: return "tar extraction";
    case Converter::clone: return "clone copy";
  }
  return "unknown";
}

std::string_view to_string(Access a) {
  switch (a) {
    case Access::sequential: return "sequential";
    case Access::local_file: return "random access on the local file";
    case Access::http_ranges: return "random access with HTTP Range requests";
    case Access::scratch_spool: return "random access on a scratch spool";
    case Access::two_reads: return "two sequential reads (the tables, then the data in file order)";
  }
  return "unknown";
}

std::string_view to_string(TargetKind t) {
  switch (t) {
    case TargetKind::unknown: return "";
    case TargetKind::file: return "file";
    case TargetKind::block: return "block";
    case TargetKind::directory: return "directory";
  }
  return "";
}

SourceFacts SourceFacts::from(const io::ReaderInfo& info) {
  SourceFacts f;
  f.name = info.name;
  f.seekable = info.seekable;
  f.path = info.path;
  f.size = info.size;
  f.range_url = info.range_url;
  f.validator = info.validator;
  f.pinned_url = info.pinned_url;
  f.content_addressed = info.content_addressed;
  const bool http = info.name == "http" || info.name == "https";
  f.rereadable = (info.seekable && info.path.has_value()) ||
                 ((http || info.content_addressed) && info.validator && info.pinned_url);
  return f;
}

std::string chain_text(const std::vector<std::string>& chain) {
  std::string s;
  for (const auto& c : chain) {
    if (!s.empty()) s += " > ";
    s += c;
  }
  return s;
}

void note_fixed_vhd(Plan& p) {
  if (p.format == "vhd") return;
  if (!p.stages.empty()) p.stages.back() = "vhd(fixed)";
  p.format = "vhd";
  because(p, "a fixed VHD is raw data and a 512-byte footer: the data are streamed, the footer dropped");
}

Plan plan_import(const SourceFacts& s, const DetectedFacts& d, const PlanOptions& o) {
  Plan p;
  if (!o.memory.empty()) because(p, "memory budget: " + o.memory);
  p.content_type = o.content_type;
  p.target = o.target;
  p.stages = d.stages;
  p.disk_format = d.format;
  if (d.tar_archive) {
    p.stages.push_back("tar");
    p.format = "tar";
  } else {
    p.format = std::string(formats::disk::name(d.format));
    p.stages.push_back(p.format);
  }

  if (o.content_type == ContentType::archive) {
    if (!d.tar_archive) {
      because(p, "content type archive needs a tar archive");
      p.refusal = Error(Errc::unsupported, "content type archive needs a tar archive, found " + chain_text(p.stages));
      return p;
    }
    p.converter = Converter::extract;
    p.target = TargetKind::directory;
    because(p, "content type archive: the tar is extracted into a staging directory and moved into place");
    if (o.checksum) because(p, "the checksum covers the whole stream and is verified before the tree is moved into place");
    return p;
  }
  if (formats::disk::refused(d.format)) {
    because(p, "image format " + p.format + " is refused");
    p.refusal = Error(Errc::unsupported, "image format " + p.format +
                                             " is not supported (supported: raw, qcow2, vmdk, vhd, vhdx, vdi)");
    return p;
  }
  if (d.format == DiskFormat::qcow2 && !o.qcow2_via_qemu_img) {
    plan_qcow2_native(p, s, d, o);
  } else if (needs_random_access(d.format)) {
    plan_qemu_img(p, s, d, o);
  } else {
    p.converter = Converter::stream;
    p.access = Access::sequential;
    because(p, d.format == DiskFormat::iso ? "iso is raw data: copied as it streams" : "raw: copied as it streams");
    if (d.fixed_vhd) note_fixed_vhd(p);
  }
  if (o.checksum && p.access != Access::local_file && p.access != Access::two_reads &&
      !(p.converter == Converter::qcow2_native && p.access == Access::http_ranges))
    because(p, "the checksum needs the whole stream: verified before the target is committed");
  return p;
}

Plan plan_clone(const SourceFacts& s, const PlanOptions& o, bool block_target) {
  Plan p;
  p.content_type = o.content_type;
  p.converter = Converter::clone;
  p.access = Access::sequential;
  p.stages = {s.name, "snappy"};
  because(p, "host-assisted clone body: snappy-framed, never probed, never scratch or qemu-img");
  if (o.content_type == ContentType::filesystem_clone && !block_target) {
    p.stages.push_back("tar");
    p.format = "tar";
    p.target = TargetKind::directory;
    because(p, "a filesystem clone onto a filesystem: the tar is extracted and moved into place");
    return p;
  }
  if (o.content_type == ContentType::filesystem_clone) {
    p.stages.push_back("tar[disk.img]");
    because(p, "a filesystem clone onto a block device: the tar's disk.img is written to the device");
  } else {
    because(p, "a block device clone: the raw bytes are written verbatim");
  }
  p.format = "raw";
  p.stages.push_back("raw");
  p.target = block_target ? TargetKind::block : TargetKind::file;
  if (o.checksum) because(p, "the checksum needs the whole stream: verified before the target is committed");
  return p;
}

}  // namespace cdi::pipeline
