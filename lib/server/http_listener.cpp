// SPDX-License-Identifier: Apache-2.0
// Design: see http_listener.hpp.
#include "lib/server/http_listener.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

namespace cdi::server {
namespace {

using Clock = std::chrono::steady_clock;

void set_int(int fd, int level, int opt, int v) { ::setsockopt(fd, level, opt, &v, sizeof v); }

std::string strip_brackets(std::string_view a) {
  if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

// Binds and listens one socket; returns the fd or -errno.
int bind_listen(int family, const sockaddr* sa, socklen_t len, bool dual_stack) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
  if (family == AF_INET6) set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? 0 : 1);
  if (::bind(fd, sa, len) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

std::string addr_text(const sockaddr_storage& ss, bool with_port, int* port_out = nullptr) {
  char buf[INET6_ADDRSTRLEN] = {};
  int port = 0;
  std::string host;
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    host = buf;
    port = ntohs(a.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    port = ntohs(a.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      // An IPv4 client on the dual-stack socket: show it as IPv4.
      ::inet_ntop(AF_INET, reinterpret_cast<const unsigned char*>(&a.sin6_addr) + 12, buf, sizeof buf);
      host = buf;
    } else {
      ::inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
      if (with_port) host += '[';
      host += buf;
      if (with_port) host += ']';
    }
  }
  if (port_out) *port_out = port;
  if (!with_port) return host;
  host += ':';
  host += std::to_string(port);
  return host;
}

}  // namespace

Result<int> open_listener(std::string_view address, uint16_t port) {
  std::string host = strip_brackets(address);
  std::string what;
  if (host.find(':') != std::string::npos) {
    what += '[';
    what += host;
    what += ']';
  } else {
    what += host;
  }
  what += ':';
  what += std::to_string(port);
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    sockaddr_in6 a6{};
    a6.sin6_family = AF_INET6;
    a6.sin6_addr = in6addr_any;
    a6.sin6_port = htons(port);
    int fd = bind_listen(AF_INET6, reinterpret_cast<sockaddr*>(&a6), sizeof a6, true);
    if (fd >= 0) return fd;
    // No IPv6 in this kernel (or disabled): IPv4 only, as Go does on such hosts.
    if (fd != -EAFNOSUPPORT && fd != -EADDRNOTAVAIL && fd != -EPROTONOSUPPORT)
      return fail_sys("cannot listen on [::]:" + std::to_string(port), -fd);
    sockaddr_in a4{};
    a4.sin_family = AF_INET;
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    a4.sin_port = htons(port);
    fd = bind_listen(AF_INET, reinterpret_cast<sockaddr*>(&a4), sizeof a4, false);
    if (fd < 0) return fail_sys("cannot listen on 0.0.0.0:" + std::to_string(port), -fd);
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_s = std::to_string(port);
  hints.ai_flags |= AI_NUMERICHOST;
  int rc = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  if (rc == EAI_NONAME) {
    hints.ai_flags &= ~AI_NUMERICHOST;
    rc = ::getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res);
  }
  if (rc != 0 || !res)
    return fail(Errc::io, "cannot listen on " + what + ": cannot resolve '" + host + "': " + ::gai_strerror(rc));
  int err = EADDRNOTAVAIL;
  int fd = -1;
  for (auto* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = bind_listen(ai->ai_family, ai->ai_addr, ai->ai_addrlen, false);
    if (fd < 0) err = -fd;
  }
  ::freeaddrinfo(res);
  if (fd < 0) return fail_sys("cannot listen on " + what, err);
  return fd;
}

std::string bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return addr_text(ss, true);
}

namespace {

struct Conn {
  int fd = -1;
  bool waiting = true;             // handshake, headers or keep-alive wait (guarded by Impl::mutex)
  std::atomic<bool> done{false};
  std::thread thread;
};

enum class Phase { handshake, header, idle, body };

// httplib::Stream over a non-blocking socket (plain or our SSL), every wait bounded (see header).
class ConnStream final : public httplib::Stream {
 public:
  ConnStream(int fd, SSL* ssl, const ConnectionLimits& lim) : m_fd(fd), m_ssl(ssl), m_lim(lim) {}

