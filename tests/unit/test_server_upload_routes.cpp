// SPDX-License-Identifier: Apache-2.0
#include <openssl/ssl.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <set>
#include <thread>
#include <vector>

#include "lib/pipeline/qemu_img.hpp"
#include "lib/server/upload_routes.hpp"

using namespace cdi;
using namespace cdi::server;

TEST_CASE("route_for knows CDI's five upload routes in both API versions", "[server][routes]") {
  for (std::string v : {"/v1beta1/", "/v1alpha1/"}) {
    CHECK(route_for(v + "upload")->kind == UploadKind::sync);
    CHECK(route_for(v + "upload-async")->kind == UploadKind::async);
    CHECK(route_for(v + "upload-archive")->kind == UploadKind::archive);
    CHECK(route_for(v + "upload-form")->kind == UploadKind::form);
    CHECK(route_for(v + "upload-form-async")->kind == UploadKind::form_async);
  }
  CHECK(route_for("/v1beta1/upload-async")->async());
  CHECK(route_for("/v1beta1/upload-form-async")->async());
  CHECK(route_for("/v1beta1/upload-form-async")->form());
  CHECK_FALSE(route_for("/v1beta1/upload")->async());
  CHECK_FALSE(route_for("/v1beta1/upload")->form());
  CHECK(route_for("/v1alpha1/upload-archive")->archive());
}

TEST_CASE("route_for matches exact paths only", "[server][routes]") {
  for (const char* p : {"/healthz", "/", "", "/v1beta1/", "/v1beta1/upload/", "/v1beta1/uploadx", "/v1/upload",
                        "/v1beta2/upload", "v1beta1/upload", "/v1beta1/upload?x=1", "/V1BETA1/upload",
                        "/v1beta1//upload", "/v1beta1/upload-form-async2"})
    CHECK_FALSE(route_for(p).has_value());
}

TEST_CASE("upload_paths lists ten distinct routable paths", "[server][routes]") {
  auto paths = upload_paths();
  CHECK(paths.size() == 10);
  CHECK(std::set<std::string>(paths.begin(), paths.end()).size() == 10);
  for (const auto& p : paths) CHECK(route_for(p).has_value());
}

TEST_CASE("UploadGate admits one upload at a time: 503 while busy, idle again after a failure", "[server][gate]") {
  UploadGate g;
  CHECK(g.state() == UploadGate::State::idle);
  CHECK(g.try_admit() == UploadGate::Admission::admitted);
  CHECK(g.state() == UploadGate::State::busy);
  CHECK(g.try_admit() == UploadGate::Admission::busy);
  CHECK(admission_status(UploadGate::Admission::busy) == 503);
  g.release(false);
  CHECK(g.state() == UploadGate::State::idle);
  CHECK(g.try_admit() == UploadGate::Admission::admitted);
}

TEST_CASE("UploadGate answers 409 for ever once an upload succeeded", "[server][gate]") {
  UploadGate g;
  REQUIRE(g.try_admit() == UploadGate::Admission::admitted);
  g.release(true);
  CHECK(g.state() == UploadGate::State::done);
  for (int i = 0; i < 3; ++i) CHECK(g.try_admit() == UploadGate::Admission::done);
  CHECK(admission_status(UploadGate::Admission::done) == 409);
}

