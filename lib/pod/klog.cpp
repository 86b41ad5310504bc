// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/klog.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <ctime>

namespace cdi::pod {

namespace {

Result<int> parse_level(std::string_view v) {
  int n = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || p != v.data() + v.size() || n < 0)
    return fail(Errc::invalid_argument, "invalid value \"" + std::string(v) + "\" for flag -v");
  return n;
}

}  // namespace

Result<KlogFlags> parse_klog_flags(const std::vector<std::string>& args) {
  KlogFlags f;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (!a.starts_with("-") || a == "-" || a == "--")
      return fail(Errc::invalid_argument, "unexpected argument \"" + std::string(a) + "\" (pod mode takes klog flags only)");
    a.remove_prefix(a.starts_with("--") ? 2 : 1);
    std::string_view name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto boolean = [&](bool& out) -> Result<void> {
      if (!has_value) {
        out = true;
        return {};
      }
      if (value == "true" || value == "1" || value == "t" || value == "T" || value == "TRUE" || value == "True") out = true;
      else if (value == "false" || value == "0" || value == "f" || value == "F" || value == "FALSE" || value == "False") out = false;
      else return fail(Errc::invalid_argument, "invalid boolean value \"" + std::string(value) + "\" for -" + std::string(name));
      return {};
    };
    if (name == "v") {
      if (!has_value) {
        if (i + 1 >= args.size()) return fail(Errc::invalid_argument, "flag needs an argument: -v");
        value = args[++i];
      }
      f.verbosity = CDI_TRY(parse_level(value));
    } else if (name == "logtostderr") {
      CDI_TRY(boolean(f.logtostderr));
    } else if (name == "alsologtostderr") {
      CDI_TRY(boolean(f.alsologtostderr));
    } else if (name == "log_file") {
      if (!has_value && i + 1 < args.size()) value = args[++i];
      f.log_file = std::string(value);
    } else if (!has_value && (name == "log_dir" || name == "stderrthreshold" || name == "vmodule" ||
                              name == "log_backtrace_at" || name == "log_file_max_size")) {
      if (i + 1 < args.size()) ++i;  // takes a value: skip it
    }
    // Any other klog flag (-skip_headers, -add_dir_header, ...) is accepted and has no effect.
  }
  return f;
}

std::string klog_line(char level, std::string_view msg, std::chrono::system_clock::time_point when, int pid) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(when);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(when - secs).count();
  std::time_t t = std::chrono::system_clock::to_time_t(secs);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char head[64];
  std::snprintf(head, sizeof head, "%c%02d%02d %02d:%02d:%02d.%06lld %7d cdi-import] ", level, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros), pid);
  std::string line = head;
  line.append(msg);
  return line;
}

void Logger::emit(char level, std::string_view msg) const {
  if (m_write) m_write(klog_line(level, msg, std::chrono::system_clock::now(), static_cast<int>(::getpid())));
}

void Logger::info(int v, std::string_view msg) const {
  if (v <= m_verbosity) emit('I', msg);
}
void Logger::warning(std::string_view msg) const { emit('W', msg); }
void Logger::error(std::string_view msg) const { emit('E', msg); }

}  // namespace cdi::pod
