// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/tar/extract.hpp"
#include "test_formats_tar_support.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using namespace cdi::test::tar;
using cdi::test::FailingReader;
using cdi::test::MemoryReader;
namespace fs = std::filesystem;
namespace tar = cdi::formats::tar;

namespace {

// tmp/dest is where we extract; tmp/outside holds a file an attack would love to reach.
struct Sandbox {
  TempDir tmp;
  fs::path dest = tmp.path() / "dest";
  fs::path outside = tmp.path() / "outside";
  Sandbox() {
    fs::create_directories(dest);
    fs::create_directories(outside);
    write_file(outside / "secret", "secret");
  }
  // The whole temp dir, so that anything created next to dest shows up.
  std::set<std::string> all() const { return tree(tmp.path()); }
  std::set<std::string> with(const std::vector<std::string>& in_dest) const {
    std::set<std::string> s = {"dest", "outside", "outside/secret"};
    for (const auto& p : in_dest) s.insert("dest/" + p);
    return s;
  }
};

Result<tar::ExtractStats> extract(const std::vector<std::byte>& bytes, const fs::path& dest, size_t chunk = 1 << 20,
                                  const util::CancelToken* cancel = nullptr) {
  MemoryReader in(bytes, chunk);
  tar::ExtractOptions opts;
  opts.cancel = cancel;
  return tar::extract(in, dest, opts);
}

std::vector<std::byte> text(std::string_view s) { return cdi::test::to_bytes(s); }

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

struct stat lstat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

}  // namespace

TEST_CASE("tar extract a normal tree at chunk sizes 1, 7, 4096, 1 MiB", "[tar-extract]") {
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    INFO("chunk " << chunk);
    // One-byte writes are slow; the big file only needs to span buffers at the larger chunks.
    auto big = pattern(chunk == 1 ? 100000 : (1 << 20) + 77);
    auto deep = pattern(3000, 9);
    auto bytes = make_tar({dir("./"), dir("d", 0750), dir("d/sub"), reg("d/a.txt", text("hello"), 0640),
                           reg("top.bin", big), sym("d/link", "a.txt"), sym("rel", "d/sub"),
                           sym("d/sub/up", "../../top.bin"), hard("d/hard", "d/a.txt"),
                           reg("./d/sub/deep.txt", deep)});
    Sandbox box;
    // Twice into the same directory: CDI does not clean /data, existing entries are replaced.
    for (int round = 0; round < 2; ++round) {
      auto stats = extract(bytes, box.dest, chunk);
      REQUIRE(stats);
      CHECK(stats->files == 3);
      CHECK(stats->dirs == 2);
      CHECK(stats->links == 4);
      CHECK(stats->bytes == 5 + big.size() + deep.size());
      // Directory times are restored when libarchive creates the directory; on re-extraction
      // into an existing one, the entries written into it later update its mtime (GNU tar
      // would restore it at the end; a known libarchive difference).
      if (round == 0) CHECK(lstat_of(box.dest / "d").st_mtime == 1700000000);
    }
    CHECK(box.all() == box.with({"d", "d/sub", "d/a.txt", "top.bin", "d/link", "rel", "d/sub/up", "d/hard",
                                 "d/sub/deep.txt"}));
    CHECK(read_file(box.dest / "d/a.txt") == text("hello"));
    CHECK(read_file(box.dest / "top.bin") == big);
    CHECK(read_file(box.dest / "d/sub/deep.txt") == deep);
    CHECK(fs::read_symlink(box.dest / "d/link") == "a.txt");
    CHECK(fs::read_symlink(box.dest / "rel") == "d/sub");
    CHECK(read_file(box.dest / "d/sub/up") == big);  // resolves inside dest
    auto a = lstat_of(box.dest / "d/a.txt");
    auto h = lstat_of(box.dest / "d/hard");
    CHECK(a.st_ino == h.st_ino);
    CHECK((a.st_mode & 07777) == 0640);
    CHECK((lstat_of(box.dest / "d").st_mode & 07777) == 0750);
    CHECK(a.st_mtime == 1700000000);
    CHECK(S_ISLNK(lstat_of(box.dest / "rel").st_mode));
  }
}

