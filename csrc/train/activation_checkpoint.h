/*
 * Activation checkpointing of the decoder blocks: training code decides,
 * the model only exposes its blocks (Llama::set_block_runner) and, on the
 * fused path, which blocks recompute their element-wise work
 * (Llama::set_selective_recompute).
 *
 * Per layer (CheckpointPlan, csrc/train/memory_plan.h): keep everything,
 * selective (fused only), or full. Full layers run in segments: a segment
 * of one or more consecutive layers is one custom autograd Function whose
 * forward runs its blocks without a graph and saves only the segment's
 * input (and the RoPE tables, positions and weights it reads); backward
 * regenerates the inputs of the later blocks without a graph, then for each
 * block from the last recomputes it with a graph on detached copies of its
 * input and weights and differentiates it (a reentrant backward, like
 * PyTorch's checkpoint(use_reentrant=True)). Inside a recompute the fused
 * blocks run selectively, so the recompute's own peak stays small.
 *
 * Invariants: gradients and losses are bit-identical to the plain backward
 * whatever the plan, because every recompute runs the very same ops
 * (explicit dtype casts, no autocast, nothing random in a block, a
 * deterministic Lighthouse op and fused kernels). With grad mode off
 * (evaluation) blocks run directly. A layer's attention object must not
 * change between a forward and its backward (checked). The recomputes run
 * inside an "lh::recompute" profiler scope.
 */
#pragma once

#include <string>

#include "config/config.h"
#include "model/llama.h"
#include "train/memory_plan.h"

namespace lighthouse::train {

// on: every block of `model` runs through a one-layer checkpoint while grad
// mode is enabled; off: blocks run directly (the model's default).
void apply_activation_checkpointing(model::Llama& model, bool on = true);

// Runs `model`'s blocks by `plan` (one entry per layer).
void apply_checkpoint_plan(model::Llama& model, const CheckpointPlan& plan);

// The checkpointing a run uses, applied to `model`, described for logs:
//   activation_checkpointing off       nothing recomputed ("none");
//   on, not fused                      every layer full ("full, every layer");
//   on and fused                       the plan for train.memory_budget_gb
//                                      (0: 90% of the GPU's memory; no limit on
//                                      CPU); an over-budget plan is used with a
//                                      warning in the description.
std::string configure_checkpointing(model::Llama& model, const config::Config& cfg, const at::Device& device);

}  // namespace lighthouse::train
