// SPDX-License-Identifier: Apache-2.0
// run_upload_server in-process (the API pod mode uses), driven by cpp-httplib's client over
// 127.0.0.1 with a kernel-chosen port. The curl-driven matrix lives in tests/e2e/test_upload.sh.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "formats/snappy/snappy_encoder.hpp"
#include "lib/server/upload_server.hpp"
#include "tests/support/memory_reader.hpp"
#include "lib/util/digest.hpp"
#include "tests/support/loop_device.hpp"
#include "tests/unit/test_formats_qcow2_support.hpp"
#include "tests/unit/test_formats_tar_support.hpp"

using namespace cdi;
using cdi::test::sys::TempDir;

namespace {

std::string pattern(size_t n, uint32_t seed) {
  std::string v(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : v) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>((x >> 16) | 1);
  }
  return v;
}

std::string as_string(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

std::string sha256_of(std::string_view body) {
  return "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(body)));
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs the server on a thread; port() waits for it to listen.
struct Running {
  explicit Running(server::UploadServerOptions o) {
    o.port = 0;
    o.listen_address = "127.0.0.1";
    o.on_listening = [this](uint16_t p) { m_port.set_value(p); };
    m_result = std::async(std::launch::async, [o] { return server::run_upload_server(o); });
  }
  uint16_t port() {
    auto f = m_port.get_future();
    REQUIRE(f.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return f.get();
  }
  Result<server::UploadOutcome> result() {
    REQUIRE(m_result.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
    return m_result.get();
  }
  std::promise<uint16_t> m_port;
  std::future<Result<server::UploadOutcome>> m_result;
};

server::UploadServerOptions http_options(const std::filesystem::path& dest) {
  server::UploadServerOptions o;
  o.insecure_http = true;
  o.import.dest = dest.string();
  return o;
}

}  // namespace

TEST_CASE("run_upload_server refuses to start without TLS unless insecure_http", "[server][upload_server]") {
  TempDir d;
  server::UploadServerOptions o;
  o.import.dest = (d / "disk.raw").string();
  auto r = server::run_upload_server(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::invalid_argument);
  CHECK(r.error().what().find("without TLS") != std::string::npos);
  o.tls_cert = d / "missing.crt";
  r = server::run_upload_server(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().what().find("both a certificate and a key") != std::string::npos);
  o.tls_key = d / "missing.key";
  r = server::run_upload_server(o);
  REQUIRE_FALSE(r);
  CHECK(r.error().what().find("missing.crt") != std::string::npos);
}

TEST_CASE("run_upload_server: a sync upload is written, verified and ends the server", "[server][upload_server]") {
  TempDir d;
  auto image = pattern(3 << 20, 7);
  auto o = http_options(d / "disk.raw");
  Running srv(o);
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(std::chrono::seconds(30));
  auto health = cli.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(health->body == "OK");
  auto get = cli.Get("/v1beta1/upload");
  REQUIRE(get);
  CHECK(get->status == 404);

  SECTION("plain body with X-Checksum") {
    httplib::Headers h{{"X-Checksum", "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(image)))}};
    auto res = cli.Post("/v1beta1/upload", h, image, "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK_FALSE(r->deadline_passed);
    CHECK(r->report.image_size == image.size());
    CHECK(r->report.checksum_verified.rfind("sha256:", 0) == 0);
  }
  SECTION("multipart form, the 'file' part among others") {
    httplib::MultipartFormDataItems items{{"before", "x", "", "text/plain"},
                                          {"file", image, "disk.raw", "application/octet-stream"},
                                          {"after", "y", "", "text/plain"}};
    auto res = cli.Post("/v1alpha1/upload-form", items);
    REQUIRE(res);
    CHECK(res->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK(r->report.image_size == image.size());
  }
  CHECK(slurp(d / "disk.raw") == image);
}

TEST_CASE("run_upload_server: failures are answered and the next attempt succeeds", "[server][upload_server]") {
  TempDir d;
  auto image = pattern(1 << 20, 3);
  auto o = http_options(d / "disk.raw");
  o.import.image_size = 512 << 10;
  Running srv(o);
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(std::chrono::seconds(30));

  auto too_big = cli.Post("/v1beta1/upload", image, "application/octet-stream");
  REQUIRE(too_big);
  CHECK(too_big->status == 400);
  CHECK(too_big->body.find("larger than the reported available storage") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(d / "disk.raw"));

  auto bad_sum = cli.Post("/v1beta1/upload", {{"X-Checksum", "md5:" + std::string(32, '0')}}, image.substr(0, 4096),
                          "application/octet-stream");
  REQUIRE(bad_sum);
  CHECK(bad_sum->status == 400);
  CHECK(bad_sum->body.find("checksum mismatch: expected md5:" + std::string(32, '0')) != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(d / "disk.raw"));

  httplib::MultipartFormDataItems no_file{{"image", image.substr(0, 4096), "disk.raw", "application/octet-stream"}};
  auto form = cli.Post("/v1beta1/upload-form", no_file);
  REQUIRE(form);
  CHECK(form->status == 400);
  CHECK(form->body.find("no part named 'file'") != std::string::npos);

  auto ok = cli.Post("/v1beta1/upload-async", image.substr(0, 256 << 10), "application/octet-stream");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  auto r = srv.result();
  REQUIRE(r);
  CHECK(r->report.image_size == 256u << 10);
  // --image-size grows a file target
  CHECK(std::filesystem::file_size(d / "disk.raw") == 512u << 10);
  CHECK(slurp(d / "disk.raw").substr(0, 256 << 10) == image.substr(0, 256 << 10));
}

TEST_CASE("run_upload_server: a passed deadline stops an idle server", "[server][upload_server]") {
  TempDir d;
  auto o = http_options(d / "disk.raw");
  o.deadline = std::chrono::system_clock::now() - std::chrono::seconds(1);
  Running srv(o);
  srv.port();
  auto r = srv.result();
  REQUIRE(r);
  CHECK(r->deadline_passed);
  CHECK_FALSE(std::filesystem::exists(d / "disk.raw"));
}

TEST_CASE("run_upload_server: the cancel token stops it", "[server][upload_server]") {
  TempDir d;
  util::CancelToken cancel;
  auto o = http_options(d / "disk.raw");
  o.import.cancel = &cancel;
  Running srv(o);
  srv.port();
  cancel.cancel();
  auto r = srv.result();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::cancelled);
}

TEST_CASE("run_upload_server: a clone body is refused on async routes and written verbatim on sync ones",
          "[server][upload_server][clone]") {
  TempDir d;
  // raw device content that starts with a qcow2 magic: a clone copies it byte for byte
  auto device = "QFI\xfb" + pattern((2 << 20) - 4, 5);
  std::vector<std::byte> raw(reinterpret_cast<const std::byte*>(device.data()),
                             reinterpret_cast<const std::byte*>(device.data()) + device.size());
  auto enc = formats::snappy::open_encoder(std::make_unique<cdi::test::MemoryReader>(raw), {});
  REQUIRE(enc);
  std::string body;
  std::vector<std::byte> buf(1 << 16);
  for (;;) {
    auto n = (*enc)->read(buf);
    REQUIRE(n);
    if (*n == 0) break;
    body.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
  auto o = http_options(d / "disk.img");
  Running srv(o);
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(std::chrono::seconds(30));
  httplib::Headers h{{"x-cdi-content-type", "blockdevice-clone"}};
  for (const char* route : {"/v1beta1/upload-async", "/v1alpha1/upload-async"}) {
    auto res = cli.Post(route, h, body, "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 500);
    CHECK(res->body == "Saving stream failed: async clone not supported\n");
  }
  CHECK_FALSE(std::filesystem::exists(d / "disk.img"));
  auto res = cli.Post("/v1beta1/upload", h, body, "application/octet-stream");
  REQUIRE(res);
  CHECK(res->status == 200);
  auto r = srv.result();
  REQUIRE(r);
  CHECK(r->report.content_type == pipeline::ContentType::blockdevice_clone);
  CHECK(r->report.chain == std::vector<std::string>{"upload", "snappy", "raw"});
  CHECK(slurp(d / "disk.img") == device);
}

namespace {

// A qcow2 (64 KiB clusters, 1 MiB virtual) whose last referenced cluster is followed by `tail`
// bytes of data the decoder reads and discards; `raw` is the guest image.
struct TailedQcow2 {
  std::string image;   // header, L1, L2, 8 data clusters
  std::string tail;    // after the last cluster
  std::string raw;
};

TailedQcow2 tailed_qcow2() {
  namespace q = cdi::test::qcow2;
  constexpr uint64_t cs = 64 << 10;
  q::Builder b(16, 16 * cs);
  b.l1_offset = cs;
  b.l1(0, 2 * cs);
  TailedQcow2 t;
  t.raw.assign(16 * cs, '\0');
  for (uint64_t g = 0; g < 8; ++g) {
    auto data = q::pattern(cs, static_cast<uint32_t>(40 + g));
    b.put((3 + g) * cs, data);
    b.l2(2 * cs, g, q::Builder::normal((3 + g) * cs));
    t.raw.replace(g * cs, cs, as_string(data));
  }
  t.image = as_string(b.build());
  t.tail = pattern(300 << 10, 11);
  return t;
}

}  // namespace

// X-Checksum is the import's checksum (the pipeline's HashTap): it covers the whole body, also the
// bytes after what a stage needs (data after the last qcow2 cluster, zeros after a tar's end
// marker). A digest that is wrong only because of that tail is still a mismatch: 400, and the
// target is left as a failed import leaves it (no file, no extracted tree, no device head).
TEST_CASE("run_upload_server: X-Checksum covers the body's tail beyond what the stages need",
          "[server][upload_server][checksum]") {
  TempDir d;
  const auto q = tailed_qcow2();
  const std::string body = q.image + q.tail;
  const std::string tail_only_wrong = sha256_of(q.image);   // right for everything but the tail

  SECTION("qcow2 into a file, sync and async routes") {
    auto o = http_options(d / "disk.raw");
    Running srv(o);
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(std::chrono::seconds(30));
    for (const char* route : {"/v1beta1/upload", "/v1beta1/upload-async", "/v1alpha1/upload-form-async"}) {
      INFO(route);
      httplib::Result res = std::string_view(route).find("form") != std::string_view::npos
                                ? cli.Post(route, {{"X-Checksum", tail_only_wrong}},
                                           httplib::MultipartFormDataItems{{"file", body, "disk.qcow2", "application/octet-stream"}})
                                : cli.Post(route, {{"X-Checksum", tail_only_wrong}}, body, "application/octet-stream");
      REQUIRE(res);
      CHECK(res->status == 400);
      CHECK(res->body.find("checksum mismatch: expected " + tail_only_wrong + ", calculated " + sha256_of(body)) !=
            std::string::npos);
      CHECK_FALSE(std::filesystem::exists(d / "disk.raw"));
    }
    auto ok = cli.Post("/v1beta1/upload-async", {{"X-Checksum", sha256_of(body)}}, body, "application/octet-stream");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK(r->report.checksum_verified == sha256_of(body));
    CHECK(r->report.format == "qcow2");
    CHECK(slurp(d / "disk.raw") == q.raw);
  }

  SECTION("vmdk through scratch and qemu-img, async route: verified before the 200") {
    // run_import verifies this path's digest after qemu-img has converted the spooled body, so
    // the async reply waits for that (phase finishing) instead of answering at `converting`.
    namespace qs = cdi::test::qcow2;
    std::filesystem::create_directories(d / "scratch");
    qs::write_file((d / "src.raw").string(), std::as_bytes(std::span(q.raw)));
    REQUIRE(qs::sh("qemu-img convert -f raw -O vmdk -o subformat=streamOptimized " + (d / "src.raw").string() + " " +
                   (d / "disk.vmdk").string()));
    const std::string vmdk = slurp(d / "disk.vmdk");
    auto o = http_options(d / "disk.raw");
    o.import.scratch_dir = d / "scratch";
    Running srv(o);
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(std::chrono::seconds(30));
    const std::string wrong = sha256_of(vmdk + "x");
    auto res = cli.Post("/v1beta1/upload-async", {{"X-Checksum", wrong}}, vmdk, "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(res->body.find("checksum mismatch: expected " + wrong + ", calculated " + sha256_of(vmdk)) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(d / "disk.raw"));
    CHECK(std::filesystem::is_empty(d / "scratch"));
    auto ok = cli.Post("/v1beta1/upload-async", {{"X-Checksum", sha256_of(vmdk)}}, vmdk, "application/octet-stream");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK(r->report.checksum_verified == sha256_of(vmdk));
    CHECK(r->report.format == "vmdk");
    CHECK(slurp(d / "disk.raw") == q.raw);
  }

  SECTION("qcow2 onto a block device") {
    cdi::test::sys::ScratchLoop loop(2 << 20, 0xFF);
    auto o = http_options(loop.path());
    Running srv(o);
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(std::chrono::seconds(30));
    auto res = cli.Post("/v1beta1/upload", {{"X-Checksum", tail_only_wrong}}, body, "application/octet-stream");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(res->body.find("checksum mismatch") != std::string::npos);
    // The head the block sink holds back until finish never reached the device.
    CHECK(as_string(cdi::test::sys::read_bytes(loop.path(), 0, 64 << 10)) != q.raw.substr(0, 64 << 10));
    auto ok = cli.Post("/v1beta1/upload", {{"X-Checksum", sha256_of(body)}}, body, "application/octet-stream");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK(r->report.checksum_verified == sha256_of(body));
    CHECK(as_string(cdi::test::sys::read_bytes(loop.path(), 0, q.raw.size())) == q.raw);
  }

  SECTION("tar archive with zeros after its end marker") {
    namespace t = cdi::test::tar;
    const auto file = t::pattern(100 << 10, 3);
    const std::string tar = as_string(t::make_tar({t::dir("d"), t::reg("d/f.bin", file)}));
    const std::string tar_body = tar + std::string(64 << 10, '\0');
    auto o = http_options(d / "tree");
    Running srv(o);
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(std::chrono::seconds(30));
    auto res = cli.Post("/v1beta1/upload-archive", {{"X-Checksum", sha256_of(tar)}}, tar_body, "application/x-tar");
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(res->body.find("checksum mismatch: expected " + sha256_of(tar) + ", calculated " + sha256_of(tar_body)) !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(d / "tree"));
    auto ok = cli.Post("/v1beta1/upload-archive", {{"X-Checksum", sha256_of(tar_body)}}, tar_body, "application/x-tar");
    REQUIRE(ok);
    CHECK(ok->status == 200);
    auto r = srv.result();
    REQUIRE(r);
    CHECK(r->report.checksum_verified == sha256_of(tar_body));
    CHECK(r->report.files_extracted == 1);
    CHECK(slurp(d / "tree" / "d" / "f.bin") == as_string(file));
  }
}
