// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "formats/tar/tar_reader.hpp"
#include "test_formats_tar_support.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using namespace cdi::test::tar;
using cdi::test::FailingReader;
using cdi::test::MemoryReader;
using cdi::test::read_all;
namespace tar = cdi::formats::tar;

namespace {

Result<std::unique_ptr<io::Reader>> open(std::vector<std::byte> bytes, size_t chunk = 1 << 20,
                                         std::optional<std::string> entry = std::nullopt) {
  tar::EntryOptions opts;
  opts.entry = std::move(entry);
  return tar::open_entry(std::make_unique<MemoryReader>(std::move(bytes), chunk), opts);
}

// Opens and drains; returns the bytes or the first error.
Result<std::vector<std::byte>> slurp(std::vector<std::byte> bytes, size_t chunk = 1 << 20,
                                     std::optional<std::string> entry = std::nullopt) {
  auto r = CDI_TRY(open(std::move(bytes), chunk, std::move(entry)));
  return read_all(*r, chunk);
}

formats::Head head(const std::vector<std::byte>& v) { return formats::Head(v.data(), std::min<size_t>(v.size(), formats::k_probe_bytes)); }

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("tar probe scores ustar magic and header checksum", "[tar]") {
  auto data = pattern(100);
  auto pax = make_tar({reg("disk.img", data)}, Format::pax);
  auto gnu = make_tar({reg("disk.img", data)}, Format::gnu);
  auto ustar = make_tar({reg("disk.img", data)}, Format::ustar);
  int full = tar::probe(head(pax));
  CHECK(full == 40 + 24 + 48);
  CHECK(tar::probe(head(gnu)) == full);
  CHECK(tar::probe(head(ustar)) == full);
  CHECK(std::memcmp(gnu.data() + 257, "ustar  \0", 8) == 0);  // really the GNU magic

  auto bad_sum = pax;
  bad_sum[0] = std::byte{'X'};  // name changed, checksum not updated
  CHECK(tar::probe(head(bad_sum)) == 40 + 24);

  auto no_magic = pax;
  no_magic[257] = std::byte{'x'};
  CHECK(tar::probe(head(no_magic)) == 0);
  CHECK(tar::probe(formats::Head(pax.data(), 511)) == 0);
  std::vector<std::byte> zeros(4096);
  CHECK(tar::probe(head(zeros)) == 0);
}

TEST_CASE("tar single file golden at chunk sizes 1, 7, 4096, 1 MiB", "[tar]") {
  auto data = pattern((1 << 20) + 1234);
  auto bytes = make_tar({reg("disk.img", data)});
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    INFO("chunk " << chunk);
    auto r = open(bytes, chunk);
    REQUIRE(r);
    CHECK((*r)->info().name == "tar[disk.img]");
    CHECK((*r)->info().size == data.size());
    auto out = read_all(**r, chunk);
    REQUIRE(out);
    CHECK(*out == data);
    // After the end, still the end.
    std::byte b[16];
    auto again = (*r)->read(b);
    REQUIRE(again);
    CHECK(*again == 0);
  }
}

TEST_CASE("tar formats ustar, gnu, pax, padded records and empty file", "[tar]") {
  auto data = pattern(5000, 3);
  for (Format f : {Format::pax, Format::ustar, Format::gnu}) {
    for (bool pad : {false, true}) {
      auto out = slurp(make_tar({reg("disk.img", data)}, f, pad), 4096);
      REQUIRE(out);
      CHECK(*out == data);
    }
  }
  auto empty = open(make_tar({reg("empty.img", {})}));
  REQUIRE(empty);
  CHECK((*empty)->info().size == 0u);
  auto out = read_all(**empty);
  REQUIRE(out);
  CHECK(out->empty());
  // A long name (pax path record / GNU longname) is served under its full name.
  std::string long_name = std::string(150, 'd') + "/" + std::string(120, 'n') + ".img";
  for (Format f : {Format::pax, Format::gnu}) {
    auto r = open(make_tar({reg(long_name, data)}, f));
    REQUIRE(r);
    CHECK((*r)->info().name == "tar[" + long_name + "]");
  }
}

