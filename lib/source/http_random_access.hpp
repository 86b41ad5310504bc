// SPDX-License-Identifier: Apache-2.0
// io::RandomAccess over HTTP(S) byte ranges of one pinned URL (ReaderInfo::range_url of the HTTP
// source), for decoders that need random access (qcow2). Same HttpOptions and libcurl setup as the
// streaming source (http_client.hpp): TLS, cert dir, client certificates, basic auth and headers
// (sent only when the URL keeps the origin they were given for), proxies, retries with backoff.
//
// Consistency: the first request (open) pins the resource's version by its strong ETag, else its
// Last-Modified, and its total length. Every later request carries If-Match (or
// If-Unmodified-Since); a 412, a 200 instead of 206, a Content-Range other than the one asked for,
// another total length or another ETag is corrupt_input ("the resource changed while it was
// read"): bytes of two versions are never mixed. A server that sends neither validator is refused
// at open (unsupported): the caller streams instead.
//
// Round trips: one persistent easy handle (keep-alive), and an in-memory cache of fetched
// segments bounded by `cache_bytes` (default 32 MiB; oldest segment dropped first). will_need()
// records the ranges to come (merged when the gap is <= coalesce_gap(), 1 MiB); a pread that
// misses the cache fetches from its offset to the end of the hinted span it falls in (at most
// `max_request`, 16 MiB), else `min_read` (1 MiB) ahead, doubling while reads stay sequential
// (up to max_request). A request that drops is resumed inside its range (same retry policy as
// the streaming source: retries in a row without progress, retry_max_time, Retry-After).
// Not thread-safe: one reader.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/io/random_access.hpp"
#include "lib/source/http_source.hpp"

namespace cdi::source {

struct HttpRandomAccessOptions {
  size_t cache_bytes = 32u << 20;     // fetched bytes held at most (segments up to max_request)
  size_t max_request = 16u << 20;     // largest range one GET asks for
  size_t min_read = 1u << 20;         // smallest range a cache miss asks for
  uint64_t coalesce_gap = 1u << 20;   // gap read through rather than a new round trip
  // The URL the user gave (credentials are sent only while `url` has its origin); "" = `url`.
  std::string credentials_url;
  // The length the streaming source saw; another length at open is corrupt_input.
  std::optional<uint64_t> expected_size;
  // The ETag the streaming source saw; another one at open is corrupt_input.
  std::optional<std::string> expected_etag;
  // The streaming source's validator (ReaderInfo::validator: a strong ETag, else Last-Modified):
  // every request, the first included, is conditional on it (If-Match / If-Unmodified-Since), so a
  // resource replaced since the stream's first response is corrupt_input ("changed").
  std::optional<std::string> expected_validator;
};

class HttpRandomAccess final : public io::RandomAccess {
 public:
  // Fetches the first min_read bytes (cached) to learn the length and the validator. Errors:
  // invalid_argument (URL, options), not_found, auth, network (transport, statuses, retries
  // exhausted), unsupported (no byte ranges, no strong ETag or Last-Modified), corrupt_input
  // (length or ETag differs from expected_size / expected_etag), cancelled.
  static Result<std::unique_ptr<HttpRandomAccess>> open(std::string url, const HttpOptions& opts,
                                                        const HttpContext& ctx,
                                                        HttpRandomAccessOptions ra = {});
  ~HttpRandomAccess() override;

  Result<size_t> pread(uint64_t offset, std::span<std::byte> dst) override;
  std::optional<uint64_t> size() const override { return m_size; }
  void will_need(std::span<const io::ByteRange> ranges) override;
  uint64_t coalesce_gap() const override { return m_ra.coalesce_gap; }
  std::string name() const override;

  // GET requests sent so far (including retries), for logs and tests.
  uint64_t requests() const { return m_requests; }
  // New connections libcurl opened for them (1 while the server keeps the connection alive).
  uint64_t connections() const { return m_connections; }

  struct Impl;

 private:
  HttpRandomAccess() = default;

  struct Segment {
    uint64_t offset = 0;
    std::vector<std::byte> bytes;
  };
  // Fetches [offset, offset + length) (within the size) into a new cache segment.
  Result<void> fetch(uint64_t offset, uint64_t length);
  const Segment* find(uint64_t offset) const;

  std::unique_ptr<Impl> m_impl;
  HttpRandomAccessOptions m_ra;
  std::string m_url;
  uint64_t m_size = 0;
  uint64_t m_requests = 0;
  uint64_t m_connections = 0;
  std::deque<Segment> m_cache;     // oldest first
  size_t m_cached = 0;             // bytes in m_cache
  std::deque<io::ByteRange> m_plan;   // hinted spans still ahead, in read order
  uint64_t m_last_end = 0;         // end of the last fetch (sequential detection)
  uint64_t m_readahead = 0;        // current miss readahead
};

}  // namespace cdi::source
