// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_image.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "lib/source/registry_reference.hpp"

namespace cdi::source::registry {
namespace {

using nlohmann::json;

constexpr std::string_view k_oci_index = "application/vnd.oci.image.index.v1+json";
constexpr std::string_view k_oci_manifest = "application/vnd.oci.image.manifest.v1+json";
constexpr std::string_view k_docker_list = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr std::string_view k_docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";

std::string lower(std::string s) {
  std::ranges::transform(s, s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string str_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Result<Descriptor> parse_descriptor(const json& j, std::string_view what) {
  if (!j.is_object()) return fail(Errc::corrupt_input, std::string(what) + " is not an object");
  Descriptor d;
  d.media_type = str_field(j, "mediaType");
  d.digest = str_field(j, "digest");
  auto sz = j.find("size");
  if (sz == j.end() || !sz->is_number_unsigned())
    return fail(Errc::corrupt_input, std::string(what) + " has no valid size");
  d.size = sz->get<uint64_t>();
  auto hex = sha256_hex_of(d.digest);
  if (!hex) return fail(Errc::corrupt_input, std::string(what) + ": " + hex.error().message());
  if (auto p = j.find("platform"); p != j.end() && p->is_object()) {
    Platform pl;
    pl.os = str_field(*p, "os");
    pl.architecture = str_field(*p, "architecture");
    pl.variant = str_field(*p, "variant");
    d.platform = pl;
  }
  return d;
}

bool is_layer_type(std::string_view t) {
  // Empty (docker manifests always set it, some OCI writers do not) or a tar, possibly compressed.
  return t.empty() || t.starts_with("application/vnd.oci.image.layer.") ||
         t.starts_with("application/vnd.docker.image.rootfs.");
}

std::string platform_text(const Platform& p) {
  return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant);
}

}  // namespace

Result<Manifest> parse_manifest(std::string_view text, std::string_view content_type) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::corrupt_input, "manifest is not a JSON object");
  try {
    Manifest m;
    m.media_type = str_field(j, "mediaType");
    if (m.media_type.empty()) {
      auto ct = content_type.substr(0, content_type.find(';'));
      while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
      m.media_type = std::string(ct);
    }
    if (auto v = j.find("schemaVersion"); v != j.end() && v->is_number() && v->get<int>() == 1)
      return fail(Errc::unsupported, "Docker schema 1 manifests are not supported");
    bool has_manifests = j.contains("manifests");
    bool has_layers = j.contains("layers");
    if (m.media_type == k_oci_index || m.media_type == k_docker_list || (m.media_type.empty() && has_manifests)) {
      m.is_index = true;
      const auto& arr = j.at("manifests");
      if (!arr.is_array()) return fail(Errc::corrupt_input, "index: manifests is not an array");
      for (size_t i = 0; i < arr.size(); ++i)
        m.manifests.push_back(CDI_TRY(parse_descriptor(arr[i], "index entry " + std::to_string(i))));
      return m;
    }
    if (m.media_type == k_oci_manifest || m.media_type == k_docker_manifest ||
        ((m.media_type.empty() || m.media_type == "application/json") && has_layers)) {
      if (!j.contains("config")) return fail(Errc::corrupt_input, "manifest has no config");
      m.config = CDI_TRY(parse_descriptor(j.at("config"), "config"));
      const auto& arr = j.at("layers");
      if (!arr.is_array()) return fail(Errc::corrupt_input, "manifest: layers is not an array");
      for (size_t i = 0; i < arr.size(); ++i) {
        auto d = CDI_TRY(parse_descriptor(arr[i], "layer " + std::to_string(i)));
        if (!is_layer_type(d.media_type))
          return fail(Errc::unsupported, "layer " + std::to_string(i) + " has media type " + d.media_type +
                                             ", not a container image layer");
        m.layers.push_back(std::move(d));
      }
      if (m.layers.empty()) return fail(Errc::corrupt_input, "manifest has no layers");
      return m;
    }
    return fail(Errc::unsupported, "unsupported manifest media type \"" + m.media_type + "\"");
  } catch (const json::exception& e) {
    return fail(Errc::corrupt_input, std::string("malformed manifest: ") + e.what());
  }
}

std::string normalize_architecture(std::string_view arch) {
  std::string a = lower(std::string(arch));
  if (a == "x86_64" || a == "x86-64") return "amd64";
  if (a == "aarch64") return "arm64";
  if (a == "i386" || a == "i686") return "386";
  return a;
}

std::string host_architecture() {
  struct utsname u{};
  if (::uname(&u) != 0) return "amd64";
  std::string m = u.machine;
  if (m.starts_with("arm") && m != "arm64") return "arm";
  return normalize_architecture(m);
}

Result<Descriptor> select_platform(const Manifest& index, const Platform& want) {
  std::string offered;
  for (const auto& d : index.manifests) {
    if (!d.platform) continue;
    const auto& p = *d.platform;
    if (!offered.empty()) offered += ", ";
    offered += platform_text(p);
    if (p.os != want.os || normalize_architecture(p.architecture) != want.architecture) continue;
    if (!want.variant.empty()) {
      std::string v = p.variant;
      if (v.empty() && want.architecture == "arm64") v = "v8";
      if (v != want.variant) continue;
    }
    return d;
  }
  return fail(Errc::not_found, "no image for platform " + platform_text(want) + " in the index (it has: " +
                                   (offered.empty() ? std::string("no platform entries") : offered) + ")");
}

