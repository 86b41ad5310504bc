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
