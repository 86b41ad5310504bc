// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/checksum_list.hpp"

#include <cctype>
#include <optional>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/source/file_source.hpp"
#include "lib/source/http_source.hpp"

namespace cdi::pipeline {

namespace {

constexpr size_t k_max_list = 1u << 20;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string_view strip_dot_slash(std::string_view s) {
  while (s.starts_with("./")) s.remove_prefix(2);
  return s;
}

std::optional<util::DigestAlgo> algo_of_tag(std::string_view tag) {
  std::string t(tag);
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "md5") return util::DigestAlgo::md5;
  if (t == "sha1") return util::DigestAlgo::sha1;
  if (t == "sha256") return util::DigestAlgo::sha256;
  if (t == "sha512") return util::DigestAlgo::sha512;
  return std::nullopt;
}

std::optional<util::DigestAlgo> algo_of_length(size_t n) {
  switch (n) {
    case 32: return util::DigestAlgo::md5;
    case 40: return util::DigestAlgo::sha1;
    case 64: return util::DigestAlgo::sha256;
    case 128: return util::DigestAlgo::sha512;
    default: return std::nullopt;
  }
}

struct Entry {
  std::string name;
  std::string algo;   // tag, or "" to infer from the length
  std::string hex;
};

// One line of either style; nullopt for blank lines, comments and lines of other shapes.
std::optional<Entry> parse_line(std::string_view line) {
  line = trim(line);
  if (line.empty() || line.front() == '#') return std::nullopt;
  // BSD: "SHA256 (name) = hex"
  if (auto open = line.find(" ("); open != std::string_view::npos && open > 0 &&
                                   std::isalpha(static_cast<unsigned char>(line.front()))) {
    auto close = line.rfind(") = ");
    if (close != std::string_view::npos && close > open) {
      Entry e;
      e.algo = std::string(line.substr(0, open));
      e.name = std::string(line.substr(open + 2, close - open - 2));
      e.hex = std::string(trim(line.substr(close + 4)));
      return e;
    }
  }
  // coreutils: "hex  name" (text) or "hex *name" (binary)
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  Entry e;
  e.hex = std::string(line.substr(0, sp));
  std::string_view rest = line.substr(sp + 1);
  if (!rest.empty() && (rest.front() == ' ' || rest.front() == '*')) rest.remove_prefix(1);
  e.name = std::string(rest);
  for (char c : e.hex)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
  return e;
}

}  // namespace

Result<util::Checksum> find_in_checksum_list(std::string_view list, std::string_view file_name) {
  std::string_view want = strip_dot_slash(file_name);
  std::optional<util::Checksum> found;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t nl = list.find('\n', pos);
    std::string_view line = list.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? list.size() + 1 : nl + 1;
    auto e = parse_line(line);
    if (!e || strip_dot_slash(e->name) != want) continue;
    auto algo = e->algo.empty() ? algo_of_length(e->hex.size()) : algo_of_tag(e->algo);
    if (!algo)
      return fail(Errc::corrupt_input, "checksum list: the line for " + std::string(want) +
                                           " has an unknown algorithm or digest length");
    auto c = util::parse_checksum(std::string(util::digest_name(*algo)) + ":" + e->hex);
    if (!c) return std::unexpected(Error(Errc::corrupt_input, c.error().what()).context("checksum list"));
    if (found && (found->algo != c->algo || found->hex != c->hex)) {
      if (found->algo == c->algo)
        return fail(Errc::corrupt_input, "checksum list has two different digests for " + std::string(want));
      // Several algorithms for one file (a combined list): keep the strongest.
      if (static_cast<int>(c->algo) < static_cast<int>(found->algo)) continue;
    }
    found = std::move(*c);
  }
  if (!found) return fail(Errc::not_found, "checksum list has no line for " + std::string(want));
  return *found;
}

std::string checksum_file_name(std::string_view url) {
  if (auto q = url.find_first_of("?#"); q != std::string_view::npos) url = url.substr(0, q);
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
    url = url.substr(scheme + 3);
    auto slash = url.find('/');
    url = slash == std::string_view::npos ? std::string_view() : url.substr(slash);
  }
  auto slash = url.rfind('/');
  std::string_view name = slash == std::string_view::npos ? url : url.substr(slash + 1);
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size() &&
        std::isxdigit(static_cast<unsigned char>(name[i + 1])) && std::isxdigit(static_cast<unsigned char>(name[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(name.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(name[i]);
    }
  }
  return out;
}

Result<util::Checksum> fetch_checksum(const ImportOptions& o, std::string_view list_url) {
  std::string name = checksum_file_name(o.url);
  if (name.empty() || name == "-")
    return fail(Errc::invalid_argument, "the image location " + o.url + " has no file name to look up");
  std::unique_ptr<io::Reader> r;
  auto lower = std::string(list_url.substr(0, 8));
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.starts_with("http://") || lower.starts_with("https://")) {
    source::HttpContext ctx;
    ctx.cancel = o.cancel;
    ctx.log = o.log;
    auto opts = o.source.http;
    opts.reject_html = true;
    r = CDI_TRY_CTX(source::open_http_source(list_url, opts, ctx), std::string(list_url));
  } else {
    source::FileSourceOptions fo;
    fo.cancel = o.cancel;
    r = CDI_TRY_CTX(source::open_file_source(list_url, fo), std::string(list_url));
  }
  std::string text;
  std::vector<std::byte> buf(64 << 10);
  for (;;) {
    size_t n = CDI_TRY_CTX(r->read(buf), std::string(list_url));
    if (n == 0) break;
    if (text.size() + n > k_max_list)
      return fail(Errc::limit, std::string(list_url) + ": a checksum list over 1 MiB is not a checksum list");
    text.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return CDI_TRY_CTX(find_in_checksum_list(text, name), std::string(list_url));
}

}  // namespace cdi::pipeline
