// SPDX-License-Identifier: Apache-2.0
#include "lib/server/metrics_server.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <httplib.h>
#include <thread>

#include "lib/server/http_listener.hpp"

namespace cdi::server {

double ProgressPercent::update(const pipeline::ProgressState& p) {
  double now = 0;
  if (p.phase.load(std::memory_order_relaxed) == pipeline::Phase::done) {
    now = 100;
  } else if (int64_t total = p.total_read.load(std::memory_order_relaxed); total > 0) {
    now = 100.0 * double(p.bytes_read.load(std::memory_order_relaxed)) / double(total);
  } else if (int64_t image = p.total_written.load(std::memory_order_relaxed); image > 0) {
    now = 100.0 * double(p.bytes_written.load(std::memory_order_relaxed)) / double(image);
  }
  now = std::clamp(now, 0.0, 100.0);
  std::lock_guard lock(m_mutex);
  m_value = std::max(m_value, now);
  return m_value;
}

std::string format_percent(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::clamp(value, 0.0, 100.0));
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

Result<std::pair<std::string, uint16_t>> parse_listen(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos)
    return fail(Errc::invalid_argument, "listen address \"" + std::string(text) + "\" is not ADDR:PORT");
  std::string host(text.substr(0, colon));
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  auto port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535)
    return fail(Errc::invalid_argument, "listen address \"" + std::string(text) + "\": bad port");
  return std::pair{host, static_cast<uint16_t>(port)};
}

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};

Result<std::pair<std::unique_ptr<X509, X509Free>, std::unique_ptr<EVP_PKEY, PkeyFree>>> self_signed() {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return fail(Errc::internal, "generating the metrics key failed");
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) return fail(Errc::internal, "allocating the metrics certificate failed");
  X509_set_version(cert.get(), 2);
  unsigned char serial[8];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  uint64_t sn = 0;
  for (unsigned char b : serial) sn = sn << 8 | b;
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), sn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("cloner_target"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) return fail(Errc::internal, "signing the metrics certificate failed");
  return std::pair{std::move(cert), std::move(key)};
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

struct MetricsServer::Impl {
  MetricsOptions opts;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
  ProgressPercent percent;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

MetricsServer::~MetricsServer() {
  if (m_impl->server) m_impl->server->stop();
}

uint16_t MetricsServer::port() const { return m_impl->port; }

std::string MetricsServer::render() {
  const auto& p = *m_impl->opts.progress;
  std::string uid = "{ownerUID=\"" + label_value(m_impl->opts.owner_uid) + "\"}";
  std::string out;
  const auto& name = m_impl->opts.metric;
  out += "# HELP " + name + " " + m_impl->opts.help + "\n";
  out += "# TYPE " + name + " counter\n";
  out += name + uid + " " + format_percent(m_impl->percent.update(p)) + "\n";
  out += "# HELP cdi_import_read_bytes_total Bytes read from the source (before decompression)\n";
  out += "# TYPE cdi_import_read_bytes_total counter\n";
  out += "cdi_import_read_bytes_total" + uid + " " + std::to_string(p.bytes_read.load()) + "\n";
  out += "# HELP cdi_import_written_bytes_total Guest bytes made final in the target (data and zeros)\n";
  out += "# TYPE cdi_import_written_bytes_total counter\n";
  out += "cdi_import_written_bytes_total" + uid + " " + std::to_string(p.bytes_written.load()) + "\n";
  if (int64_t t = p.total_read.load(); t >= 0) {
    out += "# HELP cdi_import_source_bytes Size of the source in bytes, when known\n";
    out += "# TYPE cdi_import_source_bytes gauge\n";
    out += "cdi_import_source_bytes" + uid + " " + std::to_string(t) + "\n";
  }
  if (int64_t t = p.total_written.load(); t >= 0) {
    out += "# HELP cdi_import_image_bytes Size of the image in bytes, when known\n";
    out += "# TYPE cdi_import_image_bytes gauge\n";
    out += "cdi_import_image_bytes" + uid + " " + std::to_string(t) + "\n";
  }
  return out;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const MetricsOptions& opts) {
  if (!opts.progress) return fail(Errc::internal, "metrics server without progress state");
  auto [cert, key] = CDI_TRY(self_signed());
  auto impl = std::make_unique<Impl>();
  impl->opts = opts;
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx || SSL_CTX_use_certificate(ctx.get(), cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 ||
      SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1)
    return fail(Errc::internal, "the metrics TLS context could not be set up");
  // CDI's metrics server: ReadHeaderTimeout 10 s (pkg/util/prometheus); the scraper needs few
  // connections, so a smaller cap than the upload server's.
  ConnectionLimits limits;
  limits.max_connections = 128;
  limits.stall_timeout = std::chrono::seconds(10);
  limits.stop_grace = std::chrono::seconds(1);
  impl->server = std::make_unique<HttpServer>(limits, ctx.get(), nullptr);
  std::unique_ptr<MetricsServer> self(new MetricsServer(std::move(impl)));
  Impl* raw = self->m_impl.get();
  MetricsServer* srv = self.get();
  auto handler = [srv](const httplib::Request&, httplib::Response& res) {
    res.set_content(srv->render(), "text/plain; version=0.0.4; charset=utf-8");
  };
  raw->server->Get(R"(/.*)", handler);
  auto port = raw->server->start(opts.address, opts.port);
  if (!port) return std::unexpected(port.error().context("metrics"));
  raw->port = *port;
  return self;
}

}  // namespace cdi::server
