// SPDX-License-Identifier: Apache-2.0
// qcow2 decoder on hand-built images: golden output, odd read sizes, the hold/spill path,
// compressed and extended-L2 clusters, and every refusal. Every image decoded by the streaming
// decoder (decode() below) is also decoded by the random-access decoder at the same read size,
// which must agree: the same bytes, or the same error class and reason (see cross_check).
#include <catch2/catch.hpp>

#include "formats/qcow2/qcow2_decoder.hpp"
#include "formats/qcow2/qcow2_header.hpp"
#include "tests/support/memory_reader.hpp"
#include "tests/unit/test_formats_qcow2_support.hpp"

using namespace cdi;
using namespace cdi::test::qcow2;
namespace q = cdi::formats::qcow2;

namespace {

struct Image {
  Bytes file;
  Bytes expected;  // the raw guest image
};

struct Outcome {
  Result<q::DecodeStats> result = fail(Errc::internal, "not run");
  CheckingSink sink;
};

// A reader that does not know its size (a pipe), so truncation is only found at the end.
class UnsizedReader final : public io::Reader {
 public:
  UnsizedReader(const Bytes& data, size_t chunk) : m_inner(data, chunk) {}
  Result<size_t> read(std::span<std::byte> dst) override { return m_inner.read(dst); }
  io::ReaderInfo info() const override { return {"pipe", std::nullopt, false, std::nullopt}; }

 private:
  test::MemoryReader m_inner;
};

// The random-access decoder, reading at most `chunk` bytes a pread.
std::unique_ptr<Outcome> decode_ra(const Bytes& file, size_t chunk = 1 << 20, q::DecodeOptions opts = {}) {
  auto o = std::make_unique<Outcome>();
  MemoryRandomAccess in(file, chunk);
  o->result = q::decode_random_access(in, o->sink, opts);
  if (o->result) {
    REQUIRE(o->sink.finish(o->result->virtual_size));
    CHECK(o->result->bytes_in == in.bytes);
  }
  return o;
}

// Random access agrees with the stream: where the stream succeeds, the same guest bytes, each
// once, with nothing held; where it needs scratch (held data beyond hold_limit), random access
// needs none and covers the image; where it fails otherwise, the same error class and reason.
void cross_check(const Outcome& stream, const Outcome& ra) {
  if (stream.result || stream.result.error().code() == Errc::scratch_required) {
    if (!ra.result) FAIL("random access: " << ra.result.error().what());
    CHECK(ra.result->held_peak == 0);
    CHECK(ra.result->spilled_bytes == 0);
    CHECK(ra.sink.covered(ra.result->virtual_size));
    CHECK(ra.result->data_bytes + ra.result->zero_bytes == ra.result->virtual_size);
    if (stream.result) {
      CHECK(ra.result->virtual_size == stream.result->virtual_size);
      CHECK(ra.result->compressed_clusters == stream.result->compressed_clusters);
      CHECK(ra.sink.data() == stream.sink.data());
    }
    return;
  }
  INFO("stream: " << stream.result.error().what());
  if (ra.result) FAIL("random access succeeded where the stream failed");
  INFO("random access: " << ra.result.error().what());
  CHECK(ra.result.error().code() == stream.result.error().code());
  CHECK(ra.result.error().reason() == stream.result.error().reason());
  REQUIRE_FALSE(ra.result.error().contexts().empty());
  CHECK(ra.result.error().contexts().front() == "qcow2");
}

// Two reads of the stream at `chunk` bytes a read; `second` is what the second (and any later)
// read returns (the same bytes by default).
std::unique_ptr<Outcome> decode_twice(const Bytes& file, size_t chunk = 1 << 20, q::DecodeOptions opts = {},
                                      std::optional<Bytes> second = std::nullopt) {
  auto o = std::make_unique<Outcome>();
  UnsizedReader first(file, chunk);
  const Bytes again = second.value_or(file);
  q::Reopen reopen = [&]() -> Result<std::unique_ptr<io::Reader>> {
    return std::unique_ptr<io::Reader>(std::make_unique<UnsizedReader>(again, chunk));
  };
  o->result = q::decode_two_reads(first, reopen, o->sink, opts);
  if (o->result) REQUIRE(o->sink.finish(o->result->virtual_size));
  return o;
}

// The streaming decoder (cross-checked with random access and with two reads at the same read size).
std::unique_ptr<Outcome> decode(const Bytes& file, size_t chunk = 1 << 20, q::DecodeOptions opts = {}) {
  auto o = std::make_unique<Outcome>();
  UnsizedReader r(file, chunk);
  o->result = q::decode(r, o->sink, opts);
  if (o->result) REQUIRE(o->sink.finish(o->result->virtual_size));
  cross_check(*o, *decode_ra(file, chunk, opts));
  {
    INFO("two reads");
    cross_check(*o, *decode_twice(file, chunk, opts));
  }
  return o;
}

void require_golden(const Image& img, size_t chunk = 1 << 20, q::DecodeOptions opts = {}) {
  auto o = decode(img.file, chunk, opts);
  if (!o->result) FAIL(o->result.error().what());
  CHECK(o->result->virtual_size == img.expected.size());
  CHECK(o->sink.covered(img.expected.size()));
  CHECK(o->sink.data() == img.expected);
  CHECK(o->result->bytes_in == img.file.size());
}

std::string require_error(const Bytes& file, Errc code, q::DecodeOptions opts = {}) {
  auto o = decode(file, 1 << 20, opts);
  REQUIRE_FALSE(o->result);
  INFO(o->result.error().what());
  CHECK(o->result.error().code() == code);
  REQUIRE_FALSE(o->result.error().contexts().empty());
  CHECK(o->result.error().contexts().front() == "qcow2");
  return o->result.error().what_with_hint();   // what() and the CLI's hint, as cdi-import prints them
}

constexpr uint64_t k_cs = 512;
constexpr uint64_t k_vs = 7 * k_cs + 416;  // odd: the last cluster is partial

// A 512-byte-cluster image: guest clusters 0 (data A), 1 (zero flag, preallocated), 2
// (unallocated), 3 (data B), 4-6 unallocated, 7 (data C, partial). With `late`, the data comes
// first and L1/L2 last (the hold path).
Image small_image(bool late, uint32_t version = 3, bool l2_before_l1 = false) {
  Builder b(9, k_vs, version);
  Bytes a = pattern(k_cs, 1), bb = pattern(k_cs, 2), c = pattern(k_cs, 3), prealloc = pattern(k_cs, 4);
  uint64_t l1, l2, da, db, dc, dz, rt, rb;
  if (!late) {
    l1 = 1, l2 = 2, da = 3, db = 4, dc = 5, dz = 6, rt = 7, rb = 8;
  } else {
    da = 1, db = 2, dc = 3, dz = 4, l1 = 5, l2 = 6, rt = 7, rb = 8;
    if (l2_before_l1) std::swap(l1, l2);
  }
  b.l1_offset = l1 * k_cs;
  b.refcount_table_offset = rt * k_cs;
  b.refcount_table_clusters = 1;
  b.be64(rt * k_cs, rb * k_cs);
  b.fill(rb * k_cs, k_cs, 0);
  b.l1(0, l2 * k_cs);
  b.put(da * k_cs, a);
  b.put(db * k_cs, bb);
  b.put(dc * k_cs, c);
  b.put(dz * k_cs, prealloc);  // behind a zero-flag entry: must read as zeros
  b.l2(l2 * k_cs, 0, Builder::normal(da * k_cs));
  b.l2(l2 * k_cs, 1, version == 3 ? (Builder::normal(dz * k_cs) | 1) : 0);
  b.l2(l2 * k_cs, 3, Builder::normal(db * k_cs));
  b.l2(l2 * k_cs, 7, Builder::normal(dc * k_cs));
  if (version == 2) b.header_length = 72;
  Image img{b.build(), Bytes(k_vs, std::byte{0})};
  std::copy(a.begin(), a.end(), img.expected.begin());
  std::copy(bb.begin(), bb.end(), img.expected.begin() + 3 * k_cs);
  std::copy(c.begin(), c.begin() + 416, img.expected.begin() + 7 * k_cs);
  return img;
}

// Same shape, in order, for refusal tests that patch one field.
Builder base_builder(uint32_t bits = 9) {
  const uint64_t cs = uint64_t{1} << bits;
  Builder b(bits, k_vs);
  b.l1_offset = 1 * cs;
  b.l1(0, 2 * cs);
  b.l2(2 * cs, 0, Builder::normal(3 * cs));
  b.put(3 * cs, pattern(cs, 9));
  return b;
}

}  // namespace

