// SPDX-License-Identifier: Apache-2.0
#include "lib/source/http_source.hpp"

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdlib>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "lib/io/push_pull_adapter.hpp"
#include "lib/io/random_access.hpp"
#include "lib/source/http_client.hpp"
#include "lib/source/http_util.hpp"

namespace cdi::source {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using http::CurlHandle;
using http::read_small_file;
using http::Slist;
using http::tls_failure;

namespace {

constexpr int k_max_redirects = 10;

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};

void log(const HttpContext& ctx, const std::string& s) {
  if (ctx.log) ctx.log(s);
}

// Every certificate in PEM text, re-encoded.
std::pair<std::string, size_t> pem_certificates(const std::string& text) {
  std::unique_ptr<BIO, BioDeleter> in(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
  std::unique_ptr<BIO, BioDeleter> out(BIO_new(BIO_s_mem()));
  size_t n = 0;
  if (!in || !out) return {"", 0};
  for (;;) {
    std::unique_ptr<X509, X509Deleter> x(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr));
    if (!x) break;
    if (PEM_write_bio_X509(out.get(), x.get()) == 1) ++n;
  }
  ERR_clear_error();
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  return {std::string(data ? data : "", len > 0 ? static_cast<size_t>(len) : 0), n};
}

// ---------------------------------------------------------------------------------------------
// The source: a transfer thread that runs libcurl, and read() that pulls from the adapter.

class HttpSource final : public io::Reader {
 public:
  HttpSource(std::string url, std::string scheme, HttpOptions opts, HttpContext ctx)
      : m_url0(std::move(url)), m_scheme(std::move(scheme)), m_opts(std::move(opts)), m_ctx(std::move(ctx)),
        m_pipe(m_opts.buffer_bytes) {}

  ~HttpSource() override {
    m_pipe.close();
    if (m_thread.joinable()) m_thread.join();
  }

  // Prepares everything that can fail before the first request (files, handle, options).
  Result<void> prepare();
  // Starts the transfer thread and waits for the first body byte or the end.
  Result<void> start();

  Result<size_t> read(std::span<std::byte> dst) override { return m_pipe.pull(dst, m_ctx.cancel); }

  io::ReaderInfo info() const override {
    io::ReaderInfo i{m_scheme, m_total, false, std::nullopt};
    i.range_url = m_range_url;
    i.validator = m_validator;
    i.pinned_url = m_pinned;
    return i;
  }

 private:
  // What one request/response turned out to be.
  struct Request {
    std::string url;
    long status = 0;
    http::Headers headers;
    bool headers_done = false;
    bool accept_body = false;               // a 2xx whose body we deliver
    std::optional<uint64_t> expected_end;   // absolute offset where this body ends
    uint64_t received = 0;
    std::optional<Error> fatal;             // set by a callback: stop, do not retry
    bool stalled = false;
    bool consumer_gone = false;
    Clock::time_point last_activity;
    std::string error_body;                 // the first bytes of an error reply, for the message
  };

  void run();
  Result<void> transfer();
  void end(Result<void> r);
  void signal_ready();
  Result<void> configure_request(Request& req, bool send_range);
  Result<void> on_headers_done(Request& req);
  size_t on_body(Request& req, const char* p, size_t n);
  Result<void> wait_backoff(std::chrono::milliseconds d);

  static size_t header_cb(char* p, size_t size, size_t n, void* self);
  static size_t write_cb(char* p, size_t size, size_t n, void* self);
  static int xferinfo_cb(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t);

  // fixed
  std::string m_url0;
  std::string m_scheme;
  HttpOptions m_opts;
  HttpContext m_ctx;
  http::ClientConfig m_cfg;                    // checked options, files read, CA bundle, proxies
  CurlHandle m_curl;
  Slist m_request_headers;                     // the current request's header list
  char m_errbuf[CURL_ERROR_SIZE] = {};

  // transfer thread state
  io::PushPullAdapter m_pipe;
  std::thread m_thread;
  Request* m_req = nullptr;
  std::optional<std::string> m_pinned;     // effective URL of the first good response
  bool m_send_credentials = true;
  bool m_refresh_auth = false;             // the next auth_header call renews the token
  uint64_t m_delivered = 0;                // bytes pushed to the reader
  std::optional<std::string> m_validator;  // If-Range value
  std::optional<std::string> m_etag0;
  bool m_html_suspect = false;
  bool m_first_ok = false;

