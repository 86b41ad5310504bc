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
#include "lib/source/http_util.hpp"

namespace cdi::source {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int k_max_redirects = 10;
constexpr size_t k_max_small_file = 1u << 20;   // password / header / PEM files

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};

void log(const HttpContext& ctx, const std::string& s) {
  if (ctx.log) ctx.log(s);
}

// Reads a small file whole. Errors: not_found / io via fail_sys, limit when larger than 1 MiB.
Result<std::string> read_small_file(const fs::path& p, std::string_view what) {
  std::error_code ec;
  auto st = fs::status(p, ec);
  if (ec || !fs::exists(st)) return fail(Errc::not_found, std::string(what) + " " + p.string() + ": No such file or directory");
  if (!fs::is_regular_file(st)) return fail(Errc::invalid_argument, std::string(what) + " " + p.string() + " is not a regular file");
  std::ifstream in(p, std::ios::binary);
  if (!in) return fail(Errc::io, std::string(what) + " " + p.string() + ": cannot open");
  std::string s;
  s.resize(k_max_small_file + 1);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  if (in.bad()) return fail(Errc::io, std::string(what) + " " + p.string() + ": read error");
  s.resize(static_cast<size_t>(in.gcount()));
  if (s.size() > k_max_small_file) return fail(Errc::limit, std::string(what) + " " + p.string() + " is larger than 1 MiB");
  return s;
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

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void global_init() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
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
  http::Origin m_origin0;
  std::string m_password;
  std::vector<std::string> m_public_headers;   // --header lines that may follow a redirect
  std::vector<std::string> m_secret_headers;   // --header-file lines and credential headers
  std::string m_ca_pem;                        // empty: libcurl's default store
  http::ProxyEnv m_proxy;                      // from the environment at open, or empty
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
  m_origin0 = CDI_TRY(http::origin_of(m_url0));
  if (!m_opts.username.empty() != m_opts.password_file.has_value())
    return std::unexpected(Error(Errc::invalid_argument, "a username and a password file go together")
                               .with_hint(" (--username, --password-file)"));
  if (m_opts.username.find(':') != std::string::npos)
    return std::unexpected(Error(Errc::invalid_argument, "the username must not contain ':'").with_hint(" (--username)"));
  if (m_opts.password_file) {
    m_password = trim_newline(CDI_TRY(http::flag_hint(read_small_file(*m_opts.password_file, "password file"), "--password-file")));
    if (m_password.find('\n') != std::string::npos)
      return std::unexpected(
          Error(Errc::invalid_argument, "password file " + m_opts.password_file->string() + " holds more than one line")
              .with_hint(" (--password-file)"));
  }
  for (const auto& h : m_opts.headers) {
    auto line = CDI_TRY(http::flag_hint(http::check_extra_header(h), "--header", "extra header"));
    auto name = line.substr(0, line.find(':'));
    std::string lname = name;
    std::ranges::transform(lname, lname.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool secret = lname == "authorization" || lname == "proxy-authorization" || lname == "cookie";
    (secret ? m_secret_headers : m_public_headers).push_back(std::move(line));
  }
  for (const auto& f : m_opts.header_files) {
    auto text = trim_newline(CDI_TRY(http::flag_hint(read_small_file(f, "header file"), "--header-file")));
    if (text.find('\n') != std::string::npos)
      return std::unexpected(Error(Errc::invalid_argument, "header file " + f.string() + " must hold exactly one header line")
                                 .with_hint(" (--header-file)"));
    m_secret_headers.push_back(CDI_TRY(http::flag_hint(http::check_extra_header(text), "--header-file", "header file " + f.string())));
  }
  if (m_opts.client_key && !m_opts.client_cert)
    return std::unexpected(Error(Errc::invalid_argument, "a client key needs a client certificate")
                               .with_hint(" (--client-key needs --client-cert)"));
  for (const auto& p : {m_opts.client_cert, m_opts.client_key})
    if (p) {
      bool cert = p == m_opts.client_cert;
      CDI_TRY(http::flag_hint(read_small_file(*p, cert ? "client certificate" : "client key"), cert ? "--client-cert" : "--client-key"));
    }
  if (m_opts.cert_dir && m_opts.cert_dir_certs_d && !m_opts.client_cert) {
    if (auto pair = CDI_TRY(certs_d_client_pair(*m_opts.cert_dir))) {
      m_opts.client_cert = pair->cert;
      m_opts.client_key = pair->key;
    }
  }
  if (m_opts.cert_dir && !m_opts.insecure_tls) {
    auto b = CDI_TRY(build_ca_bundle(*m_opts.cert_dir, m_opts.system_ca_bundle, m_opts.cert_dir_certs_d));
    for (const auto& w : b.warnings) log(m_ctx, "warning: " + w);
    log(m_ctx, "trusting " + std::to_string(b.dir_certificates) + " certificate(s) from " + m_opts.cert_dir->string() +
                   " in addition to the system store");
    m_ca_pem = std::move(b.pem);
  }
  if (m_opts.insecure_tls) log(m_ctx, "warning: TLS certificate verification is DISABLED (insecure TLS requested)");
  if (m_opts.proxy_from_env) {
    m_proxy = http::proxy_env_from([](const char* n) { return std::getenv(n); });
    for (const auto& [scheme, url] : {std::pair{"http", &m_proxy.http}, std::pair{"https", &m_proxy.https}})
      if (!url->empty()) log(m_ctx, std::string(scheme) + " requests go through proxy " + http::redact_url(*url));
    if (!m_proxy.no_proxy.empty()) log(m_ctx, "no proxy for: " + m_proxy.no_proxy);
  }

  global_init();
  m_curl.reset(curl_easy_init());
  if (!m_curl) return fail(Errc::internal, "curl_easy_init failed");
  CURL* c = m_curl.get();
  bool ok = true;
  auto set = [&](CURLoption opt, auto v) { ok = ok && curl_easy_setopt(c, opt, v) == CURLE_OK; };
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, m_errbuf);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);   // redirects are ours: credentials, downgrades, loops, pinning
  set(CURLOPT_USERAGENT, "cdi-import/" CDI_VERSION);
  set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  set(CURLOPT_SSL_VERIFYPEER, m_opts.insecure_tls ? 0L : 1L);
  set(CURLOPT_SSL_VERIFYHOST, m_opts.insecure_tls ? 0L : 2L);
  set(CURLOPT_PROXY_SSL_VERIFYPEER, m_opts.insecure_tls ? 0L : 1L);
  set(CURLOPT_PROXY_SSL_VERIFYHOST, m_opts.insecure_tls ? 0L : 2L);
  if (!m_ca_pem.empty()) {
    curl_blob blob{m_ca_pem.data(), m_ca_pem.size(), CURL_BLOB_NOCOPY};   // m_ca_pem outlives the handle's use
    set(CURLOPT_CAINFO_BLOB, &blob);
    set(CURLOPT_PROXY_CAINFO_BLOB, &blob);
  }
  if (m_opts.client_cert) {
    set(CURLOPT_SSLCERT, m_opts.client_cert->c_str());
    set(CURLOPT_SSLCERTTYPE, "PEM");
    set(CURLOPT_SSLKEY, (m_opts.client_key ? *m_opts.client_key : *m_opts.client_cert).c_str());
  }
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::chrono::milliseconds(m_opts.connect_timeout).count()));
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  set(CURLOPT_BUFFERSIZE, 256L * 1024);
  set(CURLOPT_HEADERFUNCTION, &HttpSource::header_cb);
  set(CURLOPT_HEADERDATA, this);
  set(CURLOPT_WRITEFUNCTION, &HttpSource::write_cb);
  set(CURLOPT_WRITEDATA, this);
  set(CURLOPT_XFERINFOFUNCTION, &HttpSource::xferinfo_cb);
  set(CURLOPT_XFERINFODATA, this);
  set(CURLOPT_NOPROGRESS, 0L);
  set(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
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
  CURL* c = m_curl.get();
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  // The proxy follows the request's scheme (a redirect may change it). "" = direct, env ignored.
  const std::string& proxy = http::proxy_for(m_proxy, req.url.rfind("https:", 0) == 0 ? "https" : "http");
  curl_easy_setopt(c, CURLOPT_PROXY, proxy.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, m_proxy.no_proxy.empty() ? nullptr : m_proxy.no_proxy.c_str());
  if (m_send_credentials && !m_opts.username.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, m_opts.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, m_password.c_str());
  } else {
    curl_easy_setopt(c, CURLOPT_USERNAME, nullptr);
    curl_easy_setopt(c, CURLOPT_PASSWORD, nullptr);
  }
  curl_slist* list = nullptr;
  auto add = [&](const std::string& h) {
    if (auto* l = curl_slist_append(list, h.c_str())) list = l;
  };
  for (const auto& h : m_public_headers) add(h);
  if (m_send_credentials)
    for (const auto& h : m_secret_headers) add(h);
  if (m_send_credentials && m_opts.auth_header) {
    auto line = CDI_TRY(m_opts.auth_header(m_refresh_auth));
    m_refresh_auth = false;
    if (!line.empty()) add(line);
  }
  if (send_range) {
    add("Range: bytes=" + std::to_string(m_delivered) + "-");
    if (m_validator) add("If-Range: " + *m_validator);
  }
  m_request_headers.reset(list);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
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
  if (st < 200 || st >= 300) return {};   // redirect or error: decided after the transfer
  const std::string where = " for " + http::redact_url(req.url);
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