TEST_CASE("qcow2 probe and inspect", "[qcow2]") {
  Image img = small_image(false);
  CHECK(q::probe(img.file) == 64);
  CHECK(q::probe(small_image(false, 2).file) == 64);
  Bytes v1 = img.file;
  v1[7] = std::byte{1};
  CHECK(q::probe(v1) > 0);
  CHECK(q::probe(test::to_bytes("QFI")) == 0);
  CHECK(q::probe(test::to_bytes("hello world, not an image")) == 0);

  auto info = q::inspect(img.file);
  REQUIRE(info);
  CHECK(info->version == 3);
  CHECK(info->virtual_size == k_vs);
  CHECK(info->cluster_bits == 9);
  CHECK_FALSE(info->extended_l2);
  CHECK(info->compression == 0);

  auto bad = q::inspect(v1);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::unsupported);
  CHECK(bad.error().what().find("qcow version 1") != std::string::npos);
}

TEST_CASE("qcow2 golden decode at every chunk size", "[qcow2]") {
  for (uint32_t version : {2u, 3u})
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) {
      INFO("version " << version << " chunk " << chunk);
      require_golden(small_image(false, version), chunk);
    }
}

TEST_CASE("qcow2 data before its L2 table is held, then spilled, else scratch_required", "[qcow2]") {
  Image img = small_image(true);
  SECTION("held in memory") {
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) require_golden(img, chunk);
    auto o = decode(img.file);
    REQUIRE(o->result);
    CHECK(o->result->held_peak == 3 * k_cs + k_cs);  // A, B, C and the preallocated cluster
    CHECK(o->result->spilled_bytes == 0);
  }
  SECTION("spilled to the scratch dir") {
    TempDir dir;
    q::DecodeOptions opts;
    opts.hold_limit = k_cs;
    opts.scratch_dir = dir.path();
    require_golden(img, 7, opts);
    auto o = decode(img.file, 1 << 20, opts);
    REQUIRE(o->result);
    CHECK(o->result->spilled_bytes == 3 * k_cs);
    CHECK(std::filesystem::is_empty(dir.path()));  // the spill file is unlinked
  }
  SECTION("no scratch dir") {
    q::DecodeOptions opts;
    opts.hold_limit = k_cs;
    std::string e = require_error(img.file, Errc::scratch_required, opts);
    CHECK(e.find("scratch space needed (more than 512 B); pass --scratch-dir DIR") != std::string::npos);
  }
  SECTION("random access holds nothing, needs no scratch") {
    q::DecodeOptions opts;
    opts.hold_limit = 0;
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
      auto o = decode_ra(img.file, chunk, opts);
      if (!o->result) FAIL(o->result.error().what());
      CHECK(o->sink.covered(img.expected.size()));
      CHECK(o->sink.data() == img.expected);
      CHECK(o->result->held_peak == 0);
      CHECK(o->result->spilled_bytes == 0);
    }
  }
}

