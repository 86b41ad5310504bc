// SPDX-License-Identifier: Apache-2.0
#include "lib/source/http_random_access.hpp"

#include <algorithm>
#include <cstring>
#include <thread>

#include "lib/source/http_client.hpp"
#include "lib/source/http_util.hpp"

namespace cdi::source {
using Clock = std::chrono::steady_clock;

namespace {
constexpr size_t k_max_plan = 4096;   // hinted spans remembered at most
}  // namespace

struct HttpRandomAccess::Impl {
  http::ClientConfig cfg;
  HttpContext ctx;
  http::CurlHandle curl;
  char errbuf[CURL_ERROR_SIZE] = {};
  bool send_credentials = true;
  bool refresh_auth = false;
  std::optional<std::string> etag;        // strong ETag of the pinned version
  std::string condition;                  // "If-Match: …" / "If-Unmodified-Since: …"
  std::optional<uint64_t> size;           // total length, known after the first reply
  uint64_t* requests = nullptr;
  uint64_t* connections = nullptr;

  // One request for bytes [first, last] into dst (dst[0] is byte `first`).
  struct Attempt {
    uint64_t first = 0, last = 0;
    std::byte* dst = nullptr;
    uint64_t capacity = 0;                // bytes dst can take
    uint64_t got = 0;
    uint64_t expected = 0;                // body length the reply announced
    long status = 0;
    http::Headers headers;
    bool headers_done = false;
    bool accept_body = false;
    bool opening = false;
    bool stalled = false;
    std::optional<Error> fatal;
    Clock::time_point last_activity;
    std::string error_body;
  };
  Attempt* cur = nullptr;

  void log(const std::string& s) const {
    if (ctx.log) ctx.log(s);
  }

  std::string where(const std::string& url) const { return " for " + http::redact_url(url); }

  Error changed(const std::string& what, const std::string& url) const {
    return Error(Errc::corrupt_input, "the resource changed while it was read (" + what + ")" + where(url));
  }

  Result<void> on_headers(Attempt& a, const std::string& url) {
    long st = a.status;
    if (st == 200) {
      if (a.opening)
        return fail(Errc::unsupported, "the server does not serve byte ranges (HTTP 200 to a Range request)" + where(url));
      return std::unexpected(changed("HTTP 200 with the whole resource instead of bytes " + std::to_string(a.first) + "-" +
                                         std::to_string(a.last),
                                     url));
    }
    if (st != 206) return {};   // error, redirect: decided after the transfer
    auto cr_text = a.headers.get("Content-Range");
    auto cr = cr_text ? http::parse_content_range(*cr_text) : std::nullopt;
    if (!cr || !cr->total) return fail(Errc::network, "HTTP 206 reply without a valid Content-Range" + where(url));
    auto etag = a.headers.get("ETag");
    if (a.opening) {
      size = *cr->total;
      if (etag && !etag->starts_with("W/")) {
        this->etag = *etag;
        condition = "If-Match: " + *etag;
      } else if (auto lm = a.headers.get("Last-Modified")) {
        condition = "If-Unmodified-Since: " + *lm;
      } else {
        return fail(Errc::unsupported, "the server sends neither a strong ETag nor Last-Modified: reads by range cannot be "
                                       "checked against one version" + where(url));
      }
      uint64_t last = std::min(a.last, *size - 1);
      if (cr->first != a.first || cr->last != last)
        return fail(Errc::network, "the server sent bytes " + std::to_string(cr->first) + "-" + std::to_string(cr->last) +
                                       " instead of " + std::to_string(a.first) + "-" + std::to_string(last) + where(url));
      a.last = last;
    } else {
      if (*cr->total != *size)
        return std::unexpected(changed("its length went from " + std::to_string(*size) + " to " +
                                           std::to_string(*cr->total) + " bytes", url));
      if (this->etag && etag && *etag != *this->etag)
        return std::unexpected(changed("ETag " + *this->etag + " -> " + *etag, url));
      if (cr->first != a.first + a.got || cr->last != a.last)
        return std::unexpected(changed("asked for bytes " + std::to_string(a.first + a.got) + "-" + std::to_string(a.last) +
                                           ", got " + std::to_string(cr->first) + "-" + std::to_string(cr->last),
                                       url));
    }
    a.expected = cr->last - cr->first + 1;
    a.accept_body = true;
    return {};
  }

