// Device synchronisation and memory statistics (device.h).
#include "device/device.h"

#include <ATen/DeviceAccelerator.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace lighthouse::device {
namespace {

void warn_no_stats(const c10::Error& e) {
  static bool warned = false;
  if (!warned) std::fprintf(stderr, "[lighthouse] warning: no device memory statistics: %s\n", e.what_without_backtrace());
  warned = true;
}

}  // namespace

void synchronize(const at::Device& device) {
  if (device.is_cuda()) at::accelerator::synchronizeDevice(device.index());
}

int64_t peak_memory_bytes(const at::Device& device) {
  if (device.is_cuda()) {
    try {
      return at::accelerator::getDeviceStats(device.index()).allocated_bytes[0].peak;  // [0]: all pools
    } catch (const c10::Error& e) {
      warn_no_stats(e);
      return 0;
    }
  }
  // VmHWM: peak resident set size of the process, in kB.
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      status >> kb;
      return kb * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  return 0;
}

int64_t current_memory_bytes(const at::Device& device) {
  if (!device.is_cuda()) return 0;
  try {
    return at::accelerator::getDeviceStats(device.index()).allocated_bytes[0].current;
  } catch (const c10::Error& e) {
    warn_no_stats(e);
    return 0;
  }
}

void reset_peak_memory(const at::Device& device) {
  if (!device.is_cuda()) return;
  try {
    at::accelerator::resetPeakStats(device.index());
  } catch (const c10::Error& e) {
    warn_no_stats(e);
  }
}

}  // namespace lighthouse::device
