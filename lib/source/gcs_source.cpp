// SPDX-License-Identifier: Apache-2.0
#include "lib/source/gcs_source.hpp"

#include <isa-l/crc.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <thread>
#include <nlohmann/json.hpp>

#include "lib/source/gcs_oauth.hpp"
#include "lib/source/http_client.hpp"
#include "lib/source/http_util.hpp"

namespace cdi::source {
namespace gcs {

namespace {

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool has_prefix_ci(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (size_t i = 0; i < p.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
  return true;
}

// "BUCKET/OBJECT…" split at the first '/'.
Result<std::pair<std::string, std::string>> split_bucket(std::string_view path, std::string_view url) {
  auto slash = path.find('/');
  std::string bucket(path.substr(0, slash));
  std::string object = slash == std::string_view::npos ? std::string() : std::string(path.substr(slash + 1));
  if (auto q = object.find_first_of("?#"); q != std::string::npos) object.resize(q);
  if (bucket.empty()) return fail(Errc::invalid_argument, "GCS URL " + http::redact_url(url) + " names no bucket");
  if (object.empty()) return fail(Errc::invalid_argument, "GCS URL " + http::redact_url(url) + " names no object");
  return std::pair{bucket, object};
}

}  // namespace

Result<ObjectLocation> parse_object_url(std::string_view url, std::string_view endpoint_override,
                                        std::string_view emulator_host) {
  ObjectLocation loc;
  if (has_prefix_ci(url, "gs://")) {
    auto [b, o] = CDI_TRY(split_bucket(url.substr(5), url));
    loc.bucket = std::move(b);
    loc.object = std::move(o);
    if (!endpoint_override.empty()) {
      loc.endpoint = trim_slashes(std::string(endpoint_override));
    } else if (!emulator_host.empty()) {
      std::string e(emulator_host);
      loc.endpoint = trim_slashes(e.find("://") == std::string::npos ? "http://" + e : e);
    } else {
      loc.endpoint = std::string(k_default_endpoint);
    }
    CDI_TRY_CTX(http::origin_of(loc.endpoint), "GCS endpoint");
    return loc;
  }
  if (has_prefix_ci(url, "http://") || has_prefix_ci(url, "https://")) {
    CDI_TRY(http::origin_of(url));
    size_t host_start = url.find("://") + 3;
    size_t path = url.find('/', host_start);
    if (path == std::string_view::npos) return fail(Errc::invalid_argument, "GCS URL " + http::redact_url(url) + " names no bucket");
    loc.endpoint = std::string(url.substr(0, path));
    auto [b, o] = CDI_TRY(split_bucket(url.substr(path + 1), url));
    loc.bucket = std::move(b);
    loc.object = std::move(o);
    return loc;
  }
  return fail(Errc::invalid_argument, "not a GCS URL (gs://BUCKET/OBJECT or http(s)://HOST/BUCKET/OBJECT): " +
                                          http::redact_url(url));
}

std::string xml_object_url(const ObjectLocation& loc, std::string_view generation) {
  std::string u = loc.endpoint + "/" + http::percent_encode(loc.bucket, false) + "/" + http::percent_encode(loc.object, true);
  if (!generation.empty()) u += "?generation=" + std::string(generation);
  return u;
}

std::string json_metadata_url(const ObjectLocation& loc) {
  return loc.endpoint + "/storage/v1/b/" + http::percent_encode(loc.bucket, false) + "/o/" + http::percent_encode(loc.object, false);
}

std::string error_text(std::string_view body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    if (auto e = j.find("error"); e != j.end() && e->is_object())
      if (auto m = e->find("message"); m != e->end() && m->is_string()) return m->get<std::string>();
    return {};
  }
  auto tag = [&](std::string_view name) -> std::string {
    std::string open = "<" + std::string(name) + ">", close = "</" + std::string(name) + ">";
    auto a = body.find(open);
    if (a == std::string_view::npos) return {};
    a += open.size();
    auto b = body.find(close, a);
    if (b == std::string_view::npos || b - a > 300) return {};
    return std::string(body.substr(a, b - a));
  };
  std::string code = tag("Code"), msg = tag("Message");
  if (code.empty()) return msg;
  return msg.empty() ? code : code + ": " + msg;
}

}  // namespace gcs

namespace {

std::optional<std::string> b64decode(std::string_view in) {
  if (in.empty() || in.size() % 4 != 0) return std::nullopt;
  std::string out(in.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  size_t pad = (in.back() == '=') + (in.size() > 1 && in[in.size() - 2] == '=');
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

struct ObjectMeta {
  std::string generation;
  std::optional<uint64_t> size;
  std::optional<uint32_t> crc32c;
  std::optional<std::string> md5;   // 16 raw bytes
};

// The object's bytes with its CRC32C and MD5 checked at the end.
class GcsReader final : public io::Reader {
 public:
  GcsReader(std::unique_ptr<io::Reader> inner, ObjectMeta meta, std::string name, std::shared_ptr<void> keep)
      : m_inner(std::move(inner)), m_meta(std::move(meta)), m_name(std::move(name)), m_keep(std::move(keep)) {
    if (m_meta.md5) {
      m_md5.reset(EVP_MD_CTX_new());
      if (m_md5 && EVP_DigestInit_ex(m_md5.get(), EVP_md5(), nullptr) != 1) m_md5.reset();
    }
  }

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_done) return size_t(0);
    size_t n = CDI_TRY(m_inner->read(dst));
    if (n > 0) {
      auto* p = reinterpret_cast<unsigned char*>(dst.data());
      for (size_t left = n, off = 0; left > 0;) {
        size_t k = std::min<size_t>(left, size_t(1) << 30);
        m_crc = crc32_iscsi(p + off, static_cast<int>(k), m_crc);
        off += k;
        left -= k;
      }
      if (m_md5) EVP_DigestUpdate(m_md5.get(), p, n);
      m_bytes += n;
      return n;
    }
    if (!dst.empty()) {
      m_done = true;
      CDI_TRY(verify());
    }
    return n;
  }

  io::ReaderInfo info() const override {
    auto i = m_inner->info();
    i.name = "gcs";
    if (m_meta.size) i.size = m_meta.size;
    // The checksums are checked over the stream, and a token must never reach a helper tool: no
    // in-place random access by URL.
    // Nor a second read by URL (it would go out without the token and skip the checks).
    i.range_url.reset();
    i.validator.reset();
    i.pinned_url.reset();
    return i;
  }

 private:
  Result<void> verify() {
    if (m_meta.size && m_bytes != *m_meta.size)
      return fail(Errc::corrupt_input, m_name + ": received " + std::to_string(m_bytes) + " bytes, the object has " +
                                           std::to_string(*m_meta.size));
    if (m_meta.crc32c && ~m_crc != *m_meta.crc32c) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "CRC32C mismatch (object %08x, received %08x)", *m_meta.crc32c, ~m_crc);
      return fail(Errc::corrupt_input, m_name + ": " + buf + ": the bytes were damaged in transit");
    }
    if (m_md5 && m_meta.md5) {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned len = 0;
      EVP_DigestFinal_ex(m_md5.get(), md, &len);
      if (std::string(reinterpret_cast<char*>(md), len) != *m_meta.md5)
        return fail(Errc::corrupt_input, m_name + ": MD5 mismatch: the bytes were damaged in transit");
    }
    return {};
  }