Result<ImageConfig> parse_config(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::corrupt_input, "image config is not a JSON object");
  ImageConfig c;
  c.architecture = str_field(j, "architecture");
  c.os = str_field(j, "os");
  c.variant = str_field(j, "variant");
  if (auto cfg = j.find("config"); cfg != j.end() && cfg->is_object()) {
    if (auto env = cfg->find("Env"); env != cfg->end() && env->is_array())
      for (const auto& e : *env)
        if (e.is_string()) c.env.push_back(e.get<std::string>());
    if (auto labels = cfg->find("Labels"); labels != cfg->end() && labels->is_object())
      for (const auto& [k, v] : labels->items())
        if (v.is_string()) c.labels[k] = v.get<std::string>();
  }
  return c;
}

Result<void> refuse_bootc(const ImageConfig& config) {
  auto is = [&](const char* k) {
    auto it = config.labels.find(k);
    return it != config.labels.end() && it->second == "1";
  };
  if (is("containers.bootc") || is("ostree.bootable"))
    return fail(Errc::unsupported,
                "bootc image detected: this image contains an ostree-based bootable OS (containers.bootc=1 or "
                "ostree.bootable=1) and cannot be imported as a regular container disk; bootc-to-disk conversion is "
                "not yet implemented");
  return {};
}

Result<void> check_architecture(const ImageConfig& config, std::string_view requested) {
  if (normalize_architecture(config.architecture) != normalize_architecture(requested))
    return fail(Errc::unsupported, "Error validating architecture: manifest image architecture: \"" + config.architecture +
                                       "\" doesn't match requested architecture: \"" + std::string(requested) + "\"");
  return {};
}

std::vector<std::pair<std::string, std::string>> kubevirt_labels(const std::vector<std::string>& env) {
  constexpr std::string_view k_marker = "KUBEVIRT_IO_";
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : env) {
    auto eq = e.find('=');
    if (eq == std::string::npos) continue;
    std::string key = e.substr(0, eq);
    auto pos = key.find(k_marker);
    if (pos == std::string::npos) continue;
    // CDI's envToLabel: the part before the marker without one trailing '_', split at '_' and
    // joined with '.', then "." — unless that part is empty or starts with '_' (first element "").
    std::string before = key.substr(0, pos);
    std::string after = key.substr(pos + k_marker.size());
    if (before.ends_with('_')) before.pop_back();
    std::string label;
    if (!before.empty() && before.front() != '_') {
      std::ranges::replace(before, '_', '.');
      label = before + ".";
    }
    std::ranges::replace(after, '_', '-');
    label = lower(label + "kubevirt.io/" + after);
    // A Go map: a later entry with the same key wins.
    auto same = std::ranges::find_if(out, [&](const auto& kv) { return kv.first == label; });
    if (same != out.end()) same->second = e.substr(eq + 1);
    else out.emplace_back(std::move(label), e.substr(eq + 1));
  }
  return out;
}

std::string normalize_entry_path(std::string_view p) {
  std::string out;
  size_t i = 0;
  for (;;) {  // leading "./" and "/" runs
    if (p.substr(i).starts_with("./")) i += 2;
    else if (p.substr(i).starts_with("/")) i += 1;
    else break;
  }
  for (; i < p.size(); ++i) {
    if (p[i] == '/' && (out.empty() || out.back() == '/')) continue;
    out += p[i];
  }
  while (!out.empty() && out.back() == '/') out.pop_back();
  if (out == ".") out.clear();
  return out;
}

bool DiskFinder::hidden(std::string_view path) const {
  // The path itself or any ancestor deleted, or any ancestor made opaque, by an upper layer.
  for (size_t pos = path.size();;) {
    auto prefix = path.substr(0, pos);
    if (m_whiteouts.contains(prefix)) return true;
    if (pos < path.size() && m_opaque.contains(prefix)) return true;
    auto slash = prefix.rfind('/');
    if (slash == std::string_view::npos) break;
    pos = slash;
  }
  return false;
}

DiskFinder::Role DiskFinder::classify(std::string_view raw, bool regular, bool directory) {
  std::string path = normalize_entry_path(raw);
  if (path.empty()) return Role::ignore;
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "" : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base == ".wh..wh..opq") {
    m_pending_opaque.insert(dir);
    return Role::ignore;
  }
  if (base.starts_with(".wh.")) {
    m_pending_whiteouts.insert((dir.empty() ? "" : dir + "/") + base.substr(4));
    return Role::ignore;
  }
  if (path == "disk" && !directory) {
    // A non-directory named disk replaces the directory of lower layers.
    m_pending_whiteouts.insert("disk");
    return Role::ignore;
  }
  if (!path.starts_with("disk/") || directory || hidden(path)) return Role::ignore;
  return regular ? Role::disk : Role::not_regular;
}

void DiskFinder::end_layer() {
  m_whiteouts.merge(m_pending_whiteouts);
  m_opaque.merge(m_pending_opaque);
  m_pending_whiteouts.clear();
  m_pending_opaque.clear();
}

}  // namespace cdi::source::registry