TEST_CASE("tar ./disk.img naming and --tar-entry matching", "[tar]") {
  auto data = pattern(3000);
  auto bytes = make_tar({dir("./"), reg("./disk.img", data)});
  auto r = open(bytes);
  REQUIRE(r);
  CHECK((*r)->info().name == "tar[disk.img]");
  for (std::string name : {"disk.img", "./disk.img"}) {
    auto out = slurp(bytes, 7, name);
    REQUIRE(out);
    CHECK(*out == data);
  }
}

TEST_CASE("tar directory plus one file is fine", "[tar]") {
  auto data = pattern(10000);
  auto out = slurp(make_tar({dir("images"), dir("images/x"), reg("images/disk.raw", data), dir("other")}));
  REQUIRE(out);
  CHECK(*out == data);
}

TEST_CASE("tar several files without --tar-entry lists them", "[tar]") {
  auto a = pattern(2000, 1), b = pattern(700, 2);
  auto bytes = make_tar({reg("a.img", a), sym("l", "a.img"), reg("b.img", b), reg("c.txt", pattern(5))});
  auto r = open(bytes, 4096);
  REQUIRE(r);  // the second file is only found after the first was streamed
  CHECK((*r)->info().name == "tar[a.img]");
  std::vector<std::byte> got(a.size());
  auto n = io::read_full(**r, got);
  REQUIRE(n);
  CHECK(*n == a.size());
  CHECK(got == a);
  std::byte one[1];
  auto end = (*r)->read(one);
  REQUIRE_FALSE(end);
  CHECK(end.error().code() == Errc::unsupported);
  CHECK(end.error().what_with_hint() ==
        "tar: tar holds several files (a.img, b.img, c.txt); name one with --tar-entry");
  CHECK(end.error().what() == "tar: tar holds several files (a.img, b.img, c.txt)");
  // The reader stays failed.
  auto again = (*r)->read(one);
  REQUIRE_FALSE(again);
  CHECK(again.error().code() == Errc::unsupported);
}

TEST_CASE("tar several files listing is capped", "[tar]") {
  std::vector<Spec> specs;
  for (int i = 0; i < 30; ++i) {
    std::string name(1, 'f');   // not "f" + to_string(i): GCC 12 -O3 false -Werror=restrict (bug 105329)
    name += std::to_string(i);
    specs.push_back(reg(name, pattern(10, i)));
  }
  auto out = slurp(make_tar(specs));
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::unsupported);
  CHECK(contains(out.error().message(), "f0, f1, f2,"));
  CHECK(contains(out.error().message(), "f19, …"));
  CHECK_FALSE(contains(out.error().message(), "f20"));
}

TEST_CASE("tar --tar-entry picks the named file", "[tar]") {
  auto a = pattern(2000, 1), b = pattern(70000, 2), c = pattern(3, 3);
  auto bytes = make_tar({reg("a.img", a), dir("sub"), reg("sub/b.img", b), reg("c.img", c)});
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
    auto out = slurp(bytes, chunk, "sub/b.img");
    REQUIRE(out);
    CHECK(*out == b);
  }
  auto out = slurp(bytes, 4096, "c.img");
  REQUIRE(out);
  CHECK(*out == c);
  auto r = open(bytes, 4096, "./sub/b.img");
  REQUIRE(r);
  CHECK((*r)->info().name == "tar[sub/b.img]");
  CHECK((*r)->info().size == b.size());
}

TEST_CASE("tar missing --tar-entry lists the entries", "[tar]") {
  auto bytes = make_tar({reg("a.img", pattern(10)), dir("d"), sym("d/l", "../a.img"), reg("d/b.img", pattern(20))});
  auto r = open(bytes, 4096, "disk.img");
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::not_found);
  CHECK(r.error().what() == "tar: tar has no entry named disk.img; entries: a.img, d/l (symlink), d/b.img");
}

