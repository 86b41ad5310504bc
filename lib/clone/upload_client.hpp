// SPDX-License-Identifier: Apache-2.0
// The cloner's POST (CDI cmd/cdi-cloner): one HTTP/1.1 POST of a body read from a Reader, sent
// chunked as it is produced (bounded memory: what libcurl's upload buffer holds), with the header
// `x-cdi-content-type`, over mutual TLS (client certificate and key, trusted server CA: PEM text,
// never files), TLS >= 1.2, no proxy (CDI's transport has none). A 2xx reply is success.
//
// Retries: the body is a one-shot stream, so a request is only tried again when it failed before
// the first body byte was taken from the reader (connection refused, host unreachable, connect
// timeout): up to `connect_attempts` tries, 1 s, 2 s, 4 s … (at most 8 s) apart. TLS failures and
// any failure after body bytes were sent are final.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "lib/io/reader.hpp"
#include "lib/util/cancel.hpp"

namespace cdi::clone {

struct UploadOptions {
  std::string url;            // https://host:port/v1beta1/upload
  std::string content_type;   // x-cdi-content-type value; "" = no header
  std::string client_cert;    // PEM
  std::string client_key;     // PEM
  std::string server_ca;      // PEM bundle the server's certificate must chain to
  unsigned connect_attempts = 5;
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::seconds connect_timeout{30};
  const util::CancelToken* cancel = nullptr;
  std::function<void(std::string_view)> log;   // one line per attempt / retry (optional)
};

struct UploadReply {
  long status = 0;
  std::string body;           // first 64 KiB of the reply
  uint64_t body_bytes_sent = 0;
};

// Errors: the reader's own error (passed through: a tar failure fails the upload), network
// (connect / transfer failures, non-2xx status "unexpected status code N: <excerpt>"), auth (TLS
// certificate problems, 401/403), invalid_argument (a bad URL or unusable PEM), cancelled.
Result<UploadReply> post_stream(io::Reader& body, const UploadOptions& opts);

}  // namespace cdi::clone
