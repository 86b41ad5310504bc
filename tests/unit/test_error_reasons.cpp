// SPDX-License-Identifier: Apache-2.0
// Typed error reasons (issue 13): every contract the pod and the upload server keep — exit code,
// CDI termination message, HTTP status — follows from Error::reason() / Errc, never from the
// message text. Each reason is checked both ways: the reason with an unrelated message gives the
// contract, the contract's usual message without the reason does not.
#include <zlib.h>

#include <catch2/catch.hpp>
#include <cerrno>

#include "formats/gzip/gzip_reader.hpp"
#include "lib/pod/env.hpp"
#include "lib/pod/importer.hpp"
#include "lib/pod/upload_env.hpp"
#include "lib/server/upload_routes.hpp"
#include "lib/source/in_use.hpp"
#include "lib/util/digest.hpp"
#include "tests/support/memory_reader.hpp"

using namespace cdi;
using Kind = pod::ImportFailure::Kind;

namespace {
const std::string k_unrelated = "something else entirely happened";
}

TEST_CASE("a reason survives context chaining; the hint is not part of what()", "[error][reason]") {
  Error e(Errc::io, Reason::no_space, "boom");
  e.context("inner").context("outer");
  CHECK(e.reason() == Reason::no_space);
  CHECK(std::move(e).context("more").reason() == Reason::no_space);
  Error h = Error(Errc::scratch_required, Reason::scratch_required, "needs random access").with_hint("; pass --scratch-dir DIR");
  h.context("x.vmdk.gz");
  CHECK(h.what() == "x.vmdk.gz: needs random access");
  CHECK(h.what_with_hint() == "x.vmdk.gz: needs random access; pass --scratch-dir DIR");
  CHECK(reason_name(Reason::checksum_mismatch) == "checksum_mismatch");
  CHECK(Error(Errc::io, "plain").reason() == Reason::none);
}

TEST_CASE("reason checksum_mismatch: exit 0, CDI's checksum message, HTTP 400", "[error][reason][pod]") {
  auto v = util::verify_checksum(util::parse_checksum("sha256:" + std::string(64, 'a')).value(), std::string(64, 'b'));
  REQUIRE_FALSE(v);
  CHECK(v.error().reason() == Reason::checksum_mismatch);

  Error with(Errc::corrupt_input, Reason::checksum_mismatch, k_unrelated);
  with.context("http://h/x");
  auto f = pod::import_failure(with, false);
  CHECK(f.kind == Kind::checksum_mismatch);
  CHECK(f.exit_code == 0);
  CHECK(f.text == "Unable to process data: Unable to transfer source data to scratch space: checksum validation "
                  "failed: " + k_unrelated);
  CHECK(pod::import_failure(with, true).text.find("to target directory: checksum validation failed") != std::string::npos);
  CHECK(server::reply_for_error(with, false).status == 400);

  Error without(Errc::corrupt_input, "checksum mismatch: expected sha256:aa, calculated sha256:bb");
  auto g = pod::import_failure(without, false);
  CHECK(g.kind == Kind::failed);
  CHECK(g.exit_code == 1);
  CHECK(g.text == "Unable to process data: checksum mismatch: expected sha256:aa, calculated sha256:bb");
  CHECK(server::reply_for_error(without, false).status == 500);
}

TEST_CASE("reason no_space: CDI's size wording, exit 1, HTTP 400", "[error][reason][pod][server]") {
  CHECK(sys_error("writing", ENOSPC).reason() == Reason::no_space);
  CHECK(sys_error("writing", EDQUOT).reason() == Reason::no_space);
  CHECK(Error(Errc::io, "extracting x", ENOSPC).reason() == Reason::no_space);
  CHECK(sys_error("writing", EIO).reason() == Reason::none);

  Error with(Errc::io, Reason::no_space, k_unrelated);
  auto f = pod::import_failure(with, false);
  CHECK(f.exit_code == 1);
  CHECK(f.text == "Unable to process data: " + k_unrelated + " (no space left on device)");
  auto r = server::reply_for_error(with, false);
  CHECK(r.status == 400);
  CHECK(r.body == "Saving stream failed: effective image size is larger than the reported available storage: " + k_unrelated);

  Error without(Errc::io, "write: No space left on device; disk quota exceeded");
  CHECK(pod::import_failure(without, false).text == "Unable to process data: " + without.what());
  CHECK(server::reply_for_error(without, false).status == 500);
}

TEST_CASE("reason too_small: the PVC phrase, exit 1, HTTP 400", "[error][reason][pod][server]") {
  Error with(Errc::io, Reason::too_small, k_unrelated);
  auto f = pod::import_failure(with, false);
  CHECK(f.exit_code == 1);
  CHECK(f.text == "Unable to process data: " + k_unrelated +
                      " (the image is larger than the reported available storage: a larger PVC is required)");
  CHECK(server::reply_for_error(with, false).status == 400);

  Error without(Errc::io, "image is larger than the reported available storage");
  CHECK(pod::import_failure(without, false).text.find("a larger PVC is required") == std::string::npos);
  CHECK(server::reply_for_error(without, false).status == 500);
}