  std::unique_ptr<io::Reader> m_inner;
  ObjectMeta m_meta;
  std::string m_name;
  std::shared_ptr<void> m_keep;
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> m_md5;
  uint32_t m_crc = 0xffffffffu;
  uint64_t m_bytes = 0;
  bool m_done = false;
};

struct Shared {
  http::ClientConfig cfg;
  std::unique_ptr<gcs::TokenSource> tokens;
};

Error status_failure(long status, const gcs::ObjectLocation& loc, const std::string& body, bool authenticated) {
  std::string server = gcs::error_text(body);
  std::string says = server.empty() ? "" : " (server says: " + server + ")";
  std::string what = loc.display();
  if (status == 404) return Error(Errc::not_found, "no such GCS bucket or object: " + what + says);
  if (status == 401 && !authenticated)
    return Error(Errc::auth, "GCS object " + what + " is not public and no credentials were given" + says)
        .with_hint(" (--gcs-credentials or GOOGLE_APPLICATION_CREDENTIALS)");
  if (status == 401) return Error(Errc::auth, "GCS refused the access token for " + what + says);
  if (status == 403) return Error(Errc::auth, "access denied to GCS object " + what + says);
  std::string reason(http::reason_phrase(status));
  return Error(Errc::network, "HTTP " + std::to_string(status) + (reason.empty() ? "" : " " + reason) + " for GCS object " +
                                  what + says);
}