  static size_t header_cb(char* p, size_t size, size_t n, void* self_) {
    auto* self = static_cast<Impl*>(self_);
    Attempt& a = *self->cur;
    size_t len = size * n;
    a.last_activity = Clock::now();
    std::string_view line(p, len);
    if (line.starts_with("HTTP/")) {
      a.headers.clear();
      a.headers_done = false;
      auto sp = line.find(' ');
      a.status = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
      return len;
    }
    if (line == "\r\n" || line == "\n") {
      if (a.status >= 100 && a.status < 200) return len;
      a.headers_done = true;
      char* url = nullptr;
      curl_easy_getinfo(self->curl.get(), CURLINFO_EFFECTIVE_URL, &url);
      if (auto r = self->on_headers(a, url ? url : ""); !r) {
        a.fatal = r.error();
        return 0;
      }
      return len;
    }
    if (auto h = http::split_header(line)) a.headers.add(std::move(h->first), std::move(h->second));
    return len;
  }

  static size_t write_cb(char* p, size_t size, size_t n, void* self_) {
    auto* self = static_cast<Impl*>(self_);
    Attempt& a = *self->cur;
    size_t len = size * n;
    a.last_activity = Clock::now();
    if (!a.accept_body) {
      if (a.status >= 400 && a.error_body.size() < 2048) a.error_body.append(p, std::min(len, 2048 - a.error_body.size()));
      return len;
    }
    uint64_t room = a.last - a.first + 1 - a.got;
    if (len > room || a.got + len > a.capacity) {
      a.fatal = Error(Errc::network, "the server sent more bytes than the range it announced");
      return 0;
    }
    std::memcpy(a.dst + a.got, p, len);
    a.got += len;
    return len;
  }

  static int xferinfo_cb(void* self_, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* self = static_cast<Impl*>(self_);
    Attempt& a = *self->cur;
    if (self->ctx.cancel && self->ctx.cancel->cancelled()) return 1;
    if (Clock::now() - a.last_activity > self->cfg.opts.stall_timeout) {
      a.stalled = true;
      return 1;
    }
    return 0;
  }

  Result<void> wait_backoff(std::chrono::milliseconds d) {
    auto until = Clock::now() + d;
    while (Clock::now() < until) {
      if (ctx.cancel) CDI_TRY(ctx.cancel->check());
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      std::this_thread::sleep_for(std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(100)));
    }
    return {};
  }

