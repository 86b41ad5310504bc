// SPDX-License-Identifier: Apache-2.0
// The upload server on cpp-httplib. Each admitted upload is an UploadJob: the httplib handler
// thread pushes the request body (or the multipart part named "file") into a bounded
// io::PushPullAdapter while an import thread runs pipeline::run_import with a source_factory that
// hands out the adapter's reader. X-Checksum is the import's checksum: the pipeline's HashTap
// digests the whole body (also what the stages leave unread) and verifies it before the target is
// committed, so a mismatch never leaves a complete-looking target and needs no rollback here.
#include "lib/server/upload_server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <httplib.h>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "lib/io/push_pull_adapter.hpp"
#include "lib/server/http_listener.hpp"
#include "lib/server/tls_ciphers.hpp"
#include "lib/server/upload_routes.hpp"
#include "lib/util/digest.hpp"
#include "lib/util/memory_budget.hpp"

namespace cdi::server {
namespace {

// Bytes buffered between the socket and the pipeline: 8 MiB, less under a small memory budget
// (MemoryBudget::receive_buffer: a sixteenth of the usable budget, at least 1 MiB; the import's
// memory plan takes the same share for it).
constexpr size_t k_pipe_capacity = util::MemoryBudget::k_receive_buffer_max;

size_t pipe_capacity(const pipeline::ImportOptions& io) {
  auto budget = util::MemoryBudget::detect(io.memory_limit, util::CgroupPaths::system(), io.memory_limit_source);
  return static_cast<size_t>(budget.receive_buffer(k_pipe_capacity));
}
constexpr size_t k_batch = 256u << 10;         // httplib hands 4 KiB pieces; push them in batches

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

class UploadJob;

// The bottom of the import chain: the request body as it arrives.
class BodyReader final : public io::Reader {
 public:
  BodyReader(UploadJob& job, std::optional<uint64_t> size) : m_job(job), m_size(size) {}
  ~BodyReader() override;
  Result<size_t> read(std::span<std::byte> dst) override;
  io::ReaderInfo info() const override {
    io::ReaderInfo i;
    i.name = "upload";
    i.size = m_size;
    return i;
  }

 private:
  UploadJob& m_job;
  std::optional<uint64_t> m_size;
};

// One admitted upload: body pipe, import thread, and what the request handler learned.
class UploadJob {
 public:
  UploadJob(pipeline::ImportOptions io, std::optional<uint64_t> body_size)
      : m_io(std::move(io)), m_body_size(body_size), m_pipe(pipe_capacity(m_io)) {
    m_batch.reserve(k_batch);
  }
  UploadJob(const UploadJob&) = delete;
  UploadJob& operator=(const UploadJob&) = delete;
  ~UploadJob() {
    m_pipe.close();
    if (m_thread.joinable()) m_thread.join();
  }

  // Starts the import thread. `on_done` runs on that thread after the import has finished.
  void start(std::function<void()> on_done) {
    m_io.source_factory = [this]() -> Result<std::unique_ptr<io::Reader>> {
      return std::make_unique<BodyReader>(*this, m_body_size);
    };
    m_thread = std::thread([this, on_done = std::move(on_done)] {
      auto r = pipeline::run_import(m_io);
      m_pipe.close();
      {
        std::lock_guard lock(m_mutex);
        m_result = std::move(r);
      }
      m_cv.notify_all();
      if (on_done) on_done();
    });
  }

  // Handler thread: body bytes. Returns false only to abort reading (cancelled).
  bool feed(const char* data, size_t n) {
    if (m_io.cancel && m_io.cancel->cancelled()) return false;
    auto bytes = std::as_bytes(std::span(data, n));
    m_received += n;
    if (m_discard) return true;
    m_batch.insert(m_batch.end(), bytes.begin(), bytes.end());
    if (m_batch.size() >= k_batch) flush();
    return true;
  }

  // Handler thread: the body ended (cleanly, or with the reason it did not). Ends the stream the
  // pipeline reads.
  void end_body(Result<void> end) {
    if (end) flush();
    if (!end && (end.error().code() == Errc::invalid_argument || end.error().code() == Errc::corrupt_input))
      m_client_fault = true;
    m_pipe.finish(std::move(end));
  }

