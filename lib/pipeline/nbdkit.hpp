// SPDX-License-Identifier: Apache-2.0
// Random access to an HTTP(S) image without scratch: nbdkit's curl plugin serves the URL as a
// read-only NBD export on a private unix socket, and qemu-img reads vmdk/vhd/vhdx/vdi from
// `nbd+unix:///?socket=…` with Range requests. Chosen over qemu-img's own http driver because
// nbdkit takes a CA bundle (our --cert-dir), a password file and proxies, which qemu's curl driver
// cannot; measured against spooling in README "HTTP(S) sources".
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "lib/source/http_source.hpp"
#include "lib/util/cancel.hpp"
#include "lib/util/error.hpp"
#include "lib/util/fd.hpp"
#include "lib/util/file_io.hpp"

namespace cdi::pipeline {

class NbdkitCurl {
 public:
  // Why `opts` cannot be expressed to nbdkit's curl plugin (client certificates, header files
  // holding secrets), or nullopt when it can.
  static std::optional<std::string> unsupported_reason(const source::HttpOptions& opts);

  // Starts `nbdkit --exit-with-parent -f -r -U SOCKET --filter=cache curl url=URL …` and waits
  // (≤ 15 s) until the export answers. `cache_dir` holds the cache filter's bounded (32 MiB)
  // temporary file (callers pass /dev/shm: memory, never the scratch volume). Errors: not_found
  // (nbdkit or its curl plugin is not installed), network (nbdkit could not reach the URL: its
  // message), cancelled.
  static Result<std::unique_ptr<NbdkitCurl>> start(const std::string& url, const source::HttpOptions& opts,
                                                   const std::filesystem::path& cache_dir,
                                                   const util::CancelToken* cancel);
  ~NbdkitCurl();
  NbdkitCurl(const NbdkitCurl&) = delete;
  NbdkitCurl& operator=(const NbdkitCurl&) = delete;

  // "nbd+unix://?socket=/tmp/cdi-nbd.XXXX/sock", for qemu-img -f FMT (the spelling qemu-img
  // itself reports as the extent file name).
  std::string uri() const { return "nbd+unix://?socket=" + (m_dir.path() / "sock").string(); }
  // The last lines nbdkit wrote to stderr (for messages when qemu-img fails).
  std::string stderr_tail() const;

 private:
  NbdkitCurl() = default;
  pid_t m_pid = -1;
  util::TempDir m_dir;       // private 0700 directory holding the socket
  util::Fd m_err;            // nbdkit's stderr (a memfd)
  util::Fd m_ca;             // memfd holding the CA bundle, inherited as /dev/fd/N
};

}  // namespace cdi::pipeline
