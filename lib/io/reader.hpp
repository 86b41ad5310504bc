// SPDX-License-Identifier: Apache-2.0
// The pull interface every stage implements. A stage owns its upstream (std::unique_ptr<Reader>)
// and fills the caller's span; the chain is destroyed top-down.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::io {

// Plain facts about a reader. New capabilities go here, not into new virtuals.
struct ReaderInfo {
  std::string name;                  // stage name for the chain: "file", "gzip", "tar[disk.img]"
  std::optional<uint64_t> size;      // exact length of this stream when known up front
  bool seekable = false;             // the bytes can be re-read by path (local regular file / device)
  std::optional<std::string> path;   // local path holding exactly this stream's bytes, if any
  // An HTTP(S) source whose server serves byte ranges of a known length: the pinned URL, so a tool
  // that needs random access (qemu-img for vmdk/vhdx/...) may read it in place.
  std::optional<std::string> range_url;
  // That server's validator of the first response (a strong ETag, else Last-Modified): later
  // Range requests are made conditional on it (If-Match / If-Unmodified-Since).
  std::optional<std::string> validator;
  // An HTTP(S) source: the effective URL of its first response (redirects resolved), for a second
  // read of the same resource (made conditional on `validator`, set then whether or not the server
  // serves ranges).
  std::optional<std::string> pinned_url;
  // A docker:// containerDisk: pinned_url is the image reference pinned by its manifest digest
  // (docker://host/repo@sha256:…) and validator the disk layer's blob digest, which every read
  // verifies at its end; reading it again opens that manifest and layer (no If-Match).
  bool content_addressed = false;
  // Labels of a container image source (KUBEVIRT_IO_* env vars of its config), in config order.
  std::vector<std::pair<std::string, std::string>> labels = {};
};

class Reader {
 public:
  virtual ~Reader() = default;
  Reader() = default;
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Reads up to dst.size() bytes into dst. Returns the count; 0 means end of stream (never
  // returned for a non-empty dst before the end). Short reads are allowed. Truncated or damaged
  // input is an error (corrupt_input), never an early 0. After an error the reader is dead.
  virtual Result<size_t> read(std::span<std::byte> dst) = 0;

  virtual ReaderInfo info() const = 0;
};

// Reads until dst is full or the stream ends; returns the count (< dst.size() only at the end).
Result<size_t> read_full(Reader& r, std::span<std::byte> dst);

}  // namespace cdi::io
