// SPDX-License-Identifier: Apache-2.0
// BlockDeviceSink against real loop devices (needs root; CI runs as root).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "lib/sink/block_device_sink.hpp"
#include "tests/support/loop_device.hpp"

using namespace cdi;
using cdi::sink::BlockDeviceSink;
using cdi::test::sys::read_bytes;
using cdi::test::sys::ScratchLoop;
using cdi::test::sys::TempDir;
using cdi::test::sys::TmpfsMount;

namespace {

constexpr uint64_t k_mib = 1 << 20;

std::vector<std::byte> pattern(size_t n, uint32_t seed) { return cdi::test::sys::nonzero_pattern(n, seed); }

std::vector<std::byte> filled(size_t n, unsigned char c) { return std::vector<std::byte>(n, std::byte{c}); }

struct Extent {
  uint64_t offset;
  uint64_t length;
  bool zero;
};

}  // namespace

TEST_CASE("BlockDeviceSink writes an image onto a dirty device", "[sink][block]") {
  unsigned sector = GENERATE(512u, 4096u);
  const uint64_t dev_size = 16 * k_mib;
  ScratchLoop loop(dev_size, 0xFF, sector);
  const uint64_t image_size = 12 * k_mib + 4097;  // odd, smaller than the device
  auto data = pattern(image_size, 11);

  // Data and zero ranges at unaligned offsets, across the 1 MiB head boundary, many adjacent
  // zero ranges (coalesced), a large aligned zero range, a zero range ending the image.
  std::vector<Extent> ext = {
      {0, 4096, false},
      {4096, 100, true},
      {4196, 5000, false},
      {9196, k_mib - 9196 + 333, true},  // crosses the head boundary
      {k_mib + 333, 3 * k_mib, false},
  };
  uint64_t off = 4 * k_mib + 333;
  for (int i = 0; i < 300; ++i, off += 1000) ext.push_back({off, 1000, true});  // adjacent, unaligned
  ext.push_back({off, 77, false});
  off += 77;
  ext.push_back({off, 8 * k_mib - off, true});
  off = 8 * k_mib;
  ext.push_back({off, 2 * k_mib, true});  // adjacent to the previous one
  off += 2 * k_mib;
  ext.push_back({off, 513, false});
  off += 513;
  ext.push_back({off, image_size - off, true});

  std::vector<std::byte> expected(image_size, std::byte{0});
  uint64_t written = 0, zeroed = 0;
  for (const auto& e : ext) {
    if (!e.zero) {
      std::copy_n(data.begin() + static_cast<ptrdiff_t>(e.offset), e.length, expected.begin() + static_cast<ptrdiff_t>(e.offset));
      written += e.length;
    } else {
      zeroed += e.length;
    }
  }
  REQUIRE(written + zeroed == image_size);

  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  CHECK((*sink)->capacity() == dev_size);
  CHECK((*sink)->logical_sector_size() == sector);
  CHECK((*sink)->info().kind == "block");
  CHECK((*sink)->info().capacity == dev_size);
  REQUIRE((*sink)->check_fits(image_size));
  bool reverse = GENERATE(false, true);
  if (reverse) std::reverse(ext.begin(), ext.end());
  for (const auto& e : ext) {
    if (e.zero)
      REQUIRE((*sink)->zero_range(e.offset, e.length));
    else
      REQUIRE((*sink)->write_at(e.offset, std::span(data).subspan(e.offset, e.length)));
  }
  REQUIRE((*sink)->finish(image_size));
  CHECK((*sink)->stats().bytes_written == written);
  CHECK((*sink)->stats().bytes_zeroed == zeroed);

  CHECK(read_bytes(loop.path(), 0, image_size) == expected);
  // Past the image the device is untouched.
  CHECK(read_bytes(loop.path(), image_size, dev_size - image_size) == filled(dev_size - image_size, 0xFF));
  // And the backing file agrees (the data really left the page cache of the device).
  CHECK(read_bytes(loop.backing(), 0, image_size) == expected);
}

