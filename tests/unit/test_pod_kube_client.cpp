// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "lib/pod/kube_client.hpp"
#include "lib/pod/node_pull_info.hpp"

using namespace cdi;

TEST_CASE("cron patch: lastCronTime always, the digest when it changed", "[pod][poller]") {
  bool updated = true;
  auto p = pod::cron_patch("2026-12-01T21:00:00Z", "sha256:aa", "sha256:aa", &updated);
  CHECK_FALSE(updated);
  CHECK(p == R"([{"op":"add","path":"/metadata/annotations/cdi.kubevirt.io~1storage.import.lastCronTime","value":"2026-12-01T21:00:00Z"}])");
  p = pod::cron_patch("2026-12-01T21:00:00Z", "sha256:bb", "sha256:aa", &updated);
  CHECK(updated);
  CHECK(p == R"([{"op":"add","path":"/metadata/annotations/cdi.kubevirt.io~1storage.import.lastCronTime","value":"2026-12-01T21:00:00Z"},)"
             R"({"op":"add","path":"/metadata/annotations/cdi.kubevirt.io~1storage.import.sourceDesiredDigest","value":"sha256:bb"}])");
  pod::cron_patch("t", "", "sha256:aa", &updated);   // no digest: no digest patch
  CHECK_FALSE(updated);
  CHECK(pod::escape_json_pointer("a~b/c") == "a~0b~1c");
}

TEST_CASE("RFC 3339 in UTC", "[pod][poller]") {
  const char* old = std::getenv("TZ");
  std::string saved = old ? old : "";
  setenv("TZ", "UTC", 1);
  tzset();
  CHECK(pod::rfc3339(784111777) == "1994-11-06T08:49:37Z");
  setenv("TZ", "EST5", 1);
  tzset();
  CHECK(pod::rfc3339(784111777) == "1994-11-06T03:49:37-05:00");
  if (old) setenv("TZ", saved.c_str(), 1);
  else unsetenv("TZ");
  tzset();
}

TEST_CASE("annotation_of reads a DataImportCron's annotation", "[pod][poller]") {
  auto k = std::string(pod::k_ann_source_desired_digest);
  CHECK(pod::annotation_of(R"({"metadata":{"annotations":{")" + k + R"(":"sha256:1"}}})", k).value() == "sha256:1");
  CHECK(pod::annotation_of(R"({"metadata":{"name":"x"}})", k).value().empty());
  CHECK_FALSE(pod::annotation_of("not json", k));
}

TEST_CASE("kube_config: in-cluster, -server, kubeconfig refused", "[pod][poller]") {
  namespace fs = std::filesystem;
  auto root = fs::temp_directory_path() / ("kube-config-test-" + std::to_string(::getpid()));
  fs::create_directories(root / "var/run/secrets/kubernetes.io/serviceaccount");
  pod::PodPaths paths;
  paths.root = root;
  pod::Environment env = {{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto c = pod::kube_config(env, paths, "", "");
  REQUIRE_FALSE(c);   // no token in-cluster
  CHECK(c.error().what().find("serviceaccount/token") != std::string::npos);
  std::ofstream(root / "var/run/secrets/kubernetes.io/serviceaccount/token") << "tok\n";
  std::ofstream(root / "var/run/secrets/kubernetes.io/serviceaccount/ca.crt") << "x";
  c = pod::kube_config(env, paths, "", "");
  REQUIRE(c);
  CHECK(c->server == "https://10.0.0.1:443");
  CHECK(c->token == "tok");
  CHECK(c->ca_file == root / "var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
  env = {{"KUBERNETES_SERVICE_HOST", "fd00::1"}, {"KUBERNETES_SERVICE_PORT", "6443"}};
  CHECK(pod::kube_config(env, paths, "", "")->server == "https://[fd00::1]:6443");
  CHECK(pod::kube_config({}, paths, "https://127.0.0.1:8443/", "")->server == "https://127.0.0.1:8443");
  auto none = pod::kube_config({}, paths, "", "");
  REQUIRE_FALSE(none);
  CHECK(none.error().message() == "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                                  "KUBERNETES_SERVICE_PORT must be defined");
  auto kc = pod::kube_config(env, paths, "", "/root/.kube/config");
  REQUIRE_FALSE(kc);
  CHECK(kc.error().code() == Errc::unsupported);
  fs::remove_all(root);
}

TEST_CASE("node pull: env -> labels exactly as CDI's envsToLabels", "[pod][nodepull]") {
  auto l = pod::env_labels({"PATH=/bin", "INSTANCETYPE_KUBEVIRT_IO_DEFAULT_INSTANCETYPE=u1.small",
                            "PREFERENCE_KUBEVIRT_IO_DEFAULT_PREFERENCE=fedora", "KUBEVIRT_IO_OS=linux",
                            "_X_KUBEVIRT_IO_A=dropped-prefix", "A__KUBEVIRT_IO_B=double", "FOOKUBEVIRT_IO_C=glued",
                            "NOEQUALS_KUBEVIRT_IO_X", "KUBEVIRT_IO_OS=last-wins"});
  std::vector<std::pair<std::string, std::string>> want = {
      {"a..kubevirt.io/b", "double"},
      {"foo.kubevirt.io/c", "glued"},
      {"instancetype.kubevirt.io/default-instancetype", "u1.small"},
      {"kubevirt.io/a", "dropped-prefix"},
      {"kubevirt.io/os", "last-wins"},
      {"preference.kubevirt.io/default-preference", "fedora"}};
  CHECK(l == want);
  CHECK(pod::server_info_url("http://localhost:8100/disk.img").value() == "http://localhost:8100/info");
  CHECK(pod::server_info_url("http://127.0.0.1:1234").value() == "http://127.0.0.1:1234/info");
  CHECK_FALSE(pod::server_info_url("docker://x/y"));
  CHECK(pod::parse_server_info(R"({"env":["A=1","B=2"]})").value() == std::vector<std::string>{"A=1", "B=2"});
  CHECK(pod::parse_server_info("{}\n").value().empty());
  CHECK_FALSE(pod::parse_server_info("[1]"));
  CHECK_FALSE(pod::parse_server_info(R"({"env":[1]})"));
}
