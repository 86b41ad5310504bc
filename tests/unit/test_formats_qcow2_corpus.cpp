// SPDX-License-Identifier: Apache-2.0
// qcow2 decoder against qemu-img: a corpus generated at test time with qemu-img/qemu-io (each a
// few MiB), decoded by us and compared byte for byte with `qemu-img convert -O raw`, by the
// streaming decoder and by the random-access one (from memory at odd read sizes, and from the file).
// Set CDI_QCOW2_REPORT=1 to print held/spilled bytes per image (the numbers quoted in reports).
#include <catch2/catch.hpp>

#include <cstdio>

#include "formats/qcow2/qcow2_decoder.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/unit/test_formats_qcow2_support.hpp"

using namespace cdi;
using namespace cdi::test::qcow2;
namespace q = cdi::formats::qcow2;

namespace {

struct Case {
  const char* name;
  std::string script;  // shell commands run in the temp dir; must leave img.qcow2
};

// A raw source of `mib` MiB mixing random, text-like and zero regions.
void write_source(const TempDir& dir, const std::string& name, size_t mib) {
  Bytes b(mib << 20, std::byte{0});
  Bytes rnd = pattern(b.size(), 77);
  for (size_t i = 0; i < b.size(); ++i) {
    size_t region = (i >> 16) % 4;  // 64 KiB regions: random, text, zero, random-ish text
    if (region == 0) b[i] = rnd[i];
    else if (region == 1) b[i] = std::byte(static_cast<uint8_t>("the quick brown fox jumps over "[i % 30]));
    else if (region == 3 && (i % 512) < 100) b[i] = rnd[i];
  }
  write_file(dir / name, b);
}

// Random access of `file` (from memory, at most `chunk` bytes a read) matches `ref`; nothing held.
void check_random_access(io::RandomAccess& in, const Bytes& ref, q::DecodeOptions opts = {}) {
  CheckingSink sink;
  auto st = q::decode_random_access(in, sink, opts);
  if (!st) FAIL("random access: " << st.error().what());
  REQUIRE(sink.finish(st->virtual_size));
  CHECK(st->virtual_size == ref.size());
  CHECK(sink.covered(ref.size()));
  CHECK(sink.data() == ref);
  CHECK(st->held_peak == 0);
  CHECK(st->spilled_bytes == 0);
}

// Both decoders refuse `file` with corrupt_input and a message containing `words`.
void check_refused(const Bytes& file, const char* words, size_t chunk) {
  test::MemoryReader r(file, chunk);
  CheckingSink sink;
  auto st = q::decode(r, sink, {});
  REQUIRE_FALSE(st);
  INFO(st.error().what());
  CHECK(st.error().code() == Errc::corrupt_input);
  CHECK(st.error().what().find(words) != std::string::npos);
  MemoryRandomAccess in(file, chunk);
  CheckingSink ra_sink;
  auto ra = q::decode_random_access(in, ra_sink, {});
  REQUIRE_FALSE(ra);
  INFO("random access: " << ra.error().what());
  CHECK(ra.error().code() == Errc::corrupt_input);
  CHECK(ra.error().what().find(words) != std::string::npos);
}

void check_against_qemu(const TempDir& dir, const char* name, std::vector<size_t> chunks = {1 << 20}) {
  INFO("image " << name);
  std::string img = dir / "img.qcow2";
  REQUIRE(sh("qemu-img convert -f qcow2 -O raw " + img + " " + (dir / "ref.raw")));
  Bytes file = read_file(img);
  Bytes ref = read_file(dir / "ref.raw");
  REQUIRE(!file.empty());
  for (size_t chunk : chunks) {
    INFO("chunk " << chunk);
    test::MemoryReader r(file, chunk);
    CheckingSink sink;
    auto st = q::decode(r, sink, {});
    if (!st) FAIL(st.error().what());
    REQUIRE(sink.finish(st->virtual_size));
    CHECK(st->virtual_size == ref.size());
    CHECK(sink.covered(ref.size()));
    CHECK(sink.data() == ref);
    CHECK(st->bytes_in == file.size());
    if (std::getenv("CDI_QCOW2_REPORT") && chunk == chunks.front())
      std::fprintf(stderr, "qcow2 corpus %-28s file %9zu  virtual %9llu  held_peak %8llu  spilled %llu  compressed %llu\n",
                   name, file.size(), static_cast<unsigned long long>(st->virtual_size),
                   static_cast<unsigned long long>(st->held_peak), static_cast<unsigned long long>(st->spilled_bytes),
                   static_cast<unsigned long long>(st->compressed_clusters));
    MemoryRandomAccess in(file, chunk == 1 ? 4093 : chunk);  // byte reads of a whole image: too slow
    check_random_access(in, ref);
  }
  auto in = io::FileRandomAccess::open(img);
  REQUIRE(in);
  check_random_access(**in, ref);
}

const std::string k_writes =
    " -c 'write -P 0xa1 0 300k' -c 'write -P 0xb2 1M 64k' -c 'write -P 0xc3 2100k 7k' -c 'write -P 0xd4 3M 1M'";

}  // namespace