  // Bytes [first, last] of `url` into dst (capacity bytes), resuming after drops. Returns the
  // count (less than asked only at open, when the resource is shorter).
  Result<uint64_t> get(const std::string& url, uint64_t first, uint64_t last, std::byte* dst, uint64_t capacity,
                       bool opening) {
    const HttpOptions& o = cfg.opts;
    unsigned failures = 0;
    auto last_progress = Clock::now();
    uint64_t got = 0;
    int renewals = 0;
    for (;;) {
      Attempt a;
      a.first = first;
      a.last = last;
      a.dst = dst;
      a.capacity = capacity;
      a.got = got;
      a.opening = opening && got == 0;
      a.last_activity = Clock::now();
      std::vector<std::string> extra{"Range: bytes=" + std::to_string(first + got) + "-" + std::to_string(last)};
      if (!condition.empty()) extra.push_back(condition);
      auto headers = CDI_TRY(http::set_request(curl.get(), cfg, url, send_credentials, refresh_auth, extra));
      refresh_auth = false;
      cur = &a;
      errbuf[0] = '\0';
      ++*requests;
      CURLcode rc = curl_easy_perform(curl.get());
      cur = nullptr;
      long connects = 0;
      if (curl_easy_getinfo(curl.get(), CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
        *connections += static_cast<uint64_t>(connects);
      if (ctx.cancel) CDI_TRY(ctx.cancel->check());
      if (a.fatal) return std::unexpected(*a.fatal);
      const std::string w = where(url);
      long st = a.status;
      std::string reason;
      std::optional<std::chrono::seconds> retry_after;
      if (a.got > got) {
        got = a.got;
        failures = 0;
        last_progress = Clock::now();
      }
      last = a.last;   // at open: clipped to the length
      if (a.stalled) {
        reason = "no data for " + std::to_string(o.stall_timeout.count()) + " s (stalled)";
      } else if (rc == CURLE_OK && a.headers_done && st == 416 && !opening) {
        return std::unexpected(changed("HTTP 416: bytes " + std::to_string(first + got) + "-" + std::to_string(last) +
                                           " are no longer there",
                                       url));
      } else if (rc == CURLE_OK && a.headers_done && st == 412) {
        return std::unexpected(changed("HTTP 412: " + condition + " no longer holds", url));
      } else if (rc == CURLE_OK && a.headers_done && st >= 300 && st < 400) {
        return fail(Errc::network, "unexpected HTTP " + std::to_string(st) + " redirect from the pinned URL" + w);
      } else if (rc == CURLE_OK && a.headers_done && st == 401 && o.auth_header && send_credentials && renewals < 2) {
        ++renewals;
        refresh_auth = true;
        log("HTTP 401" + w + ": renewing the authorization token");
        continue;
      } else if (rc == CURLE_OK && a.headers_done && st >= 400) {
        std::string msg = http::status_message(st, w, a.error_body);
        if (!http::is_retryable_status(st)) return std::unexpected(http::status_error(cfg, st, url, std::move(msg)));
        reason = msg;
        if (auto ra = a.headers.get("Retry-After")) retry_after = http::parse_retry_after(*ra, std::chrono::system_clock::now());
      } else if (rc == CURLE_OK && a.accept_body) {
        if (got == last - first + 1) return got;
        reason = "connection closed after " + std::to_string(first + got) + " of bytes " + std::to_string(first) + "-" +
                 std::to_string(last);
      } else if (rc == CURLE_OK) {
        return fail(Errc::network, "unexpected HTTP " + std::to_string(st) + w);
      } else {
        std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
        if (const auto& proxy = http::proxy_of(cfg, url); !proxy.empty()) detail += " (through proxy " + http::redact_url(proxy) + ")";
        if (http::tls_failure(rc))
          return std::unexpected(Error(Errc::network, "TLS: " + detail + w)
                                     .with_hint(o.insecure_tls ? "" : " (trust its CA with --cert-dir, or --insecure-tls)"));
        if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT || rc == CURLE_SSL_ENGINE_NOTFOUND)
          return fail(Errc::invalid_argument, detail + w);
        reason = detail;
      }
      // A retryable failure: resume at first + got.
      ++failures;
      if (failures > o.retries)
        return fail(Errc::network, reason + " (gave up after " + std::to_string(failures) + " attempts without progress)");
      auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(o.backoff_initial * (1u << std::min(failures - 1, 16u)));
      delay = std::min(delay, o.backoff_max);
      if (retry_after) delay = *retry_after;
      if (Clock::now() - last_progress + delay > o.retry_max_time)
        return std::unexpected(Error(Errc::network, reason + " (gave up: retrying would exceed the retry time limit of " +
                                                        std::to_string(o.retry_max_time.count()) + " s)")
                                   .with_hint(" (--retry-max-time)"));
      log(reason + "; retrying in " + std::to_string(delay.count()) + " ms (attempt " + std::to_string(failures + 1) + " of " +
          std::to_string(o.retries + 1) + ", resuming at byte " + std::to_string(first + got) + ")");
      CDI_TRY(wait_backoff(delay));
    }
  }
};

HttpRandomAccess::~HttpRandomAccess() = default;

Result<std::unique_ptr<HttpRandomAccess>> HttpRandomAccess::open(std::string url, const HttpOptions& opts,
                                                                 const HttpContext& ctx, HttpRandomAccessOptions ra) {
  ra.max_request = std::clamp<size_t>(ra.max_request, 4096, std::max<size_t>(ra.cache_bytes, 4096));
  ra.min_read = std::clamp<size_t>(ra.min_read, 1, ra.max_request);
  std::unique_ptr<HttpRandomAccess> self(new HttpRandomAccess());
  self->m_ra = ra;
  self->m_url = url;
  self->m_impl = std::make_unique<Impl>();
  Impl& im = *self->m_impl;
  const std::string& cred_url = ra.credentials_url.empty() ? url : ra.credentials_url;
  im.cfg = CDI_TRY(http::prepare_client(cred_url, opts, ctx.log));
  auto origin = CDI_TRY(http::origin_of(url));
  im.send_credentials = origin == im.cfg.origin0;
  im.ctx = ctx;
  im.requests = &self->m_requests;
  im.connections = &self->m_connections;
  im.curl = CDI_TRY(http::new_handle(im.cfg, im.errbuf));
  CURL* c = im.curl.get();
  bool ok = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &Impl::header_cb) == CURLE_OK &&
            curl_easy_setopt(c, CURLOPT_HEADERDATA, &im) == CURLE_OK &&
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Impl::write_cb) == CURLE_OK &&
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &im) == CURLE_OK &&
            curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Impl::xferinfo_cb) == CURLE_OK &&
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, &im) == CURLE_OK;
  if (!ok) return fail(Errc::internal, "libcurl rejected an option (libcurl too old?)");

  if (ra.expected_validator && !ra.expected_validator->empty()) {
    const std::string& v = *ra.expected_validator;
    if (v.front() == '"') {
      im.condition = "If-Match: " + v;
      if (!ra.expected_etag) self->m_ra.expected_etag = ra.expected_etag = v;
    } else {
      im.condition = "If-Unmodified-Since: " + v;
    }
  }
  Segment first;
  first.bytes.resize(ra.min_read);
  uint64_t n = CDI_TRY(im.get(url, 0, ra.min_read - 1, first.bytes.data(), first.bytes.size(), true));
  first.bytes.resize(n);
  self->m_size = *im.size;
  if (ra.expected_etag && im.etag != ra.expected_etag)
    return fail(Errc::corrupt_input, "the resource changed (ETag " + *ra.expected_etag + " -> " + im.etag.value_or("none") +
                                         ") for " + http::redact_url(url));
  if (ra.expected_size && *ra.expected_size != self->m_size)
    return fail(Errc::corrupt_input, "the resource changed (its length went from " + std::to_string(*ra.expected_size) +
                                         " to " + std::to_string(self->m_size) + " bytes) for " + http::redact_url(url));
  im.log("random access by byte ranges to " + http::redact_url(url) + " (" + std::to_string(self->m_size) +
         " bytes, pinned by " + im.condition.substr(0, im.condition.find(':')) + ")");
  self->m_cached = n;
  self->m_last_end = n;
  self->m_readahead = ra.min_read;
  self->m_cache.push_back(std::move(first));
  return self;
}

