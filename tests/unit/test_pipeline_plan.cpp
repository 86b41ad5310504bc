// SPDX-License-Identifier: Apache-2.0
// The planner (lib/pipeline/plan.hpp) is pure: each decision is fed its facts directly — the
// format × the source (seekable local file, a stream such as stdin, HTTP with byte ranges) × a
// scratch directory offered or not × a checksum or not — and checked for the converter, the
// access, the needs and the reason. Then inspect() and run_import() on small real files must
// return the same plan.
#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "formats/registry.hpp"
#include "lib/pipeline/import.hpp"
#include "lib/pipeline/plan.hpp"
#include "lib/util/file_io.hpp"
#include "lib/util/process.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/unit/test_formats_tar_support.hpp"

using namespace cdi;
using namespace cdi::pipeline;
namespace fs = std::filesystem;
using formats::disk::DiskFormat;

namespace {

SourceFacts local_file() {
  SourceFacts s;
  s.name = "file";
  s.seekable = true;
  s.path = "/images/disk";
  s.size = 1 << 20;
  s.rereadable = true;
  return s;
}

SourceFacts stdin_stream() {
  SourceFacts s;
  s.name = "stdin";
  return s;
}

SourceFacts http_ranges() {
  SourceFacts s;
  s.name = "https";
  s.size = 1 << 20;
  s.range_url = "https://example.test/disk";
  return s;
}

DetectedFacts image(const SourceFacts& s, DiskFormat f, std::vector<std::string> layers = {}) {
  DetectedFacts d;
  d.stages = {s.name};
  for (auto& l : layers) d.stages.push_back(l);
  d.format = f;
  d.top_size = layers.empty() ? s.size : std::nullopt;
  return d;
}

PlanOptions opts(bool scratch = false, bool checksum = false) {
  PlanOptions o;
  o.scratch_offered = scratch;
  o.checksum = checksum;
  return o;
}

bool has_reason(const Plan& p, std::string_view part) {
  for (const auto& r : p.reasons)
    if (r.find(part) != std::string::npos) return true;
  return false;
}

std::string reasons_of(const Plan& p) {
  std::string s;
  for (const auto& r : p.reasons) s += "  " + r + "\n";
  return s;
}

#define CHECK_REASON(plan, part)            \
  do {                                      \
    INFO("reasons:\n" << reasons_of(plan)); \
    CHECK(has_reason(plan, part));          \
  } while (0)

}  // namespace

TEST_CASE("plan: raw and iso stream from every source, with and without scratch or checksum", "[plan]") {
  for (auto src : {local_file(), stdin_stream(), http_ranges()}) {
    for (bool scratch : {false, true}) {
      for (bool checksum : {false, true}) {
        INFO(src.name << " scratch=" << scratch << " checksum=" << checksum);
        auto p = plan_import(src, image(src, DiskFormat::raw), opts(scratch, checksum));
        CHECK(p.converter == Converter::stream);
        CHECK(p.access == Access::sequential);
        CHECK(to_string(p.converter) == "stream");
        CHECK_FALSE(p.needs.scratch);
        CHECK_FALSE(p.needs.random_access);
        CHECK_FALSE(p.needs.second_read);
        CHECK(p.needs.memory == 0);
        CHECK_FALSE(p.refusal);
        CHECK(p.format == "raw");
        CHECK(p.stages == std::vector<std::string>{src.name, "raw"});
        CHECK_REASON(p, "raw: copied as it streams");
        CHECK(has_reason(p, "checksum needs the whole stream") == checksum);

        auto iso = plan_import(src, image(src, DiskFormat::iso), opts(scratch, checksum));
        CHECK(iso.converter == Converter::stream);
        CHECK(iso.format == "iso");
        CHECK_REASON(iso, "iso is raw data");
      }
    }
  }
}

