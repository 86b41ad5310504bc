// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "lib/pod/env.hpp"
#include "lib/pod/handshake.hpp"
#include "lib/pod/klog.hpp"
#include "lib/pod/upload_env.hpp"

using namespace cdi;

namespace {
pod::Environment base_env() {
  return {{"IMPORTER_SOURCE", "http"}, {"IMPORTER_CONTENTTYPE", "kubevirt"}, {"IMPORTER_ENDPOINT", "http://x/disk.img"},
          {"PREALLOCATION", "false"}, {"IMPORTER_IMAGE_SIZE", ""}, {"FILESYSTEM_OVERHEAD", "0.055"}};
}
}  // namespace

TEST_CASE("pod::parse_importer_env maps CDI's variables", "[pod][env]") {
  auto env = base_env();
  env.push_back({"IMPORTER_EXTRA_HEADER_1", "X-B: 2"});
  env.push_back({"IMPORTER_EXTRA_HEADER_0", "X-A: 1"});
  env.push_back({"IMPORTER_IMAGE_SIZE", "ignored: the first occurrence wins"});
  env.push_back({"INSECURE_TLS", "True"});
  env.push_back({"IMPORTER_PULL_METHOD", "node"});
  env.push_back({"CACHE_MODE", "TRYNONE"});
  env.push_back({"OWNER_UID", "abc-123"});
  env.push_back({"IMPORTER_CHECKSUM", " SHA256:" + std::string(64, 'A') + " "});
  auto c = pod::parse_importer_env(env);
  REQUIRE(c);
  CHECK(c->kind == pod::SourceKind::http);
  CHECK(c->endpoint == "http://x/disk.img");
  CHECK_FALSE(c->image_size);
  CHECK(c->filesystem_overhead == Approx(0.055));
  CHECK_FALSE(c->preallocation);
  CHECK(c->insecure_tls);
  CHECK(c->node_pull);
  CHECK(c->cache_none);
  CHECK(c->owner_uid == "abc-123");
  CHECK(c->extra_headers == std::vector<std::string>{"X-B: 2", "X-A: 1"});  // environment order
  REQUIRE(c->checksum);
  CHECK(c->checksum->text() == "sha256:" + std::string(64, 'a'));
}

TEST_CASE("pod::parse_importer_env: PREALLOCATION is mandatory (CDI's text)", "[pod][env]") {
  for (std::string v : {"", "yes", "TRUE ", "2"}) {
    auto env = base_env();
    env[3].second = v;
    auto c = pod::parse_importer_env(env);
    REQUIRE_FALSE(c);
    CHECK(c.error().what() == "the PREALLOCATION environment variable is with a wrong value \"" + v +
                                  "\"; should be \"true\" or \"false\"");
  }
  for (std::string v : {"1", "t", "T", "TRUE", "true", "True"}) {
    auto env = base_env();
    env[3].second = v;
    CHECK(pod::parse_importer_env(env).value().preallocation);
  }
}

TEST_CASE("pod::parse_importer_env: CDI_IMPORT_MEMORY_LIMIT overrides the cgroup's memory limit", "[pod][env]") {
  auto env = base_env();
  CHECK_FALSE(pod::parse_importer_env(env).value().memory_limit);
  env.push_back({"CDI_IMPORT_MEMORY_LIMIT", "64Mi"});
  CHECK(pod::parse_importer_env(env).value().memory_limit == (uint64_t{64} << 20));
  env.back().second = "0";
  CHECK(pod::parse_importer_env(env).value().memory_limit == 0u);
  env.back().second = "lots";
  auto bad = pod::parse_importer_env(env);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::invalid_argument);
  CHECK(bad.error().what().starts_with("Invalid CDI_IMPORT_MEMORY_LIMIT \"lots\": "));
}

TEST_CASE("pod::parse_importer_env: sizes, overhead, checksum errors", "[pod][env]") {
  auto env = base_env();
  env[4].second = "10Gi";
  CHECK(pod::parse_importer_env(env).value().image_size == (uint64_t{10} << 30));
  env[4].second = "1G";
  CHECK(pod::parse_importer_env(env).value().image_size == 1000000000u);
  env[4].second = "12 parsecs";
  auto bad = pod::parse_importer_env(env);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::invalid_argument);
  CHECK(bad.error().what().starts_with("Invalid IMPORTER_IMAGE_SIZE \"12 parsecs\": "));

  CHECK(pod::parse_overhead("0.06") == Approx(0.06));
  CHECK(pod::parse_overhead("") == 0);
  CHECK(pod::parse_overhead("abc") == 0);
  CHECK(pod::parse_overhead("-1") == 0);

  auto env2 = base_env();
  env2.push_back({"IMPORTER_CHECKSUM", "sha256:abc"});
  auto cs = pod::parse_importer_env(env2);
  REQUIRE_FALSE(cs);
  CHECK(cs.error().what() == "invalid checksum: invalid sha256 hash length: expected 64 hex characters, got 3");
}

TEST_CASE("pod::source_kind and Go booleans", "[pod][env]") {
  CHECK(pod::source_kind("http") == pod::SourceKind::http);
  CHECK(pod::source_kind("registry") == pod::SourceKind::registry);
  CHECK(pod::source_kind("none") == pod::SourceKind::none);
  CHECK(pod::source_kind("s3") == pod::SourceKind::s3);
  CHECK(pod::source_kind("gcs") == pod::SourceKind::gcs);
  CHECK(pod::source_kind("vddk") == pod::SourceKind::unsupported);
  CHECK(pod::source_kind("glance") == pod::SourceKind::unknown);
  CHECK(pod::source_kind("") == pod::SourceKind::unknown);
  CHECK(pod::parse_go_bool("F") == false);
  CHECK_FALSE(pod::parse_go_bool("no"));
}

