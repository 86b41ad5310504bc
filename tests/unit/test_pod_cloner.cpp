// SPDX-License-Identifier: Apache-2.0
#include "lib/pod/cloner.hpp"

#include <catch2/catch.hpp>

using namespace cdi;
using namespace cdi::pod;

TEST_CASE("cloner flags: CDI's command line with klog flags", "[pod][cloner]") {
  auto a = parse_cloner_args({"-v=3", "-alsologtostderr", "-content-type", "blockdevice-clone", "-upload-bytes",
                              "1073741824", "-mount", "/dev/cdi-block-volume"});
  REQUIRE(a);
  CHECK(a->kind == clone::CloneKind::blockdevice);
  CHECK(a->content_type == "blockdevice-clone");
  CHECK(a->mount == "/dev/cdi-block-volume");
  CHECK(a->upload_bytes == 1073741824u);
  CHECK(a->klog.verbosity == 3);
  CHECK(a->klog.alsologtostderr);
  CHECK_FALSE(a->help);

  auto f = parse_cloner_args({"--content-type=filesystem-clone", "--mount=/var/run/cdi/clone/source", "-upload-bytes=0x10"});
  REQUIRE(f);
  CHECK(f->kind == clone::CloneKind::filesystem);
  CHECK(f->upload_bytes == 16u);
  CHECK(f->klog.verbosity == 0);
}

TEST_CASE("cloner flags: errors in CDI's order and words", "[pod][cloner]") {
  auto e = parse_cloner_args({"-bogus"});
  REQUIRE_FALSE(e);
  CHECK(e.error().code() == Errc::invalid_argument);
  CHECK(e.error().what() == "flag provided but not defined: -bogus");
  e = parse_cloner_args({"-mount", "/x"});
  REQUIRE_FALSE(e);
  CHECK(e.error().what() == "Invalid content-type \"\"");
  e = parse_cloner_args({"-content-type", "clone", "-mount", "/x"});
  REQUIRE_FALSE(e);
  CHECK(e.error().what() == "Invalid content-type \"clone\"");
  e = parse_cloner_args({"-content-type", "filesystem-clone"});
  REQUIRE_FALSE(e);
  CHECK(e.error().what() == "Invalid mount \"\"");
  e = parse_cloner_args({"-content-type", "filesystem-clone", "-mount", "/x", "-upload-bytes", "-1"});
  REQUIRE_FALSE(e);
  CHECK(e.error().what().find("-upload-bytes") != std::string::npos);
  auto h = parse_cloner_args({"-h"});
  REQUIRE(h);
  CHECK(h->help);
  CHECK(cloner_usage().starts_with("Usage of cdi-cloner:\n"));
  CHECK(cloner_usage().find("-content-type string") != std::string::npos);
}

TEST_CASE("cloner env: required variables in CDI's order, PREALLOCATION as a Go bool", "[pod][cloner]") {
  Environment full = {{"OWNER_UID", "u1"},          {"CLIENT_KEY", "K"},   {"CLIENT_CERT", "C"},
                      {"SERVER_CA_CERT", "CA"},     {"UPLOAD_URL", "https://h:8443/v1beta1/upload"},
                      {"PREALLOCATION", "true"}};
  auto c = parse_cloner_env(full);
  REQUIRE(c);
  CHECK(c->owner_uid == "u1");
  CHECK(c->client_key == "K");
  CHECK(c->client_cert == "C");
  CHECK(c->server_ca_cert == "CA");
  CHECK(c->upload_url == "https://h:8443/v1beta1/upload");
  CHECK(c->preallocation);
  for (const char* name : {"OWNER_UID", "CLIENT_KEY", "CLIENT_CERT", "SERVER_CA_CERT", "UPLOAD_URL", "PREALLOCATION"}) {
    Environment env;
    for (const auto& kv : full)
      if (kv.first != name) env.push_back(kv);
    auto r = parse_cloner_env(env);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
    CHECK(r.error().what() == std::string("Error getting env var ") + name);
    env.emplace_back(name, "");   // empty is unset, as in CDI
    CHECK_FALSE(parse_cloner_env(env));
  }
  // the first missing one is named
  auto r = parse_cloner_env({{"UPLOAD_URL", "x"}});
  REQUIRE_FALSE(r);
  CHECK(r.error().what() == "Error getting env var OWNER_UID");
  // CDI: a PREALLOCATION that is not a Go bool means false
  for (auto [v, want] : {std::pair{"1", true}, {"True", true}, {"false", false}, {"yes", false}}) {
    Environment env = full;
    env.back().second = v;
    auto p = parse_cloner_env(env);
    REQUIRE(p);
    CHECK(p->preallocation == want);
  }
}

TEST_CASE("cloner termination message is CDI's plain text", "[pod][cloner]") {
  CHECK(cloner_complete_message(false) == "Clone Complete");
  CHECK(cloner_complete_message(true) == "Clone Complete, Preallocation applied");
}