TEST_CASE("UploadGate admits exactly one of many racing requests", "[server][gate]") {
  UploadGate g;
  std::atomic<int> admitted{0}, busy{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&] {
      for (int k = 0; k < 100; ++k) {
        if (g.try_admit() == UploadGate::Admission::admitted)
          ++admitted;
        else
          ++busy;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(admitted == 1);
  CHECK(busy == 799);
}

TEST_CASE("reply_for_error maps errors to CDI's statuses and texts", "[server][reply]") {
  SECTION("a size limit is 400 with CDI's 'larger than the reported available storage' wording") {
    auto r = reply_for_error(Error(Errc::limit, "image is larger than --image-size (2 > 1 bytes)"), false);
    CHECK(r.status == 400);
    CHECK(r.body ==
          "Saving stream failed: effective image size is larger than the reported available storage: image is larger "
          "than --image-size (2 > 1 bytes)");
  }
  SECTION("ENOSPC and EDQUOT are size problems too") {
    CHECK(reply_for_error(sys_error("writing /data/disk.img", ENOSPC), false).status == 400);
    CHECK(reply_for_error(sys_error("writing /data/disk.img", EDQUOT), false).status == 400);
    CHECK(reply_for_error(sys_error("writing", ENOSPC), false).body.find("reported available storage") !=
          std::string::npos);
    // qemu-img's errors carry it only as text: lib/pipeline/qemu_img reads it into Reason::no_space
    auto qemu = [](std::string msg) { return Error(Errc::io, pipeline::qemu_message_reason(msg), msg); };
    CHECK(reply_for_error(qemu("qemu-img convert failed: error while writing at byte 17498112: No space "
                               "left on device"), false).status == 400);
    CHECK(reply_for_error(qemu("write: Disk quota exceeded"), false).status == 400);
  }
  SECTION("client faults are 400 without the size wording") {
    auto r = reply_for_error(Error(Errc::corrupt_input, "checksum mismatch: expected sha256:aa, calculated sha256:bb"), true);
    CHECK(r.status == 400);
    CHECK(r.body == "Saving stream failed: checksum mismatch: expected sha256:aa, calculated sha256:bb");
  }
  SECTION("anything else is 500") {
    auto e = Error(Errc::corrupt_input, "unexpected end of stream");
    e.context("gzip").context("upload");
    auto r = reply_for_error(e, false);
    CHECK(r.status == 500);
    CHECK(r.body == "Saving stream failed: upload: gzip: unexpected end of stream");
    CHECK(reply_for_error(Error(Errc::unsupported, "vmdk"), false).status == 500);
    CHECK(reply_for_error(sys_error("writing", EIO), false).status == 500);
  }
}

TEST_CASE("parse_tls_min_version takes numbers and Go names, default TLS 1.2", "[server][tls]") {
  CHECK(*parse_tls_min_version("") == TLS1_2_VERSION);
  CHECK(*parse_tls_min_version("1.2") == TLS1_2_VERSION);
  CHECK(*parse_tls_min_version("VersionTLS12") == TLS1_2_VERSION);
  CHECK(*parse_tls_min_version("1.3") == TLS1_3_VERSION);
  CHECK(*parse_tls_min_version("VersionTLS13") == TLS1_3_VERSION);
  CHECK(*parse_tls_min_version("VersionTLS10") == TLS1_VERSION);
  auto bad = parse_tls_min_version("TLS9");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::invalid_argument);
  CHECK(bad.error().what().find("'TLS9'") != std::string::npos);
}

TEST_CASE("openssl_cipher_list turns Go's comma list into OpenSSL's colon list", "[server][tls]") {
  CHECK(openssl_cipher_list("") == "");
  CHECK(openssl_cipher_list("ECDHE-RSA-AES128-GCM-SHA256") == "ECDHE-RSA-AES128-GCM-SHA256");
  CHECK(openssl_cipher_list("ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384,") ==
        "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384");
}

TEST_CASE("clone_kind reads CDI's x-cdi-content-type values exactly", "[server][routes][clone]") {
  CHECK(clone_kind("blockdevice-clone") == CloneKind::blockdevice);
  CHECK(clone_kind("filesystem-clone") == CloneKind::filesystem);
  for (const char* v : {"", "kubevirt", "archive", "Blockdevice-Clone", "blockdevice-clone ", "filesystem",
                        "filesystemclone", "clone"})
    CHECK(clone_kind(v) == CloneKind::none);
  CHECK(clone_kind_name(CloneKind::blockdevice) == "blockdevice-clone");
  CHECK(clone_kind_name(CloneKind::filesystem) == "filesystem-clone");
  CHECK(clone_kind_name(CloneKind::none).empty());
}

TEST_CASE("clone_refusal: sync routes take clones, async routes refuse them as CDI", "[server][routes][clone]") {
  for (std::string v : {"/v1beta1/", "/v1alpha1/"}) {
    for (auto k : {CloneKind::blockdevice, CloneKind::filesystem}) {
      for (const char* sync : {"upload", "upload-archive", "upload-form"})
        CHECK_FALSE(clone_refusal(*route_for(v + sync), k).has_value());
      for (const char* async : {"upload-async", "upload-form-async"}) {
        auto r = clone_refusal(*route_for(v + async), k);
        REQUIRE(r.has_value());
        CHECK(r->status == 500);
        CHECK(r->body == "Saving stream failed: async clone not supported");
      }
    }
    // not a clone: every route as before
    for (const auto& p : upload_paths()) CHECK_FALSE(clone_refusal(*route_for(p), CloneKind::none).has_value());
  }
}
