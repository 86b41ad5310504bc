// SPDX-License-Identifier: Apache-2.0
// The CLI's S3 flags (README "S3 sources"): an s3://BUCKET/KEY URL (with --s3-endpoint for
// S3-compatible stores), or an endpoint URL SCHEME://HOST/BUCKET/KEY with --source s3. Keys come
// from files or the AWS environment variables, never from the command line.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include "lib/pipeline/import.hpp"
#include "lib/source/http_client.hpp"
#include "lib/source/s3_source.hpp"

namespace cdi::cmd {

struct S3Flags {
  std::string source, endpoint, region, access_key_file, secret_key_file;
};

inline void add_s3(CLI::App& app, S3Flags& f) {
  app.add_option("--source", f.source, "s3 or gcs: read --url (SCHEME://HOST[:PORT]/BUCKET/KEY) as an S3 object "
                                      "(path style) or a GCS object (that host as the storage endpoint)")
      ->check(CLI::IsMember({"s3", "gcs"}));
  app.add_option("--s3-endpoint", f.endpoint, "S3-compatible store for s3://BUCKET/KEY (http(s)://HOST[:PORT]; "
                                              "default https://s3.REGION.amazonaws.com)");
  app.add_option("--s3-region", f.region, "region for signing (default: $AWS_REGION, else derived from the host)");
  app.add_option("--s3-access-key-file", f.access_key_file, "file holding the access key id (default: $AWS_ACCESS_KEY_ID)");
  app.add_option("--s3-secret-key-file", f.secret_key_file, "file holding the secret key (default: $AWS_SECRET_ACCESS_KEY)");
}

// Rewrites o.url to the object's http(s) URL and sets the signing keys when the URL is an S3 one.
inline Result<void> apply_s3(const S3Flags& f, pipeline::ImportOptions& o) {
  bool bucket_form = o.url.size() >= 5 && (o.url.compare(0, 5, "s3://") == 0 || o.url.compare(0, 5, "S3://") == 0);
  if (f.source != "s3" && !bucket_form) {
    if (!f.endpoint.empty() || !f.access_key_file.empty() || !f.secret_key_file.empty() || !f.region.empty())
      return std::unexpected(Error(Errc::invalid_argument, "S3 options given for a source that is not S3")
                                 .with_hint(" (use --url s3://BUCKET/KEY or --source s3)"));
    return {};
  }
  auto env = [](const char* n) -> std::string {
    const char* v = std::getenv(n);
    return v ? v : "";
  };
  std::string region = f.region.empty() ? env("AWS_REGION") : f.region;
  auto loc = f.source == "s3" ? source::s3::parse_endpoint_url(o.url)
                              : source::s3::parse_bucket_url(o.url, f.endpoint, region);
  if (!loc) return std::unexpected(std::move(loc).error().with_hint(" (--url)"));
  auto read_key = [](const std::string& file, const char* what, const char* flag) -> Result<std::string> {
    auto text = CDI_TRY(source::http::flag_hint(source::http::read_small_file(file, what), flag));
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    return text;
  };
  source::s3::Credentials c;
  c.access_key = f.access_key_file.empty() ? env("AWS_ACCESS_KEY_ID")
                                           : CDI_TRY(read_key(f.access_key_file, "access key file", "--s3-access-key-file"));
  c.secret_key = f.secret_key_file.empty() ? env("AWS_SECRET_ACCESS_KEY")
                                           : CDI_TRY(read_key(f.secret_key_file, "secret key file", "--s3-secret-key-file"));
  c.session_token = env("AWS_SESSION_TOKEN");
  std::optional<source::s3::Credentials> creds;
  if (!c.access_key.empty() || !c.secret_key.empty()) creds = c;
  auto r = source::s3::apply_signing(*loc, creds, region, o.source.http);
  if (!r) return std::unexpected(std::move(r).error().with_hint(" (--s3-access-key-file, --s3-secret-key-file)"));
  if (o.log) o.log("S3 object " + loc->bucket + "/" + loc->key + " at " + loc->scheme + "://" + loc->authority +
                   (creds ? ", signed (AWS SigV4)" : ", anonymous (no keys given)"));
  o.url = loc->url();
  return {};
}

}  // namespace cdi::cmd