TEST_CASE("reason bad_preallocation: only logged (no termination message)", "[error][reason][pod]") {
  auto cfg = pod::parse_importer_env({{"IMPORTER_SOURCE", "http"}, {"IMPORTER_ENDPOINT", "http://h/x"},
                                      {"PREALLOCATION", "maybe"}});
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().reason() == Reason::bad_preallocation);

  auto f = pod::env_failure(Error(Errc::invalid_argument, Reason::bad_preallocation, k_unrelated), "http");
  CHECK(f.log_only);
  CHECK(f.text == k_unrelated);
  auto g = pod::env_failure(Error(Errc::invalid_argument, pod::preallocation_error_text("maybe")), "http");
  CHECK_FALSE(g.log_only);
  CHECK(g.text == pod::preallocation_error_text("maybe"));
}

TEST_CASE("reason bad_checksum: CDI's 'Unable to connect' wording", "[error][reason][pod]") {
  auto cfg = pod::parse_importer_env({{"IMPORTER_SOURCE", "http"}, {"IMPORTER_ENDPOINT", "http://h/x"},
                                      {"PREALLOCATION", "false"}, {"IMPORTER_CHECKSUM", "nonsense"}});
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().reason() == Reason::bad_checksum);

  auto f = pod::env_failure(Error(Errc::invalid_argument, Reason::bad_checksum, k_unrelated), "registry");
  CHECK_FALSE(f.log_only);
  CHECK(f.text == "Unable to connect to registry data source: " + k_unrelated);
  CHECK(pod::env_failure(Error(Errc::invalid_argument, Reason::bad_checksum, k_unrelated), "").text ==
        "Unable to connect to http data source: " + k_unrelated);
  Error without(Errc::invalid_argument, "bad");
  without.context("invalid checksum");
  CHECK(pod::env_failure(without, "http").text == "invalid checksum: bad");
}

TEST_CASE("reason bad_deadline: the upload pod exits 255", "[error][reason][pod]") {
  auto d = pod::parse_rfc3339("tomorrow");
  REQUIRE_FALSE(d);
  CHECK(d.error().reason() == Reason::bad_deadline);
  CHECK(pod::upload_env_exit_code(d.error()) == 255);
  CHECK(pod::upload_env_exit_code(Error(Errc::invalid_argument, Reason::bad_deadline, k_unrelated)) == 255);
  CHECK(pod::upload_env_exit_code(Error(Errc::invalid_argument, "Invalid DEADLINE \"x\": not an RFC 3339 time")) == 1);
}

TEST_CASE("reason scratch_required: exit 0 with scratchSpaceRequired", "[error][reason][pod]") {
  auto f = pod::import_failure(Error(Errc::io, Reason::scratch_required, k_unrelated), false);
  CHECK(f.kind == Kind::scratch_required);
  CHECK(f.exit_code == 0);
  CHECK(pod::import_failure(Error(Errc::scratch_required, k_unrelated), false).kind == Kind::scratch_required);
  auto g = pod::import_failure(Error(Errc::io, "scratch space required: pass --scratch-dir DIR"), false);
  CHECK(g.kind == Kind::failed);
  CHECK(g.exit_code == 1);
}

TEST_CASE("reason in_use is set where the lock is seen", "[error][reason]") {
  auto e = source::in_use_error("/dev/x", "");
  CHECK(e.reason() == Reason::in_use);
  CHECK(e.code() == Errc::busy);
  // No pod contract of its own: a plain failure.
  CHECK(pod::import_failure(e, false).exit_code == 1);
}

TEST_CASE("reason truncated is set by the codecs and survives the pipeline's contexts", "[error][reason]") {
  // A gzip member cut in half.
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + (i * 7919) % 26);
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::byte> gz(text.size() + 1024);
  z.next_in = reinterpret_cast<Bytef*>(text.data());
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = reinterpret_cast<Bytef*>(gz.data());
  z.avail_out = static_cast<uInt>(gz.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  gz.resize(z.total_out / 2);
  deflateEnd(&z);
  auto r = formats::gzip::open(std::make_unique<test::MemoryReader>(std::move(gz), 4096), {});
  REQUIRE(r);
  std::vector<std::byte> buf(1 << 16);
  Result<size_t> n = size_t{1};
  while (n && *n) n = (*r)->read(buf);
  REQUIRE_FALSE(n);
  Error e = std::move(n).error();
  e.context("gzip").context("http://h/x.gz");
  CHECK(e.reason() == Reason::truncated);
  CHECK(pod::import_failure(e, false).exit_code == 1);
}