TEST_CASE("plan: a local fixed VHD streams its data and drops the footer", "[plan]") {
  auto src = local_file();
  auto d = image(src, DiskFormat::raw);
  d.fixed_vhd = true;
  auto p = plan_import(src, d, opts());
  CHECK(p.converter == Converter::stream);
  CHECK(p.format == "vhd");
  CHECK(p.stages == std::vector<std::string>{"file", "vhd(fixed)"});
  CHECK_REASON(p, "fixed VHD is raw data and a 512-byte footer");
  // Found only while streaming (stdin): the executor notes it the same way, once.
  auto s = plan_import(stdin_stream(), image(stdin_stream(), DiskFormat::raw), opts());
  CHECK(s.format == "raw");
  note_fixed_vhd(s);
  note_fixed_vhd(s);
  CHECK(s.format == "vhd");
  CHECK(s.stages.back() == "vhd(fixed)");
  CHECK(s.reasons.size() == 2);
}

TEST_CASE("plan: qcow2 native decoder holds up to the hold limit, scratch only past it", "[plan]") {
  for (auto src : {local_file(), stdin_stream(), http_ranges()}) {
    for (bool scratch : {false, true}) {
      if (src.rereadable && !scratch) continue;  // read twice (the next test)
      INFO(src.name << " scratch=" << scratch);
      auto o = opts(scratch);
      o.hold_limit = 32ull << 20;
      auto p = plan_import(src, image(src, DiskFormat::qcow2, {"xz"}), o);
      CHECK(p.converter == Converter::qcow2_native);
      CHECK(to_string(p.converter) == "native");
      CHECK(p.access == Access::sequential);
      CHECK(p.needs.memory == (32ull << 20));
      CHECK_FALSE(p.needs.scratch);
      CHECK_FALSE(p.needs.random_access);
      CHECK(p.needs.scratch_when == "only if data precede their L2 tables by more than the hold limit");
      CHECK_FALSE(p.refusal);
      CHECK_REASON(p, "held in memory, up to the hold limit (32.0 MiB)");
      if (scratch) CHECK_REASON(p, "they spill to the scratch directory");
      else CHECK_REASON(p, "none offered, the import would then fail with scratch required");
    }
  }
}

SourceFacts http_plain() {   // a server that ignores Range, with an ETag
  SourceFacts s;
  s.name = "http";
  s.size = 1 << 30;
  s.validator = "\"abc\"";
  s.pinned_url = "http://example.test/disk";
  s.rereadable = true;
  return s;
}

TEST_CASE("plan: qcow2 that can be read again but not seeked is read twice when no scratch is offered", "[plan]") {
  struct Cell { SourceFacts src; std::vector<std::string> layers; const char* what; };
  for (const Cell& c : {Cell{local_file(), {"xz"}, "the image is inside xz"},
                        Cell{http_plain(), {}, "the server does not serve byte ranges"},
                        Cell{http_plain(), {"gzip"}, "the image is inside gzip"}}) {
    for (bool checksum : {false, true}) {
      INFO(c.src.name << " " << c.what << " checksum=" << checksum);
      auto o = opts(false, checksum);
      o.hold_limit = 16 << 10;
      auto p = plan_import(c.src, image(c.src, DiskFormat::qcow2, c.layers), o);
      CHECK(p.converter == Converter::qcow2_native);
      CHECK(p.access == Access::two_reads);
      CHECK(p.needs.second_read);
      CHECK_FALSE(p.needs.scratch);
      CHECK(p.needs.scratch_when.empty());
      CHECK_FALSE(p.refusal);
      CHECK_REASON(p, std::string("the source cannot be seeked (") + c.what + ")");
      // one stream first (holding up to the hold limit), two reads when that would not do
      CHECK_REASON(p, "streams it once, holding data that precede their L2 tables up to the hold limit (16.0 KiB)");
      CHECK_REASON(p, "reads the image twice from the start, the tables first, then the data in file order");
      CHECK(p.needs.memory == o.hold_limit);
      CHECK(has_reason(p, "the checksum is verified on the first read") == checksum);
      CHECK_FALSE(has_reason(p, "checksum needs the whole stream"));
      // Scratch offered: one read, spilling past the hold limit.
      auto s = plan_import(c.src, image(c.src, DiskFormat::qcow2, c.layers), opts(true, checksum));
      CHECK(s.access == Access::sequential);
      CHECK_FALSE(s.needs.second_read);
      CHECK_REASON(s, "they spill to the scratch directory");
    }
  }
  // A stream known to fit the hold limit is read once.
  auto small = http_plain();
  small.size = 1 << 20;
  auto p = plan_import(small, image(small, DiskFormat::qcow2), opts());
  CHECK(p.access == Access::sequential);
  CHECK_FALSE(p.needs.second_read);
  // Never stdin, an upload body, or HTTP without a validator.
  for (auto src : {stdin_stream(), http_ranges()}) {
    auto q = plan_import(src, image(src, DiskFormat::qcow2, {"xz"}), opts());
    CHECK(q.access == Access::sequential);
    CHECK_FALSE(q.needs.second_read);
  }
  io::ReaderInfo upload{"upload", 1ull << 30, false, std::nullopt};
  CHECK_FALSE(SourceFacts::from(upload).rereadable);
  io::ReaderInfo http{"https", 1ull << 30, false, std::nullopt};
  CHECK_FALSE(SourceFacts::from(http).rereadable);
  http.validator = "\"e\"";
  http.pinned_url = "https://example.test/d";
  CHECK(SourceFacts::from(http).rereadable);
}