  // Blocks until the import has finished.
  const Result<pipeline::ImportReport>& wait() {
    std::unique_lock lock(m_mutex);
    m_cv.wait(lock, [&] { return m_result.has_value(); });
    return *m_result;
  }

  // Async routes: blocks until the pipeline has taken the whole body and is past transfer and
  // validation (converting with qemu-img, or finishing: flush and commit), or the import has
  // finished before that. True in the first case, even when the import has failed meanwhile: the
  // data was received and validated, so the failure belongs to the background part (exit 1).
  // With X-Checksum, validation includes the digest: run_import verifies it right before
  // finishing (after qemu-img's conversion on that path), so only `finishing` counts; a mismatch
  // is then still this request's 400.
  bool wait_accepted() {
    std::unique_lock lock(m_mutex);
    for (;;) {
      if (m_eof_seen && m_io.progress) {
        auto p = m_io.progress->phase.load();
        if (p == pipeline::Phase::finishing || (p == pipeline::Phase::converting && !m_io.checksum)) return true;
      }
      if (m_result) return false;
      m_cv.wait_for(lock, std::chrono::milliseconds(20));
    }
  }

  bool finished() {
    std::lock_guard lock(m_mutex);
    return m_result.has_value();
  }

  bool client_fault() const { return m_client_fault; }
  uint64_t received() const { return m_received; }

 private:
  friend class BodyReader;

  void flush() {
    if (m_batch.empty() || m_discard) return;
    // A refused push means the pipeline stopped reading (failed, or done with the image): keep
    // draining the body so the client still gets its answer.
    if (!m_pipe.push(m_batch)) m_discard = true;
    m_batch.clear();
  }

  Result<size_t> pull(std::span<std::byte> dst) {
    auto n = CDI_TRY(m_pipe.pull(dst, m_io.cancel));
    if (n == 0 && !dst.empty()) {
      {
        std::lock_guard lock(m_mutex);
        m_eof_seen = true;
      }
      m_cv.notify_all();
    }
    return n;
  }

  pipeline::ImportOptions m_io;
  std::optional<uint64_t> m_body_size;
  io::PushPullAdapter m_pipe;
  std::vector<std::byte> m_batch;
  bool m_discard = false;
  uint64_t m_received = 0;
  bool m_client_fault = false;

  std::mutex m_mutex;
  std::condition_variable m_cv;
  bool m_eof_seen = false;
  std::optional<Result<pipeline::ImportReport>> m_result;
  std::thread m_thread;
};

BodyReader::~BodyReader() { m_job.m_pipe.close(); }

Result<size_t> BodyReader::read(std::span<std::byte> dst) { return m_job.pull(dst); }

// Everything the request handlers share.
struct ServerState {
  ServerState(const UploadServerOptions& o, pipeline::ProgressState* p) : opts(o), progress(p) {}
  const UploadServerOptions& opts;
  pipeline::ProgressState* progress;
  UploadGate gate;
  std::mutex mutex;
  std::condition_variable cv;
  std::thread finisher;                              // waits for an async upload after its reply
  std::optional<Result<pipeline::ImportReport>> outcome;   // set once: success, or async failure

