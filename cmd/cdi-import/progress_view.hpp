// SPDX-License-Identifier: Apache-2.0
// Renders pipeline::ProgressState on stderr: a live line on a terminal, JSON lines for machines.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "lib/pipeline/import.hpp"

enum class ProgressMode { none, bar, json };

ProgressMode progress_mode_from(const std::string& flag, bool stderr_is_tty);

class ProgressView {
 public:
  ProgressView(const cdi::pipeline::ProgressState& state, ProgressMode mode) : m_state(state), m_mode(mode) {}
  ~ProgressView() { stop(); }
  ProgressView(const ProgressView&) = delete;
  ProgressView& operator=(const ProgressView&) = delete;

  void start();
  // Stops the thread; a JSON view emits one final object, a bar clears its line.
  void stop();

 private:
  void tick(bool final);
  const cdi::pipeline::ProgressState& m_state;
  ProgressMode m_mode;
  std::jthread m_thread;
  std::chrono::steady_clock::time_point m_t0;
  uint64_t m_last_bytes = 0;
  std::chrono::steady_clock::time_point m_last_t;
  double m_rate = 0;
  bool m_stopped = false;
};

std::string summary_line(const cdi::pipeline::ImportReport& r, const std::string& dest);
