// SPDX-License-Identifier: Apache-2.0
// cdi-containerimage-server (CDI tools/cdi-containerimage-server): run by the controller inside the
// user's containerDisk image in node-pull registry imports, as `/shared/server -p 8100 -image-dir
// /disk -ready-file /shared/ready -done-file /shared/done` (and `/shared/server -h` by the
// DataImportCron digest pod). Serves the one file of the image directory on localhost, writes the
// ready file (content: the file name), waits for the importer's done file, and exits.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cmd/cdi-import/tools_cmd.hpp"
#include "lib/pod/image_server.hpp"

extern char** environ;

namespace cdi::cmd {

namespace {

[[noreturn]] void fatal(const std::string& msg) {
  go_log(msg);
  std::exit(1);
}

bool is_dir(const char* p) {
  struct stat st {};
  return ::stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// filepath.Walk printing every path (errors ignored, as CDI's printFiles does).
void print_files(const std::string& path) {
  std::printf("%s\n", path.c_str());
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return;
  std::vector<std::string> names;
  if (DIR* d = ::opendir(path.c_str())) {
    while (auto* e = ::readdir(d))
      if (std::string_view n = e->d_name; n != "." && n != "..") names.emplace_back(n);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  std::string base = path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  for (const auto& n : names) print_files(base == "." ? n : (base == "/" ? "/" + n : base + "/" + n));
}

// The only entry of dir, which must not be a directory.
std::string image_filename(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) fatal("Failed get image filename in " + dir + ": open " + dir + ": " + go_errno_text(errno));
  std::vector<std::pair<std::string, bool>> entries;
  while (auto* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    bool isdir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      isdir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    entries.emplace_back(std::string(n), isdir);
  }
  ::closedir(d);
  if (entries.size() != 1 || entries[0].second) fatal("Failed get image filename in " + dir + ": Invalid container image");
  return entries[0].first;
}

bool write_ready(const std::string& path, const std::string& content, std::string& why) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    why = "open " + path + ": " + go_errno_text(errno);
    return false;
  }
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
  if (!ok) why = "write " + path + ": " + go_errno_text(errno);
  ::close(fd);
  return ok;
}

}  // namespace

int run_containerimage_server(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  int64_t port = 8100;
  std::string directory = ".", ready_file = "/shared/ready", done_file = "/shared/done";
  std::vector<pod::GoFlag> flags = {
      {"p", pod::GoFlag::Kind::integer, "server port", nullptr, &port, nullptr},
      {"image-dir", pod::GoFlag::Kind::string, "directory to serve", &directory, nullptr, nullptr},
      {"ready-file", pod::GoFlag::Kind::string, "file to create when ready for connections", &ready_file, nullptr, nullptr},
      {"done-file", pod::GoFlag::Kind::string, "file created when the client is done", &done_file, nullptr, nullptr},
  };
  if (int rc = go_flags_or_exit(argc, argv, flags); rc >= 0) return rc;

  if (is_dir("/sysroot") || is_dir("/ostree"))
    fatal("bootc image detected: this image contains an ostree-based bootable OS and cannot be imported as a regular "
          "container disk; bootc-to-disk conversion is not yet implemented");

  print_files(directory);
  std::fflush(stdout);
  std::string name = image_filename(directory);

  std::string addr = "localhost:" + std::to_string(port);
  if (port < 0 || port > 65535) fatal("Failed listening on " + addr + " err: listen tcp: address " + std::to_string(port) + ": invalid port");
  pod::ImageServerOptions o;
  o.directory = directory;
  o.port = static_cast<uint16_t>(port);
  for (char** e = environ; e && *e; ++e) o.env.emplace_back(*e);
  auto server = pod::ImageServer::start(o);
  if (!server) fatal("Failed listening on " + addr + " err: " + server.error().what());

  std::string why;
  if (!write_ready(ready_file, name, why)) fatal("Failed creating \"ready\" file: " + why);
  go_log("Serving " + directory + " on HTTP port: " + std::to_string(port));

  for (;;) {
    struct stat st {};
    if (::stat(done_file.c_str(), &st) == 0) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  ::unlink(done_file.c_str());
  (*server)->shutdown();
  go_log("Importer has completed");
  ::unlink(ready_file.c_str());
  return 0;
}

}  // namespace cdi::cmd