TEST_CASE("qcow2 corpus matches qemu-img convert", "[qcow2][qemu]") {
  REQUIRE(sh("qemu-img --version"));
  const std::vector<Case> cases = {
      {"v2-64k", "qemu-img create -f qcow2 -o compat=0.10 img.qcow2 5M && qemu-io -f qcow2" + k_writes + " img.qcow2"},
      {"v3-512b-odd-size",
       "qemu-img create -f qcow2 -o cluster_size=512 img.qcow2 4195328 && qemu-io -f qcow2" + k_writes +
           " -c 'write -P 0xe5 4195000 328' img.qcow2"},
      {"v3-4k", "qemu-img create -f qcow2 -o cluster_size=4k img.qcow2 5M && qemu-io -f qcow2" + k_writes + " img.qcow2"},
      {"v3-2m-odd-size",
       "qemu-img create -f qcow2 -o cluster_size=2M img.qcow2 5243392 && qemu-io -f qcow2" + k_writes +
           " -c 'write -P 0xe5 5243000 392' img.qcow2"},
      {"v3-extended-l2",
       "qemu-img create -f qcow2 -o extended_l2=on,cluster_size=64k img.qcow2 5M && qemu-io -f qcow2"
       " -c 'write -P 1 0 2k' -c 'write -P 2 6k 4k' -c 'write -z 64k 2k' -c 'write -P 3 128k 64k'"
       " -c 'write -z 130k 4k' -c 'discard 160k 8k' -c 'write -P 4 1M 100k' -c 'write -z -u 1040k 16k' img.qcow2"},
      {"v3-extended-l2-32k",
       "qemu-img create -f qcow2 -o extended_l2=on,cluster_size=32k img.qcow2 3M && qemu-io -f qcow2"
       " -c 'write -P 7 1k 1k' -c 'write -P 8 33k 30k' -c 'write -z 40k 1k' img.qcow2"},
      {"zero-and-discard",
       "qemu-img create -f qcow2 img.qcow2 4M && qemu-io -f qcow2 -c 'write -P 0x11 0 3M' -c 'write -z 512k 256k'"
       " -c 'discard 1M 256k' -c 'write -z -u 2M 128k' img.qcow2"},
      {"zero-v2",
       "qemu-img create -f qcow2 -o compat=0.10 img.qcow2 4M && qemu-io -f qcow2 -c 'write -P 0x11 0 3M'"
       " -c 'write -z 512k 256k' -c 'discard 1M 256k' img.qcow2"},
      {"prealloc-metadata",
       "qemu-img create -f qcow2 -o preallocation=metadata img.qcow2 4M && qemu-io -f qcow2" + k_writes +
           " img.qcow2"},
      {"prealloc-falloc",
       "qemu-img create -f qcow2 -o preallocation=falloc img.qcow2 4M && qemu-io -f qcow2 -c 'write -P 9 1M 64k'"
       " img.qcow2"},
      {"prealloc-full",
       "qemu-img create -f qcow2 -o preallocation=full img.qcow2 4M && qemu-io -f qcow2 -c 'write -P 9 1M 64k'"
       " img.qcow2"},
      {"resized",
       "qemu-img create -f qcow2 -o cluster_size=4k img.qcow2 2M && qemu-io -f qcow2 -c 'write -P 1 0 1M' img.qcow2"
       " && qemu-img resize img.qcow2 6M && qemu-io -f qcow2 -c 'write -P 2 5M 512k' -c 'write -P 3 100k 8k' img.qcow2"},
      {"resized-512b-l1-moves",
       "qemu-img create -f qcow2 -o cluster_size=512 img.qcow2 1M && qemu-io -f qcow2 -c 'write -P 1 0 200k' img.qcow2"
       " && qemu-img resize img.qcow2 9M && qemu-io -f qcow2 -c 'write -P 2 8M 100k' img.qcow2"},
      {"snapshots",
       "qemu-img create -f qcow2 img.qcow2 4M && qemu-io -f qcow2 -c 'write -P 1 0 2M' img.qcow2"
       " && qemu-img snapshot -c s1 img.qcow2 && qemu-io -f qcow2 -c 'write -P 2 512k 256k' -c 'discard 1M 64k'"
       " -c 'write -P 3 3M 64k' img.qcow2 && qemu-img snapshot -c s2 img.qcow2"
       " && qemu-io -f qcow2 -c 'write -P 4 0 64k' img.qcow2"},
      {"convert-c-zlib", "qemu-img convert -f raw -O qcow2 -c src.raw img.qcow2"},
      {"convert-c-zlib-v2-4k", "qemu-img convert -f raw -O qcow2 -c -o compat=0.10,cluster_size=4k src.raw img.qcow2"},
      {"convert-c-zstd", "qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd src.raw img.qcow2"},
      {"convert-c-zstd-2m", "qemu-img convert -f raw -O qcow2 -c -o compression_type=zstd,cluster_size=2M src.raw img.qcow2"},
      {"convert-c-extended-l2",
       "qemu-img convert -f raw -O qcow2 -c -o extended_l2=on src.raw img.qcow2"
       " && qemu-io -f qcow2 -c 'write -P 5 70k 3k' img.qcow2"},
      {"compressed-then-written",
       "qemu-img convert -f raw -O qcow2 -c src.raw img.qcow2 && qemu-io -f qcow2 -c 'write -P 6 100k 200k'"
       " -c 'write -z 1M 64k' img.qcow2"},
      {"convert-plain", "qemu-img convert -f raw -O qcow2 src.raw img.qcow2"},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      TempDir dir;
      write_source(dir, "src.raw", 4);
      REQUIRE(sh("cd " + dir.path().string() + " && " + c.script));
      check_against_qemu(dir, c.name);
    }
  }
}