// Every Reason value, one row each: the reason on an Errc::io error with an unrelated message (and a
// CLI hint, which no pod or server text may show) gives the row's pod exit code, termination message,
// env-failure text, upload-pod exit code and upload-server HTTP status; the reason's usual message
// without the reason gives what Reason::none gives. A Reason added without a row fails the first check.
TEST_CASE("every reason: pod exit code, termination message and HTTP status follow from the reason alone",
          "[error][reason][pod][server]") {
  struct Row {
    Reason reason;
    std::string_view name;
    std::string usual;           // the wording that went with the contract when it hung on text
    Kind kind;                   // pod::import_failure
    int exit_code;
    std::string import_text;     // its termination message, for a file/block target
    bool env_log_only;           // pod::env_failure
    std::string env_text;
    int upload_exit;             // pod::upload_env_exit_code
    int http_status;             // server::reply_for_error, not a client fault
  };
  const std::string m = k_unrelated;
  const std::string plain = "Unable to process data: " + m;
  const std::string pvc = " (the image is larger than the reported available storage: a larger PVC is required)";
  const std::vector<Row> rows{
      {Reason::none, "none", "something failed", Kind::failed, 1, plain, false, m, 1, 500},
      {Reason::checksum_mismatch, "checksum_mismatch", "checksum mismatch: expected sha256:aa, calculated sha256:bb",
       Kind::checksum_mismatch, 0,
       "Unable to process data: Unable to transfer source data to scratch space: checksum validation failed: " + m, false,
       m, 1, 400},
      {Reason::no_space, "no_space", "write: No space left on device", Kind::failed, 1,
       plain + " (no space left on device)", false, m, 1, 400},
      {Reason::too_small, "too_small", "image is larger than the reported available storage", Kind::failed, 1,
       plain + pvc, false, m, 1, 400},
      {Reason::bad_preallocation, "bad_preallocation", pod::preallocation_error_text("maybe"), Kind::failed, 1, plain,
       true, m, 1, 500},
      {Reason::bad_deadline, "bad_deadline", "Invalid DEADLINE \"x\": not an RFC 3339 time", Kind::failed, 1, plain,
       false, m, 255, 500},
      {Reason::bad_checksum, "bad_checksum", "invalid checksum: bad", Kind::failed, 1, plain, false,
       "Unable to connect to http data source: " + m, 1, 500},
      {Reason::scratch_required, "scratch_required", "scratch space required: qcow2 from a stream needs random access",
       Kind::scratch_required, 0, "", false, m, 1, 500},
      {Reason::in_use, "in_use", "source /dev/x is in use; power off the VM that uses it", Kind::failed, 1, plain,
       false, m, 1, 500},
      {Reason::truncated, "truncated", "gzip: unexpected end of stream (truncated)", Kind::failed, 1, plain, false, m,
       1, 500},
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    INFO("row " << i << " " << rows[i].name);
    CHECK(rows[i].reason == static_cast<Reason>(i));
    CHECK(reason_name(rows[i].reason) == rows[i].name);
  }
  // One past the last row is not a Reason (reason_name's fallback): the table is complete.
  CHECK(reason_name(static_cast<Reason>(rows.size())) == "none");

  const Row& none = rows.front();
  for (const auto& row : rows) {
    INFO("reason " << row.name);
    Error with(Errc::io, row.reason, m);
    with.with_hint("; pass --some-flag");
    auto f = pod::import_failure(with, false);
    CHECK(f.kind == row.kind);
    CHECK(f.exit_code == row.exit_code);
    CHECK(f.text == row.import_text);
    auto env = pod::env_failure(with, "http");
    CHECK(env.log_only == row.env_log_only);
    CHECK(env.text == row.env_text);
    CHECK(pod::upload_env_exit_code(with) == row.upload_exit);
    auto reply = server::reply_for_error(with, false);
    CHECK(reply.status == row.http_status);
    for (const auto& text : {f.text, env.text, reply.body}) CHECK(text.find("--some-flag") == std::string::npos);

    // The usual wording, no reason: the contract is Reason::none's.
    Error without(Errc::io, row.usual);
    REQUIRE(without.reason() == Reason::none);
    auto g = pod::import_failure(without, false);
    CHECK(g.kind == none.kind);
    CHECK(g.exit_code == none.exit_code);
    CHECK(g.text == "Unable to process data: " + row.usual);
    auto genv = pod::env_failure(without, "http");
    CHECK(genv.log_only == none.env_log_only);
    CHECK(genv.text == row.usual);
    CHECK(pod::upload_env_exit_code(without) == none.upload_exit);
    CHECK(server::reply_for_error(without, false).status == none.http_status);
  }
}
