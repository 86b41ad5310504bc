// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_auth.hpp"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

namespace cdi::source::registry {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::ranges::transform(out, out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "https://host:port/v1/" -> "host:port"
std::string key_host(std::string_view key) {
  if (auto p = key.find("://"); p != std::string_view::npos) key.remove_prefix(p + 3);
  if (auto p = key.find('/'); p != std::string_view::npos) key = key.substr(0, p);
  return lower(key);
}

bool is_docker_hub(std::string_view h) {
  return h == "docker.io" || h == "index.docker.io" || h == "registry-1.docker.io" || h == "registry.hub.docker.com";
}

}  // namespace

Result<std::vector<Challenge>> parse_www_authenticate(std::string_view v) {
  std::vector<Challenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
  };
  auto token = [&] {
    size_t s = i;
    while (i < v.size() && is_token_char(v[i])) ++i;
    return std::string(v.substr(s, i - s));
  };
  while (i < v.size()) {
    skip_ws();
    while (i < v.size() && (v[i] == ',' || v[i] == ' ')) ++i;
    if (i >= v.size()) break;
    std::string name = token();
    if (name.empty()) return fail(Errc::invalid_argument, "malformed WWW-Authenticate header");
    skip_ws();
    if (i < v.size() && v[i] == '=' && !out.empty()) {
      // A parameter of the current challenge.
      ++i;
      skip_ws();
      std::string value;
      if (i < v.size() && v[i] == '"') {
        ++i;
        bool closed = false;
        while (i < v.size()) {
          char c = v[i++];
          if (c == '\\' && i < v.size()) value += v[i++];
          else if (c == '"') {
            closed = true;
            break;
          } else value += c;
        }
        if (!closed) return fail(Errc::invalid_argument, "malformed WWW-Authenticate header (unterminated quote)");
      } else {
        value = token();
      }
      out.back().params[lower(name)] = value;
      skip_ws();
      if (i < v.size() && v[i] == ',') ++i;
      continue;
    }
    // A new challenge: scheme [token68 | params].
    Challenge c;
    c.scheme = lower(name);
    out.push_back(std::move(c));
    // token68 (e.g. "Negotiate abc==") is skipped: the next token is followed by '=' only for params.
    size_t save = i;
    std::string t = token();
    skip_ws();
    if (!t.empty() && i < v.size() && v[i] == '=' ) {
      i = save;   // a parameter: re-read it in the loop
      continue;
    }
    while (i < v.size() && v[i] == '=') ++i;   // token68 padding
  }
  if (out.empty()) return fail(Errc::invalid_argument, "empty WWW-Authenticate header");
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  size_t pad = 0;
  for (char c : in) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad) return std::nullopt;   // data after padding
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits >= 6 || pad > 2) return std::nullopt;
  return out;
}

std::string base64_encode(std::string_view in) {
  static constexpr char k_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += k_chars[(n >> 18) & 63];
    out += k_chars[(n >> 12) & 63];
    out += k_chars[(n >> 6) & 63];
    out += k_chars[n & 63];
  }
  if (i + 1 == in.size()) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    out += k_chars[(n >> 18) & 63];
    out += k_chars[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    unsigned n = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += k_chars[(n >> 18) & 63];
    out += k_chars[(n >> 12) & 63];
    out += k_chars[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::optional<Credentials>> docker_config_credentials(std::string_view text, std::string_view host) {
  using nlohmann::json;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::corrupt_input, "registry auth file is not a JSON object");
  const json* auths = &j;
  if (auto it = j.find("auths"); it != j.end()) {
    if (!it->is_object()) return fail(Errc::corrupt_input, "registry auth file: \"auths\" is not an object");
    auths = &*it;
  }
  std::string want = lower(host);
  for (const auto& [key, entry] : auths->items()) {
    std::string h = key_host(key);
    if (!(h == want || (is_docker_hub(h) && is_docker_hub(want)))) continue;
    if (!entry.is_object()) return fail(Errc::corrupt_input, "registry auth file: entry for " + key + " is not an object");
    Credentials c;
    auto str = [&](const char* k) {
      auto f = entry.find(k);
      return f != entry.end() && f->is_string() ? f->get<std::string>() : std::string();
    };
    if (auto a = str("auth"); !a.empty()) {
      auto dec = base64_decode(a);
      if (!dec) return fail(Errc::corrupt_input, "registry auth file: \"auth\" of " + key + " is not valid base64");
      auto colon = dec->find(':');
      if (colon == std::string::npos)
        return fail(Errc::corrupt_input, "registry auth file: \"auth\" of " + key + " is not base64 of user:password");
      c.username = dec->substr(0, colon);
      c.password = dec->substr(colon + 1);
    } else {
      c.username = str("username");
      c.password = str("password");
      if (c.username.empty()) continue;   // e.g. only an identitytoken / credHelper entry
    }
    return std::optional<Credentials>(std::move(c));
  }
  return std::optional<Credentials>();
}

}  // namespace cdi::source::registry
