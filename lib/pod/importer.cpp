// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/importer.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "lib/pipeline/import.hpp"
#include "lib/pod/handshake.hpp"
#include "lib/pod/node_pull_info.hpp"
#include "lib/pod/space.hpp"
#include "lib/pod/termination.hpp"
#include "lib/sink/block_device_sink.hpp"
#include "lib/sink/leftovers.hpp"
#include "lib/sink/open_sink.hpp"
#include "lib/source/gcs_source.hpp"
#include "lib/source/http_source.hpp"
#include "lib/source/s3_source.hpp"
#include "lib/util/file_io.hpp"

namespace cdi::pod {
namespace fs = std::filesystem;

namespace {

// CDI's phase names for our pipeline phases (log key phrases "New phase: <Phase>").
const char* cdi_phase(pipeline::Phase p, bool archive) {
  using pipeline::Phase;
  switch (p) {
    case Phase::starting:
    case Phase::probing: return "Info";
    case Phase::transferring: return archive ? "TransferDataDir" : "TransferDataFile";
    case Phase::spooling: return "TransferScratch";
    case Phase::validating:
    case Phase::converting: return "Convert";
    case Phase::finishing: return "Resize";
    case Phase::done: return "Complete";
  }
  return "Info";
}

// Logs "New phase: …" on every change and the progress percentage once a second while running.
class PhaseWatcher {
 public:
  PhaseWatcher(const Logger& log, pipeline::ProgressState& p, bool archive) : m_log(log), m_p(p), m_archive(archive) {
    m_thread = std::thread([this] { loop(); });
  }
  ~PhaseWatcher() {
    m_stop.store(true);
    m_thread.join();
  }

 private:
  void loop() {
    const char* last = nullptr;
    auto next_pct = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    for (;;) {
      bool stop = m_stop.load();
      const char* now = cdi_phase(m_p.phase.load(), m_archive);
      if (!last || std::string_view(now) != last) {
        // "Complete" is logged by the importer itself once the outcome is known.
        if (std::string_view(now) != "Complete") m_log.info(1, std::string("New phase: ") + now);
        last = now;
      }
      if (stop) return;
      if (std::chrono::steady_clock::now() >= next_pct) {
        int64_t total = m_p.total_read.load();
        if (total > 0) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.2f", 100.0 * double(m_p.bytes_read.load()) / double(total));
          m_log.info(1, buf);
        }
        next_pct += std::chrono::seconds(1);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // phases can be short
    }
  }
  const Logger& m_log;
  pipeline::ProgressState& m_p;
  bool m_archive;
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
};

bool scratch_usable(const fs::path& dir) {
  auto free = filesystem_free(dir);
  return free && *free > 0;
}

bool has_entries(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::directory_iterator(dir, ec) != fs::directory_iterator();
}

// Every regular non-dot file under dir, recursively, sorted: one extra header each.
std::vector<fs::path> header_files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name.starts_with(".")) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<void> write_file(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return fail(Errc::io, "cannot write " + p.string());
  ::chmod(p.c_str(), 0600);
  return {};
}

class Run {
 public:
  explicit Run(const ImporterContext& ctx) : m_ctx(ctx), m_log(*ctx.log) {}

  ImporterOutcome terminate(int code, const std::string& text) {
    ImporterOutcome o;
    o.exit_code = code;
    if (auto w = write_termination_log(m_ctx.paths.termination_log(), text); !w) {
      m_log.error("Unable to write termination message: " + w.error().what());
      o.exit_code = 1;
      return o;
    }
    o.termination = one_line(text);
    return o;
  }

  ImporterOutcome terminate_json(int code, const TerminationMessage& m) {
    auto j = termination_json(m);
    if (!j) {
      m_log.error(j.error().what());
      return ImporterOutcome{1, std::nullopt};
    }
    m_log.info(1, *j);
    return terminate(code, *j);
  }

  ImporterOutcome fatal_log_only(const std::string& text) {
    m_log.error(text);
    return ImporterOutcome{1, std::nullopt};
  }

