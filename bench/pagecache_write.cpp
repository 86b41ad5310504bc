// SPDX-License-Identifier: Apache-2.0
// Benchmark driver for bench/pagecache.sh: writes SIZE_MIB MiB of incompressible data to OUT,
// sequentially, in odd-sized chunks (as a decoder hands them to a sink), one of four ways:
//   sink       FileSink (lib/sink): buffered, sync_file_range windows of WINDOW_MIB, each window
//              dropped from the page cache (POSIX_FADV_DONTNEED) once it reached the disk
//   syncrange  the same windows without the drop (the sinks before the drop: clean pages stay)
//   buffered   plain pwrite, one fsync at the end (no bound at all)
//   direct     O_DIRECT through an aligned bounce buffer of WINDOW_MIB (the chunks are copied in
//              and written when it is full; the unaligned tail is written buffered at the end)
//   pagecache_write MODE OUT SIZE_MIB [WINDOW_MIB]      (WINDOW_MIB default 64; direct: 4)
// and a raw import without the CLI, so the window can be chosen as a memory-budget planner would:
//   copy       a local file read through open_file_source (lib/source: dropped behind the read
//              position every DROP_MIB) into a FileSink with WINDOW_MIB windows
//   pagecache_write copy OUT SRC WINDOW_MIB [DROP_MIB]
// Not the product CLI (that is cmd/cdi-import).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "lib/sink/file_sink.hpp"
#include "lib/source/file_source.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/file_io.hpp"

namespace {

using namespace cdi;

constexpr uint64_t k_mib = uint64_t{1} << 20;
constexpr size_t k_chunk = 256 * 1024 + 3 * 4096 + 100;   // odd: chunks straddle everything

int die(const std::string& what) {
  std::fprintf(stderr, "pagecache_write: %s\n", what.c_str());
  return 1;
}

// 16 MiB of xorshift bytes, read cyclically at a shifting offset: incompressible, cheap.
std::vector<std::byte> make_data() {
  std::vector<std::byte> v(16 * k_mib + k_chunk);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= v.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(v.data() + i, &x, 8);
  }
  return v;
}

std::span<const std::byte> chunk_at(const std::vector<std::byte>& data, uint64_t off, uint64_t size) {
  size_t n = static_cast<size_t>(std::min<uint64_t>(k_chunk, size - off));
  size_t start = static_cast<size_t>((off * 7) % (16 * k_mib));
  return std::span(data).subspan(start, n);
}

Result<void> run_sink(const std::string& out, uint64_t size, uint64_t window, const std::vector<std::byte>& data) {
  sink::FileSinkOptions o;
  o.writeback_window = window;
  auto s = CDI_TRY(sink::FileSink::create(out, o));
  for (uint64_t off = 0; off < size;) {
    auto c = chunk_at(data, off, size);
    CDI_TRY(s->write_at(off, c));
    off += c.size();
  }
  return s->finish(size);
}

Result<void> run_buffered(const std::string& out, uint64_t size, uint64_t window, bool sync_windows,
                          const std::vector<std::byte>& data) {
  util::Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_sys(out);
  uint64_t pending = 0, lo = 0, prev_lo = 0, prev_hi = 0;
  for (uint64_t off = 0; off < size;) {
    auto c = chunk_at(data, off, size);
    CDI_TRY(util::pwrite_all(fd.get(), c, off, out));
    off += c.size();
    pending += c.size();
    if (sync_windows && pending >= window) {   // the sinks' throttle before the drop
      if (::sync_file_range(fd.get(), static_cast<off_t>(lo), static_cast<off_t>(off - lo), SYNC_FILE_RANGE_WRITE) != 0)
        return fail_sys("sync_file_range");
      if (prev_hi > prev_lo &&
          ::sync_file_range(fd.get(), static_cast<off_t>(prev_lo), static_cast<off_t>(prev_hi - prev_lo),
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) != 0)
        return fail_sys("sync_file_range");
      prev_lo = lo;
      prev_hi = off;
      lo = off;
      pending = 0;
    }
  }
  if (::fsync(fd.get()) != 0) return fail_sys("fsync");
  return {};
}

