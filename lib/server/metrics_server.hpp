// SPDX-License-Identifier: Apache-2.0
// The progress endpoint CDI's controller scrapes (cdi-importer-spec.md §6): HTTPS with a
// self-signed certificate generated at start, every path answers with the Prometheus text
// exposition of kubevirt_cdi_import_progress_total{ownerUID="…"} (0 → 100, monotonic, plain
// decimal) plus byte counters. A metrics failure never fails an import: callers log start()'s
// error and go on.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "lib/pipeline/progress.hpp"
#include "lib/util/error.hpp"

namespace cdi::server {

// The monotonic percentage CDI reports: wire bytes read / source size while the size is known,
// else guest bytes written / image size; 100 once the phase is done; never decreases.
class ProgressPercent {
 public:
  // Folds the current state in and returns the percentage (0..100).
  double update(const pipeline::ProgressState& p);

 private:
  std::mutex m_mutex;
  double m_value = 0;
};

// "42.5", "100", "0", "7.25": at most two decimals, never an exponent.
std::string format_percent(double value);

struct MetricsOptions {
  std::string address = "0.0.0.0";   // CDI: all interfaces
  uint16_t port = 8443;               // 0 = kernel-chosen (see MetricsServer::port)
  std::string owner_uid;              // OWNER_UID
  const pipeline::ProgressState* progress = nullptr;  // required, must outlive the server
  // The percentage metric's name and help (the cloner serves kubevirt_cdi_clone_progress_total).
  std::string metric = "kubevirt_cdi_import_progress_total";
  std::string help = "The import progress in percentage";
};

// ADDR:PORT ("0.0.0.0:8443", "127.0.0.1:0", "[::1]:9000", ":8443"). Errors: invalid_argument.
Result<std::pair<std::string, uint16_t>> parse_listen(std::string_view text);

class MetricsServer {
 public:
  // Generates a P-256 key and a self-signed certificate (CN cloner_target), binds and serves on a
  // thread. Errors: io (cannot bind), internal (OpenSSL could not make the certificate).
  static Result<std::unique_ptr<MetricsServer>> start(const MetricsOptions& opts);
  // Stops serving and joins the thread.
  ~MetricsServer();
  uint16_t port() const;
  // The exposition text served on every path.
  std::string render();

  struct Impl;

 private:
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace cdi::server
