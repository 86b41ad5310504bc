// SPDX-License-Identifier: Apache-2.0
// The raw copy loop: pulls a raw byte stream from the top of the reader chain and pushes extents
// into a sink. Reading (which runs the decompressors) and writing (zero detection + syscalls)
// run on two threads joined by a small bounded queue, so the slower side sets the pace and
// memory stays at a few MiB whatever the image size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "lib/io/reader.hpp"
#include "lib/pipeline/progress.hpp"
#include "lib/sink/sink.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::pipeline {

struct CopyOptions {
  std::optional<uint64_t> max_size;   // the stream may not be longer (target capacity, --image-size)
  std::string max_size_what;          // names the bound in the error: "the device", "--image-size"
  // The stream is a raw image: look at its last 512 bytes. A fixed-VHD footer (raw data + a
  // 512-byte footer) is dropped; a DMG trailer ("koly") fails the copy as unsupported. Off for
  // verbatim copies (clones, spooling).
  bool detect_fixed_vhd = true;
  ProgressState* progress = nullptr;
  const util::CancelToken* cancel = nullptr;
};

struct CopyResult {
  uint64_t image_size = 0;     // bytes of guest image produced
  bool fixed_vhd = false;      // the stream was a fixed VHD; its footer was dropped
  uint64_t data_bytes = 0;     // bytes sent with write_at
  uint64_t zero_bytes = 0;     // bytes sent as zero_range (all-zero 4 KiB blocks)
};

// Copies `in` to `out` from guest offset 0. Does not call out.finish(). Errors: whatever the
// reader or the sink return; limit when the stream exceeds max_size; unsupported when it ends
// with a DMG trailer (detect_fixed_vhd; found at the end, after the rest was written: the caller
// aborts the target); cancelled.
Result<CopyResult> copy_raw(io::Reader& in, sink::Sink& out, const CopyOptions& opts);

}  // namespace cdi::pipeline
