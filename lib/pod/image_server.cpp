// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/image_server.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace cdi::pod {

// --- pure helpers ---------------------------------------------------------------------------------

namespace {

constexpr char k_hex[] = "0123456789abcdef";

// One UTF-8 sequence at s[i]: its code point and length; nullopt when invalid (Go's RuneError, 1).
std::optional<std::pair<uint32_t, size_t>> decode_utf8(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  unsigned char c = b(0);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return std::pair<uint32_t, size_t>{c, 1};
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return std::nullopt;
  if (i + n > s.size()) return std::nullopt;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
    return std::nullopt;
  return std::pair<uint32_t, size_t>{cp, n};
}

std::string trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

// strconv.ParseInt(s, 10, 64)
bool parse_dec(std::string_view s, int64_t& out) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) neg = s[0] == '-', s.remove_prefix(1);
  if (s.empty() || s.size() > 19) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (v > (INT64_MAX - (c - '0')) / 10) return false;
    v = v * 10 + (c - '0');
  }
  out = neg ? -v : v;
  return true;
}

bool lower_eq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

}  // namespace

std::string go_json_string(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
        out += static_cast<char>(c);
      } else {
        switch (c) {
          case '"': out += "\\\""; break;
          case '\\': out += "\\\\"; break;
          case '\b': out += "\\b"; break;
          case '\f': out += "\\f"; break;
          case '\n': out += "\\n"; break;
          case '\r': out += "\\r"; break;
          case '\t': out += "\\t"; break;
          default:
            out += "\\u00";
            out += k_hex[c >> 4];
            out += k_hex[c & 0xF];
        }
      }
      ++i;
      continue;
    }
    auto r = decode_utf8(s, i);
    if (!r) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (r->first == 0x2028 || r->first == 0x2029) {
      out += r->first == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.substr(i, r->second));
    }
    i += r->second;
  }
  return out + "\"";
}

std::string server_info_json(const std::vector<std::string>& env) {
  if (env.empty()) return "{}\n";
  std::string out = "{\"env\":[";
  for (size_t i = 0; i < env.size(); ++i) {
    if (i) out += ',';
    out += go_json_string(env[i]);
  }
  return out + "]}\n";
}

std::string http_date(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::optional<std::time_t> parse_http_date(std::string_view s) {
  std::string str(s);
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    struct tm tm {};
    const char* end = strptime(str.c_str(), fmt, &tm);
    if (end && *end == '\0') return timegm(&tm);
  }
  return std::nullopt;
}

