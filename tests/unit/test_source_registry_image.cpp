// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/source/registry_image.hpp"

using namespace cdi;
using namespace cdi::source::registry;

namespace {
std::string dg(char c) { return "sha256:" + std::string(64, c); }

const std::string k_index = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + dg('a') + R"(","size":100,
   "platform":{"architecture":"amd64","os":"linux"}},
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + dg('b') + R"(","size":100,
   "platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + dg('c') + R"(","size":100,
   "platform":{"architecture":"arm","os":"linux","variant":"v7"}},
  {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" + dg('d') + R"(","size":100,
   "platform":{"architecture":"amd64","os":"windows"}}]})";
}  // namespace

TEST_CASE("manifest: OCI image manifest", "[registry][manifest]") {
  std::string m = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" + dg('1') + R"(","size":12},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" + dg('2') + R"(","size":34},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" + dg('3') + R"(","size":56}]})";
  auto p = parse_manifest(m, "");
  REQUIRE(p);
  CHECK_FALSE(p->is_index);
  CHECK(p->config.digest == dg('1'));
  REQUIRE(p->layers.size() == 2);
  CHECK(p->layers[1].size == 56);
}

TEST_CASE("manifest: Docker v2s2 with the type only in Content-Type", "[registry][manifest]") {
  std::string m = R"({"schemaVersion":2,
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" + dg('1') + R"(","size":12},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":")" + dg('2') + R"(","size":34}]})";
  auto p = parse_manifest(m, "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  REQUIRE(p);
  CHECK(p->media_type == "application/vnd.docker.distribution.manifest.v2+json");
  CHECK(p->layers.size() == 1);
}

TEST_CASE("manifest: refusals and damage", "[registry][manifest]") {
  auto s1 = parse_manifest(R"({"schemaVersion":1,"fsLayers":[]})", "");
  REQUIRE_FALSE(s1);
  CHECK(s1.error().code() == Errc::unsupported);
  auto art = parse_manifest(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"digest":")" + dg('1') + R"(","size":1},
    "layers":[{"mediaType":"application/vnd.cncf.helm.chart.content.v1.tar+gzip","digest":")" + dg('2') + R"(","size":1}]})", "");
  REQUIRE_FALSE(art);
  CHECK(art.error().code() == Errc::unsupported);
  auto bad_digest = parse_manifest(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"digest":"sha256:xyz","size":1},"layers":[]})", "");
  REQUIRE_FALSE(bad_digest);
  CHECK(bad_digest.error().code() == Errc::corrupt_input);
  CHECK(parse_manifest("[1,2]", "").error().code() == Errc::corrupt_input);
  CHECK(parse_manifest("{", "").error().code() == Errc::corrupt_input);
  auto no_size = parse_manifest(R"({"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"digest":")" + dg('1') + R"("},"layers":[]})", "");
  REQUIRE_FALSE(no_size);
  CHECK(no_size.error().message().find("size") != std::string::npos);
}

TEST_CASE("index: platform selection", "[registry][manifest]") {
  auto idx = parse_manifest(k_index, "");
  REQUIRE(idx);
  REQUIRE(idx->is_index);
  auto amd = select_platform(*idx, {"linux", "amd64", ""});
  REQUIRE(amd);
  CHECK(amd->digest == dg('a'));
  auto arm64 = select_platform(*idx, {"linux", "arm64", ""});
  REQUIRE(arm64);
  CHECK(arm64->digest == dg('b'));
  CHECK(select_platform(*idx, {"linux", "arm64", "v8"})->digest == dg('b'));
  CHECK(select_platform(*idx, {"linux", "arm", "v7"})->digest == dg('c'));
  CHECK(select_platform(*idx, {"windows", "amd64", ""})->digest == dg('d'));
  auto none = select_platform(*idx, {"linux", "s390x", ""});
  REQUIRE_FALSE(none);
  CHECK(none.error().code() == Errc::not_found);
  CHECK(none.error().message() ==
        "no image for platform linux/s390x in the index (it has: linux/amd64, linux/arm64/v8, linux/arm/v7, windows/amd64)");
  CHECK_FALSE(select_platform(*idx, {"linux", "arm", "v6"}));
}

TEST_CASE("architecture names", "[registry][manifest]") {
  CHECK(normalize_architecture("x86_64") == "amd64");
  CHECK(normalize_architecture("aarch64") == "arm64");
  CHECK(normalize_architecture("PPC64LE") == "ppc64le");
  CHECK_FALSE(host_architecture().empty());
  CHECK(host_architecture() == normalize_architecture(host_architecture()));
}

