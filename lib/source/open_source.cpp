// SPDX-License-Identifier: Apache-2.0
#include "lib/source/open_source.hpp"

#include <cctype>

#include "lib/source/file_source.hpp"
#include "lib/source/registry_reference.hpp"
#include "lib/source/registry_source.hpp"

namespace cdi::source {

Result<std::unique_ptr<io::Reader>> open_source(std::string_view url, const SourceOptions& o, const HttpContext& ctx) {
  auto has_scheme = [&](std::string_view scheme) {
    if (url.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(url[i])) != scheme[i]) return false;
    return true;
  };
  if (has_scheme("gs://") || (o.gcs.force && (has_scheme("http://") || has_scheme("https://"))))
    return open_gcs_source(url, o.gcs, o.http, ctx);
  if (has_scheme("http://") || has_scheme("https://")) return open_http_source(url, o.http, ctx);
  if (registry::is_image_reference(url)) {   // containerDisks: the reader serves the disk file
    registry::RegistrySourceOptions ro;
    ro.client.http = o.http;
    ro.client.auth_file = o.registry.auth_file;
    ro.os = o.registry.os;
    ro.architecture = o.registry.architecture;
    ro.variant = o.registry.variant;
    return registry::open_registry_source(url, ro, ctx);
  }
  for (std::string_view scheme : {"s3://"}) {
    if (url.substr(0, scheme.size()) == scheme)
      return fail(Errc::unsupported, "an " + std::string(scheme) + " URL must be resolved to its S3 endpoint before it is opened");
  }
  FileSourceOptions fo;
  fo.force_shared = o.force_shared;
  fo.cancel = ctx.cancel;
  fo.drop_step = o.file_drop_step;
  return open_file_source(url, fo);
}

}  // namespace cdi::source