TEST_CASE("BlockDeviceSink holds the head back until finish", "[sink][block]") {
  ScratchLoop loop(8 * k_mib, 0xFF);
  auto data = pattern(4 * k_mib, 12);
  SECTION("head is written last") {
    auto sink = BlockDeviceSink::open(loop.path(), {});
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, data));
    REQUIRE((*sink)->zero_range(data.size(), 4 * k_mib));
    // Before finish: the head is still the old content, the rest is already there.
    CHECK(read_bytes(loop.path(), 0, k_mib) == filled(k_mib, 0xFF));
    CHECK(read_bytes(loop.path(), k_mib, 3 * k_mib) == std::vector(data.begin() + k_mib, data.end()));
    REQUIRE((*sink)->finish(8 * k_mib));
    CHECK(read_bytes(loop.path(), 0, 4 * k_mib) == data);
    CHECK(read_bytes(loop.path(), 4 * k_mib, 4 * k_mib) == filled(4 * k_mib, 0));
    (*sink)->abort();  // no-op after finish
    CHECK(read_bytes(loop.path(), 0, k_mib) == std::vector(data.begin(), data.begin() + k_mib));
  }
  SECTION("abort wipes the head") {
    bool explicit_abort = GENERATE(false, true);
    {
      auto sink = BlockDeviceSink::open(loop.path(), {});
      REQUIRE(sink);
      REQUIRE((*sink)->write_at(0, data));
      if (explicit_abort) {
        (*sink)->abort();
        (*sink)->abort();
        CHECK((*sink)->write_at(0, data).error().code() == Errc::internal);
        CHECK((*sink)->finish(data.size()).error().code() == Errc::internal);
      }
    }
    CHECK(read_bytes(loop.path(), 0, k_mib) == filled(k_mib, 0));
    CHECK(read_bytes(loop.path(), k_mib, 3 * k_mib) == std::vector(data.begin() + k_mib, data.end()));
  }
  SECTION("abort before anything reached the device leaves it untouched") {
    {
      auto sink = BlockDeviceSink::open(loop.path(), {});
      REQUIRE(sink);
      REQUIRE((*sink)->write_at(0, std::span(data.data(), 4096)));   // held back in the head
      (*sink)->abort();
    }
    CHECK(read_bytes(loop.path(), 0, 4 * k_mib) == filled(4 * k_mib, 0xFF));
  }
  SECTION("an image smaller than the head leaves the rest of the head alone") {
    auto small = pattern(5000, 13);
    auto sink = BlockDeviceSink::open(loop.path(), {});
    REQUIRE(sink);
    REQUIRE((*sink)->write_at(0, small));
    REQUIRE((*sink)->finish(small.size()));
    CHECK(read_bytes(loop.path(), 0, small.size()) == small);
    CHECK(read_bytes(loop.path(), small.size(), 100) == filled(100, 0xFF));
  }
}

TEST_CASE("BlockDeviceSink refuses an image larger than the device", "[sink][block]") {
  ScratchLoop loop(4 * k_mib, 0xFF);
  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  auto fits = (*sink)->check_fits(4 * k_mib + 1);
  REQUIRE_FALSE(fits);
  CHECK(fits.error().code() == Errc::limit);
  CHECK(fits.error().what().find("image is larger than the device") != std::string::npos);
  CHECK(fits.error().what().find("4194305 bytes > 4194304 bytes") != std::string::npos);
  CHECK((*sink)->check_fits(4 * k_mib));
  CHECK((*sink)->check_fits(100 * k_mib).error().what().find("100.0 MiB > 4.0 MiB") != std::string::npos);

  auto data = pattern(4096, 14);
  auto w = (*sink)->write_at(4 * k_mib - 100, data);
  REQUIRE_FALSE(w);
  CHECK(w.error().code() == Errc::limit);
  auto z = (*sink)->zero_range(4 * k_mib - 1, 2);
  REQUIRE_FALSE(z);
  CHECK(z.error().code() == Errc::limit);
  CHECK((*sink)->zero_range(UINT64_MAX, 2).error().code() == Errc::limit);
  auto f = (*sink)->finish(5 * k_mib);
  REQUIRE_FALSE(f);
  CHECK(f.error().code() == Errc::limit);
  // Nothing was written: the device is exactly as before, head included (abort only wipes a
  // head when something else already reached the device).
  sink->reset();
  CHECK(read_bytes(loop.path(), 0, 4 * k_mib) == filled(4 * k_mib, 0xFF));
}