  void log(const std::string& s) const {
    if (opts.import.log) opts.import.log(s);
  }
  // Refused and failed uploads: seen whatever the verbosity (CDI logs them as errors), the server
  // keeps serving.
  void warn(const std::string& s) const {
    if (opts.on_warning)
      opts.on_warning(s);
    else
      log(s);
  }
  void set_outcome(Result<pipeline::ImportReport> r) {
    {
      std::lock_guard lock(mutex);
      if (!outcome) outcome = std::move(r);
    }
    cv.notify_all();
  }
  bool cancelled() const { return opts.import.cancel && opts.import.cancel->cancelled(); }
};

// Reads and drops the rest of a request body (a refused request must still be read, or the
// connection would parse it as the next request).
void drain(const httplib::Request& req, const httplib::ContentReader& reader, const ServerState& st) {
  auto sink = [&](const char*, size_t) { return !st.cancelled(); };
  if (req.is_multipart_form_data())
    reader([](const httplib::MultipartFormData&) { return true; }, sink);
  else
    reader(sink);
}

void answer(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  if (!body.empty()) res.set_content(body + "\n", "text/plain");
}

// Client-certificate check: a verified chain and the subject CN equal to client_name.
bool client_authorized(const httplib::Request& req, const UploadServerOptions& o, std::string* why) {
  if (!o.client_ca) return true;
  if (!req.ssl) {
    *why = "no TLS connection";
    return false;
  }
  auto* ssl = const_cast<SSL*>(req.ssl);
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (!cert) {
    *why = "no client certificate";
    return false;
  }
  std::unique_ptr<X509, decltype(&X509_free)> guard(cert, X509_free);
  if (SSL_get_verify_result(ssl) != X509_V_OK) {
    *why = "client certificate not verified";
    return false;
  }
  char cn[256] = {};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  if (n < 0 || o.client_name != std::string(cn, static_cast<size_t>(n))) {
    *why = "client certificate CN '" + std::string(n > 0 ? cn : "") + "' is not '" + o.client_name + "'";
    return false;
  }
  return true;
}

void reset_progress(pipeline::ProgressState* p) {
  if (!p) return;
  p->phase.store(pipeline::Phase::starting);
  p->bytes_read.store(0);
  p->bytes_written.store(0);
  p->total_read.store(-1);
  p->total_written.store(-1);
}

void handle_upload(ServerState& st, Route route, const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader) {
  const auto& o = st.opts;
  std::string why;
  if (!client_authorized(req, o, &why)) {
    st.warn("upload refused (401): " + why);
    drain(req, reader, st);
    answer(res, 401, "Unauthorized");
    return;
  }
  auto adm = st.gate.try_admit();
  if (adm != UploadGate::Admission::admitted) {
    drain(req, reader, st);
    answer(res, admission_status(adm), adm == UploadGate::Admission::busy ? "Upload in progress" : "Upload already completed");
    return;
  }
  // From here the gate is ours: every path releases it.
  auto refuse = [&](int status, const std::string& body) {
    drain(req, reader, st);
    st.gate.release(false);
    answer(res, status, body);
  };
  if (route.form() && !req.is_multipart_form_data()) return refuse(400, "Saving stream failed: form upload needs a multipart/form-data body");
  const auto clone = clone_kind(req.get_header_value("x-cdi-content-type"));
  if (auto no = clone_refusal(route, clone)) return refuse(no->status, no->body);
  std::optional<util::Checksum> sum;
  if (auto h = req.get_header_value("X-Checksum"); !h.empty()) {
    auto c = util::parse_checksum(h);
    if (!c) return refuse(400, "Saving stream failed: X-Checksum: " + c.error().what());
    sum = *c;
  }
  std::optional<uint64_t> body_size;
  if (!route.form() && req.has_header("Content-Length") && !req.has_header("Content-Encoding") &&
      !req.has_header("Transfer-Encoding")) {
    body_size = std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10);
  }

  pipeline::ImportOptions io = o.import;
  io.url = "upload";
  if (route.archive()) io.content_type = pipeline::ContentType::archive;
  // A clone body is a clone on every sync route (CDI checks the header before the route's kind).
  if (clone == CloneKind::blockdevice) io.content_type = pipeline::ContentType::blockdevice_clone;
  if (clone == CloneKind::filesystem) io.content_type = pipeline::ContentType::filesystem_clone;
  io.progress = st.progress;
  io.checksum = sum;
  reset_progress(st.progress);
  auto job = std::make_shared<UploadJob>(std::move(io), body_size);
  st.log("upload: " + req.method + " " + req.path + " admitted" + (sum ? ", X-Checksum " + sum->text() : "") +
         (clone != CloneKind::none ? ", host-assisted clone (" + std::string(clone_kind_name(clone)) + ")" : ""));
  job->start(nullptr);

