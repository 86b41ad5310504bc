// SPDX-License-Identifier: Apache-2.0
// cdi-image-size-detection (CDI tools/cdi-image-size-detection): run by the clone controller as
// `/usr/bin/cdi-image-size-detection -image-path /data/disk.img`; writes the image's virtual size
// (decimal) as the termination message. Exit codes are CDI's (pkg/controller/common):
// 1 ErrBadArguments, 2 ErrInvalidFile, 3 ErrInvalidPath, 4 ErrBadTermFile (and Go's 2 for a flag
// syntax error). The size comes from our own detection (header parsing; qemu-img info for the
// formats we hand to qemu-img), never from probing with qemu-img.
#include <cctype>
#include <cstdlib>
#include <string>

#include "cmd/cdi-import/tools_cmd.hpp"
#include "lib/pipeline/import.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/termination.hpp"

extern char** environ;

namespace cdi::cmd {

namespace {

constexpr int k_err_bad_arguments = 1;
constexpr int k_err_invalid_file = 2;
constexpr int k_err_invalid_path = 3;
constexpr int k_err_bad_term_file = 4;

// What Go's url.Parse refuses in such a URL: control characters and bad %-escapes.
std::string url_parse_error(const std::string& url) {
  for (unsigned char c : url)
    if (c < 0x20 || c == 0x7f) return "parse \"" + url + "\": net/url: invalid control character in URL";
  for (size_t i = 0; i < url.size(); ++i) {
    if (url[i] != '%') continue;
    if (i + 2 >= url.size() || !std::isxdigit(static_cast<unsigned char>(url[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(url[i + 2]))) {
      std::string esc = url.substr(i, 3);
      return "parse \"" + url + "\": invalid URL escape \"" + esc + "\"";
    }
  }
  return {};
}

// The URL's scheme (lower case), "" when it has none.
std::string scheme_of(const std::string& url) {
  for (size_t i = 0; i < url.size(); ++i) {
    char c = url[i];
    if (std::isalpha(static_cast<unsigned char>(c))) continue;
    if (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.')) continue;
    if (c == ':' && i > 0) {
      std::string s = url.substr(0, i);
      for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return s;
    }
    break;
  }
  return {};
}

}  // namespace

int run_image_size_detection(int argc, char** argv) {
  std::string image_path, scheme = "file://";
  std::vector<pod::GoFlag> flags = {
      {"image-path", pod::GoFlag::Kind::string, "(Mandatory) URL address of the virtual image.", &image_path, nullptr, nullptr},
      {"scheme", pod::GoFlag::Kind::string, "(Optional) Virtual image's URI scheme.", &scheme, nullptr, nullptr},
  };
  if (int rc = go_flags_or_exit(argc, argv, flags); rc >= 0) return rc;
  if (image_path.empty()) {
    go_log("One or more mandatory parameters are missing");
    return k_err_bad_arguments;
  }
  go_log("Initializing size-detection pod");
  std::string url = scheme + image_path;
  if (auto e = url_parse_error(url); !e.empty()) {
    go_log("Unable to parse the provided URL: '" + e);   // sic: CDI's unbalanced quote
    return k_err_invalid_path;
  }
  auto invalid_file = [&](const std::string& why) {
    go_log("Unable to extract information from '" + image_path + "': '" + why + "'");
    return k_err_invalid_file;
  };
  std::string s = scheme_of(url);
  std::string path = url;
  if (s == "file") path = url.substr(5);   // "file:///data/disk.img" -> "///data/disk.img", as qemu-img reads it
  else if (s == "nbd+unix") return invalid_file("nbd+unix URLs are not supported by this image");
  else if (!s.empty()) return invalid_file("not valid schema " + s);
  if (path.empty()) return invalid_file("empty image path");

  pipeline::ImportOptions o;
  o.url = path;
  auto r = pipeline::inspect(o);
  if (!r) return invalid_file(r.error().what());
  // Compressed or otherwise unsized: qemu-img (CDI) sees such a file as raw, of its own size.
  auto size = r->virtual_size ? r->virtual_size : r->source_size;
  if (!size) return invalid_file("cannot determine the virtual size (" + pipeline::chain_text(r->chain) + ")");

  auto paths = pod::paths_from(pod::environment_from(environ));
  if (auto w = pod::write_termination_log(paths.termination_log(), std::to_string(*size)); !w) {
    go_log("Unable to write to termination file: 'could not create termination message file: " + w.error().what() + "'");
    return k_err_bad_term_file;
  }
  go_log("Size-detection binary has completed");
  return 0;
}

}  // namespace cdi::cmd