  ImporterOutcome run() {
    m_log.info(1, "Starting importer");
    auto cfg = parse_importer_env(m_ctx.env);
    if (!cfg) {
      auto f = env_failure(cfg.error(), env_get(m_ctx.env, "IMPORTER_SOURCE"));
      if (f.log_only) return fatal_log_only(f.text);
      m_log.error(f.text);
      return terminate(1, f.text);
    }
    m_cfg = std::move(*cfg);
    m_log.info(1, "begin import process");
    struct stat st {};
    m_block = ::stat(m_ctx.paths.block_device().c_str(), &st) == 0;
    const std::string& ct = m_cfg.content_type;
    m_archive = ct == "archive";
    if (m_cfg.kind == SourceKind::registry && !ct.empty() && ct != "kubevirt")
      return fatal_log_only("Unsupported content type " + ct + " when importing from registry");

    // A killed earlier attempt (OOM, eviction) may have left a partial file or an archive staging
    // directory on the volume (only where O_TMPFILE is missing, or a stage): it would shrink the
    // space measured below. Only names that are provably ours go (lib/sink/leftovers.hpp).
    if (!m_block) remove_leftovers();

    m_log.info(1, "Calculating available size");
    if (m_block) {
      m_log.info(1, "Checking out block volume size.");
      auto size = block_device_size(m_ctx.paths.block_device());
      if (!size) return fatal_log_only("Unable to determine volume size: " + size.error().what());
      m_available = *size;
    } else {
      m_log.info(1, "Checking out file system volume size.");
      auto free = filesystem_free(m_ctx.paths.data_dir());
      if (!free) return fatal_log_only("Unable to determine volume size: " + free.error().what());
      if (m_cfg.image_size) m_log.info(1, "Request image size not empty.");
      m_available = available_space(*free, m_cfg.image_size);
    }
    m_log.info(1, "Target size " + std::to_string(m_available) + ".");

    if (m_cfg.kind == SourceKind::none) return blank();

    if (!m_cfg.ready_file.empty()) {
      auto name = wait_ready_file(m_ctx.paths.resolve(m_cfg.ready_file), m_cfg.ready_file, m_ctx.ready_tries,
                                  m_ctx.ready_interval, m_ctx.cancel);
      if (!name) {
        if (name.error().code() == Errc::limit) return terminate(1, name.error().what());
        return fatal_log_only(name.error().what());
      }
      if (m_cfg.kind == SourceKind::http) m_cfg.endpoint = node_pull_endpoint(m_cfg.endpoint, *name);
    }
    if (m_cfg.kind == SourceKind::unknown) return terminate(1, "Unknown data source: " + m_cfg.source);
    if (m_cfg.kind == SourceKind::unsupported)
      return terminate(1, "Unable to connect to " + m_cfg.source + " data source: unsupported source \"" +
                              m_cfg.source + "\": this importer supports http, s3, gcs, registry and none");
    if (!ct.empty() && ct != "kubevirt" && ct != "archive")
      return terminate(1, "Unable to process data: Unknown content type: " + ct);
    if (m_cfg.endpoint.empty())
      return terminate(1, "Unable to connect to " + m_cfg.source +
                              " data source: endpoint \"IMPORTER_ENDPOINT\" is missing or blank");
    return import();
  }

 private:
  fs::path dest() const {
    if (m_block) return m_ctx.paths.block_device();
    return m_archive ? m_ctx.paths.data_dir() : m_ctx.paths.data_file();
  }

  void remove_leftovers() {
    sink::Removed total;
    for (auto r : {sink::remove_stale_partials(m_ctx.paths.data_file()),
                   sink::remove_stale_staging_dirs(m_ctx.paths.data_dir())}) {
      if (!r) {
        m_log.warning("Cannot look for leftovers of an earlier import: " + r.error().what());
        continue;
      }
      total.entries += r->entries;
      total.bytes += r->bytes;
    }
    if (total.entries)
      m_log.info(1, "Removed " + std::to_string(total.entries) + " leftover(s) of a killed import (" +
                        std::to_string(total.bytes) + " bytes)");
  }

  // Node pull (CDI GetTerminationMessage): the image's KUBEVIRT_IO_ env from the
  // containerimage-server's /info, read before the done file stops that server. A failure is
  // logged and the import still completes, without labels.
  std::vector<std::pair<std::string, std::string>> node_pull_labels() {
    if (!m_cfg.node_pull || m_cfg.kind != SourceKind::http) return {};
    auto url = server_info_url(m_cfg.endpoint);
    auto env = url ? fetch_server_info(*url) : Result<std::vector<std::string>>(std::unexpected(url.error()));
    if (!env) {
      m_log.error(env.error().what());
      return {};
    }
    return env_labels(*env);
  }

