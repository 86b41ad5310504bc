// SPDX-License-Identifier: Apache-2.0
// S3 (and S3-compatible stores) as an HTTP source: the object's URL is worked out here, path style
// as CDI does it, and the HttpOptions gain AWS Signature V4 (HttpOptions::aws_sigv4, signed by
// libcurl). Everything else — streaming, resume with Range + If-Match, checksums, progress, the
// random-access qcow2 path — is the HTTP source's.
//
// URL forms:
//   CDI's IMPORTER_ENDPOINT (and the CLI's --source s3): SCHEME://HOST[:PORT]/BUCKET/KEY…, path
//     style; "s3://" and "https://" mean HTTPS, "http://" plain HTTP. The key is taken as written
//     (already URL-encoded).
//   The CLI's s3://BUCKET/KEY (with an optional endpoint URL SCHEME://HOST[:PORT], default
//     https://s3.REGION.amazonaws.com): the key is a raw object key, percent-encoded here.
// Region: the REGION of s3.REGION.amazonaws.com (also s3-REGION / s3.dualstack.REGION), else the
// host's first label (CDI's rule), unless one is given (--s3-region / AWS_REGION).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "lib/source/http_source.hpp"
#include "lib/util/error.hpp"

namespace cdi::source::s3 {

struct S3Location {
  std::string scheme;     // "http" or "https"
  std::string authority;  // host[:port] as written (IPv6 in brackets)
  std::string host;       // without port and brackets, lower case
  std::string bucket;
  std::string key;        // URL-encoded path after the bucket, no leading '/'
  std::string region;     // derived from the host (see above)
  std::string url() const { return scheme + "://" + authority + "/" + bucket + "/" + key; }
};

// CDI's endpoint form. Errors: invalid_argument (another scheme, no host, no bucket or key, a
// query or credentials in the URL).
Result<S3Location> parse_endpoint_url(std::string_view url);

// The CLI's s3://BUCKET/KEY against `endpoint` ("" = AWS in `region`, "us-east-1" when empty).
// Errors: invalid_argument.
Result<S3Location> parse_bucket_url(std::string_view url, std::string_view endpoint, std::string_view region);

// The region CDI derives from a host name.
std::string region_from_host(std::string_view host);

// "KEY" percent-encoded as an S3 object key in a path: unreserved characters and '/' kept.
std::string encode_key(std::string_view raw);

struct Credentials {
  std::string access_key, secret_key, session_token;
};

// Sets opts.aws_sigv4 for `loc` (none when `creds` is nullopt: anonymous reads of a public
// object). `region` overrides loc.region when not empty. Errors: invalid_argument (a key without
// its secret, a region that is not a DNS label).
Result<void> apply_signing(const S3Location& loc, const std::optional<Credentials>& creds, std::string_view region,
                           HttpOptions& opts);

// The S3 error document of an error reply (<Error><Code>…</Code><Message>…</Message>): "" when
// the body is not one. Else one line: "S3 error CODE: MESSAGE" plus what the code means for the
// user (wrong secret key, unknown access key id, clock skew, no such bucket/key, access denied).
std::string describe_error_body(std::string_view body);

}  // namespace cdi::source::s3
