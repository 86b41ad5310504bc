// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "lib/sink/file_sink.hpp"
#include "lib/sink/leftovers.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/process.hpp"
#include "tests/support/loop_device.hpp"

using namespace cdi;
using cdi::sink::FileSink;
using cdi::sink::FileSinkOptions;
using cdi::test::sys::read_bytes;
using cdi::test::sys::TempDir;
using cdi::test::sys::TmpfsMount;

namespace {

constexpr uint64_t k_mib = 1 << 20;

std::vector<std::byte> pattern(size_t n, uint32_t seed) { return cdi::test::sys::nonzero_pattern(n, seed); }

std::vector<std::string> dir_entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void write_text(const std::filesystem::path& p, const std::string& s) { std::ofstream(p) << s; }

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

struct Extent {
  uint64_t offset;
  uint64_t length;
  bool zero;
};

// Extents covering [0, size) with odd boundaries, and the image they describe.
std::vector<Extent> layout(uint64_t size) {
  std::vector<Extent> ext;
  uint64_t off = 0;
  bool zero = false;
  uint64_t step = 777;
  while (off < size) {
    uint64_t len = std::min(size - off, step);
    ext.push_back({off, len, zero});
    off += len;
    zero = !zero;
    step = step * 3 + 4095;
  }
  return ext;
}

std::vector<std::byte> expected_image(const std::vector<Extent>& ext, uint64_t size, const std::vector<std::byte>& data) {
  std::vector<std::byte> img(size, std::byte{0});
  for (const auto& e : ext)
    if (!e.zero) std::copy_n(data.begin() + static_cast<ptrdiff_t>(e.offset), e.length, img.begin() + static_cast<ptrdiff_t>(e.offset));
  return img;
}

void feed(FileSink& s, const std::vector<Extent>& ext, const std::vector<std::byte>& data) {
  for (const auto& e : ext) {
    if (e.zero)
      REQUIRE(s.zero_range(e.offset, e.length));
    else
      REQUIRE(s.write_at(e.offset, std::span(data).subspan(e.offset, e.length)));
  }
}

mode_t current_umask() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  return 022;
}

}  // namespace

TEST_CASE("FileSink writes extents in order and out of order", "[sink][file_sink]") {
  TempDir dir;
  const uint64_t size = 5 * k_mib + 12345;  // odd final size
  auto data = pattern(size, 1);
  auto ext = layout(size);
  bool shuffled = GENERATE(false, true);
  if (shuffled) std::shuffle(ext.begin(), ext.end(), std::mt19937(42));

  auto sink = FileSink::create(dir / "disk.img", {});
  REQUIRE(sink);
  feed(**sink, ext, data);
  REQUIRE((*sink)->finish(size));
  CHECK(std::filesystem::file_size(dir / "disk.img") == size);
  CHECK(read_bytes(dir / "disk.img", 0, size) == expected_image(ext, size, data));
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"disk.img"});

  auto st = (*sink)->stats();
  uint64_t written = 0, holes = 0;
  for (const auto& e : ext) (e.zero ? holes : written) += e.length;
  CHECK(st.bytes_written == written);
  CHECK(st.bytes_holes == holes);
  CHECK(st.bytes_zeroed == 0);
  CHECK((*sink)->info().kind == "file");
  CHECK((*sink)->info().path == (dir / "disk.img").string());
  CHECK_FALSE((*sink)->info().capacity);
}