TEST_CASE("qcow2 corpus: read sizes, truncation by one byte", "[qcow2][qemu]") {
  TempDir dir;
  write_source(dir, "src.raw", 2);
  REQUIRE(sh("cd " + dir.path().string() + " && qemu-img convert -f raw -O qcow2 -o cluster_size=4k src.raw img.qcow2"));
  check_against_qemu(dir, "read-sizes", {1, 7, 4096, 1 << 20});

  Bytes file = read_file(dir / "img.qcow2");
  file.pop_back();
  check_refused(file, "truncated", 4096);
}

TEST_CASE("qcow2 corpus: compressed cluster cut by one byte", "[qcow2][qemu]") {
  TempDir dir;
  write_source(dir, "src.raw", 1);
  // qemu-io leaves the file unaligned after the last compressed cluster (its nominal sector runs
  // past the end of the file), qemu-img convert -c pads it to a sector: both are valid.
  REQUIRE(sh("cd " + dir.path().string() + " && qemu-img convert -f raw -O qcow2 -c src.raw img.qcow2"));
  check_against_qemu(dir, "convert-c");
  REQUIRE(sh("cd " + dir.path().string() + " && qemu-img create -f qcow2 img.qcow2 1M && "
             "qemu-io -f qcow2 -c 'write -c -P 0x33 0 64k' -c 'write -c -P 0x34 64k 64k' img.qcow2"));
  check_against_qemu(dir, "qemu-io-write-c-unaligned-end");
  Bytes file = read_file(dir / "img.qcow2");
  REQUIRE(file.size() % 512 != 0);
  for (size_t cut : {size_t{1}, size_t{2}, size_t{20}}) {
    // Cutting into the compressed bytes must fail, where qemu-img would zero-fill.
    Bytes short_file(file.begin(), file.end() - static_cast<long>(cut));
    check_refused(short_file, "truncated", 4096);
  }
}