TEST_CASE("tar extract strips setuid, setgid and sticky bits", "[tar-extract]") {
  Sandbox box;
  auto stats = extract(make_tar({reg("suid", text("x"), 04755), reg("sgid", text("y"), 02711), dir("sticky", 01777),
                                 dir("sgiddir", 02775)}),
                       box.dest);
  REQUIRE(stats);
  CHECK((lstat_of(box.dest / "suid").st_mode & 07777) == 0755);
  CHECK((lstat_of(box.dest / "sgid").st_mode & 07777) == 0711);
  CHECK((lstat_of(box.dest / "sticky").st_mode & 07777) == 0777);
  CHECK((lstat_of(box.dest / "sgiddir").st_mode & 07777) == 0775);
}

TEST_CASE("tar extract refuses path traversal and special files", "[tar-extract]") {
  struct Attack {
    std::string what;
    std::vector<Spec> entries;
    Errc code;
    std::string message;
    std::vector<std::string> left;  // what legitimately stays in dest
  };
  Sandbox probe_box;  // only for the absolute path of an "outside" directory
  const std::string outside_abs = probe_box.outside.string();
  std::vector<Attack> attacks = {
      {"dotdot", {reg("ok", text("1")), reg("../evil", text("x"))}, Errc::unsupported, "'..' component refused", {"ok"}},
      {"absolute", {reg("/tmp-cdi-abs/evil", text("x"))}, Errc::unsupported, "absolute path refused", {}},
      {"inner dotdot", {reg("a/../../evil", text("x"))}, Errc::unsupported, "'..' component refused", {}},
      {"symlink to /etc then through it",
       {sym("link", "/etc"), reg("link/cdi-tar-test-evil", text("x"))},
       Errc::unsupported,
       "absolute target refused",
       {}},
      {"symlink to outside then through it",
       {sym("link", "OUTSIDE"), reg("link/evil", text("x"))},
       Errc::unsupported,
       "absolute target refused",
       {}},
      {"symlink escaping", {sym("x", "../../x")}, Errc::unsupported, "points outside the destination", {}},
      {"nested symlink escaping", {dir("d"), sym("d/up", "../../outside/secret")}, Errc::unsupported,
       "points outside the destination", {"d"}},
      {"symlink dotdot after a name",
       {dir("x"), dir("x/y"), sym("x/y/s", "../.."), sym("l", "x/y/s/../evil")},
       Errc::unsupported,
       "'..' after a directory name refused",
       {"x", "x/y", "x/y/s"}},
      {"write through an in-dest symlink",
       {dir("sub"), sym("inner", "sub"), reg("inner/evil", text("x"))},
       Errc::unsupported,
       "would be written through symlink inner",
       {"sub", "inner"}},
      {"hardlink to /etc/passwd", {hard("h", "/etc/passwd")}, Errc::unsupported, "absolute path refused", {}},
      {"hardlink to outside file", {hard("h", "OUTSIDE/secret")}, Errc::unsupported, "absolute path refused", {}},
      {"hardlink escaping", {hard("h", "../outside/secret")}, Errc::unsupported, "'..' component refused", {}},
      {"hardlink to a later entry", {hard("h", "later"), reg("later", text("x"))}, Errc::corrupt_input,
       "not a file extracted earlier", {}},
      {"hardlink to a directory", {dir("d"), hard("h", "d")}, Errc::unsupported, "target is a directory", {"d"}},
      {"path longer than PATH_MAX",
       {reg([] {
          std::string deep;
          for (char c = 'a'; c < 'a' + 22; ++c) deep += std::string(200, c) + "/";
          return deep + "f";
        }(),
            text("x"))},
       Errc::unsupported,
       "bytes refused",
       {}},
      {"character device", {Spec{"null", Type::chardev, {}, {}, 0666}}, Errc::unsupported,
       "is a character device; refused", {}},
      {"fifo", {Spec{"pipe", Type::fifo, {}, {}, 0666}}, Errc::unsupported, "is a FIFO; refused", {}},
  };
  for (auto& attack : attacks) {
    for (auto& e : attack.entries) {
      if (e.path.starts_with("OUTSIDE")) e.path.replace(0, 7, outside_abs);
      if (e.link.starts_with("OUTSIDE")) e.link.replace(0, 7, outside_abs);
    }
    INFO(attack.what);
    Sandbox box;
    auto r = extract(make_tar(attack.entries), box.dest);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == attack.code);
    CHECK(contains(r.error().what(), "tar: "));
    CHECK(contains(r.error().message(), attack.message));
    CHECK(box.all() == box.with(attack.left));
    CHECK(read_file(box.outside / "secret") == text("secret"));
    CHECK(read_file(probe_box.outside / "secret") == text("secret"));
    CHECK_FALSE(fs::exists(probe_box.outside / "evil"));
  }
  CHECK(tree(probe_box.outside) == std::set<std::string>{"secret"});
  CHECK_FALSE(fs::exists("/tmp-cdi-abs"));
  CHECK_FALSE(fs::exists("/etc/cdi-tar-test-evil"));
}