TEST_CASE("plan: a docker:// containerDisk pinned by manifest and layer digest is read twice", "[plan]") {
  // DiskReader::info() of a registry image: the reference pinned by its manifest digest, the
  // disk layer's blob digest as the validator.
  io::ReaderInfo reg{"docker[disk/disk.img]", 32ull << 20, false, std::nullopt};
  CHECK_FALSE(SourceFacts::from(reg).rereadable);   // no pin: read once (an oci: layout)
  reg.pinned_url = "docker://127.0.0.1:5000/cd/img@sha256:" + std::string(64, 'a');
  reg.validator = "sha256:" + std::string(64, 'b');
  CHECK_FALSE(SourceFacts::from(reg).rereadable);   // not content-addressed: the name alone does not decide
  reg.content_addressed = true;
  auto s = SourceFacts::from(reg);
  CHECK(s.rereadable);
  CHECK(s.content_addressed);
  CHECK(s.pinned_url == reg.pinned_url);
  CHECK(s.validator == reg.validator);
  auto o = opts(false, false);
  o.hold_limit = 16 << 10;
  auto p = plan_import(s, image(s, DiskFormat::qcow2), o);
  CHECK(p.converter == Converter::qcow2_native);
  CHECK(p.access == Access::two_reads);
  CHECK(p.needs.second_read);
  CHECK_FALSE(p.needs.scratch);
  CHECK_REASON(p, "the source cannot be seeked (a containerDisk layer)");
  CHECK_REASON(p, "pinned to the first one's manifest digest and layer digest");
  // Scratch offered: one read, spilling past the hold limit.
  auto sp = plan_import(s, image(s, DiskFormat::qcow2), opts(true, false));
  CHECK(sp.access == Access::sequential);
  CHECK_FALSE(sp.needs.second_read);
}

TEST_CASE("plan: qcow2 from a local file is read by random access: nothing held, no scratch", "[plan]") {
  for (bool scratch : {false, true}) {
    for (bool checksum : {false, true}) {
      INFO("scratch=" << scratch << " checksum=" << checksum);
      auto p = plan_import(local_file(), image(local_file(), DiskFormat::qcow2), opts(scratch, checksum));
      CHECK(p.converter == Converter::qcow2_native);
      CHECK(to_string(p.converter) == "native");
      CHECK(p.access == Access::local_file);
      CHECK(p.needs.random_access);
      CHECK(p.needs.memory == 0);
      CHECK_FALSE(p.needs.scratch);
      CHECK(p.needs.scratch_when.empty());
      CHECK_FALSE(p.refusal);
      CHECK_REASON(p, "the data in file order with positioned reads (nothing held, no scratch, whatever the layout)");
      CHECK(has_reason(p, "the checksum is verified before the decoder reads the file") == checksum);
    }
  }
  // The same image streamed (stdin, or over HTTP today) is decoded in one pass with the hold buffer.
  for (auto src : {stdin_stream(), http_ranges()}) {
    INFO(src.name);
    auto p = plan_import(src, image(src, DiskFormat::qcow2), opts());
    CHECK(p.access == Access::sequential);
    CHECK(p.needs.memory == opts().hold_limit);
  }
}

