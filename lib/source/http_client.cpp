// SPDX-License-Identifier: Apache-2.0
#include "lib/source/http_client.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "lib/source/s3_source.hpp"

namespace cdi::source::http {
namespace fs = std::filesystem;

namespace {

constexpr size_t k_max_small_file = 1u << 20;   // password / header / PEM files

std::string trim_newline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void global_init() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

}  // namespace

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

Result<ClientConfig> prepare_client(std::string_view url, const HttpOptions& opts,
                                    const std::function<void(std::string_view)>& log_fn) {
  auto log = [&](const std::string& s) {
    if (log_fn) log_fn(s);
  };
  ClientConfig cfg;
  cfg.opts = opts;
  HttpOptions& o = cfg.opts;
  cfg.origin0 = CDI_TRY(origin_of(url));
  if (!o.username.empty() != o.password_file.has_value())
    return std::unexpected(Error(Errc::invalid_argument, "a username and a password file go together")
                               .with_hint(" (--username, --password-file)"));
  if (o.username.find(':') != std::string::npos)
    return std::unexpected(Error(Errc::invalid_argument, "the username must not contain ':'").with_hint(" (--username)"));
  if (o.password_file) {
    cfg.password = trim_newline(CDI_TRY(flag_hint(read_small_file(*o.password_file, "password file"), "--password-file")));
    if (cfg.password.find('\n') != std::string::npos)
      return std::unexpected(
          Error(Errc::invalid_argument, "password file " + o.password_file->string() + " holds more than one line")
              .with_hint(" (--password-file)"));
  }
  for (const auto& h : o.headers) {
    auto line = CDI_TRY(flag_hint(check_extra_header(h), "--header", "extra header"));
    std::string lname = line.substr(0, line.find(':'));
    std::ranges::transform(lname, lname.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    bool secret = lname == "authorization" || lname == "proxy-authorization" || lname == "cookie";
    (secret ? cfg.secret_headers : cfg.public_headers).push_back(std::move(line));
  }
  for (const auto& f : o.header_files) {
    auto text = trim_newline(CDI_TRY(flag_hint(read_small_file(f, "header file"), "--header-file")));
    if (text.find('\n') != std::string::npos)
      return std::unexpected(Error(Errc::invalid_argument, "header file " + f.string() + " must hold exactly one header line")
                                 .with_hint(" (--header-file)"));
    cfg.secret_headers.push_back(CDI_TRY(flag_hint(check_extra_header(text), "--header-file", "header file " + f.string())));
  }
  if (o.client_key && !o.client_cert)
    return std::unexpected(Error(Errc::invalid_argument, "a client key needs a client certificate")
                               .with_hint(" (--client-key needs --client-cert)"));
  for (const auto& p : {o.client_cert, o.client_key})
    if (p) {
      bool cert = p == o.client_cert;
      CDI_TRY(flag_hint(read_small_file(*p, cert ? "client certificate" : "client key"), cert ? "--client-cert" : "--client-key"));
    }
  if (o.cert_dir && o.cert_dir_certs_d && !o.client_cert) {
    if (auto pair = CDI_TRY(certs_d_client_pair(*o.cert_dir))) {
      o.client_cert = pair->cert;
      o.client_key = pair->key;
    }
  }
  if (o.cert_dir && !o.insecure_tls) {
    auto b = CDI_TRY(build_ca_bundle(*o.cert_dir, o.system_ca_bundle, o.cert_dir_certs_d));
    for (const auto& w : b.warnings) log("warning: " + w);
    log("trusting " + std::to_string(b.dir_certificates) + " certificate(s) from " + o.cert_dir->string() +
        " in addition to the system store");
    cfg.ca_pem = std::move(b.pem);
  }
  if (o.insecure_tls) log("warning: TLS certificate verification is DISABLED (insecure TLS requested)");
  if (o.proxy_from_env) {
    cfg.proxy = proxy_env_from([](const char* n) { return std::getenv(n); });
    for (const auto& [scheme, purl] : {std::pair{"http", &cfg.proxy.http}, std::pair{"https", &cfg.proxy.https}})
      if (!purl->empty()) log(std::string(scheme) + " requests go through proxy " + redact_url(*purl));
    if (!cfg.proxy.no_proxy.empty()) log("no proxy for: " + cfg.proxy.no_proxy);
  }
  return cfg;
}

Result<CurlHandle> new_handle(const ClientConfig& cfg, char* errbuf) {
  global_init();
  CurlHandle h(curl_easy_init());
  if (!h) return fail(Errc::internal, "curl_easy_init failed");
  const HttpOptions& o = cfg.opts;
  CURL* c = h.get();
  bool ok = true;
  auto set = [&](CURLoption opt, auto v) { ok = ok && curl_easy_setopt(c, opt, v) == CURLE_OK; };
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_ERRORBUFFER, errbuf);
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_FOLLOWLOCATION, 0L);   // redirects are the caller's: credentials, downgrades, loops, pinning
  set(CURLOPT_USERAGENT, "cdi-import/" CDI_VERSION);
  set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  set(CURLOPT_SSL_VERIFYPEER, o.insecure_tls ? 0L : 1L);
  set(CURLOPT_SSL_VERIFYHOST, o.insecure_tls ? 0L : 2L);
  set(CURLOPT_PROXY_SSL_VERIFYPEER, o.insecure_tls ? 0L : 1L);
  set(CURLOPT_PROXY_SSL_VERIFYHOST, o.insecure_tls ? 0L : 2L);
  if (!cfg.ca_pem.empty()) {
    // CURL_BLOB_NOCOPY: cfg.ca_pem outlives the handle's use.
    curl_blob blob{const_cast<char*>(cfg.ca_pem.data()), cfg.ca_pem.size(), CURL_BLOB_NOCOPY};
    set(CURLOPT_CAINFO_BLOB, &blob);
    set(CURLOPT_PROXY_CAINFO_BLOB, &blob);
  }
  if (o.client_cert) {
    set(CURLOPT_SSLCERT, o.client_cert->c_str());
    set(CURLOPT_SSLCERTTYPE, "PEM");
    set(CURLOPT_SSLKEY, (o.client_key ? *o.client_key : *o.client_cert).c_str());
  }
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::chrono::milliseconds(o.connect_timeout).count()));
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  // libcurl's receive buffer: a sixteenth of ours (the memory budget sizes buffer_bytes), 16 KiB
  // (libcurl's default) to 256 KiB (fewer write callbacks at loopback speed: bench/http.sh).
  set(CURLOPT_BUFFERSIZE, static_cast<long>(std::clamp<size_t>(o.buffer_bytes / 16, 16u << 10, 256u << 10)));
  set(CURLOPT_NOPROGRESS, 0L);
  set(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
  if (!ok) return fail(Errc::internal, "libcurl rejected an option (libcurl too old?)");
  return h;
}

