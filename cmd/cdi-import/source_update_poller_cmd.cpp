// SPDX-License-Identifier: Apache-2.0
// cdi-source-update-poller (CDI tools/cdi-source-update-poller): run by a DataImportCron's CronJob
// as `/usr/bin/cdi-source-update-poller -ns NS -cron NAME -url docker://… [-certdir /certs]`.
// Reads the image's digest from the registry and patches the DataImportCron's annotations
// (lastCronTime always; sourceDesiredDigest when it changed) through the Kubernetes API.
// Exit 0 on success, 1 (Go's log.Fatal) on any failure, 2 on a flag syntax error.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "cmd/cdi-import/tools_cmd.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/kube_client.hpp"
#include "lib/source/registry_digest.hpp"
#include "lib/util/file_io.hpp"

extern char** environ;

namespace cdi::cmd {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fatal(const std::string& msg) {
  go_log(msg);
  std::exit(1);
}

bool has_entries(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) != fs::directory_iterator();
}

}  // namespace

int run_source_update_poller(int argc, char** argv) {
  const char* kc_env = std::getenv("KUBECONFIG");
  std::string kubeconfig = kc_env ? kc_env : "", server, ns, cron, url, cert_dir;
  std::vector<pod::GoFlag> flags = {
      {"kubeconfig", pod::GoFlag::Kind::string, "(Optional) Overrides $KUBECONFIG.", &kubeconfig, nullptr, nullptr},
      {"server", pod::GoFlag::Kind::string, "(Optional) URL address of a remote api server.  Do not set for local clusters.",
       &server, nullptr, nullptr},
      {"ns", pod::GoFlag::Kind::string, "DataImportCron namespace.", &ns, nullptr, nullptr},
      {"cron", pod::GoFlag::Kind::string, "DataImportCron name.", &cron, nullptr, nullptr},
      {"url", pod::GoFlag::Kind::string, "registry source url.", &url, nullptr, nullptr},
      {"certdir", pod::GoFlag::Kind::string, "registry certificates path.", &cert_dir, nullptr, nullptr},
  };
  if (int rc = go_flags_or_exit(argc, argv, flags); rc >= 0) return rc;
  if (url.empty() || ns.empty() || cron.empty()) fatal("One or more mandatory parameters are missing");
  auto env = pod::environment_from(environ);
  auto paths = pod::paths_from(env);
  std::string access_key = pod::env_get(env, "IMPORTER_ACCESS_KEY_ID");
  std::string secret_key = pod::env_get(env, "IMPORTER_SECRET_KEY");
  bool insecure = pod::parse_go_bool(pod::env_get(env, "INSECURE_TLS")).value_or(false);

  // A private directory removed at exit (password file, merged certificates).
  auto tmp = util::TempDir::create("cdi-poller-").value_or(util::TempDir());
  source::registry::ClientOptions opts;
  opts.http.insecure_tls = insecure;
  // CDI's CreateCertificateDir: the proxy CAs (/proxycerts) and -certdir together.
  fs::path proxy = paths.proxy_certs();
  fs::path certs = cert_dir.empty() ? fs::path() : paths.resolve(cert_dir);
  if (has_entries(proxy) && !certs.empty()) {
    fs::path merged = tmp.path() / "all_certs";
    std::error_code ec;
    fs::create_directories(merged, ec);
    for (auto [dir, prefix] : {std::pair{proxy, "proxy-"}, std::pair{certs, ""}})
      for (auto& e : fs::directory_iterator(dir, ec))
        if (!e.path().filename().string().starts_with(".") && e.is_regular_file(ec))
          fs::create_symlink(e.path(), merged / (prefix + e.path().filename().string()), ec);
    opts.http.cert_dir = merged;
  } else if (has_entries(proxy)) {
    opts.http.cert_dir = proxy;
  } else if (!certs.empty()) {
    opts.http.cert_dir = certs;
  }
  if (!access_key.empty() && !secret_key.empty()) {
    opts.http.username = access_key;
    fs::path pw = tmp.path() / "password";
    std::ofstream out(pw, std::ios::binary | std::ios::trunc);
    out << secret_key;
    out.close();
    if (!out) fatal("Failed to get image digest: cannot write a private password file in " + tmp.path().string());
    fs::permissions(pw, fs::perms::owner_read | fs::perms::owner_write);
    opts.http.password_file = pw;
  }
  source::HttpContext ctx;
  auto digest = source::registry::image_digest(url, opts, ctx);
  if (!digest) fatal("Failed to get image digest: " + digest.error().what());
  go_log("Digest is " + *digest);

  auto cfg = pod::kube_config(env, paths, server, kubeconfig);
  if (!cfg) fatal("Failed to build config; kubeURL " + server + " configPath " + kubeconfig + ": " + cfg.error().what());
  std::string path = "/apis/cdi.kubevirt.io/v1beta1/namespaces/" + ns + "/dataimportcrons/" + cron;
  std::string who = ns + "/" + cron;
  auto got = pod::kube_request(*cfg, "GET", path, "", "");
  if (got && (got->status < 200 || got->status > 299)) got = std::unexpected(pod::kube_status_error(*got));
  if (!got) fatal("Failed getting DataImportCron " + who + ": " + got.error().what());
  auto current = pod::annotation_of(got->body, pod::k_ann_source_desired_digest);
  if (!current) fatal("Failed getting DataImportCron " + who + ": " + current.error().what());

  bool updated = false;
  std::string patch = pod::cron_patch(pod::rfc3339(std::time(nullptr)), *digest, *current, &updated);
  go_log(updated ? "Digest updated" : "No digest update");
  auto put = pod::kube_request(*cfg, "PATCH", path, "application/json-patch+json", patch);
  if (put && (put->status < 200 || put->status > 299)) put = std::unexpected(pod::kube_status_error(*put));
  if (!put) fatal("Failed patching DataImportCron " + who + ": " + put.error().what());
  return 0;
}

}  // namespace cdi::cmd