Result<void> run_direct(const std::string& out, uint64_t size, uint64_t buffer, const std::vector<std::byte>& data) {
  util::Fd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644));
  if (!fd) return fail_sys(out + " (O_DIRECT)");
  void* mem = nullptr;
  if (::posix_memalign(&mem, 4096, buffer) != 0) return fail(Errc::internal, "posix_memalign");
  std::unique_ptr<std::byte, decltype(&std::free)> bounce(static_cast<std::byte*>(mem), &std::free);
  uint64_t fill = 0, base = 0;
  for (uint64_t off = 0; off < size;) {
    auto c = chunk_at(data, off, size);
    while (!c.empty()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(c.size(), buffer - fill));
      std::memcpy(bounce.get() + fill, c.data(), n);
      fill += n;
      off += n;
      c = c.subspan(n);
      if (fill == buffer) {
        CDI_TRY(util::pwrite_all(fd.get(), std::span<const std::byte>(bounce.get(), fill), base, out));
        base += fill;
        fill = 0;
      }
    }
  }
  if (fill) {
    const uint64_t aligned = fill / 4096 * 4096;
    if (aligned) CDI_TRY(util::pwrite_all(fd.get(), std::span<const std::byte>(bounce.get(), aligned), base, out));
    if (fill > aligned) {   // O_DIRECT cannot write the unaligned tail: a buffered descriptor does
      util::Fd tail(::open(out.c_str(), O_WRONLY | O_CLOEXEC));
      if (!tail) return fail_sys(out);
      CDI_TRY(util::pwrite_all(tail.get(), std::span<const std::byte>(bounce.get() + aligned, fill - aligned),
                               base + aligned, out));
      if (::fsync(tail.get()) != 0) return fail_sys("fsync");
    }
  }
  if (::fsync(fd.get()) != 0) return fail_sys("fsync");
  return {};
}

Result<void> run_copy(const std::string& out, const std::string& src, uint64_t window, uint64_t drop_step) {
  source::FileSourceOptions so;
  so.drop_step = drop_step;
  auto in = CDI_TRY(source::open_file_source(src, so));
  sink::FileSinkOptions o;
  o.writeback_window = window;
  auto s = CDI_TRY(sink::FileSink::create(out, o));
  std::vector<std::byte> buf(k_chunk);
  uint64_t off = 0;
  for (;;) {
    size_t n = CDI_TRY(io::read_full(*in, buf));
    if (n == 0) break;
    CDI_TRY(s->write_at(off, std::span(buf).first(n)));
    off += n;
  }
  return s->finish(off);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 5 && std::string(argv[1]) == "copy") {
    const uint64_t window = std::strtoull(argv[4], nullptr, 10) * k_mib;
    const uint64_t drop = argc >= 6 ? std::strtoull(argv[5], nullptr, 10) * k_mib : 0;
    auto r = run_copy(argv[2], argv[3], window, drop);
    if (!r) return die(r.error().what());
    return 0;
  }
  if (argc < 4 || argc > 5) return die("usage: pagecache_write sink|syncrange|buffered|direct OUT SIZE_MIB [WINDOW_MIB]");
  const std::string mode = argv[1], out = argv[2];
  const uint64_t size = std::strtoull(argv[3], nullptr, 10) * k_mib;
  const uint64_t window = (argc == 5 ? std::strtoull(argv[4], nullptr, 10) : (mode == "direct" ? 4 : 64)) * k_mib;
  if (size == 0 || window == 0) return die("sizes must be positive");
  const auto data = make_data();
  Result<void> r;
  if (mode == "sink") r = run_sink(out, size, window, data);
  else if (mode == "syncrange") r = run_buffered(out, size, window, true, data);
  else if (mode == "buffered") r = run_buffered(out, size, window, false, data);
  else if (mode == "direct") r = run_direct(out, size, window, data);
  else return die("unknown mode " + mode);
  if (!r) return die(r.error().what());
  return 0;
}