  bool body_ok;
  bool saw_file = false;
  if (route.form()) {
    bool in_file = false;
    body_ok = reader(
        [&](const httplib::MultipartFormData& part) {
          in_file = !saw_file && part.name == "file";
          if (in_file) saw_file = true;
          return true;
        },
        [&](const char* data, size_t n) { return in_file ? job->feed(data, n) : !st.cancelled(); });
  } else {
    body_ok = reader([&](const char* data, size_t n) { return job->feed(data, n); });
  }
  if (st.cancelled())
    job->end_body(fail(Errc::cancelled, "cancelled by signal"));
  else if (!body_ok)
    job->end_body(fail(Errc::network, "the request body ended early after " + std::to_string(job->received()) +
                                          " bytes (client disconnected or sent a malformed body)"));
  else if (route.form() && !saw_file)
    job->end_body(fail(Errc::invalid_argument, "the multipart form has no part named 'file'"));
  else
    job->end_body({});

  auto finish_failed = [&](const Error& e) {
    reset_progress(st.progress);   // quiet again until the next attempt
    st.gate.release(false);
    auto r = reply_for_error(e, job->client_fault());
    st.warn("upload failed (" + std::to_string(r.status) + "): " + e.what());
    answer(res, r.status, r.body);
  };

  if (route.async() && job->wait_accepted()) {
    // Data received and validated: the rest (flush, conversion) finishes in the background and
    // decides the process outcome.
    std::lock_guard lock(st.mutex);
    st.finisher = std::thread([&st, job] {
      auto r = job->wait();
      // Success → 409 from now on. A failure after the reply ends the server (exit 1, as CDI):
      // the gate stays busy (503) until it has stopped.
      if (r) st.gate.release(true);
      st.set_outcome(r);
    });
    st.log("upload: async data received, finishing in the background");
    answer(res, 200, "");
    return;
  }
  auto r = job->wait();
  if (!r) return finish_failed(r.error());
  auto report = *r;
  st.gate.release(true);
  st.log("upload: complete");
  answer(res, 200, "");
  st.set_outcome(std::move(report));
}

}  // namespace

