/*
 * JSONL metrics and the terminal progress line (metrics.h).
 */
#include "train/metrics.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace lighthouse::train {

JsonlWriter::JsonlWriter(const std::string& path, int64_t keep_through_step) : path_(path) {
  std::vector<std::string> kept;
  if (keep_through_step >= 0) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      // A line that does not parse (a crash mid-write) is dropped too.
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= keep_through_step) {
        kept.push_back(line);
      }
    }
  }
  out_.open(path, std::ios::out | std::ios::trunc);
  if (!out_) throw std::runtime_error("cannot write " + path);
  for (const auto& l : kept) out_ << l << '\n';
  out_.flush();
}

void JsonlWriter::write(const Json& record) {
  out_ << record.dump() << '\n';
  out_.flush();  // a crash loses at most the line being written
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long long t = std::llround(s);
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
  } else if (t >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  }
  return buf;
}

std::string format_count(double n) {
  char buf[32];
  if (n >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  } else if (n >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1fk", n / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", n);
  }
  return buf;
}

Progress::Progress(std::string label, int64_t log_every)
    : label_(std::move(label)), log_every_(log_every), tty_(isatty(STDERR_FILENO) != 0) {}

void Progress::clear_live() {
  if (live_) std::fputs("\r\x1b[K", stderr);
  live_ = false;
}

void Progress::update(const StepInfo& s) {
  char line[256];
  std::snprintf(line, sizeof line, "[%s] step %lld/%lld | stage %d (%s) | loss %.4f | lr %.2e | %s tok/s | ETA %s",
                label_.c_str(), static_cast<long long>(s.step), static_cast<long long>(s.total), s.stage, s.attention,
                s.loss, s.lr, format_count(s.tokens_per_s).c_str(), format_duration(s.eta_s).c_str());
  if (tty_) {
    std::fprintf(stderr, "\r%s\x1b[K", line);
    live_ = true;
    if (s.step == s.total) finish();
  } else if (s.step % log_every_ == 0 || s.step == s.total || s.step == 1) {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void Progress::note(const std::string& message) {
  clear_live();
  std::fprintf(stderr, "[%s] %s\n", label_.c_str(), message.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (live_) std::fputs("\n", stderr);
  live_ = false;
  std::fflush(stderr);
}

}  // namespace lighthouse::train