TEST_CASE("qcow2 compressed clusters (zlib and zstd), sharing a sector", "[qcow2]") {
  for (int type : {0, 1}) {
    const uint64_t cs = 4096;
    const uint64_t vs = 5 * cs;
    Builder b(12, vs);
    if (type == 1) b.incompatible |= 1u << 3, b.compression_type = 1;
    b.l1_offset = cs;
    b.l1(0, 2 * cs);
    Bytes expected(vs, std::byte{0});
    uint64_t at = 3 * cs + 100;  // byte granular, not sector aligned
    for (uint64_t g = 0; g < 4; ++g) {
      Bytes plain = pattern(cs, static_cast<uint32_t>(10 + g));
      for (size_t i = 0; i < plain.size(); i += 3) plain[i] = std::byte{'a'};  // compressible
      Bytes z = type == 0 ? deflate_raw(plain) : zstd_compress(plain);
      uint64_t entry = b.compressed(at, z);
      b.l2(2 * cs, g == 3 ? 4 : g, entry);  // guest 3 stays unallocated
      std::copy(plain.begin(), plain.end(), expected.begin() + static_cast<long>((g == 3 ? 4 : g) * cs));
      at += z.size();  // the next one starts inside this one's last sector
    }
    Image img{b.build(), expected};
    // decompress_memory: the default; one byte (two jobs in flight, one worker); three jobs.
    for (uint64_t memory : {uint64_t{0}, uint64_t{1}, 9 * cs})
      for (unsigned threads : {1u, 2u}) {
        q::DecodeOptions opts;
        opts.threads = threads;
        opts.decompress_memory = memory;
        INFO("type " << type << " threads " << threads << " decompress_memory " << memory);
        require_golden(img, 7, opts);
        auto o = decode(img.file, 4096, opts);
        REQUIRE(o->result);
        CHECK(o->result->compressed_clusters == 4);
      }
    // Damaged compressed data.
    Bytes bad = img.file;
    for (size_t i = 3 * cs + 100; i < 3 * cs + 140; ++i) bad[i] = std::byte{0xff};
    require_error(bad, Errc::corrupt_input);
  }
}

TEST_CASE("qcow2 extended L2 subclusters", "[qcow2]") {
  const uint64_t cs = 16384, sc = cs / 32;
  Builder b(14, 3 * cs);
  b.incompatible |= 1u << 4;
  b.l1_offset = cs;
  b.l1(0, 2 * cs);
  Bytes d0 = pattern(cs, 20), d1 = pattern(cs, 21);
  b.put(3 * cs, d0);
  b.put(4 * cs, d1);
  // guest 0: subclusters 0-3 allocated, 4-7 zero, rest unallocated. guest 1: all allocated
  // except 31 (zero). guest 2: no host cluster, subcluster 5 zero.
  b.l2(2 * cs, 0, Builder::normal(3 * cs), 0x0000000Full | (0xF0ull << 32));
  b.l2(2 * cs, 1, Builder::normal(4 * cs), 0x7FFFFFFFull | (0x80000000ull << 32));
  b.l2(2 * cs, 2, 0, 0x20ull << 32);
  Bytes expected(3 * cs, std::byte{0});
  std::copy(d0.begin(), d0.begin() + 4 * sc, expected.begin());
  std::copy(d1.begin(), d1.begin() + 31 * sc, expected.begin() + cs);
  Image img{b.build(), expected};
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}, size_t{1} << 20}) require_golden(img, chunk);

  SECTION("allocated and zero at once") {
    b.l2(2 * cs, 0, Builder::normal(3 * cs), 0x1ull | (0x1ull << 32));
    require_error(b.build(), Errc::corrupt_input);
  }
  SECTION("allocated without a host cluster") {
    b.l2(2 * cs, 2, 0, 0x1);
    require_error(b.build(), Errc::corrupt_input);
  }
  SECTION("clusters below 16 KiB") {
    Builder s(13, 3 * 8192);
    s.incompatible |= 1u << 4;
    s.l1_offset = 8192;
    require_error(s.build(), Errc::corrupt_input);
  }
}

TEST_CASE("qcow2 truncation and upstream errors", "[qcow2]") {
  Image img = small_image(false);
  // The file ends with a refcount block; cut into it, then into the last data cluster.
  {
    // A sized input: the refcount table beyond the end is refused up front.
    test::MemoryReader r(Bytes(img.file.begin(), img.file.begin() + 5 * k_cs), 4096);
    CheckingSink sink;
    auto res = q::decode(r, sink, {});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == Errc::corrupt_input);
    CHECK(res.error().what() == "qcow2: truncated: refcount table at 0xe00 ends beyond the end of the stream (2560)");
    CHECK(sink.extents() == 0);  // before writing anything
  }
  Bytes cut(img.file.begin(), img.file.end() - 1);
  std::string e = require_error(cut, Errc::corrupt_input);
  CHECK(e.find("truncated") != std::string::npos);
  Bytes cut_data(img.file.begin(), img.file.begin() + 5 * k_cs + 100);
  e = require_error(cut_data, Errc::corrupt_input);
  INFO(e);
  CHECK(e.find("truncated: cluster at host offset 0xa00 (guest 0xe00) missing; stream ended at 2660") !=
        std::string::npos);
  require_error(Bytes(img.file.begin(), img.file.begin() + 50), Errc::corrupt_input);
  require_error(Bytes(img.file.begin(), img.file.begin() + 300), Errc::corrupt_input);

  // Trailing data after the last referenced cluster is normal and is consumed.
  Image trailing = img;
  trailing.file.resize(trailing.file.size() + 3000, std::byte{0x5a});
  require_golden(trailing);

  for (size_t prefix : {size_t{0}, size_t{100}, size_t{2000}}) {
    test::FailingReader r(Bytes(img.file.begin(), img.file.begin() + static_cast<long>(prefix)),
                          Error(Errc::network, "connection reset"));
    CheckingSink sink;
    auto res = q::decode(r, sink, {});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == Errc::network);
    CHECK(res.error().message() == "connection reset");
    REQUIRE_FALSE(res.error().contexts().empty());
    CHECK(res.error().contexts().front() == "qcow2");
  }

  util::CancelToken cancel;
  cancel.cancel();
  q::DecodeOptions opts;
  opts.cancel = &cancel;
  require_error(img.file, Errc::cancelled, opts);
}

