// SPDX-License-Identifier: Apache-2.0
// StageReader: the common shell of a decoding stage. read() is implemented once here: an empty
// span reads nothing, the stage's fill() does the work, and the first error — the stage's own or
// its upstream's, with the stage name added as context — is sticky: every later read returns it,
// never a clean end of stream.
#pragma once

#include <optional>
#include <string>

#include "lib/io/reader.hpp"

namespace cdi::io {

class StageReader : public Reader {
 public:
  explicit StageReader(std::string stage_name) : m_stage(std::move(stage_name)) {}

  Result<size_t> read(std::span<std::byte> dst) final {
    if (m_dead) return std::unexpected(*m_dead);
    if (dst.empty()) return 0;
    auto r = fill(dst);
    if (!r) {
      m_dead = std::move(r.error()).context(m_stage);
      return std::unexpected(*m_dead);
    }
    return r;
  }

 protected:
  // Produces up to dst.size() (> 0) bytes; 0 only at the clean end of the stream.
  virtual Result<size_t> fill(std::span<std::byte> dst) = 0;

 private:
  std::string m_stage;
  std::optional<Error> m_dead;
};

}  // namespace cdi::io
