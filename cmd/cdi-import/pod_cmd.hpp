// SPDX-License-Identifier: Apache-2.0
// Pod mode entry points: `cdi-importer` / `cdi-import pod-importer` and `cdi-uploadserver` /
// `cdi-import pod-uploadserver`. Configuration comes from the environment; the arguments are klog
// flags only. Each returns the process exit code.
#pragma once

#include "lib/util/cancel.hpp"

namespace cdi::cmd {

// args: the klog flags (argv after the program / subcommand name).
int run_pod_importer(int argc, char** argv, const util::CancelToken& cancel);
int run_pod_uploadserver(int argc, char** argv, const util::CancelToken& cancel);

}  // namespace cdi::cmd
