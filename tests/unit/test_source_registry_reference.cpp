// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/source/registry_reference.hpp"

using namespace cdi;
using namespace cdi::source::registry;

namespace {
const std::string k_digest = "sha256:" + std::string(64, 'a');
}

TEST_CASE("registry reference: host, port, repository, tag", "[registry][reference]") {
  auto r = parse_reference("docker://127.0.0.1:5000/containerdisks/cirros:v1.2");
  REQUIRE(r);
  CHECK(r->transport == Transport::docker);
  CHECK(r->host == "127.0.0.1:5000");
  CHECK(r->repository == "containerdisks/cirros");
  CHECK(r->tag == "v1.2");
  CHECK(r->digest.empty());
  CHECK(r->manifest_reference() == "v1.2");
  CHECK(r->text() == "docker://127.0.0.1:5000/containerdisks/cirros:v1.2");
}

TEST_CASE("registry reference: Docker Hub defaults", "[registry][reference]") {
  auto r = parse_reference("docker://fedora");
  REQUIRE(r);
  CHECK(r->host == "registry-1.docker.io");
  CHECK(r->repository == "library/fedora");
  CHECK(r->tag == "latest");
  r = parse_reference("docker://kubevirt/fedora-cloud-container-disk-demo:v1");
  REQUIRE(r);
  CHECK(r->host == "registry-1.docker.io");
  CHECK(r->repository == "kubevirt/fedora-cloud-container-disk-demo");
  r = parse_reference("docker://docker.io/busybox");
  REQUIRE(r);
  CHECK(r->host == "registry-1.docker.io");
  CHECK(r->repository == "library/busybox");
  r = parse_reference("docker://localhost/a/b");
  REQUIRE(r);
  CHECK(r->host == "localhost");
  CHECK(r->repository == "a/b");
  CHECK(r->tag == "latest");
  r = parse_reference("docker://Quay.IO/kubevirt/cirros");
  REQUIRE(r);
  CHECK(r->host == "quay.io");
}

TEST_CASE("registry reference: digests", "[registry][reference]") {
  auto r = parse_reference("docker://reg.example:443/a/b@" + k_digest);
  REQUIRE(r);
  CHECK(r->digest == k_digest);
  CHECK(r->tag.empty());
  CHECK(r->manifest_reference() == k_digest);
  r = parse_reference("docker://reg.example/a/b:v1@" + k_digest);
  REQUIRE(r);
  CHECK(r->tag == "v1");
  CHECK(r->manifest_reference() == k_digest);   // the digest wins
  CHECK_FALSE(parse_reference("docker://reg/a@sha256:abc"));
  CHECK_FALSE(parse_reference("docker://reg/a@md5:" + std::string(32, '0')));
  CHECK_FALSE(parse_reference("docker://reg/a@sha256:" + std::string(64, 'A')));
}

TEST_CASE("registry reference: invalid names", "[registry][reference]") {
  for (const char* bad : {"docker://", "docker://reg.example/", "docker://reg.example/UPPER", "docker://reg.example/a//b",
                          "docker://reg.example/a:", "docker://reg.example/a:-tag", "docker:/reg/a", "docker://reg.example/-a",
                          "docker://reg.example/a./b"}) {
    INFO(bad);
    auto r = parse_reference(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
  auto r = parse_reference("ftp://x");
  REQUIRE_FALSE(r);
  CHECK(r.error().message().find("unknown transport") != std::string::npos);
  CHECK(parse_reference("docker://reg.example/a__b/c-d/e.f_g"));
}

TEST_CASE("registry reference: OCI layouts", "[registry][reference]") {
  auto r = parse_reference("oci:/tmp/layout:v1");
  REQUIRE(r);
  CHECK(r->transport == Transport::oci);
  CHECK(r->path == "/tmp/layout");
  CHECK(r->tag == "v1");
  r = parse_reference("oci:relative/dir");
  REQUIRE(r);
  CHECK(r->path == "relative/dir");
  CHECK(r->tag.empty());
  r = parse_reference("oci-archive:/a/b.tar:multi");
  REQUIRE(r);
  CHECK(r->transport == Transport::oci_archive);
  CHECK(r->path == "/a/b.tar");
  CHECK(r->tag == "multi");
  CHECK_FALSE(parse_reference("oci:"));
  CHECK(is_image_reference("oci-archive:x"));
  CHECK(is_image_reference("docker://x"));
  CHECK_FALSE(is_image_reference("/oci:x"));
}
