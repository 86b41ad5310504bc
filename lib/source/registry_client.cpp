// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_client.hpp"

#include <curl/curl.h>

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "lib/source/http_util.hpp"
#include "lib/source/registry_auth.hpp"
#include "lib/util/digest.hpp"

namespace cdi::source::registry {
namespace fs = std::filesystem;

namespace {

Result<std::string> read_file(const fs::path& p, std::string_view what) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return fail(Errc::not_found, std::string(what) + " " + p.string() + ": No such file or directory");
  std::ifstream in(p, std::ios::binary);
  if (!in) return fail(Errc::io, std::string(what) + " " + p.string() + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > (1u << 20)) return fail(Errc::limit, std::string(what) + " " + p.string() + " is larger than 1 MiB");
  return s;
}

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

struct Response {
  long status = 0;
  http::Headers headers;
  std::string body;
};

// The registry's error text from a JSON error body: "MANIFEST_UNKNOWN: manifest unknown".
std::string registry_error_text(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return {};
  auto errs = j.find("errors");
  if (errs == j.end() || !errs->is_array() || errs->empty() || !(*errs)[0].is_object()) return {};
  const auto& e = (*errs)[0];
  std::string code = e.value("code", std::string());
  std::string msg = e.value("message", std::string());
  return code + (msg.empty() ? "" : ": " + msg);
}

class RegistryClient final : public ImageStore {
 public:
  RegistryClient(ImageReference ref, ClientOptions opts, HttpContext ctx)
      : m_ref(std::move(ref)), m_opts(std::move(opts)), m_ctx(std::move(ctx)) {}

  Result<void> connect();

  Result<ManifestBytes> manifest(std::string_view reference) override;
  Result<std::string> small_blob(const Descriptor& d) override;
  Result<std::unique_ptr<io::Reader>> open_blob(const Descriptor& d) override;
  std::string kind() const override { return "docker"; }

 private:
  void log(const std::string& s) const {
    if (m_ctx.log) m_ctx.log(s);
  }
  // One GET into memory (redirects followed; curl never sends our Authorization header to
  // another host). `auth`: send the current Authorization header. Retries transport errors and
  // 5xx a few times. Errors: network (transport, TLS), limit (body larger than cap).
  Result<Response> get(const std::string& url, const std::vector<std::string>& headers, size_t cap, bool auth);
  // get() with the 401 dance: on 401, take the challenge, (re)authenticate, retry once.
  Result<Response> get_authorized(const std::string& url, const std::vector<std::string>& headers, size_t cap);
  // Acts on a 401's WWW-Authenticate. Errors: auth.
  Result<void> on_unauthorized(const Response& r);
  Result<void> fetch_token();
  // "Authorization: …" or "" (thread-safe; called by blob transfer threads).
  std::string authorization();
  std::string who() const {
    return m_creds ? "as user " + m_creds->username : std::string("anonymously");
  }
  Error refused(long status) const {
    // The CLI flags go in the hint (cmd/ renders it); the message says only the fact.
    return Error(Errc::auth, "registry " + m_ref.host + " refused access to " + m_ref.repository + " " + who() +
                                 " (HTTP " + std::to_string(status) + ")" + (m_creds ? "" : " (no credentials given)"))
        .with_hint(m_creds ? "" : " (pass --username/--password-file or --registry-auth-file)");
  }

  ImageReference m_ref;
  ClientOptions m_opts;
  HttpContext m_ctx;
  std::string m_base;   // "https://host" or "http://host"
  std::string m_ca_pem;
  std::optional<ClientPair> m_client_pair;
  std::optional<Credentials> m_creds;

