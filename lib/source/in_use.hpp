// SPDX-License-Identifier: Apache-2.0
// "Is someone using this disk?" — the checks every reader of a VM disk makes before it copies it
// (imports from a local path, the cloner, `cdi-import clone`, `info`): qemu's OFD lock bytes on
// image files, the mount table and an O_EXCL probe on block devices.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "lib/util/error.hpp"

namespace cdi::source {

// True when another process holds the image open in a way that forbids us to read it
// consistently, by qemu's rules: someone holds the "write" or "resize" permission lock byte
// (offsets 101, 103) or refuses to share "consistent read" (offset 200). Any lock covering those
// bytes counts, so a plain whole-file write lock does too. A filesystem without OFD locks: false.
bool image_in_use(int fd);

// Where a block device (by its device number) is mounted according to /proc/self/mountinfo
// (the first mount point), nullopt when it is not mounted in this mount namespace.
std::optional<std::string> device_mount_point(dev_t rdev);

// Why a block device is in use, nullopt when it is free: "mounted at /mnt/x" (mount table) or
// "mounted or held open exclusively" (O_EXCL open fails with EBUSY; retried briefly, since a
// sibling probe holds the claim for microseconds). Errors: opening the device failed otherwise.
Result<std::optional<std::string>> device_in_use(const std::string& path);

// Errors: busy "source <path> is in use (<why>); power off the VM that uses it (or pass
// --force-shared)" when device_in_use() says so.
Result<void> check_device_free(const std::string& path);

// Errors: busy when the regular file at path is locked by a running qemu (image_in_use).
Result<void> check_image_free(const std::string& path);

// Every regular file under dir (recursively, symlinks not followed) checked with
// check_image_free; a block device found there with check_device_free. Errors: busy for the
// first one in use, io when dir cannot be read (unreadable entries below it are skipped: the copy
// itself reports them).
Result<void> check_tree_free(const std::filesystem::path& dir);

// The busy error text for path ("" or " (why)").
Error in_use_error(const std::string& path, const std::string& why);

}  // namespace cdi::source
