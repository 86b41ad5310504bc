// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_digest.hpp"

#include "lib/source/oci_layout.hpp"

namespace cdi::source::registry {

Result<std::string> image_digest(std::string_view url, const ClientOptions& opts, const HttpContext& ctx) {
  auto ref = CDI_TRY(parse_reference(url));
  std::unique_ptr<ImageStore> store;
  if (ref.transport == Transport::docker) store = CDI_TRY(open_registry_client(ref, opts, ctx));
  else store = CDI_TRY(open_oci_layout(ref, ctx.cancel));
  auto m = CDI_TRY(store->manifest(ref.manifest_reference()));
  return m.digest;
}

}  // namespace cdi::source::registry
