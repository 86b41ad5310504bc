// SPDX-License-Identifier: Apache-2.0
// lib/util/file_io: anonymous_file, pwrite_all / pread_full, TempDir.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <vector>

#include "lib/util/file_io.hpp"

using namespace cdi;
namespace fs = std::filesystem;

TEST_CASE("anonymous_file leaves no name; pwrite_all and pread_full round trip", "[util][file_io]") {
  auto dir = util::TempDir::create("cdi-file-io-test-");
  REQUIRE(dir);
  auto fd = util::anonymous_file(dir->path(), ".hold-");
  REQUIRE(fd);
  CHECK(fs::is_empty(dir->path()));   // O_TMPFILE or unlinked at once
  std::vector<std::byte> data(100000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = std::byte(i * 7);
  REQUIRE(util::pwrite_all(fd->get(), data, 4096, "the test file"));
  std::vector<std::byte> back(data.size());
  CHECK(util::pread_full(fd->get(), back, 4096, "the test file").value() == data.size());
  CHECK(back == data);
  // Short only at the end of the file.
  std::vector<std::byte> tail(1000);
  CHECK(util::pread_full(fd->get(), tail, 4096 + data.size() - 10, "the test file").value() == 10);
  CHECK(util::pread_full(fd->get(), tail, 1 << 30, "the test file").value() == 0);
}

TEST_CASE("file_io errors are typed and name what failed", "[util][file_io]") {
  auto missing = util::anonymous_file("/nonexistent-cdi-dir", "x-");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
  CHECK(missing.error().what().starts_with("creating a scratch file in /nonexistent-cdi-dir: "));
  std::byte b[4] = {};
  auto w = util::pwrite_all(-1, b, 12, "nothing");
  REQUIRE_FALSE(w);
  CHECK(w.error().code() == Errc::io);
  CHECK(w.error().what().starts_with("writing nothing at offset 12: "));
  auto r = util::pread_full(-1, b, 3, "nothing");
  REQUIRE_FALSE(r);
  CHECK(r.error().what().starts_with("reading nothing at offset 3: "));
}

TEST_CASE("TempDir is private, moves, and is removed with its contents", "[util][file_io]") {
  fs::path base = fs::temp_directory_path();
  fs::path where;
  {
    auto d = util::TempDir::create("cdi-tempdir-test-", base);
    REQUIRE(d);
    where = d->path();
    CHECK(where.parent_path() == base);
    CHECK(where.filename().string().starts_with("cdi-tempdir-test-"));
    struct stat st {};
    REQUIRE(::stat(where.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    fs::create_directories(where / "a/b");
    std::ofstream(where / "a/b/file") << "x";
    util::TempDir moved = std::move(*d);
    CHECK(d->path().empty());
    CHECK(moved.path() == where);
    CHECK(fs::exists(where / "a/b/file"));
  }
  CHECK_FALSE(fs::exists(where));
  util::TempDir none;
  CHECK(none.path().empty());
  auto bad = util::TempDir::create("x-", "/nonexistent-cdi-dir");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::not_found);
}