std::string HttpRandomAccess::name() const { return http::redact_url(m_url); }

const HttpRandomAccess::Segment* HttpRandomAccess::find(uint64_t offset) const {
  for (auto it = m_cache.rbegin(); it != m_cache.rend(); ++it)
    if (offset >= it->offset && offset - it->offset < it->bytes.size()) return &*it;
  return nullptr;
}

void HttpRandomAccess::will_need(std::span<const io::ByteRange> ranges) {
  for (const io::ByteRange& r : ranges) {
    if (r.length == 0 || r.offset >= m_size) continue;
    uint64_t end = std::min(m_size, r.offset + r.length);
    if (!m_plan.empty()) {
      io::ByteRange& b = m_plan.back();
      if (r.offset >= b.offset && r.offset <= b.offset + b.length + m_ra.coalesce_gap) {
        b.length = std::max(b.length, end - b.offset);
        continue;
      }
    }
    if (m_plan.size() >= k_max_plan) m_plan.pop_front();
    m_plan.push_back({r.offset, end - r.offset});
  }
}

Result<void> HttpRandomAccess::fetch(uint64_t offset, uint64_t length) {
  Segment s;
  s.offset = offset;
  s.bytes.resize(length);
  while (!m_cache.empty() && m_cached + length > m_ra.cache_bytes) {
    m_cached -= m_cache.front().bytes.size();
    m_cache.pop_front();
  }
  uint64_t n = CDI_TRY(m_impl->get(m_url, offset, offset + length - 1, s.bytes.data(), length, false));
  if (n != length) return fail(Errc::internal, "short range read without an error");
  m_cached += length;
  m_cache.push_back(std::move(s));
  return {};
}

Result<size_t> HttpRandomAccess::pread(uint64_t offset, std::span<std::byte> dst) {
  if (dst.empty() || offset >= m_size) return size_t{0};
  if (m_impl->ctx.cancel) CDI_TRY(m_impl->ctx.cancel->check());
  const Segment* seg = find(offset);
  if (!seg) {
    while (!m_plan.empty() && m_plan.front().offset + m_plan.front().length <= offset) m_plan.pop_front();
    const uint64_t want = std::min<uint64_t>(dst.size(), m_ra.max_request);
    uint64_t end = 0;
    for (const io::ByteRange& r : m_plan)
      if (offset >= r.offset && offset < r.offset + r.length) {
        end = std::min(r.offset + r.length, offset + m_ra.max_request);
        break;
      }
    if (end == 0) {   // not hinted: readahead, doubled while the reads stay sequential
      m_readahead = offset == m_last_end && m_readahead ? std::min<uint64_t>(2 * m_readahead, m_ra.max_request) : m_ra.min_read;
      end = offset + m_readahead;
    }
    end = std::min(std::max(end, offset + want), m_size);
    for (const Segment& s : m_cache)   // never fetch again what is held
      if (s.offset > offset) end = std::min(end, s.offset);
    CDI_TRY(fetch(offset, end - offset));
    m_last_end = end;
    seg = &m_cache.back();
  }
  size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), seg->offset + seg->bytes.size() - offset));
  std::memcpy(dst.data(), seg->bytes.data() + (offset - seg->offset), n);
  return n;
}

}  // namespace cdi::source
