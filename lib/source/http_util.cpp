// SPDX-License-Identifier: Apache-2.0
#include "lib/source/http_util.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <memory>

namespace cdi::source::http {
namespace {

struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;

struct CurlString {
  char* p = nullptr;
  ~CurlString() { curl_free(p); }
};

std::string lower(std::string_view s) {
  std::string r(s);
  std::ranges::transform(r, r.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return r;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::ranges::equal(a, b, [](unsigned char x, unsigned char y) { return std::tolower(x) == std::tolower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::optional<uint64_t> parse_u64(std::string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<UrlHandle> parse(std::string_view url) {
  UrlHandle h(curl_url());
  if (!h) return fail(Errc::internal, "out of memory parsing a URL");
  std::string s(url);
  if (curl_url_set(h.get(), CURLUPART_URL, s.c_str(), 0) != CURLUE_OK)
    return fail(Errc::invalid_argument, "not a valid URL: " + redact_url(url));
  return h;
}

std::optional<std::string> part(CURLU* h, CURLUPart what, unsigned flags = 0) {
  CurlString s;
  if (curl_url_get(h, what, &s.p, flags) != CURLUE_OK || !s.p) return std::nullopt;
  return std::string(s.p);
}

bool is_tchar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

}  // namespace

Result<Origin> origin_of(std::string_view url) {
  auto h = CDI_TRY(parse(url));
  Origin o;
  o.scheme = lower(part(h.get(), CURLUPART_SCHEME).value_or(""));
  if (o.scheme != "http" && o.scheme != "https")
    return fail(Errc::invalid_argument, "not an http(s) URL: " + redact_url(url));
  if (part(h.get(), CURLUPART_USER) || part(h.get(), CURLUPART_PASSWORD))
    return std::unexpected(Error(Errc::invalid_argument, "credentials in the URL are not accepted: " + redact_url(url))
                               .with_hint(" (use --username and --password-file)"));
  auto host = part(h.get(), CURLUPART_HOST);
  if (!host || host->empty()) return fail(Errc::invalid_argument, "URL without a host: " + redact_url(url));
  std::string hs = lower(*host);
  if (hs.size() >= 2 && hs.front() == '[' && hs.back() == ']') hs = hs.substr(1, hs.size() - 2);
  o.host = hs;
  auto port = part(h.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  auto pv = port ? parse_u64(*port) : std::nullopt;
  if (!pv || *pv == 0 || *pv > 65535) return fail(Errc::invalid_argument, "URL with a bad port: " + redact_url(url));
  o.port = static_cast<unsigned>(*pv);
  return o;
}

Result<std::string> resolve_location(std::string_view base, std::string_view location) {
  auto h = CDI_TRY(parse(base));
  std::string loc(trim(location));
  if (loc.empty()) return fail(Errc::invalid_argument, "redirect without a Location");
  if (curl_url_set(h.get(), CURLUPART_URL, loc.c_str(), 0) != CURLUE_OK)
    return fail(Errc::invalid_argument, "redirect to an invalid URL: " + redact_url(loc));
  curl_url_set(h.get(), CURLUPART_FRAGMENT, nullptr, 0);
  auto out = part(h.get(), CURLUPART_URL);
  if (!out) return fail(Errc::invalid_argument, "redirect to an invalid URL: " + redact_url(loc));
  CDI_TRY(origin_of(*out));  // http(s) only, no credentials
  return *out;
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string redact_url(std::string_view url) {
  std::string s(url);
  if (auto q = s.find('?'); q != std::string::npos) s = s.substr(0, q) + "?…";
  if (auto start = s.find("://"); start != std::string::npos) {
    start += 3;
    auto end = s.find_first_of("/?#", start);
    auto at = s.rfind('@', end == std::string::npos ? s.size() : end);
    if (at != std::string::npos && at >= start) s.erase(start, at + 1 - start);
  }
  return s;
}

std::optional<std::pair<std::string, std::string>> split_header(std::string_view line) {
  line = trim(line);
  if (line.empty() || line.front() == ' ' || line.front() == '\t') return std::nullopt;
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view name = line.substr(0, colon);
  if (!std::ranges::all_of(name, [](char c) { return is_tchar(static_cast<unsigned char>(c)); })) return std::nullopt;
  return std::pair{std::string(name), std::string(trim(line.substr(colon + 1)))};
}

Result<std::string> check_extra_header(std::string_view line) {
  std::string_view l = line;
  while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.remove_suffix(1);
  if (l.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return fail(Errc::invalid_argument, "a header must be one line");
  auto colon = l.find(':');
  if (colon == std::string_view::npos || colon == 0)
    return fail(Errc::invalid_argument, "a header must look like 'Name: value'");
  std::string_view name = l.substr(0, colon);
  if (!std::ranges::all_of(name, [](char c) { return is_tchar(static_cast<unsigned char>(c)); }))
    return fail(Errc::invalid_argument, "invalid header name '" + std::string(name) + "'");
  for (std::string_view reserved : {"host", "range", "if-range", "content-length", "transfer-encoding", "connection"})
    if (iequals(name, reserved))
      return fail(Errc::invalid_argument, "header " + std::string(name) + " is set by cdi-import itself");
  std::string_view value = trim(l.substr(colon + 1));
  for (char c : value)
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t')
      return fail(Errc::invalid_argument, "header " + std::string(name) + " has a control character in its value");
  return std::string(name) + ": " + std::string(value);
}

std::optional<std::string> Headers::get(std::string_view name) const {
  for (auto it = m_items.rbegin(); it != m_items.rend(); ++it)
    if (iequals(it->first, name)) return it->second;
  return std::nullopt;
}

std::optional<ContentRange> parse_content_range(std::string_view v) {
  v = trim(v);
  constexpr std::string_view unit = "bytes ";
  if (v.size() < unit.size() || !iequals(v.substr(0, unit.size()), unit)) return std::nullopt;
  v.remove_prefix(unit.size());
  v = trim(v);
  auto dash = v.find('-');
  auto slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return std::nullopt;
  ContentRange r;
  auto first = parse_u64(v.substr(0, dash));
  auto last = parse_u64(v.substr(dash + 1, slash - dash - 1));
  if (!first || !last || *last < *first) return std::nullopt;
  r.first = *first;
  r.last = *last;
  auto total = v.substr(slash + 1);
  if (total != "*") {
    r.total = parse_u64(total);
    if (!r.total || r.last >= *r.total) return std::nullopt;
  }
  return r;
}

std::optional<uint64_t> parse_content_length(std::string_view v) { return parse_u64(trim(v)); }

std::optional<std::chrono::seconds> parse_retry_after(std::string_view v, std::chrono::system_clock::time_point now) {
  v = trim(v);
  if (auto s = parse_u64(v)) return std::chrono::seconds(std::min<uint64_t>(*s, 1u << 30));
  std::string s(v);
  struct tm tm {};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  time_t t = timegm(&tm);
  auto at = std::chrono::system_clock::from_time_t(t);
  if (at <= now) return std::chrono::seconds(0);
  return std::chrono::duration_cast<std::chrono::seconds>(at - now);
}

bool is_html_content_type(std::string_view v) {
  auto semi = v.find(';');
  auto type = trim(v.substr(0, semi));
  return iequals(type, "text/html") || iequals(type, "application/xhtml+xml");
}

bool looks_like_html(std::string_view head) {
  if (head.starts_with("\xEF\xBB\xBF")) head.remove_prefix(3);
  while (!head.empty() && (head.front() == ' ' || head.front() == '\t' || head.front() == '\r' || head.front() == '\n'))
    head.remove_prefix(1);
  return !head.empty() && head.front() == '<';
}

std::optional<std::string> if_range_validator(const Headers& h) {
  if (auto etag = h.get("ETag"); etag && !etag->empty() && !etag->starts_with("W/") && !etag->starts_with("w/"))
    return etag;
  if (auto lm = h.get("Last-Modified"); lm && !lm->empty()) return lm;
  return std::nullopt;
}

std::string_view reason_phrase(long status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 416: return "Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
  }
}

bool is_retryable_status(long status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599 && status != 501 && status != 505);
}

std::string error_body_excerpt(std::string_view body, long status) {
  auto lower = [](std::string_view v) {
    std::string o(v);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
  };
  std::string lb = lower(body);
  std::string_view src = body;
  if (auto t = lb.find("<title>"); t != std::string::npos) {
    auto e = lb.find("</title>", t);
    if (e != std::string::npos) src = body.substr(t + 7, e - t - 7);
  }
  std::string out;
  bool in_tag = false, space = false;
  for (char ch : src) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '<') { in_tag = true; continue; }
    if (c == '>' && in_tag) { in_tag = false; space = true; continue; }
    if (in_tag) continue;
    if (std::isspace(c)) { space = true; continue; }
    if (c < 0x20 || c == 0x7f) continue;
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(c));
    if (out.size() >= 160) break;
  }
  std::string status_only = std::to_string(status);
  std::string with_reason = status_only + " " + std::string(reason_phrase(status));
  if (out.empty() || lower(out) == lower(status_only) || lower(out) == lower(with_reason) ||
      lower(out) == lower(std::string(reason_phrase(status))))
    return {};
  return out;
}

ProxyEnv proxy_env_from(const std::function<const char*(const char*)>& getenv) {
  auto any = [&](const char* upper, const char* lower) -> std::string {
    for (const char* name : {upper, lower})
      if (const char* v = getenv(name); v && *v) return v;
    return {};
  };
  ProxyEnv e;
  e.http = any("HTTP_PROXY", "http_proxy");
  e.https = any("HTTPS_PROXY", "https_proxy");
  e.no_proxy = any("NO_PROXY", "no_proxy");
  return e;
}

std::string proxy_for(const ProxyEnv& env, std::string_view scheme) {
  return scheme == "https" ? env.https : env.http;
}

namespace {
struct CurlFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
}  // namespace

Result<SmallResponse> small_request(const SmallRequest& req, TransportFailure* why) {
  std::unique_ptr<CURL, CurlFree> c(curl_easy_init());
  if (!c) return fail(Errc::internal, "curl_easy_init failed");
  CURL* h = c.get();
  SmallResponse r;
  curl_slist* list = nullptr;
  for (const auto& line : req.headers) list = curl_slist_append(list, line.c_str());
  std::unique_ptr<curl_slist, SlistFree> hold(list);
  char errbuf[CURL_ERROR_SIZE] = {};
  struct Sink {
    SmallResponse* r;
    size_t cap;
    const util::CancelToken* cancel;
    bool over = false;
  } sink{&r, req.max_body, req.cancel};
  auto write_cb = +[](char* p, size_t s, size_t n, void* u) -> size_t {
    auto* k = static_cast<Sink*>(u);
    if (k->r->body.size() + s * n > k->cap) {
      k->over = true;
      return 0;
    }
    k->r->body.append(p, s * n);
    return s * n;
  };
  auto header_cb = +[](char* p, size_t s, size_t n, void* u) -> size_t {
    auto* k = static_cast<Sink*>(u);
    std::string_view line(p, s * n);
    if (line.starts_with("HTTP/")) k->r->headers.clear();
    else if (auto hd = split_header(line)) k->r->headers.add(std::move(hd->first), std::move(hd->second));
    return s * n;
  };
  auto progress_cb = +[](void* u, curl_off_t, curl_off_t, curl_off_t, curl_off_t) -> int {
    auto* k = static_cast<Sink*>(u);
    return k->cancel && k->cancel->cancelled() ? 1 : 0;   // a signal aborts a small request too
  };
  const std::string agent = req.user_agent.empty() ? std::string("cdi-import/" CDI_VERSION) : req.user_agent;
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!req.use_proxy_env) {
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  }
  if (req.follow_redirects) {
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, req.redirect_protocols.c_str());
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
  }
  curl_easy_setopt(h, CURLOPT_USERAGENT, agent.c_str());
  if (req.tls12_min) curl_easy_setopt(h, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, req.verify_tls ? 1L : 0L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, req.verify_tls ? 2L : 0L);
  if (req.ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, req.ca_file->c_str());
  curl_blob blob{const_cast<char*>(req.ca_pem.data()), req.ca_pem.size(), CURL_BLOB_NOCOPY};
  if (!req.ca_pem.empty()) curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
  if (req.client_cert) curl_easy_setopt(h, CURLOPT_SSLCERT, req.client_cert->c_str());
  if (req.client_key) curl_easy_setopt(h, CURLOPT_SSLKEY, req.client_key->c_str());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  if (req.total_timeout) curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(req.total_timeout->count()));
  if (req.stall_timeout) {
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(req.stall_timeout->count()));
  }
  if (!req.method.empty()) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (req.body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body->c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(req.body->size()));
  }
  if (list) curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);
  if (req.cancel) {
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &sink);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  CURLcode rc = curl_easy_perform(h);
  if (sink.over) return fail(Errc::limit, "the reply is larger than " + std::to_string(req.max_body) + " bytes");
  if (rc != CURLE_OK) {
    std::string msg = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    if (why) {
      why->message = msg;
      if (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR) why->kind = TransportFailure::Kind::send_recv;
      else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM ||
               rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_UNSUPPORTED_PROTOCOL)
        why->kind = TransportFailure::Kind::tls;
      else why->kind = TransportFailure::Kind::other;
    }
    return fail(Errc::network, std::move(msg));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace cdi::source::http
