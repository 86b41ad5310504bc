// SPDX-License-Identifier: Apache-2.0
// The plan of one import: which converter, how it reads its input, what it needs and why.
// `plan_import` / `plan_clone` are PURE: they take the facts (the source's ReaderInfo, the
// detected chain, the options) and decide; nothing else in the pipeline decides. run_import
// executes the plan (import.cpp), inspect returns it, `cdi-import info` prints it, and the
// ImportReport carries the plan that was executed (with a fallback recorded when nbdkit-curl could
// not start).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "formats/disk/disk_probe.hpp"
#include "lib/io/reader.hpp"
#include "lib/util/error.hpp"

namespace cdi::pipeline {

// kubevirt: a disk image (probed: compression, tar, disk format). archive: a tar extracted into a
// directory. The two clone kinds are the body of a CDI host-assisted clone upload
// (x-cdi-content-type), snappy-framed and never probed:
//   blockdevice_clone: the raw content of the source device, written verbatim to the target (the
//     block device, or disk.img on a filesystem target: dest, or dest/disk.img when dest is a
//     directory);
//   filesystem_clone: a tar of the source filesystem (GNU `tar -S`, sparse members). On a block
//     target its entry disk.img is written to the device; otherwise the whole tar is extracted
//     (hardened, formats/tar/extract.hpp) into dest when it is a directory, else into dest's parent
//     directory (CDI: /data for /data/disk.img).
enum class ContentType { kubevirt, archive, blockdevice_clone, filesystem_clone };

constexpr bool is_clone(ContentType t) {
  return t == ContentType::blockdevice_clone || t == ContentType::filesystem_clone;
}

// How the image reaches the target.
enum class Converter {
  stream,            // raw / iso (and fixed VHD): copied as it streams (copy_loop)
  qcow2_native,      // the streaming qcow2 decoder (formats/qcow2)
  qemu_img_local,    // qemu-img convert reading the local source file in place
  qemu_img_nbdkit,   // qemu-img convert reading the HTTP(S) source in place through nbdkit-curl
  qemu_img_spool,    // qemu-img convert reading a spool of the stream in the scratch directory
  extract,           // a tar extracted into the target directory
  clone,             // a host-assisted clone body copied (or extracted) verbatim
};
// The report's converter: "stream", "native", "qemu-img", "qemu-img over nbdkit-curl",
// "extract", "clone" (qemu-img on a local file and from a spool both print "qemu-img").
std::string_view to_string(Converter c);
// A longer description for `info`'s plan section: "qemu-img from a scratch spool".
std::string_view describe(Converter c);

// What the converter needs from its input.
enum class Access {
  sequential,    // one pass over the stream
  local_file,    // random access on the local source file
  http_ranges,   // random access with HTTP Range requests (nbdkit-curl, or the native qcow2 decoder)
  scratch_spool, // random access on a scratch copy of the stream
  two_reads,     // the source read twice: the tables first, then the data in file order (qcow2 native)
};
std::string_view to_string(Access a);

enum class TargetKind { unknown, file, block, directory };
// "file", "block", "directory"; "" when unknown (inspect has no target).
std::string_view to_string(TargetKind t);

// Facts about the source, from its io::ReaderInfo.
struct SourceFacts {
  std::string name;                      // "file", "stdin", "https", "docker[disk/disk.img]", "upload"
  bool seekable = false;
  std::optional<std::string> path;       // a local file holding exactly the stream's bytes
  std::optional<uint64_t> size;
  std::optional<std::string> range_url;  // the server serves byte ranges of this pinned URL
  std::optional<std::string> validator;  // its first response's strong ETag or Last-Modified
  // The bytes can be read a second time, the same bytes checked by a validator: a local file
  // (size and mtime), an HTTP(S) URL whose first response had an ETag or Last-Modified, a
  // docker:// containerDisk (its manifest digest and layer digest). Never stdin, an upload body
  // or an oci:/oci-archive: layout (not pinned).
  bool rereadable = false;
  std::optional<std::string> pinned_url;  // HTTP(S): the effective URL of the first response;
                                          // docker://: the reference pinned by manifest digest
  bool content_addressed = false;         // docker://: validator is the disk layer's blob digest

