// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/handshake.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "lib/util/fd.hpp"

namespace cdi::pod {

Result<std::string> wait_ready_file(const std::filesystem::path& path, std::string_view pod_path, unsigned tries,
                                    std::chrono::milliseconds interval, const util::CancelToken* cancel) {
  for (unsigned i = 0; i < tries; ++i) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
      std::ifstream in(path, std::ios::binary);
      if (!in) return fail_sys("reading " + path.string());
      std::stringstream ss;
      ss << in.rdbuf();
      std::string s = ss.str();
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
      size_t b = 0;
      while (b < s.size() && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
      return s.substr(b);
    }
    if (cancel) CDI_TRY(cancel->check());
    if (i + 1 < tries) std::this_thread::sleep_for(interval);
  }
  return fail(Errc::limit, "Timeout waiting for file " + std::string(pod_path));
}

std::string node_pull_endpoint(std::string_view endpoint, std::string_view name) {
  if (name.empty()) return std::string(endpoint);
  if (endpoint.ends_with("disk.img")) endpoint.remove_suffix(8);
  return std::string(endpoint) + std::string(name);
}

Result<void> create_done_file(const std::filesystem::path& path) {
  util::Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666));
  if (!fd) return fail_sys("creating " + path.string());
  ::fchmod(fd.get(), 0666);
  return {};
}

}  // namespace cdi::pod
