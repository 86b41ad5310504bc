// SPDX-License-Identifier: Apache-2.0
// run_import with the clone content types (CDI host-assisted clone bodies): snappy-framed raw
// device content written verbatim, snappy-framed tars extracted (staged) into the target
// directory, failures leaving nothing complete-looking. The source here is a local file of the
// snappy stream; the upload server's transport checks are tested in test_server_upload_server.cpp
// and tests/e2e/test_clone_target.sh.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/snappy/snappy_encoder.hpp"
#include "lib/pipeline/import.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/unit/test_formats_tar_support.hpp"

using namespace cdi;
namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;
using cdi::test::MemoryReader;
using cdi::test::tar::TempDir;

namespace {

Bytes snappy_of(const Bytes& raw) {
  auto enc = formats::snappy::open_encoder(std::make_unique<MemoryReader>(raw, 50000), {});
  REQUIRE(enc);
  Bytes out;
  std::vector<std::byte> buf(1 << 16);
  for (;;) {
    auto n = (*enc)->read(buf);
    REQUIRE(n);
    if (*n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
  }
  return out;
}

void put(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// 2 MiB that start like a qcow2 image (magic, version 3, 1 GiB virtual size) with 1 MiB of
// zeros in the middle: a clone must copy it, never convert it.
Bytes qcow2_looking_device() {
  Bytes b = cdi::test::tar::pattern(2u << 20, 9);
  std::memset(b.data(), 0, 4096);
  const unsigned char hdr[] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
  std::memcpy(b.data(), hdr, sizeof hdr);
  b[24 + 3] = std::byte{0x40};   // size = 0x40000000 (big endian at offset 24)
  b[20 + 3] = std::byte{16};     // cluster_bits
  std::memset(b.data() + (512u << 10), 0, 1u << 20);
  return b;
}

pipeline::ImportOptions clone_options(const fs::path& src, const fs::path& dest, pipeline::ContentType t) {
  pipeline::ImportOptions o;
  o.url = src.string();
  o.dest = dest.string();
  o.content_type = t;
  return o;
}

}  // namespace

TEST_CASE("clone content types are the two clone kinds", "[pipeline][clone]") {
  CHECK(pipeline::is_clone(pipeline::ContentType::blockdevice_clone));
  CHECK(pipeline::is_clone(pipeline::ContentType::filesystem_clone));
  CHECK_FALSE(pipeline::is_clone(pipeline::ContentType::kubevirt));
  CHECK_FALSE(pipeline::is_clone(pipeline::ContentType::archive));
}

TEST_CASE("blockdevice-clone: the decoded bytes land verbatim in the file target", "[pipeline][clone]") {
  TempDir d;
  auto raw = qcow2_looking_device();
  put(d.path() / "body.sz", snappy_of(raw));
  SECTION("a file path") {
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "disk.img",
                                                pipeline::ContentType::blockdevice_clone));
    REQUIRE(r);
    CHECK(r->content_type == pipeline::ContentType::blockdevice_clone);
    CHECK(r->chain == std::vector<std::string>{"file", "snappy", "raw"});
    CHECK(r->format == "raw");
    CHECK(r->converter == "clone");
    CHECK(r->target_kind == "file");
    CHECK(r->image_size == raw.size());
    CHECK_FALSE(r->preallocation_applied);
    CHECK(cdi::test::tar::read_file(d.path() / "disk.img") == raw);
    // the zero MiB is a hole
    struct stat st {};
    REQUIRE(::stat((d.path() / "disk.img").c_str(), &st) == 0);
    CHECK(static_cast<uint64_t>(st.st_blocks) * 512 <= raw.size() - (1u << 20) + (64u << 10));
  }
  SECTION("a directory gets disk.img") {
    fs::create_directory(d.path() / "pvc");
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "pvc",
                                                pipeline::ContentType::blockdevice_clone));
    REQUIRE(r);
    CHECK(cdi::test::tar::read_file(d.path() / "pvc" / "disk.img") == raw);
  }
}

