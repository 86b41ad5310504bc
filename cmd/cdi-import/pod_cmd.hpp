// SPDX-License-Identifier: Apache-2.0
// Pod mode entry points: `cdi-importer` / `cdi-import pod-importer` and `cdi-uploadserver` /
// `cdi-import pod-uploadserver`. Configuration comes from the environment; the arguments are klog
// flags only. Each returns the process exit code.
#pragma once

#include <memory>
#include <string_view>

#include "lib/pod/env.hpp"
#include "lib/pod/klog.hpp"
#include "lib/server/metrics_server.hpp"

#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"

namespace cdi::cmd {

// args: the klog flags (argv after the program / subcommand name).
int run_pod_importer(int argc, char** argv, const util::CancelToken& cancel);
int run_pod_uploadserver(int argc, char** argv, const util::CancelToken& cancel);
// `cdi-cloner` / `cdi-import pod-cloner`: CDI's clone source (Go flags, env; cloner_cmd.cpp).
int run_pod_cloner(int argc, char** argv, const util::CancelToken& cancel);
// `cdi-import clone --from SRC (--to DEST | --to-url URL)` (cloner_cmd.cpp).
int run_clone_cmd(int argc, char** argv, const util::CancelToken& cancel);

// The pod's progress-metrics server (HTTPS, self-signed, CDI's :8443): mo without address/port;
// CDI_IMPORT_METRICS_LISTEN overrides where ("off": none). A failure is logged and the pod goes on
// without metrics (nullptr).
std::unique_ptr<server::MetricsServer> start_pod_metrics(const pod::Environment& env, server::MetricsOptions mo,
                                                         pod::Logger& log);
// CDI_IMPORT_METRICS_LINGER=N: keep serving the final value N seconds (tests, debugging).
void linger_pod_metrics(const pod::Environment& env, const server::MetricsServer* metrics);

// One klog line to stderr, whole (a mutex keeps the threads' lines apart).
void pod_log_line(std::string_view line);

// The exit code of an error class (README "Exit codes"; main.cpp).
int exit_code_for(Errc c);

}  // namespace cdi::cmd
