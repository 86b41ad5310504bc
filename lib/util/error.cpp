// SPDX-License-Identifier: Apache-2.0
#include "lib/util/error.hpp"

#include <cstring>

namespace cdi {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::io: return "io";
    case Errc::corrupt_input: return "corrupt_input";
    case Errc::unsupported: return "unsupported";
    case Errc::limit: return "limit";
    case Errc::auth: return "auth";
    case Errc::network: return "network";
    case Errc::not_found: return "not_found";
    case Errc::scratch_required: return "scratch_required";
    case Errc::cancelled: return "cancelled";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::busy: return "busy";
    case Errc::internal: return "internal";
  }
  return "internal";
}

std::string_view reason_name(Reason r) {
  switch (r) {
    case Reason::none: return "none";
    case Reason::checksum_mismatch: return "checksum_mismatch";
    case Reason::no_space: return "no_space";
    case Reason::too_small: return "too_small";
    case Reason::bad_preallocation: return "bad_preallocation";
    case Reason::bad_deadline: return "bad_deadline";
    case Reason::bad_checksum: return "bad_checksum";
    case Reason::scratch_required: return "scratch_required";
    case Reason::in_use: return "in_use";
    case Reason::truncated: return "truncated";
  }
  return "none";
}

std::string Error::what() const {
  std::string out;
  for (const auto& c : m_context) {
    if (c.empty()) continue;
    out += c;
    out += ": ";
  }
  out += m_message;
  for (auto& ch : out)
    if (ch == '\n' || ch == '\r') ch = ' ';
  return out;
}

Error sys_error(std::string what, int err) {
  Errc code = Errc::io;
  if (err == ENOENT || err == ENOTDIR) code = Errc::not_found;
  if (err == EBUSY) code = Errc::busy;
  if (err == EINTR) code = Errc::cancelled;
  std::string msg = std::move(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(code, std::move(msg), err);
}

}  // namespace cdi