TEST_CASE("qcow2 random access: what was processed is handed back, forward, once", "[qcow2]") {
  // FileRandomAccess drops consumed ranges from the page cache: they must have been read, never
  // overlap, go forward, and cover every data cluster (the compressed ones too).
  Image plain = small_image(false), late = small_image(true);
  for (const Image* img : {&plain, &late})
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20})
      for (uint64_t readahead : {uint64_t{0}, uint64_t{1}, uint64_t{1000}}) {
        INFO("late " << (img == &late) << " chunk " << chunk << " readahead " << readahead);
        MemoryRandomAccess in(img->file, chunk);
        CheckingSink sink;
        q::DecodeOptions opts;
        opts.readahead = readahead;
        auto res = q::decode_random_access(in, sink, opts);
        REQUIRE(res);
        REQUIRE(sink.finish(res->virtual_size));
        CHECK(sink.data() == img->expected);
        CHECK_FALSE(in.consumed_unread);
        REQUIRE_FALSE(in.consumed_ranges.empty());
        for (size_t i = 1; i < in.consumed_ranges.size(); ++i)
          CHECK(in.consumed_ranges[i].offset >= in.consumed_ranges[i - 1].offset + in.consumed_ranges[i - 1].length);
        // Data A, B, C (late: clusters 1-3; in order: 3-5) lie inside consumed ranges.
        const uint64_t first = img == &late ? 1 : 3;
        for (uint64_t c = first; c < first + 3; ++c) {
          bool covered = std::any_of(in.consumed_ranges.begin(), in.consumed_ranges.end(), [&](const io::ByteRange& r) {
            return r.offset <= c * k_cs && (c + 1) * k_cs <= r.offset + r.length;
          });
          CHECK(covered);
        }
      }
}

TEST_CASE("qcow2 random access: truncation, a shrunk input, upstream errors, a file", "[qcow2]") {
  Image img = small_image(false);
  // Sized: the refcount table beyond the end is refused from the header, before any write.
  {
    MemoryRandomAccess in(Bytes(img.file.begin(), img.file.begin() + 5 * k_cs), 7);
    CheckingSink sink;
    auto res = q::decode_random_access(in, sink, {});
    REQUIRE_FALSE(res);
    CHECK(res.error().what() == "qcow2: truncated: refcount table at 0xe00 ends beyond the end of the stream (2560)");
    CHECK(sink.extents() == 0);
  }
  // A data cluster cut by the end: refused before any data cluster is read (same words as the stream).
  Image late = small_image(true);  // data at 1..4, L1 5, L2 6, refcount table 7, block 8
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    INFO("chunk " << chunk);
    Bytes cut = late.file;
    // The stream ends inside the refcount block (cluster 8): only the block is missing.
    cut.resize(8 * k_cs + 100);
    auto o = decode_ra(cut, chunk);
    REQUIRE_FALSE(o->result);
    CHECK(o->result.error().code() == Errc::corrupt_input);
    CHECK(o->result.error().reason() == Reason::truncated);
    CHECK(o->result.error().what() == "qcow2: truncated: a refcount block at 0x1000 missing; stream ended at 4196");
    CHECK(o->sink.extents() <= 1);  // at most the zeros the L2 table maps, no data
  }
  // The input is shorter than its size said (it shrank): a short read is truncation.
  for (uint64_t keep : {uint64_t{5 * k_cs + 100}, uint64_t{2 * k_cs}, uint64_t{300}}) {
    INFO("keep " << keep);
    MemoryRandomAccess in(Bytes(img.file.begin(), img.file.begin() + static_cast<long>(keep)), 7, img.file.size());
    CheckingSink sink;
    auto res = q::decode_random_access(in, sink, {});
    REQUIRE_FALSE(res);
    INFO(res.error().what());
    CHECK(res.error().code() == Errc::corrupt_input);
    CHECK(res.error().reason() == Reason::truncated);
  }
  // Upstream errors pass through in their class, with the qcow2 context, wherever they happen.
  for (size_t after : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{20}}) {
    MemoryRandomAccess in(img.file, 7);
    in.fail_after = after;
    CheckingSink sink;
    auto res = q::decode_random_access(in, sink, {});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == Errc::network);
    CHECK(res.error().what() == "qcow2: connection reset");
  }
  // No size: the plan must not pick random access for such an input.
  {
    class Unsized final : public io::RandomAccess {
     public:
      Result<size_t> pread(uint64_t, std::span<std::byte>) override { return size_t{0}; }
      std::optional<uint64_t> size() const override { return std::nullopt; }
      std::string name() const override { return "unsized"; }
    } in;
    CheckingSink sink;
    auto res = q::decode_random_access(in, sink, {});
    REQUIRE_FALSE(res);
    CHECK(res.error().code() == Errc::internal);
  }
  // A local file through FileRandomAccess, with trailing bytes and a late L2 table.
  {
    TempDir dir;
    Image trailing = small_image(true);
    trailing.file.resize(trailing.file.size() + 3000, std::byte{0x5a});
    write_file(dir / "img.qcow2", trailing.file);
    auto in = io::FileRandomAccess::open(dir / "img.qcow2");
    REQUIRE(in);
    CHECK((*in)->size() == trailing.file.size());
    CheckingSink sink;
    auto res = q::decode_random_access(**in, sink, {});
    if (!res) FAIL(res.error().what());
    REQUIRE(sink.finish(res->virtual_size));
    CHECK(sink.covered(trailing.expected.size()));
    CHECK(sink.data() == trailing.expected);
    CHECK(res->bytes_in < trailing.file.size());  // the trailing bytes are not read
    // Positioned reads: short only at the end, 0 past it.
    Bytes two(2);
    auto n = io::pread_full(**in, trailing.file.size() - 1, two);
    REQUIRE(n);
    CHECK(*n == 1);
    CHECK(two[0] == std::byte{0x5a});
    n = (*in)->pread(trailing.file.size() + 10, two);
    REQUIRE(n);
    CHECK(*n == 0);
    auto missing = io::FileRandomAccess::open(dir / "nope.qcow2");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code() == Errc::not_found);
  }
}

