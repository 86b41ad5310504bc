// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/termination.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "lib/util/fd.hpp"

namespace cdi::pod {

namespace {
std::string json_string(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }
}  // namespace

Result<std::string> termination_json(const TerminationMessage& m) {
  std::string out = "{";
  auto sep = [&] {
    if (out.size() > 1) out += ',';
  };
  auto add_bool = [&](const char* key, const std::optional<bool>& v) {
    if (!v) return;
    sep();
    out += '"';
    out += key;
    out += "\":";
    out += *v ? "true" : "false";
  };
  add_bool("scratchSpaceRequired", m.scratch_space_required);
  add_bool("preallocationApplied", m.preallocation_applied);
  add_bool("deadlinePassed", m.deadline_passed);
  if (!m.labels.empty()) {
    auto labels = m.labels;
    std::sort(labels.begin(), labels.end());
    sep();
    out += "\"labels\":{";
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) out += ',';
      out += json_string(labels[i].first) + ":" + json_string(labels[i].second);
    }
    out += '}';
  }
  if (!m.message.empty()) {
    sep();
    out += "\"message\":" + json_string(m.message);
  }
  out += '}';
  if (out.size() > k_max_termination_json)
    return fail(Errc::limit, "Termination message length " + std::to_string(out.size()) +
                                 " exceeds maximum length of " + std::to_string(k_max_termination_json) + " bytes");
  return out;
}

std::string one_line(std::string_view text) {
  std::string s(text);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

Result<void> write_termination_log(const std::filesystem::path& path, std::string_view text) {
  util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return fail_sys("opening " + path.string());
  std::string line = one_line(text);
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(fd.get(), line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_sys("writing " + path.string());
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace cdi::pod