  void begin(Phase p, std::chrono::milliseconds limit) {
    m_phase = p;
    m_deadline = Clock::now() + limit;
  }
  void headers_done() { m_phase = Phase::body; }
  bool deadline_hit() const { return m_deadline_hit; }

  // TLS handshake within the handshake deadline.
  bool handshake() {
    begin(Phase::handshake, m_lim.handshake_timeout);
    for (;;) {
      int r = SSL_accept(m_ssl);
      if (r == 1) return true;
      int e = SSL_get_error(m_ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (!wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT)) return false;
        continue;
      }
      ERR_clear_error();
      return false;
    }
  }

  bool is_readable() const override {
    if (m_pos < m_len) return true;
    if (m_ssl && SSL_pending(m_ssl) > 0) return true;
    return const_cast<ConnStream*>(this)->wait(POLLIN);
  }
  bool is_writable() const override {
    pollfd p{m_fd, POLLOUT, 0};
    int ms = static_cast<int>(m_lim.stall_timeout.count());
    int r;
    while ((r = ::poll(&p, 1, ms)) < 0 && errno == EINTR) {
    }
    return r > 0 && !(p.revents & (POLLERR | POLLHUP | POLLNVAL));
  }

  ssize_t read(char* ptr, size_t size) override {
    if (size == 0) return 0;
    if (m_pos == m_len) {
      ssize_t n = fill();
      if (n <= 0) return n;
    }
    size_t n = std::min(size, m_len - m_pos);
    std::memcpy(ptr, m_buf + m_pos, n);
    m_pos += n;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* ptr, size_t size) override {
    size_t off = 0;
    const auto stall = m_lim.stall_timeout;
    while (off < size) {
      if (m_ssl) {
        int chunk = static_cast<int>(std::min<size_t>(size - off, 1u << 30));
        int r = SSL_write(m_ssl, ptr + off, chunk);
        if (r > 0) {
          off += static_cast<size_t>(r);
          continue;
        }
        int e = SSL_get_error(m_ssl, r);
        if ((e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) &&
            poll_for(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, stall))
          continue;
        ERR_clear_error();
        return -1;
      }
      ssize_t r = ::send(m_fd, ptr + off, size - off, MSG_NOSIGNAL);
      if (r > 0) {
        off += static_cast<size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && poll_for(POLLOUT, stall)) continue;
      return -1;
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { name(true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { name(false, ip, port); }
  socket_t socket() const override { return m_fd; }

 private:
  void name(bool peer, std::string& ip, int& port) const {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int r = peer ? ::getpeername(m_fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&ss), &len);
    if (r != 0) return;
    ip = addr_text(ss, false, &port);
  }

  // Waits for `events` within the current phase's limit: the deadline for handshake, header and
  // idle, a stall limit for body reads.
  bool wait(short events) {
    if (m_phase == Phase::body) return poll_for(events, m_lim.stall_timeout);
    auto left = std::chrono::ceil<std::chrono::milliseconds>(m_deadline - Clock::now());
    if (left.count() <= 0 || !poll_for(events, left)) {
      m_deadline_hit = true;
      return false;
    }
    return true;
  }

  bool poll_for(short events, std::chrono::milliseconds limit) const {
    pollfd p{m_fd, events, 0};
    auto until = Clock::now() + limit;
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return false;
      int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1 << 30)));
      if (r > 0) return true;   // readable, or an error/hangup the next call reports
      if (r == 0) return false;
      if (errno != EINTR) return false;
    }
  }

  // Refills the buffer: >0 bytes, 0 end of stream, -1 error or time limit.
  ssize_t fill() {
    m_pos = m_len = 0;
    // A byte-a-second client still meets the header deadline: checked before every wait.
    if (m_phase != Phase::body && Clock::now() >= m_deadline) {
      m_deadline_hit = true;
      return -1;
    }
    for (;;) {
      ssize_t n;
      if (m_ssl) {
        int r = SSL_read(m_ssl, m_buf, sizeof m_buf);
        if (r > 0) {
          n = r;
        } else {
          int e = SSL_get_error(m_ssl, r);
          if (e == SSL_ERROR_ZERO_RETURN) return 0;
          if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && wait(e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT))
            continue;
          ERR_clear_error();
          return -1;
        }
      } else {
        n = ::recv(m_fd, m_buf, sizeof m_buf, 0);
        if (n == 0) return 0;
        if (n < 0) {
          if (errno == EINTR) continue;
          if ((errno == EAGAIN || errno == EWOULDBLOCK) && wait(POLLIN)) continue;
          return -1;
        }
      }
      if (m_phase == Phase::idle) {
        // The next request has begun: its headers get the full header limit from here.
        begin(Phase::header, m_lim.header_timeout);
      }
      m_len = static_cast<size_t>(n);
      return n;
    }
  }

  int m_fd;
  SSL* m_ssl;
  const ConnectionLimits& m_lim;
  Phase m_phase = Phase::header;
  Clock::time_point m_deadline{};
  bool m_deadline_hit = false;
  char m_buf[64 * 1024];
  size_t m_pos = 0;
  size_t m_len = 0;
};

}  // namespace

