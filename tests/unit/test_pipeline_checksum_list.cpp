// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/pipeline/checksum_list.hpp"

using namespace cdi;

namespace {
const std::string k_a(64, 'a');
const std::string k_b(64, 'b');
const std::string k_c512(128, 'c');
}  // namespace

TEST_CASE("checksum list: coreutils and BSD lines", "[checksum_list]") {
  std::string list = "# SHA256SUMS\n" + k_b + "  other.qcow2\n" + k_a + " *disk.qcow2.xz\n\n";
  auto c = pipeline::find_in_checksum_list(list, "disk.qcow2.xz");
  REQUIRE(c);
  CHECK(c->algo == util::DigestAlgo::sha256);
  CHECK(c->hex == k_a);

  auto bsd = pipeline::find_in_checksum_list("SHA512 (./disk.img) = " + k_c512 + "\n", "disk.img");
  REQUIRE(bsd);
  CHECK(bsd->algo == util::DigestAlgo::sha512);

  auto md5 = pipeline::find_in_checksum_list(std::string(32, 'D') + "  disk.raw", "./disk.raw");   // no final newline
  REQUIRE(md5);
  CHECK(md5->algo == util::DigestAlgo::md5);
  CHECK(md5->hex == std::string(32, 'd'));
  // names with spaces
  auto sp = pipeline::find_in_checksum_list(k_a + "  my disk.img\n", "my disk.img");
  REQUIRE(sp);
}

TEST_CASE("checksum list: missing, conflicting and malformed entries", "[checksum_list]") {
  auto none = pipeline::find_in_checksum_list(k_a + "  a.img\n", "b.img");
  REQUIRE_FALSE(none);
  CHECK(none.error().code() == Errc::not_found);
  CHECK(none.error().what() == "checksum list has no line for b.img");

  auto two = pipeline::find_in_checksum_list(k_a + "  a.img\n" + k_b + "  a.img\n", "a.img");
  REQUIRE_FALSE(two);
  CHECK(two.error().code() == Errc::corrupt_input);

  auto odd = pipeline::find_in_checksum_list("abcdef  a.img\n", "a.img");
  REQUIRE_FALSE(odd);
  CHECK(odd.error().code() == Errc::corrupt_input);

  // several algorithms for one file: the strongest wins
  auto mixed = pipeline::find_in_checksum_list(std::string(32, 'e') + "  a.img\n" + k_a + "  a.img\n", "a.img");
  REQUIRE(mixed);
  CHECK(mixed->algo == util::DigestAlgo::sha256);
}

TEST_CASE("checksum list: the file name of an image location", "[checksum_list]") {
  CHECK(pipeline::checksum_file_name("https://h:8080/a/b/disk%20one.qcow2?X-Amz=secret#x") == "disk one.qcow2");
  CHECK(pipeline::checksum_file_name("/var/img/disk.img") == "disk.img");
  CHECK(pipeline::checksum_file_name("file:///var/img/disk.img.xz") == "disk.img.xz");
  CHECK(pipeline::checksum_file_name("https://host") == "");
  CHECK(pipeline::checksum_file_name("https://host/dir/") == "");
}
