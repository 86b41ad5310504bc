// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/pod/go_flags.hpp"

using namespace cdi;
using pod::GoFlag;
using Status = pod::GoFlagOutcome::Status;

namespace {
struct Fixture {
  int64_t port = 8100;
  std::string dir = ".";
  bool verbose = false;
  std::vector<GoFlag> flags() {
    return {{"p", GoFlag::Kind::integer, "server port", nullptr, &port, nullptr},
            {"image-dir", GoFlag::Kind::string, "directory to serve", &dir, nullptr, nullptr},
            {"verbose", GoFlag::Kind::boolean, "talk", nullptr, nullptr, &verbose}};
  }
};
}  // namespace

TEST_CASE("Go flags: -name value, -name=value, --name, booleans", "[pod][goflags]") {
  Fixture f;
  auto o = pod::parse_go_flags({"-p", "8200", "--image-dir=/disk", "-verbose"}, f.flags());
  REQUIRE(o.status == Status::ok);
  CHECK(f.port == 8200);
  CHECK(f.dir == "/disk");
  CHECK(f.verbose);
  CHECK(o.rest.empty());

  Fixture g;
  o = pod::parse_go_flags({"--p=0x10", "-image-dir", "-odd", "-verbose=false", "rest", "-p", "1"}, g.flags());
  REQUIRE(o.status == Status::ok);
  CHECK(g.port == 16);
  CHECK(g.dir == "-odd");   // a value may start with '-'
  CHECK_FALSE(g.verbose);
  CHECK(o.rest == std::vector<std::string>{"rest", "-p", "1"});   // parsing stops at a non-flag
  CHECK(g.port == 16);

  Fixture h;
  o = pod::parse_go_flags({"--", "-p", "1"}, h.flags());
  REQUIRE(o.status == Status::ok);
  CHECK(h.port == 8100);
  CHECK(o.rest == std::vector<std::string>{"-p", "1"});
  o = pod::parse_go_flags({"-", "-p", "1"}, h.flags());
  CHECK(o.rest.size() == 3);
}

TEST_CASE("Go flags: Go's error texts, -h / -help", "[pod][goflags]") {
  Fixture f;
  auto o = pod::parse_go_flags({"-x"}, f.flags());
  CHECK(o.status == Status::error);
  CHECK(o.message == "flag provided but not defined: -x");
  o = pod::parse_go_flags({"-p"}, f.flags());
  CHECK(o.message == "flag needs an argument: -p");
  o = pod::parse_go_flags({"-p", "abc"}, f.flags());
  CHECK(o.message == "invalid value \"abc\" for flag -p: parse error");
  o = pod::parse_go_flags({"-p=99999999999999999999"}, f.flags());
  CHECK(o.message == "invalid value \"99999999999999999999\" for flag -p: value out of range");
  o = pod::parse_go_flags({"---p"}, f.flags());
  CHECK(o.message == "bad flag syntax: ---p");
  o = pod::parse_go_flags({"-=1"}, f.flags());
  CHECK(o.message == "bad flag syntax: -=1");
  o = pod::parse_go_flags({"-verbose=maybe"}, f.flags());
  CHECK(o.message == "invalid boolean value \"maybe\" for -verbose: parse error");
  CHECK(pod::parse_go_flags({"-h"}, f.flags()).status == Status::help);
  CHECK(pod::parse_go_flags({"--help"}, f.flags()).status == Status::help);
  auto usage = pod::go_flags_usage("/shared/server", f.flags());
  CHECK(usage == "Usage of /shared/server:\n  -image-dir string\n    \tdirectory to serve (default \".\")\n"
                 "  -p int\n    \tserver port (default 8100)\n  -verbose\n    \ttalk\n");
}

TEST_CASE("Go ints: strconv.ParseInt base 0", "[pod][goflags]") {
  int64_t v = 0;
  CHECK((pod::parse_go_int("010", v) && v == 8));
  CHECK((pod::parse_go_int("0b101", v) && v == 5));
  CHECK((pod::parse_go_int("0o17", v) && v == 15));
  CHECK((pod::parse_go_int("-42", v) && v == -42));
  CHECK((pod::parse_go_int("+7", v) && v == 7));
  CHECK((pod::parse_go_int("0x_1F", v) && v == 31));
  CHECK((pod::parse_go_int("0", v) && v == 0));
  CHECK((pod::parse_go_int("-9223372036854775808", v) && v == INT64_MIN));
  CHECK_FALSE(pod::parse_go_int("1_000", v));
  CHECK_FALSE(pod::parse_go_int("", v));
  CHECK_FALSE(pod::parse_go_int("0x", v));
  CHECK_FALSE(pod::parse_go_int("09", v));
  CHECK_FALSE(pod::parse_go_int("12a", v));
  bool range = false;
  CHECK_FALSE(pod::parse_go_int("9223372036854775808", v, &range));
  CHECK(range);
}
