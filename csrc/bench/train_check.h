/*
 * Checks of the fused training path on a device, run by `lighthouse bench
 * train` before it times (`--check-only`: alone; tests/gpu/test_fused_train.py
 * runs them on CUDA, ctest on CPU). Each compares the fused path with the
 * unfused one under the project's tolerance rule (tests/python/tolerances.py:
 * error against a float64 reference at most `factor` times the unfused
 * path's error in the same dtype, plus the reference's rounding to that
 * dtype and its own float64 noise):
 *
 *   adamw         fused AdamW (fused::adamw_) vs the unfused update over
 *                 5 steps; reference: the unfused update in float64 on CPU;
 *                 parameters and both moments, factor 2.
 *   model         the tiny model (every layer dense) trained 3 steps with the
 *                 fused kernels vs without; reference: the unfused model in
 *                 float64 on CPU; the logits of every step (factor 2) and
 *                 the trained parameters (factor 3); the mean losses are
 *                 reported beside them. Dense so that the comparison sees
 *                 rounding only: Lighthouse's selection is discrete, and a
 *                 near-tie may select differently in another dtype.
 *   lighthouse    the tiny preset (Lighthouse layers) the same way in fp32; in
 *                 bf16 the fused losses within 1% of the unfused ones.
 *   recompute     keep, selective, full and 2-layer segments of checkpointing
 *                 give bit-identical losses and gradients.
 *   deterministic a deterministic-mode rerun of the fused path is
 *                 bit-identical (losses and parameters).
 */
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>
#include <vector>

namespace lighthouse::bench {

struct CheckResult {
  std::string name;
  bool passed = false;
  std::string detail;  // the numbers behind the verdict
};

// `dtype`: the compute dtype of the model checks (kFloat32 or kBFloat16);
// kUndefined: bf16 on CUDA, fp32 on CPU. The Lighthouse check in bf16 is the
// 1% closeness check on either device.
std::vector<CheckResult> run_training_checks(const at::Device& device,
                                             at::ScalarType dtype = at::ScalarType::Undefined);

}  // namespace lighthouse::bench
