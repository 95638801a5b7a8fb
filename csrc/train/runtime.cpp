/*
 * Device, precision, threads, determinism, RNG state (runtime.h).
 */
#include "train/runtime.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "ops/checks.h"

namespace lighthouse::train {

void deterministic_env() {
  // overwrite=0: an explicit user setting wins.
  setenv("MKL_CBWR", "AVX2,STRICT", 0);
  setenv("ATEN_CPU_CAPABILITY", "avx2", 0);
  setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", 0);
}

std::string Runtime::describe() const {
  std::string s = device.str() + ", " + (compute_dtype == at::kBFloat16 ? "bf16 compute (fp32 weights)" : "fp32");
  if (device.is_cpu()) s += ", " + std::to_string(threads) + " threads";
  if (deterministic) s += ", deterministic";
  return s;
}

Runtime setup_runtime(const config::TrainConfig& t) {
  Runtime r;
  if (t.device == "auto") {
    r.device = at::hasCUDA() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  } else {
    r.device = at::Device(t.device);
    LH_CHECK(!r.device.is_cuda() || at::hasCUDA(), "train.device = ", t.device,
             ": no CUDA device is available (or torch was built without CUDA); use train.device = cpu");
    LH_CHECK(!r.device.is_cuda() || !r.device.has_index() ||
                 r.device.index() < static_cast<int>(at::accelerator::deviceCount()),
             "train.device = ", t.device, ": this machine has ", static_cast<int>(at::accelerator::deviceCount()),
             " CUDA device(s)");
  }
  if (r.device.is_cuda() && !r.device.has_index()) r.device = at::Device(at::kCUDA, 0);
  if (t.precision == "bf16") {
    r.compute_dtype = at::kBFloat16;
  } else if (t.precision == "fp32") {
    r.compute_dtype = at::kFloat;
  } else {
    r.compute_dtype = r.device.is_cuda() ? at::kBFloat16 : at::kFloat;
  }
  r.deterministic = t.deterministic;
  r.threads = static_cast<int>(t.threads);
  if (r.threads == 0 && r.deterministic) r.threads = 2;
  if (r.threads > 0) at::set_num_threads(r.threads);
  r.threads = at::get_num_threads();
  at::globalContext().setDeterministicAlgorithms(r.deterministic, /*warn_only=*/false);
  if (r.device.is_cuda()) {
    at::accelerator::setDeviceIndex(r.device.index());
    // fp32 matmuls (none on the bf16 path) stay fp32: no silent TF32.
    at::globalContext().setFloat32MatmulPrecision("highest");
  }
  return r;
}

std::string rng_state_hex(const at::Device& device) {
  const at::Tensor state = at::globalContext().defaultGenerator(device).get_state().contiguous();
  const auto* bytes = state.data_ptr<uint8_t>();
  static const char* const digits = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * state.numel());
  for (int64_t i = 0; i < state.numel(); ++i) {
    hex += digits[bytes[i] >> 4];
    hex += digits[bytes[i] & 15];
  }
  return hex;
}

void set_rng_state_hex(const at::Device& device, const std::string& hex) {
  LH_CHECK(hex.size() % 2 == 0, "RNG state: odd number of hex digits");
  at::Tensor state = at::empty({static_cast<int64_t>(hex.size() / 2)}, at::TensorOptions().dtype(at::kByte));
  auto* bytes = state.data_ptr<uint8_t>();
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    LH_CHECK(false, "RNG state: '", c, "' is not a hex digit");
  };
  for (size_t i = 0; i < hex.size() / 2; ++i)
    bytes[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

}  // namespace lighthouse::train
