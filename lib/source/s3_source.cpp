// SPDX-License-Identifier: Apache-2.0
#include "lib/source/s3_source.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <vector>

#include "lib/source/http_util.hpp"

namespace cdi::source::s3 {
namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  std::ranges::transform(r, r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return r;
}

bool is_label(std::string_view s) {
  return !s.empty() && s.size() <= 63 &&
         std::ranges::all_of(s, [](unsigned char c) { return std::isalnum(c) || c == '-'; });
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    auto p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

// Splits "host[:port]" (IPv6 in brackets) off `rest` (after "scheme://"); the remainder is the path.
Result<std::pair<std::string, std::string>> authority_and_path(std::string_view rest, std::string_view shown) {
  auto slash = rest.find('/');
  std::string_view auth = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  if (auth.find('@') != std::string_view::npos)
    return fail(Errc::invalid_argument, "credentials in the URL are not accepted: " + http::redact_url(shown));
  if (auth.empty()) return fail(Errc::invalid_argument, "S3 URL without a host: " + http::redact_url(shown));
  if (rest.find_first_of("?#") != std::string_view::npos)
    return fail(Errc::invalid_argument, "S3 URL with a query or fragment: " + http::redact_url(shown));
  return std::pair{std::string(auth), std::string(path)};
}

Result<void> split_bucket_key(std::string_view path, S3Location& loc, std::string_view shown) {
  auto slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= path.size())
    return fail(Errc::invalid_argument, "S3 URL without a bucket and an object key: " + http::redact_url(shown));
  loc.bucket = std::string(path.substr(0, slash));
  loc.key = std::string(path.substr(slash + 1));
  return {};
}

Result<void> fill_host(S3Location& loc, std::string_view shown) {
  // libcurl's URL parser checks host and port; origin_of lower-cases and strips brackets.
  auto o = CDI_TRY(http::origin_of(loc.scheme + "://" + loc.authority + "/"));
  (void)shown;
  loc.host = o.host;
  loc.region = region_from_host(loc.host);
  return {};
}

std::string xml_element(std::string_view body, std::string_view name) {
  std::string open, close;
  open.append("<").append(name).append(">");
  close.append("</").append(name).append(">");
  auto a = body.find(open);
  if (a == std::string_view::npos) return {};
  a += open.size();
  auto b = body.find(close, a);
  if (b == std::string_view::npos) return {};
  std::string out;
  for (char c : body.substr(a, b - a)) {
    auto u = static_cast<unsigned char>(c);
    if (u == '\n' || u == '\r' || u == '\t') u = ' ';
    if (u < 0x20 || u == 0x7f) continue;
    out.push_back(static_cast<char>(u));
    if (out.size() >= 200) break;
  }
  return out;
}

}  // namespace

std::string region_from_host(std::string_view host_in) {
  std::string host = lower(host_in);
  auto labels = split(host, '.');
  // s3.REGION.amazonaws.com, s3.dualstack.REGION.amazonaws.com, s3-REGION.amazonaws.com
  if (host.ends_with(".amazonaws.com") && labels.size() >= 3) {
    size_t n = labels.size();
    if (n == 4 && labels[0] == "s3") return std::string(labels[1]);
    if (n == 5 && labels[0] == "s3" && labels[1] == "dualstack") return std::string(labels[2]);
    if (n == 3 && labels[0].starts_with("s3-")) return std::string(labels[0].substr(3));
    if (n == 3 && labels[0] == "s3") return "us-east-1";
  }
  return std::string(labels.front());
}

std::string encode_key(std::string_view raw) { return http::percent_encode(raw, true); }

Result<S3Location> parse_endpoint_url(std::string_view url) {
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return fail(Errc::invalid_argument, "not an S3 URL: " + http::redact_url(url));
  std::string scheme = lower(url.substr(0, sep));
  S3Location loc;
  if (scheme == "s3" || scheme == "https") loc.scheme = "https";
  else if (scheme == "http") loc.scheme = "http";
  else return fail(Errc::invalid_argument, "an S3 endpoint is s3://, https:// or http://, not " + scheme + "://");
  auto [auth, path] = CDI_TRY(authority_and_path(url.substr(sep + 3), url));
  loc.authority = std::move(auth);
  CDI_TRY(split_bucket_key(path, loc, url));
  CDI_TRY(fill_host(loc, url));
  return loc;
}

