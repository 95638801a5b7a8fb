/*
 * CPU twin of the fused AdamW update (fused_params.h AdamWParams). Item: a
 * block of kAdamWBlock elements of one tensor; the arithmetic of each
 * element is fused_math.h adamw_element, so the CUDA kernel agrees bit for bit.
 */
#include <algorithm>

#include "fused_cpu.h"

namespace lighthouse {

namespace {
constexpr int64_t kAdamWBlock = 4096;
}

void run_adamw_cpu(const AdamWParams& p, const CpuExec& ex) {
  for (int i = 0; i < p.count; ++i) {
    const AdamWTensor& t = p.tensors[i];
    fused_math::AdamWScalars s = p.scalars;
    if (!p.decay[i]) s.decay = 1.0f;
    const int64_t blocks = (t.n + kAdamWBlock - 1) / kAdamWBlock;
    ex.run(blocks, 1, [&](int64_t begin, int64_t end) {
      const int64_t stop = std::min(end * kAdamWBlock, t.n);
      for (int64_t e = begin * kAdamWBlock; e < stop; ++e) {
        fused_math::adamw_element(t.param + e, t.grad[e], t.exp_avg + e, t.exp_avg_sq + e, s);
      }
    });
  }
}

}  // namespace lighthouse
