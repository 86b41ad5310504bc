// SPDX-License-Identifier: Apache-2.0
// What every CLI11 command of cdi-import does with a parse failure.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

namespace cdi::cmd {

// --help / --version: CLI11 prints them (exit 0). Anything else: one line
// "cdi-import: error: <what> (see --help)" and exit 2.
inline int cli_parse_failure(const CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == 0) return app.exit(e);
  std::string msg = e.what();
  for (auto& c : msg)
    if (c == '\n') c = ' ';
  std::fprintf(stderr, "cdi-import: error: %s (see --help)\n", msg.c_str());
  return 2;
}

}  // namespace cdi::cmd