TEST_CASE("tar named entry that is not a regular file, or appears twice", "[tar]") {
  auto link = open(make_tar({reg("a.img", pattern(10)), sym("disk.img", "a.img")}), 4096, "disk.img");
  REQUIRE_FALSE(link);
  CHECK(link.error().code() == Errc::unsupported);
  CHECK(contains(link.error().message(), "disk.img is a symlink"));

  auto directory = open(make_tar({dir("images"), reg("images/a.img", pattern(10))}), 4096, "./images");
  REQUIRE_FALSE(directory);
  CHECK(directory.error().code() == Errc::unsupported);
  CHECK(contains(directory.error().message(), "images is a directory"));

  auto twice = slurp(make_tar({reg("disk.img", pattern(10, 1)), reg("./disk.img", pattern(10, 2))}), 4096, "disk.img");
  REQUIRE_FALSE(twice);
  CHECK(twice.error().code() == Errc::unsupported);
  CHECK(contains(twice.error().message(), "more than once"));
}

TEST_CASE("tar without regular files", "[tar]") {
  auto r = open(make_tar({dir("d"), sym("d/l", "x")}));
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::unsupported);
  CHECK(r.error().what() == "tar: tar holds no regular file; entries: d/l (symlink)");
  auto empty = open(make_tar({}));  // just the end marker
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == Errc::unsupported);
  CHECK(empty.error().what() == "tar: tar holds no regular file");
}

TEST_CASE("tar GNU sparse entries (tar -S) read back with holes as zeros", "[tar]") {
  TempDir tmp;
  const uint64_t size = 8u << 20;
  std::vector<std::pair<uint64_t, std::vector<std::byte>>> pieces = {
      {0, pattern(4096, 1)}, {(1u << 20) + 100, pattern(70000, 2)}, {5u << 20, pattern(512, 3)}};
  write_sparse(tmp.path() / "disk.img", size, pieces);
  auto expected = sparse_image(size, pieces);
  for (std::string fmt : {"gnu", "pax"}) {
    INFO("format " << fmt);
    auto tar_path = tmp.path() / ("sparse-" + fmt + ".tar");
    REQUIRE(run("tar --format=" + fmt + " -S -cf '" + tar_path.string() + "' -C '" + tmp.path().string() +
                "' disk.img") == 0);
    auto bytes = read_file(tar_path);
    REQUIRE(bytes.size() < size / 2);  // really stored sparse
    if (fmt == "gnu") CHECK(bytes[156] == std::byte{'S'});  // GNU sparse type flag
    for (size_t chunk : {size_t{7}, size_t{4096}, size_t{1} << 20}) {
      auto r = open(bytes, chunk);
      REQUIRE(r);
      CHECK((*r)->info().name == "tar[disk.img]");
      CHECK((*r)->info().size == size);
      auto out = read_all(**r, chunk);
      REQUIRE(out);
      CHECK(out->size() == size);
      CHECK(*out == expected);
    }
  }
}

TEST_CASE("tar truncated anywhere is corrupt_input", "[tar]") {
  // Unpadded: exactly data + two zero blocks, so every proper prefix is damaged, including one
  // missing only the last byte of the end-of-archive marker.
  auto bytes = make_tar({reg("disk.img", pattern(1500, 1)), reg("second", pattern(600, 2))});
  REQUIRE(bytes.size() == 512 + 1536 + 512 + 1024 + 1024);
  for (size_t len = 0; len < bytes.size(); ++len) {
    std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
    auto out = slurp(std::move(cut), 4096, "disk.img");
    INFO("length " << len);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::corrupt_input);
  }
  auto one = slurp(std::vector<std::byte>(bytes.begin(), bytes.end() - 1), 4096, "disk.img");
  REQUIRE_FALSE(one);
  CHECK(one.error().what() == "tar: truncated archive: end-of-archive marker incomplete (1023 of 1024 zero bytes "
                              "after the last entry at byte 3584)");
  auto in_data = slurp(std::vector<std::byte>(bytes.begin(), bytes.begin() + 1000));
  REQUIRE_FALSE(in_data);
  CHECK(contains(in_data.error().what(), "tar: truncated archive"));
  auto in_header = slurp(std::vector<std::byte>(bytes.begin(), bytes.begin() + 2048 + 300), 7, "disk.img");
  REQUIRE_FALSE(in_header);
  CHECK(contains(in_header.error().what(), "tar: truncated archive"));
  // No end marker at all: GNU tar only warns, we refuse.
  auto no_marker = slurp(std::vector<std::byte>(bytes.begin(), bytes.end() - 1024), 4096, "disk.img");
  REQUIRE_FALSE(no_marker);
  CHECK(no_marker.error().code() == Errc::corrupt_input);
  CHECK(contains(no_marker.error().message(), "0 of 1024"));
}