TEST_CASE("plan: qcow2 over HTTP with ranges: streamed when the measured hold fits, else read by ranges", "[plan]") {
  const SourceFacts src = http_ranges();
  for (bool scratch : {false, true}) {
    for (bool checksum : {false, true}) {
      INFO("scratch=" << scratch << " checksum=" << checksum);
      auto o = opts(scratch, checksum);
      o.hold_limit = 1 << 20;
      auto fits = image(src, DiskFormat::qcow2);
      fits.qcow2_stream_hold = 1 << 20;   // exactly the limit: it fits
      auto p = plan_import(src, fits, o);
      CHECK(p.converter == Converter::qcow2_native);
      CHECK(p.access == Access::sequential);
      CHECK(p.needs.memory == (1u << 20));
      CHECK_FALSE(p.needs.random_access);
      CHECK(p.needs.scratch_when.empty());
      CHECK_REASON(p, "one stream holds at most 1.0 MiB, within the hold limit (1.0 MiB): streamed in one download");

      auto over = image(src, DiskFormat::qcow2);
      over.qcow2_stream_hold = (1 << 20) + 1;
      auto q = plan_import(src, over, o);
      CHECK(q.converter == Converter::qcow2_native);
      CHECK(q.access == Access::http_ranges);
      CHECK(q.needs.random_access);
      CHECK(q.needs.memory == 0);
      CHECK_FALSE(q.needs.scratch);
      CHECK(q.needs.scratch_when.empty());
      CHECK_FALSE(q.refusal);
      CHECK_REASON(q, "more than the hold limit (1.0 MiB): the native decoder reads the data in file order with Range");
      CHECK(has_reason(q, "it is verified on the stream first, then the image is read again by ranges") == checksum);
    }
  }
  // Not measured (ranges unusable), or layered: streamed with the hold buffer as before.
  auto p = plan_import(src, image(src, DiskFormat::qcow2), opts());
  CHECK(p.access == Access::sequential);
  auto layered = image(src, DiskFormat::qcow2, {"xz"});
  layered.qcow2_stream_hold = 1ull << 40;
  CHECK(plan_import(src, layered, opts()).access == Access::sequential);
  // A local file states the measured hold too, and still reads in place.
  auto local = image(local_file(), DiskFormat::qcow2);
  local.qcow2_stream_hold = 5 << 20;
  auto l = plan_import(local_file(), local, opts());
  CHECK(l.access == Access::local_file);
  CHECK_REASON(l, "its tables were read: one stream would hold 5.0 MiB");
}

TEST_CASE("plan: qcow2 through qemu-img: in place for a local file, else a spool", "[plan]") {
  auto o = opts();
  o.qcow2_via_qemu_img = true;
  auto local = plan_import(local_file(), image(local_file(), DiskFormat::qcow2), o);
  CHECK(local.converter == Converter::qemu_img_local);
  CHECK(to_string(local.converter) == "qemu-img");
  CHECK_REASON(local, "qemu-img chosen as the decoder");
  auto streamed = plan_import(stdin_stream(), image(stdin_stream(), DiskFormat::qcow2), o);
  CHECK(streamed.converter == Converter::qemu_img_spool);
  CHECK(streamed.scratch_reason == "qcow2 from a stream needs random access");
  REQUIRE(streamed.refusal);
  CHECK(streamed.refusal->code() == Errc::scratch_required);
}

TEST_CASE("plan: vmdk, vhd, vhdx and vdi from a local file are converted in place", "[plan]") {
  for (auto f : {DiskFormat::vmdk, DiskFormat::vhd, DiskFormat::vhdx, DiskFormat::vdi}) {
    for (bool scratch : {false, true}) {
      for (bool checksum : {false, true}) {
        INFO(formats::disk::name(f) << " scratch=" << scratch << " checksum=" << checksum);
        auto p = plan_import(local_file(), image(local_file(), f), opts(scratch, checksum));
        CHECK(p.converter == Converter::qemu_img_local);
        CHECK(p.access == Access::local_file);
        CHECK(p.needs.random_access);
        CHECK_FALSE(p.needs.scratch);
        CHECK_FALSE(p.refusal);
        CHECK_REASON(p, std::string(formats::disk::qemu_driver(f)) + " needs random access; the source is a local file");
        CHECK(has_reason(p, "verified before qemu-img reads the file") == checksum);
      }
    }
  }
}