bool tls_failure(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
         rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_CRL_BADFILE ||
         rc == CURLE_SSL_INVALIDCERTSTATUS;
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
        if (m_send_credentials && !(to == m_origin0)) {
          m_send_credentials = false;
          if (!m_opts.username.empty() || !m_secret_headers.empty())
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
        std::string msg = "HTTP " + std::to_string(st);
        if (auto r = http::reason_phrase(st); !r.empty()) msg += " " + std::string(r);
        msg += where;
        if (auto said = http::error_body_excerpt(req.error_body, st); !said.empty()) msg += " (server says: " + said + ")";
        if (!http::is_retryable_status(st)) {
          Errc code = (st == 404 || st == 410) ? Errc::not_found
                      : (st == 401 || st == 403 || st == 407) ? Errc::auth
                                                              : Errc::network;
          const auto& proxy = http::proxy_for(m_proxy, url.rfind("https:", 0) == 0 ? "https" : "http");
          if (!proxy.empty() && (st == 401 || st == 407))
            msg += " (through proxy " + http::redact_url(proxy) + "; proxy credentials go in its URL: http://user:password@host:port)";
          std::string hint;   // names CLI flags: Error::hint, rendered by cmd/ only
          if (!proxy.empty() && (st == 401 || st == 407)) {
          } else if (st == 401 && m_opts.username.empty() && !m_opts.auth_header) {
            msg += " (no credentials given)";
            hint = " (pass --username/--password-file)";
          } else if (st == 416) {
            msg += " (cannot resume at byte " + std::to_string(m_delivered) + ")";
          }
          return std::unexpected(Error(code, msg).with_hint(hint));
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
      if (const auto& proxy = http::proxy_for(m_proxy, url.rfind("https:", 0) == 0 ? "https" : "http"); !proxy.empty())
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
