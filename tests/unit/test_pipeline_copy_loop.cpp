// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "formats/disk/disk_probe.hpp"
#include "lib/pipeline/copy_loop.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/support/memory_sink.hpp"

using namespace cdi;

namespace {

std::vector<std::byte> pattern(size_t n, uint32_t seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = std::byte(rng() | 1);  // never zero
  return v;
}

// random 100 KiB, 3 MiB of zeros, random 5000 bytes, 7 zero bytes at the end (odd size)
std::vector<std::byte> sample() {
  std::vector<std::byte> v = pattern(100 * 1024, 1);
  v.resize(v.size() + 3 * 1024 * 1024);
  auto tail = pattern(5000, 2);
  v.insert(v.end(), tail.begin(), tail.end());
  v.resize(v.size() + 7);
  return v;
}

void put_be32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (24 - 8 * i));
}
void put_be64(std::byte* p, uint64_t v) {
  put_be32(p, uint32_t(v >> 32));
  put_be32(p + 4, uint32_t(v));
}

std::array<std::byte, 512> vhd_footer(uint64_t size) {
  std::array<std::byte, 512> f{};
  std::memcpy(f.data(), "conectix", 8);
  put_be32(f.data() + 8, 2);
  put_be32(f.data() + 12, 0x00010000);
  put_be64(f.data() + 16, ~uint64_t{0});
  put_be64(f.data() + 40, size);
  put_be64(f.data() + 48, size);
  put_be32(f.data() + 60, 2);
  uint32_t sum = 0;
  for (auto b : f) sum += uint8_t(b);
  put_be32(f.data() + 64, ~sum);
  return f;
}

}  // namespace

TEST_CASE("pipeline::copy_raw golden output at odd chunk sizes", "[copy]") {
  auto data = sample();
  for (size_t chunk : {size_t(1) << 20, size_t(4096), size_t(7), size_t(1)}) {
    if (chunk == 1) data.resize(200 * 1024);  // keep byte-at-a-time affordable
    INFO("chunk " << chunk);
    test::MemoryReader in(data, chunk);
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE(r);
    CHECK(r->image_size == data.size());
    CHECK_FALSE(r->fixed_vhd);
    REQUIRE(out.finish(r->image_size));
    CHECK(out.data() == data);
    CHECK(r->data_bytes + r->zero_bytes == data.size());
  }
}

TEST_CASE("pipeline::copy_raw sends zero blocks as zero ranges", "[copy]") {
  auto data = sample();
  test::MemoryReader in(data);
  test::MemorySink out;
  auto r = pipeline::copy_raw(in, out, {});
  REQUIRE(r);
  CHECK(r->zero_bytes >= 3 * 1024 * 1024 - 4096);
  CHECK(out.zeroes <= 3);   // coalesced across 1 MiB blocks
  REQUIRE(out.finish(r->image_size));
  CHECK(out.data() == data);
}

TEST_CASE("pipeline::copy_raw drops a fixed VHD footer", "[copy]") {
  auto disk = pattern(3 * 1024 * 1024, 3);
  auto data = disk;
  auto f = vhd_footer(disk.size());
  data.insert(data.end(), f.begin(), f.end());
  for (size_t chunk : {size_t(1) << 20, size_t(4096), size_t(7)}) {
    test::MemoryReader in(data, chunk);
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE(r);
    CHECK(r->fixed_vhd);
    CHECK(r->image_size == disk.size());
    REQUIRE(out.finish(r->image_size));
    CHECK(out.data() == disk);
  }
  SECTION("a footer whose size does not match is kept as data") {
    auto g = vhd_footer(disk.size() + 512);
    auto bad = disk;
    bad.insert(bad.end(), g.begin(), g.end());
    test::MemoryReader in(bad);
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE(r);
    CHECK_FALSE(r->fixed_vhd);
    CHECK(r->image_size == bad.size());
  }
}

// The last 512 bytes of an Apple disk image (UDIF): "koly", version 4, header size 512, ...
std::array<std::byte, 512> koly_trailer() {
  std::array<std::byte, 512> t{};
  std::memcpy(t.data(), "koly", 4);
  put_be32(t.data() + 4, 4);
  put_be32(t.data() + 8, 512);
  put_be32(t.data() + 12, 1);
  put_be64(t.data() + 0x1ec, 2048);  // sector count
  return t;
}

TEST_CASE("pipeline::copy_raw refuses a DMG (koly trailer) as unsupported", "[copy]") {
  auto data = pattern(3 * 1024 * 1024 + 100, 4);
  auto t = koly_trailer();
  data.insert(data.end(), t.begin(), t.end());
  for (size_t chunk : {size_t(1) << 20, size_t(4096), size_t(7)}) {
    INFO("chunk " << chunk);
    test::MemoryReader in(data, chunk);
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::unsupported);
    CHECK(r.error().what() ==
          "image format dmg (Apple disk image: \"koly\" trailer at offset 3145828) is not supported (supported: raw, "
          "qcow2, vmdk, vhd, vhdx, vdi)");
  }
  SECTION("a stream of just the trailer") {
    test::MemoryReader in(std::vector<std::byte>(t.begin(), t.end()));
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::unsupported);
  }
  SECTION("verbatim copies (clones, spooling) do not look") {
    test::MemoryReader in(data);
    test::MemorySink out;
    pipeline::CopyOptions o;
    o.detect_fixed_vhd = false;
    auto r = pipeline::copy_raw(in, out, o);
    REQUIRE(r);
    REQUIRE(out.finish(r->image_size));
    CHECK(out.data() == data);
  }
  SECTION("\"koly\" elsewhere, or with another version or header size, is data") {
    for (int variant = 0; variant < 3; ++variant) {
      auto d = data;
      if (variant == 0) d.resize(d.size() + 1);  // not in the last 512 bytes
      if (variant == 1) put_be32(d.data() + d.size() - 512 + 4, 3);
      if (variant == 2) put_be32(d.data() + d.size() - 512 + 8, 1024);
      INFO("variant " << variant);
      test::MemoryReader in(d);
      test::MemorySink out;
      auto r = pipeline::copy_raw(in, out, {});
      REQUIRE(r);
      CHECK(r->image_size == d.size());
    }
  }
}