TEST_CASE("BlockDeviceSink on a failing device reports io and never success", "[sink][block]") {
  // A 32 MiB loop over a sparse file on a 4 MiB tmpfs: writes past ~4 MiB fail in writeback.
  TmpfsMount fs("4M");
  cdi::test::sys::make_backing_file(fs.path() / "small.img", 32 * k_mib);
  cdi::test::sys::LoopDevice loop(fs.path() / "small.img");
  auto data = pattern(k_mib, 15);
  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  Result<void> r;
  for (uint64_t i = 0; i < 24 && r; ++i) r = (*sink)->write_at(i * k_mib, data);
  if (r) r = (*sink)->finish(24 * k_mib);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::io);
  CHECK(r.error().what().find(loop.path().string()) != std::string::npos);
}

TEST_CASE("BlockDeviceSink write errors beyond the writeback window are not lost", "[sink][block]") {
  // 160 MiB of data onto a device that holds only 8 MiB: the error shows at a periodic
  // sync_file_range (which consumes it) or at finish(); either way the import fails.
  TmpfsMount fs("8M");
  cdi::test::sys::make_backing_file(fs.path() / "small.img", 256 * k_mib);
  cdi::test::sys::LoopDevice loop(fs.path() / "small.img");
  auto data = pattern(4 * k_mib, 16);
  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  Result<void> r;
  uint64_t i = 0;
  for (; i < 40 && r; ++i) r = (*sink)->write_at(i * data.size(), data);
  if (r) r = (*sink)->finish(40 * data.size());
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::io);
}

TEST_CASE("BlockDeviceSink refuses a device in use", "[sink][block]") {
  ScratchLoop loop(4 * k_mib, 0);
  int holder = ::open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  REQUIRE(holder >= 0);
  auto r = BlockDeviceSink::open(loop.path(), {});
  ::close(holder);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::busy);
  CHECK(r.error().what() == "device " + loop.path().string() + " is in use (mounted or held open exclusively)");

  // And while we hold it, nobody else gets it exclusively.
  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  CHECK(::open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC) == -1);
  CHECK(errno == EBUSY);
  REQUIRE((*sink)->finish(0));
  int again = ::open(loop.path().c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);  // released by finish
  CHECK(again >= 0);
  if (again >= 0) ::close(again);
}

TEST_CASE("BlockDeviceSink open errors", "[sink][block]") {
  TempDir dir;
  auto missing = BlockDeviceSink::open(dir / "nope", {});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
  cdi::test::sys::make_backing_file(dir / "file.img", 4096);
  auto regular = BlockDeviceSink::open(dir / "file.img", {});
  REQUIRE_FALSE(regular);
  CHECK(regular.error().code() == Errc::invalid_argument);
}

TEST_CASE("BlockDeviceSink direct path for an external writer", "[sink][block]") {
  ScratchLoop loop(4 * k_mib, 0xFF);
  auto data = pattern(2 * k_mib, 17);
  auto sink = BlockDeviceSink::open(loop.path(), {});
  REQUIRE(sink);
  REQUIRE((*sink)->direct_path() == loop.path().string());
  CHECK((*sink)->prepare_direct(5 * k_mib).error().code() == Errc::limit);
  REQUIRE((*sink)->prepare_direct(data.size()));
  int fd = ::open(loop.path().c_str(), O_WRONLY | O_CLOEXEC);  // the external writer, not exclusive
  REQUIRE(fd >= 0);
  CHECK(::pwrite(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(data.size()));
  ::close(fd);
  CHECK((*sink)->write_at(0, data).error().code() == Errc::internal);
  REQUIRE((*sink)->finish(data.size()));
  CHECK(read_bytes(loop.path(), 0, data.size()) == data);
  CHECK_FALSE((*sink)->direct_path());
}
