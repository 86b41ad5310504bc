// SPDX-License-Identifier: Apache-2.0
// The HTTP side of `cdi-containerimage-server` (CDI's tools/cdi-containerimage-server): a small
// HTTP/1.1 server on 127.0.0.1 that serves one directory the way Go's http.FileServer does (GET
// and HEAD, Content-Length, Last-Modified, Accept-Ranges, one byte range with 206 / 416,
// If-Modified-Since / If-Unmodified-Since / If-Range by date, a directory listing, 404 "404 page
// not found") and `/info` with the container's environment as CDI's ServerInfo JSON
// ({"env":["K=V",…]}).
//
// Why hand-written: in node-pull mode the controller copies this program into the user's
// containerDisk image (a scratch image: no shared libraries, no /etc) and runs it there, so it is
// linked statically, without cpp-httplib's shared library or OpenSSL. Depends on libc and
// lib/util/error only.
#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lib/util/error.hpp"

namespace cdi::pod {

// --- pure helpers (unit-tested) ------------------------------------------------------------------

// CDI's ServerInfo as Go's encoding/json writes it: {"env":[…]} + "\n" ({} + "\n" when env is
// empty: omitempty). Strings escaped as Go does (<, >, & and U+2028/9 as \u…, invalid UTF-8 as
// \ufffd).
std::string server_info_json(const std::vector<std::string>& env);

// A Go JSON string literal.
std::string go_json_string(std::string_view s);

// An RFC 7231 IMF-fixdate: "Mon, 02 Jan 2006 15:04:05 GMT". parse_http_date also accepts the
// obsolete RFC 850 and asctime forms (as Go's http.ParseTime).
std::string http_date(std::time_t t);
std::optional<std::time_t> parse_http_date(std::string_view s);

// Go's http.FileServer Range semantics for a file of `size` bytes.
struct RangeDecision {
  enum class Kind {
    full,          // no Range, or ranges to ignore (several, or more bytes than the file): 200
    partial,       // one satisfiable range: 206 + Content-Range
    unsatisfiable  // 416 (with "Content-Range: bytes */size" when no range overlapped)
  } kind = Kind::full;
  uint64_t first = 0, length = 0;   // partial
  bool no_overlap = false;          // unsatisfiable: "invalid range: failed to overlap"
};
RangeDecision decide_range(std::string_view range_header, uint64_t size);

// path.Clean of a URL path ("/a/../b//c/" -> "/b/c"; always absolute).
std::string clean_url_path(std::string_view p);

// Percent-decoding of a request path. nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s);

// Content-Type for a served file: by extension (Go's built-in table), else sniffed from the
// first bytes (gzip, binary -> application/octet-stream, text -> text/plain; charset=utf-8).
std::string content_type_for(std::string_view name, std::string_view head);

// --- the server ----------------------------------------------------------------------------------

struct ImageServerOptions {
  std::string directory;             // served as "/"
  uint16_t port = 8100;              // 0: any free port (tests)
  std::vector<std::string> env;      // /info
  std::function<void(std::string_view)> log;   // one line per connection-level problem; may be empty
};

class ImageServer {
 public:
  // Binds 127.0.0.1:port and starts serving. Errors: io ("listen tcp 127.0.0.1:8100: bind: Address
  // already in use").
  static Result<std::unique_ptr<ImageServer>> start(const ImageServerOptions& opts);
  ~ImageServer();
  uint16_t port() const;
  // Closes the listener, lets requests in progress finish, closes idle connections, and returns
  // when every connection thread ended (Go's Server.Shutdown).
  void shutdown();

  struct State;

 private:
  explicit ImageServer(std::shared_ptr<State> s) : m_state(std::move(s)) {}
  std::shared_ptr<State> m_state;
};

}  // namespace cdi::pod