TEST_CASE("config: env labels, bootc, architecture check", "[registry][config]") {
  auto c = parse_config(R"({"architecture":"amd64","os":"linux","config":{
      "Env":["PATH=/bin","INSTANCETYPE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora","KUBEVIRT_IO_TEST_TEST=x",
             "NOEQUALS_KUBEVIRT_IO_X","A_B_KUBEVIRT_IO_C_D=v=w"],
      "Labels":{"ostree.bootable":"1"}}})");
  REQUIRE(c);
  auto labels = kubevirt_labels(c->env);
  REQUIRE(labels.size() == 3);
  CHECK(labels[0] == std::pair<std::string, std::string>{"instancetype.kubevirt.io/default-preference", "fedora"});
  CHECK(labels[1] == std::pair<std::string, std::string>{"kubevirt.io/test-test", "x"});
  CHECK(labels[2] == std::pair<std::string, std::string>{"a.b.kubevirt.io/c-d", "v=w"});
  auto b = refuse_bootc(*c);
  REQUIRE_FALSE(b);
  CHECK(b.error().code() == Errc::unsupported);
  CHECK(b.error().message().starts_with("bootc image detected: this image contains an ostree-based bootable OS"));
  ImageConfig plain;
  plain.labels["containers.bootc"] = "0";
  CHECK(refuse_bootc(plain));
  plain.labels["containers.bootc"] = "1";
  CHECK_FALSE(refuse_bootc(plain));
  CHECK(check_architecture(*c, "amd64"));
  CHECK(check_architecture(*c, "x86_64"));
  auto arch = check_architecture(*c, "arm64");
  REQUIRE_FALSE(arch);
  CHECK(arch.error().message() ==
        "Error validating architecture: manifest image architecture: \"amd64\" doesn't match requested architecture: \"arm64\"");
  CHECK_FALSE(parse_config("nope"));
}

TEST_CASE("entry paths are normalised", "[registry][whiteout]") {
  CHECK(normalize_entry_path("./disk/disk.img") == "disk/disk.img");
  CHECK(normalize_entry_path("/disk//a/") == "disk/a");
  CHECK(normalize_entry_path("././disk") == "disk");
  CHECK(normalize_entry_path("./") == "");
}

TEST_CASE("disk finder: candidates in one layer", "[registry][whiteout]") {
  DiskFinder f;
  CHECK(f.classify("disk/", false, true) == DiskFinder::Role::ignore);
  CHECK(f.classify("etc/hostname", true, false) == DiskFinder::Role::ignore);
  CHECK(f.classify("disk.img", true, false) == DiskFinder::Role::ignore);   // CDI's prefix match would take it
  CHECK(f.classify("./disk/disk.img", true, false) == DiskFinder::Role::disk);
  CHECK(f.classify("disk/link", false, false) == DiskFinder::Role::not_regular);
  CHECK(f.classify("disk/sub/deep.img", true, false) == DiskFinder::Role::disk);
}

TEST_CASE("disk finder: whiteouts hide lower layers only", "[registry][whiteout]") {
  DiskFinder f;
  // top layer: deletes disk/b.img
  CHECK(f.classify("disk/.wh.b.img", true, false) == DiskFinder::Role::ignore);
  CHECK_FALSE(f.hidden("disk/b.img"));   // not yet: the same layer's own files stay visible
  f.end_layer();
  CHECK(f.hidden("disk/b.img"));
  CHECK(f.classify("disk/b.img", true, false) == DiskFinder::Role::ignore);
  CHECK(f.classify("disk/a.img", true, false) == DiskFinder::Role::disk);
}

TEST_CASE("disk finder: opaque directories and deleted directories", "[registry][whiteout]") {
  DiskFinder f;
  CHECK(f.classify("disk/.wh..wh..opq", true, false) == DiskFinder::Role::ignore);
  CHECK(f.classify("disk/new.img", true, false) == DiskFinder::Role::disk);   // same layer: visible
  f.end_layer();
  CHECK(f.classify("disk/old.img", true, false) == DiskFinder::Role::ignore);
  CHECK(f.classify("disk/x/y.img", true, false) == DiskFinder::Role::ignore);

  DiskFinder g;
  CHECK(g.classify(".wh.disk", true, false) == DiskFinder::Role::ignore);
  g.end_layer();
  CHECK(g.hidden("disk/a.img"));
  CHECK(g.classify("disk/a.img", true, false) == DiskFinder::Role::ignore);

  DiskFinder h;   // a regular file named disk replaces the directory below
  CHECK(h.classify("disk", true, false) == DiskFinder::Role::ignore);
  h.end_layer();
  CHECK(h.classify("disk/a.img", true, false) == DiskFinder::Role::ignore);
  CHECK_FALSE(h.hidden("diskette/a.img"));
}