// Images qemu refuses, made from valid qemu-img/qemu-io images by patching one field
// (tests/support/qcow2_patch.py): qemu-img convert fails on each and so does the decoder, with
// corrupt_input and a message naming the field; the nearest images qemu accepts decode byte for
// byte as qemu-img convert does.
TEST_CASE("qcow2 corpus: what qemu-img refuses is refused", "[qcow2][qemu]") {
  REQUIRE(sh("qemu-img --version"));
  const std::string patch = "python3 " + std::string(CDI_TEST_SOURCE_DIR) + "/tests/support/qcow2_patch.py img.qcow2 ";
  const std::string v2 = "qemu-img create -f qcow2 -o compat=0.10 img.qcow2 1M && qemu-io -f qcow2"
                         " -c 'write -P 0xaa 0 128k' img.qcow2 && ";
  const std::string v3 = "qemu-img create -f qcow2 img.qcow2 1M && qemu-io -f qcow2 -c 'write -P 0xaa 0 128k' img.qcow2 && ";
  const std::string snap = v3 + "qemu-img snapshot -c s1 img.qcow2 && qemu-img snapshot -c s2 img.qcow2 && ";
  struct Refused {
    const char* name;
    std::string script;
    const char* words;  // in our message
  };
  const std::vector<Refused> refused = {
      {"v2 zero flag, allocated", v2 + patch + "l2-or 0x10000 1", "index 1: zero flag (bit 0) set in a version 2"},
      {"v2 zero flag, unallocated", v2 + patch + "l2-or 0x50000 1", "(unallocated)"},
      {"no refcount table", v3 + patch + "header refcount_table_clusters 0", "no refcount table"},
      {"snapshot extra data 1025", snap + patch + "snapshot-extra 1 1025", "entry 1 at 0x"},
      {"snapshot table offset unaligned, no snapshots", v3 + patch + "header snapshots_offset 0x10200",
       "snapshot table offset 0x10200 is not cluster aligned"},
  };
  for (const auto& c : refused) {
    SECTION(c.name) {
      TempDir dir;
      REQUIRE(sh("cd " + dir.path().string() + " && " + c.script));
      CHECK_FALSE(sh("qemu-img convert -f qcow2 -O raw " + (dir / "img.qcow2") + " " + (dir / "ref.raw")));
      Bytes file = read_file(dir / "img.qcow2");
      for (size_t chunk : {size_t{4096}, size_t{1} << 20}) check_refused(file, c.words, chunk);
    }
  }
  const std::vector<Case> accepted = {
      {"v2 zero flag beyond the virtual size", v2 + patch + "l2-or 0x140000 1"},
      {"snapshot extra data 1024", snap + patch + "snapshot-extra 1 1024"},
      // the table is the last thing in the file; entry 1 starts 64 or 72 bytes into it (qemu writes
      // 16 or 24 bytes of extra data): the file ends inside entry 1's 40-byte fixed part
      {"snapshot table cut inside an entry",
       snap + "truncate -s $(( $(python3 -c \"import struct; print(struct.unpack('>Q', open('img.qcow2', 'rb')"
              ".read()[64:72])[0])\") + 92 )) img.qcow2"},
      {"snapshot table beyond the end of the file", v3 + patch + "header nb_snapshots 3 && " + patch +
           "header snapshots_offset 0x7fffffff80000000"},
  };
  for (const auto& c : accepted) {
    SECTION(c.name) {
      TempDir dir;
      REQUIRE(sh("cd " + dir.path().string() + " && " + c.script));
      check_against_qemu(dir, c.name, {7, 1 << 20});
    }
  }
}