  std::mutex m_auth_mutex;   // guards the fields below (blob threads renew tokens)
  enum class Mode { none, basic, bearer } m_mode = Mode::none;
  std::string m_realm, m_service, m_scope, m_token;
};

Result<Response> RegistryClient::get(const std::string& url, const std::vector<std::string>& headers, size_t cap,
                                     bool auth) {
  std::string authz = auth ? authorization() : std::string();
  std::string last_error;
  std::string cert_hint;   // names a CLI flag: Error::hint, rendered by cmd/ only
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (attempt > 0) {
      if (m_ctx.cancel) CDI_TRY(m_ctx.cancel->check());
      std::this_thread::sleep_for(std::chrono::milliseconds(100 << attempt));   // 200, 400, 800 ms
    }
    http::SmallRequest req;
    req.url = url;
    req.headers = headers;
    if (!authz.empty()) req.headers.push_back(authz);
    req.max_body = cap;
    req.follow_redirects = true;
    req.redirect_protocols = m_base.starts_with("https") ? "https" : "http,https";
    req.tls12_min = true;
    req.verify_tls = !m_opts.http.insecure_tls;
    req.ca_pem = m_ca_pem;
    if (m_client_pair) {
      req.client_cert = m_client_pair->cert.string();
      req.client_key = m_client_pair->key.string();
    }
    req.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(m_opts.http.connect_timeout);
    req.stall_timeout = std::chrono::duration_cast<std::chrono::seconds>(m_opts.http.stall_timeout);
    req.cancel = m_ctx.cancel;
    http::TransportFailure why;
    auto got = http::small_request(req, &why);
    if (m_ctx.cancel) CDI_TRY(m_ctx.cancel->check());
    if (!got && got.error().code() == Errc::limit)
      return fail(Errc::limit, "reply from " + http::redact_url(url) + " is larger than " + std::to_string(cap) + " bytes");
    if (!got && got.error().code() != Errc::network) return std::unexpected(std::move(got).error());
    if (!got) {
      last_error = why.message + " for " + http::redact_url(url);
      if (url.starts_with("https:") && !m_client_pair && why.kind == http::TransportFailure::Kind::send_recv)
        // TLS 1.3 servers refuse a missing client certificate only after the handshake.
        cert_hint = " (if the registry requires a TLS client certificate: a *.cert + *.key pair in --cert-dir)";
      if (why.kind == http::TransportFailure::Kind::tls)
        return std::unexpected(Error(Errc::network, "TLS: " + last_error)
                                   .with_hint(m_opts.http.insecure_tls ? "" : " (trust its CA with --cert-dir, or --insecure-tls)"));
      continue;
    }
    Response r{got->status, std::move(got->headers), std::move(got->body)};
    if (http::is_retryable_status(r.status) && attempt < 3) {
      last_error = "HTTP " + std::to_string(r.status) + " for " + http::redact_url(url);
      continue;
    }
    return r;
  }
  return std::unexpected(Error(Errc::network, last_error + " (gave up after 4 attempts)").with_hint(cert_hint));
}

std::string RegistryClient::authorization() {
  std::lock_guard lock(m_auth_mutex);
  if (m_mode == Mode::basic && m_creds) return "Authorization: Basic " + base64_encode(m_creds->username + ":" + m_creds->password);
  if (m_mode == Mode::bearer && !m_token.empty()) return "Authorization: Bearer " + m_token;
  return {};
}

Result<void> RegistryClient::fetch_token() {
  std::string url;
  {
    std::lock_guard lock(m_auth_mutex);
    url = m_realm + (m_realm.find('?') == std::string::npos ? "?" : "&");
    if (!m_service.empty()) url += "service=" + http::percent_encode(m_service) + "&";
    url += "scope=" + http::percent_encode(m_scope);
  }
  std::vector<std::string> headers;
  if (m_creds) headers.push_back("Authorization: Basic " + base64_encode(m_creds->username + ":" + m_creds->password));
  log("requesting a token from " + http::redact_url(url) + " " + who());
  auto r = CDI_TRY_CTX(get(url, headers, 1u << 20, false), "token endpoint");
  if (r.status == 401 || r.status == 403)
    return fail(Errc::auth, "token server " + http::redact_url(m_realm) + " refused the request " + who() + " (HTTP " +
                                std::to_string(r.status) + ")");
  if (r.status != 200)
    return fail(Errc::network, "token server " + http::redact_url(m_realm) + " answered HTTP " + std::to_string(r.status));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string token;
  if (!j.is_discarded() && j.is_object()) {
    token = j.value("token", std::string());
    if (token.empty()) token = j.value("access_token", std::string());
  }
  if (token.empty()) return fail(Errc::network, "token server " + http::redact_url(m_realm) + " returned no token");
  std::lock_guard lock(m_auth_mutex);
  m_token = std::move(token);
  m_mode = Mode::bearer;
  return {};
}

