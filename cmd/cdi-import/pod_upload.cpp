// SPDX-License-Identifier: Apache-2.0
// `cdi-uploadserver` / `cdi-import pod-uploadserver`: the upload server configured from CDI's
// environment (cdi-importer-spec.md §4.3), ending with CDI's termination message.
#include <cstdio>
#include <string>
#include <vector>

#include "cmd/cdi-import/pod_cmd.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/klog.hpp"
#include "lib/pod/termination.hpp"
#include "lib/pod/upload_env.hpp"
#include "lib/server/upload_server.hpp"

extern char** environ;

namespace cdi::cmd {

int run_pod_uploadserver(int argc, char** argv, const util::CancelToken& cancel) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto flags = pod::parse_klog_flags(args);
  if (!flags) {
    std::fprintf(stderr, "cdi-uploadserver: error: %s\n", flags.error().what().c_str());
    return 2;
  }
  pod::Logger log(flags->verbosity, [](std::string_view line) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
  });
  auto env = pod::environment_from(environ);
  auto paths = pod::paths_from(env);
  auto opts = pod::upload_options_from_env(env, paths);
  if (!opts) {
    log.error(opts.error().what());
    // CDI: an unparsable DEADLINE is fatal with exit 255; a bad TLS config exits 1.
    return pod::upload_env_exit_code(opts.error());
  }
  pipeline::ProgressState progress;
  opts->import.progress = &progress;
  opts->import.cancel = &cancel;
  opts->import.log = [&log](std::string_view s) { log.info(2, s); };
  log.info(1, "Upload destination: " + opts->import.dest);
  opts->on_warning = [&log](const std::string& s) { log.warning(s); };
  opts->on_listening = [&log](uint16_t port) { log.info(0, "Upload server listening on port " + std::to_string(port)); };
  auto r = server::run_upload_server(*opts);
  if (!r) {
    log.error("UploadServer failed: " + r.error().what());
    return 1;
  }
  std::string msg = r->deadline_passed ? pod::deadline_passed_message()
                    : pipeline::is_clone(r->report.content_type)
                        ? pod::clone_target_complete_message(r->report.preallocation_applied)
                        : pod::upload_complete_message(r->report.preallocation_applied);
  log.info(1, msg);
  if (auto w = pod::write_termination_log(paths.termination_log(), msg); !w) {
    log.error("Unable to write termination message: " + w.error().what());
    return 1;
  }
  return 0;
}

}  // namespace cdi::cmd
