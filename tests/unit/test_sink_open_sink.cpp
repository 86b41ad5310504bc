// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/sink/open_sink.hpp"
#include "tests/support/loop_device.hpp"

using namespace cdi;
using cdi::test::sys::ScratchLoop;
using cdi::test::sys::TempDir;

TEST_CASE("open_sink picks the sink by destination type", "[sink]") {
  TempDir dir;
  ScratchLoop loop(2 << 20, 0);
  CHECK(sink::is_block_device(loop.path()));
  CHECK_FALSE(sink::is_block_device(loop.backing()));
  CHECK_FALSE(sink::is_block_device(dir / "missing"));
  CHECK_FALSE(sink::is_block_device(dir.path()));

  auto blk = sink::open_sink(loop.path(), {});
  REQUIRE(blk);
  CHECK((*blk)->info().kind == "block");
  CHECK((*blk)->info().capacity == uint64_t{2} << 20);
  (*blk)->abort();

  sink::SinkOptions o;
  o.min_size = 3 << 20;
  o.mode = 0660;
  o.apply_umask = false;
  auto file = sink::open_sink(dir / "disk.img", o);
  REQUIRE(file);
  CHECK((*file)->info().kind == "file");
  REQUIRE((*file)->finish(1000));
  CHECK(std::filesystem::file_size(dir / "disk.img") == uint64_t{3} << 20);
  CHECK((std::filesystem::status(dir / "disk.img").permissions() & std::filesystem::perms::all) ==
        (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
         std::filesystem::perms::group_read | std::filesystem::perms::group_write));

  auto bad = sink::open_sink(dir.path(), {});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::invalid_argument);
}
