// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_reference.hpp"

#include <algorithm>
#include <cctype>

namespace cdi::source::registry {
namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// One path component of a repository: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
bool valid_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (is_lower_alnum(ch)) continue;
    if (ch == '.' || ch == '_' || ch == '-') {
      if (ch == '.' && !is_lower_alnum(c[i + 1])) return false;
      if (ch == '_' && !(is_lower_alnum(c[i + 1]) || (c[i + 1] == '_' && is_lower_alnum(c[i + 2])))) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  auto ok = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; };
  if (t.front() == '.' || t.front() == '-') return false;
  return std::ranges::all_of(t, ok);
}

// "host[:port]" as the first component: it has a '.' or ':' or is "localhost".
bool looks_like_host(std::string_view c) {
  return c.find('.') != std::string_view::npos || c.find(':') != std::string_view::npos || c == "localhost";
}

Result<ImageReference> parse_docker(std::string_view rest, std::string_view url) {
  ImageReference r;
  r.transport = Transport::docker;
  auto bad = [&](const std::string& why) {
    return fail(Errc::invalid_argument, "invalid image reference \"" + std::string(url) + "\": " + why);
  };
  if (rest.starts_with("//")) rest.remove_prefix(2);
  else return bad("expected docker://[host[:port]/]repository[:tag|@digest]");
  if (rest.empty()) return bad("no repository");
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    auto d = sha256_hex_of(rest.substr(at + 1));
    if (!d) return bad(d.error().message());
    r.digest = std::string(rest.substr(at + 1));
    rest = rest.substr(0, at);
  }
  // A tag is after the last ':' that follows the last '/' (a ':' before it is a port).
  auto slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    r.tag = std::string(rest.substr(colon + 1));
    if (!valid_tag(r.tag)) return bad("invalid tag \"" + r.tag + "\"");
    rest = rest.substr(0, colon);
  }
  auto first_slash = rest.find('/');
  std::string_view repo = rest;
  if (first_slash != std::string_view::npos && looks_like_host(rest.substr(0, first_slash))) {
    std::string host(rest.substr(0, first_slash));
    std::ranges::transform(host, host.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    r.host = host;
    repo = rest.substr(first_slash + 1);
  }
  if (r.host.empty() || r.host == "docker.io" || r.host == "index.docker.io") {
    r.host = "registry-1.docker.io";
    if (repo.find('/') == std::string_view::npos) r.repository = "library/";
  }
  r.repository += std::string(repo);
  if (repo.empty()) return bad("no repository");
  size_t start = 0;
  for (;;) {
    auto end = r.repository.find('/', start);
    auto comp = std::string_view(r.repository).substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!valid_component(comp))
      return bad("invalid repository name \"" + r.repository + "\" (lower-case letters, digits and . _ - separators)");
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (r.tag.empty() && r.digest.empty()) r.tag = "latest";
  return r;
}

Result<ImageReference> parse_layout(Transport t, std::string_view rest, std::string_view url) {
  ImageReference r;
  r.transport = t;
  // PATH[:tag]: the tag is after the last ':' when what follows is a valid tag (paths with ':'
  // elsewhere still work).
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos && colon + 1 < rest.size() &&
                                    rest.substr(colon + 1).find('/') == std::string_view::npos) {
    auto tag = rest.substr(colon + 1);
    if (tag.starts_with("sha256:") || valid_tag(tag)) {
      r.tag = std::string(tag);
      rest = rest.substr(0, colon);
    }
  }
  if (auto at = r.tag.find("sha256"); at == 0) {
    // oci:dir@sha256:… is not a form we accept; keep it simple and explicit.
    return fail(Errc::invalid_argument, "invalid image reference \"" + std::string(url) + "\": select an image of a layout by tag");
  }
  if (rest.empty()) return fail(Errc::invalid_argument, "invalid image reference \"" + std::string(url) + "\": no path");
  r.path = std::string(rest);
  return r;
}

}  // namespace

std::string ImageReference::text() const {
  switch (transport) {
    case Transport::docker:
      return "docker://" + host + "/" + repository + (digest.empty() ? ":" + tag : "@" + digest);
    case Transport::oci: return "oci:" + path + (tag.empty() ? "" : ":" + tag);
    case Transport::oci_archive: return "oci-archive:" + path + (tag.empty() ? "" : ":" + tag);
  }
  return {};
}

bool is_image_reference(std::string_view url) {
  return url.starts_with("docker:") || url.starts_with("oci:") || url.starts_with("oci-archive:");
}

Result<ImageReference> parse_reference(std::string_view url) {
  if (url.starts_with("docker:")) return parse_docker(url.substr(7), url);
  if (url.starts_with("oci-archive:")) return parse_layout(Transport::oci_archive, url.substr(12), url);
  if (url.starts_with("oci:")) return parse_layout(Transport::oci, url.substr(4), url);
  return fail(Errc::invalid_argument, "Invalid image name \"" + std::string(url) + "\", unknown transport");
}

Result<std::string> sha256_hex_of(std::string_view digest) {
  if (!digest.starts_with("sha256:"))
    return fail(Errc::invalid_argument, "unsupported digest \"" + std::string(digest) + "\" (expected sha256:<64 hex>)");
  auto hex = digest.substr(7);
  if (hex.size() != 64 || !std::ranges::all_of(hex, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
    return fail(Errc::invalid_argument, "invalid digest \"" + std::string(digest) + "\" (expected sha256:<64 lower-case hex>)");
  return std::string(hex);
}

}  // namespace cdi::source::registry