  static void merge_labels(std::vector<std::pair<std::string, std::string>>& into,
                           const std::vector<std::pair<std::string, std::string>>& from) {
    for (const auto& [k, v] : from) {
      auto it = std::find_if(into.begin(), into.end(), [&](const auto& kv) { return kv.first == k; });
      if (it != into.end()) it->second = v;
      else into.emplace_back(k, v);
    }
  }

  void done_file() {
    if (m_cfg.done_file.empty()) return;
    if (auto r = create_done_file(m_ctx.paths.resolve(m_cfg.done_file)); !r)
      m_log.error("Failed creating done file: " + r.error().what());
  }

  // IMPORTER_SOURCE=s3: CDI's path-style IMPORTER_ENDPOINT becomes the object's http(s) URL,
  // signed with IMPORTER_ACCESS_KEY_ID / IMPORTER_SECRET_KEY (no keys: an anonymous read, where
  // CDI fails). Secrets stay in memory.
  Result<void> s3_options(pipeline::ImportOptions& o) {
    auto loc = CDI_TRY(source::s3::parse_endpoint_url(o.url));
    std::optional<source::s3::Credentials> creds;
    if (!m_cfg.access_key.empty() || !m_cfg.secret_key.empty())
      creds = source::s3::Credentials{m_cfg.access_key, m_cfg.secret_key, {}};
    CDI_TRY(source::s3::apply_signing(loc, creds, {}, o.source.http));
    m_log.info(1, "S3 object " + loc.bucket + "/" + loc.key + " at " + loc.scheme + "://" + loc.authority +
                      (creds ? ", region " + loc.region : ", anonymous (no keys given)"));
    o.url = loc.url();
    return {};
  }

  Result<void> http_options(pipeline::ImportOptions& o) {
    auto& h = o.source.http;
    h.insecure_tls = m_cfg.insecure_tls;
    fs::path cert_dir = m_cfg.cert_dir.empty() ? fs::path() : m_ctx.paths.resolve(m_cfg.cert_dir);
    fs::path proxy = m_ctx.paths.proxy_certs();
    bool proxy_certs = has_entries(proxy);
    if (proxy_certs && !cert_dir.empty()) {
      // One trusted directory for the source: both sets, linked into a private directory.
      fs::path merged = m_tmp.path() / "all_certs";
      std::error_code ec;
      fs::create_directories(merged, ec);
      for (auto [dir, prefix] : {std::pair{proxy, "proxy-"}, std::pair{cert_dir, ""}})
        for (auto& e : fs::directory_iterator(dir, ec))
          if (!e.path().filename().string().starts_with(".") && e.is_regular_file(ec))
            fs::create_symlink(e.path(), merged / (prefix + e.path().filename().string()), ec);
      h.cert_dir = merged;
    } else if (proxy_certs) {
      h.cert_dir = proxy;
    } else if (!cert_dir.empty()) {
      h.cert_dir = cert_dir;
    }
    if (m_cfg.kind == SourceKind::s3) {
      CDI_TRY(s3_options(o));
    } else if (!m_cfg.access_key.empty() && !m_cfg.secret_key.empty()) {
      h.username = m_cfg.access_key;
      fs::path pw = m_tmp.path() / "password";
      CDI_TRY(write_file(pw, m_cfg.secret_key));
      h.password_file = pw;
    }
    for (const auto& v : m_cfg.extra_headers)
      if (v.find(':') != std::string::npos) h.headers.push_back(v);
    for (auto& f : header_files_under(m_ctx.paths.extra_headers_dir())) h.header_files.push_back(f);
    return {};
  }

