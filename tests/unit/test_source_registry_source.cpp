// SPDX-License-Identifier: Apache-2.0
// The layer walk of the registry source over real OCI layouts written here (uncompressed tar
// layers built with libarchive): the disk's bytes, labels, top-down selection with whiteouts,
// and the digest check that must fail the read before the end is reported.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lib/source/registry_source.hpp"
#include "lib/util/digest.hpp"
#include "tests/unit/test_formats_tar_support.hpp"

using namespace cdi;
using namespace cdi::source::registry;
namespace t = cdi::test::tar;
namespace fs = std::filesystem;

namespace {

class Layout {
 public:
  explicit Layout(const fs::path& dir) : m_dir(dir) { fs::create_directories(dir / "blobs" / "sha256"); }

  std::string put(std::span<const std::byte> data) {
    auto hex = util::digest_hex(util::DigestAlgo::sha256, data);
    std::ofstream(m_dir / "blobs" / "sha256" / hex, std::ios::binary)
        .write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    return "sha256:" + hex;
  }
  std::string put(const std::string& s) { return put(std::as_bytes(std::span(s))); }

  // An image of uncompressed layers (base first), tagged `tag`; returns the layer digests.
  std::vector<std::string> image(const std::string& tag, const std::vector<std::vector<t::Spec>>& layers,
                                 nlohmann::json config = {{"architecture", "amd64"}, {"os", "linux"}}) {
    nlohmann::json m = {{"schemaVersion", 2}, {"mediaType", "application/vnd.oci.image.manifest.v1+json"}};
    std::vector<std::string> digests;
    for (const auto& l : layers) {
      auto tar = t::make_tar(l);
      digests.push_back(put(tar));
      m["layers"].push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", digests.back()},
                             {"size", tar.size()}});
    }
    auto c = config.dump();
    m["config"] = {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", put(c)}, {"size", c.size()}};
    auto ms = m.dump();
    m_index["manifests"].push_back({{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                    {"digest", put(ms)},
                                    {"size", ms.size()},
                                    {"annotations", {{"org.opencontainers.image.ref.name", tag}}}});
    std::ofstream(m_dir / "index.json") << m_index.dump();
    return digests;
  }
  fs::path blob_path(const std::string& digest) const { return m_dir / "blobs" / "sha256" / digest.substr(7); }
  std::string url(const std::string& tag) const { return "oci:" + m_dir.string() + ":" + tag; }

 private:
  fs::path m_dir;
  nlohmann::json m_index = {{"schemaVersion", 2}, {"manifests", nlohmann::json::array()}};
};

// Reads the whole reader in 7-byte then 64 KiB steps; returns the bytes or the error.
Result<std::vector<std::byte>> read_all(io::Reader& r) {
  std::vector<std::byte> out;
  std::vector<std::byte> buf(65536);
  size_t step = 7;
  for (;;) {
    auto n = r.read(std::span(buf).first(step));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return out;
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<ptrdiff_t>(*n));
    step = buf.size();
  }
}

Result<std::unique_ptr<io::Reader>> open(const std::string& url, std::string arch = "") {
  RegistrySourceOptions o;
  o.architecture = std::move(arch);
  return open_registry_source(url, o, {});
}

}  // namespace

TEST_CASE("registry source: serves the disk file, its size and the labels", "[registry][source]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  auto disk = t::pattern(300000, 3);
  lay.image("v1", {{t::dir("disk/"), t::reg("disk/disk.img", disk), t::reg("etc/os-release", t::pattern(10))}},
            {{"architecture", "amd64"}, {"os", "linux"}, {"config", {{"Env", {"KUBEVIRT_IO_A_B=c", "X=y"}}}}});
  auto r = open(lay.url("v1"));
  REQUIRE(r);
  auto info = (*r)->info();
  CHECK(info.name == "oci[disk/disk.img]");
  CHECK(info.size == disk.size());
  REQUIRE(info.labels.size() == 1);
  CHECK(info.labels[0] == std::pair<std::string, std::string>{"kubevirt.io/a-b", "c"});
  auto got = read_all(**r);
  REQUIRE(got);
  CHECK(*got == disk);
}