RangeDecision decide_range(std::string_view header, uint64_t usize) {
  RangeDecision d;
  if (header.empty()) return d;
  const auto size = static_cast<int64_t>(usize);
  auto invalid = [&] {
    d.kind = RangeDecision::Kind::unsatisfiable;
    d.no_overlap = false;
    return d;
  };
  constexpr std::string_view k_prefix = "bytes=";
  if (!header.starts_with(k_prefix)) return invalid();
  std::vector<std::pair<int64_t, int64_t>> ranges;   // start, length
  bool no_overlap = false;
  std::string_view rest = header.substr(k_prefix.size());
  for (;;) {
    auto comma = rest.find(',');
    std::string ra = trim_ows(rest.substr(0, comma));
    if (!ra.empty()) {
      auto dash = ra.find('-');
      if (dash == std::string::npos) return invalid();
      std::string start = trim_ows(std::string_view(ra).substr(0, dash));
      std::string end = trim_ows(std::string_view(ra).substr(dash + 1));
      int64_t first = 0, length = 0, v = 0;
      if (start.empty()) {
        if (end.empty() || end[0] == '-') return invalid();
        if (!parse_dec(end, v) || v < 0) return invalid();
        if (v > size) v = size;
        first = size - v;
        length = size - first;
      } else {
        if (!parse_dec(start, v) || v < 0) return invalid();
        if (v >= size) {
          no_overlap = true;
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
          continue;
        }
        first = v;
        if (end.empty()) {
          length = size - first;
        } else {
          if (!parse_dec(end, v) || first > v) return invalid();
          if (v >= size) v = size - 1;
          length = v - first + 1;
        }
      }
      ranges.emplace_back(first, length);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  if (no_overlap && ranges.empty()) {
    d.kind = RangeDecision::Kind::unsatisfiable;
    d.no_overlap = true;
    return d;
  }
  int64_t sum = 0;
  for (auto& r : ranges) sum += r.second;
  // Several ranges (Go: multipart/byteranges) are answered with the whole file, which a client
  // must accept; CDI's importer never asks for more than one.
  if (ranges.size() != 1 || sum > size) return d;
  d.kind = RangeDecision::Kind::partial;
  d.first = static_cast<uint64_t>(ranges[0].first);
  d.length = static_cast<uint64_t>(ranges[0].second);
  return d;
}

std::string clean_url_path(std::string_view p) {
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    auto seg = p.substr(i, j - i);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    i = j + 1;
  }
  std::string out;
  for (auto s : parts) {
    out += '/';
    out += s;
  }
  return out.empty() ? "/" : out;
}

std::optional<std::string> percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string content_type_for(std::string_view name, std::string_view head) {
  static const std::pair<const char*, const char*> k_types[] = {
      {".avif", "image/avif"}, {".css", "text/css; charset=utf-8"}, {".gif", "image/gif"},
      {".htm", "text/html; charset=utf-8"}, {".html", "text/html; charset=utf-8"}, {".jpeg", "image/jpeg"},
      {".jpg", "image/jpeg"}, {".js", "text/javascript; charset=utf-8"}, {".json", "application/json"},
      {".mjs", "text/javascript; charset=utf-8"}, {".pdf", "application/pdf"}, {".png", "image/png"},
      {".svg", "image/svg+xml"}, {".wasm", "application/wasm"}, {".webp", "image/webp"},
      {".xml", "text/xml; charset=utf-8"}};
  if (auto dot = name.rfind('.'); dot != std::string_view::npos) {
    std::string ext(name.substr(dot));
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (auto& [e, t] : k_types)
      if (ext == e) return t;
  }
  head = head.substr(0, 512);
  if (head.starts_with("\x1f\x8b\x08")) return "application/x-gzip";
  if (head.starts_with("PK\x03\x04")) return "application/zip";
  for (unsigned char c : head)
    if (c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1A) || (c >= 0x1C && c <= 0x1F))
      return "application/octet-stream";
  return "text/plain; charset=utf-8";
}

// --- the server ---------------------------------------------------------------------------------

struct ImageServer::State {
  ImageServerOptions opts;
  int listen_fd = -1;
  uint16_t port = 0;
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable cv;
  int connections = 0;
  std::thread acceptor;

  void log(const std::string& s) const {
    if (opts.log) opts.log(s);
  }
};

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto k_header_timeout = std::chrono::seconds(10);   // CDI: ReadHeaderTimeout 10 s
constexpr size_t k_max_header_bytes = (1u << 20) + 4096;      // Go: DefaultMaxHeaderBytes + slack

struct Request {
  std::string method, target, version;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (lower_eq(k, name)) return v;
    return {};
  }
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;          // small bodies
  int file_fd = -1;          // or a file range
  uint64_t file_off = 0, file_len = 0;
  bool head_only = false;
};

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 412: return "Precondition Failed";
    case 416: return "Requested Range Not Satisfiable";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
  }
  return "Unknown";
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool write_response(int fd, const Response& r, bool close_after) {
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " + reason(r.status) + "\r\n";
  bool has_length = false;
  for (const auto& [k, v] : r.headers) {
    head += k + ": " + v + "\r\n";
    if (k == "Content-Length") has_length = true;
  }
  if (!has_length && r.status != 304) {
    head += "Content-Length: ";
    head += std::to_string(r.file_fd >= 0 ? r.file_len : r.body.size());
    head += "\r\n";
  }
  head += "Date: " + http_date(std::time(nullptr)) + "\r\n";
  if (close_after) head += "Connection: close\r\n";
  head += "\r\n";
  if (!r.head_only && r.file_fd < 0) head += r.body;
  if (!send_all(fd, head)) return false;
  if (r.head_only || r.file_fd < 0) return true;
  off_t off = static_cast<off_t>(r.file_off);
  uint64_t left = r.file_len;
  while (left > 0) {
    ssize_t n = ::sendfile(fd, r.file_fd, &off, std::min<uint64_t>(left, 1u << 30));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return false;   // the file shrank: the client sees a short body
    left -= static_cast<uint64_t>(n);
  }
  return true;
}