TEST_CASE("qcow2 two reads: the tables, then the data forward; a changed second read fails", "[qcow2]") {
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{512}, size_t{1000}, size_t{1} << 20}) {
    for (bool l2_first : {false, true}) {
      INFO("chunk " << chunk << " l2_before_l1 " << l2_first);
      Image img = small_image(true, 3, l2_first);
      q::DecodeOptions tiny;
      tiny.hold_limit = 0;  // the stream would need scratch: two reads need none
      auto o = decode_twice(img.file, chunk, tiny);
      if (!o->result) FAIL(o->result.error().what());
      CHECK(o->sink.data() == img.expected);
      CHECK(o->sink.covered(img.expected.size()));
      CHECK(o->result->held_peak == 0);
      CHECK(o->result->spilled_bytes == 0);
      // An L2 table before the L1 table passes unknown: it is read again before the data.
      CHECK(o->result->reads == (l2_first ? 3u : 2u));
      UnsizedReader m(img.file, chunk);
      auto layout = q::measure_stream(m, tiny);
      REQUIRE(layout);
      CHECK(layout->tables_missed == (l2_first ? 1u : 0u));
      CHECK(layout->input_size == img.file.size());
      if (!l2_first) CHECK(layout->stream_hold > 0);
    }
  }
  Image img = small_image(true);
  auto changed = [&](Bytes second, const char* words) {
    auto o = decode_twice(img.file, 100, {}, std::move(second));
    REQUIRE_FALSE(o->result);
    INFO(o->result.error().what());
    CHECK(o->result.error().code() == Errc::corrupt_input);
    CHECK_THAT(o->result.error().what(), Catch::Contains("the resource changed between the two reads") &&
                                             Catch::Contains(words));
  };
  // The second read is shorter (truncated), or longer (trailing garbage), than the first.
  changed(Bytes(img.file.begin(), img.file.end() - 100), "it ended at");
  Bytes longer = img.file;
  longer.resize(longer.size() + 3, std::byte{1});
  changed(longer, "longer than");
  // A truncated image is found by the first read, before the data.
  Bytes cut(img.file.begin(), img.file.begin() + 6 * k_cs + 10);  // inside the L2 table
  auto o = decode_twice(cut, 64);
  REQUIRE_FALSE(o->result);
  CHECK(o->result.error().code() == Errc::corrupt_input);
  CHECK(o->result.error().reason() == Reason::truncated);
  CHECK(std::all_of(o->sink.data().begin(), o->sink.data().end(), [](std::byte b) { return b == std::byte{0}; }));
}

TEST_CASE("ForwardRandomAccess: forward reads at any offset, skipping; back is internal", "[qcow2][io]") {
  Bytes data = pattern(10000, 5);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{4096}}) {
    INFO("chunk " << chunk);
    io::ForwardRandomAccess f(std::make_unique<test::MemoryReader>(data, chunk), data.size(), "t");
    CHECK(f.size() == data.size());
    Bytes buf(700);
    auto n = io::pread_full(f, 1234, buf);
    REQUIRE(n);
    CHECK(*n == buf.size());
    CHECK(std::equal(buf.begin(), buf.end(), data.begin() + 1234));
    n = io::pread_full(f, 9900, buf);  // short at the end
    REQUIRE(n);
    CHECK(*n == 100);
    CHECK(std::equal(buf.begin(), buf.begin() + 100, data.begin() + 9900));
    auto back = f.pread(10, buf);
    REQUIRE_FALSE(back);
    CHECK(back.error().code() == Errc::internal);
  }
  io::ForwardRandomAccess ok(std::make_unique<test::MemoryReader>(data, 333), data.size(), "t");
  CHECK(ok.finish());
  io::ForwardRandomAccess longer(std::make_unique<test::MemoryReader>(data, 333), data.size() - 1, "t");
  auto r = longer.finish();
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == Errc::corrupt_input);
}

