// SPDX-License-Identifier: Apache-2.0
#include <catch2/catch.hpp>

#include "lib/source/s3_source.hpp"

using namespace cdi;
using namespace cdi::source;
using namespace cdi::source::s3;

TEST_CASE("s3 region_from_host: AWS endpoint names, else the first label (CDI)", "[s3]") {
  CHECK(region_from_host("s3.eu-west-1.amazonaws.com") == "eu-west-1");
  CHECK(region_from_host("S3.US-WEST-2.AMAZONAWS.COM") == "us-west-2");
  CHECK(region_from_host("s3.dualstack.ap-south-1.amazonaws.com") == "ap-south-1");
  CHECK(region_from_host("s3-eu-central-1.amazonaws.com") == "eu-central-1");
  CHECK(region_from_host("s3.amazonaws.com") == "us-east-1");
  CHECK(region_from_host("minio.example.com") == "minio");
  CHECK(region_from_host("localhost") == "localhost");
  CHECK(region_from_host("127.0.0.1") == "127");
}

TEST_CASE("s3 parse_endpoint_url: CDI's path-style IMPORTER_ENDPOINT", "[s3]") {
  auto a = parse_endpoint_url("s3://s3.eu-west-1.amazonaws.com/bucket/dir/disk.qcow2");
  REQUIRE(a);
  CHECK(a->scheme == "https");   // s3:// means TLS
  CHECK(a->bucket == "bucket");
  CHECK(a->key == "dir/disk.qcow2");
  CHECK(a->region == "eu-west-1");
  CHECK(a->url() == "https://s3.eu-west-1.amazonaws.com/bucket/dir/disk.qcow2");

  auto b = parse_endpoint_url("http://Minio.local:9000/images/a%20b.img");
  REQUIRE(b);
  CHECK(b->scheme == "http");
  CHECK(b->authority == "Minio.local:9000");
  CHECK(b->host == "minio.local");
  CHECK(b->region == "minio");
  CHECK(b->key == "a%20b.img");   // as written (already encoded)
  CHECK(b->url() == "http://Minio.local:9000/images/a%20b.img");

  auto c = parse_endpoint_url("https://[::1]:8443/b/k");
  REQUIRE(c);
  CHECK(c->host == "::1");
  CHECK(c->url() == "https://[::1]:8443/b/k");

  for (const char* bad : {"s3://host/bucketonly", "s3://host/bucket/", "s3://host/", "s3://host", "ftp://host/b/k",
                          "https://user:pw@host/b/k", "https://host/b/k?versionId=1", "s3:///b/k", "host/b/k",
                          "https://host:99999/b/k"}) {
    INFO(bad);
    auto r = parse_endpoint_url(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == Errc::invalid_argument);
  }
}

TEST_CASE("s3 parse_bucket_url: s3://BUCKET/KEY against an endpoint or AWS", "[s3]") {
  auto a = parse_bucket_url("s3://golden/fedora/39 disk+x.qcow2", "", "");
  REQUIRE(a);
  CHECK(a->url() == "https://s3.us-east-1.amazonaws.com/golden/fedora/39%20disk%2Bx.qcow2");
  CHECK(a->region == "us-east-1");

  auto b = parse_bucket_url("s3://golden/k", "", "eu-north-1");
  REQUIRE(b);
  CHECK(b->url() == "https://s3.eu-north-1.amazonaws.com/golden/k");
  CHECK(b->region == "eu-north-1");

  auto c = parse_bucket_url("s3://golden/k", "http://127.0.0.1:9000/", "");
  REQUIRE(c);
  CHECK(c->url() == "http://127.0.0.1:9000/golden/k");
  CHECK(c->region == "127");

  CHECK_FALSE(parse_bucket_url("s3://golden", "", ""));
  CHECK_FALSE(parse_bucket_url("s3://golden/k", "ftp://x", ""));
  CHECK_FALSE(parse_bucket_url("s3://golden/k", "http://x/path", ""));
  CHECK_FALSE(parse_bucket_url("s3://golden/k?x=1", "", ""));
  CHECK_FALSE(parse_bucket_url("https://x/golden/k", "", ""));
}

TEST_CASE("s3 encode_key keeps unreserved characters and slashes", "[s3]") {
  CHECK(encode_key("a/b-c_d.e~f") == "a/b-c_d.e~f");
  CHECK(encode_key("a b+c%") == "a%20b%2Bc%25");
  CHECK(encode_key("\xc3\xa9") == "%C3%A9");
}

TEST_CASE("s3 apply_signing sets the libcurl provider, or nothing for anonymous reads", "[s3]") {
  auto loc = parse_endpoint_url("https://s3.eu-west-1.amazonaws.com/b/k");
  REQUIRE(loc);
  HttpOptions o;
  REQUIRE(apply_signing(*loc, Credentials{"AK", "SK", "TOK"}, "", o));
  REQUIRE(o.aws_sigv4);
  CHECK(o.aws_sigv4->provider == "aws:amz:eu-west-1:s3");
  CHECK(o.aws_sigv4->access_key == "AK");
  CHECK(o.aws_sigv4->session_token == "TOK");
  REQUIRE(apply_signing(*loc, Credentials{"AK", "SK", ""}, "us-east-2", o));
  CHECK(o.aws_sigv4->provider == "aws:amz:us-east-2:s3");
  REQUIRE(apply_signing(*loc, std::nullopt, "", o));
  CHECK_FALSE(o.aws_sigv4);
  CHECK_FALSE(apply_signing(*loc, Credentials{"AK", "", ""}, "", o));
  CHECK_FALSE(apply_signing(*loc, Credentials{"AK", "S\nK", ""}, "", o));
  CHECK_FALSE(apply_signing(*loc, Credentials{"AK", "SK", ""}, "bad:region", o));
}

TEST_CASE("s3 describe_error_body names the error code in one line", "[s3]") {
  std::string body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request "
      "signature we calculated\ndoes not match.</Message><RequestId>1</RequestId></Error>";
  auto d = describe_error_body(body);
  CHECK(d == "S3 error SignatureDoesNotMatch: The request signature we calculated does not match. "
             "(wrong secret key (or a signature the store computes differently))");
  CHECK(describe_error_body("<Error><Code>RequestTimeTooSkewed</Code></Error>").find("clock skew") != std::string::npos);
  CHECK(describe_error_body("<Error><Code>NoSuchKey</Code><Message>x</Message></Error>") ==
        "S3 error NoSuchKey: x (no such object in the bucket)");
  CHECK(describe_error_body("<Error><Code>Weird</Code></Error>") == "S3 error Weird");
  CHECK(describe_error_body("<html>not s3</html>").empty());
  CHECK(describe_error_body("<Error><Message>no code</Message></Error>").empty());
}
