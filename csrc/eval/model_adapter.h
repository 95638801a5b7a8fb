/*
 * The evaluation interfaces (NextTokenModel for the passkey test,
 * TokenLossModel for the held-out loss) implemented by our Llama, and
 * loading a checkpoint for evaluation.
 *
 * Invariants: evaluation never builds a graph (no-grad) and never changes
 * the model's weights; the attention mode is fixed at load time and
 * recorded with every result ("dense" or "lighthouse", and the per-layer
 * map such as "DLLD").
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/loss.h"
#include "eval/niah.h"
#include "config/config.h"
#include "model/llama.h"

namespace lighthouse::eval {

class LlamaEval : public NextTokenModel, public TokenLossModel {
 public:
  explicit LlamaEval(const model::Llama& model) : model_(model) {}
  // tokens int64 [B, N] (any device) -> float32 [B, V] on CPU.
  at::Tensor last_logits(const at::Tensor& tokens) override;
  // tokens int64 [B, N+1] -> float32 [B, N] on CPU: -log p(tokens[:, i+1] | tokens[:, :i+1]).
  at::Tensor token_losses(const at::Tensor& tokens) override;

 private:
  const model::Llama& model_;
};

struct DeviceOptions {
  std::string device = "auto";     // auto | cpu | cuda | cuda:N
  std::string precision = "auto";  // auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  int64_t threads = 0;             // CPU threads; 0: all cores
};

// A checkpoint's model, ready to evaluate.
struct EvalModel {
  std::unique_ptr<model::Llama> model;
  config::Config config;   // the checkpoint's
  std::string checkpoint;  // the directory loaded
  std::string run;         // the name of its run directory (e.g. "two-stage")
  int64_t step = 0;
  std::string attention;  // "dense" or "lighthouse" (layers outside model.dense_layers)
  // What was evaluated, for the result files: checkpoint, run, step,
  // train_seq_len, then model_meta().
  nlohmann::ordered_json meta() const;
};

// The attention a checkpoint's model was trained with at its step: "dense"
// for a dense run or past the stage switch, else "lighthouse".
std::string checkpoint_attention(const config::Config& config, int64_t step);

// Loads the newest checkpoint under `path` (a checkpoint directory, a run
// directory, or a run root holding one run; with several runs it names
// them and asks for one) onto the device. attention: "" = as the
// checkpoint was trained at its step (checkpoint_attention), "dense" or
// "lighthouse". Throws train::CheckpointError or std::invalid_argument with
// what to change.
EvalModel load_model(const std::string& path, const std::string& attention, const DeviceOptions& device);

// The model's layers as "D" (dense) / "L" (Lighthouse), e.g. "DLLD".
std::string layer_map(const model::Llama& model);
// What a result was computed with: attention ("lighthouse" if any layer
// runs it, else "dense"), layers, parameters, device, precision.
nlohmann::ordered_json model_meta(const model::Llama& model);

}  // namespace lighthouse::eval