TEST_CASE("FileSink leaves zero ranges as holes", "[sink][file_sink]") {
  TempDir dir;
  const uint64_t size = uint64_t{2} << 30;  // 2 GiB, all zero
  auto sink = FileSink::create(dir / "zero.img", {});
  REQUIRE(sink);
  REQUIRE((*sink)->zero_range(0, size / 2));
  REQUIRE((*sink)->zero_range(size / 2, size / 2));
  REQUIRE((*sink)->finish(size));
  struct stat st {};
  REQUIRE(::stat((dir / "zero.img").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == size);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < 64 * 1024);  // ~nothing allocated
  CHECK((*sink)->stats().bytes_holes == size);
  CHECK((*sink)->stats().bytes_written == 0);

  // Data in the middle of a hole: only that data is allocated.
  auto sink2 = FileSink::create(dir / "sparse.img", {});
  REQUIRE(sink2);
  auto data = pattern(k_mib, 2);
  REQUIRE((*sink2)->zero_range(0, 100 * k_mib));
  REQUIRE((*sink2)->write_at(100 * k_mib, data));
  REQUIRE((*sink2)->zero_range(101 * k_mib, 99 * k_mib));
  REQUIRE((*sink2)->finish(200 * k_mib));
  REQUIRE(::stat((dir / "sparse.img").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 200 * k_mib);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 <= 2 * k_mib);
  CHECK(read_bytes(dir / "sparse.img", 100 * k_mib, k_mib) == data);
  CHECK(read_bytes(dir / "sparse.img", 99 * k_mib, 4096) == std::vector<std::byte>(4096));
}

TEST_CASE("FileSink final size: min_size grows and never shrinks below the image", "[sink][file_sink]") {
  TempDir dir;
  auto data = pattern(k_mib + 3, 3);
  SECTION("grown to min_size") {
    FileSinkOptions o;
    o.min_size = 10 * k_mib;
    auto sink = FileSink::create(dir / "a.img", o);
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    REQUIRE((*sink)->finish(data.size()));
    CHECK(std::filesystem::file_size(dir / "a.img") == 10 * k_mib);
    CHECK(read_bytes(dir / "a.img", 0, data.size()) == data);
    CHECK(read_bytes(dir / "a.img", data.size(), 4096) == std::vector<std::byte>(4096));
  }
  SECTION("min_size below the image is ignored") {
    FileSinkOptions o;
    o.min_size = 4096;
    auto sink = FileSink::create(dir / "b.img", o);
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    REQUIRE((*sink)->finish(data.size()));
    CHECK(std::filesystem::file_size(dir / "b.img") == data.size());
  }
  SECTION("image larger than its extents: tail is zeros") {
    auto sink = FileSink::create(dir / "c.img", {});
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    REQUIRE((*sink)->finish(3 * k_mib + 1));
    CHECK(std::filesystem::file_size(dir / "c.img") == 3 * k_mib + 1);
  }
  SECTION("extents past the image size are an internal error") {
    auto sink = FileSink::create(dir / "d.img", {});
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    auto r = (*sink)->finish(1000);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::internal);
    sink->reset();
    CHECK(dir_entries(dir.path()).empty());
  }
}

// The named temporary file is the fallback where the filesystem has no O_TMPFILE (forced here).
TEST_CASE("FileSink renames over the target only at finish", "[sink][file_sink]") {
  TempDir dir;
  const auto target = dir / "disk.img";
  write_text(target, "old content");
  auto data = pattern(300000, 4);

  FileSinkOptions named;
  named.force_named_temp = true;
  auto sink = FileSink::create(target, named);
  REQUIRE(sink);
  auto temp = (*sink)->temp_path();
  CHECK(temp.parent_path() == dir.path());
  CHECK(temp.filename().string().rfind(".disk.img.cdi-import-partial-", 0) == 0);
  REQUIRE((*sink)->write_at(0, data));
  CHECK(std::filesystem::exists(temp));
  CHECK(read_text(target) == "old content");
  REQUIRE((*sink)->finish(data.size()));
  CHECK_FALSE(std::filesystem::exists(temp));
  CHECK((*sink)->temp_path().empty());
  CHECK(read_bytes(target, 0, data.size() + 10) == data);
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"disk.img"});

  // After finish: no more extents, no second finish, abort is a no-op.
  CHECK((*sink)->write_at(0, data).error().code() == Errc::internal);
  CHECK((*sink)->finish(data.size()).error().code() == Errc::internal);
  (*sink)->abort();
  CHECK(std::filesystem::exists(target));
}