Response error_response(int status, std::string text) {
  Response r;
  r.status = status;
  r.headers = {{"Content-Type", "text/plain; charset=utf-8"}, {"X-Content-Type-Options", "nosniff"}};
  r.body = std::move(text) + "\n";
  return r;
}

Response redirect(const std::string& location, const std::string& query) {
  Response r;
  r.status = 301;
  r.headers = {{"Location", query.empty() ? location : location + "?" + query}};
  return r;
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string href_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || std::strchr("-._~/!$&'()*+,;=:@", c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += static_cast<char>(std::toupper(k_hex[c >> 4]));
      out += static_cast<char>(std::toupper(k_hex[c & 0xF]));
    }
  }
  if (out.find(':') != std::string::npos && out.find('/') == std::string::npos) out = "./" + out;
  return out;
}

std::string base_name(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  auto slash = p.rfind('/');
  return std::string(slash == std::string_view::npos ? p : p.substr(slash + 1));
}

// Go's ServeMux cleanPath: path.Clean, keeping a trailing slash.
std::string mux_clean(const std::string& p) {
  std::string np = clean_url_path(p);
  if (p.size() > 1 && p.back() == '/' && np != "/") np += '/';
  return np;
}

class FileHandle {
 public:
  explicit FileHandle(int fd = -1) : m_fd(fd) {}
  ~FileHandle() {
    if (m_fd >= 0) ::close(m_fd);
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  int get() const { return m_fd; }

 private:
  int m_fd;
};

Response serve_dir_listing(int dirfd, const struct stat& st) {
  std::vector<std::string> names;
  int dup = ::dup(dirfd);
  if (DIR* d = dup >= 0 ? ::fdopendir(dup) : nullptr) {
    while (auto* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      struct stat es {};
      if (::fstatat(dirfd, e->d_name, &es, 0) == 0 && S_ISDIR(es.st_mode)) n += '/';
      names.push_back(n);
    }
    ::closedir(d);
  } else {
    if (dup >= 0) ::close(dup);
    return error_response(500, "Error reading directory");
  }
  std::sort(names.begin(), names.end());
  Response r;
  r.headers = {{"Content-Type", "text/html; charset=utf-8"}, {"Last-Modified", http_date(st.st_mtime)}};
  r.body = "<!doctype html>\n<meta name=\"viewport\" content=\"width=device-width\">\n<pre>\n";
  for (const auto& n : names) r.body += "<a href=\"" + href_escape(n) + "\">" + html_escape(n) + "</a>\n";
  r.body += "</pre>\n";
  return r;
}

// http.FileServer(http.Dir(directory)) for one request. `fd_hold` keeps the served file open
// until the response was written.
Response serve_file(const ImageServer::State& s, const Request& req, const std::string& upath,
                    const std::string& query, std::unique_ptr<FileHandle>& fd_hold) {
  if (upath.ends_with("/index.html")) return redirect("./", query);
  std::string name = clean_url_path(upath);
  std::string full = s.opts.directory + name;
  int fd = ::open(full.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ENOTDIR) return error_response(404, "404 page not found");
    if (errno == EACCES || errno == EPERM) return error_response(403, "403 Forbidden");
    return error_response(500, "500 Internal Server Error");
  }
  fd_hold = std::make_unique<FileHandle>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return error_response(500, "500 Internal Server Error");
  if (S_ISDIR(st.st_mode)) {
    if (!upath.ends_with('/')) return redirect(base_name(upath) + "/", query);
    return serve_dir_listing(fd, st);
  }
  if (upath.ends_with('/')) return redirect("../" + base_name(name), query);

