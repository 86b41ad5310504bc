// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/source/registry_auth.hpp"

using namespace cdi;
using namespace cdi::source::registry;

TEST_CASE("WWW-Authenticate: Bearer with realm, service, scope", "[registry][auth]") {
  auto c = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/fedora:pull")");
  REQUIRE(c);
  REQUIRE(c->size() == 1);
  CHECK((*c)[0].scheme == "bearer");
  CHECK((*c)[0].params.at("realm") == "https://auth.docker.io/token");
  CHECK((*c)[0].params.at("service") == "registry.docker.io");
  CHECK((*c)[0].params.at("scope") == "repository:library/fedora:pull");
}

TEST_CASE("WWW-Authenticate: several challenges, escapes, commas in quotes, token values", "[registry][auth]") {
  auto c = parse_www_authenticate(
      R"(Basic realm="a, \"quoted\" realm", Bearer realm="http://t/token", scope="repository:a:pull,push" , error=insufficient_scope)");
  REQUIRE(c);
  REQUIRE(c->size() == 2);
  CHECK((*c)[0].scheme == "basic");
  CHECK((*c)[0].params.at("realm") == R"(a, "quoted" realm)");
  CHECK((*c)[1].scheme == "bearer");
  CHECK((*c)[1].params.at("scope") == "repository:a:pull,push");
  CHECK((*c)[1].params.at("error") == "insufficient_scope");
  auto b = parse_www_authenticate("BASIC REALM=x");
  REQUIRE(b);
  CHECK((*b)[0].scheme == "basic");
  CHECK((*b)[0].params.at("realm") == "x");
}

TEST_CASE("WWW-Authenticate: malformed", "[registry][auth]") {
  CHECK_FALSE(parse_www_authenticate(""));
  CHECK_FALSE(parse_www_authenticate("Bearer realm=\"unterminated"));
  CHECK_FALSE(parse_www_authenticate("=x"));
}

TEST_CASE("base64 round trip and invalid input", "[registry][auth]") {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:pa ss:word\xff"}) {
    auto d = base64_decode(base64_encode(s));
    REQUIRE(d);
    CHECK(*d == s);
  }
  CHECK(base64_encode("testuser:testpass") == "dGVzdHVzZXI6dGVzdHBhc3M=");
  CHECK(base64_decode("dGVzdHVzZXI6dGVzdHBhc3M") == std::optional<std::string>("testuser:testpass"));
  CHECK_FALSE(base64_decode("a$bc"));
  CHECK_FALSE(base64_decode("ab=c"));
  CHECK_FALSE(base64_decode("a"));
}

TEST_CASE("docker config: auths map, base64 auth, host forms", "[registry][auth]") {
  std::string cfg = R"({"auths":{
      "https://index.docker.io/v1/":{"auth":"aHViOmh1YnBhc3M="},
      "http://127.0.0.1:5000/v1/":{"auth":"dGVzdHVzZXI6czNjcmV0IHBhc3M6d29yZA=="},
      "quay.io":{"username":"qu","password":"qp"},
      "ghcr.io":{"identitytoken":"x"}}})";
  auto c = docker_config_credentials(cfg, "127.0.0.1:5000");
  REQUIRE(c);
  REQUIRE(c->has_value());
  CHECK((*c)->username == "testuser");
  CHECK((*c)->password == "s3cret pass:word");   // only the first ':' splits
  c = docker_config_credentials(cfg, "registry-1.docker.io");
  REQUIRE(c);
  REQUIRE(c->has_value());
  CHECK((*c)->username == "hub");
  c = docker_config_credentials(cfg, "QUAY.io");
  REQUIRE(c);
  REQUIRE(c->has_value());
  CHECK((*c)->password == "qp");
  c = docker_config_credentials(cfg, "ghcr.io");
  REQUIRE(c);
  CHECK_FALSE(c->has_value());
  c = docker_config_credentials(cfg, "127.0.0.1:5001");
  REQUIRE(c);
  CHECK_FALSE(c->has_value());
}

TEST_CASE("docker config: legacy .dockercfg map and errors", "[registry][auth]") {
  auto c = docker_config_credentials(R"({"reg.example":{"auth":"dTpw"}})", "reg.example");
  REQUIRE(c);
  REQUIRE(c->has_value());
  CHECK((*c)->username == "u");
  CHECK((*c)->password == "p");
  auto bad = docker_config_credentials("not json", "x");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == Errc::corrupt_input);
  bad = docker_config_credentials(R"({"auths":{"x":{"auth":"!!!"}}})", "x");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("not valid base64") != std::string::npos);
  bad = docker_config_credentials(R"({"auths":{"x":{"auth":"bm9jb2xvbg=="}}})", "x");   // "nocolon"
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message().find("user:password") != std::string::npos);
  CHECK(bad.error().message().find("nocolon") == std::string::npos);   // never the secret
}
