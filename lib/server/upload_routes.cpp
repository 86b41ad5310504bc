// SPDX-License-Identifier: Apache-2.0
#include "lib/server/upload_routes.hpp"

#include <openssl/ssl.h>

#include <cctype>
#include <cerrno>
#include <utility>

namespace cdi::server {
namespace {

struct Entry {
  std::string_view suffix;
  UploadKind kind;
};
constexpr Entry k_routes[] = {
    {"upload", UploadKind::sync},
    {"upload-async", UploadKind::async},
    {"upload-archive", UploadKind::archive},
    {"upload-form", UploadKind::form},
    {"upload-form-async", UploadKind::form_async},
};
constexpr std::string_view k_versions[] = {"/v1beta1/", "/v1alpha1/"};

}  // namespace

std::optional<Route> route_for(std::string_view path) {
  for (auto v : k_versions) {
    if (path.substr(0, v.size()) != v) continue;
    auto rest = path.substr(v.size());
    for (const auto& e : k_routes)
      if (rest == e.suffix) return Route{e.kind};
  }
  return std::nullopt;
}

std::vector<std::string> upload_paths() {
  std::vector<std::string> out;
  for (auto v : k_versions)
    for (const auto& e : k_routes) out.push_back(std::string(v) + std::string(e.suffix));
  return out;
}

UploadGate::Admission UploadGate::try_admit() {
  std::lock_guard lock(m_mutex);
  switch (m_state) {
    case State::busy: return Admission::busy;
    case State::done: return Admission::done;
    case State::idle: break;
  }
  m_state = State::busy;
  return Admission::admitted;
}

void UploadGate::release(bool succeeded) {
  std::lock_guard lock(m_mutex);
  m_state = succeeded ? State::done : State::idle;
}

UploadGate::State UploadGate::state() const {
  std::lock_guard lock(m_mutex);
  return m_state;
}

int admission_status(UploadGate::Admission a) {
  switch (a) {
    case UploadGate::Admission::busy: return 503;
    case UploadGate::Admission::done: return 409;
    case UploadGate::Admission::admitted: break;
  }
  return 200;
}

Reply reply_for_error(const Error& e, bool client_fault) {
  // A full target (ENOSPC / EDQUOT, or qemu-img saying so: Reason::no_space, set where it is
  // known) and an image larger than the target are CDI's "larger than the reported available
  // storage" 400; the controller matches that wording.
  if (e.code() == Errc::limit || e.reason() == Reason::no_space || e.reason() == Reason::too_small)
    return {400, "Saving stream failed: effective image size is larger than the reported available storage: " + e.what()};
  if (client_fault || e.reason() == Reason::checksum_mismatch) return {400, "Saving stream failed: " + e.what()};
  return {500, "Saving stream failed: " + e.what()};
}

CloneKind clone_kind(std::string_view v) {
  if (v == "blockdevice-clone") return CloneKind::blockdevice;
  if (v == "filesystem-clone") return CloneKind::filesystem;
  return CloneKind::none;
}

std::string_view clone_kind_name(CloneKind k) {
  switch (k) {
    case CloneKind::blockdevice: return "blockdevice-clone";
    case CloneKind::filesystem: return "filesystem-clone";
    case CloneKind::none: break;
  }
  return "";
}

std::optional<Reply> clone_refusal(Route route, CloneKind kind) {
  if (kind == CloneKind::none || !route.async()) return std::nullopt;
  return Reply{500, "Saving stream failed: async clone not supported"};
}

Result<int> parse_tls_min_version(std::string_view v) {
  if (v.empty() || v == "1.2" || v == "VersionTLS12") return TLS1_2_VERSION;
  if (v == "1.3" || v == "VersionTLS13") return TLS1_3_VERSION;
  if (v == "1.1" || v == "VersionTLS11") return TLS1_1_VERSION;
  if (v == "1.0" || v == "VersionTLS10") return TLS1_VERSION;
  return fail(Errc::invalid_argument, "invalid TLS minimum version '" + std::string(v) +
                                          "' (expected 1.0, 1.1, 1.2, 1.3 or VersionTLS10..VersionTLS13)");
}

std::string openssl_cipher_list(std::string_view comma_list) {
  std::string out;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    if (!out.empty()) out += ':';
    out += cur;
    cur.clear();
  };
  for (char c : comma_list) {
    if (c == ',' || c == ':') {
      flush();
    } else if (c != ' ' && c != '\t') {
      cur += c;
    }
  }
  flush();
  return out;
}

}  // namespace cdi::server
