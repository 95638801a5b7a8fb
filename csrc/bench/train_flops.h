/*
 * Model FLOPs of a training step and the GPU peaks they are divided by
 * (model FLOPs utilisation, MFU).
 *
 * Counted per micro-batch of T = batch * seq_len tokens, forward plus
 * backward (backward = 2x forward), without recompute (MFU counts the
 * model's work, not the hardware's):
 *   matmul     6 * T * (layers * (D (H + 2 H_kv) d + H d D + 3 D F) + V D)
 *              (q, k, v, o, gate, up, down and lm_head; the embedding is a
 *              lookup, not a matmul)
 *   attention  per layer 6 * batch * H * n^2 * d: the causal forward is
 *              2 * batch * H * n^2 * d (QK^T and PV, 2 n^2 d each for the
 *              full square, half of it causal), times 3; n = seq_len for
 *              a dense layer, n = S (the gathered sub-sequence) for a
 *              Lighthouse layer.
 *              The Lighthouse stages (pooling, scoring, selection, gather,
 *              scatter) are memory-bound and not counted.
 * A step is grad_accum micro-batches.
 */
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace lighthouse::bench {

struct StepFlops {
  double matmul = 0;     // per optimizer step
  double attention = 0;  // per optimizer step
  double total() const { return matmul + attention; }
};

// lighthouse_layers[l]: layer l runs Lighthouse (else dense SDPA).
StepFlops step_flops(const config::Config& cfg, const std::vector<bool>& lighthouse_layers);

// The dense (no sparsity) bf16 tensor-core peak in FLOP/s of a GPU by its
// name, from the vendor's datasheet: H200 and H100 SXM 989.4e12, H100 PCIe
// 756e12, A100 312e12, B200 2.25e15. 0 when the name is not known.
double datasheet_peak_flops(const std::string& device_name);

}  // namespace lighthouse::bench
