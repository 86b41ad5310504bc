// SPDX-License-Identifier: Apache-2.0
// WritebackThrottle (lib/sink/writeback.hpp): the syscall sequence with fake syscalls, and the
// page-cache footprint of FileSink / BlockDeviceSink on a real ext4 / loop device
// (tests/support/page_cache.hpp: mincore() on an mmap of the target). Needs root and mkfs.ext4.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ostream>

#include "lib/sink/block_device_sink.hpp"
#include "lib/sink/file_sink.hpp"
#include "lib/sink/open_sink.hpp"
#include "lib/sink/writeback.hpp"
#include "lib/util/fd.hpp"
#include "tests/support/loop_device.hpp"
#include "tests/support/page_cache.hpp"

using namespace cdi;
using cdi::sink::BlockDeviceSink;
using cdi::sink::FileSink;
using cdi::sink::detail::WritebackSyscalls;
using cdi::sink::detail::WritebackThrottle;
using cdi::test::sys::Ext4Mount;
using cdi::test::sys::read_bytes;
using cdi::test::sys::resident_bytes;
using cdi::test::sys::resident_pages;
using cdi::test::sys::ScratchLoop;
using cdi::test::sys::TempDir;
using cdi::test::sys::TmpfsMount;

namespace {

constexpr uint64_t k_mib = 1 << 20;

std::vector<std::byte> pattern(size_t n, uint32_t seed) { return cdi::test::sys::nonzero_pattern(n, seed); }

// ---- fake syscalls ---------------------------------------------------------------------------

struct Call {
  enum Kind { sync, fadvise } kind;
  uint64_t offset, length;
  unsigned flags;   // sync_file_range flags
  int advice;       // fadvise advice
  bool operator==(const Call&) const = default;
};

struct Fake {
  std::vector<Call> calls;
  // The n-th sync_file_range call (0-based) fails with err; -1: none fails.
  int fail_sync_at = -1;
  int fail_errno = EIO;
  int eintr_at = -1;          // this sync call fails once with EINTR (then is retried)
  int fadvise_result = 0;     // what every fadvise returns
  int sync_count = 0;
};
Fake* g_fake = nullptr;

int fake_sync(int, off_t offset, off_t length, unsigned flags) {
  g_fake->calls.push_back({Call::sync, static_cast<uint64_t>(offset), static_cast<uint64_t>(length), flags, 0});
  int n = g_fake->sync_count++;
  if (n == g_fake->eintr_at) {
    g_fake->eintr_at = -1;
    --g_fake->sync_count;   // the retry is the same call
    errno = EINTR;
    return -1;
  }
  if (n == g_fake->fail_sync_at) {
    errno = g_fake->fail_errno;
    return -1;
  }
  return 0;
}
int fake_fadvise(int, off_t offset, off_t length, int advice) {
  g_fake->calls.push_back({Call::fadvise, static_cast<uint64_t>(offset), static_cast<uint64_t>(length), 0, advice});
  return g_fake->fadvise_result;
}
constexpr WritebackSyscalls k_fake{fake_sync, fake_fadvise};

std::ostream& operator<<(std::ostream& os, const Call& c) {
  if (c.kind == Call::sync) return os << "sync(" << c.offset << "+" << c.length << ", flags " << c.flags << ")";
  return os << "fadvise(" << c.offset << "+" << c.length << ", advice " << c.advice << ")";
}

struct FakeScope {
  Fake fake;
  FakeScope() { g_fake = &fake; }
  ~FakeScope() { g_fake = nullptr; }
};

constexpr unsigned k_start = SYNC_FILE_RANGE_WRITE;
constexpr unsigned k_wait = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;

Call start(uint64_t lo, uint64_t hi) { return {Call::sync, lo, hi - lo, k_start, 0}; }
Call wait(uint64_t lo, uint64_t hi) { return {Call::sync, lo, hi - lo, k_wait, 0}; }
Call drop(uint64_t lo, uint64_t hi) { return {Call::fadvise, lo, hi - lo, 0, POSIX_FADV_DONTNEED}; }

}  // namespace

