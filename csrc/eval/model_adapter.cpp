/*
 * Our Llama behind the evaluation interfaces, and checkpoint loading for
 * evaluation (model_adapter.h).
 */
#include "eval/model_adapter.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "data/tokenizer.h"
#include "io/files.h"
#include "train/checkpoint.h"
#include "train/runtime.h"

namespace lighthouse::eval {

at::Tensor LlamaEval::last_logits(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  // Only the last position's logits: [B, N, D] hidden states, one row each.
  const at::Tensor h = model_.hidden(tokens.to(model_.device()));
  return model_.logits(h.select(1, h.size(1) - 1)).to(at::kCPU, at::kFloat).contiguous();  // [B, V]
}

at::Tensor LlamaEval::token_losses(const at::Tensor& tokens) {
  at::NoGradGuard no_grad;
  const int64_t B = tokens.size(0), N = tokens.size(1) - 1;
  const at::Tensor t = tokens.to(model_.device());
  // fp32 logits a chunk of rows at a time, never [B, N, V] at once.
  const at::Tensor h = model_.hidden(t.narrow(1, 0, N)).reshape({B * N, -1});  // [B*N, D]
  const at::Tensor targets = t.narrow(1, 1, N).reshape({B * N});
  constexpr int64_t kRows = 16384;
  std::vector<at::Tensor> parts;
  for (int64_t r = 0; r < B * N; r += kRows) {
    const int64_t n = std::min(kRows, B * N - r);
    parts.push_back(at::cross_entropy_loss(model_.logits(h.narrow(0, r, n)), targets.narrow(0, r, n),
                                           /*weight=*/{}, at::Reduction::None, data::kPad));
  }
  return at::cat(parts).view({B, N}).to(at::kCPU, at::kFloat).contiguous();
}

std::string layer_map(const model::Llama& m) {
  return model::plan_map(m.attention_plan());
}

std::string checkpoint_attention(const config::Config& c, int64_t step) {
  const int64_t at = config::switch_step(c);
  const bool switched = at > 0 && step >= at;
  return !config::uses_lighthouse(c) || switched ? "dense" : "lighthouse";
}

namespace {

// The newest checkpoint under `path`; a directory of runs (e.g. runs/tiny
// with two-stage/ and dense/) must hold exactly one.
std::string find_checkpoint(const std::string& path) {
  if (!io::is_directory(path)) throw train::CheckpointError("no such directory: " + path);
  const std::string dir = train::latest_checkpoint(path);
  if (!dir.empty()) return dir;
  std::vector<std::string> runs;
  for (const std::string& name : io::list_dir(path)) {
    const std::string sub = path + "/" + name;
    if (io::is_directory(sub) && !train::latest_checkpoint(sub).empty()) runs.push_back(sub);
  }
  if (runs.size() == 1) return train::latest_checkpoint(runs[0]);
  if (runs.empty()) throw train::CheckpointError("no complete checkpoint in " + path);
  std::string names;
  for (const auto& r : runs) names += (names.empty() ? "" : ", ") + r;
  throw std::invalid_argument(path + " holds several runs (" + names + "): pass one of them");
}

}  // namespace

EvalModel load_model(const std::string& path, const std::string& attention, const DeviceOptions& dev) {
  if (!attention.empty() && attention != "dense" && attention != "lighthouse") {
    throw std::invalid_argument("attention must be dense or lighthouse, got '" + attention + "'");
  }
  const std::string dir = find_checkpoint(path);
  train::Checkpoint ckpt = train::load_checkpoint(dir, /*with_optimizer=*/false);
  config::TrainConfig tc;
  tc.device = dev.device;
  tc.precision = dev.precision;
  tc.threads = dev.threads;
  const train::Runtime rt = train::setup_runtime(tc);

  EvalModel e;
  e.config = ckpt.config;
  e.checkpoint = dir;
  e.run = io::base_name(train::run_dir_of(dir));
  e.step = ckpt.step;
  e.attention = attention.empty() ? checkpoint_attention(ckpt.config, ckpt.step) : attention;
  config::ModelConfig mc = ckpt.config.model;
  if (e.attention == "lighthouse") mc.attention = "lighthouse";
  const model::AttentionPlan plan = model::attention_plan(mc, ckpt.config.lighthouse);
  e.model = std::make_unique<model::Llama>(
      mc, e.attention == "dense" ? model::switch_to_dense(plan) : plan, rt.device, /*seed=*/0);
  e.model->load_weights(ckpt.weights);
  e.model->set_compute_dtype(rt.compute_dtype);
  if (e.attention == "lighthouse" && !e.model->any_lighthouse()) {
    throw std::invalid_argument("--attention lighthouse: every layer of this model is in model.dense_layers");
  }
  return e;
}

nlohmann::ordered_json model_meta(const model::Llama& m) {
  return {{"attention", m.any_lighthouse() ? "lighthouse" : "dense"},
          {"layers", layer_map(m)},
          {"parameters", m.num_parameters()},
          {"device", m.device().str()},
          {"precision", m.compute_dtype() == at::kBFloat16 ? "bf16" : "fp32"}};
}

nlohmann::ordered_json EvalModel::meta() const {
  nlohmann::ordered_json j = {
      {"checkpoint", checkpoint}, {"run", run}, {"step", step}, {"train_seq_len", config.train.seq_len}};
  j.update(model_meta(*model));
  return j;
}

}  // namespace lighthouse::eval