Result<void> RegistryClient::on_unauthorized(const Response& r) {
  auto hv = r.headers.get("WWW-Authenticate");
  if (!hv) return std::unexpected(refused(r.status));
  auto challenges = parse_www_authenticate(*hv);
  if (!challenges) return std::unexpected(refused(r.status));
  for (const auto& c : *challenges) {
    if (c.scheme == "bearer") {
      auto realm = c.params.find("realm");
      if (realm == c.params.end()) return fail(Errc::auth, "Bearer challenge without a realm from " + m_ref.host);
      {
        std::lock_guard lock(m_auth_mutex);
        m_realm = realm->second;
        m_service = c.params.contains("service") ? c.params.at("service") : std::string();
        auto sc = c.params.find("scope");
        m_scope = sc != c.params.end() ? sc->second : "repository:" + m_ref.repository + ":pull";
        if (c.params.contains("error") && c.params.at("error") == "insufficient_scope" && m_mode == Mode::bearer &&
            sc == c.params.end())
          return std::unexpected(refused(r.status));
      }
      return fetch_token();
    }
  }
  for (const auto& c : *challenges) {
    if (c.scheme == "basic") {
      std::lock_guard lock(m_auth_mutex);
      if (!m_creds || m_mode == Mode::basic) return std::unexpected(refused(r.status));
      m_mode = Mode::basic;
      return {};
    }
  }
  return fail(Errc::auth, "registry " + m_ref.host + " asks for an unsupported authentication scheme (" + *hv + ")");
}

Result<Response> RegistryClient::get_authorized(const std::string& url, const std::vector<std::string>& headers, size_t cap) {
  auto r = CDI_TRY(get(url, headers, cap, true));
  if (r.status != 401) return r;
  CDI_TRY(on_unauthorized(r));
  r = CDI_TRY(get(url, headers, cap, true));
  if (r.status == 401) return std::unexpected(refused(401));
  return r;
}

Result<void> RegistryClient::connect() {
  if (!m_opts.http.username.empty() || m_opts.http.password_file) {
    if (m_opts.http.username.empty() || !m_opts.http.password_file)
      return std::unexpected(Error(Errc::invalid_argument, "a username and a password file go together")
                                 .with_hint(" (--username, --password-file)"));
    auto pw = trim_newline(CDI_TRY(http::flag_hint(read_file(*m_opts.http.password_file, "password file"), "--password-file")));
    m_creds = Credentials{m_opts.http.username, pw};
  } else if (m_opts.auth_file) {
    auto text = CDI_TRY(http::flag_hint(read_file(*m_opts.auth_file, "registry auth file"), "--registry-auth-file"));
    m_creds = CDI_TRY(http::flag_hint(docker_config_credentials(text, m_ref.host), "--registry-auth-file",
                                "registry auth file " + m_opts.auth_file->string()));
    if (m_creds) log("using credentials of user " + m_creds->username + " for " + m_ref.host + " from " + m_opts.auth_file->string());
    else log("registry auth file " + m_opts.auth_file->string() + " has no entry for " + m_ref.host + "; pulling anonymously");
  }
  if (m_opts.http.cert_dir) {
    m_client_pair = CDI_TRY(certs_d_client_pair(*m_opts.http.cert_dir));
    if (!m_opts.http.insecure_tls) {
      auto b = CDI_TRY(build_ca_bundle(*m_opts.http.cert_dir, m_opts.http.system_ca_bundle, true));
      for (const auto& w : b.warnings) log("warning: " + w);
      m_ca_pem = std::move(b.pem);
    }
  }
  if (m_opts.http.client_cert) m_client_pair = ClientPair{*m_opts.http.client_cert, m_opts.http.client_key.value_or(*m_opts.http.client_cert)};
  if (m_opts.http.insecure_tls) log("warning: TLS certificate verification is DISABLED (insecure TLS requested)");
  curl_global_init(CURL_GLOBAL_DEFAULT);

  // https first; with --insecure-tls a registry that does not speak TLS is tried over http.
  m_base = "https://" + m_ref.host;
  auto ping = get(m_base + "/v2/", {}, 1u << 20, false);
  if (!ping && ping.error().code() == Errc::network && m_opts.http.insecure_tls) {
    log("https://" + m_ref.host + " failed (" + ping.error().what() + "); trying plain http (insecure TLS requested)");
    m_base = "http://" + m_ref.host;
    ping = get(m_base + "/v2/", {}, 1u << 20, false);
  }
  if (!ping) return std::unexpected(std::move(ping).error().context("registry " + m_ref.host));
  if (ping->status == 401) {
    CDI_TRY(on_unauthorized(*ping));
  } else if (ping->status != 200) {
    return fail(Errc::network, "registry " + m_ref.host + ": GET /v2/ answered HTTP " + std::to_string(ping->status) +
                                   " (not a Docker Registry HTTP API v2 endpoint?)");
  }
  {
    std::lock_guard lock(m_auth_mutex);
    if (m_mode == Mode::none && m_creds && ping->status == 200) m_mode = Mode::none;   // open registry: no auth needed
  }
  log("registry " + m_base + " (API v2)");
  return {};
}