TEST_CASE("registry source: the top layer wins, whiteouts hide lower disks", "[registry][source]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  auto a = t::pattern(5000, 1), b = t::pattern(7000, 2), c = t::pattern(9000, 3);
  lay.image("replaced", {{t::reg("disk/disk.img", a)}, {t::reg("disk/disk.img", b)}, {t::reg("etc/x", c)}});
  lay.image("whiteout", {{t::reg("disk/a.img", a)}, {t::reg("disk/b.img", b)}, {t::reg("disk/.wh.b.img", {})}});
  lay.image("opaque", {{t::reg("disk/a.img", a)}, {t::reg("disk/.wh..wh..opq", {})}});
  auto r = open(lay.url("replaced"));
  REQUIRE(r);
  CHECK(*read_all(**r) == b);
  r = open(lay.url("whiteout"));
  REQUIRE(r);
  CHECK((*r)->info().name == "oci[disk/a.img]");
  CHECK(*read_all(**r) == a);
  r = open(lay.url("opaque"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::not_found);
  CHECK(r.error().message().starts_with("Failed to find VM disk image file in the container image"));
}

TEST_CASE("registry source: several disks, symlinks, wrong architecture", "[registry][source]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  lay.image("two", {{t::reg("disk/a.img", t::pattern(100)), t::reg("disk/b.img", t::pattern(200))}});
  lay.image("link", {{t::sym("disk/disk.img", "/etc/passwd")}});
  lay.image("arm", {{t::reg("disk/a.img", t::pattern(100))}}, {{"architecture", "arm64"}, {"os", "linux"}});
  auto r = open(lay.url("two"));
  REQUIRE(r);   // the second file comes after the first one's data: found by the read that reaches it
  auto got = read_all(**r);
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Errc::unsupported);
  CHECK(got.error().message().find("several files under disk/ (disk/a.img, disk/b.img)") != std::string::npos);
  r = open(lay.url("link"));
  REQUIRE_FALSE(r);
  CHECK(r.error().message().find("not a regular file: disk/disk.img (symlink)") != std::string::npos);
  CHECK(open(lay.url("arm")));                      // no --arch: no check (CDI)
  auto wrong = open(lay.url("arm"), "amd64");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().code() == Errc::unsupported);
  CHECK(open(lay.url("arm"), "aarch64"));
}

TEST_CASE("registry source: a corrupted disk layer fails the last read, never ends cleanly", "[registry][source][digest]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  auto disk = t::pattern(200000, 9);
  auto digests = lay.image("v1", {{t::reg("disk/disk.img", disk)}});
  {   // flip one byte inside the disk's data (offset 1024 + 100000: after the pax headers)
    std::fstream f(lay.blob_path(digests[0]), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100000);
    char ch = 0;
    f.read(&ch, 1);
    ch = static_cast<char>(ch ^ 0x5a);
    f.seekp(100000);
    f.write(&ch, 1);
  }
  auto r = open(lay.url("v1"));
  REQUIRE(r);
  auto got = read_all(**r);
  REQUIRE_FALSE(got);
  CHECK(got.error().code() == Errc::corrupt_input);
  CHECK(got.error().message().find("digest mismatch: the manifest says " + digests[0]) != std::string::npos);
}

TEST_CASE("registry source: a corrupted layer above the disk fails the open", "[registry][source][digest]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  auto digests = lay.image("v1", {{t::reg("disk/disk.img", t::pattern(1000))}, {t::reg("etc/motd", t::pattern(5000))}});
  {
    std::fstream f(lay.blob_path(digests[1]), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2000);
    f.write("X", 1);
  }
  auto r = open(lay.url("v1"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().message().find("layer 1") != std::string::npos);
}

TEST_CASE("registry source: a damaged tar header is reported as the digest mismatch it is", "[registry][source][digest]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  auto digests = lay.image("v1", {{t::reg("disk/disk.img", t::pattern(1000))}});
  {
    std::fstream f(lay.blob_path(digests[0]), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(148);   // the header checksum field: libarchive refuses the header
    f.write("99999", 5);
  }
  auto r = open(lay.url("v1"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  INFO(r.error().what());
  CHECK(r.error().message().find("layer 0 (sha256:") == 0);
  CHECK(r.error().message().find("digest mismatch") != std::string::npos);
}

TEST_CASE("registry source: a manifest that does not match its digest is refused", "[registry][source][digest]") {
  t::TempDir tmp;
  Layout lay(tmp.path() / "lay");
  lay.image("v1", {{t::reg("disk/disk.img", t::pattern(1000))}});
  // Rewrite the manifest blob in place: index.json still names the old digest.
  nlohmann::json idx;
  std::ifstream(tmp.path() / "lay" / "index.json") >> idx;
  std::string digest = idx["manifests"][0]["digest"];
  std::ofstream(lay.blob_path(digest)) << "{\"schemaVersion\":2}";
  auto r = open(lay.url("v1"));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  CHECK(r.error().message().find("manifest digest mismatch") != std::string::npos);
}
