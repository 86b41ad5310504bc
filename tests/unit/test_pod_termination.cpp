// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/pod/termination.hpp"
#include "lib/pod/upload_env.hpp"

using namespace cdi;

TEST_CASE("pod::termination_json keeps CDI's keys and order", "[pod][termination]") {
  pod::TerminationMessage m;
  m.scratch_space_required = false;
  m.preallocation_applied = false;
  m.message = "Import Complete";
  CHECK(pod::termination_json(m).value() ==
        R"({"scratchSpaceRequired":false,"preallocationApplied":false,"message":"Import Complete"})");
  m.scratch_space_required = true;
  CHECK(pod::termination_json(m).value() ==
        R"({"scratchSpaceRequired":true,"preallocationApplied":false,"message":"Import Complete"})");

  pod::TerminationMessage blank;
  blank.preallocation_applied = true;
  blank.message = "Import Complete";
  CHECK(pod::termination_json(blank).value() == R"({"preallocationApplied":true,"message":"Import Complete"})");

  pod::TerminationMessage labels;
  labels.scratch_space_required = false;
  labels.preallocation_applied = false;
  labels.labels = {{"kubevirt.io/z", "2"}, {"instancetype.kubevirt.io/default-instancetype", "u1.small"}};
  labels.message = "Import Complete";
  CHECK(pod::termination_json(labels).value() ==
        R"({"scratchSpaceRequired":false,"preallocationApplied":false,"labels":{"instancetype.kubevirt.io/default-instancetype":"u1.small","kubevirt.io/z":"2"},"message":"Import Complete"})");

  pod::TerminationMessage mismatch;
  mismatch.message = "Unable to process data: checksum mismatch: \"x\"";
  CHECK(pod::termination_json(mismatch).value() == R"({"message":"Unable to process data: checksum mismatch: \"x\""})");

  CHECK(pod::deadline_passed_message() == R"({"deadlinePassed":true,"message":"Deadline Passed"})");
  CHECK(pod::upload_complete_message(true) == R"({"preallocationApplied":true,"message":"Upload Complete"})");
  CHECK(pod::clone_target_complete_message(false) == R"({"preallocationApplied":false,"message":"Clone Complete"})");
  CHECK(pod::clone_target_complete_message(true) == R"({"preallocationApplied":true,"message":"Clone Complete"})");
}

TEST_CASE("pod::termination_json refuses more than 4096 bytes", "[pod][termination]") {
  pod::TerminationMessage m;
  m.message = std::string(4096 - 14, 'a');  // {"message":"…"} = 14 + n bytes
  auto ok = pod::termination_json(m);
  REQUIRE(ok);
  CHECK(ok->size() == 4096);
  m.message += "a";
  auto too_long = pod::termination_json(m);
  REQUIRE_FALSE(too_long);
  CHECK(too_long.error().code() == Errc::limit);
  CHECK(too_long.error().what() == "Termination message length 4097 exceeds maximum length of 4096 bytes");
}

TEST_CASE("pod::write_termination_log writes one line, mode 0600, truncating", "[pod][termination]") {
  auto dir = std::filesystem::temp_directory_path() / ("cdi-pod-term-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "termination-log";
  REQUIRE(pod::write_termination_log(path, "a much longer first message\nwith a second line"));
  REQUIRE(pod::write_termination_log(path, "Unable to connect\nto x"));
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  CHECK(ss.str() == "Unable to connect to x");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::filesystem::remove_all(dir);
}

#include "lib/pod/importer.hpp"

TEST_CASE("pod::process_error_text keeps the controller's phrases", "[pod][termination]") {
  Error plain(Errc::corrupt_input, "unexpected end of stream");
  plain.context("gzip").context("http://h/x.gz");
  CHECK(pod::process_error_text(plain) == "Unable to process data: http://h/x.gz: gzip: unexpected end of stream");
  Error big(Errc::limit, "virtual image size 2147483648 is larger than the device");
  CHECK(pod::process_error_text(big) ==
        "Unable to process data: virtual image size 2147483648 is larger than the device (the image is larger than "
        "the reported available storage: a larger PVC is required)");
  Error full = sys_error("writing /data/disk.img", ENOSPC);
  CHECK(pod::process_error_text(full).find("no space left on device") != std::string::npos);
}