TEST_CASE("WritebackThrottle: start, wait for the previous window, then drop it", "[sink][writeback]") {
  FakeScope f;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t pmd = cdi::sink::detail::drop_alignment();
  WritebackThrottle t(4 * k_mib, k_fake);
  CHECK(t.window() == 4 * k_mib);
  // Four windows of 4 MiB, in 1 MiB writes.
  for (uint64_t i = 0; i < 16; ++i) REQUIRE(t.note_written(3, i * k_mib, k_mib, "t"));
  std::vector<Call> want = {
      start(0, 4 * k_mib),                                                          // first window: nothing before it
      start(4 * k_mib, 8 * k_mib), wait(0, 4 * k_mib), drop(0, 4 * k_mib),
      start(8 * k_mib, 12 * k_mib), wait(4 * k_mib, 8 * k_mib), drop(4 * k_mib / pmd * pmd, 8 * k_mib),
      start(12 * k_mib, 16 * k_mib), wait(8 * k_mib, 12 * k_mib), drop(8 * k_mib / pmd * pmd, 12 * k_mib),
  };
  CHECK(f.fake.calls == want);
  // At the end the sink drops everything it wrote (after its own fsync).
  f.fake.calls.clear();
  t.release(3, 0, 0);
  t.release(3, 0, 5000);
  CHECK(f.fake.calls == std::vector<Call>{{Call::fadvise, 0, 0, 0, POSIX_FADV_DONTNEED}, drop(0, (5000 + page - 1) / page * page)});
}

TEST_CASE("WritebackThrottle: odd writes straddling windows, out of order, aligned drops", "[sink][writeback]") {
  FakeScope f;
  // Drops start at a large-folio (PMD) boundary and end at a page boundary (writeback.cpp).
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t pmd = cdi::sink::detail::drop_alignment();
  CHECK(pmd == page * page / 8);
  auto down = [](uint64_t x, uint64_t a) { return x / a * a; };
  WritebackThrottle t(k_mib, k_fake);
  // A window closes on the write that reaches 1 MiB of data: its span is what those writes covered.
  const uint64_t a = 700001, b = 400003;          // a + b > 1 MiB: the second write closes window 1
  REQUIRE(t.note_written(3, 0, a, "t"));
  CHECK(f.fake.calls.empty());
  REQUIRE(t.note_written(3, a, b, "t"));
  REQUIRE(f.fake.calls == std::vector<Call>{start(0, a + b)});
  // Window 2: out of order, with a gap (a hole) in the middle; it spans lowest to highest byte.
  const uint64_t base = 5 * k_mib + 123;
  REQUIRE(t.note_written(3, base + 600000, 500000, "t"));
  REQUIRE(t.note_written(3, base, 548577, "t"));   // 1048577 bytes in the window: closes it
  std::vector<Call> want = {start(0, a + b), start(base, base + 1100000), wait(0, a + b), drop(0, down(a + b, page))};
  REQUIRE(f.fake.calls == want);
  // Window 3, one huge write: the drop of window 2 starts at the PMD below it.
  REQUIRE(t.note_written(3, 9 * k_mib + 1, 3 * k_mib, "t"));
  want.push_back(start(9 * k_mib + 1, 12 * k_mib + 1));
  want.push_back(wait(base, base + 1100000));
  want.push_back(drop(down(base, pmd), down(base + 1100000, page)));
  CHECK(f.fake.calls == want);
  // Empty writes count for nothing.
  REQUIRE(t.note_written(3, 20 * k_mib, 0, "t"));
  CHECK(f.fake.calls.size() == want.size());
}

