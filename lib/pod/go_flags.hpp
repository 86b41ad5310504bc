// SPDX-License-Identifier: Apache-2.0
// Go's `flag` package command-line syntax, for the small tools CDI's controller runs inside the
// importer image (cdi-containerimage-server, cdi-image-size-detection, cdi-source-update-poller):
// "-name", "--name", "-name=value", "-name value" (not for booleans: "-b" or "-b=false"); parsing
// stops at the first non-flag argument, at "-" or after "--"; "-h"/"-help" ask for the usage.
// Self-contained (no lib/util): it is also compiled into the static containerimage server.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cdi::pod {

struct GoFlag {
  enum class Kind { string, integer, boolean };
  std::string name;
  Kind kind = Kind::string;
  std::string usage;
  // Exactly one target, by kind; its value on entry is the default (shown in the usage).
  std::string* str = nullptr;
  int64_t* integer = nullptr;
  bool* boolean = nullptr;
};

struct GoFlagOutcome {
  enum class Status { ok, help, error } status = Status::ok;
  // error: Go's words ("flag provided but not defined: -x", "flag needs an argument: -p",
  // "invalid value \"x\" for flag -p: parse error", "bad flag syntax: ---x").
  std::string message;
  std::vector<std::string> rest;   // the arguments after the flags
};

// Parses args (argv without the program name) into the flags' targets.
GoFlagOutcome parse_go_flags(const std::vector<std::string>& args, const std::vector<GoFlag>& flags);

// Go's flag.PrintDefaults text after "Usage of <prog>:\n" (one "  -name type\n    \tusage" per flag,
// sorted by name, with " (default …)" for non-zero defaults as captured at the call).
std::string go_flags_usage(std::string_view prog, const std::vector<GoFlag>& flags);

// strconv.ParseInt(s, 0, 64): optional sign, 0x/0o/0b/0 prefixes, '_' between digits with a prefix.
// false on a syntax error or overflow (`range` tells which).
// A string quoted as Go's %q does for printable ASCII (\" and \\ escaped).
std::string go_quote(std::string_view s);

bool parse_go_int(std::string_view s, int64_t& out, bool* range = nullptr);

}  // namespace cdi::pod
