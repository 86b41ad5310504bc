// SPDX-License-Identifier: Apache-2.0
#include "lib/clone/upload_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <thread>

#include "lib/source/http_util.hpp"

namespace cdi::clone {

namespace {

struct Transfer {
  io::Reader* body = nullptr;
  const util::CancelToken* cancel = nullptr;
  uint64_t sent = 0;
  std::optional<Error> body_error;
  std::string reply;
};

size_t read_cb(char* buf, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  if (t->cancel && t->cancel->cancelled()) {
    t->body_error = Error(Errc::cancelled, "cancelled");
    return CURL_READFUNC_ABORT;
  }
  auto r = t->body->read(std::span<std::byte>(reinterpret_cast<std::byte*>(buf), size * nitems));
  if (!r) {
    t->body_error = std::move(r).error();
    return CURL_READFUNC_ABORT;
  }
  t->sent += *r;
  return *r;   // 0 = end of body: libcurl sends the chunked terminator
}

size_t write_cb(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * nmemb;
  if (t->reply.size() < 65536) t->reply.append(data, std::min(n, 65536 - t->reply.size()));
  return n;
}

int xfer_cb(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  return t->cancel && t->cancel->cancelled() ? 1 : 0;
}

bool connect_failure(CURLcode c) {
  return c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST || c == CURLE_OPERATION_TIMEDOUT;
}

bool tls_auth_failure(CURLcode c) {
  return c == CURLE_PEER_FAILED_VERIFICATION || c == CURLE_SSL_CACERT_BADFILE || c == CURLE_SSL_CERTPROBLEM ||
         c == CURLE_SSL_ISSUER_ERROR;
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

Result<UploadReply> post_stream(io::Reader& body, const UploadOptions& opts) {
  auto origin = CDI_TRY(source::http::origin_of(opts.url));
  if (origin.scheme != "https") return fail(Errc::invalid_argument, "upload URL must be https: " + opts.url);
  if (opts.client_cert.empty() || opts.client_key.empty() || opts.server_ca.empty())
    return fail(Errc::invalid_argument, "client certificate, key and server CA are all required");
  static const bool inited = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!inited) return fail(Errc::internal, "curl_global_init failed");

  const unsigned attempts = std::max(1u, opts.connect_attempts);
  auto backoff = opts.first_backoff;
  for (unsigned attempt = 1;; ++attempt) {
    std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
    if (!curl) return fail(Errc::internal, "curl_easy_init failed");
    CURL* c = curl.get();
    Transfer t;
    t.body = &body;
    t.cancel = opts.cancel;
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_slist* raw = nullptr;
    raw = curl_slist_append(raw, "Transfer-Encoding: chunked");
    raw = curl_slist_append(raw, "Expect:");
    raw = curl_slist_append(raw, "Content-Type:");
    std::string ct = "x-cdi-content-type: " + opts.content_type;
    if (!opts.content_type.empty()) raw = curl_slist_append(raw, ct.c_str());
    std::unique_ptr<curl_slist, SlistDeleter> headers(raw);

    curl_blob cert{const_cast<char*>(opts.client_cert.data()), opts.client_cert.size(), CURL_BLOB_COPY};
    curl_blob key{const_cast<char*>(opts.client_key.data()), opts.client_key.size(), CURL_BLOB_COPY};
    curl_blob ca{const_cast<char*>(opts.server_ca.data()), opts.server_ca.size(), CURL_BLOB_COPY};
    curl_easy_setopt(c, CURLOPT_URL, opts.url.c_str());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
    curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &ca);
    curl_easy_setopt(c, CURLOPT_CAPATH, nullptr);   // only the given CA, as Go's RootCAs
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");         // CDI's http.Transport has no Proxy
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts.connect_timeout.count() * 1000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "cdi-import-cloner");

    CURLcode rc = curl_easy_perform(c);
    if (t.body_error) return std::unexpected(std::move(*t.body_error));
    const std::string url = source::http::redact_url(opts.url);
    if (rc != CURLE_OK) {
      if (rc == CURLE_ABORTED_BY_CALLBACK && opts.cancel && opts.cancel->cancelled())
        return fail(Errc::cancelled, "upload cancelled");
      std::string why = errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      if (tls_auth_failure(rc)) return fail(Errc::auth, "POSTing to " + url + ": " + why);
      if (t.sent == 0 && connect_failure(rc) && attempt < attempts) {
        if (opts.log)
          opts.log("POST to " + url + " failed before any byte was sent (" + why + "), retrying in " +
                   std::to_string(backoff.count()) + " ms");
        auto until = std::chrono::steady_clock::now() + backoff;
        while (std::chrono::steady_clock::now() < until) {
          if (opts.cancel) CDI_TRY(opts.cancel->check());
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        backoff = std::min(backoff * 2, std::chrono::milliseconds(8000));
        continue;
      }
      return fail(Errc::network, "POSTing to " + url + ": " + why +
                                     (t.sent ? " (after " + std::to_string(t.sent) + " body bytes)" : ""));
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
      std::string excerpt = source::http::error_body_excerpt(t.reply, status);
      Errc code = status == 401 || status == 403 ? Errc::auth : Errc::network;
      return fail(code, "Unexpected status code " + std::to_string(status) + (excerpt.empty() ? "" : ": " + excerpt));
    }
    UploadReply reply;
    reply.status = status;
    reply.body = std::move(t.reply);
    reply.body_bytes_sent = t.sent;
    return reply;
  }
}

}  // namespace cdi::clone