  // set once before start() returns (then read-only): visible to info()
  std::optional<uint64_t> m_total;
  std::optional<std::string> m_range_url;   // pinned URL when the server serves byte ranges

  // open handshake
  std::mutex m_ready_mutex;
  std::condition_variable m_ready_cv;
  bool m_ready = false;
  std::optional<Error> m_open_error;
};

Result<void> HttpSource::prepare() {
  m_cfg = CDI_TRY(http::prepare_client(m_url0, m_opts, m_ctx.log));
  m_opts = m_cfg.opts;
  m_curl = CDI_TRY(http::new_handle(m_cfg, m_errbuf));
  CURL* c = m_curl.get();
  bool ok = true;
  auto set = [&](CURLoption opt, auto v) { ok = ok && curl_easy_setopt(c, opt, v) == CURLE_OK; };
  set(CURLOPT_HEADERFUNCTION, &HttpSource::header_cb);
  set(CURLOPT_HEADERDATA, this);
  set(CURLOPT_WRITEFUNCTION, &HttpSource::write_cb);
  set(CURLOPT_WRITEDATA, this);
  set(CURLOPT_XFERINFOFUNCTION, &HttpSource::xferinfo_cb);
  set(CURLOPT_XFERINFODATA, this);
  if (!ok) return fail(Errc::internal, "libcurl rejected an option (libcurl too old?)");
  return {};
}

Result<void> HttpSource::start() {
  m_thread = std::thread([this] { run(); });
  std::unique_lock lock(m_ready_mutex);
  while (!m_ready && !m_open_error) {
    if (m_ctx.cancel && m_ctx.cancel->cancelled()) return fail(Errc::cancelled, "cancelled by signal");
    m_ready_cv.wait_for(lock, std::chrono::milliseconds(100));
  }
  if (m_open_error) return std::unexpected(*m_open_error);
  return {};
}

void HttpSource::signal_ready() {
  std::lock_guard lock(m_ready_mutex);
  m_ready = true;
  m_ready_cv.notify_all();
}

void HttpSource::end(Result<void> r) {
  {
    std::lock_guard lock(m_ready_mutex);
    if (!m_ready) {
      if (r) m_ready = true;
      else m_open_error = r.error();
    }
    m_ready_cv.notify_all();
  }
  m_pipe.finish(std::move(r));
}

void HttpSource::run() { end(transfer()); }

Result<void> HttpSource::configure_request(Request& req, bool send_range) {
  std::vector<std::string> extra;
  if (send_range) {
    extra.push_back("Range: bytes=" + std::to_string(m_delivered) + "-");
    if (m_validator) extra.push_back("If-Range: " + *m_validator);
  }
  if (m_opts.if_match && !m_opts.if_match->empty()) {
    const std::string& v = *m_opts.if_match;
    extra.push_back((v.front() == '"' ? "If-Match: " : "If-Unmodified-Since: ") + v);
  }
  m_request_headers = CDI_TRY(http::set_request(m_curl.get(), m_cfg, req.url, m_send_credentials, m_refresh_auth, extra));
  m_refresh_auth = false;
  return {};
}

size_t HttpSource::header_cb(char* p, size_t size, size_t n, void* self_) {
  auto* self = static_cast<HttpSource*>(self_);
  Request& req = *self->m_req;
  size_t len = size * n;
  req.last_activity = Clock::now();
  std::string_view line(p, len);
  if (line.starts_with("HTTP/")) {   // a new response (1xx first, then the final one)
    req.headers.clear();
    req.headers_done = false;
    auto sp = line.find(' ');
    req.status = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    return len;
  }
  if (line == "\r\n" || line == "\n") {
    if (req.status >= 100 && req.status < 200) return len;
    req.headers_done = true;
    auto r = self->on_headers_done(req);
    if (!r) {
      req.fatal = r.error();
      return 0;
    }
    return len;
  }
  if (auto h = http::split_header(line)) req.headers.add(std::move(h->first), std::move(h->second));
  return len;
}

Result<void> HttpSource::on_headers_done(Request& req) {
  long st = req.status;
  const std::string where = " for " + http::redact_url(req.url);
  if (st == 412 && m_opts.if_match)
    return std::unexpected(io::changed_between_reads("HTTP 412: the validator " + *m_opts.if_match + " of the first read no longer holds" + where));
  if (st < 200 || st >= 300) return {};   // redirect or error: decided after the transfer
  if (st == 206) {
    auto cr_text = req.headers.get("Content-Range");
    auto cr = cr_text ? http::parse_content_range(*cr_text) : std::nullopt;
    if (!cr) return fail(Errc::network, "HTTP 206 reply without a valid Content-Range" + where);
    if (cr->first != m_delivered)
      return fail(Errc::network, "server resumed at byte " + std::to_string(cr->first) + " instead of " +
                                     std::to_string(m_delivered) + where);
    if (m_total && cr->total && *cr->total != *m_total)
      return fail(Errc::network, "the file changed on the server: its size went from " + std::to_string(*m_total) +
                                     " to " + std::to_string(*cr->total) + " bytes" + where);
    if (!m_first_ok) m_total = cr->total;
    req.expected_end = cr->last + 1;
  } else if (st == 200) {
    if (m_delivered > 0) {
      auto etag = req.headers.get("ETag");
      if (m_etag0 && etag && *etag != *m_etag0)
        return fail(Errc::network, "the file changed on the server (ETag " + *m_etag0 + " -> " + *etag +
                                       ") after " + std::to_string(m_delivered) + " bytes; cannot resume" + where);
      return fail(Errc::network, "server does not support Range requests (HTTP 200 to a resume at byte " +
                                     std::to_string(m_delivered) + "); cannot resume the interrupted download" + where);
    }
    auto cl = req.headers.get("Content-Length");
    if (cl) {
      auto v = http::parse_content_length(*cl);
      if (!v) return fail(Errc::network, "invalid Content-Length" + where);
      req.expected_end = *v;
      if (m_first_ok && m_total && *v != *m_total)
        return fail(Errc::network, "the file changed on the server: its size went from " + std::to_string(*m_total) +
                                       " to " + std::to_string(*v) + " bytes" + where);
      m_total = *v;
    } else if (!req.headers.get("Transfer-Encoding")) {
      log(m_ctx, "warning: no Content-Length and no chunked encoding: a truncated body can only be detected by the image format");
    }
  } else {
    return fail(Errc::network, "unexpected HTTP " + std::to_string(st) + where);
  }
  if (!m_first_ok) {
    m_first_ok = true;
    m_pinned = req.url;
    m_validator = http::if_range_validator(req.headers);
    if (m_opts.if_match && m_validator != m_opts.if_match)
      return std::unexpected(io::changed_between_reads("validator " + *m_opts.if_match + " -> " + m_validator.value_or("none") + where));
    m_etag0 = req.headers.get("ETag");
    auto ct = req.headers.get("Content-Type");
    m_html_suspect = ct && http::is_html_content_type(*ct);
    if (req.url != m_url0) log(m_ctx, "pinned effective URL " + http::redact_url(req.url));
    if (!m_validator) log(m_ctx, "server sent neither ETag nor Last-Modified: a resume cannot be validated");
    auto ranges = req.headers.get("Accept-Ranges");
    if (m_total && ranges && ranges->find("bytes") != std::string::npos) m_range_url = req.url;
  }
  req.accept_body = true;
  return {};
}

size_t HttpSource::write_cb(char* p, size_t size, size_t n, void* self_) {
  auto* self = static_cast<HttpSource*>(self_);
  return self->on_body(*self->m_req, p, size * n);
}

size_t HttpSource::on_body(Request& req, const char* p, size_t n) {
  req.last_activity = Clock::now();
  if (!req.accept_body) {   // body of an error or redirect reply: dropped, the start kept for the message
    if (req.status >= 400 && req.error_body.size() < 2048)
      req.error_body.append(p, std::min(n, 2048 - req.error_body.size()));
    return n;
  }
  if (m_html_suspect && m_delivered == 0) {
    m_html_suspect = false;
    if (m_opts.reject_html && http::looks_like_html(std::string_view(p, std::min<size_t>(n, 512)))) {
      req.fatal = Error(Errc::corrupt_input, "server returned an HTML page (likely an error page) for " +
                                                 http::redact_url(req.url) + ", not a disk image");
      return 0;
    }
    log(m_ctx, "warning: Content-Type is text/html but the body is not markup; importing it");
  }
  if (m_delivered == 0) signal_ready();
  if (!m_pipe.push(std::span(reinterpret_cast<const std::byte*>(p), n))) {
    req.consumer_gone = true;
    return 0;
  }
  m_delivered += n;
  req.received += n;
  req.last_activity = Clock::now();
  return n;
}

int HttpSource::xferinfo_cb(void* self_, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* self = static_cast<HttpSource*>(self_);
  Request& req = *self->m_req;
  if (self->m_ctx.cancel && self->m_ctx.cancel->cancelled()) return 1;
  if (self->m_pipe.consumer_closed()) {
    req.consumer_gone = true;
    return 1;
  }
  if (Clock::now() - req.last_activity > self->m_opts.stall_timeout) {
    req.stalled = true;
    return 1;
  }
  return 0;
}

Result<void> HttpSource::wait_backoff(std::chrono::milliseconds d) {
  auto until = Clock::now() + d;
  while (Clock::now() < until) {
    if (m_ctx.cancel) CDI_TRY(m_ctx.cancel->check());
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (!m_pipe.sleep_unless_closed(std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(100))))
      return fail(Errc::cancelled, "reader closed");
  }
  return {};
}