TEST_CASE("blockdevice-clone: bounded by image_size, bad frames leave nothing", "[pipeline][clone]") {
  TempDir d;
  auto raw = qcow2_looking_device();
  auto sz = snappy_of(raw);
  SECTION("larger than image_size") {
    put(d.path() / "body.sz", sz);
    auto o = clone_options(d.path() / "body.sz", d.path() / "disk.img", pipeline::ContentType::blockdevice_clone);
    o.image_size = 1u << 20;
    auto r = pipeline::run_import(o);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::limit);
  }
  SECTION("a flipped CRC byte") {
    sz[10 + 4 + 1] ^= std::byte{0x01};   // first data chunk's CRC
    put(d.path() / "body.sz", sz);
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "disk.img",
                                                pipeline::ContentType::blockdevice_clone));
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
  }
  SECTION("a cut inside a chunk") {
    sz.resize(sz.size() - 100);
    put(d.path() / "body.sz", sz);
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "disk.img",
                                                pipeline::ContentType::blockdevice_clone));
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
  }
  CHECK_FALSE(fs::exists(d.path() / "disk.img"));
  CHECK(cdi::test::tar::tree(d.path()) == std::set<std::string>{"body.sz"});
}

TEST_CASE("filesystem-clone: the tar is extracted into the target's directory", "[pipeline][clone]") {
  namespace tt = cdi::test::tar;
  TempDir d;
  auto disk = qcow2_looking_device();
  auto other = tt::pattern(5000, 3);
  auto tar = tt::make_tar({tt::reg("disk.img", disk), tt::reg("other.bin", other), tt::dir("sub"),
                           tt::reg("sub/x.txt", tt::pattern(10, 4))},
                          tt::Format::gnu, true);
  fs::create_directory(d.path() / "pvc");
  tt::write_file(d.path() / "pvc" / "keep.txt", "keep");
  SECTION("complete") {
    put(d.path() / "body.sz", snappy_of(tar));
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "pvc" / "disk.img",
                                                pipeline::ContentType::filesystem_clone));
    REQUIRE(r);
    CHECK(r->chain == std::vector<std::string>{"file", "snappy", "tar"});
    CHECK(r->target_kind == "directory");
    CHECK(r->files_extracted == 3);
    CHECK(r->preallocation_applied);   // as CDI's fileToFileCloneProcessor
    CHECK(tt::read_file(d.path() / "pvc" / "disk.img") == disk);
    CHECK(tt::read_file(d.path() / "pvc" / "other.bin") == other);
    CHECK(tt::tree(d.path() / "pvc") ==
          std::set<std::string>{"disk.img", "keep.txt", "other.bin", "sub", "sub/x.txt"});
  }
  SECTION("a truncated tar leaves the directory as it was") {
    tar.resize(disk.size());   // inside disk.img's data
    put(d.path() / "body.sz", snappy_of(tar));
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "pvc",
                                                pipeline::ContentType::filesystem_clone));
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
    CHECK(tt::tree(d.path() / "pvc") == std::set<std::string>{"keep.txt"});
  }
  SECTION("an entry escaping the target is refused, nothing extracted") {
    auto evil = tt::make_tar({tt::reg("ok.bin", other), tt::reg("../escape.bin", other)}, tt::Format::gnu);
    put(d.path() / "body.sz", snappy_of(evil));
    auto r = pipeline::run_import(clone_options(d.path() / "body.sz", d.path() / "pvc",
                                                pipeline::ContentType::filesystem_clone));
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::unsupported);
    CHECK(tt::tree(d.path() / "pvc") == std::set<std::string>{"keep.txt"});
    CHECK_FALSE(fs::exists(d.path() / "escape.bin"));
  }
}

TEST_CASE("inspect refuses clone content types", "[pipeline][clone]") {
  TempDir d;
  put(d.path() / "body.sz", snappy_of(qcow2_looking_device()));
  auto r = pipeline::inspect(clone_options(d.path() / "body.sz", d.path() / "x", pipeline::ContentType::blockdevice_clone));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::unsupported);
}