TEST_CASE("plan: vmdk etc. from a stream spool to scratch, or need it", "[plan]") {
  for (auto f : {DiskFormat::vmdk, DiskFormat::vhd, DiskFormat::vhdx, DiskFormat::vdi}) {
    const std::string drv(formats::disk::qemu_driver(f));
    INFO(drv);
    auto src = stdin_stream();
    auto with = plan_import(src, image(src, f, {"gzip"}), opts(true));
    CHECK(with.converter == Converter::qemu_img_spool);
    CHECK(with.access == Access::scratch_spool);
    CHECK(with.needs.scratch);
    CHECK(with.needs.random_access);
    CHECK_FALSE(with.needs.scratch_estimate);   // the gzip's output length is not known up front
    CHECK_FALSE(with.refusal);
    CHECK_REASON(with, drv + " from a stream needs random access: the stream is spooled to scratch");

    auto without = plan_import(src, image(src, f, {"gzip"}), opts(false));
    CHECK(without.converter == Converter::qemu_img_spool);
    CHECK(without.needs.scratch);
    CHECK(without.scratch_reason == drv + " from a stream needs random access");
    CHECK_REASON(without, "no scratch is offered: scratch space required");
    REQUIRE(without.refusal);
    CHECK(without.refusal->code() == Errc::scratch_required);
    CHECK(without.refusal->reason() == Reason::scratch_required);
    CHECK(without.refusal->what() == "scratch space required: " + drv + " from a stream (stdin > gzip) needs random access");
    CHECK(without.refusal->hint() == "; pass --scratch-dir DIR");

    // An uncompressed stream of known length: the spool's size is known.
    auto sized = stdin_stream();
    sized.size = 12345;
    auto est = plan_import(sized, image(sized, f), opts(true));
    CHECK(est.needs.scratch_estimate == 12345u);
  }
}

TEST_CASE("plan: vmdk over HTTP with byte ranges", "[plan]") {
  auto src = http_ranges();
  SECTION("no scratch: nbdkit-curl in place") {
    auto p = plan_import(src, image(src, DiskFormat::vmdk), opts());
    CHECK(p.converter == Converter::qemu_img_nbdkit);
    CHECK(to_string(p.converter) == "qemu-img over nbdkit-curl");
    CHECK(p.access == Access::http_ranges);
    CHECK(p.needs.random_access);
    CHECK_FALSE(p.needs.scratch);
    CHECK_FALSE(p.refusal);
    CHECK_REASON(p, "vmdk from a stream needs random access; the server serves byte ranges and no scratch is offered: "
                    "nbdkit-curl reads it in place");
  }
  SECTION("scratch offered: one sequential download into the spool") {
    auto p = plan_import(src, image(src, DiskFormat::vmdk), opts(true));
    CHECK(p.converter == Converter::qemu_img_spool);
    CHECK(p.needs.scratch_estimate == (1u << 20));
    CHECK_FALSE(p.not_in_place);
    CHECK_REASON(p, "one sequential download is faster than Range reads");
  }
  SECTION("a checksum needs the stream") {
    auto p = plan_import(src, image(src, DiskFormat::vmdk), opts(false, true));
    CHECK(p.converter == Converter::qemu_img_spool);
    CHECK(p.not_in_place == "--checksum needs the whole stream");
    CHECK_REASON(p, "not read in place: --checksum needs the whole stream");
    REQUIRE(p.refusal);
    CHECK(p.refusal->what() == "scratch space required: vmdk from a stream (https) needs random access "
                               "(not read in place: --checksum needs the whole stream)");
    auto s = plan_import(src, image(src, DiskFormat::vmdk), opts(true, true));
    CHECK(s.converter == Converter::qemu_img_spool);
    CHECK_FALSE(s.refusal);
    CHECK(s.not_in_place == "--checksum needs the whole stream");
  }
  SECTION("nbdkit-curl cannot serve these options") {
    auto o = opts();
    o.nbdkit_unavailable = "nbdkit's curl plugin cannot present a TLS client certificate";
    auto p = plan_import(src, image(src, DiskFormat::vhdx), o);
    CHECK(p.converter == Converter::qemu_img_spool);
    REQUIRE(p.refusal);
    CHECK(p.refusal->what() == "scratch space required: vhdx from a stream (https) needs random access (not read in "
                               "place: nbdkit's curl plugin cannot present a TLS client certificate)");
    CHECK_FALSE(has_reason(p, "fallback"));
  }
  SECTION("nbdkit-curl failed to start: the fallback is recorded") {
    auto o = opts();
    o.nbdkit_unavailable = "nbdkit is not installed";
    o.nbdkit_fallback = true;
    auto p = plan_import(src, image(src, DiskFormat::vmdk), o);
    CHECK(p.converter == Converter::qemu_img_spool);
    CHECK_REASON(p, "fallback: nbdkit-curl could not start (nbdkit is not installed)");
  }
  SECTION("a compressed image is not read in place") {
    auto p = plan_import(src, image(src, DiskFormat::vmdk, {"gzip"}), opts(true));
    CHECK(p.converter == Converter::qemu_img_spool);
    CHECK_FALSE(p.not_in_place);
    CHECK_REASON(p, "not read in place: the image is inside gzip");
  }
}

