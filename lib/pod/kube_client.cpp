// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/kube_client.hpp"

#include <algorithm>
#include <curl/curl.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lib/pod/image_server.hpp"   // go_json_string
#include "lib/source/http_util.hpp"
#include "lib/util/memory_budget.hpp"

namespace cdi::pod {

namespace fs = std::filesystem;

Result<KubeConfig> kube_config(const Environment& env, const PodPaths& paths, std::string_view server,
                               std::string_view kubeconfig) {
  if (!kubeconfig.empty())
    return fail(Errc::unsupported, "kubeconfig files are not supported by this image (" + std::string(kubeconfig) +
                                       "): use the in-cluster service account, or -server with it");
  KubeConfig c;
  fs::path sa = paths.resolve(k_service_account_dir);
  if (server.empty()) {
    std::string host = env_get(env, "KUBERNETES_SERVICE_HOST"), port = env_get(env, "KUBERNETES_SERVICE_PORT");
    if (host.empty() || port.empty())
      return fail(Errc::invalid_argument, "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                                          "KUBERNETES_SERVICE_PORT must be defined");
    c.server = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
  } else {
    c.server = server;
    while (c.server.ends_with('/')) c.server.pop_back();
    if (!c.server.starts_with("https://") && !c.server.starts_with("http://")) c.server = "https://" + c.server;
  }
  fs::path token = sa / "token";
  std::ifstream in(token, std::ios::binary);
  if (in) {
    std::stringstream ss;
    ss << in.rdbuf();
    c.token = ss.str();
    while (!c.token.empty() && (c.token.back() == '\n' || c.token.back() == '\r' || c.token.back() == ' '))
      c.token.pop_back();
  } else if (server.empty()) {
    return fail_sys("open " + token.string());
  }
  std::error_code ec;
  if (fs::is_regular_file(sa / "ca.crt", ec)) c.ca_file = sa / "ca.crt";
  return c;
}

Result<KubeResponse> kube_request(const KubeConfig& cfg, std::string_view method, std::string_view path,
                                  std::string_view content_type, std::string_view body) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  source::http::SmallRequest req;
  req.url = cfg.server + std::string(path);
  req.method = std::string(method);
  req.headers.push_back("Accept: application/json, */*");
  if (!cfg.token.empty()) req.headers.push_back("Authorization: Bearer " + cfg.token);
  if (!content_type.empty()) {
    req.headers.push_back("Content-Type: " + std::string(content_type));
    req.body = std::string(body);
  }
  req.headers.push_back("Expect:");
  // A list or object reply is collected in memory: a quarter of what the pod's memory budget
  // leaves usable, 1 MiB to 16 MiB (a 64 MiB pod: 11 MiB).
  static const uint64_t cap = std::clamp<uint64_t>(util::MemoryBudget::detect(std::nullopt).usable() / 4, 1u << 20, 16u << 20);
  req.max_body = static_cast<size_t>(cap);
  req.user_agent = "cdi-source-update-poller/" CDI_VERSION;
  req.use_proxy_env = false;   // never a proxy, whatever HTTPS_PROXY says
  if (cfg.ca_file) req.ca_file = cfg.ca_file->string();
  req.connect_timeout = std::chrono::seconds(30);
  req.total_timeout = std::chrono::seconds(120);
  auto r = source::http::small_request(req);
  if (!r) return fail(Errc::network, req.method + " " + req.url + ": " + r.error().message());
  return KubeResponse{r->status, std::move(r->body)};
}

Error kube_status_error(const KubeResponse& r) {
  Errc code = r.status == 404 ? Errc::not_found : (r.status == 401 || r.status == 403) ? Errc::auth : Errc::network;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (j.is_object() && j.value("kind", "") == "Status" && j.contains("message") && j["message"].is_string())
    return Error(code, j["message"].get<std::string>());
  return Error(code, "the server responded with the status code " + std::to_string(r.status) +
                         " but did not return more information");
}

std::string escape_json_pointer(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

std::string rfc3339(std::time_t t) {
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out = buf;
  long off = tm.tm_gmtoff;
  if (off == 0) return out + "Z";
  char z[48];
  std::snprintf(z, sizeof z, "%c%02d:%02d", off < 0 ? '-' : '+', static_cast<int>(std::labs(off) / 3600 % 100), static_cast<int>(std::labs(off) % 3600 / 60));
  return out + z;
}

std::string cron_patch(std::string_view now, std::string_view digest, std::string_view current_desired,
                       bool* digest_updated) {
  auto op = [](std::string_view key, std::string_view value) {
    std::string path = "/metadata/annotations/" + escape_json_pointer(key);
    return std::string("{\"op\":\"add\",\"path\":") + go_json_string(path) + ",\"value\":" + go_json_string(value) + "}";
  };
  std::string out = "[" + op(k_ann_last_cron_time, now);
  bool update = !digest.empty() && digest != current_desired;
  if (update) out += "," + op(k_ann_source_desired_digest, digest);
  if (digest_updated) *digest_updated = update;
  return out + "]";
}

Result<std::string> annotation_of(std::string_view object_json, std::string_view key) {
  auto j = nlohmann::json::parse(object_json, nullptr, false);
  if (!j.is_object()) return fail(Errc::corrupt_input, "the API server's reply is not a JSON object");
  auto md = j.find("metadata");
  if (md == j.end() || !md->is_object()) return std::string();
  auto ann = md->find("annotations");
  if (ann == md->end() || !ann->is_object()) return std::string();
  auto v = ann->find(std::string(key));
  if (v == ann->end() || !v->is_string()) return std::string();
  return v->get<std::string>();
}

}  // namespace cdi::pod
