// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/node_pull_info.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "lib/source/registry_image.hpp"

namespace cdi::pod {

Result<std::string> server_info_url(std::string_view endpoint) {
  auto sep = endpoint.find("://");
  if (sep == std::string_view::npos) return fail(Errc::invalid_argument, "not a URL: " + std::string(endpoint));
  std::string_view scheme = endpoint.substr(0, sep);
  if (scheme != "http" && scheme != "https")
    return fail(Errc::invalid_argument, "not an http(s) URL: " + std::string(endpoint));
  std::string_view rest = endpoint.substr(sep + 3);
  std::string_view host = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
  return std::string(scheme) + "://" + std::string(host) + "/info";
}

Result<std::vector<std::string>> parse_server_info(std::string_view body) {
  const std::string prefix = "failed to unmarshal body of containerimage-server info request: ";
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::corrupt_input, prefix + "not a JSON object");
  std::vector<std::string> env;
  auto e = j.find("env");
  if (e == j.end() || e->is_null()) return env;
  if (!e->is_array()) return fail(Errc::corrupt_input, prefix + "\"env\" is not an array");
  for (const auto& v : *e) {
    if (!v.is_string()) return fail(Errc::corrupt_input, prefix + "\"env\" holds a non-string");
    env.push_back(v.get<std::string>());
  }
  return env;
}

namespace {
struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
}  // namespace

Result<std::vector<std::string>> fetch_server_info(const std::string& url) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::unique_ptr<CURL, CurlDeleter> c(curl_easy_init());
  if (!c) return fail(Errc::internal, "curl_easy_init failed");
  CURL* h = c.get();
  std::string body;
  char errbuf[CURL_ERROR_SIZE] = {};
  auto write_cb = +[](char* p, size_t s, size_t n, void* u) -> size_t {
    auto* out = static_cast<std::string*>(u);
    if (out->size() + s * n > (1u << 20)) return 0;
    out->append(p, s * n);
    return s * n;
  };
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_PROXY, "");
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "cdi-import/" CDI_VERSION);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK)
    return fail(Errc::network, std::string("failed request containerimage-server info: Get \"") + url +
                                   "\": " + (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200)
    return fail(Errc::network, "failed request containerimage-server info: expected status code 200, got " +
                                   std::to_string(status));
  return parse_server_info(body);
}

std::vector<std::pair<std::string, std::string>> env_labels(const std::vector<std::string>& env) {
  auto labels = source::registry::kubevirt_labels(env);
  std::sort(labels.begin(), labels.end());
  return labels;
}

}  // namespace cdi::pod
