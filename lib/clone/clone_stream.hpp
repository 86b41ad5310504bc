// SPDX-License-Identifier: Apache-2.0
// What a host-assisted clone sends, before the snappy framing (CDI cmd/cdi-cloner):
//   blockdevice-clone  the bytes of the source device (or image file), read once, start to end;
//                      holes of a sparse file are produced as zeros without reading them.
//   filesystem-clone   `tar cv [-S] <entries>` of the volume's top-level entries (os.ReadDir
//                      order: sorted by name; lost+found left out; none → an empty archive), run
//                      by GNU tar in the volume directory: GNU-format members, sparse members (-S)
//                      unless preallocating. A tar that exits non-zero fails the stream.
// Neither checks whether the source is in use: callers do (lib/source/in_use.hpp) first.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::clone {

enum class CloneKind { blockdevice, filesystem };

// "blockdevice-clone" / "filesystem-clone" (the x-cdi-content-type values).
std::string_view content_type_name(CloneKind k);

// A block device or a regular file. info(): name "block"/"file", size. Errors: not_found, io,
// invalid_argument (a directory or another kind of file).
Result<std::unique_ptr<io::Reader>> open_raw_stream(const std::filesystem::path& path,
                                                    const util::CancelToken* cancel = nullptr);

// The top-level names tar is given: dir's entries sorted by name, without "lost+found".
Result<std::vector<std::string>> tar_entries(const std::filesystem::path& dir);

// GNU tar's argv for dir: {tar, "cv", ["-S",] "--", entries...} or {tar, "cv", ["-S",]
// "--files-from", "/dev/null"} when there are none ("--" keeps a name starting with '-' a name).
std::vector<std::string> tar_argv(const std::string& tar, bool sparse, const std::vector<std::string>& entries);

struct TarStreamOptions {
  std::string tar = "/usr/bin/tar";   // CDI runs /usr/bin/tar; tests may point elsewhere
  bool sparse = true;                  // -S (CDI: unless PREALLOCATION=true)
  const util::CancelToken* cancel = nullptr;
};

// Spawns tar in dir and reads its stdout. Errors: from spawning (not_found when tar is missing),
// io "tar exited with status N: <its last stderr line>" at the end of a failed archive.
Result<std::unique_ptr<io::Reader>> open_tar_stream(const std::filesystem::path& dir, const TarStreamOptions& opts);

}  // namespace cdi::clone
