// SPDX-License-Identifier: Apache-2.0
#include "lib/source/in_use.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <thread>

#include "lib/clone/clone_stream.hpp"
#include "tests/support/loop_device.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using cdi::test::sys::TempDir;

namespace {

void write_file(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// An OFD lock of `type` on one byte, held by its own open file description (as qemu holds them).
int ofd_lock(const std::filesystem::path& p, short type, off_t byte) {
  int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  REQUIRE(::fcntl(fd, F_OFD_SETLK, &fl) == 0);
  return fd;
}

}  // namespace

TEST_CASE("in use: qemu's OFD lock bytes", "[source][in_use]") {
  TempDir dir;
  auto img = dir / "disk.img";
  write_file(img, std::string(4096, 'x'));
  CHECK(source::check_image_free(img.string()));
  SECTION("a shared lock on 101 (write permission held)") {
    int holder = ofd_lock(img, F_RDLCK, 101);
    auto r = source::check_image_free(img.string());
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::busy);
    CHECK(r.error().what().find("locked by a running qemu") != std::string::npos);
    ::close(holder);
    CHECK(source::check_image_free(img.string()));
  }
  SECTION("a shared lock on 103 (resize) or 200 (consistent read not shared)") {
    for (off_t byte : {off_t(103), off_t(200)}) {
      int holder = ofd_lock(img, F_RDLCK, byte);
      CHECK_FALSE(source::check_image_free(img.string()));
      ::close(holder);
    }
  }
  SECTION("a reader sharing everything (lock on 100 only) does not count") {
    int holder = ofd_lock(img, F_RDLCK, 100);
    CHECK(source::check_image_free(img.string()));
    ::close(holder);
  }
  SECTION("a directory tree: the locked file is found below") {
    std::filesystem::create_directories(dir / "vol" / "sub");
    write_file(dir / "vol" / "a.txt", "a");
    auto deep = dir / "vol" / "sub" / "disk.img";
    write_file(deep, std::string(4096, 'y'));
    CHECK(source::check_tree_free(dir / "vol"));
    int holder = ofd_lock(deep, F_RDLCK, 101);
    auto r = source::check_tree_free(dir / "vol");
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::busy);
    CHECK(r.error().what().find(deep.string()) != std::string::npos);
    ::close(holder);
  }
}

TEST_CASE("in use: a live qemu-io holding the image", "[source][in_use]") {
  TempDir dir;
  auto img = dir / "disk.img";
  write_file(img, std::string(1 << 20, '\0'));
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execlp("qemu-io", "qemu-io", "-f", "raw", "-c", "sleep 600000", img.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool busy = false;
  for (int i = 0; i < 500 && !busy; ++i) {
    busy = !source::check_image_free(img.string());
    if (!busy) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  int st = 0;
  ::waitpid(pid, &st, 0);
  CHECK(busy);
  CHECK(source::check_image_free(img.string()));
}

TEST_CASE("in use: devices", "[source][in_use]") {
  CHECK_FALSE(source::device_mount_point(makedev(4095, 4095)));
  struct stat st {};
  REQUIRE(::stat("/", &st) == 0);
  // the root filesystem's device is mounted (at / or, in a container, somewhere)
  if (major(st.st_dev) != 0) CHECK(source::device_mount_point(st.st_dev));
  auto missing = source::device_in_use("/nonexistent/device");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == Errc::not_found);
}

TEST_CASE("clone streams: tar entries and argv as CDI builds them", "[clone]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "lost+found");
  std::filesystem::create_directories(dir / "b");
  write_file(dir / "disk.img", "d");
  write_file(dir / "A", "a");
  write_file(dir / "-x", "x");
  auto e = clone::tar_entries(dir.path());
  REQUIRE(e);
  CHECK(*e == std::vector<std::string>{"-x", "A", "b", "disk.img"});
  CHECK(clone::tar_argv("/usr/bin/tar", true, *e) ==
        std::vector<std::string>{"/usr/bin/tar", "cv", "-S", "--", "-x", "A", "b", "disk.img"});
  CHECK(clone::tar_argv("/usr/bin/tar", false, {}) ==
        std::vector<std::string>{"/usr/bin/tar", "cv", "--files-from", "/dev/null"});
}

TEST_CASE("clone streams: a sparse file reads back exactly, holes as zeros", "[clone]") {
  TempDir dir;
  auto img = dir / "disk.img";
  {
    int fd = ::open(img.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 << 20) == 0);
    std::string data(70000, 'q');
    REQUIRE(::pwrite(fd, data.data(), data.size(), 3 << 20) == static_cast<ssize_t>(data.size()));
    REQUIRE(::pwrite(fd, "end", 3, (8 << 20) - 3) == 3);
    ::close(fd);
  }
  auto r = clone::open_raw_stream(img);
  REQUIRE(r);
  CHECK((*r)->info().size == uint64_t(8 << 20));
  auto got = cdi::test::read_all(**r, 12345);
  REQUIRE(got);
  REQUIRE(got->size() == size_t(8 << 20));
  std::vector<std::byte> want(8 << 20);
  std::memset(want.data() + (3 << 20), 'q', 70000);
  std::memcpy(want.data() + (8 << 20) - 3, "end", 3);
  CHECK(*got == want);
  auto dirr = clone::open_raw_stream(dir.path());
  REQUIRE_FALSE(dirr);
}

TEST_CASE("clone streams: tar output streams and a failing tar fails the stream", "[clone]") {
  TempDir dir;
  std::filesystem::create_directories(dir / "vol");
  write_file(dir / "vol" / "f", "hello");
  clone::TarStreamOptions o;
  o.tar = "tar";
  auto r = clone::open_tar_stream(dir / "vol", o);
  REQUIRE(r);
  auto got = cdi::test::read_all(**r, 777);
  REQUIRE(got);
  CHECK(got->size() % 10240 == 0);
  CHECK(std::string(reinterpret_cast<const char*>(got->data()), 1) == "f");
  write_file(dir / "bad.sh", "#!/bin/sh\necho partial\necho 'tar: oops' >&2\nexit 2\n");
  ::chmod((dir / "bad.sh").c_str(), 0755);
  o.tar = (dir / "bad.sh").string();
  auto b = clone::open_tar_stream(dir / "vol", o);
  REQUIRE(b);
  auto bad = cdi::test::read_all(**b, 777);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::io);
  CHECK(bad.error().what() == "tar exited with status 2: tar: oops");
}