TEST_CASE("pipeline::copy_raw enforces the size bound", "[copy]") {
  auto data = sample();
  test::MemoryReader in(data);
  test::MemorySink out;
  pipeline::CopyOptions o;
  o.max_size = 1 << 20;
  o.max_size_what = "--image-size";
  auto r = pipeline::copy_raw(in, out, o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::limit);
  CHECK_THAT(r.error().what(), Catch::Contains("larger than --image-size"));
}

TEST_CASE("pipeline::copy_raw passes upstream and sink errors through", "[copy]") {
  SECTION("upstream") {
    test::FailingReader in(pattern(3 << 20, 4), Error(Errc::corrupt_input, "bad CRC").context("gzip"));
    test::MemorySink out;
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
    CHECK(r.error().what() == "gzip: bad CRC");
  }
  SECTION("sink") {
    auto data = pattern(5 << 20, 5);
    test::MemoryReader in(data);
    test::MemorySink out(2 << 20);   // capacity smaller than the stream
    auto r = pipeline::copy_raw(in, out, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::limit);
  }
  SECTION("cancel") {
    auto data = pattern(5 << 20, 6);
    test::MemoryReader in(data);
    test::MemorySink out;
    util::CancelToken tok;
    tok.cancel();
    pipeline::CopyOptions o;
    o.cancel = &tok;
    auto r = pipeline::copy_raw(in, out, o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::cancelled);
  }
}

TEST_CASE("formats::disk::probe recognises disk formats by magic", "[disk]") {
  using formats::disk::DiskFormat;
  auto head = [](std::string_view s, size_t at = 0) {
    std::vector<std::byte> v(at + s.size() + 64);
    std::memcpy(v.data() + at, s.data(), s.size());
    return v;
  };
  using namespace std::string_view_literals;
  CHECK(formats::disk::probe(head("QFI\xfb\0\0\0\3"sv)).format == DiskFormat::qcow2);
  CHECK(formats::disk::probe(head("QFI\xfb\0\0\0\2"sv)).format == DiskFormat::qcow2);
  CHECK(formats::disk::probe(head("QFI\xfb\0\0\0\1"sv)).format == DiskFormat::qcow1);
  CHECK(formats::disk::probe(head("KDMV"sv)).format == DiskFormat::vmdk);
  CHECK(formats::disk::probe(head("vhdxfile"sv)).format == DiskFormat::vhdx);
  CHECK(formats::disk::probe(head("conectix"sv)).format == DiskFormat::vhd);
  CHECK(formats::disk::probe(head("\x7f\x10\xda\xbe"sv, 0x40)).format == DiskFormat::vdi);
  CHECK(formats::disk::probe(head("CD001"sv, 0x8001)).format == DiskFormat::iso);
  CHECK(formats::disk::probe(head("LUKS\xba\xbe"sv)).format == DiskFormat::luks);
  CHECK(formats::disk::probe(head("QED\0"sv)).format == DiskFormat::qed);
  CHECK(formats::disk::probe(head("hello"sv)).format == DiskFormat::raw);
  CHECK(formats::disk::probe({}).format == DiskFormat::raw);
  CHECK(formats::disk::refused(DiskFormat::luks));
  CHECK_FALSE(formats::disk::refused(DiskFormat::vdi));
  CHECK(formats::disk::qemu_driver(DiskFormat::vhd) == "vpc");
  auto f = vhd_footer(1 << 20);
  CHECK(formats::disk::fixed_vhd_footer_size(f) == (1u << 20));
  f[100] = std::byte{1};   // checksum no longer matches
  CHECK_FALSE(formats::disk::fixed_vhd_footer_size(f));
  CHECK_FALSE(formats::disk::is_dmg_trailer(f));
  CHECK(formats::disk::is_dmg_trailer(koly_trailer()));
}

#include "lib/pipeline/qemu_img.hpp"

TEST_CASE("pipeline::parse_progress reads qemu-img -p lines", "[qemu]") {
  CHECK(pipeline::parse_progress("    (45.34/100%)").value() == Approx(45.34));
  CHECK(pipeline::parse_progress("(100.00/100%)").value() == Approx(100.0));
  CHECK(pipeline::parse_progress("(0.00/100%)").value() == Approx(0.0));
  CHECK_FALSE(pipeline::parse_progress("45.34"));
  CHECK_FALSE(pipeline::parse_progress("(abc/100%)"));
  CHECK_FALSE(pipeline::parse_progress("(/100%)"));
  CHECK_FALSE(pipeline::parse_progress("(250.0/100%)"));
}
