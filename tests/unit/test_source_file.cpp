// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "lib/io/random_access.hpp"
#include "lib/source/file_source.hpp"
#include "lib/util/fd.hpp"
#include "tests/support/loop_device.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/support/page_cache.hpp"

using namespace cdi;
using cdi::source::FileSourceOptions;
using cdi::source::open_file_source;
using cdi::test::read_all;
using cdi::test::sys::ScratchLoop;
using cdi::test::sys::TempDir;

namespace {

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1103515245u + 12345u;
    b = std::byte(static_cast<unsigned char>(x >> 16));
  }
  return v;
}

void write_file(const std::filesystem::path& p, const std::vector<std::byte>& data) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// Takes an OFD lock on [start, start+len) of path through its own open file description.
class OfdLock {
 public:
  OfdLock(const std::filesystem::path& path, short type, off_t start, off_t len) {
    m_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(m_fd >= 0);
    struct flock fl {};
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = start;
    fl.l_len = len;
    REQUIRE(::fcntl(m_fd, F_OFD_SETLK, &fl) == 0);
  }
  ~OfdLock() { ::close(m_fd); }

 private:
  int m_fd = -1;
};

// A child process running `argv` with a pipe as stdin; closing the pipe ends it.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    m_pid = ::fork();
    REQUIRE(m_pid >= 0);
    if (m_pid == 0) {
      ::dup2(p[0], STDIN_FILENO);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, STDOUT_FILENO);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(p[0]);
    m_stdin = p[1];
  }
  ~Child() {
    ::close(m_stdin);
    int status = 0;
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(m_pid, &status, WNOHANG) == m_pid) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(m_pid, SIGKILL);
    ::waitpid(m_pid, &status, 0);
  }
  bool running() const {
    int status = 0;
    return ::waitpid(m_pid, &status, WNOHANG) == 0;
  }

 private:
  pid_t m_pid = -1;
  int m_stdin = -1;
};

}  // namespace

TEST_CASE("file source reads a regular file", "[source]") {
  TempDir dir;
  auto data = pattern(3 * 1000 * 1000 + 7, 1);
  write_file(dir / "disk.img", data);
  size_t chunk = GENERATE(size_t{1} << 20, size_t{4096}, size_t{7});
  if (chunk == 7) data.resize(20000);  // keep the byte-sized case quick
  if (chunk == 7) write_file(dir / "disk.img", data);

  auto r = open_file_source((dir / "disk.img").string(), {});
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == "file");
  CHECK(info.size == data.size());
  CHECK(info.seekable);
  CHECK(info.path == (dir / "disk.img").string());
  auto got = read_all(**r, chunk);
  REQUIRE(got);
  CHECK(*got == data);
  std::byte b[4];
  CHECK((*r)->read(b) == size_t{0});  // stays at the end
}

TEST_CASE("file source: a relative path is reported absolute", "[source]") {
  TempDir dir;
  write_file(dir / "a.img", pattern(10, 2));
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  auto r = open_file_source("a.img", {});
  std::filesystem::current_path(cwd);
  REQUIRE(r);
  CHECK((*r)->info().path == (dir / "a.img").string());
}