  const std::time_t mtime = st.st_mtime;
  const bool get_or_head = req.method == "GET" || req.method == "HEAD";
  Response r;
  r.headers.emplace_back("Last-Modified", http_date(mtime));
  // Preconditions (no ETag here): If-Unmodified-Since, If-Modified-Since, If-Range.
  if (req.header("If-Match").empty()) {
    if (auto ius = req.header("If-Unmodified-Since"); !ius.empty())
      if (auto t = parse_http_date(ius); t && mtime > *t) {
        r.status = 412;
        return r;
      }
  }
  if (req.header("If-None-Match").empty() && get_or_head) {
    if (auto ims = req.header("If-Modified-Since"); !ims.empty())
      if (auto t = parse_http_date(ims); t && mtime <= *t) {
        r.status = 304;
        return r;
      }
  }
  std::string range = req.header("Range");
  if (!range.empty() && get_or_head) {
    if (auto ir = req.header("If-Range"); !ir.empty()) {
      bool keep = false;
      if (!ir.starts_with("\"") && !ir.starts_with("W/"))
        if (auto t = parse_http_date(ir); t && *t == mtime) keep = true;
      if (!keep) range.clear();
    }
  }
  std::string head(512, '\0');
  ssize_t n = ::pread(fd, head.data(), head.size(), 0);
  head.resize(n > 0 ? static_cast<size_t>(n) : 0);
  r.headers.emplace_back("Content-Type", content_type_for(name, head));
  const auto size = static_cast<uint64_t>(st.st_size);
  auto d = decide_range(range, size);
  if (d.kind == RangeDecision::Kind::unsatisfiable) {
    auto e = error_response(416, d.no_overlap ? "invalid range: failed to overlap" : "invalid range");
    if (d.no_overlap) e.headers.emplace_back("Content-Range", "bytes */" + std::to_string(size));
    return e;
  }
  r.headers.emplace_back("Accept-Ranges", "bytes");
  r.file_fd = fd;
  if (d.kind == RangeDecision::Kind::partial) {
    r.status = 206;
    r.file_off = d.first;
    r.file_len = d.length;
    r.headers.emplace_back("Content-Range", "bytes " + std::to_string(d.first) + "-" +
                                                std::to_string(d.first + d.length - 1) + "/" + std::to_string(size));
  } else {
    r.file_len = size;
  }
  return r;
}

Response handle(const ImageServer::State& s, const Request& req, std::unique_ptr<FileHandle>& fd_hold) {
  std::string target = req.target;
  if (target.starts_with("http://") || target.starts_with("https://")) {
    auto p = target.find('/', target.find("//") + 2);
    target = p == std::string::npos ? "/" : target.substr(p);
  }
  std::string query;
  if (auto q = target.find('?'); q != std::string::npos) {
    query = target.substr(q + 1);
    target.resize(q);
  }
  auto path = percent_decode(target);
  if (!path || !path->starts_with('/')) return error_response(400, "400 Bad Request");
  if (std::string clean = mux_clean(*path); clean != *path) {
    auto r = redirect(clean, query);
    if (req.method == "GET") {
      r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
      r.body = "<a href=\"" + html_escape(clean) + "\">Moved Permanently</a>.\n\n";
    }
    return r;
  }
  if (*path == "/info") {
    Response r;
    r.headers = {{"Content-Type", "application/json"}};
    r.body = server_info_json(s.opts.env);
    return r;
  }
  return serve_file(s, req, *path, query, fd_hold);
}

std::optional<Request> parse_request(std::string_view head) {
  Request r;
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return std::nullopt;
  r.method = line.substr(0, sp1);
  r.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.version = line.substr(sp2 + 1);
  if (r.method.empty() || r.target.empty() || !r.version.starts_with("HTTP/1.")) return std::nullopt;
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    auto e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view h = head.substr(pos, e - pos);
    pos = e + 2;
    if (h.empty()) break;
    auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    r.headers.emplace_back(std::string(h.substr(0, colon)), trim_ows(h.substr(colon + 1)));
  }
  return r;
}