Result<ObjectMeta> fetch_metadata(Shared& sh, const gcs::ObjectLocation& loc, const HttpContext& ctx) {
  http::SmallRequest req;
  req.url = gcs::json_metadata_url(loc) + "?fields=generation,size,crc32c,md5Hash";
  req.verify_tls = !sh.cfg.opts.insecure_tls;
  req.tls12_min = true;
  req.ca_pem = sh.cfg.ca_pem;
  req.use_proxy_env = sh.cfg.opts.proxy_from_env;
  req.connect_timeout = sh.cfg.opts.connect_timeout;
  req.total_timeout = std::chrono::milliseconds(120000);
  req.cancel = ctx.cancel;
  Result<http::SmallResponse> r = std::unexpected(Error(Errc::internal, "no request"));
  for (int attempt = 0;; ++attempt) {
    req.headers.clear();
    if (sh.tokens) req.headers.push_back(CDI_TRY(sh.tokens->authorization(attempt > 0)));
    unsigned tries = 0;
    for (;;) {   // transport failures and 5xx: retried as the HTTP source would, in bounds
      http::TransportFailure why;
      r = http::small_request(req, &why);
      if (ctx.cancel) CDI_TRY(ctx.cancel->check());
      if (!r && r.error().code() == Errc::network && why.kind == http::TransportFailure::Kind::tls)
        return std::unexpected(Error(Errc::network, "TLS: " + why.message + " for " + http::redact_url(loc.endpoint))
                                   .context("GCS metadata of " + loc.display())
                                   .with_hint(sh.cfg.opts.insecure_tls ? "" : " (trust its CA with --cert-dir, or --insecure-tls)"));
      bool retry = (!r && r.error().code() == Errc::network) || (r && http::is_retryable_status(r->status));
      if (!retry || ++tries > sh.cfg.opts.retries) break;
      if (ctx.log) ctx.log("GCS metadata request failed; retrying");
      auto until = std::chrono::steady_clock::now() +
                   std::min(sh.cfg.opts.backoff_initial * (1u << std::min(tries - 1, 5u)), sh.cfg.opts.backoff_max);
      while (std::chrono::steady_clock::now() < until) {   // the backoff, cancellable
        if (ctx.cancel) CDI_TRY(ctx.cancel->check());
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    if (!r) return std::unexpected(std::move(r).error().context("GCS metadata of " + loc.display()));
    if (r->status == 401 && sh.tokens && attempt == 0) continue;   // an expired token: renew once
    break;
  }
  if (r->status != 200) return std::unexpected(status_failure(r->status, loc, r->body, sh.tokens != nullptr));
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(Errc::network, "GCS metadata of " + loc.display() + " is not a JSON object");
  ObjectMeta m;
  auto str = [&](const char* name) -> std::string {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  m.generation = str("generation");
  if (!m.generation.empty() && m.generation.find_first_not_of("0123456789") != std::string::npos)
    return fail(Errc::network, "GCS metadata of " + loc.display() + ": invalid generation");
  if (auto s = str("size"); !s.empty()) {
    auto v = http::parse_content_length(s);
    if (!v) return fail(Errc::network, "GCS metadata of " + loc.display() + ": invalid size");
    m.size = *v;
  }
  if (auto c = str("crc32c"); !c.empty()) {
    auto raw = b64decode(c);
    if (!raw || raw->size() != 4) return fail(Errc::network, "GCS metadata of " + loc.display() + ": invalid crc32c");
    auto* u = reinterpret_cast<const unsigned char*>(raw->data());
    m.crc32c = uint32_t(u[0]) << 24 | uint32_t(u[1]) << 16 | uint32_t(u[2]) << 8 | u[3];
  }
  if (auto h = str("md5Hash"); !h.empty()) {
    auto raw = b64decode(h);
    if (!raw || raw->size() != 16) return fail(Errc::network, "GCS metadata of " + loc.display() + ": invalid md5Hash");
    m.md5 = *raw;
  }
  return m;
}

}  // namespace

Result<std::unique_ptr<io::Reader>> open_gcs_source(std::string_view url, const GcsOptions& g, const HttpOptions& h,
                                                    const HttpContext& ctx) {
  const char* emu = std::getenv("STORAGE_EMULATOR_HOST");
  auto loc = CDI_TRY(gcs::parse_object_url(url, g.endpoint, emu ? emu : ""));
  auto sh = std::make_shared<Shared>();
  std::string object0 = gcs::xml_object_url(loc, "");
  sh->cfg = CDI_TRY(http::prepare_client(object0, h, ctx.log));
  if (g.credentials) {
    auto key = CDI_TRY(gcs::load_service_account_key(*g.credentials));
    gcs::TokenTls tls{sh->cfg.ca_pem, !sh->cfg.opts.insecure_tls, sh->cfg.opts.proxy_from_env};
    sh->tokens = std::make_unique<gcs::TokenSource>(std::move(key), std::move(tls), ctx.cancel);
    if (ctx.log) ctx.log("GCS: authenticating as service account " + sh->tokens->key().client_email);
  } else if (ctx.log) {
    ctx.log("GCS: no credentials, reading anonymously");
  }
  auto meta = CDI_TRY(fetch_metadata(*sh, loc, ctx));
  if (ctx.log)
    ctx.log("GCS object " + loc.display() + " generation " + (meta.generation.empty() ? "?" : meta.generation) +
            (meta.size ? ", " + std::to_string(*meta.size) + " bytes" : "") + (meta.crc32c ? ", crc32c" : "") +
            (meta.md5 ? ", md5" : ""));
  HttpOptions opts = h;
  if (sh->tokens) {
    gcs::TokenSource* ts = sh->tokens.get();
    opts.auth_header = [ts](bool refresh) { return ts->authorization(refresh); };
  }
  auto inner = open_http_source(gcs::xml_object_url(loc, meta.generation), opts, ctx);
  if (!inner) {
    // The XML API's own error (the object went away, access revoked between the two requests).
    Error e = std::move(inner).error();
    return std::unexpected(std::move(e).context("GCS object " + loc.display()));
  }
  return std::unique_ptr<io::Reader>(std::make_unique<GcsReader>(std::move(*inner), std::move(meta), loc.display(), sh));
}

}  // namespace cdi::source
