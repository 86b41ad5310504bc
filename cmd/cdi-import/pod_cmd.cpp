// SPDX-License-Identifier: Apache-2.0
// Pod mode: klog flags, stderr logging, the metrics endpoint, and the library's pod runners.
#include "cmd/cdi-import/pod_cmd.hpp"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/pod/env.hpp"
#include "lib/pod/importer.hpp"
#include "lib/pod/klog.hpp"
#include "lib/server/metrics_server.hpp"

extern char** environ;

namespace cdi::cmd {

std::unique_ptr<server::MetricsServer> start_pod_metrics(const pod::Environment& env, server::MetricsOptions mo,
                                                         pod::Logger& log) {
  std::string listen = pod::env_get(env, "CDI_IMPORT_METRICS_LISTEN");
  if (listen.empty()) listen = "0.0.0.0:8443";
  if (listen == "off") return nullptr;
  auto addr = server::parse_listen(listen);
  if (!addr) {
    log.error("metrics disabled: " + addr.error().what());
    return nullptr;
  }
  mo.address = addr->first;
  mo.port = addr->second;
  auto m = server::MetricsServer::start(mo);
  if (!m) {
    log.error("metrics disabled: " + m.error().what());
    return nullptr;
  }
  log.info(1, "metrics listening on https://" + mo.address + ":" + std::to_string((*m)->port()));
  return std::move(*m);
}

void linger_pod_metrics(const pod::Environment& env, const server::MetricsServer* metrics) {
  if (auto linger = pod::env_get(env, "CDI_IMPORT_METRICS_LINGER"); metrics && !linger.empty())
    std::this_thread::sleep_for(std::chrono::seconds(std::stoul(linger)));
}

namespace {
std::mutex g_log_mutex;
}  // namespace

void pod_log_line(std::string_view line) {
  std::lock_guard lock(g_log_mutex);
  std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  std::fflush(stderr);
}

namespace {


// Parses klog flags; on error prints one line and returns nullopt.
std::optional<pod::KlogFlags> klog_flags(int argc, char** argv, const char* who) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto f = pod::parse_klog_flags(args);
  if (!f) {
    std::fprintf(stderr, "%s: error: %s\n", who, f.error().what().c_str());
    return std::nullopt;
  }
  return *f;
}

}  // namespace

int run_pod_importer(int argc, char** argv, const util::CancelToken& cancel) {
  auto flags = klog_flags(argc, argv, "cdi-importer");
  if (!flags) return 2;
  pod::Logger log(flags->verbosity, pod_log_line);
  pod::ImporterContext ctx;
  ctx.env = pod::environment_from(environ);
  ctx.paths = pod::paths_from(ctx.env);
  ctx.log = &log;
  pipeline::ProgressState progress;
  ctx.progress = &progress;
  ctx.cancel = &cancel;
  if (auto t = pod::env_get(ctx.env, "CDI_IMPORT_READY_TRIES"); !t.empty()) ctx.ready_tries = std::stoul(t);

  // Metrics first (CDI's start-up order); a failure is logged and the import goes on.
  server::MetricsOptions mo;
  mo.owner_uid = pod::env_get(ctx.env, "OWNER_UID");
  mo.progress = &progress;
  auto metrics = start_pod_metrics(ctx.env, std::move(mo), log);
  auto outcome = pod::run_importer(ctx);
  linger_pod_metrics(ctx.env, metrics.get());
  return outcome.exit_code;
}

}  // namespace cdi::cmd