Result<S3Location> parse_bucket_url(std::string_view url, std::string_view endpoint, std::string_view region) {
  if (lower(url.substr(0, 5)) != "s3://") return fail(Errc::invalid_argument, "not an s3:// URL: " + http::redact_url(url));
  std::string_view rest = url.substr(5);
  if (rest.find_first_of("?#") != std::string_view::npos)
    return fail(Errc::invalid_argument, "S3 URL with a query or fragment: " + http::redact_url(url));
  S3Location loc;
  CDI_TRY(split_bucket_key(rest, loc, url));
  loc.key = encode_key(loc.key);
  if (endpoint.empty()) {
    loc.scheme = "https";
    loc.authority = "s3." + (region.empty() ? std::string("us-east-1") : std::string(region)) + ".amazonaws.com";
  } else {
    auto sep = endpoint.find("://");
    std::string scheme = sep == std::string_view::npos ? std::string() : lower(endpoint.substr(0, sep));
    if (scheme != "http" && scheme != "https")
      return fail(Errc::invalid_argument, "an S3 endpoint is an http:// or https:// URL: " + http::redact_url(endpoint));
    loc.scheme = scheme;
    std::string_view rest_ep = endpoint.substr(sep + 3);
    while (!rest_ep.empty() && rest_ep.back() == '/') rest_ep.remove_suffix(1);
    auto [auth, path] = CDI_TRY(authority_and_path(rest_ep, endpoint));
    if (!path.empty())
      return fail(Errc::invalid_argument, "an S3 endpoint has no path (the bucket goes in s3://BUCKET/KEY): " +
                                              http::redact_url(endpoint));
    loc.authority = std::move(auth);
  }
  CDI_TRY(fill_host(loc, url));
  return loc;
}

Result<void> apply_signing(const S3Location& loc, const std::optional<Credentials>& creds, std::string_view region,
                           HttpOptions& opts) {
  opts.aws_sigv4.reset();
  if (!creds) return {};
  if (creds->access_key.empty() || creds->secret_key.empty())
    return fail(Errc::invalid_argument, "an S3 access key id and its secret key go together");
  for (const auto* s : {&creds->access_key, &creds->secret_key, &creds->session_token})
    if (s->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      return fail(Errc::invalid_argument, "an S3 credential must be one line");
  std::string reg = region.empty() ? loc.region : std::string(region);
  if (!is_label(reg)) return fail(Errc::invalid_argument, "not a usable S3 region: '" + reg + "'");
  HttpOptions::AwsSigV4 sig;
  sig.provider = "aws:amz:" + reg + ":s3";
  sig.access_key = creds->access_key;
  sig.secret_key = creds->secret_key;
  sig.session_token = creds->session_token;
  opts.aws_sigv4 = std::move(sig);
  return {};
}

std::string describe_error_body(std::string_view body) {
  if (body.find("<Error>") == std::string_view::npos) return {};
  std::string code = xml_element(body, "Code");
  if (code.empty()) return {};
  std::string msg = xml_element(body, "Message");
  std::string out = "S3 error " + code;
  if (!msg.empty()) out += ": " + msg;
  std::string_view meaning;
  if (code == "SignatureDoesNotMatch") meaning = "wrong secret key (or a signature the store computes differently)";
  else if (code == "InvalidAccessKeyId") meaning = "the store does not know this access key id";
  else if (code == "RequestTimeTooSkewed") meaning = "clock skew: this machine's clock differs too much from the store's";
  else if (code == "NoSuchKey") meaning = "no such object in the bucket";
  else if (code == "NoSuchBucket") meaning = "no such bucket";
  else if (code == "AccessDenied") meaning = "access denied to these credentials (or to anonymous reads)";
  else if (code == "ExpiredToken" || code == "InvalidToken") meaning = "the session token is expired or invalid";
  else if (code == "AuthorizationHeaderMalformed") meaning = "the region or credentials do not fit this store";
  if (!meaning.empty()) out += " (" + std::string(meaning) + ")";
  return out;
}

}  // namespace cdi::source::s3