TEST_CASE("WritebackThrottle: window sizes", "[sink][writeback]") {
  using cdi::sink::detail::effective_window;
  CHECK(effective_window(0) == cdi::sink::detail::k_writeback_window);
  CHECK(effective_window(1) == cdi::sink::detail::k_min_writeback_window);
  CHECK(effective_window(16 * k_mib) == 16 * k_mib);
  CHECK(WritebackThrottle().window() == 64 * k_mib);   // the default is unchanged
  CHECK(cdi::sink::SinkOptions{}.writeback_window == 64 * k_mib);
  CHECK(cdi::sink::FileSinkOptions{}.writeback_window == 64 * k_mib);
  CHECK(cdi::sink::BlockSinkOptions{}.writeback_window == 64 * k_mib);
  FakeScope f;
  WritebackThrottle t(1000, k_fake);   // raised to 1 MiB
  REQUIRE(t.note_written(3, 0, k_mib - 1, "t"));
  CHECK(f.fake.calls.empty());
  REQUIRE(t.note_written(3, k_mib - 1, 1, "t"));
  CHECK(f.fake.calls.size() == 1);
}

TEST_CASE("WritebackThrottle: a writeback error is returned, and the window is not dropped", "[sink][writeback]") {
  FakeScope f;
  WritebackThrottle t(k_mib, k_fake);
  int err = GENERATE(EIO, ENOSPC);
  int fail_at = GENERATE(1, 2);   // sync call 1: starting window 2; sync call 2: waiting for window 1
  f.fake.fail_sync_at = fail_at;
  f.fake.fail_errno = err;
  REQUIRE(t.note_written(3, 0, k_mib, "/dev/target"));
  auto r = t.note_written(3, k_mib, k_mib, "/dev/target");
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::io);
  CHECK(r.error().sys_errno() == err);
  CHECK(r.error().what().find("flushing /dev/target") != std::string::npos);
  CHECK((r.error().reason() == Reason::no_space) == (err == ENOSPC));
  // Nothing was advised away after the failure.
  CHECK(std::none_of(f.fake.calls.begin(), f.fake.calls.end(), [](const Call& c) { return c.kind == Call::fadvise; }));
  CHECK(static_cast<int>(f.fake.calls.size()) == fail_at + 1);
}

TEST_CASE("WritebackThrottle: EINTR is retried, unsupported syncs and failed advice are not errors", "[sink][writeback]") {
  FakeScope f;
  WritebackThrottle t(k_mib, k_fake);
  SECTION("EINTR") {
    f.fake.eintr_at = 2;   // the wait for window 1
    REQUIRE(t.note_written(3, 0, k_mib, "t"));
    REQUIRE(t.note_written(3, k_mib, k_mib, "t"));
    CHECK(f.fake.calls == std::vector<Call>{start(0, k_mib), start(k_mib, 2 * k_mib), wait(0, k_mib), wait(0, k_mib),
                                            drop(0, k_mib)});
  }
  SECTION("unsupported") {
    int err = GENERATE(ENOSYS, EOPNOTSUPP, ESPIPE);
    f.fake.fail_sync_at = 2;
    f.fake.fail_errno = err;
    REQUIRE(t.note_written(3, 0, k_mib, "t"));
    REQUIRE(t.note_written(3, k_mib, k_mib, "t"));
    CHECK(f.fake.calls.back() == drop(0, k_mib));
  }
  SECTION("advice refused") {
    f.fake.fadvise_result = EINVAL;
    for (uint64_t i = 0; i < 4; ++i) REQUIRE(t.note_written(3, i * k_mib, k_mib, "t"));
    t.release(3, 0, 0);
    CHECK(f.fake.calls.size() == 1 + 3 * 3 + 1);   // 4 starts, 3 waits, 3 drops, the release
  }
}

