// SPDX-License-Identifier: Apache-2.0
// qemu-img as the external converter for formats we do not decode ourselves. Always called with
// an explicit -f (never probing), never through a shell.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::pipeline {

struct QemuImageInfo {
  std::string format;
  uint64_t virtual_size = 0;
  std::string backing_file;     // empty when none
  std::string data_file;        // qcow2 external data file, empty when none
  bool encrypted = false;
  std::string create_type;      // vmdk subformat, informational
};

struct QemuRunOptions {
  const util::CancelToken* cancel = nullptr;
  std::vector<int> keep_fds;                     // fds the child must inherit (scratch file)
};

// `qemu-img info -f FMT --output=json SRC`. Errors: corrupt_input when qemu-img cannot open the
// image (its message included), not_found when qemu-img is missing.
Result<QemuImageInfo> qemu_info(const std::string& fmt, const std::string& src, const QemuRunOptions& opts);

// Refuses what we never convert: formats other than raw/qcow2/vmdk/vpc/vhdx/vdi, a backing file,
// an external data file, encryption, a virtual size above `max_size` (when set).
Result<void> validate_image(const QemuImageInfo& info, std::optional<uint64_t> max_size,
                            const std::string& max_size_what);

// qemu-img silently zero-fills clusters beyond the end of a truncated qcow2, so for qcow2 we run
// `qemu-img check` and refuse images with corruptions (leaks alone are harmless).
Result<void> qemu_check_qcow2(const std::string& src, const QemuRunOptions& opts);

struct ConvertTarget {
  std::string path;        // file or block device to write
  bool block_device = false;
  bool direct_io = false;  // target accepts O_DIRECT: use -t none, else -t writethrough
};

// Converts SRC (format fmt) to raw in `target` (which must exist and be large enough: -n).
// For block devices the first MiB is written last (two passes through the raw driver's
// offset/size options), so a failure never leaves a device that looks complete.
// `on_percent` receives qemu-img's -p progress (0..100).
Result<void> qemu_convert(const std::string& fmt, const std::string& src, uint64_t virtual_size,
                          const ConvertTarget& target, const QemuRunOptions& opts,
                          const std::function<void(double)>& on_percent);

// qemu-img reports a full target only as strerror text in its stderr ("No space left on device",
// "Disk quota exceeded"): the typed fact read from it, where it is known (Reason::no_space), so
// that no caller matches the text.
Reason qemu_message_reason(std::string_view msg);

// The percentage in a qemu-img -p line ("    (45.34/100%)"), nullopt for other lines.
std::optional<double> parse_progress(std::string_view line);

// Whether `path` (existing file or device) can be opened with O_DIRECT.
bool supports_direct_io(const std::string& path);

}  // namespace cdi::pipeline
