// SPDX-License-Identifier: Apache-2.0
#include "cmd/cdi-import/progress_view.hpp"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "lib/util/units.hpp"

using cdi::util::format_bytes;

ProgressMode progress_mode_from(const std::string& flag, bool stderr_is_tty) {
  if (flag == "bar") return ProgressMode::bar;
  if (flag == "json") return ProgressMode::json;
  if (flag == "none") return ProgressMode::none;
  return stderr_is_tty ? ProgressMode::bar : ProgressMode::none;
}

void ProgressView::start() {
  m_t0 = m_last_t = std::chrono::steady_clock::now();
  if (m_mode == ProgressMode::none) return;
  auto period = m_mode == ProgressMode::json ? std::chrono::milliseconds(500) : std::chrono::milliseconds(200);
  m_thread = std::jthread([this, period](std::stop_token st) {
    while (!st.stop_requested()) {
      auto until = std::chrono::steady_clock::now() + period;
      while (!st.stop_requested() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!st.stop_requested()) tick(false);
    }
  });
}

void ProgressView::stop() {
  if (m_stopped) return;
  m_stopped = true;
  if (m_thread.joinable()) {
    m_thread.request_stop();
    m_thread.join();
  }
  if (m_mode == ProgressMode::json) tick(true);
  if (m_mode == ProgressMode::bar) std::fprintf(stderr, "\r\033[K");
}

void ProgressView::tick(bool final) {
  using namespace std::chrono;
  auto now = steady_clock::now();
  auto phase = m_state.phase.load();
  uint64_t rd = m_state.bytes_read.load(), wr = m_state.bytes_written.load();
  // Nothing started yet (an upload server waiting for its upload): stay quiet.
  if (!final && phase == cdi::pipeline::Phase::starting && rd == 0 && wr == 0) return;
  int64_t total_rd = m_state.total_read.load(), total_wr = m_state.total_written.load();
  // Rate over the wire bytes (or written bytes while qemu-img converts from a local file).
  uint64_t basis = phase == cdi::pipeline::Phase::converting ? wr : rd;
  double dt = duration<double>(now - m_last_t).count();
  if (dt > 0) {
    double inst = double(basis >= m_last_bytes ? basis - m_last_bytes : 0) / dt;
    m_rate = m_rate == 0 ? inst : 0.7 * m_rate + 0.3 * inst;
  }
  m_last_bytes = basis;
  m_last_t = now;
  std::optional<double> pct;
  if (phase == cdi::pipeline::Phase::converting && total_wr > 0) pct = 100.0 * double(wr) / double(total_wr);
  else if (total_rd > 0) pct = 100.0 * double(rd) / double(total_rd);
  if (pct && *pct > 100) pct = 100;

  if (m_mode == ProgressMode::json) {
    nlohmann::json j;
    j["phase"] = final ? "done" : std::string(cdi::pipeline::phase_name(phase));
    j["bytes_read"] = rd;
    j["bytes_written"] = wr;
    j["total"] = total_rd >= 0 ? nlohmann::json(total_rd) : nlohmann::json(nullptr);
    j["rate"] = static_cast<uint64_t>(m_rate);
    if (pct) j["percent"] = std::round(*pct * 100) / 100;
    j["elapsed"] = std::round(duration<double>(now - m_t0).count() * 100) / 100;
    std::fprintf(stderr, "%s\n", j.dump().c_str());
    return;
  }
  std::string line = std::string(cdi::pipeline::phase_name(phase)) + "  in " + format_bytes(rd);
  if (total_rd > 0) line += " / " + format_bytes(uint64_t(total_rd));
  line += "  out " + format_bytes(wr);
  if (pct) {
    char b[16];
    std::snprintf(b, sizeof b, "  %5.1f%%", *pct);
    line += b;
  }
  line += "  " + format_bytes(uint64_t(m_rate)) + "/s";
  if (pct && m_rate > 0 && *pct < 100) {
    double remaining_bytes = phase == cdi::pipeline::Phase::converting ? double(total_wr - int64_t(wr))
                                                                        : double(total_rd - int64_t(rd));
    if (remaining_bytes > 0) line += "  ETA " + cdi::util::format_duration(remaining_bytes / m_rate);
  }
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
}

std::string summary_line(const cdi::pipeline::ImportReport& r, const std::string& dest) {
  std::string s = "cdi-import: imported " + cdi::pipeline::chain_text(r.chain) + " -> " + dest + " (" + r.target_kind + ")";
  if (r.plan.converter == cdi::pipeline::Converter::extract || r.plan.target == cdi::pipeline::TargetKind::directory) {   // archive, or a filesystem-clone extraction
    s += ": " + std::to_string(r.files_extracted) + " files, " + format_bytes(r.bytes_written);
  } else {
    s += ": " + format_bytes(r.image_size) + " image, " + format_bytes(r.bytes_read) + " read, " +
         format_bytes(r.bytes_written) + " written, " + format_bytes(r.bytes_zero) + " zero/holes";
    if (r.scratch_bytes) s += ", " + format_bytes(r.scratch_bytes) + " scratch";
    if (r.held_peak || r.spilled_bytes)
      s += ", " + format_bytes(r.held_peak) + " held / " + format_bytes(r.spilled_bytes) + " spilled";
  }
  // The headline rate is guest bytes per second (what the user waits for): a sparse or well-compressed
  // image reads and writes far less than it imports. Read and written rates stand beside it.
  double secs = r.seconds > 0 ? r.seconds : 1e-9;
  auto rate = [secs](uint64_t bytes) { return format_bytes(uint64_t(double(bytes) / secs)) + "/s"; };
  char b[32];
  std::snprintf(b, sizeof b, ", in %.2fs: ", r.seconds);
  s += b;
  if (r.image_size) s += rate(r.image_size) + " image, ";
  s += "read " + rate(r.bytes_read) + ", wrote " + rate(r.bytes_written) + ",";
  s += " via " + r.converter;
  if (!r.checksum_verified.empty()) s += ", checksum " + r.checksum_verified.substr(0, r.checksum_verified.find(':')) + " ok";
  return s;
}