TEST_CASE("plan: content type archive extracts a tar, refuses anything else", "[plan]") {
  auto o = opts(false, true);
  o.content_type = ContentType::archive;
  auto src = local_file();
  DetectedFacts tar;
  tar.stages = {"file", "gzip"};
  tar.tar_archive = true;
  auto p = plan_import(src, tar, o);
  CHECK(p.converter == Converter::extract);
  CHECK(p.target == TargetKind::directory);
  CHECK(p.format == "tar");
  CHECK(p.stages == std::vector<std::string>{"file", "gzip", "tar"});
  CHECK_FALSE(p.needs.scratch);
  CHECK_FALSE(p.refusal);
  CHECK_REASON(p, "the tar is extracted into a staging directory");
  CHECK_REASON(p, "verified before the tree is moved into place");

  auto bad = plan_import(src, image(src, DiskFormat::qcow2), o);
  REQUIRE(bad.refusal);
  CHECK(bad.refusal->code() == Errc::unsupported);
  CHECK(bad.refusal->what() == "content type archive needs a tar archive, found file > qcow2");
}

TEST_CASE("plan: refused formats", "[plan]") {
  for (auto f : {DiskFormat::qed, DiskFormat::qcow1, DiskFormat::luks, DiskFormat::vmdk_descriptor}) {
    auto p = plan_import(local_file(), image(local_file(), f), opts(true));
    REQUIRE(p.refusal);
    CHECK(p.refusal->code() == Errc::unsupported);
    CHECK(p.refusal->what().find("is not supported (supported: raw, qcow2, vmdk, vhd, vhdx, vdi)") != std::string::npos);
  }
}

TEST_CASE("plan: clone bodies are never probed", "[plan]") {
  SourceFacts up;
  up.name = "upload";
  auto o = opts(true, true);
  o.content_type = ContentType::blockdevice_clone;
  auto file = plan_clone(up, o, false);
  CHECK(file.converter == Converter::clone);
  CHECK(to_string(file.converter) == "clone");
  CHECK(file.stages == std::vector<std::string>{"upload", "snappy", "raw"});
  CHECK(file.target == TargetKind::file);
  CHECK_FALSE(file.needs.scratch);
  CHECK_REASON(file, "never probed, never scratch or qemu-img");
  CHECK_REASON(file, "checksum needs the whole stream");
  CHECK(plan_clone(up, o, true).target == TargetKind::block);

  o.content_type = ContentType::filesystem_clone;
  auto dir = plan_clone(up, o, false);
  CHECK(dir.stages == std::vector<std::string>{"upload", "snappy", "tar"});
  CHECK(dir.format == "tar");
  CHECK(dir.target == TargetKind::directory);
  auto dev = plan_clone(up, o, true);
  CHECK(dev.stages == std::vector<std::string>{"upload", "snappy", "tar[disk.img]", "raw"});
  CHECK(dev.target == TargetKind::block);
}