TEST_CASE("pod::PodPaths resolve under CDI_IMPORT_ROOT", "[pod][env]") {
  auto p = pod::paths_from({{"CDI_IMPORT_ROOT", "/tmp/root"}});
  CHECK(p.data_file() == "/tmp/root/data/disk.img");
  CHECK(p.block_device() == "/tmp/root/dev/cdi-block-volume");
  CHECK(p.termination_log() == "/tmp/root/dev/termination-log");
  CHECK(p.resolve("/shared/ready") == "/tmp/root/shared/ready");
  CHECK(pod::paths_from({}).data_dir() == "/data");
}

TEST_CASE("pod::parse_klog_flags accepts the controller's flags", "[pod][klog]") {
  auto f = pod::parse_klog_flags({"-alsologtostderr", "-v=3"});
  REQUIRE(f);
  CHECK(f->verbosity == 3);
  CHECK(f->alsologtostderr);
  f = pod::parse_klog_flags({"--v", "2", "-logtostderr=false", "-skip_headers", "-log_file=/x"});
  REQUIRE(f);
  CHECK(f->verbosity == 2);
  CHECK_FALSE(f->logtostderr);
  CHECK(f->log_file == "/x");
  CHECK_FALSE(pod::parse_klog_flags({"-v=x"}));
  CHECK_FALSE(pod::parse_klog_flags({"positional"}));
  auto line = pod::klog_line('I', "New phase: Convert", std::chrono::system_clock::from_time_t(0), 7);
  CHECK(line == "I0101 00:00:00.000000       7 cdi-import] New phase: Convert");
}

TEST_CASE("pod handshake: ready file, endpoint, done file", "[pod][handshake]") {
  CHECK(pod::node_pull_endpoint("http://localhost:8100/disk.img", "fedora.qcow2") == "http://localhost:8100/fedora.qcow2");
  CHECK(pod::node_pull_endpoint("http://localhost:8100/disk.img", "") == "http://localhost:8100/disk.img");
  auto dir = std::filesystem::temp_directory_path() / ("cdi-pod-hs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto t = pod::wait_ready_file(dir / "ready", "/shared/ready", 2, std::chrono::milliseconds(10), nullptr);
  REQUIRE_FALSE(t);
  CHECK(t.error().what() == "Timeout waiting for file /shared/ready");
  std::ofstream(dir / "ready") << "img.raw\n";
  CHECK(pod::wait_ready_file(dir / "ready", "/shared/ready", 2, std::chrono::milliseconds(10), nullptr).value() ==
        "img.raw");
  REQUIRE(pod::create_done_file(dir / "done"));
  CHECK_FALSE(pod::create_done_file(dir / "done"));  // exclusive
  std::filesystem::remove_all(dir);
}

TEST_CASE("pod::upload_options_from_env maps the upload server's variables", "[pod][upload]") {
  auto root = std::filesystem::temp_directory_path() / ("cdi-pod-up-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "data");
  pod::PodPaths paths{root};
  pod::Environment env{{"LISTEN_PORT", "x"}, {"TLS_CERT_FILE", "/etc/tls/tls.crt"}, {"TLS_KEY_FILE", "/etc/tls/tls.key"},
                       {"CLIENT_CERT_FILE", "/etc/tls/ca.crt"}, {"CLIENT_NAME", "proxy"}, {"PREALLOCATION", "bogus"},
                       {"UPLOAD_IMAGE_SIZE", "64Mi"}, {"FILESYSTEM_OVERHEAD", "0.06"},
                       {"DEADLINE", "2030-01-02T03:04:05Z"}, {"TLS_MIN_VERSION", "VersionTLS13"}};
  auto o = pod::upload_options_from_env(env, paths);
  REQUIRE(o);
  CHECK(o->listen_address == "0.0.0.0");
  CHECK(o->port == 8443);
  CHECK(*o->tls_cert == root / "etc/tls/tls.crt");
  CHECK(*o->client_ca == root / "etc/tls/ca.crt");
  CHECK(o->client_name == "proxy");
  CHECK(o->tls_min_version == "VersionTLS13");
  CHECK_FALSE(o->import.preallocate);  // a bad value silently means false (CDI quirk 10)
  CHECK(o->import.dest == (root / "data/disk.img").string());
  CHECK(o->import.resize_to == (uint64_t{60} << 20));
  REQUIRE(o->deadline);
  CHECK(std::chrono::system_clock::to_time_t(*o->deadline) == 1893553445);
  env.push_back({"LISTEN_ADDRESS", "127.0.0.1"});
  env[0].second = "9443";
  CHECK(pod::upload_options_from_env(env, paths).value().port == 9443);
  CHECK(pod::upload_options_from_env(env, paths).value().listen_address == "127.0.0.1");
  auto no_tls = pod::upload_options_from_env({{"LISTEN_PORT", "1"}}, paths);
  REQUIRE_FALSE(no_tls);
  CHECK(no_tls.error().what() == "Error getting TLS config: invalid TLS config");
  CHECK_FALSE(pod::parse_rfc3339("tomorrow"));
  CHECK(std::chrono::system_clock::to_time_t(pod::parse_rfc3339("2030-01-02T05:04:05+02:00").value()) == 1893553445);
  std::filesystem::remove_all(root);
}
