// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/util/error.hpp"
#include "lib/util/units.hpp"

using namespace cdi;

namespace {
Result<int> inner() { return fail(Errc::corrupt_input, "unexpected end of stream after 7.1 MiB"); }
Result<int> middle() { return CDI_TRY_CTX(inner(), "gzip") + 1; }
Result<int> outer() { return CDI_TRY_CTX(middle(), "base.qcow2.gz"); }
}  // namespace

TEST_CASE("util::error context chain") {
  auto r = outer();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().what() == "base.qcow2.gz: gzip: unexpected end of stream after 7.1 MiB");
  CHECK(errc_name(r.error().code()) == "corrupt_input");
}

TEST_CASE("util::error sys_error classes") {
  CHECK(sys_error("open x", ENOENT).code() == Errc::not_found);
  CHECK(sys_error("open x", EBUSY).code() == Errc::busy);
  CHECK(sys_error("write x", ENOSPC).code() == Errc::io);
  CHECK(sys_error("write x", ENOSPC).what() == "write x: No space left on device");
  Error e(Errc::io, "line1\nline2");
  CHECK(e.what() == "line1 line2");
}

TEST_CASE("util::parse_quantity") {
  CHECK(util::parse_quantity("1073741824").value() == 1073741824ULL);
  CHECK(util::parse_quantity("10Gi").value() == 10ULL << 30);
  CHECK(util::parse_quantity("500M").value() == 500000000ULL);
  CHECK(util::parse_quantity("1e9").value() == 1000000000ULL);
  CHECK(util::parse_quantity("0.5Gi").value() == 512ULL << 20);
  CHECK(util::parse_quantity("10Ki").value() == 10240ULL);
  CHECK(util::parse_quantity("10k").value() == 10000ULL);
  CHECK(util::parse_quantity("5243392Ki").value() == 5243392ULL * 1024);
  CHECK(util::parse_quantity("1G").value() == 1000000000ULL);
  for (const char* bad : {"", "abc", "-1Gi", "10Xi", "1e", "1..2", "Gi", "1 Gi"}) {
    INFO(bad);
    auto r = util::parse_quantity(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
}

TEST_CASE("util::format_bytes") {
  CHECK(util::format_bytes(0) == "0 B");
  CHECK(util::format_bytes(512) == "512 B");
  CHECK(util::format_bytes(7445000) == "7.1 MiB");
  CHECK(util::format_bytes(2ULL << 30) == "2.0 GiB");
}
