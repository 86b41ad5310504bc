// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/node_pull_info.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "lib/source/http_util.hpp"
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

Result<std::vector<std::string>> fetch_server_info(const std::string& url) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  source::http::SmallRequest req;
  req.url = url;
  req.max_body = 1u << 20;
  req.use_proxy_env = false;
  req.connect_timeout = std::chrono::seconds(30);
  req.total_timeout = std::chrono::seconds(60);
  auto r = source::http::small_request(req);
  if (!r)
    return fail(Errc::network, std::string("failed request containerimage-server info: Get \"") + url +
                                   "\": " + r.error().message());
  if (r->status != 200)
    return fail(Errc::network, "failed request containerimage-server info: expected status code 200, got " +
                                   std::to_string(r->status));
  return parse_server_info(r->body);
}

std::vector<std::pair<std::string, std::string>> env_labels(const std::vector<std::string>& env) {
  auto labels = source::registry::kubevirt_labels(env);
  std::sort(labels.begin(), labels.end());
  return labels;
}

}  // namespace cdi::pod