struct HttpServer::Impl {
  HttpServer* self = nullptr;
  ConnectionLimits lim;
  SSL_CTX* tls = nullptr;
  std::function<void(const std::string&)> log;
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::string address;
  std::thread acceptor;
  std::atomic<bool> stopping{false};
  bool stopped = false;

  mutable std::mutex mutex;
  std::condition_variable cv;
  std::list<std::unique_ptr<Conn>> conns;
  size_t open = 0;
  uint64_t refused = 0;
  Clock::time_point last_refusal_log{};

  void say(const std::string& s) const {
    if (log) log(s);
  }

  void reap() {
    std::list<std::unique_ptr<Conn>> finished;
    {
      std::lock_guard lock(mutex);
      for (auto it = conns.begin(); it != conns.end();) {
        if ((*it)->done.load()) {
          finished.push_back(std::move(*it));
          it = conns.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : finished)
      if (c->thread.joinable()) c->thread.join();
  }

  // Over the cap: answered at once from the accept thread and closed. Plain HTTP gets a 503 (what
  // the client already sent is read first, so the close does not reset the answer away); a TLS
  // client is closed (a plaintext answer would be garbage to it).
  void refuse(int fd) {
    if (!tls) {
      char sink[16 * 1024];
      while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
      }
      static constexpr char k_503[] =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
          "Connection: close\r\nRetry-After: 1\r\n\r\ntoo many connections\n";
      [[maybe_unused]] auto n = ::send(fd, k_503, sizeof k_503 - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_WR);
    }
    ::close(fd);
    bool say_now = false;
    uint64_t count = 0;
    {
      std::lock_guard lock(mutex);
      count = ++refused;
      auto now = Clock::now();
      if (now - last_refusal_log >= std::chrono::seconds(5)) {
        last_refusal_log = now;
        say_now = true;
      }
    }
    if (say_now)
      say("refusing connections over the limit of " + std::to_string(lim.max_connections) + " (" +
          std::to_string(count) + " so far)");
  }

  void serve(Conn* c) {
    {
      int fd = c->fd;
      set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
      // Dead peers are found as Go's listener does (keep-alive after 15 s idle).
      set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
      set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 15);
      set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 15);
      set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 9);
      SSL* ssl = nullptr;
      if (tls) {
        ssl = SSL_new(tls);
        if (ssl) SSL_set_fd(ssl, fd);
      }
      ConnStream s(fd, ssl, lim);
      bool ok = !tls || (ssl && s.handshake());
      if (tls && !ok) {
        std::string peer;
        int port = 0;
        s.get_remote_ip_and_port(peer, port);
        say("TLS handshake with " + peer + " failed" + (s.deadline_hit() ? " (timed out)" : ""));
      }
      for (bool first = true; ok; first = false) {
        {
          std::lock_guard lock(mutex);
          if (stopping) break;
          c->waiting = true;
        }
        if (first)
          s.begin(Phase::header, lim.header_timeout);
        else
          s.begin(Phase::idle, lim.idle_timeout);
        bool closed = false;
        bool handled = self->process_request(s, stopping.load(), closed, [&](httplib::Request& req) {
          {
            std::lock_guard lock(mutex);
            c->waiting = false;
          }
          s.headers_done();
          if (ssl) req.ssl = ssl;
        });
        if (!handled || closed || s.deadline_hit()) break;
      }
      if (ssl) {
        if (ok) SSL_shutdown(ssl);   // non-blocking: one close_notify attempt
        SSL_free(ssl);
      }
      ERR_clear_error();
      {
        std::lock_guard lock(mutex);
        ::close(fd);
        c->fd = -1;
        --open;
      }
    }
    c->done.store(true);
    cv.notify_all();
  }

  void accept_loop() {
    pollfd p[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
    while (!stopping) {
      int r = ::poll(p, 2, 1000);
      if (stopping) break;
      reap();
      if (r <= 0 || !(p[0].revents & POLLIN)) continue;
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        continue;
      }
      std::unique_lock lock(mutex);
      if (open >= lim.max_connections) {
        lock.unlock();
        refuse(fd);
        continue;
      }
      auto conn = std::make_unique<Conn>();
      Conn* raw = conn.get();
      raw->fd = fd;
      try {
        raw->thread = std::thread([this, raw] { serve(raw); });
      } catch (const std::system_error&) {
        lock.unlock();
        refuse(fd);
        continue;
      }
      ++open;
      conns.push_back(std::move(conn));
    }
  }
};

