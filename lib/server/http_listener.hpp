// SPDX-License-Identifier: Apache-2.0
// The listening and connection side of our HTTP(S) servers (the upload server and the metrics
// endpoint), built on cpp-httplib's request processing but not on its socket handling.
//
// Why not httplib's own listen(): Debian's libcpp-httplib 0.11.4 is a compiled shared library with
// fixed macros — a thread pool of ~8 workers fed by an unbounded queue, listen backlog 5, a read
// timeout per recv() (a client sending one byte a second never times out), no time limit on the
// TLS handshake, IPv4-or-IPv6 sockets as getaddrinfo returns them and SO_REUSEPORT instead of
// SO_REUSEADDR. Eight slow or idle clients were enough to starve /healthz.
//
// What we do instead (small, and the same for plain and TLS): our own listening socket (dual-stack
// [::] with IPV6_V6ONLY=0 for the wildcard, SO_REUSEADDR, backlog SOMAXCONN), our own accept loop,
// one thread per connection up to `max_connections` (beyond it a connection gets an immediate 503
// on plain HTTP, or is closed on TLS — never queued), and our own httplib::Stream over a
// non-blocking socket (and our own SSL object) whose every wait is bounded by a deadline:
//   - TLS handshake: handshake_timeout after accept;
//   - request line and headers: header_timeout for the whole header (Go's ReadHeaderTimeout: a
//     byte-a-second client is cut at the deadline, not per byte);
//   - between keep-alive requests: idle_timeout until the next request's first byte;
//   - body and response: only stall_timeout per wait (no total limit: a slow but progressing
//     upload of GiBs is never cut, as Go's server without ReadTimeout).
// httplib's protected Server::process_request parses, routes and answers one request on that
// stream; its setup_request hook (called once the headers are in) ends the header deadline.
// CDI sets ReadHeaderTimeout 10 s on both servers (pkg/uploadserver, pkg/util/prometheus) and no
// Read/Write/IdleTimeout, so Go's idle and handshake limits are 10 s as well: the defaults here.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <httplib.h>
#include <memory>
#include <string>
#include <string_view>

#include "lib/util/error.hpp"

namespace cdi::server {

struct ConnectionLimits {
  size_t max_connections = 512;                              // open connections served at once
  std::chrono::milliseconds handshake_timeout{10'000};       // TLS handshake, from accept
  std::chrono::milliseconds header_timeout{10'000};          // request line + headers
  std::chrono::milliseconds idle_timeout{10'000};            // keep-alive wait for the next request
  std::chrono::milliseconds stall_timeout{60'000};           // longest wait for one body byte / one write
  std::chrono::milliseconds stop_grace{5'000};               // stop(): time for requests in flight to end
};

// "" / "0.0.0.0" / "::" (brackets allowed: "[::]") → the dual-stack wildcard: [::] with
// IPV6_V6ONLY=0 (Go's ":8443" and "0.0.0.0:8443" listen this way), or 0.0.0.0 when the kernel has
// no IPv6. Anything else is resolved numerically first ("127.0.0.1", "::1", "[::1]"), then as a
// name. SO_REUSEADDR (a TIME_WAIT socket of the previous container does not block the port; a
// live listener still does). Returns the listening fd. Errors: io (address in use, not available).
Result<int> open_listener(std::string_view address, uint16_t port);

// "[::]:8443", "127.0.0.1:8443": the address an fd is bound to, for logs.
std::string bound_address(int fd);

class HttpServer : public httplib::Server {
 public:
  // tls: a configured server SSL_CTX (certificate, key, versions, ciphers, client CA), or null for
  // plain HTTP. The server takes a reference on it. log: connection-level events (handshake
  // failures, refusals over the cap), may be empty.
  HttpServer(ConnectionLimits limits, SSL_CTX* tls, std::function<void(const std::string&)> log);
  ~HttpServer() override;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (open_listener) and starts the accept loop on a thread. Returns the bound port.
  Result<uint16_t> start(std::string_view address, uint16_t port);
  // Stops accepting, closes idle connections, lets requests in flight finish (stop_grace), then
  // cuts the rest and joins every thread. Idempotent.
  void stop();
  // "[::]:8443" once started.
  std::string address() const;
  // Connections being served now (tests).
  size_t open_connections() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> m;
};

}  // namespace cdi::server