// Reads until "\r\n\r\n" into buf. 1: a head is there; 0: clean close / idle shutdown / timeout
// before any byte; -1: error or too large (431 sent).
int read_head(ImageServer::State& s, int fd, std::string& buf) {
  auto deadline = Clock::now() + k_header_timeout;
  for (;;) {
    if (buf.find("\r\n\r\n") != std::string::npos) return 1;
    if (buf.size() > k_max_header_bytes) {
      write_response(fd, error_response(431, "431 Request Header Fields Too Large"), true);
      return -1;
    }
    if (buf.empty() && s.stop.load()) return 0;   // idle during shutdown
    if (Clock::now() >= deadline) return buf.empty() ? 0 : -1;
    pollfd p{fd, POLLIN, 0};
    int pr = ::poll(&p, 1, 100);
    if (pr < 0 && errno != EINTR) return -1;
    if (pr <= 0) continue;
    char tmp[8192];
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) return buf.empty() ? 0 : -1;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

void serve_connection(ImageServer::State& s, int fd) {
  std::string buf;
  for (;;) {
    int h = read_head(s, fd, buf);
    if (h <= 0) break;
    auto end = buf.find("\r\n\r\n");
    auto req = parse_request(std::string_view(buf).substr(0, end + 2));
    buf.erase(0, end + 4);
    if (!req) {
      write_response(fd, error_response(400, "400 Bad Request"), true);
      break;
    }
    bool close_after = req->version == "HTTP/1.0" ? !lower_eq(req->header("Connection"), "keep-alive")
                                                  : lower_eq(req->header("Connection"), "close");
    // A request body: discard Content-Length bytes; a chunked one ends the connection after the reply.
    if (!req->header("Transfer-Encoding").empty()) close_after = true;
    if (auto cl = req->header("Content-Length"); !cl.empty()) {
      int64_t want = 0;
      if (!parse_dec(cl, want) || want < 0) {
        write_response(fd, error_response(400, "400 Bad Request"), true);
        break;
      }
      while (static_cast<int64_t>(buf.size()) < want) {
        char tmp[8192];
        ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
        if (n <= 0) return;
        buf.append(tmp, static_cast<size_t>(n));
      }
      buf.erase(0, static_cast<size_t>(want));
    }
    std::unique_ptr<FileHandle> hold;
    Response r = handle(s, *req, hold);
    r.head_only = req->method == "HEAD";
    if (s.stop.load()) close_after = true;
    if (!write_response(fd, r, close_after) || close_after) break;
  }
}

}  // namespace

Result<std::unique_ptr<ImageServer>> ImageServer::start(const ImageServerOptions& opts) {
  auto s = std::make_shared<State>();
  s->opts = opts;
  std::string where = "127.0.0.1:" + std::to_string(opts.port);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_sys("listen tcp " + where + ": socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(opts.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return fail_sys("listen tcp " + where + ": bind");
  }
  if (::listen(fd, 128) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return fail_sys("listen tcp " + where + ": listen");
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  s->listen_fd = fd;
  s->port = ntohs(a.sin_port);
  s->acceptor = std::thread([s] {
    while (!s->stop.load()) {
      pollfd p{s->listen_fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(s->listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      {
        std::lock_guard lock(s->mutex);
        ++s->connections;
      }
      std::thread([s, c] {
        serve_connection(*s, c);
        ::close(c);
        std::lock_guard lock(s->mutex);
        --s->connections;
        s->cv.notify_all();
      }).detach();
    }
  });
  return std::unique_ptr<ImageServer>(new ImageServer(std::move(s)));
}

uint16_t ImageServer::port() const { return m_state->port; }

void ImageServer::shutdown() {
  if (m_state->stop.exchange(true)) return;
  if (m_state->acceptor.joinable()) m_state->acceptor.join();
  ::close(m_state->listen_fd);
  std::unique_lock lock(m_state->mutex);
  m_state->cv.wait(lock, [&] { return m_state->connections == 0; });
}

ImageServer::~ImageServer() { shutdown(); }

}  // namespace cdi::pod
