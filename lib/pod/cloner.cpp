// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/cloner.hpp"

#include <sys/stat.h>

#include "formats/snappy/snappy_encoder.hpp"
#include "lib/clone/upload_client.hpp"
#include "lib/io/counting_reader.hpp"
#include "lib/pod/go_flags.hpp"
#include "lib/pod/termination.hpp"
#include "lib/source/in_use.hpp"

namespace cdi::pod {

namespace {

struct FlagTargets {
  std::string content_type, mount;
  int64_t upload_bytes = 0;
  int64_t v = 0;
  bool alsologtostderr = false, logtostderr = true, add_dir_header = false, skip_headers = false,
       skip_log_headers = false, one_output = false, legacy_stderr = true;
  std::string log_dir, log_file, stderrthreshold, vmodule, log_backtrace_at;
  int64_t log_file_max_size = 1800;
};

std::vector<GoFlag> cloner_flags(FlagTargets& t) {
  using K = GoFlag::Kind;
  auto s = [](const char* n, std::string* p, const char* u) { return GoFlag{n, K::string, u, p, nullptr, nullptr}; };
  auto i = [](const char* n, int64_t* p, const char* u) { return GoFlag{n, K::integer, u, nullptr, p, nullptr}; };
  auto b = [](const char* n, bool* p, const char* u) { return GoFlag{n, K::boolean, u, nullptr, nullptr, p}; };
  return {
      s("content-type", &t.content_type, "filesystem-clone|blockdevice-clone"),
      s("mount", &t.mount, "pvc mount point"),
      i("upload-bytes", &t.upload_bytes, "approx number of bytes in input"),
      // klog.InitFlags(nil)
      i("v", &t.v, "number for the log level verbosity"),
      b("alsologtostderr", &t.alsologtostderr, "log to standard error as well as files (no effect when -logtostderr=true)"),
      b("logtostderr", &t.logtostderr, "log to standard error instead of files"),
      b("add_dir_header", &t.add_dir_header, "If true, adds the file directory to the header of the log messages"),
      b("skip_headers", &t.skip_headers, "If true, avoid header prefixes in the log messages"),
      b("skip_log_headers", &t.skip_log_headers, "If true, avoid headers when opening log files (no effect when -logtostderr=true)"),
      b("one_output", &t.one_output, "If true, only write logs to their native severity level (vs also writing to each lower severity level; no effect when -logtostderr=true)"),
      b("legacy_stderr_threshold_behavior", &t.legacy_stderr, "If true, stderrthreshold is ignored when logtostderr=true (legacy behavior). If false, stderrthreshold is honored even when logtostderr=true"),
      s("log_dir", &t.log_dir, "If non-empty, write log files in this directory (no effect when -logtostderr=true)"),
      s("log_file", &t.log_file, "If non-empty, use this log file (no effect when -logtostderr=true)"),
      i("log_file_max_size", &t.log_file_max_size, "Defines the maximum size a log file can grow to (no effect when -logtostderr=true). Unit is megabytes. If the value is 0, the maximum file size is unlimited."),
      s("stderrthreshold", &t.stderrthreshold, "logs at or above this threshold go to stderr when writing to files and stderr (no effect when -logtostderr=true or -alsologtostderr=true)"),
      s("vmodule", &t.vmodule, "comma-separated list of pattern=N settings for file-filtered logging"),
      s("log_backtrace_at", &t.log_backtrace_at, "when logging hits line file:N, emit a stack trace"),
  };
}

}  // namespace

std::string cloner_usage() {
  FlagTargets t;
  return go_flags_usage("cdi-cloner", cloner_flags(t));
}

Result<ClonerArgs> parse_cloner_args(const std::vector<std::string>& args) {
  FlagTargets t;
  auto flags = cloner_flags(t);
  auto out = parse_go_flags(args, flags);
  ClonerArgs a;
  if (out.status == GoFlagOutcome::Status::help) {
    a.help = true;
    return a;
  }
  if (out.status == GoFlagOutcome::Status::error) return fail(Errc::invalid_argument, out.message);
  if (t.upload_bytes < 0)
    return fail(Errc::invalid_argument,
                "invalid value " + go_quote(std::to_string(t.upload_bytes)) + " for flag -upload-bytes: parse error");
  a.content_type = t.content_type;
  a.mount = t.mount;
  a.upload_bytes = static_cast<uint64_t>(t.upload_bytes);
  a.klog.verbosity = static_cast<int>(t.v);
  a.klog.alsologtostderr = t.alsologtostderr;
  a.klog.logtostderr = t.logtostderr;
  a.klog.log_file = t.log_file;
  if (a.content_type == "blockdevice-clone") a.kind = clone::CloneKind::blockdevice;
  else if (a.content_type == "filesystem-clone") a.kind = clone::CloneKind::filesystem;
  else return fail(Errc::invalid_argument, "Invalid content-type " + go_quote(a.content_type));
  if (a.mount.empty()) return fail(Errc::invalid_argument, "Invalid mount " + go_quote(a.mount));
  return a;
}

Result<ClonerConfig> parse_cloner_env(const Environment& env) {
  ClonerConfig c;
  std::pair<const char*, std::string*> req[] = {
      {"OWNER_UID", &c.owner_uid},          {"CLIENT_KEY", &c.client_key}, {"CLIENT_CERT", &c.client_cert},
      {"SERVER_CA_CERT", &c.server_ca_cert}, {"UPLOAD_URL", &c.upload_url},
  };
  for (auto& [name, dst] : req) {
    *dst = env_get(env, name);
    if (dst->empty()) return fail(Errc::invalid_argument, std::string("Error getting env var ") + name);
  }
  std::string pre = env_get(env, "PREALLOCATION");
  if (pre.empty()) return fail(Errc::invalid_argument, "Error getting env var PREALLOCATION");
  c.preallocation = parse_go_bool(pre).value_or(false);
  return c;
}

std::string cloner_complete_message(bool preallocation) {
  return preallocation ? "Clone Complete, Preallocation applied" : "Clone Complete";
}

Result<void> run_cloner(const ClonerContext& ctx) {
  const auto& a = ctx.args;
  const auto& log = *ctx.log;
  log.info(0, "content-type is " + go_quote(a.content_type));
  log.info(0, "mount is " + go_quote(a.mount));
  log.info(0, "upload-bytes is " + std::to_string(a.upload_bytes));

  // The seed's rule: the VM must be off. Checked before anything is opened towards the target.
  if (a.kind == clone::CloneKind::blockdevice) {
    struct stat st {};
    if (::stat(a.mount.c_str(), &st) != 0) return fail_sys("opening block device " + go_quote(a.mount));
    if (S_ISBLK(st.st_mode)) CDI_TRY(source::check_device_free(a.mount));
    else CDI_TRY(source::check_image_free(a.mount));
  } else {
    CDI_TRY(source::check_tree_free(a.mount));
  }

  log.info(1, "Starting cloner target");
  std::unique_ptr<io::Reader> input;
  if (a.kind == clone::CloneKind::filesystem) {
    clone::TarStreamOptions to;
    to.tar = ctx.tar;
    to.sparse = !ctx.config.preallocation;
    to.cancel = ctx.cancel;
    log.info(0, "Executing " + ctx.tar + " (cv" + std::string(to.sparse ? " -S" : "") + ") in " + a.mount);
    input = CDI_TRY_CTX(clone::open_tar_stream(a.mount, to), "Error creating tar reader for " + go_quote(a.mount));
  } else {
    input = CDI_TRY_CTX(clone::open_raw_stream(a.mount, ctx.cancel), "Error opening block device " + go_quote(a.mount));
  }
  if (ctx.progress) {
    ctx.progress->total_read.store(static_cast<int64_t>(a.upload_bytes));
    ctx.progress->phase.store(pipeline::Phase::transferring);
    input = std::make_unique<io::CountingReader>(std::move(input), ctx.progress->bytes_read);
  }
  formats::CodecOptions co;
  co.cancel = ctx.cancel;
  auto framed = CDI_TRY(formats::snappy::open_encoder(std::move(input), co));

  clone::UploadOptions uo;
  uo.url = ctx.config.upload_url;
  uo.content_type = a.content_type;
  uo.client_cert = ctx.config.client_cert;
  uo.client_key = ctx.config.client_key;
  uo.server_ca = ctx.config.server_ca_cert;
  uo.cancel = ctx.cancel;
  uo.connect_attempts = ctx.connect_attempts;
  uo.log = [&log](std::string_view s) { log.warning(s); };
  log.info(0, "Set header to " + a.content_type);
  auto reply = CDI_TRY(clone::post_stream(*framed, uo));
  if (ctx.progress) ctx.progress->phase.store(pipeline::Phase::done);
  log.info(0, "Wrote " + std::to_string(ctx.progress ? ctx.progress->bytes_read.load() : 0) + " bytes");
  log.info(1, "Response body:\n" + reply.body);
  log.info(1, "clone complete");
  CDI_TRY(write_termination_log(ctx.paths.termination_log(), cloner_complete_message(ctx.config.preallocation)));
  return {};
}

}  // namespace cdi::pod
