// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/env.hpp"

#include <charconv>
#include <cstring>

#include "lib/util/units.hpp"

namespace cdi::pod {

Environment environment_from(char** envp) {
  Environment env;
  for (char** p = envp; p && *p; ++p) {
    std::string_view kv(*p);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    env.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

std::string env_get(const Environment& env, std::string_view name) {
  for (const auto& [k, v] : env)
    if (k == name) return v;
  return {};
}

std::filesystem::path PodPaths::resolve(std::string_view pod_path) const {
  while (!pod_path.empty() && pod_path.front() == '/') pod_path.remove_prefix(1);
  return root / std::filesystem::path(pod_path);
}

PodPaths paths_from(const Environment& env) {
  PodPaths p;
  auto r = env_get(env, "CDI_IMPORT_ROOT");
  if (!r.empty()) p.root = r;
  return p;
}

std::optional<bool> parse_go_bool(std::string_view t) {
  for (std::string_view s : {"1", "t", "T", "TRUE", "true", "True"})
    if (t == s) return true;
  for (std::string_view s : {"0", "f", "F", "FALSE", "false", "False"})
    if (t == s) return false;
  return std::nullopt;
}

double parse_overhead(std::string_view text) {
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return 0;
  if (!(v >= 0 && v < 1)) return 0;
  return v;
}

SourceKind source_kind(std::string_view s) {
  if (s == "http") return SourceKind::http;
  if (s == "registry") return SourceKind::registry;
  if (s == "none") return SourceKind::none;
  if (s == "s3") return SourceKind::s3;
  if (s == "gcs") return SourceKind::gcs;
  if (s == "imageio" || s == "vddk") return SourceKind::unsupported;
  return SourceKind::unknown;
}

std::string preallocation_error_text(std::string_view value) {
  return "the PREALLOCATION environment variable is with a wrong value \"" + std::string(value) +
         "\"; should be \"true\" or \"false\"";
}

Result<ImporterConfig> parse_importer_env(const Environment& env) {
  ImporterConfig c;
  auto prealloc = env_get(env, "PREALLOCATION");
  auto pb = parse_go_bool(prealloc);
  if (!pb) return fail(Errc::invalid_argument, Reason::bad_preallocation, preallocation_error_text(prealloc));
  c.preallocation = *pb;
  c.source = env_get(env, "IMPORTER_SOURCE");
  c.kind = source_kind(c.source);
  c.content_type = env_get(env, "IMPORTER_CONTENTTYPE");
  c.endpoint = env_get(env, "IMPORTER_ENDPOINT");
  c.access_key = env_get(env, "IMPORTER_ACCESS_KEY_ID");
  c.secret_key = env_get(env, "IMPORTER_SECRET_KEY");
  if (auto size = env_get(env, "IMPORTER_IMAGE_SIZE"); !size.empty()) {
    auto q = util::parse_quantity(size);
    if (!q) return fail(Errc::invalid_argument, "Invalid IMPORTER_IMAGE_SIZE \"" + size + "\": " + q.error().what());
    c.image_size = *q;
  }
  if (auto limit = env_get(env, "CDI_IMPORT_MEMORY_LIMIT"); !limit.empty()) {
    auto q = util::parse_quantity(limit);
    if (!q) return fail(Errc::invalid_argument, "Invalid CDI_IMPORT_MEMORY_LIMIT \"" + limit + "\": " + q.error().what());
    c.memory_limit = *q;
  }
  c.filesystem_overhead = parse_overhead(env_get(env, "FILESYSTEM_OVERHEAD"));
  c.cache_none = env_get(env, "CACHE_MODE") == "TRYNONE";
  c.insecure_tls = parse_go_bool(env_get(env, "INSECURE_TLS")).value_or(false);
  c.cert_dir = env_get(env, "IMPORTER_CERT_DIR");
  c.node_pull = env_get(env, "IMPORTER_PULL_METHOD") == "node";
  c.ready_file = env_get(env, "IMPORTER_READY_FILE");
  c.done_file = env_get(env, "IMPORTER_DONE_FILE");
  if (auto sum = env_get(env, "IMPORTER_CHECKSUM"); !sum.empty()) {
    auto cs = util::parse_checksum(sum);
    if (!cs) return std::unexpected(std::move(cs).error().context("invalid checksum").with_reason(Reason::bad_checksum));
    c.checksum = *cs;
  }
  c.architecture = env_get(env, "IMPORTER_REGISTRY_IMAGE_ARCHITECTURE");
  constexpr std::string_view k_header_prefix = "IMPORTER_EXTRA_HEADER_";
  for (const auto& [k, v] : env)
    if (k.starts_with(k_header_prefix) && !v.empty()) c.extra_headers.push_back(v);
  c.owner_uid = env_get(env, "OWNER_UID");
  c.google_credentials = env_get(env, "GOOGLE_APPLICATION_CREDENTIALS");
  return c;
}

}  // namespace cdi::pod
