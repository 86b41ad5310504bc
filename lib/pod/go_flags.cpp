// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/go_flags.hpp"

#include <algorithm>
#include <limits>

namespace cdi::pod {

namespace {

int digit_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

const GoFlag* find_flag(const std::vector<GoFlag>& flags, std::string_view name) {
  for (const auto& f : flags)
    if (f.name == name) return &f;
  return nullptr;
}

// strconv.ParseBool
bool parse_go_bool_text(std::string_view t, bool& out) {
  for (std::string_view s : {"1", "t", "T", "TRUE", "true", "True"})
    if (t == s) return out = true, true;
  for (std::string_view s : {"0", "f", "F", "FALSE", "false", "False"})
    if (t == s) return out = false, true;
  return false;
}


}  // namespace

std::string go_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool parse_go_int(std::string_view s, int64_t& out, bool* range) {
  if (range) *range = false;
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  int base = 10;
  bool prefixed = false;
  if (s.size() >= 2 && s[0] == '0') {
    char p = static_cast<char>(s[1] | 0x20);
    if (p == 'x') base = 16, s.remove_prefix(2), prefixed = true;
    else if (p == 'b') base = 2, s.remove_prefix(2), prefixed = true;
    else if (p == 'o') base = 8, s.remove_prefix(2), prefixed = true;
    else base = 8, s.remove_prefix(1), prefixed = true;   // leading 0: octal
  }
  // Underscores only with a base prefix, each between digits (or right after the prefix).
  if (s.find('_') != std::string_view::npos) {
    if (!prefixed) return false;
    if (s.back() == '_' || s.find("__") != std::string_view::npos) return false;
  }
  if (s.empty() && !(prefixed && base == 8)) return false;   // "0x" alone
  unsigned __int128 v = 0;
  bool any = false;
  for (char c : s) {
    if (c == '_') continue;
    int d = digit_value(c);
    if (d >= base) return false;
    v = v * static_cast<unsigned>(base) + static_cast<unsigned>(d);
    any = true;
    if (v > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()) + 1) {
      // keep scanning for syntax errors first (Go reports syntax before range)
      for (char r : s)
        if (r != '_' && digit_value(r) >= base) return false;
      if (range) *range = true;
      return false;
    }
  }
  if (!any && !(prefixed && base == 8)) return false;
  if (!neg && v > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
    if (range) *range = true;
    return false;
  }
  out = neg ? static_cast<int64_t>(-static_cast<__int128>(v)) : static_cast<int64_t>(v);
  return true;
}

GoFlagOutcome parse_go_flags(const std::vector<std::string>& args, const std::vector<GoFlag>& flags) {
  GoFlagOutcome o;
  size_t i = 0;
  auto error = [&](std::string m) {
    o.status = GoFlagOutcome::Status::error;
    o.message = std::move(m);
    return o;
  };
  while (i < args.size()) {
    const std::string& s = args[i];
    if (s.size() < 2 || s[0] != '-') break;
    size_t minuses = 1;
    if (s[1] == '-') {
      minuses = 2;
      if (s.size() == 2) {   // "--" ends the flags and is consumed
        ++i;
        break;
      }
    }
    std::string name = s.substr(minuses);
    if (name.empty() || name[0] == '-' || name[0] == '=') return error("bad flag syntax: " + s);
    ++i;
    bool has_value = false;
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    const GoFlag* f = find_flag(flags, name);
    if (!f) {
      if (name == "help" || name == "h") {
        o.status = GoFlagOutcome::Status::help;
        return o;
      }
      return error("flag provided but not defined: -" + name);
    }
    if (f->kind == GoFlag::Kind::boolean) {
      bool b = true;
      if (has_value && !parse_go_bool_text(value, b))
        return error("invalid boolean value " + go_quote(value) + " for -" + name + ": parse error");
      *f->boolean = b;
      continue;
    }
    if (!has_value) {
      if (i >= args.size()) return error("flag needs an argument: -" + name);
      value = args[i++];
    }
    if (f->kind == GoFlag::Kind::integer) {
      int64_t v = 0;
      bool range = false;
      if (!parse_go_int(value, v, &range))
        return error("invalid value " + go_quote(value) + " for flag -" + name + ": " +
                     (range ? "value out of range" : "parse error"));
      *f->integer = v;
    } else {
      *f->str = value;
    }
  }
  o.rest.assign(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  return o;
}

std::string go_flags_usage(std::string_view prog, const std::vector<GoFlag>& flags) {
  std::vector<const GoFlag*> sorted;
  for (const auto& f : flags) sorted.push_back(&f);
  std::sort(sorted.begin(), sorted.end(), [](const GoFlag* a, const GoFlag* b) { return a->name < b->name; });
  std::string out = "Usage of " + std::string(prog) + ":\n";
  for (const GoFlag* f : sorted) {
    out += "  -" + f->name;
    std::string def;
    switch (f->kind) {
      case GoFlag::Kind::string:
        out += " string";
        if (!f->str->empty()) def = go_quote(*f->str);
        break;
      case GoFlag::Kind::integer:
        out += " int";
        if (*f->integer != 0) def = std::to_string(*f->integer);
        break;
      case GoFlag::Kind::boolean:
        if (*f->boolean) def = "true";
        break;
    }
    out += "\n    \t" + f->usage;
    if (!def.empty()) out += " (default " + def + ")";
    out += "\n";
  }
  return out;
}

}  // namespace cdi::pod
