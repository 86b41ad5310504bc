// SPDX-License-Identifier: Apache-2.0
// CDI's space arithmetic (cdi-importer-spec.md §2.1, §2.9, §2.10): available space of the target,
// usable space after filesystem overhead, and the size a file target is grown to.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "lib/util/error.hpp"

namespace cdi::pod {

constexpr uint64_t k_align = uint64_t{1} << 20;  // CDI's DefaultAlignBlockSize (1 MiB)

// RoundDown(ceil(available / (1 + overhead)), 1 MiB), computed in double as CDI does.
// 10 GiB & 0.06 -> 9660 MiB; 10 GiB & 0 -> 10 GiB; 512 MiB & 0.06 -> 483 MiB.
uint64_t usable_space(uint64_t available, double overhead);

// CDI's availableSpace of a filesystem target: min(free, request) when a request is given.
uint64_t available_space(uint64_t free_bytes, std::optional<uint64_t> request);

// The size a filesystem target is resized to: min(request, usable_space(available, overhead));
// nullopt without a request (no resize). The pipeline never shrinks an image to it.
std::optional<uint64_t> resize_target(std::optional<uint64_t> request, uint64_t available, double overhead);

// statfs(dir): f_bavail * f_bsize. Errors: io / not_found.
Result<uint64_t> filesystem_free(const std::filesystem::path& dir);

// Size of a block device (BLKGETSIZE64). Errors: io / not_found.
Result<uint64_t> block_device_size(const std::filesystem::path& dev);

}  // namespace cdi::pod
