// SPDX-License-Identifier: Apache-2.0
// Archive staging directories: created recognisably, removed by the next import only when provably
// ours (name + marker naming the directory's own inode) and not in use (marker lock free).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>

#include "lib/sink/leftovers.hpp"
#include "tests/support/loop_device.hpp"

using namespace cdi;
using cdi::test::sys::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("StagingDir: recognisable name, marker, tree, remove", "[sink][file_sink][staging]") {
  TempDir dir;
  auto st = sink::StagingDir::create(dir.path());
  REQUIRE(st);
  auto path = (*st)->path();
  CHECK(path.parent_path() == dir.path());
  CHECK(sink::is_staging_name(path.filename().string()));
  CHECK(fs::is_directory((*st)->tree()));
  CHECK(fs::is_regular_file(path / std::string(sink::k_staging_marker)));
  // In use: the next import's cleanup keeps it.
  write_text((*st)->tree() / "file", std::string(100000, 'x'));
  auto r = sink::remove_stale_staging_dirs(dir.path());
  REQUIRE(r);
  CHECK(r->entries == 0);
  CHECK(fs::exists(path));
  (*st)->remove();
  (*st)->remove();   // idempotent
  CHECK(entries(dir.path()).empty());
}

TEST_CASE("remove_stale_staging_dirs removes only provably ours", "[sink][file_sink][staging]") {
  TempDir dir;
  TempDir outside;
  // A killed import's stage: created, filled, never removed (destroying the object is what a
  // kill does to it: the marker's lock goes with the descriptor).
  fs::path stale;
  {
    auto st = sink::StagingDir::create(dir.path());
    REQUIRE(st);
    stale = (*st)->path();
    fs::create_directories((*st)->tree() / "data" / "sub");
    write_text((*st)->tree() / "data" / "sub" / "big", std::string(1 << 20, 'x'));
  }
  auto live = sink::StagingDir::create(dir.path());
  REQUIRE(live);
  // Look-alikes that are not ours.
  fs::create_directory(dir / ".cdi-import-extract.nomark");   // our name, no marker
  fs::create_directory(dir / ".cdi-import-extract.forged");   // a marker naming another inode
  write_text(dir / ".cdi-import-extract.forged" / std::string(sink::k_staging_marker),
             "cdi-import staging directory dev=1 ino=2\n");
  {
    // A copy of a real marker in a different directory (as a tar could carry it): wrong inode.
    auto other = sink::StagingDir::create(outside.path());
    REQUIRE(other);
    fs::create_directory(dir / ".cdi-import-extract.copied");
    fs::copy_file((*other)->path() / std::string(sink::k_staging_marker),
                  dir / ".cdi-import-extract.copied" / std::string(sink::k_staging_marker));
    (*other)->remove();
  }
  fs::create_directory(dir / ".cdi-import-extract.toolong1");  // 8 random characters
  write_text(dir / "precious", "precious");
  fs::create_directory_symlink(outside.path(), dir / ".cdi-import-extract.symlnk");
  write_text(outside / "keep", "keep");
  write_text(dir / ".user-dotfile", "dot");

  auto r = sink::remove_stale_staging_dirs(dir.path());
  REQUIRE(r);
  CHECK(r->entries == 1);
  CHECK(r->bytes >= (1u << 20));
  CHECK_FALSE(fs::exists(stale));
  std::vector<std::string> want = {".cdi-import-extract.copied", ".cdi-import-extract.forged",
                                   ".cdi-import-extract.nomark", ".cdi-import-extract.symlnk",
                                   ".cdi-import-extract.toolong1", ".user-dotfile", "precious",
                                   (*live)->path().filename().string()};
  std::sort(want.begin(), want.end());
  CHECK(entries(dir.path()) == want);
  CHECK(read_text(outside / "keep") == "keep");
  CHECK(read_text(dir / "precious") == "precious");
  (*live)->remove();
  // Now the live one is gone too and a second pass finds nothing.
  auto r2 = sink::remove_stale_staging_dirs(dir.path());
  REQUIRE(r2);
  CHECK(r2->entries == 0);
  auto missing = sink::remove_stale_staging_dirs(dir / "nope");
  REQUIRE(missing);
  CHECK(missing->entries == 0);
}