Result<ManifestBytes> RegistryClient::manifest(std::string_view reference) {
  std::string url = m_base + "/v2/" + m_ref.repository + "/manifests/" + std::string(reference);
  auto r = CDI_TRY(get_authorized(url, {std::string("Accept: ") + k_manifest_accept}, k_max_manifest_bytes));
  if (r.status == 404) {
    auto why = registry_error_text(r.body);
    return fail(Errc::not_found, "image " + m_ref.host + "/" + m_ref.repository +
                                     (reference.starts_with("sha256:") ? "@" : ":") + std::string(reference) +
                                     " not found (" + (why.empty() ? std::string("HTTP 404") : why) + ")");
  }
  if (r.status == 403) return std::unexpected(refused(403));
  if (r.status != 200) {
    auto why = registry_error_text(r.body);
    return fail(Errc::network, "GET manifest " + std::string(reference) + ": HTTP " + std::to_string(r.status) +
                                   (why.empty() ? "" : " (" + why + ")"));
  }
  ManifestBytes m;
  m.content_type = r.headers.get("Content-Type").value_or("");
  m.digest = "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(r.body)));
  if (reference.starts_with("sha256:") && m.digest != reference)
    return fail(Errc::corrupt_input, "manifest digest mismatch: asked for " + std::string(reference) + ", received " + m.digest);
  m.body = std::move(r.body);
  return m;
}

Result<std::string> RegistryClient::small_blob(const Descriptor& d) {
  if (d.size > k_max_manifest_bytes) return fail(Errc::limit, "blob " + d.digest + " is larger than 4 MiB");
  std::string url = m_base + "/v2/" + m_ref.repository + "/blobs/" + d.digest;
  auto r = CDI_TRY(get_authorized(url, {}, k_max_manifest_bytes));
  if (r.status == 404) return fail(Errc::not_found, "blob " + d.digest + " not found in " + m_ref.repository);
  if (r.status != 200) return fail(Errc::network, "GET blob " + d.digest + ": HTTP " + std::to_string(r.status));
  auto got = "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(r.body)));
  if (got != d.digest || r.body.size() != d.size)
    return fail(Errc::corrupt_input, "blob digest mismatch: expected " + d.digest + " (" + std::to_string(d.size) +
                                         " bytes), received " + got + " (" + std::to_string(r.body.size()) + " bytes)");
  return std::move(r.body);
}

Result<std::unique_ptr<io::Reader>> RegistryClient::open_blob(const Descriptor& d) {
  HttpOptions h = m_opts.http;
  h.username.clear();        // credentials travel in auth_header (Basic or Bearer)
  h.password_file.reset();
  h.cert_dir_certs_d = true;
  h.reject_html = false;
  h.auth_header = [this](bool refresh) -> Result<std::string> {
    if (refresh) {
      bool bearer;
      {
        std::lock_guard lock(m_auth_mutex);
        bearer = m_mode == Mode::bearer;
      }
      if (bearer) CDI_TRY(fetch_token());
    }
    return authorization();
  };
  std::string url = m_base + "/v2/" + m_ref.repository + "/blobs/" + d.digest;
  return open_http_source(url, h, m_ctx);
}

}  // namespace

Result<std::unique_ptr<ImageStore>> open_registry_client(const ImageReference& ref, const ClientOptions& opts,
                                                         const HttpContext& ctx) {
  auto c = std::make_unique<RegistryClient>(ref, opts, ctx);
  CDI_TRY(c->connect());
  return std::unique_ptr<ImageStore>(std::move(c));
}

}  // namespace cdi::source::registry
