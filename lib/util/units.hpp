// SPDX-License-Identifier: Apache-2.0
// Byte quantities: parsing Kubernetes resource quantities and formatting sizes for humans.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::util {

// Parses a Kubernetes quantity as a byte count: "1073741824", "10Gi", "500M", "1e9", "0.5Gi",
// "10Ki", "10k", "1.5G". Fractional byte results are rounded up (as resource.Quantity.Value()).
// Errors: invalid_argument for anything else (negative, empty, unknown suffix, overflow).
Result<uint64_t> parse_quantity(std::string_view text);

// "0 B", "512 B", "7.1 MiB", "2.0 GiB" (binary units, one decimal above 1 KiB).
std::string format_bytes(uint64_t bytes);

// "1.2s", "3m04s", "1h02m".
std::string format_duration(double seconds);

}  // namespace cdi::util
