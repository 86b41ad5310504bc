// SPDX-License-Identifier: Apache-2.0
// The thin executable: flags → ImportOptions, signals → CancelToken, progress rendering, and the
// one place where an Error becomes a message and an exit code.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "cmd/cdi-import/pod_cmd.hpp"
#include "cmd/cdi-import/progress_view.hpp"
#include "cmd/cdi-import/tools_cmd.hpp"
#include "cmd/cdi-import/cli_util.hpp"
#include "cmd/cdi-import/s3_cli.hpp"
#include "lib/server/metrics_server.hpp"
#include "lib/pipeline/checksum_list.hpp"
#include "lib/pipeline/import.hpp"
#include "lib/source/in_use.hpp"
#include "lib/util/units.hpp"

using namespace cdi;

namespace {

util::CancelToken g_cancel;

void on_signal(int) { g_cancel.cancel(); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;   // a second signal kills at once
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace

// Exit codes, one per error class (documented in README).
int cmd::exit_code_for(Errc c) {
  switch (c) {
    case Errc::internal: return 1;
    case Errc::invalid_argument: return 2;
    case Errc::io: return 3;
    case Errc::corrupt_input: return 4;
    case Errc::unsupported: return 5;
    case Errc::limit: return 6;
    case Errc::auth: return 7;
    case Errc::network: return 8;
    case Errc::not_found: return 9;
    case Errc::scratch_required: return 10;
    case Errc::busy: return 11;
    case Errc::cancelled: return 130;
  }
  return 1;
}

namespace {

int exit_code(Errc c) { return cmd::exit_code_for(c); }

int report_error(const Error& e) {
  std::fprintf(stderr, "cdi-import: error: %s\n", e.what_with_hint().c_str());
  return exit_code(e.code());
}

// Parses the command line. Returns an exit code when the program should stop here: 0 after
// --help/--version, 2 (one line on stderr) for a usage error.
std::optional<int> parse_cli(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return cmd::cli_parse_failure(app, e);
  }
  return std::nullopt;
}

struct CommonFlags {
  std::string content_type = "kubevirt";
  std::string tar_entry;
  bool force_shared = false;
  unsigned threads = 0;
  std::string qcow2_decoder = "native";
  std::string xz_decoder = "auto";
  std::string memory_limit;
};

void add_common(CLI::App& app, CommonFlags& f) {
  app.add_option("--content-type", f.content_type, "kubevirt (a disk image) or archive (a tar to extract)")
      ->check(CLI::IsMember({"kubevirt", "archive"}));
  app.add_option("--tar-entry", f.tar_entry, "the file inside a tar that holds the disk");
  app.add_flag("--force-shared", f.force_shared, "read a source that is in use (a running VM's disk): may be inconsistent");
  app.add_option("--threads", f.threads, "decompression threads (default: the CPUs this process may use)");
  app.add_option("--qcow2-decoder", f.qcow2_decoder, "native (streaming, no scratch) or qemu-img")
      ->check(CLI::IsMember({"native", "qemu-img"}));
  app.add_option("--xz-decoder", f.xz_decoder,
                 "auto (a local file of several xz blocks: blocks in parallel, read by offset) or stream")
      ->check(CLI::IsMember({"auto", "stream"}));
  app.add_option("--memory-limit", f.memory_limit,
                 "memory this import may use (quantity: 64Mi, 1Gi; default: the cgroup's memory limit; 0 = none); "
                 "the decompressors are sized from it")
      ->check(CLI::Validator(
          [](std::string& s) {
            auto q = util::parse_quantity(s);
            return q ? std::string() : q.error().what();
          },
          "SIZE"));
}

void apply_common(const CommonFlags& f, pipeline::ImportOptions& o) {
  o.content_type = f.content_type == "archive" ? pipeline::ContentType::archive : pipeline::ContentType::kubevirt;
  if (!f.tar_entry.empty()) o.tar_entry = f.tar_entry;
  o.source.force_shared = f.force_shared;
  o.threads = f.threads;
  o.qcow2_via_qemu_img = f.qcow2_decoder == "qemu-img";
  o.xz_stream_only = f.xz_decoder == "stream";
  if (!f.memory_limit.empty()) {
    if (auto q = util::parse_quantity(f.memory_limit)) o.memory_limit = *q;   // validated by the flag's check
  }
}

// HTTP(S) source flags (lib/source/http_source.hpp). Secrets come only from files.
struct HttpFlags {
  std::string cert_dir, client_cert, client_key, username, password_file;
  bool insecure_tls = false;
  std::vector<std::string> headers, header_files;
  unsigned retries = 8;
  unsigned retry_max_time = 600;
  unsigned stall_timeout = 120;
};

void add_http(CLI::App& app, HttpFlags& f) {
  app.add_option("--cert-dir", f.cert_dir, "trust every PEM certificate in this directory, besides the system store");
  app.add_flag("--insecure-tls", f.insecure_tls, "do not verify the server's TLS certificate");
  app.add_option("--client-cert", f.client_cert, "PEM client certificate for TLS");
  app.add_option("--client-key", f.client_key, "PEM key of --client-cert (default: inside the certificate file)");
  app.add_option("--username", f.username, "basic auth user (with --password-file)");
  app.add_option("--password-file", f.password_file, "file holding the basic auth password (never on the command line)");
  app.add_option("--header", f.headers, "extra request header 'Name: value' (repeatable)");
  app.add_option("--header-file", f.header_files, "file holding one extra header 'Name: value' (repeatable; for secrets)");
  app.add_option("--retries", f.retries, "failed attempts in a row before a download gives up (default 8)");
  app.add_option("--retry-max-time", f.retry_max_time, "seconds a download may spend retrying without progress (default 600)");
  app.add_option("--stall-timeout", f.stall_timeout, "seconds without a byte before a connection counts as dropped (default 120)")
      ->check(CLI::Range(1u, 86400u));
}

void apply_http(const HttpFlags& f, pipeline::ImportOptions& o) {
  auto& h = o.source.http;
  if (!f.cert_dir.empty()) h.cert_dir = f.cert_dir;
  h.insecure_tls = f.insecure_tls;
  if (!f.client_cert.empty()) h.client_cert = f.client_cert;
  if (!f.client_key.empty()) h.client_key = f.client_key;
  h.username = f.username;
  if (!f.password_file.empty()) h.password_file = f.password_file;
  h.headers = f.headers;
  h.header_files.assign(f.header_files.begin(), f.header_files.end());
  h.retries = f.retries;
  h.retry_max_time = std::chrono::seconds(f.retry_max_time);
  h.stall_timeout = std::chrono::seconds(f.stall_timeout);
}

// Google Cloud Storage sources (gs://; lib/source/gcs_source.hpp). The key file comes from
// --gcs-credentials or GOOGLE_APPLICATION_CREDENTIALS; no key = anonymous.
struct GcsFlags {
  std::string credentials, endpoint;
};

void add_gcs(CLI::App& app, GcsFlags& f) {
  app.add_option("--gcs-credentials", f.credentials,
                 "Google service account key file (default: $GOOGLE_APPLICATION_CREDENTIALS; none: anonymous)");
  app.add_option("--gcs-endpoint", f.endpoint,
                 "GCS API endpoint for gs:// URLs (default: $STORAGE_EMULATOR_HOST, else https://storage.googleapis.com)");
}

// `source`: the --source value (add_s3 declares the flag): "gcs" reads an http(s) URL as GCS.
void apply_gcs(const GcsFlags& f, const std::string& source, pipeline::ImportOptions& o) {
  auto& g = o.source.gcs;
  g.force = source == "gcs";
  g.endpoint = f.endpoint;
  if (!f.credentials.empty()) g.credentials = f.credentials;
  else if (const char* env = std::getenv("GOOGLE_APPLICATION_CREDENTIALS"); env && *env) g.credentials = env;
}

// Container image sources (docker://, oci:, oci-archive:; lib/source/registry_source.hpp).
struct RegistryFlags {
  std::string arch, os = "linux", variant, auth_file;
};

void add_registry(CLI::App& app, RegistryFlags& f) {
  app.add_option("--arch", f.arch, "image architecture to select from an index (default: this machine's); "
                                   "a single-arch image must match it when given");
  app.add_option("--os", f.os, "image OS to select from an index (default linux)");
  app.add_option("--variant", f.variant, "image architecture variant to select from an index (v7, v8…)");
  app.add_option("--registry-auth-file", f.auth_file, "Docker config / dockerconfigjson file with registry credentials");
}

void apply_registry(const RegistryFlags& f, pipeline::ImportOptions& o) {
  o.source.registry.architecture = f.arch;
  o.source.registry.os = f.os;
  o.source.registry.variant = f.variant;
  if (!f.auth_file.empty()) o.source.registry.auth_file = f.auth_file;
}

// The plan's needs in one line: "random access, scratch (about 1.0 GiB)".
std::string needs_text(const pipeline::PlanNeeds& n) {
  std::vector<std::string> parts;
  if (n.random_access) parts.push_back("random access");
  if (n.scratch)
    parts.push_back("scratch" + (n.scratch_estimate ? " (about " + util::format_bytes(*n.scratch_estimate) + ")" : std::string()));
  if (n.memory) parts.push_back("memory up to " + util::format_bytes(n.memory));
  if (!n.scratch_when.empty()) parts.push_back("scratch " + n.scratch_when);
  if (n.second_read) parts.push_back("a second read of the source");
  if (parts.empty()) return "nothing beyond the stream";
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : ", ") + p;
  return s;
}

void print_plan(const pipeline::Plan& p) {
  std::cout << "plan:\n";
  std::cout << "  converter: " << pipeline::describe(p.converter) << "\n";
  std::cout << "  access: " << pipeline::to_string(p.access) << "\n";
  std::cout << "  needs: " << needs_text(p.needs) << "\n";
  for (const auto& why : p.reasons) std::cout << "  why: " << why << "\n";
}

nlohmann::json plan_json(const pipeline::Plan& p) {
  nlohmann::json j;
  j["stages"] = p.stages;
  j["format"] = p.format;
  j["converter"] = pipeline::to_string(p.converter);
  j["converter_detail"] = pipeline::describe(p.converter);
  j["access"] = pipeline::to_string(p.access);
  auto target = pipeline::to_string(p.target);
  j["target"] = target.empty() ? nlohmann::json(nullptr) : nlohmann::json(target);
  nlohmann::json n;
  n["scratch"] = p.needs.scratch;
  n["scratch_estimate"] = p.needs.scratch_estimate ? nlohmann::json(*p.needs.scratch_estimate) : nlohmann::json(nullptr);
  if (!p.needs.scratch_when.empty()) n["scratch_when"] = p.needs.scratch_when;
  n["random_access"] = p.needs.random_access;
  n["memory"] = p.needs.memory;
  n["second_read"] = p.needs.second_read;
  j["needs"] = n;
  j["reasons"] = p.reasons;
  return j;
}

int run_info(int argc, char** argv) {
  CLI::App app{"Show what an image is (compression chain, format, virtual size, scratch needs) without writing anything",
               "cdi-import info"};
  std::string url;
  bool json = false;
  CommonFlags common;
  app.add_option("url", url, "image location: a path (file or block device), file:// URL, - (stdin), http(s)://, s3://, gs://, docker://, oci:, oci-archive:")->required();
  app.add_flag("--json", json, "print JSON");
  // The options an import would decide with, so the printed plan is the import's.
  std::string scratch, hold_limit, checksum;
  app.add_option("--scratch-dir", scratch, "plan as an import with this scratch directory would (nothing is written)");
  app.add_option("--qcow2-hold-limit", hold_limit, "plan with this qcow2 hold limit (quantity, default 64Mi)");
  app.add_option("--checksum", checksum, "plan as an import verifying this digest would (nothing is verified)");
  add_common(app, common);
  HttpFlags http;
  add_http(app, http);
  RegistryFlags registry;
  add_registry(app, registry);
  cmd::S3Flags s3;
  cmd::add_s3(app, s3);
  GcsFlags gcs;
  add_gcs(app, gcs);
  if (auto rc = parse_cli(app, argc, argv)) return *rc;
  pipeline::ImportOptions o;
  o.url = url;
  if (!scratch.empty()) o.scratch_dir = scratch;
  if (!hold_limit.empty()) {
    auto q = util::parse_quantity(hold_limit);
    if (!q) return report_error(q.error().context("--qcow2-hold-limit"));
    o.hold_limit = *q;
  }
  if (!checksum.empty()) {
    auto c = util::parse_checksum(checksum);
    if (!c) return report_error(c.error().context("--checksum: invalid checksum"));
    o.checksum = *c;
  }
  apply_common(common, o);
  apply_http(http, o);
  apply_registry(registry, o);
  if (auto r = cmd::apply_s3(s3, o); !r) return report_error(r.error());
  apply_gcs(gcs, s3.source, o);
  // A block-device source: say whether it is in use (mounted, held open exclusively) first; a
  // busy device is then refused by inspect() unless --force-shared, like an import.
  std::optional<std::string> in_use;
  bool is_block = false;
  if (struct stat st {}; url.find("://") == std::string::npos && ::stat(url.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
    is_block = true;
    auto u = source::device_in_use(url);
    if (!u) return report_error(u.error());
    in_use = *u;
    if (!json) std::cout << "in use: " << (in_use ? "yes (" + *in_use + ")" : std::string("no")) << std::endl;
  }
  auto r = pipeline::inspect(o);
  if (!r) {
    if (json && is_block) std::cout << nlohmann::json{{"url", url}, {"in_use", in_use.has_value()}}.dump() << "\n";
    return report_error(r.error());
  }
  if (json) {
    nlohmann::json j;
    j["url"] = url;
    if (is_block) {
      j["in_use"] = in_use.has_value();
      if (in_use) j["in_use_reason"] = *in_use;
    }
    j["chain"] = r->chain;
    j["chain_text"] = pipeline::chain_text(r->chain);
    j["format"] = r->format;
    j["virtual_size"] = r->virtual_size ? nlohmann::json(*r->virtual_size) : nlohmann::json(nullptr);
    j["source_size"] = r->source_size ? nlohmann::json(*r->source_size) : nlohmann::json(nullptr);
    j["scratch_required"] = r->scratch_required;
    if (r->scratch_required) j["scratch_reason"] = r->scratch_reason;
    j["converter"] = r->converter;
    j["plan"] = plan_json(r->plan);
    j["labels"] = nlohmann::json::object();
    for (const auto& [k, v] : r->labels) j["labels"][k] = v;
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "chain: " << pipeline::chain_text(r->chain) << "\n";
    std::cout << "format: " << r->format << "\n";
    if (r->virtual_size)
      std::cout << "virtual size: " << *r->virtual_size << " (" << util::format_bytes(*r->virtual_size) << ")\n";
    else
      std::cout << "virtual size: unknown until decompressed\n";
    if (r->source_size) std::cout << "source size: " << *r->source_size << "\n";
    std::cout << "converter: " << r->converter << "\n";
    std::cout << "scratch: " << (r->scratch_required ? "required (" + r->scratch_reason + ")" : "not needed") << "\n";
    for (const auto& [k, v] : r->labels) std::cout << "label: " << k << "=" << v << "\n";
    print_plan(r->plan);
  }
  return 0;
}

int run_import(int argc, char** argv) {
  CLI::App app{"Import a VM disk image into a file, block device or (archives) a directory",
               "cdi-import"};
  app.footer(
      "Subcommands:\n  cdi-import [import] --url URL --dest PATH [options]   import an image (default)\n"
      "  cdi-import info URL [--json]                          describe an image without writing\n"
      "  cdi-import upload-server --dest PATH [options]        receive one image over HTTP(S) (CDI upload routes)\n"
      "  cdi-import clone --from SRC (--to DEST | --to-url URL) copy a VM disk locally or to an upload server\n"
      "Exit codes: 0 ok, 1 internal, 2 usage, 3 io, 4 corrupt input, 5 unsupported, 6 too large,\n"
      "  7 auth, 8 network, 9 not found, 10 scratch space required, 11 in use, 130 cancelled.");
  app.set_version_flag("--version", std::string("cdi-import ") + CDI_VERSION);
  std::string url, dest, scratch, image_size, progress = "auto";
  int verbose = 0;
  CommonFlags common;
  app.add_option("--url,-u", url, "image location: a path (file or block device), file:// URL, - for stdin, http(s):// URL, "
                                  "s3://BUCKET/KEY (see --s3-endpoint, --source s3), "
                                  "or a container image: docker://[host/]repo[:tag|@digest], oci:DIR[:tag], oci-archive:TAR[:tag]")
      ->required();
  app.add_option("--dest,-d", dest, "target: file, block device, or directory (--content-type archive)")->required();
  app.add_option("--scratch-dir", scratch, "where a stage that needs random access may spool (vmdk/vhd/vhdx/vdi streams)");
  app.add_option("--image-size", image_size, "requested size (Kubernetes quantity: 10Gi, 500M, 1073741824): "
                                             "file targets grow to it; the image must fit");
  app.add_option("--progress", progress, "auto|bar|json|none (auto: a live line on a terminal)")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}));
  std::string hold_limit;
  app.add_option("--qcow2-hold-limit", hold_limit, "memory for qcow2 data that arrives before its L2 table "
                                                   "(quantity, default 64Mi); beyond it data spills to --scratch-dir");
  std::string checksum, checksum_url;
  app.add_option("--checksum", checksum, "expected digest of the source bytes as served (before decompression): "
                                         "md5|sha1|sha256|sha512:HEX; a mismatch fails the import");
  app.add_option("--checksum-url", checksum_url, "a SHA256SUMS-style list (URL or path): the line for the image's "
                                                 "file name is the expected digest")
      ->excludes("--checksum");
  app.add_flag("-v,--verbose", verbose, "log what the pipeline decides");
  add_common(app, common);
  HttpFlags http;
  add_http(app, http);
  std::string metrics_listen, metrics_owner;
  app.add_option("--metrics-listen", metrics_listen, "serve CDI's progress metric over HTTPS on ADDR:PORT (self-signed)");
  app.add_option("--metrics-owner-uid", metrics_owner, "ownerUID label of the progress metric (default: $OWNER_UID)");
  RegistryFlags registry;
  add_registry(app, registry);
  cmd::S3Flags s3;
  cmd::add_s3(app, s3);
  GcsFlags gcs;
  add_gcs(app, gcs);
  if (auto rc = parse_cli(app, argc, argv)) return *rc;

  pipeline::ProgressState state;
  std::unique_ptr<server::MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    // A metrics failure never fails the import: one warning line, then on.
    auto addr = server::parse_listen(metrics_listen);
    server::MetricsOptions mo;
    mo.progress = &state;
    if (const char* uid = std::getenv("OWNER_UID"); uid && metrics_owner.empty()) metrics_owner = uid;
    mo.owner_uid = metrics_owner;
    auto m = addr ? (mo.address = addr->first, mo.port = addr->second, server::MetricsServer::start(mo))
                  : Result<std::unique_ptr<server::MetricsServer>>(std::unexpected(addr.error()));
    if (m) metrics = std::move(*m);
    else std::fprintf(stderr, "cdi-import: warning: metrics disabled: %s\n", m.error().what().c_str());
  }
  pipeline::ImportOptions o;
  o.url = url;
  o.dest = dest;
  if (!scratch.empty()) o.scratch_dir = scratch;
  if (!image_size.empty()) {
    auto q = util::parse_quantity(image_size);
    if (!q) return report_error(q.error().context("--image-size"));
    o.image_size = *q;
    o.image_size_what = "--image-size";
  }
  if (!hold_limit.empty()) {
    auto q = util::parse_quantity(hold_limit);
    if (!q) return report_error(q.error().context("--qcow2-hold-limit"));
    o.hold_limit = *q;
  }
  apply_common(common, o);
  apply_http(http, o);
  apply_registry(registry, o);
  apply_gcs(gcs, s3.source, o);
  o.progress = &state;
  o.cancel = &g_cancel;
  if (verbose) o.log = [](std::string_view s) { std::fprintf(stderr, "cdi-import: %.*s\n", int(s.size()), s.data()); };
  if (auto r = cmd::apply_s3(s3, o); !r) return report_error(r.error());
  if (!checksum.empty()) {
    auto c = util::parse_checksum(checksum);
    if (!c) return report_error(c.error().context("--checksum: invalid checksum"));
    o.checksum = *c;
  } else if (!checksum_url.empty()) {
    auto c = pipeline::fetch_checksum(o, checksum_url);
    if (!c) return report_error(c.error().context("--checksum-url"));
    o.checksum = *c;
    if (o.log) o.log("expected checksum from " + checksum_url + ": " + c->text());
  }

  auto mode = progress_mode_from(progress, isatty(STDERR_FILENO) != 0);
  ProgressView view(state, mode);
  view.start();
  auto r = pipeline::run_import(o);
  view.stop();
  if (!r) return report_error(r.error());
  std::fprintf(stderr, "%s\n", summary_line(*r, dest).c_str());
  return 0;
}

}  // namespace