  ImporterOutcome import() {
    pipeline::ImportOptions o;
    o.url = m_cfg.endpoint;
    o.dest = dest().string();
    o.content_type = m_archive ? pipeline::ContentType::archive : pipeline::ContentType::kubevirt;
    if (scratch_usable(m_ctx.paths.scratch_dir())) o.scratch_dir = m_ctx.paths.scratch_dir();
    o.memory_limit = m_cfg.memory_limit;
    o.memory_limit_source = "CDI_IMPORT_MEMORY_LIMIT";
    if (!m_block) {
      o.image_size = m_available;
      o.image_size_what = "the available space";
      // image_size is only the bound here; without a request nothing is grown (resize_to 0).
      auto target = resize_target(m_cfg.image_size, m_available, m_cfg.filesystem_overhead);
      if (target) m_log.info(1, "Resize target " + std::to_string(*target) + ".");
      o.resize_to = target.value_or(0);
    }
    o.source.registry.architecture = m_cfg.architecture;   // IMPORTER_REGISTRY_IMAGE_ARCHITECTURE
    o.checksum = m_cfg.checksum;
    if (m_cfg.checksum) m_log.info(0, "Checksum validation enabled: " + m_cfg.checksum->text());
    o.preallocate = m_cfg.preallocation;
    o.progress = m_ctx.progress;
    o.cancel = m_ctx.cancel;
    const Logger& log = m_log;
    // CDI logs the checksum result unconditionally; other pipeline diagnostics at V(2).
    o.log = [&log](std::string_view s) { log.info(s.starts_with("Checksum verification passed") ? 0 : 2, s); };
    const std::string kind_name = m_cfg.kind == SourceKind::s3 ? "s3" : m_cfg.kind == SourceKind::gcs ? "gcs" : "http";
    if (auto r = http_options(o); !r)
      return terminate(1, "Unable to connect to " + kind_name + " data source: " + r.error().what());

    std::optional<PhaseWatcher> watcher;
    watcher.emplace(m_log, *m_ctx.progress, m_archive);
    if (m_cfg.kind == SourceKind::http || m_cfg.kind == SourceKind::s3) {
      // The connection is made here, so that its failures read as CDI's "Unable to connect".
      source::HttpContext hc;
      hc.cancel = m_ctx.cancel;
      hc.log = o.log;
      auto src = source::open_http_source(o.url, o.source.http, hc);
      if (!src) {
        watcher.reset();
        return terminate(1, "Unable to connect to " + kind_name + " data source: " + src.error().what());
      }
      auto holder = std::make_shared<std::unique_ptr<io::Reader>>(std::move(*src));
      o.source_factory = [holder]() -> Result<std::unique_ptr<io::Reader>> {
        if (!*holder) return fail(Errc::internal, "the http source was already used");
        return std::move(*holder);
      };
    } else if (m_cfg.kind == SourceKind::gcs) {
      // CDI: GOOGLE_APPLICATION_CREDENTIALS names the key file of the secret mounted at /google
      // (a pod path, resolved under CDI_IMPORT_ROOT); unset = anonymous. An http(s) endpoint is
      // HOST/BUCKET/OBJECT.
      o.source.gcs.force = true;
      if (!m_cfg.google_credentials.empty()) o.source.gcs.credentials = m_ctx.paths.resolve(m_cfg.google_credentials);
      source::HttpContext hc;
      hc.cancel = m_ctx.cancel;
      hc.log = o.log;
      auto src = source::open_gcs_source(o.url, o.source.gcs, o.source.http, hc);
      if (!src) {
        watcher.reset();
        return terminate(1, "Unable to connect to gcs data source: " + src.error().what());
      }
      auto holder = std::make_shared<std::unique_ptr<io::Reader>>(std::move(*src));
      o.source_factory = [holder]() -> Result<std::unique_ptr<io::Reader>> {
        if (!*holder) return fail(Errc::internal, "the http source was already used");
        return std::move(*holder);
      };
    }
    auto rep = pipeline::run_import(o);
    watcher.reset();
    if (!rep) {
      const Error& e = rep.error();
      auto f = import_failure(e, m_archive);
      if (f.kind == ImportFailure::Kind::scratch_required) {
        m_log.info(1, "scratch space required and none found: " + e.what());
        auto labels = node_pull_labels();
        done_file();
        TerminationMessage m;
        m.labels = std::move(labels);
        m.scratch_space_required = true;
        m.preallocation_applied = false;
        m.message = "Import Complete";
        return terminate_json(0, m);
      }
      if (f.kind == ImportFailure::Kind::checksum_mismatch) {
        m_log.error(f.text);
        remove_written();
        TerminationMessage m;
        m.message = f.text;
        return terminate_json(f.exit_code, m);
      }
      m_log.error(f.text);
      return terminate(f.exit_code, f.text);
    }
    if (!m_block && !m_archive) ::chmod(m_ctx.paths.data_file().c_str(), 0660);
    m_ctx.progress->phase.store(pipeline::Phase::done);
    m_log.info(1, "New phase: Complete");
    m_log.info(0, "Import Complete");
    auto server_labels = node_pull_labels();
    done_file();
    TerminationMessage m;
    m.scratch_space_required = false;
    m.preallocation_applied = rep->preallocation_applied;
    m.labels = rep->labels;
    merge_labels(m.labels, server_labels);
    m.message = "Import Complete";
    return terminate_json(0, m);
  }

