// SPDX-License-Identifier: Apache-2.0
// Error model of the library: every fallible call returns Result<T> = std::expected<T, Error>.
// An Error carries a class (Errc) that callers switch on (exit codes, retry policy) and a
// human message with a context chain added by each layer on the way up, anyhow-style:
//   Error(corrupt_input, "unexpected end of stream after 7.1 MiB").context("gzip").context("base.qcow2.gz")
//   .what() == "base.qcow2.gz: gzip: unexpected end of stream after 7.1 MiB"
// The library never prints and never exits; only cmd/ turns an Error into a message and an exit code.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cdi {

enum class Errc {
  io,                // local I/O failed (read, write, fsync, ENOSPC, EIO)
  corrupt_input,     // the input is damaged: truncated, bad CRC, trailing garbage, inconsistent metadata
  unsupported,       // valid input we refuse or cannot handle (backing file, encryption, unknown feature)
  limit,             // a size or count limit was exceeded (image larger than the target, bombs, depth)
  auth,              // credentials missing or refused
  network,           // transport failure talking to a remote peer
  not_found,         // the named source does not exist
  scratch_required,  // a stage needs scratch space and none was configured
  cancelled,         // SIGINT/SIGTERM or an explicit cancel
  invalid_argument,  // a bad option value (size quantity, URL, content type)
  busy,              // the source or target is in use by someone else
  internal,          // a bug: an invariant did not hold
};

std::string_view errc_name(Errc code);

// A finer, typed fact about an error, set where the fact is known (the checksum verifier, the
// ENOSPC write, the size check, the env parser). Contracts (pod exit codes, CDI termination
// messages, HTTP statuses) switch on it, never on message text. It survives context(...).
enum class Reason {
  none,
  checksum_mismatch,   // the data's digest is not the expected one
  no_space,            // the target ran out of space (ENOSPC / EDQUOT, also as qemu-img reports it)
  too_small,           // the image is larger than the target / the available storage
  bad_preallocation,   // the PREALLOCATION environment variable is not a Go bool
  bad_deadline,        // the DEADLINE environment variable is not an RFC 3339 time
  bad_checksum,        // the IMPORTER_CHECKSUM environment variable is not a usable checksum
  scratch_required,    // a stage needs scratch space and none was configured
  in_use,              // the source is in use by a running VM (qemu's lock)
  truncated,           // the input ends before its format says it does
};

std::string_view reason_name(Reason r);

class [[nodiscard]] Error {
 public:
  // A full file system (ENOSPC / EDQUOT) is Reason::no_space unless told otherwise.
  Error(Errc code, std::string message, int sys_errno = 0)
      : m_code(code), m_reason(errno_reason(sys_errno)), m_message(std::move(message)), m_errno(sys_errno) {}
  Error(Errc code, Reason reason, std::string message, int sys_errno = 0)
      : m_code(code), m_reason(reason == Reason::none ? errno_reason(sys_errno) : reason),
        m_message(std::move(message)), m_errno(sys_errno) {}

  Errc code() const { return m_code; }
  Reason reason() const { return m_reason; }
  Error& with_reason(Reason r) & {
    m_reason = r;
    return *this;
  }
  Error&& with_reason(Reason r) && {
    m_reason = r;
    return std::move(*this);
  }
  // A hint for the command line ("pass --scratch-dir DIR"): only cmd/ renders it, after what();
  // the library's messages never name CLI flags, and pod messages never show it.
  const std::string& hint() const { return m_hint; }
  Error& with_hint(std::string h) & {
    m_hint = std::move(h);
    return *this;
  }
  Error&& with_hint(std::string h) && {
    m_hint = std::move(h);
    return std::move(*this);
  }
  // The innermost message, without context.
  const std::string& message() const { return m_message; }
  // errno that caused it, 0 when not a system error.
  int sys_errno() const { return m_errno; }
  // Context prefixes, outermost first.
  const std::vector<std::string>& contexts() const { return m_context; }

  // Adds an outer context ("gzip", "reading disk.img.gz"). Returns *this for chaining.
  Error& context(std::string ctx) & {
    m_context.insert(m_context.begin(), std::move(ctx));
    return *this;
  }
  Error&& context(std::string ctx) && {
    m_context.insert(m_context.begin(), std::move(ctx));
    return std::move(*this);
  }

  // One line: "outer: inner: message". Newlines in any part are folded to spaces. No hint.
  std::string what() const;
  // what() followed by the hint, as the CLI prints it (cmd/ only).
  std::string what_with_hint() const { return m_hint.empty() ? what() : what() + m_hint; }

 private:
  static Reason errno_reason(int err) { return err == ENOSPC || err == EDQUOT ? Reason::no_space : Reason::none; }

  Errc m_code;
  Reason m_reason = Reason::none;
  std::string m_message;
  std::string m_hint;
  std::vector<std::string> m_context;
  int m_errno;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
inline std::unexpected<Error> fail(Errc code, Reason reason, std::string message) {
  return std::unexpected<Error>(Error(code, reason, std::move(message)));
}

// An error from a failed system call: "<what>: <strerror(err)>". ENOSPC/EDQUOT/EIO map to io,
// ENOENT to not_found, EACCES/EPERM to io, EBUSY to busy. ENOSPC/EDQUOT carry Reason::no_space.
Error sys_error(std::string what, int err = errno);
inline std::unexpected<Error> fail_sys(std::string what, int err = errno) {
  return std::unexpected<Error>(sys_error(std::move(what), err));
}

}  // namespace cdi

// Propagation helpers (GNU statement expressions, as used by g++ and clang).
//   auto n = CDI_TRY(reader.read(buf));           // returns the error to the caller on failure
//   CDI_TRY(sink.finish(size));                   // also for Result<void>
//   auto n = CDI_TRY_CTX(reader.read(buf), "reading header");   // adds a context on failure
#define CDI_TRY(expr)                                          \
  ({                                                           \
    auto&& cdi_try_r_ = (expr);                                \
    if (!cdi_try_r_) [[unlikely]]                              \
      return std::unexpected(std::move(cdi_try_r_).error());   \
    std::move(cdi_try_r_).value();                             \
  })

#define CDI_TRY_CTX(expr, ctx)                                                 \
  ({                                                                           \
    auto&& cdi_try_r_ = (expr);                                                \
    if (!cdi_try_r_) [[unlikely]]                                              \
      return std::unexpected(std::move(cdi_try_r_).error().context(ctx));      \
    std::move(cdi_try_r_).value();                                             \
  })
