// SPDX-License-Identifier: Apache-2.0
#include "lib/pipeline/qemu_img.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <cctype>
#include <cstdlib>

#include "lib/util/fd.hpp"
#include "lib/util/process.hpp"
#include "lib/util/units.hpp"

namespace cdi::pipeline {
namespace {

constexpr uint64_t k_head = 1u << 20;

std::string first_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  // qemu-img prefixes its messages with "qemu-img: "; keep the rest, folded to one line.
  for (auto& c : s)
    if (c == '\n') c = ' ';
  if (s.rfind("qemu-img: ", 0) == 0) s.erase(0, 10);
  return s;
}

util::ProcessOptions process_options(const QemuRunOptions& opts) {
  util::ProcessOptions po;
  po.cancel = opts.cancel;
  po.keep_fds = opts.keep_fds;
  return po;
}

// "driver=raw,offset=O[,size=S],file.driver=..." — a window of an image as seen by qemu's raw
// driver. Commas in file names must be doubled in qemu option syntax.
std::string escape_opt(const std::string& v) {
  std::string out;
  for (char c : v) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

}  // namespace

Reason qemu_message_reason(std::string_view msg) {
  std::string lower(msg);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("no space left on device") != std::string::npos || lower.find("disk quota exceeded") != std::string::npos)
    return Reason::no_space;
  return Reason::none;
}

std::optional<double> parse_progress(std::string_view line) {
  // qemu-img -p draws "    (45.34/100%)".
  auto close = line.find("/100%)");
  if (close == std::string_view::npos) return std::nullopt;
  auto open = line.rfind('(', close);
  if (open == std::string_view::npos || open + 1 == close) return std::nullopt;
  std::string num(line.substr(open + 1, close - open - 1));
  char* end = nullptr;
  double v = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || v < 0 || v > 100) return std::nullopt;
  return v;
}