TEST_CASE("qcow2 header refusals", "[qcow2]") {
  auto refuse = [](Builder b, Errc code, const char* words) {
    std::string e = require_error(b.build(), code);
    INFO(e);
    CHECK(e.find(words) != std::string::npos);
  };
  {
    Builder b = base_builder();
    b.backing_offset = 4096, b.backing_size = 4;
    refuse(b, Errc::unsupported, "backing file");
  }
  {
    Builder b = base_builder();
    b.crypt_method = 1;
    refuse(b, Errc::unsupported, "AES");
  }
  {
    Builder b = base_builder();
    b.crypt_method = 2;
    b.extensions.push_back({0x0537be77, Bytes(16)});
    refuse(b, Errc::unsupported, "LUKS");
  }
  {
    Builder b = base_builder();
    b.incompatible |= 1u << 2;
    refuse(b, Errc::unsupported, "external data file");
  }
  {
    Builder b = base_builder();
    b.extensions.push_back({0x44415441, test::to_bytes("data.raw")});
    refuse(b, Errc::unsupported, "external data file");
  }
  {
    Builder b = base_builder();
    b.incompatible |= 1u << 9;
    Bytes names(48);
    names[0] = std::byte{0}, names[1] = std::byte{9};
    std::memcpy(names.data() + 2, "frobnicate", 10);
    b.extensions.push_back({0x6803f857, names});
    refuse(b, Errc::unsupported, "bit 9 (\"frobnicate\")");
  }
  {
    Builder b = base_builder();
    b.incompatible |= 1u << 1;
    refuse(b, Errc::corrupt_input, "marked corrupt");
  }
  {
    Builder b = base_builder();
    b.incompatible |= 1u;  // dirty: accepted, refcounts are not needed to read
    auto o = decode(b.build());
    CHECK(o->result);
  }
  {
    Builder b = base_builder();
    b.cluster_bits = 8;
    refuse(b, Errc::corrupt_input, "cluster_bits");
  }
  {
    Builder b = base_builder();
    b.cluster_bits = 22;
    refuse(b, Errc::unsupported, "2 MiB");
  }
  {
    Builder b = base_builder();
    b.virtual_size = 65 * k_cs * 64;  // needs 2 L1 entries (64 L2 entries of 512 B each)
    refuse(b, Errc::corrupt_input, "too small");
  }
  {
    Builder b = base_builder();
    b.l1_size = (32u << 20) / 8 + 1;
    refuse(b, Errc::limit, "32 MiB");
  }
  {
    Builder b = base_builder();
    b.l1_offset = 700;
    refuse(b, Errc::corrupt_input, "not cluster aligned");
  }
  {
    Builder b = base_builder();
    b.refcount_table_offset = 1000, b.refcount_table_clusters = 1;
    refuse(b, Errc::corrupt_input, "not cluster aligned");
  }
  {
    Builder b = base_builder();
    b.refcount_table_offset = 4096, b.refcount_table_clusters = (8u << 20) / 512 + 1;
    refuse(b, Errc::limit, "8 MiB");
  }
  {
    Builder b = base_builder();
    b.compression_type = 1;  // without incompatible bit 3
    refuse(b, Errc::corrupt_input, "compression type");
  }
  {
    Builder b = base_builder();
    b.compression_type = 7, b.incompatible |= 1u << 3;
    refuse(b, Errc::unsupported, "compression type 7");
  }
  {
    Builder b = base_builder();
    b.header_length = 100;
    refuse(b, Errc::corrupt_input, "header_length");
  }
  {
    Builder b = base_builder();
    b.version = 1;
    refuse(b, Errc::unsupported, "qcow version 1");
  }
  {
    q::DecodeOptions opts;
    opts.max_virtual_size = k_vs - 1;
    std::string e = require_error(base_builder().build(), Errc::limit, opts);
    CHECK(e.find("virtual size 4000 is larger than the target (3999)") != std::string::npos);
  }
  {
    Builder b = base_builder();
    b.extensions.push_back({0x12345678, Bytes(1000)});  // overruns the 512-byte first cluster
    refuse(b, Errc::corrupt_input, "overruns");
  }
}

TEST_CASE("qcow2 mapping refusals", "[qcow2]") {
  auto refuse = [](Builder b, const char* words) {
    std::string e = require_error(b.build(), Errc::corrupt_input);
    INFO(e);
    CHECK(e.find(words) != std::string::npos);
  };
  SECTION("L2 offset not aligned") {
    Builder b = base_builder(12);
    b.be64(b.l1_offset, 2 * 4096 + 512);
    refuse(b, "not cluster aligned");
  }
  SECTION("data offset not aligned") {
    Builder b = base_builder(12);
    b.virtual_size = 8 * 4096;
    b.l2(2 * 4096, 1, Builder::normal(4 * 4096 + 512));
    refuse(b, "not cluster aligned");
  }
  SECTION("offset 0 is unallocated, even with COPIED set (as qemu without a data file)") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 1, 1ull << 63);
    CHECK(decode(b.build())->result);
  }
  SECTION("compressed data in the header") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 1, (1ull << 62) | 100);
    refuse(b, "overlaps the header");
  }
  SECTION("data in the L1 table") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 1, Builder::normal(1 * k_cs));
    refuse(b, "overlaps the L1 table");
  }
  SECTION("data in its own L2 table") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 1, Builder::normal(2 * k_cs));
    refuse(b, "overlaps the L2 table");
  }
  SECTION("data in the refcount table") {
    Builder b = base_builder();
    b.refcount_table_offset = 5 * k_cs, b.refcount_table_clusters = 1;
    b.fill(5 * k_cs, k_cs, 0);
    b.l2(2 * k_cs, 1, Builder::normal(5 * k_cs));
    refuse(b, "refcount table");
  }
  SECTION("data in a refcount block") {
    Builder b = base_builder();
    b.refcount_table_offset = 5 * k_cs, b.refcount_table_clusters = 1;
    b.be64(5 * k_cs, 6 * k_cs);
    b.fill(6 * k_cs, k_cs, 0);
    b.l2(2 * k_cs, 1, Builder::normal(6 * k_cs));
    refuse(b, "refcount block");
  }
  SECTION("L1 table pointing into the header cluster") {
    Builder b = base_builder();
    b.be64(b.l1_offset, 0 | 1ull << 63);  // offset 0 = unallocated, allowed
    CHECK(decode(b.build())->result);
    b.l1_offset = 0;
    refuse(b, "overlaps the header");
  }
  SECTION("two guest clusters on one host cluster") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 5, Builder::normal(3 * k_cs));
    refuse(b, "overlaps data clusters at 0x600");
  }
  SECTION("two L1 entries on one L2 table") {
    Builder b(9, 2 * 64 * k_cs);
    b.l1_size = 2;
    b.l1_offset = k_cs;
    b.l1(0, 2 * k_cs);
    b.l1(1, 2 * k_cs);
    b.fill(2 * k_cs, k_cs, 0);
    refuse(b, "overlaps the L2 table");
  }
  SECTION("compressed clusters overlapping beyond a shared sector") {
    Builder b(12, 3 * 4096);
    b.l1_offset = 4096;
    b.l1(0, 2 * 4096);
    Bytes plain(4096, std::byte{'x'});
    Bytes z = deflate_raw(plain);
    Bytes big = pattern(3000, 5);  // room for two sectors
    b.put(3 * 4096, big);
    uint64_t e1 = b.compressed(3 * 4096, big);  // claims [3*4096, 3*4096+3072)
    b.put(3 * 4096, z);
    uint64_t e2 = b.compressed(3 * 4096 + 10, z);
    b.l2(2 * 4096, 0, e1);
    b.l2(2 * 4096, 1, e2);
    refuse(b, "overlaps a compressed cluster");
  }
  SECTION("compressed cluster beyond the end of the stream") {
    Builder b = base_builder();
    b.l2(2 * k_cs, 2, (1ull << 62) | (40 * k_cs));
    refuse(b, "truncated: a compressed cluster at 0x5000");
  }
  SECTION("L2 table beyond the end of the stream") {
    Builder b = base_builder();
    b.l1(0, 40 * k_cs);
    refuse(b, "truncated: the L2 table at 0x5000");
  }
}