int run_upload_server_cmd(int argc, char** argv, util::CancelToken& cancel);   // upload_server_cmd.cpp

int main(int argc, char** argv) {
  // Pod mode (CDI drop-in): by program name, or by subcommand.
  std::string_view prog = argv[0];
  prog = prog.substr(prog.rfind('/') == std::string_view::npos ? 0 : prog.rfind('/') + 1);
  // CDI's helper programs (README "Running inside CDI"): Go's default signal behaviour.
  if (prog == "cdi-image-size-detection") return cmd::run_image_size_detection(argc, argv);
  if (prog == "cdi-source-update-poller") return cmd::run_source_update_poller(argc, argv);
  if (prog == "cdi-containerimage-server") return cmd::run_containerimage_server(argc, argv);
  install_signal_handlers();
  if (prog == "cdi-importer") return cmd::run_pod_importer(argc, argv, g_cancel);
  if (prog == "cdi-uploadserver") return cmd::run_pod_uploadserver(argc, argv, g_cancel);
  if (prog == "cdi-cloner") return cmd::run_pod_cloner(argc, argv, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "pod-cloner") return cmd::run_pod_cloner(argc - 1, argv + 1, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "clone") return cmd::run_clone_cmd(argc - 1, argv + 1, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "pod-importer") return cmd::run_pod_importer(argc - 1, argv + 1, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "pod-uploadserver")
    return cmd::run_pod_uploadserver(argc - 1, argv + 1, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "upload-server") return run_upload_server_cmd(argc - 1, argv + 1, g_cancel);
  if (argc >= 2 && std::string_view(argv[1]) == "info") return run_info(argc - 1, argv + 1);
  if (argc >= 2 && std::string_view(argv[1]) == "import") {
    argv[1] = argv[0];
    return run_import(argc - 1, argv + 1);
  }
  return run_import(argc, argv);
}
