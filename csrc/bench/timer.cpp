// Timer and peak_bytes (timer.h).
#include "bench/timer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "device/device.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace lighthouse::bench {

namespace {

// Slow measurements (dense attention at long N): three runs suffice, one when
// a run takes over five seconds.
bool enough(double first_ms, size_t runs) {
  return first_ms > 5 * Timer::kSlowMs || (first_ms > Timer::kSlowMs && runs >= 3);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

}  // namespace

Timer::Timer(at::Device device, int warmup, int repeats) : device_(device), warmup_(warmup), repeats_(repeats) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) {
    // Larger than the L2 of any current GPU: writing it evicts our data.
    flush_ = at::empty({int64_t{256} << 20}, at::TensorOptions().dtype(at::kByte).device(device));
  }
#endif
}

double Timer::median_ms(const std::function<void()>& fn) const {
  for (int i = 0; i < warmup_; ++i) fn();
  device::synchronize(device_);
  std::vector<double> ms;
  for (int i = 0; i < repeats_; ++i) {
    ms.push_back(once_ms(fn));
    if (enough(ms.front(), ms.size())) break;
  }
  return median(std::move(ms));
}

Timer::Paired Timer::paired_median_ms(const std::function<void()>& a, const std::function<void()>& b) const {
  for (int i = 0; i < warmup_; ++i) {
    a();
    b();
  }
  device::synchronize(device_);
  std::vector<double> ta, tb, ratio;
  for (int i = 0; i < repeats_; ++i) {
    ta.push_back(once_ms(a));
    tb.push_back(once_ms(b));
    ratio.push_back(ta.back() / tb.back());
    if (enough(std::max(ta.front(), tb.front()), ta.size())) break;
  }
  return {median(ta), median(tb), median(ratio)};
}

double Timer::once_ms(const std::function<void()>& fn) const {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device_.is_cuda()) {
    flush_.zero_();
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    fn();
    stop.record();
    stop.synchronize();
    return start.elapsed_time(stop);
  }
#endif
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  device::synchronize(device_);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int64_t peak_bytes(const at::Device& device, const std::function<void()>& fn) {
  if (!device.is_cuda()) return 0;
  device::synchronize(device);
  device::reset_peak_memory(device);
  const int64_t before = device::current_memory_bytes(device);
  fn();
  device::synchronize(device);
  return device::peak_memory_bytes(device) - before;
}

}  // namespace lighthouse::bench
