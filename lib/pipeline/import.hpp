// SPDX-License-Identifier: Apache-2.0
// The import pipeline: source → (gzip|xz|zstd)* → [tar entry] → disk format → raw → target.
// Detection peeks at each layer's head and lets the format table's best bid win
// (formats/registry.hpp), stacking stages until a disk format (or raw) is reached; the planner
// (plan.hpp) then decides the converter from the facts, and run_import executes that plan.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/pipeline/plan.hpp"
#include "lib/pipeline/progress.hpp"
#include "lib/source/open_source.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/digest.hpp"
#include "lib/util/error.hpp"

namespace cdi::pipeline {

struct ImportOptions {
  std::string url;                                   // path, file:// URL, http(s)://, docker://, oci:, "-" (stdin)
  std::string dest;                                  // file, block device, or directory (archive)
  ContentType content_type = ContentType::kubevirt;
  // How `url` is opened (lib/source/open_source.hpp): HTTP(S) and registry options, in-use checks.
  source::SourceOptions source;
  std::optional<std::filesystem::path> scratch_dir;  // where a stage that needs random access may spool
  std::optional<uint64_t> image_size;                // --image-size: grow file targets; bound the image
  // How messages name the image_size bound: the caller's word for it (cmd/: "--image-size"; pod
  // mode: the PVC's available space). The library names no CLI flag itself.
  std::string image_size_what = "the requested image size";
  std::optional<std::string> tar_entry;              // which file of a tar holds the disk
  unsigned threads = 0;                              // decompression threads, 0 = automatic
  // The memory budget (util::MemoryBudget): an explicit limit (0 = none), else the cgroup's.
  // The decompressors (liblzma's threaded decoder, zstd's window) are sized from it.
  std::optional<uint64_t> memory_limit;
  std::string memory_limit_source = "--memory-limit";   // how messages name an explicit limit
  uint64_t hold_limit = 64ull << 20;                 // qcow2 out-of-order buffer
  bool qcow2_via_qemu_img = false;                   // use qemu-img instead of the native decoder
  bool xz_stream_only = false;                       // never decode a local multi-block xz by blocks
  ProgressState* progress = nullptr;                 // updated while running, may be null
  const util::CancelToken* cancel = nullptr;
  std::function<void(std::string_view)> log;         // verbose diagnostics, may be empty
  // When set, the source is this reader instead of opening `url` (the upload server hands over a
  // request body); `url` then only names the source in messages.
  std::function<Result<std::unique_ptr<io::Reader>>()> source_factory;
  // Expected digest of the wire bytes (before decompression), verified before the target is
  // committed; a mismatch fails the import and leaves no complete-looking target.
  std::optional<util::Checksum> checksum;
  // Allocate the whole target (fallocate, else write zeros) — CDI's PREALLOCATION.
  bool preallocate = false;
  // File targets grow to this size instead of image_size (pod mode: CDI's resize target
  // min(request, usable space), while image_size stays the bound the image must fit in).
  std::optional<uint64_t> resize_to;
};

struct ImportReport {
  ContentType content_type = ContentType::kubevirt;   // what was imported (clone targets: CDI's "Clone Complete")
  Plan plan;                        // the plan that was executed (fallbacks recorded)
  // Printed forms of the plan's enums (to_string): kept for the CLI, pod and server.
  std::vector<std::string> chain;   // "file", "xz", "qcow2"
  std::string format;               // final disk format ("raw", "qcow2", ...)
  std::string converter;            // "stream", "native", "qemu-img", "extract"
  std::string target_kind;          // "file", "block", "directory"
  uint64_t image_size = 0;          // guest bytes in the target
  uint64_t bytes_read = 0;          // wire bytes read from the source
  uint64_t bytes_written = 0;       // data bytes written
  uint64_t bytes_zero = 0;          // bytes left as holes or zeroed
  uint64_t scratch_bytes = 0;       // scratch space used (spool)
  uint64_t held_peak = 0;           // qcow2: out-of-order data held in memory (peak)
  uint64_t spilled_bytes = 0;       // qcow2: held data spilled to scratch
  uint64_t files_extracted = 0;     // archive content type
  uint64_t qemu_allocated = 0;      // qemu-img path: bytes allocated in the target
  double seconds = 0;
  // Registry images: labels from the image config (KUBEVIRT_IO_* env vars mapped as CDI does).
  std::vector<std::pair<std::string, std::string>> labels;
  bool preallocation_applied = false;
  std::string checksum_verified;    // "sha256:<hex>" when a checksum was verified
};

Result<ImportReport> run_import(const ImportOptions& opts);

struct InspectReport {
  Plan plan;                        // what an import with these options would do
  std::vector<std::string> chain;
  std::string format;
  std::optional<uint64_t> virtual_size;
  std::optional<uint64_t> source_size;
  bool scratch_required = false;
  std::string scratch_reason;       // why, when required
  std::string converter;            // what an import would use
  // Registry images: labels from the image config (KUBEVIRT_IO_* env vars mapped as CDI does).
  std::vector<std::pair<std::string, std::string>> labels;
};

// Detects the chain, plans, and reads the image's virtual size without writing anything. For a
// local file of a format we hand to qemu-img, `qemu-img info` supplies the size.
Result<InspectReport> inspect(const ImportOptions& opts);

}  // namespace cdi::pipeline