namespace {

// A snapshot table entry: the 40-byte fixed part (only the sizes matter here), then extra data,
// id and name (zeros); returns the offset after it, 8-aligned (where the next entry starts).
uint64_t put_snapshot(Builder& b, uint64_t at, uint32_t extra, uint16_t id_size, uint16_t name_size) {
  b.fill(at, 40 + extra + id_size + name_size, 0);
  b.be32(at + 8, 1);                                  // l1_size
  b.be32(at + 12, uint32_t{id_size} << 16 | name_size);
  b.be32(at + 36, extra);
  return (at + 40 + extra + id_size + name_size + 7) / 8 * 8;
}

}  // namespace

// The refusals qemu makes (checked against qemu-img in test_formats_qcow2_corpus.cpp), and their
// boundaries, which qemu accepts.
TEST_CASE("qcow2 refuses what qemu refuses: v2 zero flag", "[qcow2]") {
  auto v2 = [] {
    Builder b(9, k_vs, 2);
    b.header_length = 72;
    b.l1_offset = k_cs;
    b.l1(0, 2 * k_cs);
    b.l2(2 * k_cs, 0, Builder::normal(3 * k_cs));
    b.put(3 * k_cs, pattern(k_cs, 9));
    b.put(4 * k_cs, pattern(k_cs, 10));
    return b;
  };
  SECTION("allocated cluster") {
    Builder b = v2();
    b.l2(2 * k_cs, 3, Builder::normal(4 * k_cs) | 1);
    std::string e = require_error(b.build(), Errc::corrupt_input);
    CHECK(e == "qcow2: L2 entry for guest 0x600 (table at 0x400), index 3: zero flag (bit 0) set in a version 2 "
               "(compat=0.10) image, which has no zero clusters (host cluster 0x800)");
  }
  SECTION("unallocated entry") {
    Builder b = v2();
    b.l2(2 * k_cs, 5, 1);
    std::string e = require_error(b.build(), Errc::corrupt_input);
    CHECK(e.find("index 5: zero flag (bit 0) set in a version 2") != std::string::npos);
    CHECK(e.find("(unallocated)") != std::string::npos);
  }
  SECTION("found before an unaligned offset, as in qemu") {
    Builder b = v2();
    b.l2(2 * k_cs, 3, (4 * k_cs + 0x200 * 0) | 0x100 | 1);  // bits 1-8 are ignored; the flag is seen first
    CHECK(require_error(b.build(), Errc::corrupt_input).find("zero flag") != std::string::npos);
  }
  SECTION("entries beyond the virtual size are never read (qemu accepts them)") {
    Builder b = v2();
    b.l2(2 * k_cs, 20, 1);
    b.l2(2 * k_cs, 21, Builder::normal(4 * k_cs) | 1);
    Image img{b.build(), Bytes(k_vs, std::byte{0})};
    Bytes d = pattern(k_cs, 9);
    std::copy(d.begin(), d.end(), img.expected.begin());
    for (size_t chunk : {size_t{7}, size_t{1} << 20}) require_golden(img, chunk);
  }
  SECTION("a v2 compressed cluster at an odd byte offset (bit 0 is part of its offset)") {
    Builder b = v2();
    Bytes plain(k_cs, std::byte{'q'});
    b.l2(2 * k_cs, 1, b.compressed(5 * k_cs + 1, deflate_raw(plain)));
    Image img{b.build(), Bytes(k_vs, std::byte{0})};
    Bytes d = pattern(k_cs, 9);
    std::copy(d.begin(), d.end(), img.expected.begin());
    std::copy(plain.begin(), plain.end(), img.expected.begin() + k_cs);
    require_golden(img, 7);
  }
  SECTION("version 3 keeps its zero clusters") { require_golden(small_image(false, 3), 7); }
}

TEST_CASE("qcow2 refuses what qemu refuses: no refcount table", "[qcow2]") {
  Builder b = base_builder();
  b.auto_refcount_table = false;
  Bytes file = b.build();
  std::string e = require_error(file, Errc::corrupt_input);
  CHECK(e == "qcow2: no refcount table: refcount_table_clusters (header offset 56) is 0");
  // `info` (inspect) refuses it too, as qemu-img info does.
  auto info = q::inspect(file);
  REQUIRE_FALSE(info);
  CHECK(info.error().code() == Errc::corrupt_input);
  // An empty refcount table (no blocks) is fine, as in qemu.
  CHECK(decode(base_builder().build())->result);
}