  // After a checksum mismatch (spec §5): filesystem kubevirt -> /data/disk.img; archive -> what is
  // inside /data; block -> nothing (our sinks never committed, so this removes only older data).
  void remove_written() {
    std::error_code ec;
    if (m_block) return;
    if (m_archive) {
      for (auto& e : fs::directory_iterator(m_ctx.paths.data_dir(), ec)) fs::remove_all(e.path(), ec);
    } else {
      fs::remove(m_ctx.paths.data_file(), ec);
    }
  }

  ImporterOutcome blank() {
    if (m_archive) return terminate(1, "Cannot create empty disk with content type archive");
    m_ctx.progress->phase.store(pipeline::Phase::transferring);
    auto finish = [&](bool prealloc) {
      m_ctx.progress->phase.store(pipeline::Phase::done);
      m_log.info(0, "Import Complete");
      TerminationMessage m;
      m.preallocation_applied = prealloc;
      m.message = "Import Complete";
      return terminate_json(0, m);
    };
    if (m_block && !m_cfg.preallocation) return finish(false);
    if (!m_cfg.image_size)
      return terminate(1, "Unable to create blank image: IMPORTER_IMAGE_SIZE is required for a blank image");
    uint64_t size = std::min(m_available, *m_cfg.image_size);
    if (size < *m_cfg.image_size)
      m_log.warning("Available space less than requested size, creating blank image sized to available space: " +
                    std::to_string(size) + ".");
    auto r = [&]() -> Result<void> {
      if (m_block) {
        auto dev = CDI_TRY(sink::BlockDeviceSink::open(m_ctx.paths.block_device(), sink::BlockSinkOptions{}));
        CDI_TRY(dev->zero_range(0, size));
        CDI_TRY(dev->finish(size));
        return {};
      }
      uint64_t usable = usable_space(size, m_cfg.filesystem_overhead);
      m_log.info(1, "Space adjusted for filesystem overhead: " + std::to_string(usable) + ".");
      sink::SinkOptions so;
      so.min_size = usable;
      so.preallocate = m_cfg.preallocation;
      so.mode = 0660;
      so.apply_umask = false;
      auto file = CDI_TRY(sink::open_sink(m_ctx.paths.data_file(), so));
      CDI_TRY(file->finish(0));
      return {};
    }();
    if (!r) {
      m_log.error("Unable to create blank image: " + r.error().what());
      return terminate(1, "Unable to create blank image: " + r.error().what());
    }
    return finish(m_cfg.preallocation);
  }

  const ImporterContext& m_ctx;
  const Logger& m_log;
  ImporterConfig m_cfg;
  // A private temporary directory (password file, merged CA dir), removed on destruction;
  // empty when it could not be made.
  util::TempDir m_tmp = util::TempDir::create("cdi-importer-").value_or(util::TempDir());
  bool m_block = false;
  bool m_archive = false;
  uint64_t m_available = 0;
};

}  // namespace

std::string process_error_text(const Error& e) {
  std::string text = "Unable to process data: " + e.what();
  // What a CDI user can act on, from the typed facts (never the text; never the CLI hint).
  if (e.code() == Errc::limit || e.reason() == Reason::too_small)
    text += " (the image is larger than the reported available storage: a larger PVC is required)";
  if (e.reason() == Reason::no_space) text += " (no space left on device)";
  return text;
}

EnvFailure env_failure(const Error& e, std::string_view source) {
  switch (e.reason()) {
    case Reason::bad_preallocation: return {true, e.what()};
    case Reason::bad_checksum:
      return {false, "Unable to connect to " + (source.empty() ? std::string("http") : std::string(source)) +
                         " data source: " + e.what()};
    default: return {false, e.what()};
  }
}

ImportFailure import_failure(const Error& e, bool archive) {
  if (e.code() == Errc::scratch_required || e.reason() == Reason::scratch_required)
    return {ImportFailure::Kind::scratch_required, 0, {}};
  if (e.reason() == Reason::checksum_mismatch)
    // CDI's wording (spec §5): the controller fails the DataVolume for good on "checksum mismatch".
    return {ImportFailure::Kind::checksum_mismatch, 0,
            std::string("Unable to process data: Unable to transfer source data to ") +
                (archive ? "target directory" : "scratch space") + ": checksum validation failed: " + e.message()};
  return {ImportFailure::Kind::failed, 1, process_error_text(e)};
}

ImporterOutcome run_importer(const ImporterContext& ctx) {
  Run run(ctx);
  return run.run();
}

}  // namespace cdi::pod
