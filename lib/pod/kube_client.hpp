// SPDX-License-Identifier: Apache-2.0
// The little of the Kubernetes API that cdi-source-update-poller needs: the in-cluster
// configuration (KUBERNETES_SERVICE_HOST/PORT, the service account's token and ca.crt), GET and
// JSON-patch of a DataImportCron, and the patch CDI's tool builds. Never through a proxy (CDI:
// "Don't proxy k8s api calls"). Kubeconfig files are not supported (the controller never passes
// one): an explicit path is refused with a clear error.
#pragma once

#include <chrono>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "lib/pod/env.hpp"
#include "lib/util/error.hpp"

namespace cdi::pod {

inline constexpr std::string_view k_ann_last_cron_time = "cdi.kubevirt.io/storage.import.lastCronTime";
inline constexpr std::string_view k_ann_source_desired_digest = "cdi.kubevirt.io/storage.import.sourceDesiredDigest";
// The service account directory (a pod path, resolved under CDI_IMPORT_ROOT).
inline constexpr std::string_view k_service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeConfig {
  std::string server;                        // "https://10.96.0.1:443" (no trailing slash)
  std::string token;                         // bearer token, "" = none
  std::optional<std::filesystem::path> ca_file;   // trusted CA bundle (else the system store)
};

// client-go's BuildConfigFromFlags(server, kubeconfig) for what we support:
//   kubeconfig non-empty  -> unsupported "kubeconfig files are not supported by this image (…)"
//   server empty          -> in-cluster: https://HOST:PORT (IPv6 bracketed) from the environment,
//                            else invalid_argument "unable to load in-cluster configuration,
//                            KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined";
//   server given          -> that URL.
// Either way the token and ca.crt of the service account directory are used when present; a
// missing token is an error in-cluster only ("open <path>: No such file or directory").
Result<KubeConfig> kube_config(const Environment& env, const PodPaths& paths, std::string_view server,
                               std::string_view kubeconfig);

struct KubeResponse {
  long status = 0;
  std::string body;
};

// One request. content_type "" = no body. Errors: network (connection, TLS).
Result<KubeResponse> kube_request(const KubeConfig& cfg, std::string_view method, std::string_view path,
                                  std::string_view content_type, std::string_view body);

// The error a non-2xx reply means, client-go style: the Status "message" when the body is a
// Kubernetes Status, else "the server responded with the status code N …".
Error kube_status_error(const KubeResponse& r);

// RFC 6901: "~" -> "~0", "/" -> "~1".
std::string escape_json_pointer(std::string_view s);

// Go's time.Now().Format(time.RFC3339) in local time: "2006-01-02T15:04:05Z" or "…+02:00".
std::string rfc3339(std::time_t t);

// The JSON patch CDI's poller sends: add lastCronTime = now; add sourceDesiredDigest = digest when
// digest is non-empty and differs from `current_desired` (the annotation's value now, "" if none).
// Sets *digest_updated. Field order and escaping as Go's json.Marshal.
std::string cron_patch(std::string_view now, std::string_view digest, std::string_view current_desired,
                       bool* digest_updated);

// The DataImportCron's annotation `key` from its JSON ("" when absent). Errors: corrupt_input.
Result<std::string> annotation_of(std::string_view object_json, std::string_view key);

}  // namespace cdi::pod