Result<UploadOutcome> run_upload_server(const UploadServerOptions& opts) {
  const bool tls = opts.tls_cert || opts.tls_key;
  if (tls && !(opts.tls_cert && opts.tls_key))
    return fail(Errc::invalid_argument, "TLS needs both a certificate and a key");
  if (!tls && !opts.insecure_http)
    return std::unexpected(Error(Errc::invalid_argument, "refusing to serve uploads without TLS: give a TLS certificate and key")
                               .with_hint(", or --insecure-http for local use"));
  if (opts.client_ca && !tls)
    return fail(Errc::invalid_argument, "client-certificate auth needs TLS (a certificate and a key)");
  if (opts.client_ca && opts.client_name.empty())
    return fail(Errc::invalid_argument, "client-certificate auth needs the required client name (CN)");
  if (opts.import.dest.empty()) return fail(Errc::invalid_argument, "the upload server needs a destination");

  // The TLS context is ours (HttpServer runs the handshake, see http_listener.hpp).
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(nullptr, SSL_CTX_free);
  std::vector<std::string> tls_warnings;
  if (tls) {
    int min_version = CDI_TRY(parse_tls_min_version(opts.tls_min_version));
    ctx.reset(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return fail(Errc::internal, "cannot set up TLS: " + openssl_error());
    auto bad = [&](std::string what) { return fail(Errc::invalid_argument, std::move(what) + ": " + openssl_error()); };
    SSL_CTX* c = ctx.get();
    if (SSL_CTX_use_certificate_chain_file(c, opts.tls_cert->c_str()) != 1)
      return bad("loading TLS certificate " + opts.tls_cert->string());
    if (SSL_CTX_use_PrivateKey_file(c, opts.tls_key->c_str(), SSL_FILETYPE_PEM) != 1)
      return bad("loading TLS key " + opts.tls_key->string());
    if (SSL_CTX_check_private_key(c) != 1) return bad("TLS key does not match the certificate");
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_set_min_proto_version(c, min_version) != 1) return bad("setting the TLS minimum version");
    // Unknown names are skipped and an unusable list falls back to the defaults (as CDI's Go
    // server): every CDI TLS profile starts. The warnings are logged below.
    tls_warnings = apply_tls_ciphers(c, map_tls_ciphers(opts.tls_ciphers));
    if (opts.client_ca) {
      if (SSL_CTX_load_verify_locations(c, opts.client_ca->c_str(), nullptr) != 1)
        return bad("loading client CA " + opts.client_ca->string());
      if (auto* names = SSL_load_client_CA_file(opts.client_ca->c_str())) SSL_CTX_set_client_CA_list(c, names);
      // Requested, not required, at the handshake (as CDI): requests without one get 401.
      SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
    }
  }

  pipeline::ProgressState own_progress;
  ServerState st(opts, opts.import.progress ? opts.import.progress : &own_progress);
  for (const auto& w : tls_warnings) {
    if (opts.on_warning)
      opts.on_warning(w);
    else
      st.log("upload-server: warning: " + w);
  }

  auto svr = std::make_unique<HttpServer>(opts.limits, ctx.get(), [&st](const std::string& s) { st.log("upload-server: " + s); });
  svr->set_logger([&st](const httplib::Request& req, const httplib::Response& res) {
    st.log("upload-server: " + req.method + " " + req.path + " from " + req.remote_addr + " -> " +
           std::to_string(res.status));
  });
  // Refusals (401/503/409) are answered by the handlers after draining the body: httplib cannot
  // close a connection after an early answer to `Expect: 100-continue`, and a body left unread
  // would be parsed as the next request. So every Expect gets its 100 (httplib's default).
  auto healthz = [](const httplib::Request&, httplib::Response& res) { res.set_content("OK", "text/plain"); };
  auto healthz_body = [&st](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& r) {
    drain(req, r, st);
    res.set_content("OK", "text/plain");
  };
  svr->Get("/healthz", healthz);
  svr->Options("/healthz", healthz);
  svr->Post("/healthz", healthz_body);
  svr->Put("/healthz", healthz_body);
  svr->Patch("/healthz", healthz_body);
  svr->Delete("/healthz", healthz_body);
  for (const auto& path : upload_paths()) {
    auto route = *route_for(path);
    svr->Post(path, [&st, route](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& r) {
      handle_upload(st, route, req, res, r);
    });
    if (route.async()) {
      // HEAD (capability probe) → 200; GET → 404.
      svr->Get(path, [](const httplib::Request& req, httplib::Response& res) { res.status = req.method == "HEAD" ? 200 : 404; });
    }
  }
  // Anything else with a body: drained, then 404 (httplib would otherwise buffer it in memory).
  auto not_found = [&st](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& r) {
    drain(req, r, st);
    res.status = 404;
  };
  svr->Post(".*", not_found);
  svr->Put(".*", not_found);
  svr->Patch(".*", not_found);
  svr->Delete(".*", not_found);

  auto bound = svr->start(opts.listen_address, opts.port);
  if (!bound) return std::unexpected(std::move(bound).error());
  uint16_t port = *bound;
  if (opts.on_listening) opts.on_listening(port);
  st.log("upload-server: listening on " + svr->address() + (tls ? " (https)" : " (http)"));

  UploadOutcome outcome;
  std::optional<Error> error;
  {
    std::unique_lock lock(st.mutex);
    for (;;) {
      if (st.outcome) {
        if (*st.outcome)
          outcome.report = std::move(**st.outcome);
        else
          error = st.outcome->error();
        break;
      }
      if (st.cancelled()) {
        error = Error(Errc::cancelled, "cancelled by signal");
        break;
      }
      if (opts.deadline && std::chrono::system_clock::now() >= *opts.deadline &&
          st.gate.state() == UploadGate::State::idle) {
        outcome.deadline_passed = true;
        break;
      }
      st.cv.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  if (!error && !outcome.deadline_passed && opts.linger_after_done.count() > 0) {
    auto until = std::chrono::steady_clock::now() + opts.linger_after_done;
    while (std::chrono::steady_clock::now() < until && !st.cancelled())
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  svr->stop();
  // An async upload still finishing (only on cancel or deadline: the job sees the token and ends).
  if (st.finisher.joinable()) st.finisher.join();
  if (error) return std::unexpected(std::move(*error));
  return outcome;
}

}  // namespace cdi::server
