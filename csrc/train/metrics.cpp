/*
 * JSONL metrics and the terminal progress line (metrics.h).
 */
#include "train/metrics.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "io/files.h"

namespace lighthouse::train {

JsonlWriter::JsonlWriter(const std::string& path, int64_t keep_through_step) : path_(path) {
  int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
  if (keep_through_step >= 0 && io::is_regular_file(path)) {
    std::string kept;
    const std::string text = io::read_file(path);
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.find('\n', start);
      if (end == std::string::npos) end = text.size();
      const std::string line = text.substr(start, end - start);
      // A line that does not parse (a crash mid-write) is dropped too.
      const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= keep_through_step) {
        kept += line + '\n';
      }
      start = end + 1;
    }
    io::write_file_atomic(path, kept);  // the old file or the kept records, whatever happens
  } else {
    flags |= O_CREAT | O_TRUNC;
  }
  fd_ = ::open(path.c_str(), flags, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot write " + path + ": " + std::strerror(errno));
}

JsonlWriter::~JsonlWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void JsonlWriter::write(const Json& record) {
  const std::string line = record.dump() + '\n';
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw std::runtime_error("cannot write a record to " + path_ + ": " +
                               (n < 0 ? std::strerror(errno) : "no bytes written"));
    }
    done += static_cast<size_t>(n);
  }
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

std::string format_fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
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