TEST_CASE("format table: detection is a best bid, filtered by kind and name", "[plan][formats]") {
  CHECK(formats::find_format("gzip")->kind == formats::FormatKind::compression);
  CHECK(formats::find_format("tar")->kind == formats::FormatKind::container);
  CHECK(formats::find_format("disk")->open == nullptr);
  CHECK(formats::find_format("nope") == nullptr);
  CHECK(formats::needs_of(DiskFormat::vmdk).random_access_input);
  CHECK_FALSE(formats::needs_of(DiskFormat::raw).random_access_input);

  std::vector<std::byte> gz(64);
  gz[0] = std::byte{0x1f};
  gz[1] = std::byte{0x8b};
  gz[2] = std::byte{8};
  auto b = formats::best_bid(gz);
  REQUIRE(b.row);
  CHECK(b.row->name == "gzip");
  // Only disk formats may bid: the gzip header is raw data.
  CHECK(formats::best_bid(gz, {unsigned(formats::FormatKind::disk)}).row == nullptr);
  // Only zstd among the codecs (a registry layer filter of one name): no match.
  static constexpr std::string_view only_zstd[] = {"zstd"};
  CHECK(formats::best_bid(gz, {unsigned(formats::FormatKind::compression), only_zstd}).row == nullptr);

  std::vector<std::byte> q(512);
  const unsigned char magic[] = {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3};
  std::memcpy(q.data(), magic, sizeof magic);
  auto qb = formats::best_bid(q);
  REQUIRE(qb.row);
  CHECK(qb.row->kind == formats::FormatKind::disk);
  CHECK(qb.result.disk == DiskFormat::qcow2);
  // snappy is opened by content type only, never bid.
  std::vector<std::byte> sz = {std::byte{0xff}, std::byte{6}, std::byte{0}, std::byte{0}, std::byte{'s'},
                               std::byte{'N'},  std::byte{'a'}, std::byte{'P'}, std::byte{'p'}, std::byte{'Y'}};
  auto sb = formats::best_bid(sz);
  CHECK((sb.row == nullptr || sb.row->name != "snappy"));
}

