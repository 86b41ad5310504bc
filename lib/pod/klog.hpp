// SPDX-License-Identifier: Apache-2.0
// klog compatibility for pod mode: the flags CDI's controller passes (-v=N, -alsologtostderr,
// -logtostderr, ...) and log lines in klog's header format, so that CDI's key phrases
// ("New phase: …", "Import Complete") read the same. The library formats; cmd/ writes.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::pod {

struct KlogFlags {
  int verbosity = 0;           // -v / --v
  bool logtostderr = true;     // accepted; we always log to stderr
  bool alsologtostderr = false;
  std::string log_file;        // accepted, ignored (stderr only)
};

// Parses klog-style flags: "-v=3", "--v=3", "-v 3", "-alsologtostderr", "-logtostderr=false",
// "-log_file=…", "-stderrthreshold=…", "-skip_headers", ... Unknown klog flags are accepted and
// ignored (klog has many); arguments that are not flags are invalid_argument.
Result<KlogFlags> parse_klog_flags(const std::vector<std::string>& args);

// "I1125 16:44:23.123456    4242 cdi-import] <msg>" (klog header; level I/W/E).
std::string klog_line(char level, std::string_view msg, std::chrono::system_clock::time_point when, int pid);

// A verbosity-gated logger over a line writer.
class Logger {
 public:
  Logger(int verbosity, std::function<void(std::string_view)> write)
      : m_verbosity(verbosity), m_write(std::move(write)) {}
  // Logs msg when v <= the configured verbosity.
  void info(int v, std::string_view msg) const;
  void warning(std::string_view msg) const;
  void error(std::string_view msg) const;
  int verbosity() const { return m_verbosity; }

 private:
  void emit(char level, std::string_view msg) const;
  int m_verbosity;
  std::function<void(std::string_view)> m_write;
};

}  // namespace cdi::pod
