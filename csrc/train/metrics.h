/*
 * Progress and metrics of a run.
 *
 * - Progress: one live line on stderr (step/total, stage, loss, tokens/s,
 *   ETA), redrawn with a carriage return on a terminal and printed as plain
 *   lines every `log.every` steps otherwise (logs stay readable); notes
 *   (stage switch, validation, checkpoints) always get their own line.
 * - JsonlWriter: one JSON object per line, each written with one write(2)
 *   on a file opened O_APPEND (no user-space buffer), so a line is in the
 *   file when write() returns and a killed or crashed process loses nothing
 *   it wrote; a failed write throws naming the file and the OS reason
 *   instead of dropping lines. On resume the file keeps only the records up
 *   to the resumed step (rewritten atomically), so a resumed run's file
 *   equals the uninterrupted run's (timings aside).
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace lighthouse::train {

using Json = nlohmann::ordered_json;

class JsonlWriter {
 public:
  // Opens `path` for appending after dropping every record whose "step" is
  // above `keep_through_step` (-1: start empty).
  JsonlWriter(const std::string& path, int64_t keep_through_step);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  // Appends record.dump() and a newline; throws std::runtime_error naming
  // the path if the OS does not take the whole line.
  void write(const Json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

struct StepInfo {
  int64_t step = 0;
  int64_t total = 0;
  int stage = 1;
  const char* attention = "";
  double loss = 0;
  double lr = 0;
  double tokens_per_s = 0;
  double eta_s = 0;
};

class Progress {
 public:
  // `label` prefixes every line (e.g. the run's name).
  Progress(std::string label, int64_t log_every);
  void update(const StepInfo& s);
  void note(const std::string& message);
  // Ends a pending carriage-return line.
  void finish();

 private:
  void clear_live();
  std::string label_;
  int64_t log_every_;
  bool tty_;
  bool live_ = false;
};

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);
// "12.3k", "1.2M".
std::string format_count(double n);
// v with `digits` decimals ("%.*f").
std::string format_fixed(double v, int digits);

// Seconds since construction.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lighthouse::train
