// SPDX-License-Identifier: Apache-2.0
// The clone source: `cdi-cloner` (CDI's pod contract: Go flags, env, metrics on :8443,
// termination message) and `cdi-import clone` (local copy, or the same wire protocol to any CDI
// upload server from the command line).
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cmd/cdi-import/pod_cmd.hpp"
#include "formats/snappy/snappy_encoder.hpp"
#include "cmd/cdi-import/cli_util.hpp"
#include "lib/clone/clone_stream.hpp"
#include "lib/clone/local_copy.hpp"
#include "lib/clone/upload_client.hpp"
#include "lib/io/counting_reader.hpp"
#include "lib/pod/cloner.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/klog.hpp"
#include "lib/server/metrics_server.hpp"
#include "lib/source/in_use.hpp"
#include "lib/util/units.hpp"

extern char** environ;

namespace cdi::cmd {

namespace {


Result<std::string> read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::not_found, std::string(what) + " " + path + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int run_pod_cloner(int argc, char** argv, const util::CancelToken& cancel) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = pod::parse_cloner_args(args);
  if (parsed && parsed->help) {
    std::fprintf(stderr, "%s", pod::cloner_usage().c_str());
    return 0;
  }
  pod::Logger log(parsed ? parsed->klog.verbosity : 0, pod_log_line);
  if (!parsed) {
    log.error(parsed.error().what());
    return exit_code_for(parsed.error().code());
  }
  pod::ClonerContext ctx;
  auto env = pod::environment_from(environ);
  auto cfg = pod::parse_cloner_env(env);
  if (!cfg) {
    log.error(cfg.error().what());
    return exit_code_for(cfg.error().code());
  }
  ctx.args = *parsed;
  ctx.config = *cfg;
  ctx.paths = pod::paths_from(env);
  ctx.log = &log;
  pipeline::ProgressState progress;
  ctx.progress = &progress;
  ctx.cancel = &cancel;
  if (auto t = pod::env_get(env, "CDI_IMPORT_TAR"); !t.empty()) ctx.tar = t;

  // CDI's StartPrometheusEndpoint: HTTPS, self-signed, :8443. A failure is logged, the clone goes on.
  server::MetricsOptions mo;
  mo.owner_uid = ctx.config.owner_uid;
  mo.progress = &progress;
  mo.metric = "kubevirt_cdi_clone_progress_total";
  mo.help = "The clone progress in percentage";
  auto metrics = start_pod_metrics(env, std::move(mo), log);
  auto r = pod::run_cloner(ctx);
  linger_pod_metrics(env, metrics.get());
  if (!r) {
    log.error(r.error().what());
    return exit_code_for(r.error().code());
  }
  return 0;
}

int run_clone_cmd(int argc, char** argv, const util::CancelToken& cancel) {
  CLI::App app{"Copy a VM disk (block device, image file, or a directory holding disk.img): locally, sparse and "
               "byte-exact, or to a CDI upload server with the host-assisted clone protocol",
               "cdi-import clone"};
  app.footer("Exit codes: 0 ok, 2 usage, 3 io, 6 target too small, 7 auth, 8 network, 9 not found, 11 in use, "
             "130 cancelled.");
  std::string from, to, to_url, client_cert, client_key, ca_cert, content_type = "auto";
  bool force_shared = false, preallocation = false;
  unsigned connect_attempts = 5;
  app.add_option("--from", from, "source: block device, file, or directory (with --to: its disk.img)")->required();
  auto* o_to = app.add_option("--to", to, "local target: file, block device, or directory (DIR/disk.img)");
  auto* o_url = app.add_option("--to-url", to_url, "upload server URL (https://HOST:PORT/v1beta1/upload)");
  o_to->excludes(o_url);
  app.add_option("--client-cert", client_cert, "with --to-url: PEM client certificate file");
  app.add_option("--client-key", client_key, "with --to-url: PEM key file of --client-cert");
  app.add_option("--ca-cert", ca_cert, "with --to-url: PEM file of the CA the server's certificate must chain to");
  app.add_option("--clone-type", content_type,
                 "with --to-url: auto (a directory → filesystem-clone, else blockdevice-clone), "
                 "blockdevice-clone or filesystem-clone")
      ->check(CLI::IsMember({"auto", "blockdevice-clone", "filesystem-clone"}));
  app.add_flag("--preallocation", preallocation, "with --to-url filesystem-clone: tar without -S (as CDI when preallocating)");
  app.add_option("--connect-attempts", connect_attempts, "with --to-url: tries while the connection is refused (default 5)");
  app.add_flag("--force-shared", force_shared, "copy a source that is in use (a running VM's disk): may be inconsistent");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli_parse_failure(app, e);
  }
  auto report = [](const Error& e) {
    std::fprintf(stderr, "cdi-import: error: %s\n", e.what_with_hint().c_str());
    return exit_code_for(e.code());
  };
  if (to.empty() == to_url.empty()) {
    std::fprintf(stderr, "cdi-import: error: give exactly one of --to and --to-url (see --help)\n");
    return 2;
  }
  if (!to.empty()) {
    clone::LocalCopyOptions lo;
    lo.force_shared = force_shared;
    lo.cancel = &cancel;
    auto r = clone::local_copy(from, to, lo);
    if (!r) return report(r.error());
    std::fprintf(stderr, "cdi-import: cloned %s to %s: %s (%s of data, the rest zeros)\n", r->from.c_str(),
                 r->to.c_str(), util::format_bytes(r->size).c_str(), util::format_bytes(r->data_bytes).c_str());
    return 0;
  }