HttpServer::HttpServer(ConnectionLimits limits, SSL_CTX* tls, std::function<void(const std::string&)> log)
    : m(std::make_unique<Impl>()) {
  m->self = this;
  m->lim = limits;
  if (tls) {
    SSL_CTX_up_ref(tls);
    m->tls = tls;
  }
  m->log = std::move(log);
}

HttpServer::~HttpServer() {
  stop();
  if (m->tls) SSL_CTX_free(m->tls);
}

Result<uint16_t> HttpServer::start(std::string_view address, uint16_t port) {
  if (m->listen_fd >= 0) return fail(Errc::internal, "HttpServer started twice");
  int fd = CDI_TRY(open_listener(address, port));
  if (::pipe2(m->wake, O_CLOEXEC) != 0) {
    ::close(fd);
    return fail_sys("creating a pipe");
  }
  m->listen_fd = fd;
  m->address = bound_address(fd);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int bound = 0;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) addr_text(ss, false, &bound);
  m->acceptor = std::thread([impl = m.get()] { impl->accept_loop(); });
  return static_cast<uint16_t>(bound);
}

void HttpServer::stop() {
  if (m->stopped) return;
  m->stopped = true;
  m->stopping = true;
  if (m->wake[1] >= 0) {
    [[maybe_unused]] auto n = ::write(m->wake[1], "x", 1);
  }
  if (m->acceptor.joinable()) m->acceptor.join();
  if (m->listen_fd >= 0) ::close(m->listen_fd);
  for (int& w : m->wake)
    if (w >= 0) ::close(std::exchange(w, -1));
  // Connections waiting for a request end now; requests in flight get the grace time.
  std::unique_lock lock(m->mutex);
  for (auto& c : m->conns)
    if (c->waiting && c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
  m->cv.wait_for(lock, m->lim.stop_grace, [&] { return m->open == 0; });
  for (auto& c : m->conns)
    if (c->fd >= 0) ::shutdown(c->fd, SHUT_RDWR);
  m->cv.wait(lock, [&] { return m->open == 0; });
  auto conns = std::move(m->conns);
  lock.unlock();
  for (auto& c : conns)
    if (c->thread.joinable()) c->thread.join();
}

std::string HttpServer::address() const { return m->address; }

size_t HttpServer::open_connections() const {
  std::lock_guard lock(m->mutex);
  return m->open;
}

}  // namespace cdi::server