TEST_CASE("file source: file:// URLs", "[source]") {
  TempDir dir;
  auto data = pattern(5000, 3);
  write_file(dir / "my disk%.img", data);
  const std::string encoded = dir.path().string() + "/my%20disk%25.img";

  for (const std::string& url : {"file://" + encoded, "file://localhost" + encoded, "FILE://LocalHost" + encoded,
                                 "file:" + encoded}) {
    INFO(url);
    auto r = open_file_source(url, {});
    REQUIRE(r);
    CHECK((*r)->info().path == (dir / "my disk%.img").string());
    auto got = read_all(**r);
    REQUIRE(got);
    CHECK(*got == data);
  }
  CHECK(source::file_url_to_path("file:///a/b%2Fc").value() == "/a/b/c");
  for (std::string_view bad : {"file://example.com/x", "file://localhostx/x", "file:///x%2", "file:///x%zz",
                                 "file:///x%00y", "file:relative", "file:///x?y=1", "file:///x#frag", "file://"}) {
    INFO(bad);
    auto r = open_file_source(bad, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
  auto http = open_file_source("http://127.0.0.1/x.img", {});
  REQUIRE_FALSE(http);
  CHECK(http.error().code() == Errc::invalid_argument);
}

TEST_CASE("file source errors", "[source]") {
  TempDir dir;
  auto missing = open_file_source((dir / "nope.img").string(), {});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
  CHECK(missing.error().what() == (dir / "nope.img").string() + ": No such file or directory");

  auto missing_url = open_file_source("file://" + (dir / "nope.img").string(), {});
  REQUIRE_FALSE(missing_url);
  CHECK(missing_url.error().code() == Errc::not_found);

  auto directory = open_file_source(dir.path().string(), {});
  REQUIRE_FALSE(directory);
  CHECK(directory.error().code() == Errc::invalid_argument);
  CHECK(directory.error().what().find("is a directory") != std::string::npos);

  auto empty = open_file_source("", {});
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == Errc::invalid_argument);
}

TEST_CASE("file source refuses an image another process writes", "[source]") {
  TempDir dir;
  auto data = pattern(64 * 1024, 4);
  const auto img = dir / "vm.img";
  write_file(img, data);
  const std::string busy_msg = "source " + img.string() +
                               " is in use; power off the VM that uses it (or pass --force-shared)";
  FileSourceOptions force;
  force.force_shared = true;

  SECTION("a whole-file OFD write lock") {
    OfdLock lock(img, F_WRLCK, 0, 0);
    auto r = open_file_source(img.string(), {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::busy);
    CHECK(r.error().what_with_hint() == busy_msg);
    auto f = open_file_source(img.string(), force);
    REQUIRE(f);
    CHECK(read_all(**f).value() == data);
  }
  SECTION("qemu's lock bytes: write permission (101)") {
    OfdLock lock(img, F_RDLCK, 101, 1);
    auto r = open_file_source(img.string(), {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::busy);
    CHECK(open_file_source(img.string(), force));
  }
  SECTION("qemu's lock bytes: consistent read not shared (200)") {
    OfdLock lock(img, F_RDLCK, 200, 1);
    CHECK(open_file_source(img.string(), {}).error().code() == Errc::busy);
  }
  SECTION("a qemu reader (consistent read 100, unshared write 201) is no conflict") {
    OfdLock a(img, F_RDLCK, 100, 1);
    OfdLock b(img, F_RDLCK, 201, 1);
    OfdLock c(img, F_RDLCK, 203, 1);
    auto r = open_file_source(img.string(), {});
    REQUIRE(r);
    CHECK(read_all(**r).value() == data);
  }
}

TEST_CASE("file source refuses an image qemu-io holds open for writing", "[source]") {
  TempDir dir;
  const auto img = dir / "vm.qcow2";
  cdi::test::sys::run_command({"qemu-img", "create", "-q", "-f", "qcow2", img.string(), "16M"});
  REQUIRE(open_file_source(img.string(), {}));
  {
    Child qemu({"qemu-io", "-f", "qcow2", img.string()});
    // Wait until qemu has taken its locks.
    bool locked = false;
    for (int i = 0; i < 500 && !locked; ++i) {
      int fd = ::open(img.c_str(), O_RDONLY | O_CLOEXEC);
      REQUIRE(fd >= 0);
      locked = source::image_in_use(fd);
      ::close(fd);
      if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(locked);
    REQUIRE(qemu.running());
    auto r = open_file_source(img.string(), {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::busy);
    FileSourceOptions force;
    force.force_shared = true;
    CHECK(open_file_source(img.string(), force));
  }
  // qemu-io exited with its stdin closed: the image is free again.
  CHECK(open_file_source(img.string(), {}));
}

TEST_CASE("file source reads a block device", "[source]") {
  const uint64_t size = 3 << 20;
  ScratchLoop loop(size, 0);
  auto data = pattern(size, 5);
  {
    int fd = ::open(loop.path().c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
    REQUIRE(::fsync(fd) == 0);
    ::close(fd);
  }
  auto r = open_file_source(loop.path().string(), {});
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == "block");
  CHECK(info.size == size);
  CHECK(info.seekable);
  CHECK(info.path == loop.path().string());
  CHECK(read_all(**r, 1 << 20).value() == data);

  // Mounted or claimed by someone else: busy unless forced.
  int holder = ::open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  REQUIRE(holder >= 0);
  auto busy = open_file_source(loop.path().string(), {});
  FileSourceOptions force;
  force.force_shared = true;
  auto forced = open_file_source(loop.path().string(), force);
  ::close(holder);
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code() == Errc::busy);
  CHECK(busy.error().what_with_hint() == "source " + loop.path().string() +
                                   " is in use (mounted or held open exclusively); power off the VM that uses it"
                                   " (or pass --force-shared)");
  REQUIRE(forced);
  CHECK(read_all(**forced).value() == data);
}

TEST_CASE("file source reads stdin", "[source]") {
  TempDir dir;
  auto data = pattern(100000, 6);
  write_file(dir / "in.img", data);
  int saved = ::dup(STDIN_FILENO);
  REQUIRE(saved >= 0);
  int file = ::open((dir / "in.img").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(file >= 0);
  ::dup2(file, STDIN_FILENO);
  ::close(file);
  auto r = open_file_source("-", {});
  std::optional<std::vector<std::byte>> got;
  if (r) got = read_all(**r, 4096).value();
  auto info = r ? (*r)->info() : io::ReaderInfo{};
  r = fail(Errc::internal, "closed");  // the reader's duplicate goes; stdin itself stays
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  REQUIRE(got);
  CHECK(*got == data);
  CHECK(info.name == "stdin");
  CHECK(info.size == data.size());
  CHECK_FALSE(info.seekable);
  CHECK_FALSE(info.path);

  // A pipe on stdin: size unknown.
  int p[2];
  REQUIRE(::pipe(p) == 0);
  saved = ::dup(STDIN_FILENO);
  ::dup2(p[0], STDIN_FILENO);
  ::close(p[0]);
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(p[1], data.data() + off, std::min<size_t>(data.size() - off, 5000));
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(p[1]);
  });
  auto piped = open_file_source("-", {});
  ::dup2(saved, STDIN_FILENO);
  ::close(saved);
  REQUIRE(piped);
  CHECK_FALSE((*piped)->info().size);
  CHECK_FALSE((*piped)->info().seekable);
  auto all = read_all(**piped, 1 << 16);
  writer.join();
  REQUIRE(all);
  CHECK(*all == data);
}

TEST_CASE("file source: a file read once leaves little of it in the page cache", "[source][pagecache]") {
  // On a real ext4 (tmpfs ignores DONTNEED): what was consumed is dropped behind the read
  // position every k_file_source_drop_step bytes, and the rest at the end of the file.
  TempDir backing;
  cdi::test::sys::Ext4Mount fs(backing.path(), 256 * 1024 * 1024);
  constexpr uint64_t k_mib = 1 << 20;
  const uint64_t option = GENERATE(uint64_t{0}, uint64_t{32} << 20);   // 0: the default step
  const uint64_t step = option ? option : source::k_file_source_drop_step;
  const uint64_t size = 3 * step + 5 * k_mib + 4097;   // odd tail
  auto data = pattern(size, 9);
  write_file(fs / "disk.img", data);
  {
    // Clean pages, as a source on disk has (DONTNEED cannot drop pages still dirty).
    util::Fd fd(::open((fs / "disk.img").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(::fsync(fd.get()) == 0);
  }
  auto all_resident = [&] { return cdi::test::sys::resident_bytes(cdi::test::sys::resident_pages(fs / "disk.img", size), 0, size); };
  REQUIRE(all_resident() >= size / 2);   // just written: in the page cache (the control)

  bool drop = GENERATE(true, false);
  FileSourceOptions o;
  o.drop_behind = drop;
  o.drop_step = option;
  auto r = open_file_source((fs / "disk.img").string(), o);
  REQUIRE(r);
  // Read 2.5 steps worth in odd chunks, then look: the first two steps are gone, the position's
  // step (and the readahead past it) may be resident.
  std::vector<std::byte> got;
  std::vector<std::byte> buf(1000003);
  const uint64_t mid = 2 * step + step / 2;
  while (got.size() < mid) {
    auto n = (*r)->read(std::span(buf).first(std::min<size_t>(buf.size(), mid - got.size())));
    REQUIRE(n);
    REQUIRE(*n > 0);
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n));
  }
  auto pages = cdi::test::sys::resident_pages(fs / "disk.img", size);
  uint64_t behind = cdi::test::sys::resident_bytes(pages, 0, 2 * step);
  if (drop)
    CHECK(behind <= 4096);
  else
    CHECK(behind >= step);   // kept: drop_behind = false leaves the cache alone
  // To the end: byte-exact, and (dropping) nothing of the file is left.
  for (;;) {
    auto n = (*r)->read(buf);
    REQUIRE(n);
    if (*n == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n));
  }
  CHECK(got == data);
  if (drop)
    CHECK(all_resident() <= 4096);
  else
    CHECK(all_resident() >= size / 2);
  r->reset();
  // A later reader (qemu-img after our probe) still reads the same bytes.
  auto again = open_file_source((fs / "disk.img").string(), {});
  REQUIRE(again);
  auto all = read_all(**again, size_t{1} << 20);
  REQUIRE(all);
  CHECK(*all == data);
}

TEST_CASE("file random access: consumed ranges leave the page cache in steps, the rest at close", "[source][pagecache]") {
  // The qcow2 decoder reads a local file in host order and hands back what it processed.
  TempDir backing;
  cdi::test::sys::Ext4Mount fs(backing.path(), 128 * 1024 * 1024);
  constexpr uint64_t k_mib = 1 << 20;
  const uint64_t step = GENERATE(uint64_t{0}, uint64_t{4} << 20);   // 0: never dropped
  const uint64_t size = 16 * k_mib + 4097;
  auto data = pattern(size, 11);
  write_file(fs / "disk.qcow2", data);
  {
    util::Fd fd(::open((fs / "disk.qcow2").c_str(), O_RDONLY | O_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(::fsync(fd.get()) == 0);
  }
  auto resident = [&](uint64_t lo, uint64_t hi) {
    return cdi::test::sys::resident_bytes(cdi::test::sys::resident_pages(fs / "disk.qcow2", size), lo, hi);
  };
  REQUIRE(resident(0, size) >= size / 2);   // just written: in the page cache (the control)
  auto ra = io::FileRandomAccess::open((fs / "disk.qcow2").string());
  REQUIRE(ra);
  (*ra)->set_drop_step(step);
  // Odd pieces, each handed back after it was read; a gap of 1 MiB is skipped (never read).
  std::vector<std::byte> buf(999983);
  const uint64_t gap_lo = 9 * k_mib, gap_hi = 10 * k_mib;
  uint64_t at = 0;
  while (at < 12 * k_mib) {
    if (at >= gap_lo && at < gap_hi) at = gap_hi;
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), (at < gap_lo ? gap_lo : 12 * k_mib) - at));
    auto n = io::pread_full(**ra, at, std::span(buf).first(want));
    REQUIRE(n);
    REQUIRE(*n == want);
    CHECK(std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(want), data.begin() + static_cast<ptrdiff_t>(at)));
    (*ra)->consumed({at, want});
    at += want;
  }
  if (step) {
    CHECK(resident(0, 8 * k_mib) <= 4096);                    // two full steps: dropped
    CHECK(resident(gap_lo, gap_hi) >= (gap_hi - gap_lo) / 2);  // never consumed: kept
  } else {
    CHECK(resident(0, 8 * k_mib) >= 4 * k_mib);               // no step: the cache is left alone
  }
  ra->reset();   // closing drops what was consumed and not dropped yet
  if (step)
    CHECK(resident(gap_hi, 12 * k_mib) <= 4096);
  else
    CHECK(resident(gap_hi, 12 * k_mib) >= k_mib);
}

TEST_CASE("file source: a block device read once leaves little of it in the page cache", "[source][pagecache]") {
  constexpr uint64_t k_mib = 1 << 20;
  const uint64_t size = 2 * source::k_file_source_drop_step + 3 * k_mib;
  ScratchLoop loop(size, 0x5A);
  auto r = open_file_source(loop.path().string(), {});
  REQUIRE(r);
  auto got = read_all(**r, size_t{1} << 20);
  REQUIRE(got);
  CHECK(got->size() == size);
  CHECK(std::all_of(got->begin(), got->end(), [](std::byte b) { return b == std::byte{0x5A}; }));
  CHECK(cdi::test::sys::resident_bytes(cdi::test::sys::resident_pages(loop.path(), size), 0, size) <= 4096);
}
