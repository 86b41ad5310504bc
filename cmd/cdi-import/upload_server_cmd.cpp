// SPDX-License-Identifier: Apache-2.0
// `cdi-import upload-server`: flags → server::UploadServerOptions, the progress view, and the one
// line that ends the run. Exit 0 after an upload completed (or the deadline passed with nothing
// in flight), 1 when the server could not start or an async upload failed after its reply,
// 2 for usage errors, 130 when cancelled.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <tuple>

#include "cmd/cdi-import/progress_view.hpp"
#include "cmd/cdi-import/cli_util.hpp"
#include "lib/server/metrics_server.hpp"
#include "lib/server/upload_server.hpp"
#include "lib/util/rfc3339.hpp"
#include "lib/util/units.hpp"

using namespace cdi;

// Entry point of the subcommand (argv[0] is the subcommand's program name). `cancel` is set by
// the signal handlers main() installed.
int run_upload_server_cmd(int argc, char** argv, util::CancelToken& cancel) {
  CLI::App app{"Receive one image over HTTP(S) (CDI upload-server routes) and stream it into the target",
               "cdi-import upload-server"};
  app.footer(
      "Routes: POST /v1beta1|v1alpha1/{upload,upload-async,upload-archive,upload-form,upload-form-async}, /healthz.\n"
      "Optional header X-Checksum: sha256:<hex> (md5, sha1, sha512) verified over the uploaded bytes.\n"
      "Header x-cdi-content-type: blockdevice-clone|filesystem-clone: a CDI host-assisted clone (snappy-framed;\n"
      "sync routes only).\n"
      "Exit codes: 0 upload complete (or deadline passed), 1 failure, 2 usage, 130 cancelled.");
  std::string listen = "127.0.0.1:8443", dest, scratch, image_size, progress = "auto", tls_cert, tls_key, client_ca,
              client_name, deadline, tls_min_version, tls_ciphers, hold_limit;
  bool insecure_http = false;
  int verbose = 0;
  double linger = 0;
  unsigned threads = 0;
  app.add_option("--listen", listen, "ADDR:PORT to listen on (default 127.0.0.1:8443; port 0 = any, printed)");
  app.add_option("--dest,-d", dest, "target: file or block device (upload-archive: a directory; filesystem-clone: extracted into it, or into the file's directory)")->required();
  app.add_option("--scratch-dir", scratch, "where vmdk/vhd/vhdx/vdi streams may spool for qemu-img");
  app.add_option("--image-size", image_size, "requested size (Kubernetes quantity); the image must fit");
  app.add_option("--tls-cert", tls_cert, "PEM server certificate (chain)");
  app.add_option("--tls-key", tls_key, "PEM key of --tls-cert");
  app.add_option("--client-ca", client_ca, "CA bundle: uploads need a client certificate it verifies (401 otherwise)");
  app.add_option("--client-name", client_name, "required Common Name of the client certificate (with --client-ca)");
  app.add_option("--tls-min-version", tls_min_version, "1.2 (default) or 1.3 (also VersionTLS12/VersionTLS13)");
  app.add_option("--tls-ciphers", tls_ciphers, "comma list of cipher names as CDI's TLS_CIPHERS (OpenSSL, IANA/Go, TLS 1.3; unknown skipped)");
  app.add_flag("--insecure-http", insecure_http, "serve plain HTTP (local use and tests)");
  app.add_option("--deadline", deadline, "RFC 3339 time after which the server stops when no upload is in flight");
  app.add_option("--linger", linger, "seconds to keep answering 409 after a completed upload before exiting (default 0)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--progress", progress, "auto|bar|json|none (auto: a live line on a terminal)")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}));
  app.add_option("--threads", threads, "decompression threads (default: the CPUs this process may use)");
  app.add_option("--qcow2-hold-limit", hold_limit, "memory for out-of-order qcow2 data (quantity, default 64Mi)");
  app.add_flag("-v,--verbose", verbose, "log requests and what the pipeline decides");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cmd::cli_parse_failure(app, e);
  }
  auto usage = [](const std::string& m) {
    std::fprintf(stderr, "cdi-import: error: %s\n", m.c_str());
    return 2;
  };

  server::UploadServerOptions o;
  auto addr = server::parse_listen(listen);
  if (!addr) return usage("--listen: " + addr.error().message());
  std::tie(o.listen_address, o.port) = *addr;
  if (!tls_cert.empty()) o.tls_cert = tls_cert;
  if (!tls_key.empty()) o.tls_key = tls_key;
  if (!client_ca.empty()) o.client_ca = client_ca;
  o.client_name = client_name;
  o.tls_min_version = tls_min_version;
  o.tls_ciphers = tls_ciphers;
  o.insecure_http = insecure_http;
  o.linger_after_done = std::chrono::milliseconds(static_cast<int64_t>(linger * 1000));
  if (!deadline.empty()) {
    auto t = util::parse_rfc3339(deadline);
    if (!t) return usage("--deadline: not an RFC 3339 time: '" + deadline + "'");
    o.deadline = *t;
  }
  pipeline::ProgressState state;
  auto& io = o.import;
  io.dest = dest;
  if (!scratch.empty()) io.scratch_dir = scratch;
  if (!image_size.empty()) {
    auto q = util::parse_quantity(image_size);
    if (!q) return usage(q.error().context("--image-size").what());
    io.image_size = *q;
    io.image_size_what = "--image-size";
  }
  if (!hold_limit.empty()) {
    auto q = util::parse_quantity(hold_limit);
    if (!q) return usage(q.error().context("--qcow2-hold-limit").what());
    io.hold_limit = *q;
  }
  io.threads = threads;
  io.progress = &state;
  io.cancel = &cancel;
  if (verbose) io.log = [](std::string_view s) { std::fprintf(stderr, "cdi-import: %.*s\n", int(s.size()), s.data()); };
  o.on_warning = [](const std::string& s) { std::fprintf(stderr, "cdi-import: warning: %s\n", s.c_str()); };
  o.on_listening = [](uint16_t port) { std::fprintf(stderr, "cdi-import: upload server listening on port %u\n", port); };

  auto mode = progress_mode_from(progress, isatty(STDERR_FILENO) != 0);
  ProgressView view(state, mode);
  view.start();
  auto r = server::run_upload_server(o);
  view.stop();
  if (!r) {
    std::fprintf(stderr, "cdi-import: error: %s\n", r.error().what_with_hint().c_str());
    return r.error().code() == Errc::cancelled ? 130 : 1;
  }
  if (r->deadline_passed) {
    std::fprintf(stderr, "cdi-import: deadline passed, no upload completed\n");
    return 0;
  }
  std::fprintf(stderr, "%s\n", summary_line(r->report, dest).c_str());
  std::fprintf(stderr, "cdi-import: upload complete\n");
  return 0;
}
