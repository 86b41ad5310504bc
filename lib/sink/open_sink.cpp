// SPDX-License-Identifier: Apache-2.0
#include "lib/sink/open_sink.hpp"

#include <sys/stat.h>

#include "lib/sink/block_device_sink.hpp"
#include "lib/sink/file_sink.hpp"

namespace cdi::sink {

bool is_block_device(const std::filesystem::path& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

Result<std::unique_ptr<Sink>> open_sink(const std::filesystem::path& dest, const SinkOptions& options) {
  if (is_block_device(dest)) {
    BlockSinkOptions bo;
    bo.writeback_window = options.writeback_window;
    auto sink = CDI_TRY(BlockDeviceSink::open(dest, bo));
    return std::unique_ptr<Sink>(std::move(sink));
  }
  FileSinkOptions fo;
  fo.min_size = options.min_size;
  fo.mode = options.mode;
  fo.apply_umask = options.apply_umask;
  fo.preallocate = options.preallocate;
  fo.writeback_window = options.writeback_window;
  auto sink = CDI_TRY(FileSink::create(dest, fo));
  return std::unique_ptr<Sink>(std::move(sink));
}

}  // namespace cdi::sink