TEST_CASE("FileSink on ext4: written windows leave the page cache, the file is byte-exact", "[sink][writeback][file_sink]") {
  TempDir backing;
  Ext4Mount fs(backing.path(), 256 * k_mib);
  const uint64_t window = 4 * k_mib;
  const uint64_t size = 64 * k_mib + 12345;
  auto data = pattern(size, 21);
  cdi::sink::FileSinkOptions o;
  o.writeback_window = window;
  bool named = GENERATE(false, true);
  o.force_named_temp = named;
  auto sink = FileSink::create(fs / "disk.img", o);
  REQUIRE(sink);
  // Odd write sizes, so writes straddle the window boundaries, with a hole in the middle.
  const uint64_t hole_lo = 30 * k_mib + 5, hole_hi = 33 * k_mib + 7;
  std::vector<std::byte> expected = data;
  std::fill(expected.begin() + static_cast<ptrdiff_t>(hole_lo), expected.begin() + static_cast<ptrdiff_t>(hole_hi), std::byte{0});
  uint64_t off = 0, step = 333333;
  while (off < size) {
    uint64_t len = std::min(step, size - off);
    if (off + len <= hole_lo || off >= hole_hi) {
      REQUIRE((*sink)->write_at(off, std::span(data).subspan(off, len)));
    } else {   // split around the hole
      if (off < hole_lo) REQUIRE((*sink)->write_at(off, std::span(data).subspan(off, hole_lo - off)));
      REQUIRE((*sink)->zero_range(std::max(off, hole_lo), std::min(off + len, hole_hi) - std::max(off, hole_lo)));
      if (off + len > hole_hi) REQUIRE((*sink)->write_at(hole_hi, std::span(data).subspan(hole_hi, off + len - hole_hi)));
    }
    off += len;
    step = step % 2 ? step + 4096 : step + 1;
  }
  // Before finish: every window but the last two has been written back and dropped. Data still
  // resident is at most the two newest windows plus the unflushed tail.
  auto pages = resident_pages((*sink)->temp_path(), size);
  const uint64_t early_end = size - 3 * window;
  CHECK(resident_bytes(pages, 0, early_end) <= 8 * 4096);   // a few straddling pages at most
  CHECK(resident_bytes(pages, 0, size) <= 3 * window);
  CHECK(resident_bytes(pages, size - window / 2, size) > 0);   // the mechanism is DONTNEED, not an empty cache
  REQUIRE((*sink)->finish(size));
  // After finish (fsync, then drop): nothing of the file is left in the page cache.
  CHECK(resident_bytes(resident_pages(fs / "disk.img", size), 0, size) <= 2 * 4096);
  CHECK(std::filesystem::file_size(fs / "disk.img") == size);
  CHECK(read_bytes(fs / "disk.img", 0, size) == expected);
}

TEST_CASE("FileSink on ext4: without the throttle's drop the file would stay resident", "[sink][writeback][file_sink]") {
  // The control for the test above: the same writes through a plain descriptor stay in the page
  // cache, so "not resident" there is the sink's doing.
  TempDir backing;
  Ext4Mount fs(backing.path(), 128 * k_mib);
  const uint64_t size = 32 * k_mib;
  auto data = pattern(size, 22);
  util::Fd fd(::open((fs / "plain.img").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd);
  REQUIRE(::pwrite(fd.get(), data.data(), size, 0) == static_cast<ssize_t>(size));
  REQUIRE(::fsync(fd.get()) == 0);
  CHECK(resident_bytes(resident_pages(fs / "plain.img", size), 0, size) >= size / 2);
}

TEST_CASE("FileSink on ext4: a writeback error fails the import with io", "[sink][writeback][file_sink]") {
  // The ext4 image lives on a 12 MiB tmpfs: once the tmpfs is full, the loop device fails the
  // writes of delayed-allocated data, which only writeback sees. The error must reach the caller
  // (at a window's wait or at finish's fsync): never a successful import.
  TmpfsMount small("12M");
  Ext4Mount fs(small.path(), 256 * k_mib);
  auto data = pattern(2 * k_mib + 511, 23);
  cdi::sink::FileSinkOptions o;
  o.writeback_window = 2 * k_mib;
  auto sink = FileSink::create(fs / "disk.img", o);
  REQUIRE(sink);
  Result<void> r;
  uint64_t i = 0;
  for (; i < 40 && r; ++i) r = (*sink)->write_at(i * data.size(), data);
  if (r) r = (*sink)->finish(40 * data.size());
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::io);
  CHECK(r.error().what().find("disk.img") != std::string::npos);
  INFO("failed after " << i << " writes: " << r.error().what());
  CHECK(i < 40);   // seen at a window, before finish
  (*sink)->abort();
  CHECK_FALSE(std::filesystem::exists(fs / "disk.img"));
}

