// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/upload_env.hpp"

#include <sys/stat.h>

#include <charconv>
#include <ctime>

#include "lib/pod/space.hpp"
#include "lib/pod/termination.hpp"
#include "lib/util/rfc3339.hpp"
#include "lib/util/units.hpp"

namespace cdi::pod {

namespace {

bool env_has(const Environment& env, std::string_view name) {
  for (const auto& [k, v] : env)
    if (k == name) return true;
  return false;
}

template <class T>
bool parse_int(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view t) {
  auto r = util::parse_rfc3339(t);
  if (!r) return fail(Errc::invalid_argument, Reason::bad_deadline, "Invalid DEADLINE \"" + std::string(t) + "\": not an RFC 3339 time");
  return r;
}

Result<server::UploadServerOptions> upload_options_from_env(const Environment& env, const PodPaths& paths) {
  server::UploadServerOptions o;
  o.listen_address = env_has(env, "LISTEN_ADDRESS") ? env_get(env, "LISTEN_ADDRESS") : "0.0.0.0";
  if (o.listen_address.empty()) o.listen_address = "0.0.0.0";
  o.port = 8443;
  if (unsigned p = 0; parse_int(env_get(env, "LISTEN_PORT"), p) && p <= 65535) o.port = static_cast<uint16_t>(p);
  auto cert = env_get(env, "TLS_CERT_FILE");
  auto key = env_get(env, "TLS_KEY_FILE");
  if (cert.empty() || key.empty()) return fail(Errc::invalid_argument, "Error getting TLS config: invalid TLS config");
  o.tls_cert = paths.resolve(cert);
  o.tls_key = paths.resolve(key);
  if (auto ca = env_get(env, "CLIENT_CERT_FILE"); !ca.empty()) o.client_ca = paths.resolve(ca);
  o.client_name = env_get(env, "CLIENT_NAME");
  o.tls_min_version = env_get(env, "TLS_MIN_VERSION");
  o.tls_ciphers = env_get(env, "TLS_CIPHERS");
  if (auto dl = env_get(env, "DEADLINE"); !dl.empty()) o.deadline = CDI_TRY(parse_rfc3339(dl));

  auto dest = env_get(env, "DESTINATION");
  auto& imp = o.import;
  imp.dest = paths.resolve(dest.empty() ? "/data/disk.img" : dest).string();
  imp.preallocate = parse_go_bool(env_get(env, "PREALLOCATION")).value_or(false);
  std::optional<uint64_t> request;
  if (auto size = env_get(env, "UPLOAD_IMAGE_SIZE"); !size.empty()) {
    auto q = util::parse_quantity(size);
    if (!q) return fail(Errc::invalid_argument, "Invalid UPLOAD_IMAGE_SIZE \"" + size + "\": " + q.error().what());
    request = *q;
  }
  struct stat st {};
  bool block = ::stat(imp.dest.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
  if (!block) {
    auto dir = std::filesystem::path(imp.dest).parent_path();
    auto free = CDI_TRY_CTX(filesystem_free(dir), "measuring the target's free space");
    uint64_t available = available_space(free, request);
    imp.image_size = available;
    imp.image_size_what = "the available space";
    imp.resize_to = resize_target(request, available, parse_overhead(env_get(env, "FILESYSTEM_OVERHEAD"))).value_or(0);
  }
  auto scratch = paths.scratch_dir();
  if (auto free = filesystem_free(scratch); free && *free > 0) imp.scratch_dir = scratch;
  return o;
}

std::string upload_complete_message(bool preallocation_applied) {
  TerminationMessage m;
  m.preallocation_applied = preallocation_applied;
  m.message = "Upload Complete";
  return termination_json(m).value();
}

std::string clone_target_complete_message(bool preallocation_applied) {
  TerminationMessage m;
  m.preallocation_applied = preallocation_applied;
  m.message = "Clone Complete";
  return termination_json(m).value();
}

int upload_env_exit_code(const Error& e) { return e.reason() == Reason::bad_deadline ? 255 : 1; }

std::string deadline_passed_message() {
  TerminationMessage m;
  m.deadline_passed = true;
  m.message = "Deadline Passed";
  return termination_json(m).value();
}

}  // namespace cdi::pod