Result<void> HttpSource::transfer() {
  unsigned failures = 0;                      // failed attempts in a row without a new byte
  auto last_progress = Clock::now();
  for (;;) {
    std::string url = m_pinned.value_or(m_url0);   // retries never bounce between mirrors
    std::vector<std::string> chain{http::redact_url(url)};
    std::set<std::string> seen{url};
    std::string reason;                       // why this attempt is retried
    std::optional<std::chrono::seconds> retry_after;
    uint64_t delivered_before = m_delivered;
    int renewals = 0;                         // auth_header renewals in this attempt (at most 2)
    for (int hop = 0;; ++hop) {               // one request per redirect hop
      Request req;
      req.url = url;
      req.last_activity = Clock::now();
      m_req = &req;
      bool send_range = m_delivered > 0;
      CDI_TRY(configure_request(req, send_range));
      log(m_ctx, "GET " + http::redact_url(url) + (send_range ? " (resuming at byte " + std::to_string(m_delivered) + ")" : ""));
      m_errbuf[0] = '\0';
      CURLcode rc = curl_easy_perform(m_curl.get());
      m_req = nullptr;
      if (req.consumer_gone || m_pipe.consumer_closed()) return fail(Errc::cancelled, "reader closed");
      if (m_ctx.cancel) CDI_TRY(m_ctx.cancel->check());
      if (req.fatal) return std::unexpected(*req.fatal);
      const std::string where = " for " + http::redact_url(url);
      long st = req.status;
      if (req.stalled) {
        reason = "no data for " + std::to_string(m_opts.stall_timeout.count()) + " s (stalled)";
        break;
      }
      if (rc == CURLE_OK && req.headers_done && (st == 301 || st == 302 || st == 303 || st == 307 || st == 308)) {
        auto loc = req.headers.get("Location");
        if (!loc) return fail(Errc::network, "HTTP " + std::to_string(st) + " redirect without a Location" + where);
        auto next = CDI_TRY(http::resolve_location(url, *loc));
        chain.push_back(http::redact_url(next));
        auto join = [&] {
          std::string s;
          for (const auto& u : chain) s += (s.empty() ? "" : " -> ") + u;
          return s;
        };
        if (seen.contains(next)) return fail(Errc::network, "redirect loop: " + join());
        if (hop + 1 >= k_max_redirects)
          return fail(Errc::network, "too many redirects (more than " + std::to_string(k_max_redirects) + "): " + join());
        auto from = CDI_TRY(http::origin_of(url));
        auto to = CDI_TRY(http::origin_of(next));
        if (from.scheme == "https" && to.scheme == "http")
          return fail(Errc::network, "refusing a redirect from https to plain http: " + join());
        if (m_send_credentials && !(to == m_cfg.origin0)) {
          m_send_credentials = false;
          if (!m_opts.username.empty() || !m_cfg.secret_headers.empty())
            log(m_ctx, "redirect to another origin (" + to.scheme + "://" + to.host + ":" + std::to_string(to.port) +
                           "): credentials and secret headers are not sent there");
        }
        log(m_ctx, "HTTP " + std::to_string(st) + " redirect to " + http::redact_url(next));
        seen.insert(next);
        url = std::move(next);
        continue;
      }
      if (rc == CURLE_OK && req.headers_done && st == 401 && m_opts.auth_header && m_send_credentials && renewals < 2) {
        // An expired token mid-pull: renew it and repeat the request (resuming where it stopped).
        // Twice at most: token expiry has one-second granularity, so a token renewed just before a
        // second boundary can already be stale when the request arrives.
        ++renewals;
        m_refresh_auth = true;
        log(m_ctx, "HTTP 401" + where + ": renewing the authorization token");
        continue;
      }
      if (rc == CURLE_OK && req.headers_done && st >= 400) {
        std::string msg = http::status_message(st, where, req.error_body);
        if (!http::is_retryable_status(st)) {
          if (st == 416) msg += " (cannot resume at byte " + std::to_string(m_delivered) + ")";
          return std::unexpected(http::status_error(m_cfg, st, url, std::move(msg)));
        }
        reason = msg;
        if (auto ra = req.headers.get("Retry-After")) retry_after = http::parse_retry_after(*ra, std::chrono::system_clock::now());
        break;
      }
      if (rc == CURLE_OK && req.accept_body) {
        if (req.expected_end && m_delivered < *req.expected_end) {
          reason = "connection closed after " + std::to_string(m_delivered) + " of " + std::to_string(*req.expected_end) + " bytes";
          break;
        }
        if (m_total && m_delivered != *m_total)
          return fail(Errc::network, "body ended at byte " + std::to_string(m_delivered) + " of " + std::to_string(*m_total) + where);
        return {};
      }
      if (rc == CURLE_OK)
        return fail(Errc::network, "unexpected HTTP " + std::to_string(st) + where);
      std::string detail = m_errbuf[0] ? std::string(m_errbuf) : std::string(curl_easy_strerror(rc));
      if (const auto& proxy = http::proxy_of(m_cfg, url); !proxy.empty())
        detail += " (through proxy " + http::redact_url(proxy) + ")";
      if (tls_failure(rc))
        return std::unexpected(Error(Errc::network, "TLS: " + detail + where)
                                   .with_hint(m_opts.insecure_tls ? "" : " (trust its CA with --cert-dir, or --insecure-tls)"));
      if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT || rc == CURLE_SSL_ENGINE_NOTFOUND ||
          rc == CURLE_SSL_CERTPROBLEM)
        return fail(Errc::invalid_argument, detail + where);
      reason = detail;
      if (req.expected_end && m_delivered < *req.expected_end)
        reason += " after " + std::to_string(m_delivered) + " of " + std::to_string(*req.expected_end) + " bytes";
      break;
    }
    // A retryable failure.
    if (m_delivered > delivered_before) {
      failures = 0;
      last_progress = Clock::now();
    }
    ++failures;
    if (failures > m_opts.retries)
      return fail(Errc::network, reason + " (gave up after " + std::to_string(failures) + " attempts without progress)");
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(m_opts.backoff_initial * (1u << std::min(failures - 1, 16u)));
    delay = std::min(delay, m_opts.backoff_max);
    if (retry_after) delay = *retry_after;
    auto spent = Clock::now() - last_progress;
    if (spent + delay > m_opts.retry_max_time)
      return std::unexpected(Error(Errc::network, reason + " (gave up: retrying would exceed the retry time limit of " +
                                                      std::to_string(m_opts.retry_max_time.count()) + " s)")
                                 .with_hint(" (--retry-max-time)"));
    log(m_ctx, reason + "; retrying in " + std::to_string(delay.count()) + " ms (attempt " + std::to_string(failures + 1) +
                   " of " + std::to_string(m_opts.retries + 1) +
                   (m_delivered ? ", resuming at byte " + std::to_string(m_delivered) : std::string()) + ")");
    CDI_TRY(wait_backoff(delay));
  }
}