TEST_CASE("qcow2 refuses what qemu refuses: table offsets unaligned even when empty", "[qcow2]") {
  {
    Builder b = base_builder();
    b.snapshots_offset = 5 * k_cs + 8;  // nb_snapshots 0
    std::string e = require_error(b.build(), Errc::corrupt_input);
    CHECK(e.find("snapshot table offset 0xa08 is not cluster aligned") != std::string::npos);
  }
  {
    Builder b(9, 0);  // a 0-byte disk needs no L1 entry
    b.l1_size = 0;
    b.l1_offset = 3 * k_cs + 100;
    std::string e = require_error(b.build(), Errc::corrupt_input);
    CHECK(e.find("L1 table offset 0x664 is not cluster aligned") != std::string::npos);
    b.l1_offset = 3 * k_cs;
    auto o = decode(b.build());
    REQUIRE(o->result);
    CHECK(o->result->virtual_size == 0);
  }
  {
    Builder b = base_builder();
    b.nb_snapshots = 2, b.snapshots_offset = uint64_t{1} << 63;  // must end below 2^63 (qemu)
    std::string e = require_error(b.build(), Errc::corrupt_input);
    INFO(e);
    CHECK(e.find("snapshot table offset 0x8000000000000000 is out of range") != std::string::npos);
  }
}

TEST_CASE("qcow2 refuses what qemu refuses: snapshot table", "[qcow2]") {
  const uint64_t table = 5 * k_cs;
  auto with_snapshots = [&](std::vector<std::array<uint32_t, 3>> entries) {
    Builder b = base_builder();
    b.nb_snapshots = static_cast<uint32_t>(entries.size());
    b.snapshots_offset = table;
    uint64_t at = table;
    for (auto [extra, id, name] : entries)
      at = put_snapshot(b, at, extra, static_cast<uint16_t>(id), static_cast<uint16_t>(name));
    Bytes d = pattern(k_cs, 9);
    Image img{b.build(), Bytes(k_vs, std::byte{0})};
    std::copy(d.begin(), d.end(), img.expected.begin());
    return img;
  };
  SECTION("1024 bytes of extra data are allowed, 1025 are not") {
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
      INFO("chunk " << chunk);
      require_golden(with_snapshots({{16, 1, 2}, {1024, 3, 5}}), chunk);
      Image bad = with_snapshots({{16, 1, 2}, {1025, 3, 5}});
      auto o = decode(bad.file, chunk);
      REQUIRE_FALSE(o->result);
      CHECK(o->result.error().code() == Errc::corrupt_input);
      // entry 1 starts at 0xa00 + 40 + 16 + 1 + 2 = 0xa3b, aligned to 0xa40
      CHECK(o->result.error().what() ==
            "qcow2: snapshot table entry 1 at 0xa40: 1025 bytes of extra data, more than qemu allows (1024)");
    }
  }
  SECTION("the table before the data it follows, and inside the header cluster") {
    Builder b = base_builder();
    b.nb_snapshots = 1;
    b.snapshots_offset = 0;  // aligned, so qemu reads the header as an entry: extra = l1_size = 1
    Bytes d = pattern(k_cs, 9);
    Image img{b.build(), Bytes(k_vs, std::byte{0})};
    std::copy(d.begin(), d.end(), img.expected.begin());
    require_golden(img, 7);
    b.l1_size = 2000;  // extra_data_size (header offset 36) = 2000
    b.fill(b.l1_offset + 8, 2000 * 8 - 8, 0);
    std::string e = require_error(b.build(), Errc::corrupt_input);
    INFO(e);
    CHECK(e.find("entry 0 at 0: 2000 bytes of extra data") != std::string::npos);
  }
  SECTION("a table cut by the end of the stream reads as zeros (qemu accepts it)") {
    Builder b = base_builder();
    b.refcount_table_offset = 4 * k_cs, b.refcount_table_clusters = 1;
    b.fill(4 * k_cs, k_cs, 0);
    b.nb_snapshots = 2, b.snapshots_offset = table;
    put_snapshot(b, table, 16, 1, 2);
    Bytes d = pattern(k_cs, 9);
    Image img{b.build(), Bytes(k_vs, std::byte{0})};
    std::copy(d.begin(), d.end(), img.expected.begin());
    for (uint64_t end : {table + 20, table + 38, table + 60}) {  // in the first fixed part, its sizes, its extra data
      INFO("stream ends at " << end);
      Image cut = img;
      cut.file.resize(end);
      require_golden(cut, 7);
    }
    // ... but an extra_data_size cut after its first byte is that byte followed by zeros.
    Image cut = img;
    cut.file[table + 36] = std::byte{0x01};  // 0x01000000 bytes once the rest reads as zero
    cut.file.resize(table + 37);
    CHECK(require_error(cut.file, Errc::corrupt_input).find("16777216 bytes of extra data") != std::string::npos);
  }
  SECTION("beyond the end of the file qemu reads zeros, up to its largest offset") {
    Builder b = base_builder();
    b.nb_snapshots = 2, b.snapshots_offset = 0x7fffffff80000000;  // qemu: zeros past EOF
    CHECK(decode(b.build())->result);
    // 40-byte (zero) entries from 512 bytes below qemu's BDRV_MAX_LENGTH: the 13th crosses it, and
    // qemu's read of it fails (checked with qemu-img 7.2: 64 KiB below it, 1638 entries open, 1639 do not).
    b.snapshots_offset = 0x7fffffffc0000000 - 512, b.nb_snapshots = 12;
    CHECK(decode(b.build())->result);
    b.nb_snapshots = 13;
    std::string e = require_error(b.build(), Errc::corrupt_input);
    CHECK(e == "qcow2: snapshot table entry 12 at 0x7fffffffbfffffe0 ends beyond 0x7fffffffc0000000, the largest "
               "offset qemu reads");
  }
  SECTION("at most 64 MiB in all, as qemu") {
    // 1007 entries of 66592 bytes (extra 1024, name 65528) and one of 50720: exactly 64 MiB.
    std::vector<std::array<uint32_t, 3>> entries(1007, {1024, 0, 65528});
    entries.push_back({1024, 0, 50720 - 1064});
    require_golden(with_snapshots(entries));
    entries.back()[2] += 1;
    std::string e = require_error(with_snapshots(entries).file, Errc::corrupt_input);
    CHECK(e == "qcow2: snapshot table at 0xa00 is larger than qemu allows (64 MiB): entry 1007 at 0x3ff43e0 "
               "ends 67108865 bytes into it");
  }
}