TEST_CASE("tar extract never writes through symlinks already in dest", "[tar-extract]") {
  Sandbox box;
  fs::create_symlink(box.outside, box.dest / "old");

  auto through = extract(make_tar({reg("old/evil", text("x"))}), box.dest);
  REQUIRE_FALSE(through);
  CHECK(through.error().code() == Errc::unsupported);
  CHECK(contains(through.error().message(), "written through symlink old"));

  auto via = extract(make_tar({sym("l", "old/secret")}), box.dest);
  REQUIRE_FALSE(via);
  CHECK(via.error().code() == Errc::unsupported);
  CHECK(contains(via.error().message(), "passes through symlink old"));
  CHECK(tree(box.outside) == std::set<std::string>{"secret"});

  // An entry at the symlink's own path replaces the symlink, it does not follow it.
  auto replace = extract(make_tar({reg("old", text("new"))}), box.dest);
  REQUIRE(replace);
  CHECK(S_ISREG(lstat_of(box.dest / "old").st_mode));
  CHECK(read_file(box.dest / "old") == text("new"));
  CHECK(tree(box.outside) == std::set<std::string>{"secret"});
  CHECK(read_file(box.outside / "secret") == text("secret"));

  // Same for a directory entry over a symlink to a directory.
  fs::remove(box.dest / "old");
  fs::create_symlink(box.outside, box.dest / "old");
  auto as_dir = extract(make_tar({dir("old", 0700)}), box.dest);
  REQUIRE(as_dir);
  CHECK(S_ISDIR(lstat_of(box.dest / "old").st_mode));
  CHECK((lstat_of(box.outside).st_mode & 0777) != 0700);
}

TEST_CASE("tar extract replaces a file hard-linked from outside instead of writing into it", "[tar-extract]") {
  Sandbox box;
  REQUIRE(::link((box.outside / "secret").c_str(), (box.dest / "f").c_str()) == 0);
  auto r = extract(make_tar({reg("f", text("new contents"))}), box.dest);
  REQUIRE(r);
  CHECK(read_file(box.dest / "f") == text("new contents"));
  CHECK(read_file(box.outside / "secret") == text("secret"));
}