// An error about the CA certificate directory; the CLI names its flag in the hint.
std::unexpected<Error> cert_dir_error(Errc code, std::string what) {
  return std::unexpected(Error(code, "certificate directory " + what).with_hint(" (--cert-dir)"));
}

}  // namespace

Result<std::optional<ClientPair>> certs_d_client_pair(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> certs;
  fs::directory_iterator it(dir, ec);
  if (ec) return cert_dir_error(Errc::io, dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return cert_dir_error(Errc::io, dir.string() + ": " + ec.message());
    if (it->path().extension() == ".cert" && !it->path().filename().string().starts_with(".")) certs.push_back(it->path());
  }
  std::ranges::sort(certs);
  for (const auto& c : certs) {
    auto key = fs::path(c).replace_extension(".key");
    if (!fs::exists(key, ec))
      return cert_dir_error(Errc::invalid_argument, dir.string() + ": client certificate " + c.filename().string() +
                                                        " has no " + key.filename().string());
    return std::optional<ClientPair>(ClientPair{c, key});
  }
  return std::optional<ClientPair>();
}

Result<CaBundle> build_ca_bundle(const fs::path& cert_dir, const fs::path& system_bundle, bool certs_d) {
  CaBundle b;
  std::error_code ec;
  auto st = fs::status(cert_dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    return cert_dir_error(Errc::io, cert_dir.string() + ": " + ec.message());
  if (!fs::exists(st)) return cert_dir_error(Errc::not_found, cert_dir.string() + ": No such file or directory");
  if (!fs::is_directory(st)) return cert_dir_error(Errc::invalid_argument, cert_dir.string() + " is not a directory");
  std::vector<fs::path> files;
  fs::directory_iterator it(cert_dir, ec);
  if (ec) return cert_dir_error(Errc::io, cert_dir.string() + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return cert_dir_error(Errc::io, cert_dir.string() + ": " + ec.message());
    auto name = it->path().filename().string();
    if (name.starts_with(".")) continue;   // Kubernetes ConfigMap mounts keep ..data and friends here
    if (certs_d && !name.ends_with(".crt") && !name.ends_with(".pem")) continue;   // *.cert/*.key: client pairs
    std::error_code e2;
    if (!fs::is_regular_file(it->path(), e2)) continue;   // follows symlinks, as ConfigMap mounts use them
    files.push_back(it->path());
  }
  std::ranges::sort(files);
  if (auto sys = read_small_file(system_bundle, "system CA bundle"); sys) {
    b.pem = std::move(*sys);
    if (!b.pem.empty() && b.pem.back() != '\n') b.pem += '\n';
  } else {
    b.warnings.push_back("system CA bundle " + system_bundle.string() + " not readable; trusting only the certificate directory");
  }
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) return cert_dir_error(Errc::io, "cannot read " + f.string());
    std::stringstream ss;
    ss << in.rdbuf();
    auto [pem, n] = pem_certificates(ss.str());
    if (n == 0) {
      b.warnings.push_back("certificate directory: " + f.filename().string() + " holds no PEM certificate; ignored");
      continue;
    }
    b.pem += pem;
    b.dir_certificates += n;
  }
  if (files.empty()) b.warnings.push_back("certificate directory " + cert_dir.string() + " holds no certificate files");
  return b;
}

Result<std::unique_ptr<io::Reader>> open_http_source(std::string_view url, const HttpOptions& opts,
                                                     const HttpContext& ctx) {
  auto origin = CDI_TRY(http::origin_of(url));
  auto src = std::make_unique<HttpSource>(std::string(url), origin.scheme, opts, ctx);
  CDI_TRY(src->prepare());
  CDI_TRY(src->start());
  return std::unique_ptr<io::Reader>(std::move(src));
}

}  // namespace cdi::source
