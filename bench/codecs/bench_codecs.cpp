// SPDX-License-Identifier: Apache-2.0
// Codec micro-benchmark: decompresses a file through the cdi-import stages (and, for gzip, also
// through plain zlib inflate) into a 1 MiB buffer that is thrown away, and prints throughput,
// wall and CPU time. `gen` writes the deterministic mixed test input. See run.sh / RESULTS.md.
//   cdi_bench_codecs gen <file> <MiB>
//   cdi_bench_codecs gzip|gzip-zlib|xz|zstd <file> [threads]
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "formats/gzip/gzip_reader.hpp"
#include "formats/xz/xz_reader.hpp"
#include "formats/zstd/zstd_reader.hpp"

namespace {

using namespace cdi;

class FdReader final : public io::Reader {
 public:
  explicit FdReader(int fd) : m_fd(fd) {}
  ~FdReader() override { ::close(m_fd); }
  Result<size_t> read(std::span<std::byte> dst) override {
    ssize_t n = ::read(m_fd, dst.data(), dst.size());
    if (n < 0) return fail_sys("read");
    m_total += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
  io::ReaderInfo info() const override { return {"file", std::nullopt, false, std::nullopt}; }

 private:
  int m_fd;
  uint64_t m_total = 0;
};

// Threads of this process right now (to see the xz decoder's workers).
unsigned thread_count() {
  unsigned n = 0;
  if (DIR* d = ::opendir("/proc/self/task")) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return n;
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](timeval t) { return double(t.tv_sec) + double(t.tv_usec) / 1e6; };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

// Mixed input: runs of random bytes (incompressible), word-like text and zeros, 64 KiB - 4 MiB each.
int gen(const char* path, uint64_t mib) {
  FILE* f = std::fopen(path, "wb");
  if (!f) return std::perror(path), 1;
  std::mt19937_64 rng(42);
  const char* words[] = {"disk ", "image ", "import ", "kubevirt ", "sector ", "block ", "volume ", "data\n",
                         "boot ", "kernel ", "the ", "a ", "of ", "to ", "ext4 ", "partition "};
  std::vector<char> buf;
  uint64_t left = mib << 20;
  while (left) {
    size_t run = std::min<uint64_t>(left, (64u << 10) + rng() % (4u << 20));
    buf.resize(run);
    switch (rng() % 3) {
      case 0:
        for (size_t i = 0; i + 8 <= run; i += 8) {
          uint64_t x = rng();
          std::memcpy(&buf[i], &x, 8);
        }
        break;
      case 1:
        for (size_t i = 0; i < run;) {
          const char* w = words[rng() % 16];
          for (; *w && i < run; ++w) buf[i++] = *w;
        }
        break;
      default:
        std::fill(buf.begin(), buf.end(), 0);
    }
    std::fwrite(buf.data(), 1, run, f);
    left -= run;
  }
  return std::fclose(f) == 0 ? 0 : 1;
}

// Plain zlib streaming inflate of (multi-member) gzip, same I/O pattern as the stage.
Result<uint64_t> zlib_gunzip(io::Reader& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) return fail(Errc::internal, "inflateInit2");
  std::vector<unsigned char> ibuf(256 << 10), obuf(1 << 20);
  uint64_t out = 0;
  for (;;) {
    if (zs.avail_in == 0) {
      size_t n = CDI_TRY(in.read(std::as_writable_bytes(std::span(ibuf))));
      if (n == 0) break;
      zs.next_in = ibuf.data();
      zs.avail_in = static_cast<uInt>(n);
    }
    zs.next_out = obuf.data();
    zs.avail_out = static_cast<uInt>(obuf.size());
    int rc = inflate(&zs, Z_NO_FLUSH);
    out += obuf.size() - zs.avail_out;
    if (rc == Z_STREAM_END) {
      inflateReset(&zs);
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      inflateEnd(&zs);
      return fail(Errc::corrupt_input, "zlib error");
    }
  }
  inflateEnd(&zs);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "gen") return gen(argv[2], std::stoull(argv[3]));
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s gen FILE MiB | gzip|gzip-zlib|xz|zstd FILE [threads]\n", argv[0]);
    return 2;
  }
  std::string codec = argv[1];
  int fd = ::open(argv[2], O_RDONLY);
  if (fd < 0) return std::perror(argv[2]), 1;
  formats::CodecOptions opts;
  if (argc > 3) opts.threads = static_cast<unsigned>(std::stoul(argv[3]));
  auto up = std::make_unique<FdReader>(fd);

  auto t0 = std::chrono::steady_clock::now();
  double c0 = cpu_seconds();
  uint64_t out = 0;
  unsigned max_threads = 1;
  if (codec == "gzip-zlib") {
    auto r = zlib_gunzip(*up);
    if (!r) return std::fprintf(stderr, "%s\n", r.error().what().c_str()), 1;
    out = *r;
  } else {
    Result<std::unique_ptr<io::Reader>> r = fail(Errc::invalid_argument, "unknown codec " + codec);
    if (codec == "gzip") r = formats::gzip::open(std::move(up), opts);
    if (codec == "xz") r = formats::xz::open(std::move(up), opts);
    if (codec == "zstd") r = formats::zstd::open(std::move(up), opts);
    if (!r) return std::fprintf(stderr, "%s\n", r.error().what().c_str()), 1;
    std::vector<std::byte> buf(1 << 20);
    for (uint64_t i = 0;; ++i) {
      if (i % 16 == 1) max_threads = std::max(max_threads, thread_count());
      auto n = (*r)->read(buf);
      if (!n) return std::fprintf(stderr, "%s\n", n.error().what().c_str()), 1;
      if (*n == 0) break;
      out += *n;
    }
  }
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double cpu = cpu_seconds() - c0;
  std::printf("%-10s out %8.1f MiB  wall %6.2f s  cpu %6.2f s  %7.1f MiB/s  cpu/wall %.2f  threads %u\n",
              codec.c_str(), double(out) / (1 << 20), wall, cpu, double(out) / (1 << 20) / wall, cpu / wall,
              max_threads);
  return 0;
}