  static SourceFacts from(const io::ReaderInfo& info);
};

// What detection found above the source.
struct DetectedFacts {
  std::vector<std::string> stages;        // "file", "xz", "tar[disk.img]": the source and the layers peeled
  bool tar_archive = false;               // content type archive: the top is a tar stream to extract
  formats::disk::DiskFormat format = formats::disk::DiskFormat::raw;
  std::optional<uint64_t> top_size;       // the length of the top stream (the disk bytes), when known
  bool fixed_vhd = false;                 // a local raw file ending in a fixed VHD footer
  // A qcow2 image whose tables were read by random access before planning (a local file, HTTP
  // with byte ranges; formats::qcow2::measure_layout): the most the streaming decoder would hold.
  std::optional<uint64_t> qcow2_stream_hold;
};

// The options that decide.
struct PlanOptions {
  ContentType content_type = ContentType::kubevirt;
  bool scratch_offered = false;           // a scratch directory was given
  bool checksum = false;                  // the wire bytes' digest is verified
  bool qcow2_via_qemu_img = false;        // qemu-img instead of the native qcow2 decoder
  uint64_t hold_limit = 64ull << 20;      // the native qcow2 decoder's out-of-order memory
  std::string memory;                     // the memory budget's shares, for the plan's reasons ("": no limit)
  // Why nbdkit-curl cannot serve this source (NbdkitCurl::unsupported_reason, or its start failure);
  // nullopt when it can.
  std::optional<std::string> nbdkit_unavailable;
  bool nbdkit_fallback = false;           // set by the executor when nbdkit-curl failed to start
  TargetKind target = TargetKind::unknown;
};

struct PlanNeeds {
  bool scratch = false;                       // scratch space, unconditionally (a spool)
  std::optional<uint64_t> scratch_estimate;   // bytes, when known up front
  std::string scratch_when;                   // scratch needed only under a condition (qcow2 native)
  bool random_access = false;                 // the converter seeks in its input
  uint64_t memory = 0;                        // bytes of memory the plan may hold (qcow2: the hold limit)
  bool second_read = false;                   // the source is read twice (Access::two_reads)
};

struct Plan {
  ContentType content_type = ContentType::kubevirt;
  std::vector<std::string> stages;        // the chain as printed: "file", "xz", "qcow2"
  std::string format;                     // the final format: "raw", "qcow2", "vhd", "tar"
  formats::disk::DiskFormat disk_format = formats::disk::DiskFormat::raw;
  Converter converter = Converter::stream;
  Access access = Access::sequential;
  TargetKind target = TargetKind::unknown;
  PlanNeeds needs;
  std::vector<std::string> reasons;       // why, one line per decision
  std::string scratch_reason;             // short: why scratch is needed ("vmdk from a stream needs random access")
  // Why the source's byte ranges were not used (appended to the scratch-required message).
  std::optional<std::string> not_in_place;
  // The plan cannot run as is (a refused format, content type archive without a tar, scratch
  // required and none offered). The executor returns it where the step it concerns would run.
  std::optional<Error> refusal;

  // The qemu-img driver for disk_format ("vmdk", "vpc", ...), empty otherwise.
  std::string_view qemu_driver() const { return formats::disk::qemu_driver(disk_format); }
  bool uses_qemu_img() const {
    return converter == Converter::qemu_img_local || converter == Converter::qemu_img_nbdkit ||
           converter == Converter::qemu_img_spool;
  }
};

// Decides how to import a detected image (content types kubevirt and archive).
Plan plan_import(const SourceFacts& source, const DetectedFacts& detected, const PlanOptions& opts);

// A host-assisted clone body: never probed. `block_target`: the destination is a block device.
Plan plan_clone(const SourceFacts& source, const PlanOptions& opts, bool block_target);

// A local raw file or a stream turned out to be a fixed VHD (raw data + footer): the plan says so.
void note_fixed_vhd(Plan& plan);

// "file > xz > qcow2": a chain as printed in logs, summaries and `info`.
std::string chain_text(const std::vector<std::string>& chain);

}  // namespace cdi::pipeline