TEST_CASE("tar extract GNU sparse entry", "[tar-extract]") {
  Sandbox box;
  const uint64_t size = 16u << 20;
  std::vector<std::pair<uint64_t, std::vector<std::byte>>> pieces = {{4096, pattern(5000, 1)},
                                                                     {9u << 20, pattern(65536, 2)}};
  fs::path src = box.tmp.path() / "src";
  fs::create_directories(src);
  write_sparse(src / "disk.img", size, pieces);
  fs::path tar_path = box.tmp.path() / "sparse.tar";
  REQUIRE(run("tar --format=gnu -S -cf '" + tar_path.string() + "' -C '" + src.string() + "' disk.img") == 0);
  auto bytes = read_file(tar_path);
  REQUIRE(bytes.size() < size / 4);
  auto stats = extract(bytes, box.dest, 4096);
  REQUIRE(stats);
  CHECK(stats->files == 1);
  CHECK(stats->bytes < size / 4);  // holes are not written
  auto out = read_file(box.dest / "disk.img");
  CHECK(out.size() == size);
  CHECK(out == sparse_image(size, pieces));
  // Where the filesystem supports holes, the extracted file has them too.
  struct stat probe {};
  {
    fs::path hole = box.tmp.path() / "hole-probe";
    int fd = ::open(hole.c_str(), O_CREAT | O_WRONLY, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, 8 << 20) == 0);
    ::close(fd);
    REQUIRE(::stat(hole.c_str(), &probe) == 0);
  }
  if (probe.st_blocks == 0) CHECK(static_cast<uint64_t>(lstat_of(box.dest / "disk.img").st_blocks) * 512 < size / 2);
}

TEST_CASE("tar extract damaged archives", "[tar-extract]") {
  auto bytes = make_tar({dir("d"), reg("d/a", pattern(1500)), reg("b", pattern(100))});
  SECTION("truncated by one byte") {
    Sandbox box;
    auto r = extract(std::vector<std::byte>(bytes.begin(), bytes.end() - 1), box.dest);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
    CHECK(contains(r.error().what(), "tar: truncated archive"));
  }
  SECTION("truncated inside data") {
    Sandbox box;
    auto r = extract(std::vector<std::byte>(bytes.begin(), bytes.begin() + 1500), box.dest, 7);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
  }
  SECTION("every proper prefix fails") {
    for (size_t len = 0; len < bytes.size(); len += 97) {
      Sandbox box;
      auto r = extract(std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)), box.dest);
      INFO("length " << len);
      REQUIRE_FALSE(r);
      CHECK(r.error().code() == Errc::corrupt_input);
    }
  }
  SECTION("trailing garbage") {
    Sandbox box;
    auto garbage = bytes;
    garbage.push_back(std::byte{'!'});
    auto r = extract(garbage, box.dest);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::corrupt_input);
    CHECK(contains(r.error().what(), "tar: trailing garbage after end of tar archive"));
  }
  SECTION("zero record padding is fine") {
    Sandbox box;
    auto padded = make_tar({dir("d"), reg("d/a", pattern(1500)), reg("b", pattern(100))}, Format::gnu, true);
    padded.resize(padded.size() + 3000);
    auto r = extract(padded, box.dest);
    REQUIRE(r);
    CHECK(read_file(box.dest / "d/a") == pattern(1500));
  }
}

TEST_CASE("tar extract upstream errors, cancel and bad destination", "[tar-extract]") {
  auto bytes = make_tar({reg("a", pattern(100000))});
  {
    Sandbox box;
    FailingReader in(std::vector<std::byte>(bytes.begin(), bytes.begin() + 3000), Error(Errc::io, "disk on fire"));
    auto r = tar::extract(in, box.dest, {});
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::io);
    CHECK(r.error().what() == "tar: disk on fire");
  }
  {
    Sandbox box;
    util::CancelToken cancel;
    cancel.cancel();
    auto r = extract(bytes, box.dest, 4096, &cancel);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::cancelled);
  }
  {
    Sandbox box;
    auto missing = extract(bytes, box.dest / "nope");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == Errc::invalid_argument);
    auto file = extract(bytes, box.outside / "secret");
    REQUIRE_FALSE(file);
    CHECK(file.error().code() == Errc::invalid_argument);
  }
}
