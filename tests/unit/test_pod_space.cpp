// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/pod/space.hpp"

using namespace cdi;

constexpr uint64_t MiB = uint64_t{1} << 20;
constexpr uint64_t GiB = uint64_t{1} << 30;

TEST_CASE("pod::usable_space reproduces CDI's worked examples", "[pod][space]") {
  // cdi-importer-spec.md §2.1
  CHECK(pod::usable_space(10 * GiB, 0.06) == 9660 * MiB);
  CHECK(pod::usable_space(10 * GiB, 0.06) == 10129244160ull);
  CHECK(pod::usable_space(10 * GiB, 0) == 10 * GiB);
  CHECK(pod::usable_space(512 * MiB, 0.06) == 483 * MiB);
  CHECK(pod::usable_space(static_cast<uint64_t>(10.0 * double(GiB) * 1.06), 0.06) == 10 * GiB);
  // always a whole number of MiB, never more than available
  CHECK(pod::usable_space(MiB - 1, 0) == 0);
  CHECK(pod::usable_space(3 * MiB + 17, 0) == 3 * MiB);
}

TEST_CASE("pod::available_space and resize_target follow CDI", "[pod][space]") {
  CHECK(pod::available_space(100 * GiB, std::nullopt) == 100 * GiB);
  CHECK(pod::available_space(100 * GiB, 10 * GiB) == 10 * GiB);
  CHECK(pod::available_space(5 * GiB, 10 * GiB) == 5 * GiB);
  // trace A of the spec: 10Gi request, plenty of free space, overhead 0.06 -> 9660 MiB
  CHECK(pod::resize_target(10 * GiB, pod::available_space(100 * GiB, 10 * GiB), 0.06) == 10129244160ull);
  CHECK_FALSE(pod::resize_target(std::nullopt, 100 * GiB, 0.06));
  // the request wins when it is below the usable space
  CHECK(pod::resize_target(1 * GiB, 100 * GiB, 0.06) == 1 * GiB);
  // 64Mi with overhead 0.06 (the e2e test's case): 60 MiB (64 / 1.06 = 60.38)
  CHECK(pod::resize_target(64 * MiB, 64 * MiB, 0.06) == 60 * MiB);
}

TEST_CASE("pod::filesystem_free measures a real directory", "[pod][space]") {
  auto free = pod::filesystem_free("/tmp");
  REQUIRE(free);
  CHECK(*free > 0);
  auto missing = pod::filesystem_free("/nonexistent/cdi-import");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
}
