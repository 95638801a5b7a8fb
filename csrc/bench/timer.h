/*
 * Measuring on a device, for every benchmark (the op's, and the trainer's
 * to come): the median time of a callable and the peak memory it allocates.
 *
 * CUDA: each timed run is bracketed by CUDA events on the current stream,
 * with the L2 cache flushed (a 256 MiB write) before it. CPU: a steady clock
 * around the run. Either way `warmup` untimed runs come first.
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>

namespace lighthouse::bench {

class Timer {
 public:
  // Above this a run is slow: three timed runs suffice, one above 5x this.
  static constexpr double kSlowMs = 1000.0;

  Timer(at::Device device, int warmup, int repeats);

  // Median of up to `repeats` timed runs of `fn` after `warmup` untimed
  // ones, in milliseconds.
  double median_ms(const std::function<void()>& fn) const;
  // One timed run of `fn`, in milliseconds (no warm-up).
  double once_ms(const std::function<void()>& fn) const;

  // `a` and `b` timed alternately (a, b, a, b, ...; up to `repeats` pairs
  // after `warmup` untimed runs of each, the same early stop for slow runs):
  // a drift of clocks or temperature during the measurement moves both
  // alike. Medians of each, and the median of the per-pair ratios a_i / b_i.
  struct Paired {
    double a_ms = 0, b_ms = 0, ratio = 0;
  };
  Paired paired_median_ms(const std::function<void()>& a, const std::function<void()>& b) const;

  const at::Device& device() const { return device_; }

 private:
  at::Device device_;
  int warmup_, repeats_;
  at::Tensor flush_;  // CUDA: written before each timed run to evict the L2
};

// Peak bytes allocated on `device` while `fn` runs, above what was
// allocated before it; 0 on CPU.
int64_t peak_bytes(const at::Device& device, const std::function<void()>& fn);

}  // namespace lighthouse::bench
