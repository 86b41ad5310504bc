// SPDX-License-Identifier: Apache-2.0
// Pure helpers of registry authentication: WWW-Authenticate challenges (RFC 9110 §11.6.1 syntax,
// as registries send them), Docker config files (~/.docker/config.json "auths", Kubernetes
// .dockerconfigjson and the older .dockercfg map) and base64.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::source::registry {

struct Challenge {
  std::string scheme;                          // lower case: "basic", "bearer"
  std::map<std::string, std::string> params;   // names lower case: realm, service, scope, error
};

// Parses a WWW-Authenticate value that may hold several challenges:
//   Bearer realm="https://auth/token",service="reg",scope="repository:a/b:pull"
//   Basic realm="x"
// Quoted strings may contain ',' and backslash escapes; token68 values are ignored.
// Errors: invalid_argument for an empty or unparsable value.
Result<std::vector<Challenge>> parse_www_authenticate(std::string_view value);

struct Credentials {
  std::string username;
  std::string password;
};

// The credentials a Docker config file holds for `host` ("127.0.0.1:5000", "registry-1.docker.io").
// Keys may be "host", "https://host", "http://host/v1/"…; Docker Hub's keys
// ("https://index.docker.io/v1/", "docker.io") match registry-1.docker.io. An entry's "auth"
// (base64 "user:password") wins over "username"/"password". nullopt when no entry matches.
// Errors: corrupt_input (not JSON, bad base64, "auth" without ':'), naming never the secret.
Result<std::optional<Credentials>> docker_config_credentials(std::string_view json, std::string_view host);

// Standard base64 (padding optional, whitespace ignored). nullopt on invalid input.
std::optional<std::string> base64_decode(std::string_view in);
std::string base64_encode(std::string_view in);

}  // namespace cdi::source::registry
