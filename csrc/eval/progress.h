/*
 * The evaluation's progress line on stderr: done/total units, throughput
 * and ETA; redrawn in place on a terminal, otherwise printed every few
 * seconds (and at the end) so that logs stay short.
 */
#pragma once

#include <cstdint>
#include <string>

#include "train/metrics.h"

namespace lighthouse::eval {

class ProgressLine {
 public:
  // label: line prefix ("" = silent); total: units of work (e.g. tokens).
  ProgressLine(std::string label, int64_t total_units, std::string unit);
  // `done` units finished so far; `what` says where we are ("context 4096").
  void update(int64_t done, const std::string& what);
  void finish();
  double seconds() const { return clock_.seconds(); }

 private:
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  bool live_ = false;
  double last_print_ = -1e9;
  train::Stopwatch clock_;
};

}  // namespace lighthouse::eval