// qemu-img convert -c writes compressed data ahead of some of the L2 tables mapping it (here with
// 4 KiB clusters, an L2 table maps 2 MiB). The stream must hold those clusters: with a small hold
// limit and no scratch it cannot decode the image (scratch_required); random access holds nothing
// and gives qemu-img's bytes, from memory at odd read sizes and from the file.
TEST_CASE("qcow2 corpus: convert -c with data before its L2 tables, by random access", "[qcow2][qemu]") {
  REQUIRE(sh("qemu-img --version"));
  for (const char* type : {"zlib", "zstd"}) {
    SECTION(type) {
      TempDir dir;
      write_source(dir, "src.raw", 24);
      REQUIRE(sh("cd " + dir.path().string() + " && qemu-img convert -f raw -O qcow2 -c -o cluster_size=4k,compression_type=" +
                 type + " src.raw img.qcow2 && qemu-img convert -f qcow2 -O raw img.qcow2 ref.raw"));
      Bytes file = read_file(dir / "img.qcow2");
      Bytes ref = read_file(dir / "ref.raw");
      constexpr uint64_t k_hold = 256 << 10;
      {
        test::MemoryReader r(file);
        CheckingSink sink;
        auto st = q::decode(r, sink, {});  // the default hold limit suffices here
        if (!st) FAIL(st.error().what());
        INFO("held_peak " << st->held_peak);
        CHECK(st->held_peak > k_hold);
        CHECK(st->compressed_clusters > 0);
      }
      {
        q::DecodeOptions opts;
        opts.hold_limit = k_hold;
        test::MemoryReader r(file);
        CheckingSink sink;
        auto st = q::decode(r, sink, opts);
        REQUIRE_FALSE(st);
        CHECK(st.error().code() == Errc::scratch_required);
      }
      q::DecodeOptions opts;
      opts.hold_limit = k_hold;  // not used by random access
      for (size_t chunk : {size_t{4093}, size_t{65536 + 7}, size_t{1} << 20}) {
        INFO("chunk " << chunk);
        MemoryRandomAccess in(file, chunk);
        check_random_access(in, ref, opts);
        CHECK(in.hinted > 0);  // readahead was hinted
        // Few large reads, in file order: header, L1 and refcount table, the L2 tables (coalesced),
        // then the data; each phase may start below the previous one's end, nothing else goes back.
        std::string at;
        for (uint64_t o : in.offsets) at.append(1, ' ').append(std::to_string(o));
        INFO("reads " << in.reads << " at " << in.offsets.size() << " offsets:" << at);
        CHECK(in.backward_seeks() <= 3);
        if (chunk == (1 << 20)) CHECK(in.offsets.size() <= file.size() / (4 << 20) + 16);
      }
      for (unsigned threads : {1u, 2u}) {
        auto in = io::FileRandomAccess::open(dir / "img.qcow2");
        REQUIRE(in);
        opts.threads = threads;
        check_random_access(**in, ref, opts);
      }
      // Truncated by a cluster: refused by random access as by the stream.
      file.resize(file.size() - 4096);
      check_refused(file, "truncated", 1 << 20);
    }
  }
}