// With the named temporary file (the fallback, forced here): see "[file_sink]" tests below for O_TMPFILE.
TEST_CASE("FileSink abort and destruction without finish leave no trace", "[sink][file_sink]") {
  TempDir dir;
  const auto target = dir / "disk.img";
  auto data = pattern(2 * k_mib, 5);
  bool existing = GENERATE(false, true);
  bool explicit_abort = GENERATE(false, true);
  if (existing) write_text(target, "old content");
  {
    FileSinkOptions named;
    named.force_named_temp = true;
    auto sink = FileSink::create(target, named);
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    REQUIRE((*sink)->zero_range(data.size(), k_mib));
    CHECK(dir_entries(dir.path()).size() == (existing ? 2u : 1u));
    if (explicit_abort) {
      (*sink)->abort();
      (*sink)->abort();  // idempotent
      CHECK((*sink)->write_at(0, data).error().code() == Errc::internal);
      CHECK((*sink)->finish(data.size()).error().code() == Errc::internal);
    }
  }
  if (existing) {
    CHECK(dir_entries(dir.path()) == std::vector<std::string>{"disk.img"});
    CHECK(read_text(target) == "old content");
  } else {
    CHECK(dir_entries(dir.path()).empty());
  }
}

TEST_CASE("FileSink target errors", "[sink][file_sink]") {
  TempDir dir;
  SECTION("a directory") {
    std::filesystem::create_directory(dir / "sub");
    auto r = FileSink::create(dir / "sub", {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
    CHECK(r.error().what().find("is a directory") != std::string::npos);
    auto r2 = FileSink::create(dir.path().string() + "/", {});
    REQUIRE_FALSE(r2);
    CHECK(r2.error().code() == Errc::invalid_argument);
  }
  SECTION("missing parent directory") {
    auto r = FileSink::create(dir / "nope" / "disk.img", {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::not_found);
    CHECK(r.error().what().find((dir / "nope").string()) != std::string::npos);
  }
  SECTION("an existing non-regular file") {
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    auto r = FileSink::create(dir / "fifo", {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
  SECTION("offset overflow") {
    auto sink = FileSink::create(dir / "x.img", {});
    REQUIRE(sink);
    auto r = (*sink)->zero_range(UINT64_MAX - 10, 100);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::limit);
  }
}

TEST_CASE("FileSink file mode", "[sink][file_sink]") {
  TempDir dir;
  struct stat st {};
  SECTION("default 0644 & ~umask") {
    auto sink = FileSink::create(dir / "a.img", {});
    REQUIRE(sink);
    REQUIRE((*sink)->finish(0));
    REQUIRE(::stat((dir / "a.img").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == (0644 & ~current_umask()));
    CHECK(std::filesystem::file_size(dir / "a.img") == 0);
  }
  SECTION("exact 0660 as CDI") {
    FileSinkOptions o;
    o.mode = 0660;
    o.apply_umask = false;
    auto sink = FileSink::create(dir / "b.img", o);
    REQUIRE(sink);
    REQUIRE((*sink)->finish(0));
    REQUIRE(::stat((dir / "b.img").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0660);
  }
}

TEST_CASE("FileSink writes more than the writeback window", "[sink][file_sink]") {
  // 200 MiB in 4 MiB chunks: passes several sync_file_range windows.
  TempDir dir;
  auto chunk = pattern(4 * k_mib, 6);
  auto sink = FileSink::create(dir / "big.img", {});
  REQUIRE(sink);
  const uint64_t n = 50;
  for (uint64_t i = 0; i < n; ++i) {
    chunk[0] = std::byte(static_cast<unsigned char>(i));
    REQUIRE((*sink)->write_at(i * chunk.size(), chunk));
  }
  REQUIRE((*sink)->finish(n * chunk.size()));
  CHECK(std::filesystem::file_size(dir / "big.img") == n * chunk.size());
  for (uint64_t i : {uint64_t{0}, uint64_t{17}, n - 1}) {
    auto got = read_bytes(dir / "big.img", i * chunk.size(), chunk.size());
    chunk[0] = std::byte(static_cast<unsigned char>(i));
    CHECK(got == chunk);
  }
  CHECK((*sink)->stats().bytes_written == n * chunk.size());
}

TEST_CASE("FileSink on a full filesystem: io error and no partial file", "[sink][file_sink]") {
  TmpfsMount fs("1M");
  const auto target = fs.path() / "disk.img";
  auto data = pattern(k_mib / 2, 7);
  {
    auto sink = FileSink::create(target, {});
    REQUIRE(sink);
    Result<void> r;
    for (uint64_t i = 0; i < 8 && r; ++i) r = (*sink)->write_at(i * data.size(), data);
    if (r) r = (*sink)->finish(8 * data.size());
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::io);
    CHECK(r.error().what().find(target.string()) != std::string::npos);
    CHECK(r.error().what().find("No space left on device") != std::string::npos);
  }
  CHECK(dir_entries(fs.path()).empty());
}

TEST_CASE("FileSink direct path for an external writer", "[sink][file_sink]") {
  TempDir dir;
  auto data = pattern(123457, 8);
  auto sink = FileSink::create(dir / "disk.img", {});
  REQUIRE(sink);
  auto direct = (*sink)->direct_path();
  REQUIRE(direct);
  CHECK(*direct == (*sink)->temp_path().string());
  REQUIRE((*sink)->prepare_direct(data.size()));
  CHECK(std::filesystem::file_size(*direct) == data.size());
  {
    std::ofstream out(*direct, std::ios::binary | std::ios::in | std::ios::out);
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  CHECK((*sink)->write_at(0, data).error().code() == Errc::internal);
  REQUIRE((*sink)->finish(data.size()));
  CHECK(read_bytes(dir / "disk.img", 0, data.size() + 1) == data);
  CHECK_FALSE((*sink)->direct_path());
}

TEST_CASE("FileSink preallocate allocates the whole final file, data intact", "[sink][file][file_sink][preallocate]") {
  TempDir dir;
  auto path = dir.path() / "disk.img";
  FileSinkOptions o;
  o.min_size = 8 * k_mib;
  o.preallocate = true;
  auto s = FileSink::create(path, o);
  REQUIRE(s);
  auto data = pattern(64 * 1024, 7);
  REQUIRE((*s)->write_at(k_mib, data));
  REQUIRE((*s)->zero_range(0, k_mib));
  REQUIRE((*s)->finish(2 * k_mib));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 8 * k_mib);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 >= 8 * k_mib);
  auto back = read_bytes(path, k_mib, data.size());
  CHECK(back == data);
  auto zeros = read_bytes(path, 0, k_mib);
  CHECK(std::all_of(zeros.begin(), zeros.end(), [](std::byte b) { return b == std::byte{0}; }));

  // without preallocation the same file stays sparse
  auto sparse_path = dir.path() / "sparse.img";
  o.preallocate = false;
  auto t = FileSink::create(sparse_path, o);
  REQUIRE(t);
  REQUIRE((*t)->write_at(k_mib, data));
  REQUIRE((*t)->finish(2 * k_mib));
  REQUIRE(::stat(sparse_path.c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 < k_mib);
}

// --- O_TMPFILE, commit via linkat, the named fallback and stale-partial cleanup (issue 11) -----

namespace {

using cdi::sink::live_lock_held;

uint64_t used_bytes(const std::filesystem::path& p) {
  struct statvfs vs {};
  REQUIRE(::statvfs(p.c_str(), &vs) == 0);
  return static_cast<uint64_t>(vs.f_blocks - vs.f_bfree) * vs.f_frsize;
}

// A file nobody locks, as a killed import leaves it.
void leave_partial(const std::filesystem::path& p, size_t n) {
  auto data = pattern(n, 99);
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(n));
}

}  // namespace

TEST_CASE("FileSink O_TMPFILE: nothing named until finish, linkat names a new target", "[sink][file_sink]") {
  TempDir dir;
  const auto target = dir / "disk.img";
  auto data = pattern(3 * k_mib + 17, 21);
  auto sink = FileSink::create(target, {});
  REQUIRE(sink);
  REQUIRE((*sink)->anonymous());
  CHECK((*sink)->temp_path().string().rfind("/proc/self/fd/", 0) == 0);
  REQUIRE((*sink)->write_at(0, data));
  REQUIRE((*sink)->zero_range(data.size(), k_mib));
  CHECK(dir_entries(dir.path()).empty());           // the data has no name yet
  REQUIRE((*sink)->finish(data.size() + k_mib));
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"disk.img"});
  CHECK(read_bytes(target, 0, data.size()) == data);
  CHECK(std::filesystem::file_size(target) == data.size() + k_mib);
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  CHECK(st.st_nlink == 1);                          // linked exactly once: no transient name left
  CHECK((*sink)->temp_path().empty());
  CHECK_FALSE((*sink)->direct_path());
  (*sink)->abort();                                  // no-op after finish
  CHECK(std::filesystem::exists(target));
}

TEST_CASE("FileSink O_TMPFILE: an existing target is replaced at finish, untouched before", "[sink][file_sink]") {
  TempDir dir;
  const auto target = dir / "disk.img";
  write_text(target, "old content");
  write_text(dir / ".user-dotfile", "keep me");
  struct stat old_st {};
  REQUIRE(::stat(target.c_str(), &old_st) == 0);
  // A reader of the old file keeps the old inode (rename semantics, never overwritten in place).
  std::ifstream reader(target);
  auto data = pattern(2 * k_mib, 22);
  auto sink = FileSink::create(target, {});
  REQUIRE(sink);
  REQUIRE((*sink)->anonymous());
  REQUIRE((*sink)->write_at(0, data));
  CHECK(read_text(target) == "old content");
  CHECK(dir_entries(dir.path()) == (std::vector<std::string>{".user-dotfile", "disk.img"}));
  REQUIRE((*sink)->finish(data.size()));
  CHECK(dir_entries(dir.path()) == (std::vector<std::string>{".user-dotfile", "disk.img"}));
  CHECK(read_bytes(target, 0, data.size() + 1) == data);
  struct stat st {};
  REQUIRE(::stat(target.c_str(), &st) == 0);
  CHECK(st.st_ino != old_st.st_ino);
  CHECK(st.st_nlink == 1);
  std::string old_text(std::istreambuf_iterator<char>(reader), {});
  CHECK(old_text == "old content");
  CHECK(read_text(dir / ".user-dotfile") == "keep me");
}

TEST_CASE("FileSink O_TMPFILE: abort and destruction leave nothing, the space comes back", "[sink][file_sink]") {
  TmpfsMount fs("32M");
  const auto target = fs.path() / "disk.img";
  write_text(target, "old content");
  const uint64_t base = used_bytes(fs.path());
  auto data = pattern(8 * k_mib, 23);
  bool explicit_abort = GENERATE(false, true);
  {
    auto sink = FileSink::create(target, {});
    REQUIRE(sink);
    REQUIRE((*sink)->anonymous());
    REQUIRE((*sink)->write_at(0, data));
    CHECK(used_bytes(fs.path()) >= base + data.size());   // the unnamed file holds the data
    CHECK(dir_entries(fs.path()) == std::vector<std::string>{"disk.img"});
    if (explicit_abort) {
      (*sink)->abort();
      CHECK(used_bytes(fs.path()) == base);                // freed the moment it is closed
      CHECK((*sink)->finish(data.size()).error().code() == Errc::internal);
    }
  }
  CHECK(used_bytes(fs.path()) == base);
  CHECK(dir_entries(fs.path()) == std::vector<std::string>{"disk.img"});
  CHECK(read_text(target) == "old content");
}

TEST_CASE("FileSink O_TMPFILE: preallocation, --image-size growth and mode", "[sink][file_sink][preallocate]") {
  TempDir dir;
  FileSinkOptions o;
  o.min_size = 16 * k_mib;
  o.preallocate = true;
  o.mode = 0660;
  o.apply_umask = false;
  auto data = pattern(k_mib, 24);
  auto sink = FileSink::create(dir / "disk.img", o);
  REQUIRE(sink);
  REQUIRE((*sink)->anonymous());
  REQUIRE((*sink)->write_at(k_mib, data));
  REQUIRE((*sink)->finish(2 * k_mib));
  struct stat st {};
  REQUIRE(::stat((dir / "disk.img").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == 16 * k_mib);
  CHECK(static_cast<uint64_t>(st.st_blocks) * 512 >= 16 * k_mib);
  CHECK((st.st_mode & 07777) == 0660);
  CHECK(read_bytes(dir / "disk.img", k_mib, data.size()) == data);
  CHECK(read_bytes(dir / "disk.img", 0, 4096) == std::vector<std::byte>(4096));
}

TEST_CASE("FileSink O_TMPFILE: qemu-img writes into the unnamed inode through /proc/self/fd", "[sink][file_sink][qemu]") {
  TempDir dir;
  const auto src = dir / "src.raw";
  auto data = pattern(5 * k_mib, 25);
  {
    std::ofstream(src, std::ios::binary).write(reinterpret_cast<const char*>(data.data()),
                                               static_cast<std::streamsize>(data.size()));
  }
  const auto target = dir / "disk.img";
  write_text(target, "old content");
  auto sink = FileSink::create(target, {});
  REQUIRE(sink);
  REQUIRE((*sink)->anonymous());
  REQUIRE((*sink)->prepare_direct(data.size()));
  auto path = (*sink)->direct_path();
  REQUIRE(path);
  auto fds = (*sink)->direct_fds();
  REQUIRE(fds.size() == 1);
  CHECK(*path == "/proc/self/fd/" + std::to_string(fds[0]));
  // -t none = O_DIRECT, as the pipeline uses where the target supports it (-t writethrough else).
  std::string cache = GENERATE("none", "writethrough");
  util::ProcessOptions po;
  po.keep_fds = fds;
  auto res = util::run_process({"qemu-img", "convert", "-n", "-t", cache, "-f", "raw", "-O", "raw", src.string(), *path}, po);
  REQUIRE(res);
  INFO(res->err);
  REQUIRE(res->exit_code == 0);
  CHECK(dir_entries(dir.path()) == (std::vector<std::string>{"disk.img", "src.raw"}));
  CHECK(read_text(target) == "old content");
  REQUIRE((*sink)->finish(data.size()));
  CHECK(read_bytes(target, 0, data.size() + 1) == data);
  CHECK(dir_entries(dir.path()) == (std::vector<std::string>{"disk.img", "src.raw"}));
}

TEST_CASE("FileSink fallback: a named partial, locked while alive, renamed at finish", "[sink][file_sink]") {
  TempDir dir;
  const auto target = dir / "disk.img";
  FileSinkOptions o;
  o.force_named_temp = true;
  auto data = pattern(k_mib, 26);
  auto sink = FileSink::create(target, o);
  REQUIRE(sink);
  CHECK_FALSE((*sink)->anonymous());
  auto temp = (*sink)->temp_path();
  CHECK(cdi::sink::is_partial_name(temp.filename().string(), "disk.img"));
  CHECK((*sink)->direct_fds().empty());
  CHECK(*(*sink)->direct_path() == temp.string());
  {
    util::Fd probe(::open(temp.c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(probe);
    CHECK(live_lock_held(probe.get()));   // a concurrent cleanup leaves it alone
  }
  // A second import of the same target while this one runs: its cleanup keeps our partial.
  auto other = FileSink::create(target, o);
  REQUIRE(other);
  CHECK((*other)->stale_removed() == 0);
  CHECK(std::filesystem::exists(temp));
  other->reset();
  REQUIRE((*sink)->write_at(0, data));
  REQUIRE((*sink)->finish(data.size()));
  CHECK(dir_entries(dir.path()) == std::vector<std::string>{"disk.img"});
  CHECK(read_bytes(target, 0, data.size() + 1) == data);
}

TEST_CASE("FileSink removes stale partials of its target, and nothing else", "[sink][file_sink]") {
  TempDir dir;
  TempDir outside;
  const auto target = dir / "disk.img";
  write_text(target, "old content");
  bool forced_named = GENERATE(false, true);
  // Left by killed runs: a partial from the copy loop, and a complete file from the linkat window.
  leave_partial(dir / ".disk.img.cdi-import-partial-AbC123", 3 * k_mib);
  leave_partial(dir / ".disk.img.cdi-import-partial-zZ09zz", 100);
  // Not ours, or not stale: all must stay.
  const std::vector<std::string> keep = {
      ".disk.img.cdi-import-partial-AbC12",    // 5 random characters
      ".disk.img.cdi-import-partial-AbC1234",  // 7
      ".disk.img.cdi-import-partial-AbC12!",   // not [A-Za-z0-9]
      ".other.img.cdi-import-partial-AbC123",  // another target's
      "disk.img.cdi-import-partial-AbC123",    // no leading dot
      ".disk.img.swp",                         // a user's dotfile
      ".disk.img",
  };
  for (const auto& k : keep) write_text(dir / k, "user data");
  write_text(outside / "precious", "precious");
  std::filesystem::create_symlink(outside / "precious", dir / ".disk.img.cdi-import-partial-SyMl1k");
  std::filesystem::create_directory(dir / ".disk.img.cdi-import-partial-D1rect");
  write_text(dir / ".disk.img.cdi-import-partial-D1rect" / "inside", "x");
  // A live import's partial (locked).
  FileSinkOptions named;
  named.force_named_temp = true;
  auto live = FileSink::create(target, named);
  REQUIRE(live);
  REQUIRE((*live)->stale_removed() == 2);   // the live import's own cleanup took the two stale ones
  leave_partial(dir / ".disk.img.cdi-import-partial-AbC123", 3 * k_mib);   // another kill since
  const auto live_name = (*live)->temp_path().filename().string();

  FileSinkOptions o;
  o.force_named_temp = forced_named;
  auto sink = FileSink::create(target, o);
  REQUIRE(sink);
  CHECK((*sink)->stale_removed() == 1);
  auto entries = dir_entries(dir.path());
  std::vector<std::string> want = keep;
  want.insert(want.end(), {"disk.img", ".disk.img.cdi-import-partial-SyMl1k", ".disk.img.cdi-import-partial-D1rect",
                           live_name});
  if (forced_named) want.push_back((*sink)->temp_path().filename().string());
  std::sort(want.begin(), want.end());
  CHECK(entries == want);
  for (const auto& k : keep) CHECK(read_text(dir / k) == "user data");
  CHECK(read_text(outside / "precious") == "precious");
  CHECK(read_text(dir / ".disk.img.cdi-import-partial-D1rect" / "inside") == "x");
  CHECK(read_text(target) == "old content");
}

TEST_CASE("remove_stale_partials: matching rules and a missing directory", "[sink][file_sink]") {
  using cdi::sink::is_partial_name;
  using cdi::sink::partial_name;
  for (int i = 0; i < 50; ++i) CHECK(is_partial_name(partial_name("disk.img"), "disk.img"));
  CHECK_FALSE(is_partial_name(partial_name("disk.img"), "disk.im"));
  CHECK_FALSE(is_partial_name(partial_name("disk.im"), "disk.img"));
  CHECK_FALSE(is_partial_name(".disk.img.cdi-import-partial-", "disk.img"));
  CHECK_FALSE(is_partial_name("", ""));
  // Long names: the target part is cut to 180 bytes, the whole name stays under NAME_MAX.
  std::string long_name(250, 'n');
  auto p = partial_name(long_name);
  CHECK(p.size() <= 255);
  CHECK(is_partial_name(p, long_name));
  auto r = cdi::sink::remove_stale_partials("/nonexistent-dir-cdi/disk.img");
  REQUIRE(r);
  CHECK(r->entries == 0);
}
