/*
 * One optimizer step, apart from the loop around it (trainer.h):
 *
 *   grad_accum micro-batches of this process's rows -> forward, backward
 *   -> [after_backward hook] -> reducer.reduce_gradients
 *   -> global gradient norm, clipping -> non-finite guard -> AdamW
 *
 * The loss of a step is the sum of the per-token cross-entropies over every
 * counted target of the step (all micro-batches, all processes) divided by
 * their count, and each micro-batch's backward starts from its sum divided
 * by that same total count. Gradients summed over processes are therefore
 * exactly the gradient of the global loss, however the rows were split.
 * With one micro-batch on one process this equals cross_entropy's mean bit
 * for bit (the stored loss trace); with grad_accum a power of two the
 * gradients equal the former mean-of-means bit for bit too.
 *
 * A data-parallel wrapper extends the step through a StepReducer (sum the
 * token count, reduce gradients between backward and the gradient norm, sum
 * the loss for reporting); the default one is a single process. Everything
 * the guard decides on (loss, norm) is computed after reduction, so every
 * process takes the same decision.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "model/llama.h"

namespace lighthouse::data {
class Loader;
}

namespace lighthouse::train {

class AdamW;

// This process's part of a batch of tokens [B, N+1]: inputs and next-token
// targets int64 [B', N'] and the inputs' global positions int64 [N']
// (undefined: 0..N'-1).
struct LocalBatch {
  at::Tensor inputs, targets, positions;
};

// What a data- or context-parallel wrapper adds to a step. Every hook of
// this base class is the identity: one process.
class StepReducer {
 public:
  virtual ~StepReducer() = default;
  // The part of `tokens` [B, N+1] (this process's rows of the global batch)
  // whose loss this process computes: by default all of it (inputs the
  // first N tokens, targets the last N). Context parallelism keeps this
  // rank's chunks of both, with their global positions.
  virtual LocalBatch local_batch(const at::Tensor& tokens);
  // The step's counted target tokens over all processes, from this
  // process's count (of its local batches' targets). Called once per step, before any forward.
  virtual int64_t total_count(int64_t local_count) { return local_count; }
  // Before the backward of micro-batch `micro` of `micros` (0-based), e.g.
  // to reduce gradients only after the last one.
  virtual void before_backward(int64_t micro, int64_t micros) {}
  // After the last backward (and the after_backward hook), before the
  // gradient norm: every parameter's grad must become the sum over
  // processes. Parameters without a gradient have an undefined grad.
  virtual void reduce_gradients(const std::vector<at::Tensor>& parameters) {}
  // The step's summed loss (float32 scalar on the device) over processes.
  virtual at::Tensor total_loss_sum(const at::Tensor& local_sum) { return local_sum; }
};

struct StepStats {
  int64_t step = 0;
  double lr = 0;
  double loss = 0;       // summed cross-entropy / counted targets, over the whole step
  int64_t tokens = 0;    // counted targets of the step (all processes)
  double grad_norm = 0;  // global norm after reduction, before clipping
  bool finite = true;    // loss and grad_norm are finite
  bool updated = false;  // the optimizer took the update (false: non-finite, nothing changed)
};

// Test hook, after every backward of a step (before reduction and the guard).
using AfterBackward = std::function<void(int64_t step, model::Llama& model)>;

class TrainStep {
 public:
  // `loader` gives this process's rows; `reducer` may be null (one process).
  // The references must outlive the TrainStep.
  // Targets equal to data::kPad do not count.
  TrainStep(model::Llama& model, AdamW& optimizer, data::Loader& loader, int64_t grad_accum, double grad_clip,
            StepReducer* reducer = nullptr);

  // Training step number `step` at learning rate `lr`. A non-finite loss or
  // gradient norm leaves parameters and optimizer untouched (updated =
  // false); the caller decides whether to stop or go on.
  StepStats run(int64_t step, double lr, const AfterBackward& after_backward = {});

 private:
  model::Llama& model_;
  AdamW& optimizer_;
  data::Loader& loader_;
  int64_t grad_accum_;
  double grad_clip_;
  StepReducer default_reducer_;
  StepReducer* reducer_;
  std::vector<at::Tensor> params_;
};

// Mean validation loss of `model` over the first `batches` batches of the
// validation loader (reset first: the same batches every call): the mean
// over batches of each batch's summed loss / counted targets (summed over
// processes through `reducer` if given). PAD targets do not count.
double evaluate(const model::Llama& model, data::Loader& val, int64_t batches, StepReducer* reducer = nullptr);

}  // namespace lighthouse::train
