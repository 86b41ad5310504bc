// SPDX-License-Identifier: Apache-2.0
#include "lib/util/cgroup.hpp"

#include <charconv>
#include <fstream>
#include <sstream>

#include "lib/util/mountinfo.hpp"

namespace cdi::util {
namespace {

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return std::nullopt;
  return ss.str();
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

bool has_token(std::string_view list, std::string_view token) {
  for (auto t : split(list, ','))
    if (t == token) return true;
  return false;
}

struct Mount {
  std::string root;    // the part of the hierarchy mounted ("/" for all of it)
  std::string point;   // where
  std::string fstype;  // cgroup or cgroup2
  std::string super;   // super block options: the v1 controllers ("rw,cpu,cpuacct")
};

std::vector<Mount> cgroup_mounts(const CgroupPaths& paths) {
  std::vector<Mount> out;
  auto text = slurp(paths.real("/proc/self/mountinfo"));
  if (!text) return out;
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    auto f = split(line, ' ');
    size_t dash = 6;
    while (dash < f.size() && f[dash] != "-") ++dash;
    if (f.size() < 6 || dash + 1 >= f.size()) continue;
    Mount m{unescape_mountinfo(f[3]), unescape_mountinfo(f[4]), std::string(f[dash + 1]),
            dash + 3 < f.size() ? std::string(f[dash + 3]) : std::string()};
    if (m.fstype == "cgroup" || m.fstype == "cgroup2") out.push_back(std::move(m));
  }
  return out;
}

// The directory of cgroup `path` under mount `m`, or nullopt when the cgroup lies outside the
// mounted part of the hierarchy.
std::optional<std::string> dir_under(const Mount& m, const std::string& path) {
  std::string rel;
  if (m.root == "/") {
    rel = path == "/" ? std::string() : path;
  } else if (path == m.root) {
    rel.clear();
  } else if (path.starts_with(m.root) && path[m.root.size()] == '/') {
    rel = path.substr(m.root.size());
  } else {
    return std::nullopt;
  }
  return m.point + rel;
}

// `dir`, then its parents up to `top` (inclusive).
std::vector<std::string> up_to(std::string dir, const std::string& top) {
  std::vector<std::string> out{dir};
  while (dir.size() > top.size()) {
    auto slash = dir.rfind('/');
    if (slash == std::string::npos || slash < top.size()) break;
    dir.resize(slash);
    out.push_back(dir);
  }
  if (out.back() != top) out.push_back(top);
  return out;
}

}  // namespace

const CgroupPaths& CgroupPaths::system() {
  static const CgroupPaths paths;
  return paths;
}

std::string CgroupPaths::real(std::string_view path) const { return sysroot + std::string(path); }

std::optional<uint64_t> parse_cgroup_u64(std::string_view s) {
  uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::string> read_cgroup_file(const CgroupPaths& paths, const std::string& dir, std::string_view file) {
  auto text = slurp(paths.real(dir + "/" + std::string(file)));
  if (!text) return std::nullopt;
  while (!text->empty() && (text->back() == '\n' || text->back() == ' ' || text->back() == '\t')) text->pop_back();
  return text;
}

std::vector<CgroupHierarchy> cgroup_hierarchies(std::string_view controller, const CgroupPaths& paths) {
  std::vector<CgroupHierarchy> out;
  auto text = slurp(paths.real("/proc/self/cgroup"));
  if (!text) return out;
  auto mounts = cgroup_mounts(paths);
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    // "hierarchy-id:controller-list:cgroup-path"; v2 is "0::path".
    auto c1 = line.find(':');
    auto c2 = c1 == std::string::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string::npos) continue;
    std::string_view id = std::string_view(line).substr(0, c1);
    std::string_view ctrls = std::string_view(line).substr(c1 + 1, c2 - c1 - 1);
    std::string path = line.substr(c2 + 1);
    if (path.empty() || path[0] != '/') continue;
    bool v2 = id == "0" && ctrls.empty();
    if (!v2 && !has_token(ctrls, controller)) continue;
    for (const auto& m : mounts) {
      if (v2 ? m.fstype != "cgroup2" : (m.fstype != "cgroup" || !has_token(m.super, controller))) continue;
      auto dir = dir_under(m, path);
      if (!dir) continue;
      out.push_back({v2 ? 2 : 1, up_to(*dir, m.point)});
      break;
    }
  }
  return out;
}

}  // namespace cdi::util