  if (client_cert.empty() || client_key.empty() || ca_cert.empty()) {
    std::fprintf(stderr, "cdi-import: error: --to-url needs --client-cert, --client-key and --ca-cert (see --help)\n");
    return 2;
  }
  clone::UploadOptions uo;
  auto cert = read_text_file(client_cert, "--client-cert");
  if (!cert) return report(cert.error());
  auto key = read_text_file(client_key, "--client-key");
  if (!key) return report(key.error());
  auto ca = read_text_file(ca_cert, "--ca-cert");
  if (!ca) return report(ca.error());
  std::error_code ec;
  bool is_dir = std::filesystem::is_directory(from, ec);
  clone::CloneKind kind = content_type == "auto" ? (is_dir ? clone::CloneKind::filesystem : clone::CloneKind::blockdevice)
                          : content_type == "filesystem-clone" ? clone::CloneKind::filesystem
                                                               : clone::CloneKind::blockdevice;
  if (kind == clone::CloneKind::filesystem && !is_dir)
    return report(Error(Errc::invalid_argument, "filesystem-clone needs a directory: " + from));
  if (kind == clone::CloneKind::blockdevice && is_dir)
    return report(Error(Errc::invalid_argument, "blockdevice-clone needs a device or a file, not a directory: " + from));

  std::unique_ptr<io::Reader> input;
  if (kind == clone::CloneKind::filesystem) {
    if (!force_shared)
      if (auto c = source::check_tree_free(from); !c) return report(c.error());
    clone::TarStreamOptions to_opts;
    to_opts.sparse = !preallocation;
    to_opts.cancel = &cancel;
    if (const char* t = std::getenv("CDI_IMPORT_TAR"); t && *t) to_opts.tar = t;
    else if (::access("/usr/bin/tar", X_OK) != 0) to_opts.tar = "tar";
    auto r = clone::open_tar_stream(from, to_opts);
    if (!r) return report(r.error());
    input = std::move(*r);
  } else {
    struct stat st {};
    if (::stat(from.c_str(), &st) != 0) return report(sys_error(from));
    if (!force_shared) {
      auto c = S_ISBLK(st.st_mode) ? source::check_device_free(from) : source::check_image_free(from);
      if (!c) return report(c.error());
    }
    auto r = clone::open_raw_stream(from, &cancel);
    if (!r) return report(r.error());
    input = std::move(*r);
  }
  std::atomic<uint64_t> raw_bytes{0};
  input = std::make_unique<io::CountingReader>(std::move(input), raw_bytes);
  formats::CodecOptions co;
  co.cancel = &cancel;
  auto framed = formats::snappy::open_encoder(std::move(input), co);
  if (!framed) return report(framed.error());
  uo.url = to_url;
  uo.content_type = std::string(clone::content_type_name(kind));
  uo.client_cert = *cert;
  uo.client_key = *key;
  uo.server_ca = *ca;
  uo.cancel = &cancel;
  uo.connect_attempts = connect_attempts;
  uo.log = [](std::string_view s) { std::fprintf(stderr, "cdi-import: %.*s\n", int(s.size()), s.data()); };
  auto r = clone::post_stream(**framed, uo);
  if (!r) return report(r.error());
  std::fprintf(stderr, "cdi-import: cloned %s (%s, %s) to %s: HTTP %ld\n", from.c_str(), uo.content_type.c_str(),
               util::format_bytes(raw_bytes.load()).c_str(), to_url.c_str(), r->status);
  return 0;
}

}  // namespace cdi::cmd
