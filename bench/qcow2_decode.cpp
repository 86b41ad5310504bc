// SPDX-License-Identifier: Apache-2.0
// Benchmark driver: decodes a local qcow2 file into a raw file with the streaming decoder,
// reading it sequentially (as from a pipe) and writing through a minimal sparse file sink; with
// --random-access, with the random-access decoder reading the file by pread (FileRandomAccess).
//   qcow2_decode [--random-access] [--hold-limit BYTES] IN.qcow2 OUT.raw [threads]
// Prints the decode stats and the wall time on stderr. Not the product CLI (that is cmd/cdi-import).
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "formats/qcow2/qcow2_decoder.hpp"
#include "lib/util/fd.hpp"

namespace {

using namespace cdi;

class FdReader final : public io::Reader {
 public:
  explicit FdReader(int fd) : m_fd(fd) {}
  Result<size_t> read(std::span<std::byte> dst) override {
    for (;;) {
      ssize_t n = ::read(m_fd.get(), dst.data(), dst.size());
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return fail_sys("read");
    }
  }
  io::ReaderInfo info() const override { return {.name = "file"}; }

 private:
  util::Fd m_fd;
};

// Writes data with pwrite; zero ranges stay holes (the file is created empty here).
class SparseFileSink final : public sink::Sink {
 public:
  explicit SparseFileSink(int fd) : m_fd(fd) {}
  Result<void> write_at(uint64_t off, std::span<const std::byte> d) override {
    size_t done = 0;
    while (done < d.size()) {
      ssize_t n = ::pwrite(m_fd.get(), d.data() + done, d.size() - done, static_cast<off_t>(off + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail_sys("pwrite");
      }
      done += static_cast<size_t>(n);
    }
    m_stats.bytes_written += d.size();
    return {};
  }
  Result<void> zero_range(uint64_t, uint64_t len) override {
    m_stats.bytes_holes += len;
    return {};
  }
  Result<void> finish(uint64_t size) override {
    if (::ftruncate(m_fd.get(), static_cast<off_t>(size)) != 0) return fail_sys("ftruncate");
    return {};
  }
  void abort() noexcept override {}
  sink::SinkInfo info() const override { return {"file", "bench", std::nullopt}; }
  sink::SinkStats stats() const override { return m_stats; }

 private:
  util::Fd m_fd;
  sink::SinkStats m_stats;
};

}  // namespace

int main(int argc, char** argv) {
  bool random_access = false;
  formats::qcow2::DecodeOptions opts;
  std::vector<char*> args;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--random-access") {
      random_access = true;
    } else if (a == "--hold-limit" && i + 1 < argc) {
      opts.hold_limit = std::strtoull(argv[++i], nullptr, 10);
    } else {
      args.push_back(argv[i]);
    }
  }
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: %s [--random-access] [--hold-limit BYTES] IN.qcow2 OUT.raw [threads]\n", argv[0]);
    return 2;
  }
  int in = ::open(args[0], O_RDONLY | O_CLOEXEC);
  int out = ::open(args[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0) {
    std::perror("open");
    return 1;
  }
  SparseFileSink sink(out);
  if (args.size() > 2) opts.threads = static_cast<unsigned>(std::atoi(args[2]));
  auto t0 = std::chrono::steady_clock::now();
  Result<formats::qcow2::DecodeStats> st = fail(Errc::internal, "not run");
  if (random_access) {
    auto ra = io::FileRandomAccess::adopt(util::Fd(in), args[0]);
    if (!ra) {
      std::fprintf(stderr, "error: %s\n", ra.error().what().c_str());
      return 1;
    }
    st = formats::qcow2::decode_random_access(**ra, sink, opts);
  } else {
    FdReader reader(in);
    st = formats::qcow2::decode(reader, sink, opts);
  }
  if (!st) {
    std::fprintf(stderr, "error: %s\n", st.error().what().c_str());
    return 1;
  }
  if (auto r = sink.finish(st->virtual_size); !r) {
    std::fprintf(stderr, "error: %s\n", r.error().what().c_str());
    return 1;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "%s %.2f s virtual %llu in %llu data %llu zero %llu held_peak %llu spilled %llu compressed %llu\n",
               random_access ? "random-access" : "stream", secs,
               (unsigned long long)st->virtual_size, (unsigned long long)st->bytes_in,
               (unsigned long long)st->data_bytes, (unsigned long long)st->zero_bytes,
               (unsigned long long)st->held_peak, (unsigned long long)st->spilled_bytes,
               (unsigned long long)st->compressed_clusters);
  return 0;
}
