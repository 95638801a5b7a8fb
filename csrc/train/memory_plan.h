/*
 * Activation memory planning: which decoder layers keep their activations
 * for backward, which recompute the cheap element-wise work (selective
 * checkpointing), which recompute the whole block from a stored input (full
 * checkpointing), and which do not even store their input (it is recomputed
 * from the previous stored one: a segment of several layers shares one
 * stored input). Chosen by a memory budget; torch-free arithmetic.
 *
 * The estimate counts, per token of a micro-batch, what the fused block
 * pieces (csrc/ops/fused.h) and the attention keep for backward:
 *   keep       x (fp32), h, attention, o, s (fp32), h2, gate, up, act
 *   selective  x (fp32), attention, o, a (o_proj output), gate, up
 *   full       x (fp32) if the layer stores its input, else nothing
 * (e = bytes of the compute dtype; h, o, a, h2: e*D or e*H*d; gate, up, act:
 * e*F; attention: dense SDPA keeps q, k, v and its log-sum-exp (its output
 * is o), Lighthouse keeps the gathered q~, k~, v~, o~ over S of N rows and
 * the plan's entries and inverse map). Plus the static part (fp32 weights,
 * gradients, both AdamW moments, the loss's saved rows, the final norm's
 * input) and the working set of one layer's backward (its selective
 * activations, the incoming fp32 gradient and the MLP's gradients), plus
 * the regenerated inputs of the longest segment.
 *
 * Greedy choice, all layers full first: if that does not fit, store fewer
 * inputs (segments as even as possible) until it fits; if it fits, upgrade
 * layers full -> selective -> keep in the order of forward time saved per
 * byte (dense layers first: their attention is the costly recompute) while
 * the estimate stays within the budget. Without the fused path only keep
 * and full exist.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace lighthouse::train {

enum class LayerRecompute {
  kNone,       // keep every activation
  kSelective,  // keep matmul and attention outputs, recompute the element-wise work
  kFull,       // recompute the whole block in backward
};
const char* to_string(LayerRecompute r);

struct CheckpointPlan {
  std::vector<LayerRecompute> layers;
  // Per layer: whether a kFull layer stores its input. A kFull layer that
  // does not continues the segment of the layer before it (also kFull).
  std::vector<bool> stores_input;
  double estimated_bytes = 0;  // the whole step's peak estimate
  double budget_bytes = 0;
  bool fused = true;  // the block runs the fused pieces (else keep means the stock block's activations)
  bool fits = true;
  // "3 keep, 1 selective, 26 full (19 stored inputs); est. 104.2 of 120.0 GiB"
  std::string describe() const;
};

// Bytes per token each layer mode keeps, and the rest of the estimate.
struct MemoryModel {
  std::vector<double> keep, selective, full;  // per layer, per token of the micro-batch
  std::vector<double> keep_unfused;           // keep with the stock (unfused) block: more intermediates
  std::vector<double> forward_flops;          // per layer, per token: what a full recompute repeats
  double static_bytes = 0;                    // weights, gradients, optimizer state
  double loss_bytes = 0;                      // per micro-batch: the loss's saved rows, final norm input
  double transient_bytes = 0;                 // one layer's backward working set
  double stored_input_bytes = 0;              // one stored block input
  int64_t tokens = 0;                         // per micro-batch
};

// lighthouse_layers[l]: whether layer l runs Lighthouse (else dense).
// dtype_bytes: 2 for bf16, 4 for fp32.
MemoryModel memory_model(const config::Config& cfg, const std::vector<bool>& lighthouse_layers, int64_t dtype_bytes,
                         int64_t parameters);

// The plan for `budget_bytes`. fused: whether the selective mode exists.
// fits is false when even the smallest plan (one stored input for all
// layers) is over budget; the plan is then that smallest one.
CheckpointPlan plan_checkpointing(const MemoryModel& model, double budget_bytes, bool fused);

// Estimated peak bytes of a plan.
double estimate_bytes(const MemoryModel& model, const CheckpointPlan& plan);

}  // namespace lighthouse::train
