/*
 * The evaluation's progress line (progress.h).
 */
#include "eval/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lighthouse::eval {

ProgressLine::ProgressLine(std::string label, int64_t total_units, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total_units), tty_(isatty(STDERR_FILENO) != 0) {}

void ProgressLine::update(int64_t done, const std::string& what) {
  if (label_.empty()) return;
  const double t = clock_.seconds();
  const bool last = done >= total_;
  if (!tty_ && !last && t - last_print_ < 10.0) return;
  last_print_ = t;
  const double rate = t > 0 ? static_cast<double>(done) / t : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : -1;
  char line[256];
  std::snprintf(line, sizeof line, "[%s] %s | %s/%s %s | %s %s/s | %s | ETA %s", label_.c_str(), what.c_str(),
                train::format_count(static_cast<double>(done)).c_str(),
                train::format_count(static_cast<double>(total_)).c_str(), unit_.c_str(),
                train::format_count(rate).c_str(), unit_.c_str(), train::format_duration(t).c_str(),
                done > 0 ? train::format_duration(eta).c_str() : "?");
  if (tty_) {
    std::fprintf(stderr, "\r%s\x1b[K", line);
    live_ = true;
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (live_) std::fputs("\n", stderr);
  live_ = false;
  std::fflush(stderr);
}

}  // namespace lighthouse::eval
