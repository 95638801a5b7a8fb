/*
 * Activation checkpointing of the decoder blocks: training code decides,
 * the model only exposes its blocks (Llama::set_block_runner).
 *
 * LibTorch's C++ API has no checkpoint utility, so each block runs through
 * a custom autograd Function: forward computes the block without a graph and
 * saves only its input (and the RoPE tables, positions and weights it reads);
 * backward recomputes the block with a graph on detached copies of the input
 * and the weights and differentiates it (a reentrant backward, like
 * PyTorch's checkpoint(use_reentrant=True)).
 *
 * Invariants: gradients and losses are bit-identical to the plain backward,
 * because the recompute runs the very same ops (explicit dtype casts, no
 * autocast, nothing random in a block, a deterministic Lighthouse op). With
 * grad mode off (evaluation) blocks run directly. The layer's attention
 * object must not change between a forward and its backward (checked).
 */
#pragma once

#include "model/llama.h"

namespace lighthouse::train {

// on: every block of `model` runs through the checkpoint Function while grad
// mode is enabled; off: blocks run directly (the model's default).
void apply_activation_checkpointing(model::Llama& model, bool on = true);

}  // namespace lighthouse::train