std::string proxy_of(const ClientConfig& cfg, const std::string& url) {
  return proxy_for(cfg.proxy, url.rfind("https:", 0) == 0 ? "https" : "http");
}

Result<Slist> set_request(CURL* c, const ClientConfig& cfg, const std::string& url, bool send_credentials,
                          bool refresh_auth, const std::vector<std::string>& extra) {
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  // The proxy follows the request's scheme (a redirect may change it). "" = direct, env ignored.
  curl_easy_setopt(c, CURLOPT_PROXY, proxy_of(cfg, url).c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, cfg.proxy.no_proxy.empty() ? nullptr : cfg.proxy.no_proxy.c_str());
  const auto& sig = cfg.opts.aws_sigv4;
  if (send_credentials && sig) {
    curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sig->provider.c_str());   // also sets CURLAUTH_AWS_SIGV4
    curl_easy_setopt(c, CURLOPT_USERNAME, sig->access_key.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, sig->secret_key.c_str());
  } else if (send_credentials && !cfg.opts.username.empty()) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c, CURLOPT_USERNAME, cfg.opts.username.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, cfg.password.c_str());
  } else {
    if (sig) {   // a cross-origin redirect: neither signed nor with the keys
      curl_easy_setopt(c, CURLOPT_AWS_SIGV4, nullptr);
      curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    }
    curl_easy_setopt(c, CURLOPT_USERNAME, nullptr);
    curl_easy_setopt(c, CURLOPT_PASSWORD, nullptr);
  }
  Slist list;
  auto add = [&](const std::string& h) {
    if (auto* l = curl_slist_append(list.get(), h.c_str())) {
      (void)list.release();
      list.reset(l);
    }
  };
  for (const auto& h : cfg.public_headers) add(h);
  if (send_credentials)
    for (const auto& h : cfg.secret_headers) add(h);
  if (send_credentials && sig) {
    // The SHA-256 of the empty GET body: libcurl signs the empty payload's hash, and S3 checks the
    // header against the canonical request (x-amz-* headers are signed).
    add("x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    if (!sig->session_token.empty()) add("x-amz-security-token: " + sig->session_token);
  }
  if (send_credentials && cfg.opts.auth_header) {
    auto line = CDI_TRY(cfg.opts.auth_header(refresh_auth));
    if (!line.empty()) add(line);
  }
  for (const auto& h : extra) add(h);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.get());
  return list;
}

std::string status_message(long st, const std::string& where, std::string_view error_body) {
  std::string msg = "HTTP ";
  msg.append(std::to_string(st));
  if (auto r = reason_phrase(st); !r.empty()) msg.append(" ").append(r);
  msg.append(where);
  if (auto s3e = s3::describe_error_body(error_body); !s3e.empty()) msg.append(" (").append(s3e).append(")");
  else if (auto said = error_body_excerpt(error_body, st); !said.empty()) msg.append(" (server says: ").append(said).append(")");
  return msg;
}

Error status_error(const ClientConfig& cfg, long st, const std::string& url, std::string msg) {
  Errc code = (st == 404 || st == 410) ? Errc::not_found : (st == 401 || st == 403 || st == 407) ? Errc::auth : Errc::network;
  const auto& proxy = proxy_of(cfg, url);
  if (!proxy.empty() && (st == 401 || st == 407))
    msg += " (through proxy " + redact_url(proxy) + "; proxy credentials go in its URL: http://user:password@host:port)";
  std::string hint;   // names CLI flags: Error::hint, rendered by cmd/ only
  if (proxy.empty() && st == 401 && cfg.opts.username.empty() && !cfg.opts.auth_header) {
    msg += " (no credentials given)";
    hint = " (pass --username/--password-file)";
  }
  return Error(code, msg).with_hint(hint);
}

bool tls_failure(CURLcode rc) {
  return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CERTPROBLEM ||
         rc == CURLE_SSL_ISSUER_ERROR || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH || rc == CURLE_SSL_CRL_BADFILE ||
         rc == CURLE_SSL_INVALIDCERTSTATUS;
}

}  // namespace cdi::source::http
