// SPDX-License-Identifier: Apache-2.0
// Shared by the CDI tool entry points (also linked into the static cdi-containerimage-server).
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "cmd/cdi-import/tools_cmd.hpp"

namespace cdi::cmd {

void go_log(std::string_view msg) {
  std::time_t t = std::time(nullptr);
  struct tm tm {};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &tm);
  std::string line = stamp;
  line += ' ';
  line += msg;
  if (line.empty() || line.back() != '\n') line += '\n';
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
}

int go_flags_or_exit(int argc, char** argv, const std::vector<pod::GoFlag>& flags) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string usage = pod::go_flags_usage(argc > 0 ? argv[0] : "", flags);
  auto o = pod::parse_go_flags(args, flags);
  switch (o.status) {
    case pod::GoFlagOutcome::Status::ok: return -1;
    case pod::GoFlagOutcome::Status::help: std::fputs(usage.c_str(), stderr); return 0;
    case pod::GoFlagOutcome::Status::error:
      std::fprintf(stderr, "%s\n%s", o.message.c_str(), usage.c_str());
      return 2;
  }
  return 2;
}

std::string go_errno_text(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace cdi::cmd