Result<QemuImageInfo> qemu_info(const std::string& fmt, const std::string& src, const QemuRunOptions& opts) {
  auto po = process_options(opts);
  po.timeout = std::chrono::seconds(60);
  auto res = CDI_TRY(util::run_process({"qemu-img", "info", "-f", fmt, "--output=json", src}, po));
  if (res.exit_code != 0)
    return fail(Errc::corrupt_input, "qemu-img cannot read the " + fmt + " image: " + first_line(res.err));
  QemuImageInfo info;
  try {
    auto j = nlohmann::json::parse(res.out);
    info.format = j.value("format", "");
    info.virtual_size = j.value("virtual-size", uint64_t{0});
    info.backing_file = j.value("backing-filename", "");
    info.encrypted = j.value("encrypted", false);
    if (j.contains("format-specific") && j["format-specific"].contains("data")) {
      const auto& d = j["format-specific"]["data"];
      info.data_file = d.value("data-file", "");
      info.create_type = d.value("create-type", "");
      if (d.contains("encrypt")) info.encrypted = true;
      // vmdk: extents can name other files (flat/split images); each must be the image itself.
      if (d.contains("extents")) {
        for (const auto& e : d["extents"]) {
          std::string fn = e.value("filename", "");
          if (!fn.empty() && fn != src)
            return fail(Errc::unsupported, "vmdk image references another file (" + fn + ")");
        }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return fail(Errc::internal, std::string("unexpected qemu-img info output: ") + e.what());
  }
  return info;
}

Result<void> validate_image(const QemuImageInfo& info, std::optional<uint64_t> max_size,
                            const std::string& max_size_what) {
  static const char* const k_allowed[] = {"raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi"};
  bool ok = false;
  for (auto* f : k_allowed) ok = ok || info.format == f;
  if (!ok) return fail(Errc::unsupported, "image format " + info.format + " is not supported");
  if (!info.backing_file.empty())
    return fail(Errc::unsupported, "image has a backing file (" + info.backing_file +
                                       "); only self-contained images can be imported");
  if (!info.data_file.empty())
    return fail(Errc::unsupported, "image uses an external data file (" + info.data_file + ")");
  if (info.encrypted) return fail(Errc::unsupported, "image is encrypted; encrypted images are not supported");
  if (max_size && info.virtual_size > *max_size)
    return fail(Errc::limit, Reason::too_small, "virtual image size " + std::to_string(info.virtual_size) + " (" +
                                 util::format_bytes(info.virtual_size) + ") is larger than " + max_size_what +
                                 " (" + std::to_string(*max_size) + ")");
  return {};
}

Result<void> qemu_check_qcow2(const std::string& src, const QemuRunOptions& opts) {
  auto res = CDI_TRY(util::run_process({"qemu-img", "check", "-f", "qcow2", "--output=json", src},
                                       process_options(opts)));
  // Exit codes: 0 clean, 1 check failed to run, 2 corruptions, 3 leaks only.
  if (res.exit_code == 0 || res.exit_code == 3) return {};
  std::string detail;
  try {
    auto j = nlohmann::json::parse(res.out);
    detail = std::to_string(j.value("corruptions", 0)) + " corruption(s), " +
             std::to_string(j.value("check-errors", 0)) + " check error(s)";
  } catch (const nlohmann::json::exception&) {
    detail = first_line(res.err);
  }
  return fail(Errc::corrupt_input, "qcow2 image is damaged or truncated (qemu-img check: " + detail + ")");
}

bool supports_direct_io(const std::string& path) {
  util::Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
  return fd.valid();
}

Result<void> qemu_convert(const std::string& fmt, const std::string& src, uint64_t virtual_size,
                          const ConvertTarget& target, const QemuRunOptions& opts,
                          const std::function<void(double)>& on_percent) {
  auto run = [&](double base, double span, std::vector<std::string> argv) -> Result<void> {
    auto po = process_options(opts);
    po.on_stdout_line = [&](std::string_view line) {
      if (auto pct = parse_progress(line); pct && on_percent) on_percent(base + span * *pct / 100.0);
    };
    auto res = CDI_TRY(util::run_process(argv, po));
    if (res.exit_code != 0) {
      auto msg = first_line(res.err);
      Errc code = Errc::io;
      if (msg.find("Could not open") != std::string::npos || msg.find("error while reading") != std::string::npos)
        code = Errc::corrupt_input;
      return fail(code, qemu_message_reason(msg), "qemu-img convert failed: " + msg);
    }
    return {};
  };
  std::string cache = target.direct_io ? "none" : "writethrough";
  std::string proto = target.block_device ? "host_device" : "file";
  auto src_window = [&](uint64_t off, std::optional<uint64_t> size) {
    std::string s = "driver=raw,offset=" + std::to_string(off);
    if (size) s += ",size=" + std::to_string(*size);
    static constexpr std::string_view k_nbd = "nbd+unix://?socket=";
    if (src.starts_with(k_nbd))   // an image read in place through nbdkit (lib/pipeline/nbdkit.hpp)
      return s + ",file.driver=" + fmt + ",file.file.driver=nbd,file.file.server.type=unix,file.file.server.path=" +
             escape_opt(src.substr(k_nbd.size()));
    return s + ",file.driver=" + fmt + ",file.file.driver=file,file.file.filename=" + escape_opt(src);
  };
  auto dst_window = [&](uint64_t off, std::optional<uint64_t> size) {
    std::string s = "driver=raw,offset=" + std::to_string(off);
    if (size) s += ",size=" + std::to_string(*size);
    return s + ",file.driver=" + proto + ",file.filename=" + escape_opt(target.path);
  };
  if (!target.block_device || virtual_size <= k_head) {
    std::vector<std::string> argv{"qemu-img", "convert", "-p", "-n", "-t", cache, "-f", fmt, "-O", "raw"};
    if (target.direct_io) argv.push_back("-W");
    argv.push_back(src);
    argv.push_back(target.path);
    return run(0, 100, argv);
  }
  // Block device: everything after the first MiB, then the first MiB.
  double body_share = 100.0 * double(virtual_size - k_head) / double(virtual_size);
  std::vector<std::string> body{"qemu-img", "convert", "-p", "-n", "-t", cache};
  if (target.direct_io) body.push_back("-W");
  body.insert(body.end(), {"--image-opts", src_window(k_head, std::nullopt), "--target-image-opts",
                           dst_window(k_head, std::nullopt)});
  CDI_TRY(run(0, body_share, body));
  std::vector<std::string> head{"qemu-img", "convert", "-p", "-n", "-t", cache, "--image-opts",
                                src_window(0, k_head), "--target-image-opts", dst_window(0, k_head)};
  return run(body_share, 100.0 - body_share, head);
}

}  // namespace cdi::pipeline