TEST_CASE("tar padded archive: zero padding may be short, never non-zero", "[tar]") {
  auto data = pattern(1500);
  auto padded = make_tar({reg("disk.img", data)}, Format::pax, true);
  REQUIRE(padded.size() == 10240);
  // Losing part of the record padding (not of the end marker) is harmless.
  auto shorter = slurp(std::vector<std::byte>(padded.begin(), padded.begin() + 512 + 1536 + 1024 + 5));
  REQUIRE(shorter);
  CHECK(*shorter == data);
  // More zeros than a record, too.
  auto longer = padded;
  longer.resize(longer.size() + 10240 + 7);
  auto ok = slurp(longer, 7);
  REQUIRE(ok);
  CHECK(*ok == data);
}

TEST_CASE("tar trailing garbage is corrupt_input", "[tar]") {
  auto data = pattern(1500);
  for (bool pad : {false, true}) {
    auto bytes = make_tar({reg("disk.img", data)}, Format::pax, pad);
    for (size_t chunk : {size_t{1}, size_t{4096}, size_t{1} << 20}) {
      auto garbage = bytes;
      garbage.push_back(std::byte{'x'});
      auto r = open(garbage, chunk);
      REQUIRE(r);
      // All the file's bytes come first; the error replaces the final 0.
      std::vector<std::byte> got(data.size());
      auto n = io::read_full(**r, got);
      REQUIRE(n);
      CHECK(got == data);
      std::byte b[64];
      auto end = (*r)->read(b);
      REQUIRE_FALSE(end);
      CHECK(end.error().code() == Errc::corrupt_input);
      CHECK(contains(end.error().what(), "tar: trailing garbage after end of tar archive"));
    }
    // A non-zero byte inside the second end block or the padding.
    auto inside = bytes;
    inside[512 + 1536 + 700] = std::byte{1};
    auto out = slurp(inside);
    REQUIRE_FALSE(out);
    CHECK(out.error().code() == Errc::corrupt_input);
  }
  // A second archive appended after the first (tar --concatenate would be needed for that).
  auto two = make_tar({reg("disk.img", data)});
  auto more = make_tar({reg("other", data)});
  two.insert(two.end(), more.begin(), more.end());
  auto out = slurp(two);
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::corrupt_input);
}

TEST_CASE("tar damaged header is corrupt_input", "[tar]") {
  auto bytes = make_tar({reg("disk.img", pattern(100)), reg("b", pattern(100))});
  auto first = bytes;
  first[10] = std::byte{'Z'};
  auto r = open(first);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
  auto second = bytes;
  second[1024 + 3] = std::byte{'Z'};
  auto out = slurp(second, 4096, "disk.img");
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::corrupt_input);
  CHECK(contains(out.error().what(), "tar: damaged archive"));
}

TEST_CASE("tar upstream errors pass through with context", "[tar]") {
  auto bytes = make_tar({reg("disk.img", pattern(100000))});
  for (size_t prefix : {size_t{0}, size_t{100}, size_t{5000}, bytes.size() - 10}) {
    INFO("prefix " << prefix);
    auto up = std::make_unique<FailingReader>(std::vector<std::byte>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(prefix)),
                                              Error(Errc::network, "connection reset"));
    auto r = tar::open_entry(std::move(up), {});
    Error err = r ? [&] {
      auto out = read_all(**r);
      REQUIRE_FALSE(out);
      return out.error();
    }()
                  : r.error();
    CHECK(err.code() == Errc::network);
    CHECK(err.what() == "tar: connection reset");
  }
}

TEST_CASE("tar cancel token stops reading", "[tar]") {
  auto bytes = make_tar({reg("disk.img", pattern(3 << 20))});
  util::CancelToken cancel;
  tar::EntryOptions opts;
  opts.cancel = &cancel;
  auto r = tar::open_entry(std::make_unique<MemoryReader>(bytes, 4096), opts);
  REQUIRE(r);
  std::byte buf[100];
  REQUIRE((*r)->read(buf));
  cancel.cancel();
  auto out = read_all(**r);
  REQUIRE_FALSE(out);
  CHECK(out.error().code() == Errc::cancelled);
}