namespace {

void put(const fs::path& p, const std::vector<std::byte>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void run(const std::vector<std::string>& argv) {
  auto r = util::run_process(argv);
  REQUIRE(r);
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
}

// Everything but the target (inspect has none).
void check_same_plan(const Plan& a, const Plan& b) {
  CHECK(a.stages == b.stages);
  CHECK(a.format == b.format);
  CHECK(a.disk_format == b.disk_format);
  CHECK(a.converter == b.converter);
  CHECK(a.access == b.access);
  CHECK(a.needs.scratch == b.needs.scratch);
  CHECK(a.needs.scratch_estimate == b.needs.scratch_estimate);
  CHECK(a.needs.scratch_when == b.needs.scratch_when);
  CHECK(a.needs.random_access == b.needs.random_access);
  CHECK(a.needs.memory == b.needs.memory);
  CHECK(a.needs.second_read == b.needs.second_read);
  CHECK(a.reasons == b.reasons);
  CHECK(a.scratch_reason == b.scratch_reason);
  CHECK(a.not_in_place == b.not_in_place);
}

}  // namespace

TEST_CASE("inspect and run_import return the same plan", "[plan][inspect]") {
  cdi::test::tar::TempDir dir;
  const fs::path raw = dir.path() / "disk.raw";
  put(raw, cdi::test::tar::pattern(3u << 20, 4));
  const fs::path qcow2 = dir.path() / "disk.qcow2", vmdk = dir.path() / "disk.vmdk", vhd = dir.path() / "fixed.vhd",
                 tarball = dir.path() / "disk.tar";
  run({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.string(), qcow2.string()});
  run({"qemu-img", "convert", "-f", "raw", "-O", "vmdk", raw.string(), vmdk.string()});
  run({"qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw.string(), vhd.string()});
  run({"tar", "-C", dir.path().string(), "-cf", tarball.string(), "disk.raw"});
  fs::create_directory(dir.path() / "scratch");

  struct Case {
    fs::path src;
    Converter converter;
    bool via_qemu = false;
    bool scratch = false;
  };
  for (const auto& c : {Case{raw, Converter::stream}, Case{qcow2, Converter::qcow2_native},
                        Case{qcow2, Converter::qemu_img_local, true}, Case{vmdk, Converter::qemu_img_local},
                        Case{vhd, Converter::stream}, Case{tarball, Converter::stream, false, true}}) {
    INFO(c.src.filename().string() << " via_qemu=" << c.via_qemu);
    ImportOptions o;
    o.url = c.src.string();
    o.dest = (dir.path() / "out.img").string();
    o.qcow2_via_qemu_img = c.via_qemu;
    if (c.scratch) o.scratch_dir = dir.path() / "scratch";
    auto i = inspect(o);
    REQUIRE(i);
    auto r = run_import(o);
    REQUIRE(r);
    CHECK(i->plan.converter == c.converter);
    check_same_plan(i->plan, r->plan);
    CHECK(r->plan.target == TargetKind::file);
    CHECK(i->plan.target == TargetKind::unknown);
    // The printed fields follow from the plan.
    CHECK(r->converter == to_string(r->plan.converter));
    CHECK(i->converter == r->converter);
    CHECK(r->chain == r->plan.stages);
    CHECK(i->chain == r->chain);
    CHECK(r->format == i->format);
    CHECK(r->target_kind == "file");
    fs::remove(o.dest);
  }
  // A fixed VHD is stated up front for a local file.
  ImportOptions o;
  o.url = vhd.string();
  auto i = inspect(o);
  REQUIRE(i);
  CHECK(i->format == "vhd");
  CHECK(i->chain == std::vector<std::string>{"file", "vhd(fixed)"});
  CHECK(i->virtual_size == (3u << 20));
}

TEST_CASE("a streamed vmdk: inspect and run_import agree on the spool and on needing scratch", "[plan][inspect]") {
  cdi::test::tar::TempDir dir;
  const fs::path raw = dir.path() / "disk.raw", vmdk = dir.path() / "disk.vmdk";
  put(raw, cdi::test::tar::pattern(2u << 20, 7));
  run({"qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw.string(), vmdk.string()});
  std::vector<std::byte> bytes(fs::file_size(vmdk));
  {
    std::ifstream f(vmdk, std::ios::binary);
    f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  fs::create_directory(dir.path() / "scratch");
  ImportOptions o;
  o.url = "stream";
  o.dest = (dir.path() / "out.img").string();
  o.source_factory = [&]() -> Result<std::unique_ptr<io::Reader>> {
    return std::make_unique<cdi::test::MemoryReader>(bytes, 100000, "stdin");
  };

  auto without = inspect(o);
  REQUIRE(without);
  CHECK(without->plan.converter == Converter::qemu_img_spool);
  CHECK(without->scratch_required);
  CHECK(without->scratch_reason == "vmdk from a stream needs random access");
  REQUIRE(without->plan.refusal);
  auto failed = run_import(o);
  REQUIRE_FALSE(failed);
  CHECK(failed.error().reason() == Reason::scratch_required);
  CHECK(failed.error().what() == "stream: " + without->plan.refusal->what());
  CHECK_FALSE(fs::exists(o.dest));

  o.scratch_dir = dir.path() / "scratch";
  auto with = inspect(o);
  REQUIRE(with);
  auto r = run_import(o);
  REQUIRE(r);
  CHECK(with->plan.converter == Converter::qemu_img_spool);
  CHECK_FALSE(with->plan.refusal);
  check_same_plan(with->plan, r->plan);
  CHECK(r->converter == "qemu-img");
  CHECK(r->image_size == (2u << 20));
  CHECK(r->scratch_bytes > 0);
}