TEST_CASE("BlockDeviceSink: written windows leave the device's page cache", "[sink][writeback][block]") {
  const uint64_t dev_size = 48 * k_mib;
  ScratchLoop loop(dev_size, 0xFF);
  const uint64_t window = 2 * k_mib;
  cdi::sink::BlockSinkOptions o;
  o.writeback_window = window;
  auto sink = BlockDeviceSink::open(loop.path(), o);
  REQUIRE(sink);
  const uint64_t size = 40 * k_mib + 777;
  auto data = pattern(size, 24);
  for (uint64_t off = 0, step = 100003; off < size; off += step, step += 4097)
    REQUIRE((*sink)->write_at(off, std::span(data).subspan(off, std::min(step, size - off))));
  auto pages = resident_pages(loop.path(), dev_size);
  CHECK(resident_bytes(pages, 0, size - 3 * window) <= 8 * 4096);
  CHECK(resident_bytes(pages, 0, dev_size) <= 3 * window);
  REQUIRE((*sink)->finish(size));
  CHECK(resident_bytes(resident_pages(loop.path(), dev_size), 0, dev_size) <= 2 * 4096);
  CHECK(read_bytes(loop.path(), 0, size) == data);
  CHECK(read_bytes(loop.path(), size, 4096) == std::vector<std::byte>(4096, std::byte{0xFF}));
}

TEST_CASE("open_sink passes writeback_window to the sink", "[sink][writeback]") {
  TempDir backing;
  Ext4Mount fs(backing.path(), 64 * k_mib);
  cdi::sink::SinkOptions so;
  so.writeback_window = 1 * k_mib;
  auto sink = cdi::sink::open_sink(fs / "x.img", so);
  REQUIRE(sink);
  auto* file = dynamic_cast<FileSink*>(sink->get());
  REQUIRE(file);
  auto data = pattern(8 * k_mib, 25);
  for (uint64_t i = 0; i < 8; ++i) REQUIRE((*sink)->write_at(i * k_mib, std::span(data).subspan(i * k_mib, k_mib)));
  // 1 MiB windows: all but the newest ~2 MiB are gone (64 MiB windows would have flushed nothing).
  auto pages = resident_pages(file->temp_path(), 8 * k_mib);
  CHECK(resident_bytes(pages, 0, 5 * k_mib) <= 4 * 4096);
  REQUIRE((*sink)->finish(8 * k_mib));
  CHECK(read_bytes(fs / "x.img", 0, 8 * k_mib) == data);
}

TEST_CASE("FileSink on ext4: an external writer's pages are dropped at finish", "[sink][writeback][file_sink]") {
  // qemu-img writes the temporary file itself (direct_path); finish() fsyncs and drops them.
  TempDir backing;
  Ext4Mount fs(backing.path(), 64 * k_mib);
  const uint64_t size = 16 * k_mib + 100;
  auto data = pattern(size, 26);
  auto sink = FileSink::create(fs / "ext.img", {});
  REQUIRE(sink);
  REQUIRE((*sink)->prepare_direct(size));
  auto path = (*sink)->direct_path();
  REQUIRE(path);
  {
    util::Fd fd(::open(path->c_str(), O_WRONLY | O_CLOEXEC));
    REQUIRE(fd);
    REQUIRE(::pwrite(fd.get(), data.data(), size, 0) == static_cast<ssize_t>(size));
  }
  CHECK(resident_bytes(resident_pages(*path, size), 0, size) >= size / 2);   // the writer's pages
  REQUIRE((*sink)->finish(size));
  CHECK(resident_bytes(resident_pages(fs / "ext.img", size), 0, size) <= 2 * 4096);
  CHECK(read_bytes(fs / "ext.img", 0, size) == data);
}
